// SPDX-License-Identifier: Apache-2.0
#pragma once

// The uplink scenario's backend: a minimal HTTP/1.1 keep-alive server on one epoll thread that
// answers every request 200 {"ok":true} (the route stage turns that into the client's ack). It
// counts requests and nothing else, so it is never the bottleneck it would be in Python.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <unordered_map>

#include "options.h"

namespace imgate::bench::load {

class TestBackend {
 public:
  explicit TestBackend(Endpoint listen);
  ~TestBackend();
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  // Binds and starts the thread; returns an error message, or "" on success.
  std::string start();
  void stop();

  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> errors{0};  // malformed requests, oversized heads

 private:
  void loop();
  void onReadable(int fd);
  void closeFd(int fd);

  Endpoint listen_;
  int listen_fd_ = -1;
  int epfd_ = -1;
  std::atomic<bool> stop_{false};
  std::unordered_map<int, std::string> buffers_;  // per connection: unparsed input
  std::unordered_map<int, std::string> pending_;  // per connection: unsent output
  std::thread thread_;
};

}  // namespace imgate::bench::load
