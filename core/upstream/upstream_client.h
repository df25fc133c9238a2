// SPDX-License-Identifier: Apache-2.0
// The per-worker half of upstreams: keep-alive connection pools per backend, backend choice by
// the group's policy, retries, timeouts, the circuit breaker and passive ejection. One client
// per EventLoop (each worker, plus the main loop for health checks); it only ever runs on that
// loop's thread and shares nothing with other clients except the BackendStates (atomics).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/http.h"
#include "imgate/sdk/status.h"
#include "imgate/sdk/upstream.h"
#include "upstream/upstream_config.h"

namespace imgate::core {
class EventLoop;
}

namespace imgate::core::upstream {

// UpstreamRequest, UpstreamResponse and UpstreamCallback are the SDK's (imgate/sdk/upstream.h).
// The client owns and drops these request headers: Host, Content-Length, Connection,
// Keep-Alive, Transfer-Encoding, TE, Upgrade. Names and values holding CR, LF or NUL make the
// call fail with kBadRequest. An empty hash_key under consistent_hash falls back to round robin.

// Outcome rules of call():
//   - A 2xx-4xx answer is returned as is. A 5xx is retried on another backend when the method
//     is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE); when it is not, or when retries
//     run out, the last 5xx response is returned as a success value (the caller decides).
//   - Connect errors (refused, connect_timeout) and anything that fails before a byte of the
//     request was written are retried for every method; timeouts, resets and bad responses
//     after the request was (partly) written only for idempotent methods.
//   - Retries go to backends this call has not tried yet, at most `retries` of them, and only
//     while the group's retry budget on this worker allows (see upstream_config.cc).
//   - Errors: kUnavailable ("no healthy backend in group g", "circuit open: N pending",
//     connect failures, connection closed by the backend), kTimeout (no whole response within
//     the attempt's timeout), kInternal (malformed or oversized response), kBadRequest (a
//     request the client refuses to send), kShutdown (the client was destroyed).
//   - Passive checks: a 5xx, connect error, timeout, reset or bad response counts as a failure
//     of that backend; `passive.consecutive_failures` in a row eject it for
//     `passive.ejection_time` (all workers see it), after which it is picked again.
class UpstreamClient {
 public:
  explicit UpstreamClient(EventLoop& loop);
  // Runs every pending callback with kShutdown (synchronously, on this thread) and closes every
  // connection. Must not be called from inside a callback of this client.
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // Thread: the loop's. `group` must be owned by a shared_ptr (as compileUpstreams makes it);
  // the client keeps it alive until `done` has run. `done` runs exactly once, on this thread,
  // never synchronously inside call().
  void call(const GroupConfig& group, UpstreamRequest req, UpstreamCallback done);

  // By name, for Worker::callUpstream: an unknown group (or a null set) gets kUnavailable
  // "no upstream group named \"<group>\"", posted like any other answer.
  void call(const UpstreamSet* set, std::string_view group, UpstreamRequest req,
            UpstreamCallback done);

  // One attempt to backends[index] regardless of its health, with no retry, breaker or
  // passive accounting and no BackendState counters: for the health checker.
  void probe(const GroupConfig& group, size_t index, UpstreamRequest req, UpstreamCallback done);

  // ---- Introspection (tests, /status) -------------------------------------------------------
  size_t openConnections() const;    // connecting, busy and idle
  size_t idleConnections() const;
  uint64_t connectionsOpened() const;  // TCP connections started since construction
  size_t pending(std::string_view group) const;  // in flight + queued on this worker

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace imgate::core::upstream
