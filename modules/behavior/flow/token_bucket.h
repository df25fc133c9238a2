// SPDX-License-Identifier: Apache-2.0
// Token-bucket arithmetic for the flow stage: pure, integer, and driven by whatever clock the
// caller passes, so every boundary can be unit-tested with simulated time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "imgate/sdk/config.h"
#include "imgate/sdk/status.h"

namespace imgate::mod::flow {

using Clock = std::chrono::steady_clock;

// A rate and a capacity: `count` tokens are added every `period`, up to `burst` tokens.
// Only Limit::make() builds one, so the invariants below always hold:
//   count >= 1, period_us >= 1, burst >= 1, burst * period_us <= kMaxCredit.
struct Limit {
  // Credit is held as tokens * period_us in an int64; this bound keeps every sum and product
  // the bucket computes below 2^63. A burst of 1e9 messages per day, or 1 TiB of bytes per
  // second, still fits.
  static constexpr int64_t kMaxCredit = int64_t{1} << 62;

  int64_t count = 1;
  int64_t period_us = 1'000'000;
  int64_t burst = 1;

  // Errors (kInvalidConfig, lower case): zero or negative values, a period below 1 ms or
  // above 1 day, and burst * period beyond kMaxCredit.
  [[nodiscard]] static Result<Limit> make(int64_t count, std::chrono::milliseconds period,
                                          int64_t burst);
  [[nodiscard]] static Result<Limit> make(const Rate& rate, int64_t burst) {
    return make(rate.count, rate.per, burst);
  }

  int64_t capacity() const { return burst * period_us; }
  // Time for an empty bucket to fill up completely (rounded up to a whole microsecond).
  std::chrono::microseconds fillTime() const {
    return std::chrono::microseconds((capacity() + count - 1) / count);
  }
  // "20/s burst 40" style, for log lines and reasons.
  std::string describe(std::string_view unit) const;

  friend bool operator==(const Limit&, const Limit&) = default;
};

// One bucket: 24 bytes of state. It does not keep its Limit, because the limit belongs to the
// compiled configuration while the bucket may outlive it (state survives a reload that changes
// rate or burst): every call takes the limit to apply now. A bucket remembers the period its
// credit is scaled by, so a limit with another period rescales it on the next call (tokens are
// kept, then clamped to the new burst).
//
// Time never runs backwards for a bucket: a `now` earlier than the last update (workers cache
// their clocks per loop turn, so a shared bucket can see slightly stale times) adds nothing.
// Not thread-safe: the owner (BucketTable) locks around it.
class TokenBucket {
 public:
  // Starts full at `now`.
  TokenBucket(const Limit& limit, Clock::time_point now);

  // Adds the tokens earned since the last update, capped at the burst.
  void refill(const Limit& limit, Clock::time_point now);
  // Refills, then takes `n` tokens if all of them are there (all or nothing). n <= 0 always
  // succeeds and takes nothing; n > burst can never succeed.
  bool take(const Limit& limit, Clock::time_point now, int64_t n);
  // Gives back `n` tokens taken earlier (capped at the burst): for a message another bucket
  // refused after this one had admitted it.
  void give(const Limit& limit, int64_t n);
  // How long until take(n) would succeed if nothing else took tokens: zero when it would
  // succeed now, microseconds::max() when n > burst (never).
  std::chrono::microseconds retryAfter(const Limit& limit, Clock::time_point now,
                                       int64_t n) const;
  // Whole tokens available at `now` (does not change the bucket).
  int64_t available(const Limit& limit, Clock::time_point now) const;
  Clock::time_point lastUpdate() const;

 private:
  void rescale(const Limit& limit);
  void refillUs(const Limit& limit, int64_t now_us);

  int64_t credit_;     // tokens * period_us_
  int64_t last_us_;    // steady clock, microseconds
  int64_t period_us_;  // the period credit_ is scaled by
};

inline int64_t toMicros(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace imgate::mod::flow
