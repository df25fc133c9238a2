// SPDX-License-Identifier: Apache-2.0
// Health and counters of one backend of one upstream group, shared by every worker and the
// health checker, and kept across reloads: a reload that keeps a backend (same group name,
// same address) gets the same BackendState back, so its health, ejection and totals survive.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace imgate::core::upstream {

// Monotonic milliseconds (steady_clock); the time base of ejected_until_ms.
int64_t steadyMs();

// All fields are relaxed atomics: each is a counter or a flag read independently, and a stale
// read only shifts one routing decision.
struct BackendState {
  BackendState(std::string group_name, std::string backend_address)
      : group(std::move(group_name)), address(std::move(backend_address)) {}
  BackendState(const BackendState&) = delete;
  BackendState& operator=(const BackendState&) = delete;

  const std::string group;
  const std::string address;  // "host:port" as written

  // Verdict of active health checks (true when checks are off or before the first ones).
  std::atomic<bool> healthy{true};
  // Failures in a row seen by live traffic (passive checks); reset by any success.
  std::atomic<uint32_t> consecutive_failures{0};
  // Passive ejection: not picked before this steadyMs() value (0 = not ejected).
  std::atomic<int64_t> ejected_until_ms{0};
  // Requests currently sent or being sent to this backend, over all workers.
  std::atomic<int64_t> in_flight{0};

  // Totals for metrics (attempts, so a retried call counts once per backend tried).
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> ejections{0};
  std::atomic<uint64_t> latency_us_sum{0};
  std::atomic<uint64_t> latency_count{0};

  // Active health check streaks; written only on the health checker's thread.
  std::atomic<uint32_t> check_successes{0};
  std::atomic<uint32_t> check_failures{0};

  // Healthy by active checks and not ejected at `now_ms`.
  bool available(int64_t now_ms) const {
    return healthy.load(std::memory_order_relaxed) &&
           ejected_until_ms.load(std::memory_order_relaxed) <= now_ms;
  }
  void recordSuccess(std::chrono::microseconds latency);
  // Counts a failure; after `threshold` failures in a row (0: never) ejects the backend until
  // now_ms + ejection and returns true.
  bool recordFailure(int64_t now_ms, uint32_t threshold, std::chrono::milliseconds ejection);
};

// Process-wide map (group, address) -> BackendState. Holds weak references: a state lives as
// long as some compiled group uses it, and a backend removed by a reload disappears from
// metrics once the last generation using it is gone. Thread-safe (a mutex; used at compile
// time and when metrics are rendered, never per request).
class BackendRegistry {
 public:
  static BackendRegistry& instance();

  // The live state for (group, address), or a new one.
  std::shared_ptr<BackendState> get(const std::string& group, const std::string& address);
  // Live states, ordered by group then address.
  std::vector<std::shared_ptr<BackendState>> snapshot();

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::weak_ptr<BackendState>> states_;
};

// Prometheus text for every live backend of `registry`:
//   imgate_upstream_requests_total, _failures_total, _retries_total, _ejections_total
//   (counters), imgate_upstream_healthy (1 when available now), imgate_upstream_in_flight
//   (gauges), imgate_upstream_latency_seconds_sum / _count; labels {group, backend}.
// Appends to `out`; nothing is written when there is no backend.
void renderUpstreamMetrics(std::string& out,
                           BackendRegistry& registry = BackendRegistry::instance());

}  // namespace imgate::core::upstream
