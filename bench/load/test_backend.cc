// SPDX-License-Identifier: Apache-2.0
#include "test_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "wire.h"

namespace imgate::bench::load {

namespace {

constexpr size_t kMaxHead = 16 * 1024;
constexpr uint64_t kMaxBody = 4u << 20;
constexpr size_t kMaxPending = 4u << 20;
constexpr std::string_view kAnswer =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    "{\"ok\":true}";

}  // namespace

TestBackend::TestBackend(Endpoint listen) : listen_(std::move(listen)) {}

TestBackend::~TestBackend() {
  stop();
  for (auto& [fd, buf] : buffers_) {
    ::close(fd);
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
  }
  if (epfd_ >= 0) {
    ::close(epfd_);
  }
}

std::string TestBackend::start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    return std::string("backend socket: ") + std::strerror(errno);
  }
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(listen_.port);
  inet_pton(AF_INET, listen_.host.c_str(), &addr.sin_addr);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return "backend bind " + listen_.text() + ": " + std::strerror(errno);
  }
  if (::listen(listen_fd_, 1024) != 0) {
    return std::string("backend listen: ") + std::strerror(errno);
  }
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  thread_ = std::thread([this] { loop(); });
  return "";
}

void TestBackend::stop() {
  stop_.store(true);
  if (thread_.joinable()) {
    thread_.join();
  }
}

void TestBackend::closeFd(int fd) {
  ::close(fd);
  buffers_.erase(fd);
  pending_.erase(fd);
}

void TestBackend::loop() {
  epoll_event events[256];
  while (!stop_.load(std::memory_order_relaxed)) {
    const int n = epoll_wait(epfd_, events, 256, 20);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listen_fd_) {
        while (true) {
          const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            break;
          }
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = c;
          epoll_ctl(epfd_, EPOLL_CTL_ADD, c, &ev);
          buffers_[c];
          connections.fetch_add(1, std::memory_order_relaxed);
        }
        continue;
      }
      if ((events[i].events & EPOLLOUT) != 0) {
        auto it = pending_.find(fd);
        if (it != pending_.end()) {
          const ssize_t w = ::send(fd, it->second.data(), it->second.size(), MSG_NOSIGNAL);
          if (w < 0 && errno != EAGAIN) {
            closeFd(fd);
            continue;
          }
          it->second.erase(0, w < 0 ? 0 : size_t(w));
          if (it->second.empty()) {
            pending_.erase(it);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
          }
        }
      }
      if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        onReadable(fd);
      }
    }
  }
}

void TestBackend::onReadable(int fd) {
  auto it = buffers_.find(fd);
  if (it == buffers_.end()) {
    return;
  }
  std::string& in = it->second;
  char buf[65536];
  const ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
    closeFd(fd);
    return;
  }
  if (r < 0) {
    return;
  }
  in.append(buf, size_t(r));
  std::string out;
  size_t off = 0;
  bool close_after = false;
  while (true) {
    HttpRequestHead head;
    const std::string_view rest = std::string_view(in).substr(off);
    const Parse p = parseHttpRequestHead(rest, kMaxHead, head);
    if (p == Parse::kNeedMore) {
      break;
    }
    if (p == Parse::kError || head.content_length > kMaxBody) {
      errors.fetch_add(1, std::memory_order_relaxed);
      closeFd(fd);
      return;
    }
    if (rest.size() < head.head_len + head.content_length) {
      break;
    }
    off += head.head_len + size_t(head.content_length);
    out.append(kAnswer);
    requests.fetch_add(1, std::memory_order_relaxed);
    if (head.close) {
      close_after = true;
      break;
    }
  }
  in.erase(0, off);
  if (out.empty()) {
    return;
  }
  auto pend = pending_.find(fd);
  if (pend != pending_.end()) {
    if (pend->second.size() + out.size() > kMaxPending) {
      closeFd(fd);
      return;
    }
    pend->second.append(out);
    return;
  }
  const ssize_t w = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  if (close_after || (w < 0 && errno != EAGAIN)) {
    closeFd(fd);
    return;
  }
  const size_t done = w < 0 ? 0 : size_t(w);
  if (done < out.size()) {
    pending_[fd] = out.substr(done);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.fd = fd;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  }
}

}  // namespace imgate::bench::load
