// SPDX-License-Identifier: Apache-2.0
#include "net/listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/format.h"

namespace imgate::core {

ListenSocket::~ListenSocket() {
  for (int fd : fds) {
    ::close(fd);
  }
}

std::string peerName(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
    return format(host, ":", port);
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    return format("[", host, "]:", port);
  }
  return "unix";
}

uint32_t exactBalanceTarget(const std::atomic<int32_t>* open, size_t count, uint32_t accepting) {
  uint32_t best = accepting;
  int32_t best_open = open[accepting].load(std::memory_order_relaxed);
  for (size_t i = 0; i < count; ++i) {
    const int32_t n = open[i].load(std::memory_order_relaxed);
    if (n < best_open) {
      best = static_cast<uint32_t>(i);
      best_open = n;
    }
  }
  return best;
}

Result<std::unique_ptr<ListenSocket>> openListenSocket(const std::string& bind, unsigned count) {
  const size_t colon = bind.rfind(':');
  std::string host = bind.substr(0, colon);
  const std::string port = bind.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.empty() || host == "*" ? nullptr : host.c_str(), port.c_str(),
                             &hints, &res);
  if (rc != 0) {
    return fail(Errc::kInvalidConfig, format("cannot resolve ", quote(bind), ": ", gai_strerror(rc)));
  }
  sockaddr_storage addr{};
  socklen_t addr_len = static_cast<socklen_t>(res->ai_addrlen);
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  const int family = res->ai_family;
  freeaddrinfo(res);

  auto sock = std::make_unique<ListenSocket>();
  sock->bind = bind;
  sock->open = std::make_unique<std::atomic<int32_t>[]>(count);  // value-initialized: zeros
  for (unsigned i = 0; i < count; ++i) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      return fail(Errc::kInvalidConfig, format("socket(): ", std::strerror(errno)));
    }
    sock->fds.push_back(fd);
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
      return fail(Errc::kInvalidConfig,
                  format("cannot listen on ", quote(bind), ": ", std::strerror(errno)));
    }
    if (::listen(fd, 4096) != 0) {
      return fail(Errc::kInvalidConfig,
                  format("listen() on ", quote(bind), ": ", std::strerror(errno)));
    }
    if (i == 0) {
      // Port 0: the first socket picked a port; the others must bind that same port.
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &addr_len);
      sock->port = addr.ss_family == AF_INET
                       ? ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port)
                       : ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
  }
  return sock;
}

}  // namespace imgate::core
