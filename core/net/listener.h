// SPDX-License-Identifier: Apache-2.0
// Listening sockets: one SO_REUSEPORT socket per worker for each bind address, so the kernel
// spreads new connections over the workers. Opened by the main thread; kept across reloads for
// every bind address that stays in the config (nginx reuses listening sockets the same way).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

struct sockaddr;

namespace imgate::core {

struct ListenSocket {
  std::string bind;  // ListenerSpec::socketKey(): the address, plus the name for port 0
  int port = 0;      // the bound port (resolved when the config said 0)
  std::vector<int> fds;  // one per worker
  // Open connections per worker (index as fds), kept by the workers for listeners with
  // `balance: exact`; zero for the others.
  std::unique_ptr<std::atomic<int32_t>[]> open;
  ListenSocket() = default;
  ListenSocket(const ListenSocket&) = delete;
  ListenSocket& operator=(const ListenSocket&) = delete;
  ~ListenSocket();
};

// Opens `count` sockets bound to `bind` ("host:port", "[v6]:port"). Blocking; main thread only.
Result<std::unique_ptr<ListenSocket>> openListenSocket(const std::string& bind, unsigned count);

// `balance: exact`: the worker a new connection should go to, given the open connections per
// worker (`count` of them) and the worker that accepted it: the one with the fewest, the
// accepting worker on a tie (no hop when nothing is gained).
uint32_t exactBalanceTarget(const std::atomic<int32_t>* open, size_t count, uint32_t accepting);

// "127.0.0.1:5000" for a connected socket's peer.
std::string peerName(const ::sockaddr* sa);

// The address part of a peerName() ("127.0.0.1", "[::1]"): what admission counts per IP.
inline std::string_view peerIp(std::string_view peer_name) {
  return peer_name.substr(0, peer_name.rfind(':'));
}

}  // namespace imgate::core
