// SPDX-License-Identifier: Apache-2.0
#include "token_bucket.h"

#include <algorithm>

namespace imgate::mod::flow {

namespace {

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kMaxPeriodMs = 24 * 3600 * 1000;

// "1s", "250ms", "2m": the period as a short text (exact; the schema reads the same forms).
std::string periodText(int64_t period_us) {
  const int64_t ms = period_us / kUsPerMs;
  if (ms % 3'600'000 == 0) {
    return ms == 3'600'000 ? "h" : std::to_string(ms / 3'600'000) + "h";
  }
  if (ms % 60'000 == 0) {
    return ms == 60'000 ? "m" : std::to_string(ms / 60'000) + "m";
  }
  if (ms % 1000 == 0) {
    return ms == 1000 ? "s" : std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

}  // namespace

Result<Limit> Limit::make(int64_t count, std::chrono::milliseconds period, int64_t burst) {
  if (count < 1) {
    return fail(Errc::kInvalidConfig, "rate must be at least 1 per period");
  }
  if (period.count() < 1 || period.count() > kMaxPeriodMs) {
    return fail(Errc::kInvalidConfig, "rate period must be between 1ms and 1d");
  }
  if (burst < 1) {
    return fail(Errc::kInvalidConfig, "burst must be at least 1");
  }
  Limit limit;
  limit.count = count;
  limit.period_us = period.count() * kUsPerMs;
  limit.burst = burst;
  if (count > kMaxCredit || burst > kMaxCredit / limit.period_us) {
    return fail(Errc::kInvalidConfig, "burst " + std::to_string(burst) + " over a period of " +
                                          periodText(limit.period_us) + " is too large");
  }
  return limit;
}

std::string Limit::describe(std::string_view unit) const {
  std::string out = std::to_string(count);
  out.append(unit).append("/").append(periodText(period_us));
  out.append(" burst ").append(std::to_string(burst)).append(unit);
  return out;
}

TokenBucket::TokenBucket(const Limit& limit, Clock::time_point now)
    : credit_(limit.capacity()), last_us_(toMicros(now)), period_us_(limit.period_us) {}

void TokenBucket::rescale(const Limit& limit) {
  const int64_t cap = limit.capacity();
  if (period_us_ != limit.period_us) {
    // tokens = credit_ / period_us_, kept as whole tokens plus the fraction of one.
    const int64_t whole = credit_ / period_us_;
    const int64_t rem = credit_ % period_us_;
    if (whole >= limit.burst) {
      credit_ = cap;
    } else {
      const auto frac = static_cast<int64_t>(static_cast<long double>(rem) *
                                             static_cast<long double>(limit.period_us) /
                                             static_cast<long double>(period_us_));
      credit_ = whole * limit.period_us + std::min(frac, limit.period_us - 1);
    }
    period_us_ = limit.period_us;
  }
  credit_ = std::min(credit_, cap);
}

void TokenBucket::refillUs(const Limit& limit, int64_t now_us) {
  rescale(limit);
  if (now_us <= last_us_) {
    return;
  }
  const int64_t cap = limit.capacity();
  const auto need = static_cast<uint64_t>(cap - credit_);
  // Unsigned difference: exact for any two int64 values with now_us > last_us_.
  const uint64_t dt = static_cast<uint64_t>(now_us) - static_cast<uint64_t>(last_us_);
  const auto count = static_cast<uint64_t>(limit.count);
  if (dt >= (need + count - 1) / count) {
    credit_ = cap;
  } else {
    credit_ += static_cast<int64_t>(dt * count);  // < need, so no overflow
  }
  last_us_ = now_us;
}

void TokenBucket::refill(const Limit& limit, Clock::time_point now) {
  refillUs(limit, toMicros(now));
}

bool TokenBucket::take(const Limit& limit, Clock::time_point now, int64_t n) {
  refillUs(limit, toMicros(now));
  if (n <= 0) {
    return true;
  }
  if (n > limit.burst) {
    return false;
  }
  const int64_t cost = n * limit.period_us;
  if (credit_ < cost) {
    return false;
  }
  credit_ -= cost;
  return true;
}

void TokenBucket::give(const Limit& limit, int64_t n) {
  rescale(limit);
  if (n <= 0) {
    return;
  }
  const int64_t cap = limit.capacity();
  const int64_t cost = std::min(n, limit.burst) * limit.period_us;
  credit_ = cost >= cap - credit_ ? cap : credit_ + cost;
}

std::chrono::microseconds TokenBucket::retryAfter(const Limit& limit, Clock::time_point now,
                                                  int64_t n) const {
  if (n <= 0) {
    return std::chrono::microseconds(0);
  }
  if (n > limit.burst) {
    return std::chrono::microseconds::max();
  }
  TokenBucket probe = *this;
  probe.refillUs(limit, toMicros(now));
  const int64_t missing = n * limit.period_us - probe.credit_;
  if (missing <= 0) {
    return std::chrono::microseconds(0);
  }
  return std::chrono::microseconds((missing + limit.count - 1) / limit.count);
}

int64_t TokenBucket::available(const Limit& limit, Clock::time_point now) const {
  TokenBucket probe = *this;
  probe.refillUs(limit, toMicros(now));
  return probe.credit_ / probe.period_us_;
}

Clock::time_point TokenBucket::lastUpdate() const {
  return Clock::time_point(std::chrono::microseconds(last_us_));
}

}  // namespace imgate::mod::flow
