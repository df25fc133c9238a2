// SPDX-License-Identifier: Apache-2.0
#pragma once

// Log-linear latency histogram (HdrHistogram's idea, reduced): values are nanoseconds; each
// power of two above 128 is split into 128 linear buckets, so a reported percentile is within
// 0.8% of the true value. Fixed size (about 35 KiB), no allocation while recording; one per
// thread, merged at the end.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace imgate::bench::load {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t(1) << kSubBits;  // 128
  static constexpr int kShifts = 64 - kSubBits;
  static constexpr size_t kBuckets = kSub + size_t(kShifts) * kSub;

  void record(uint64_t value) {
    ++counts_[index(value)];
    ++count_;
    sum_ += value;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) {
      counts_[i] += other.counts_[i];
    }
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return count_ == 0 ? 0 : max_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  double mean() const { return count_ == 0 ? 0.0 : double(sum_) / double(count_); }

  // The value at quantile q in [0, 1]: the upper edge of the bucket holding the rank, clamped
  // to the exact maximum (so percentiles never exceed max).
  uint64_t quantile(double q) const {
    if (count_ == 0) {
      return 0;
    }
    q = std::clamp(q, 0.0, 1.0);
    uint64_t rank = uint64_t(q * double(count_) + 0.5);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        return std::clamp(upperEdge(i), min_, max_);
      }
    }
    return max_;
  }

  static size_t index(uint64_t v) {
    if (v < kSub) {
      return size_t(v);
    }
    const int shift = std::bit_width(v) - (kSubBits + 1);  // keeps the top 8 bits
    return size_t(kSub) + size_t(shift) * kSub + size_t((v >> shift) - kSub);
  }

  static uint64_t upperEdge(size_t i) {
    if (i < kSub) {
      return i;
    }
    const size_t shift = (i - kSub) / kSub;
    const uint64_t top = kSub + (i - kSub) % kSub;
    return ((top + 1) << shift) - 1;
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace imgate::bench::load
