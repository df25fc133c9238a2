// SPDX-License-Identifier: Apache-2.0
// Admission control: the seeds' defence against reconnect avalanches. Every accepted socket is
// checked before any TLS or HTTP work, against process-wide limits (config `limits`):
//   max_connections          open client connections
//   max_connections_per_ip   open connections from one address
//   connect_rate / burst     new connections per second (token bucket)
//   max_handshakes           connections not yet past their handshake (TLS, HTTP request,
//                            WebSocket upgrade, in-band hello and auth)
// A refused socket is closed at once with a reset (SO_LINGER 0: no TIME_WAIT left behind), and
// counted by reason. Thread-safe: workers share one Admission.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace imgate::core {

struct AdmissionLimits {
  uint64_t max_connections = 1'000'000;  // 0: no limit
  uint32_t max_connections_per_ip = 0;   // 0: no limit
  uint32_t connect_rate = 0;             // per second; 0: no limit
  uint32_t connect_burst = 0;            // 0: the rate
  uint32_t max_handshakes = 10'000;      // 0: no limit
};

enum class AdmissionRefusal : uint8_t { kNone, kMaxConnections, kPerIp, kRate, kHandshakes };
inline constexpr size_t kAdmissionRefusalKinds = 5;
std::string_view admissionRefusalName(AdmissionRefusal r);

class Admission {
 public:
  static Admission& instance();

  // Decides for a socket from `ip` (address without port). On kNone the caller holds one
  // connection (and one per-IP slot, and one handshake slot) until it calls the releases below.
  // `now_us`: a monotonic clock, for the rate limit.
  AdmissionRefusal admit(const AdmissionLimits& limits, std::string_view ip, int64_t now_us);
  void handshakeDone();
  void connectionClosed(std::string_view ip);

  uint64_t refused(AdmissionRefusal r) const {
    return refused_[static_cast<size_t>(r)].load(std::memory_order_relaxed);
  }
  uint64_t handshakes() const { return handshakes_.load(std::memory_order_relaxed); }
  uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }
  // For tests: forget everything.
  void resetForTest();

 private:
  static constexpr size_t kShards = 64;
  // The per-IP table's key: the address's 16 bytes (IPv4 as ::ffff:a.b.c.d), so an entry is a
  // 32-byte node where a string key took 56. Text that is no address ("unix") keys as ::, one
  // shared entry.
  struct IpKey {
    uint64_t hi = 0;
    uint64_t lo = 0;
    bool operator==(const IpKey&) const = default;
  };
  struct IpKeyHash {
    size_t operator()(const IpKey& k) const noexcept;
  };
  static IpKey ipKey(std::string_view ip);
  struct Shard {
    std::mutex mu;
    std::unordered_map<IpKey, uint32_t, IpKeyHash> per_ip;
  };
  Shard& shard(const IpKey& key);
  bool takeToken(const AdmissionLimits& limits, int64_t now_us);

  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> handshakes_{0};
  std::mutex rate_mu_;
  double tokens_ = -1;  // -1: not started (full bucket)
  int64_t last_us_ = 0;
  std::array<Shard, kShards> shards_;
  std::array<std::atomic<uint64_t>, kAdmissionRefusalKinds> refused_{};
};

}  // namespace imgate::core
