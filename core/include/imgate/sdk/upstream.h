// SPDX-License-Identifier: Apache-2.0
// Upstreams: named groups of backend HTTP servers owned by the core (DESIGN.md §1). Modules call
// a group by name; the core picks a backend (policy, health, retries, circuit breaking) and hands
// the answer back on the caller's worker thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/http.h"
#include "imgate/sdk/status.h"

namespace imgate {

struct UpstreamRequest {
  std::string method = "POST";
  std::string path = "/";           // origin-form, e.g. "/im/chat.send?x=1"
  std::vector<HttpHeader> headers;  // Host, Content-Length and Connection are set by the core
  std::string body;
  std::string hash_key;             // consistent_hash policy: requests with one key stick
  std::chrono::milliseconds timeout{0};  // 0: the group's `timeout`
};

struct UpstreamResponse {
  int status = 0;
  std::vector<HttpHeader> headers;  // names lower case
  std::string body;
  std::string backend;              // "host:port" that answered
};

using UpstreamCallback = std::function<void(Result<UpstreamResponse>)>;

class Upstreams {
 public:
  // True when the running configuration has a group of that name.
  virtual bool has(std::string_view group) const = 0;
  // Sends `request` to a backend of `group`. `done` runs exactly once on this thread, never inside
  // call(), with the answer (any HTTP status) or an error: kUnavailable (unknown group, no healthy
  // backend, circuit open), kTimeout, kInternal (unreadable answer). When called through
  // StageCallbacks, `done` is dropped without running if the session closes or its stages are
  // replaced by a reload first, so it may capture the stage.
  virtual void call(std::string_view group, UpstreamRequest request, UpstreamCallback done) = 0;

 protected:
  ~Upstreams() = default;
};

}  // namespace imgate
