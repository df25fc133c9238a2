// SPDX-License-Identifier: Apache-2.0
// Backend selection policies, pure and clock-free so they can be tested in isolation. The
// client builds an `eligible` mask per pick (available, not tried yet by this call) and asks a
// policy for one index; -1 means no eligible backend.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgate::core::upstream {

// 64-bit hash of a string (FNV-1a followed by a splitmix64 finaliser for avalanche). Stable
// across processes and builds: hash keys must map to the same backend on every instance.
uint64_t hashString(std::string_view text);

// nginx's smooth weighted round robin: over any window of sum(weights) picks with all
// backends eligible, backend i is chosen exactly weights[i] times, and picks are interleaved
// rather than bunched (5,1,1 gives a a b a c a a). Ineligible backends are skipped without
// disturbing the others' shares. One per group per worker; not thread-safe.
class SmoothRoundRobin {
 public:
  int pick(std::span<const uint32_t> weights, const std::vector<bool>& eligible);

 private:
  std::vector<int64_t> current_;
};

// Weighted least-in-flight: the eligible backend with the smallest in_flight / weight; ties go
// to the first at or after `start` (the caller rotates it so ties spread).
int pickLeastInFlight(std::span<const uint32_t> weights, std::span<const int64_t> in_flight,
                      const std::vector<bool>& eligible, size_t start);

// Consistent-hash ring with virtual nodes (ketama-like). Each backend gets about
// kPointsPerBackend points scaled by its share of the total weight, placed by hashing
// "<address>#<n>", so adding or removing one backend moves only the keys that land on its
// points (about 1/N of them) and leaves every other key where it was. Immutable once built.
class HashRing {
 public:
  static constexpr uint32_t kPointsPerBackend = 160;

  HashRing() = default;
  HashRing(std::span<const std::string> addresses, std::span<const uint32_t> weights);

  // The owner of `key`, or the first eligible backend clockwise after it; -1 when none is
  // eligible.
  int pick(std::string_view key, const std::vector<bool>& eligible) const;
  size_t points() const { return ring_.size(); }

 private:
  std::vector<std::pair<uint64_t, uint32_t>> ring_;  // (point, backend index), sorted
  size_t backends_ = 0;
};

}  // namespace imgate::core::upstream
