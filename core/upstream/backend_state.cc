// SPDX-License-Identifier: Apache-2.0
#include "upstream/backend_state.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace imgate::core::upstream {

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void BackendState::recordSuccess(std::chrono::microseconds latency) {
  consecutive_failures.store(0, std::memory_order_relaxed);
  latency_us_sum.fetch_add(static_cast<uint64_t>(std::max<int64_t>(latency.count(), 0)),
                           std::memory_order_relaxed);
  latency_count.fetch_add(1, std::memory_order_relaxed);
}

bool BackendState::recordFailure(int64_t now_ms, uint32_t threshold,
                                 std::chrono::milliseconds ejection) {
  failures.fetch_add(1, std::memory_order_relaxed);
  const uint32_t n = consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (threshold == 0 || n < threshold) {
    return false;
  }
  // Reset the streak so a re-admitted backend needs `threshold` new failures to go out again.
  consecutive_failures.store(0, std::memory_order_relaxed);
  ejected_until_ms.store(now_ms + ejection.count(), std::memory_order_relaxed);
  ejections.fetch_add(1, std::memory_order_relaxed);
  return true;
}

BackendRegistry& BackendRegistry::instance() {
  static BackendRegistry registry;
  return registry;
}

std::shared_ptr<BackendState> BackendRegistry::get(const std::string& group,
                                                   const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = states_[{group, address}];
  if (auto live = slot.lock()) {
    return live;
  }
  auto state = std::make_shared<BackendState>(group, address);
  slot = state;
  // Drop entries of backends no generation uses any more, so the map stays bounded by the
  // backends configured over time that are still alive.
  for (auto it = states_.begin(); it != states_.end();) {
    it = it->second.expired() ? states_.erase(it) : std::next(it);
  }
  return state;
}

std::vector<std::shared_ptr<BackendState>> BackendRegistry::snapshot() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<BackendState>> out;
  for (auto& [key, weak] : states_) {
    if (auto live = weak.lock()) {
      out.push_back(std::move(live));
    }
  }
  return out;
}

namespace {

std::string escapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void renderUpstreamMetrics(std::string& out, BackendRegistry& registry) {
  const auto states = registry.snapshot();
  if (states.empty()) {
    return;
  }
  const int64_t now = steadyMs();
  std::vector<std::string> labels;
  labels.reserve(states.size());
  for (const auto& s : states) {
    labels.push_back("{group=\"" + escapeLabel(s->group) + "\",backend=\"" +
                     escapeLabel(s->address) + "\"}");
  }
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    for (size_t i = 0; i < states.size(); ++i) {
      out += name;
      out += labels[i];
      out += ' ';
      out += value(*states[i]);
      out += '\n';
    }
  };
  auto load = [](const std::atomic<uint64_t>& a) {
    return std::to_string(a.load(std::memory_order_relaxed));
  };
  family("imgate_upstream_requests_total", "counter", "requests sent to the backend (attempts)",
         [&](const BackendState& s) { return load(s.requests); });
  family("imgate_upstream_failures_total", "counter",
         "attempts that failed (connect error, timeout, bad response, 5xx)",
         [&](const BackendState& s) { return load(s.failures); });
  family("imgate_upstream_retries_total", "counter", "attempts that were retries",
         [&](const BackendState& s) { return load(s.retries); });
  family("imgate_upstream_ejections_total", "counter", "passive ejections",
         [&](const BackendState& s) { return load(s.ejections); });
  family("imgate_upstream_healthy", "gauge",
         "1 when the backend passes health checks and is not ejected",
         [&](const BackendState& s) { return std::string(s.available(now) ? "1" : "0"); });
  family("imgate_upstream_in_flight", "gauge", "requests in flight over all workers",
         [&](const BackendState& s) {
           return std::to_string(s.in_flight.load(std::memory_order_relaxed));
         });
  family("imgate_upstream_latency_seconds_sum", "counter",
         "total time of successful responses", [&](const BackendState& s) {
           char buf[32];
           std::snprintf(buf, sizeof buf, "%.6f",
                         static_cast<double>(s.latency_us_sum.load(std::memory_order_relaxed)) /
                             1e6);
           return std::string(buf);
         });
  family("imgate_upstream_latency_seconds_count", "counter", "successful responses timed",
         [&](const BackendState& s) { return load(s.latency_count); });
}

}  // namespace imgate::core::upstream
