// SPDX-License-Identifier: Apache-2.0
// The per-key request limit of the push API: a token bucket shared by every worker, driven by
// the clock the caller passes (HttpExchange::dispatcher().now()), so tests use simulated time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "imgate/sdk/config.h"
#include "imgate/sdk/status.h"

namespace imgate::mod::http_push {

using Clock = std::chrono::steady_clock;

// `count` tokens are earned every `period_us`, up to `burst`. Only make() builds one, so
// count >= 1, period_us >= 1000, burst >= 1 and burst * period_us <= kMaxCredit always hold.
struct KeyLimit {
  // The bucket holds tokens * period_us in an int64; this bound keeps every sum below 2^63.
  static constexpr int64_t kMaxCredit = int64_t{1} << 62;

  int64_t count = 1;
  int64_t period_us = 1'000'000;
  int64_t burst = 1;

  // Errors (kInvalidConfig): a zero count, a period outside 1ms..1d, burst < 1, and a burst
  // too large for the period (burst * period beyond kMaxCredit).
  [[nodiscard]] static Result<KeyLimit> make(const Rate& rate, int64_t burst);

  // "1000/s burst 2000", for reasons and logs.
  std::string describe() const;

  friend bool operator==(const KeyLimit&, const KeyLimit&) = default;
};

// One bucket. Thread-safe: the compiled config, and so the bucket, is shared by all workers.
// Starts full at its first use. Workers cache their clocks per loop turn, so a bucket may see
// a `now` slightly older than its last update: time never runs backwards for it (nothing is
// earned, nothing is lost).
class RateLimiter {
 public:
  explicit RateLimiter(const KeyLimit& limit) : limit_(limit) {}

  struct Take {
    bool taken = false;
    // When refused: how long until `n` tokens would be there if nobody else took any;
    // microseconds::max() when n > burst (never).
    std::chrono::microseconds wait{0};
  };

  // Takes `n` tokens if all of them are there now (all or nothing). n <= 0 always succeeds.
  Take tryTake(int64_t n, Clock::time_point now);
  // Returns `n` tokens taken earlier (capped at the burst), for a request refused later on.
  void giveBack(int64_t n);
  // Whole tokens available at `now` (does not change the bucket).
  int64_t available(Clock::time_point now) const;

  const KeyLimit& limit() const { return limit_; }

 private:
  void refillLocked(int64_t now_us);

  const KeyLimit limit_;
  mutable std::mutex mu_;
  bool started_ = false;
  int64_t credit_ = 0;   // tokens * period_us
  int64_t last_us_ = 0;  // steady clock, microseconds
};
using RateLimiterSharedPtr = std::shared_ptr<RateLimiter>;

// The bucket for (`instance`, `key`, `limit`): the one the previous configuration of this
// location used if it is still alive and has the same limit, else a new one. So a reload keeps
// a key's bucket unless its rate or burst changed (a reload must not hand out a fresh burst).
// Called by compile() on the main thread; thread-safe anyway.
RateLimiterSharedPtr sharedLimiter(std::string_view instance, std::string_view key,
                                   const KeyLimit& limit);

// Seconds for a Retry-After header: rounded up, at least 1.
int64_t retryAfterSeconds(std::chrono::microseconds wait);

}  // namespace imgate::mod::http_push
