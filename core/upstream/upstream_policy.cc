// SPDX-License-Identifier: Apache-2.0
#include "upstream/upstream_policy.h"

#include <algorithm>
#include <cmath>

namespace imgate::core::upstream {

uint64_t hashString(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

int SmoothRoundRobin::pick(std::span<const uint32_t> weights, const std::vector<bool>& eligible) {
  if (current_.size() != weights.size()) {
    current_.assign(weights.size(), 0);
  }
  int best = -1;
  int64_t total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (i >= eligible.size() || !eligible[i]) {
      continue;
    }
    current_[i] += weights[i];
    total += weights[i];
    if (best < 0 || current_[i] > current_[static_cast<size_t>(best)]) {
      best = static_cast<int>(i);
    }
  }
  if (best >= 0) {
    current_[static_cast<size_t>(best)] -= total;
  }
  return best;
}

int pickLeastInFlight(std::span<const uint32_t> weights, std::span<const int64_t> in_flight,
                      const std::vector<bool>& eligible, size_t start) {
  const size_t n = std::min(weights.size(), in_flight.size());
  int best = -1;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (i >= eligible.size() || !eligible[i]) {
      continue;
    }
    if (best < 0) {
      best = static_cast<int>(i);
      continue;
    }
    const auto b = static_cast<size_t>(best);
    // in_flight[i] / weights[i] < in_flight[b] / weights[b], without division.
    if (in_flight[i] * static_cast<int64_t>(weights[b]) <
        in_flight[b] * static_cast<int64_t>(weights[i])) {
      best = static_cast<int>(i);
    }
  }
  return best;
}

HashRing::HashRing(std::span<const std::string> addresses, std::span<const uint32_t> weights)
    : backends_(std::min(addresses.size(), weights.size())) {
  uint64_t total = 0;
  for (size_t i = 0; i < backends_; ++i) {
    total += weights[i];
  }
  if (total == 0) {
    return;
  }
  for (size_t i = 0; i < backends_; ++i) {
    const double share = static_cast<double>(weights[i]) * static_cast<double>(backends_) /
                         static_cast<double>(total);
    const auto points =
        std::max<uint32_t>(1, static_cast<uint32_t>(std::lround(share * kPointsPerBackend)));
    for (uint32_t p = 0; p < points; ++p) {
      ring_.emplace_back(hashString(addresses[i] + "#" + std::to_string(p)),
                         static_cast<uint32_t>(i));
    }
  }
  std::sort(ring_.begin(), ring_.end());
}

int HashRing::pick(std::string_view key, const std::vector<bool>& eligible) const {
  if (ring_.empty()) {
    return -1;
  }
  const uint64_t h = hashString(key);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(h, uint32_t{0}));
  size_t pos = static_cast<size_t>(it - ring_.begin()) % ring_.size();
  for (size_t k = 0; k < ring_.size(); ++k) {
    const uint32_t idx = ring_[pos].second;
    if (idx < eligible.size() && eligible[idx]) {
      return static_cast<int>(idx);
    }
    pos = (pos + 1) % ring_.size();
  }
  return -1;
}

}  // namespace imgate::core::upstream
