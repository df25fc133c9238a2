// SPDX-License-Identifier: Apache-2.0
// The monotonic clock in microseconds: push latency stamps, timer deadlines.
#pragma once

#include <chrono>
#include <cstdint>

namespace imgate::core {

inline int64_t steadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace imgate::core
