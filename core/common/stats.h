// SPDX-License-Identifier: Apache-2.0
// Process-wide statistics, exported as Prometheus text on the admin listener's /metrics.
// Everything here is lock-free on the data path (relaxed atomics); only creating a named
// counter takes a mutex, and that happens in compile(), never per message.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"

namespace imgate::core {

// Latency histogram with fixed bucket bounds in microseconds (Prometheus exports seconds).
class Histogram {
 public:
  static constexpr std::array<uint64_t, 14> kBoundsUs = {
      50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000};
  void observeUs(uint64_t us);
  void render(std::string& out, std::string_view name, std::string_view help) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBoundsUs.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

struct CoreCounters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_active{0};   // TCP connections of any kind
  std::atomic<uint64_t> sessions_active{0};      // upgraded sessions (WebSocket, ...)
  std::atomic<uint64_t> sessions_opened{0};
  std::atomic<uint64_t> handshakes_rejected{0};
  std::atomic<uint64_t> messages_in{0};
  std::atomic<uint64_t> messages_out{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> http_requests{0};
  std::atomic<uint64_t> pushes{0};
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::atomic<uint64_t> stage_dropped{0};
  std::atomic<uint64_t> stage_rejected{0};
  std::atomic<uint64_t> stage_paused{0};
  std::atomic<uint64_t> pause_timeouts{0};
  std::atomic<uint64_t> bugs{0};
  std::atomic<uint64_t> tls_handshake_errors{0};
  std::atomic<uint64_t> outbound_overflows{0};  // sessions closed as slow consumers
  std::atomic<uint64_t> outbound_dropped{0};    // pushes dropped for slow consumers (drop_new)
};

// Reliable delivery (docs/reliability.md).
struct DeliveryCounters {
  std::atomic<uint64_t> acks{0};                // acks received from clients
  std::atomic<uint64_t> retransmits{0};         // reliable messages sent again
  std::atomic<uint64_t> ack_timeouts{0};        // sessions closed: retransmissions exhausted
  std::atomic<uint64_t> resumes_recovered{0};   // streams resumed exactly
  std::atomic<uint64_t> resumes_impossible{0};  // epoch changed or history too short
  std::atomic<uint64_t> replayed{0};            // messages sent from history at open
  std::atomic<uint64_t> offline_delivered{0};   // of which stored while the user was offline
  std::atomic<uint64_t> duplicates{0};          // live copies skipped (already replayed)
  std::atomic<uint64_t> gaps_filled{0};         // out-of-order arrivals completed from history
  std::atomic<uint64_t> gaps_lost{0};           // ... whose missing messages were gone
  std::atomic<uint64_t> read_marks{0};          // read positions relayed to other devices
};

class StatsRegistry {
 public:
  static StatsRegistry& instance();

  CoreCounters& core() { return core_; }
  DeliveryCounters& delivery() { return delivery_; }
  Histogram& pushLatency() { return push_latency_; }
  // Session closes by reason.
  void countClose(Errc code) { closes_[static_cast<size_t>(code) % closes_.size()].fetch_add(1, std::memory_order_relaxed); }
  uint64_t closes(Errc code) const { return closes_[static_cast<size_t>(code) % closes_.size()].load(); }
  // A module's named counter, labelled with its instance. Kept for the life of the process
  // so totals survive reloads.
  Counter& counter(std::string_view name, std::string_view instance);
  // Gauges read at render time (users, rooms): set by the hub through this callback.
  void render(std::string& out, uint64_t users, uint64_t rooms, uint64_t log_errors) const;

 private:
  CoreCounters core_;
  DeliveryCounters delivery_;
  Histogram push_latency_;
  std::array<std::atomic<uint64_t>, 32> closes_{};
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Counter>> named_;
};

// Stats handed to one module instance: counters land under its instance label.
class InstanceStats final : public Stats {
 public:
  explicit InstanceStats(std::string instance) : instance_(std::move(instance)) {}
  Counter& counter(std::string_view name) override {
    return StatsRegistry::instance().counter(name, instance_);
  }

 private:
  std::string instance_;
};

}  // namespace imgate::core
