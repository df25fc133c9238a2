// SPDX-License-Identifier: Apache-2.0
// A tiny blocking HTTP/1.1 backend for upstream tests: one accept thread and one thread per
// connection on 127.0.0.1:<ephemeral>. Behaviour is switched at run time through atomics.
// Every wait is bounded (poll with a short timeout), so stop() always returns promptly.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace imgate::test {

class TestBackend {
 public:
  enum class Mode : int {
    kOk,        // 200 with body = name
    kError,     // 500
    kDelay,     // wait delay_ms, then 200
    kDrop,      // read the request, close without answering
    kCloseAfter // 200 with "Connection: close", then close
  };

  explicit TestBackend(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 64);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }

  ~TestBackend() { stop(); }

  void stop() {
    if (stopping_.exchange(true)) {
      return;
    }
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) {
      t.join();
    }
    ::close(fd_);
  }

  // A 127.0.0.1 port where nothing listens (connections are refused).
  static uint16_t refusedPort() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& name() const { return name_; }
  void setMode(Mode mode) { mode_.store(static_cast<int>(mode)); }
  void setDelayMs(int ms) { delay_ms_.store(ms); }
  void setHealthStatus(int status) { health_status_.store(status); }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int healthRequests() const { return health_requests_.load(); }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void acceptLoop() {
    while (!stopping_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      threads_.emplace_back([this, c] { serve(c); });
    }
  }

  // Reads until `need` bytes are buffered or the peer closes; false on close/stop.
  bool readMore(int c, std::string& buf) {
    while (!stopping_.load()) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      char tmp[4096];
      const ssize_t n = ::recv(c, tmp, sizeof tmp, 0);
      if (n <= 0) {
        return false;
      }
      buf.append(tmp, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  void serve(int c) {
    std::string buf;
    while (!stopping_.load()) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!readMore(c, buf)) {
          ::close(c);
          return;
        }
      }
      std::string head = buf.substr(0, end + 4);
      size_t length = 0;
      std::string lower = head;
      for (auto& ch : lower) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      const size_t cl = lower.find("\r\ncontent-length:");
      if (cl != std::string::npos) {
        length = std::stoul(lower.substr(cl + 17));
      }
      while (buf.size() < end + 4 + length) {
        if (!readMore(c, buf)) {
          ::close(c);
          return;
        }
      }
      buf.erase(0, end + 4 + length);
      const bool health = head.rfind("GET /health", 0) == 0;
      std::string response;
      if (health) {
        health_requests_.fetch_add(1);
        const int status = health_status_.load();
        response = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 0\r\n\r\n";
      } else {
        requests_.fetch_add(1);
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        const auto mode = static_cast<Mode>(mode_.load());
        if (mode == Mode::kDrop) {
          ::close(c);
          return;
        }
        if (mode == Mode::kDelay) {
          const auto until =
              std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_.load());
          while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }
        const int status = mode == Mode::kError ? 500 : 200;
        response = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " +
                   std::to_string(name_.size()) + "\r\n" +
                   (mode == Mode::kCloseAfter ? "Connection: close\r\n" : "") + "\r\n" + name_;
        if (mode == Mode::kCloseAfter) {
          ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
          ::close(c);
          return;
        }
      }
      ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
    }
    ::close(c);
  }

  std::string name_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> mode_{0};
  std::atomic<int> delay_ms_{0};
  std::atomic<int> health_status_{200};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> health_requests_{0};
  std::mutex mu_;
  std::vector<std::string> heads_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace imgate::test
