// SPDX-License-Identifier: Apache-2.0
#include "rate_limiter.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

namespace imgate::mod::http_push {

namespace {

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kMaxPeriodMs = 24 * 3600 * 1000;

std::string periodText(int64_t period_us) {
  const int64_t ms = period_us / kUsPerMs;
  const auto unit = [ms](int64_t size, const char* name) {
    return ms == size ? std::string(name) : std::to_string(ms / size) + name;
  };
  if (ms % 86'400'000 == 0) {
    return unit(86'400'000, "d");
  }
  if (ms % 3'600'000 == 0) {
    return unit(3'600'000, "h");
  }
  if (ms % 60'000 == 0) {
    return unit(60'000, "m");
  }
  if (ms % 1000 == 0) {
    return unit(1000, "s");
  }
  return std::to_string(ms) + "ms";
}

int64_t micros(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// Weak references, so the registry never keeps a bucket alive on its own; dead entries are
// pruned on every lookup (one per key per config load: cheap).
struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<RateLimiter>, std::less<>> limiters;
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

Result<KeyLimit> KeyLimit::make(const Rate& rate, int64_t burst) {
  if (rate.count < 1) {
    return fail(Errc::kInvalidConfig, "rate must be at least 1 per period");
  }
  if (rate.per.count() < 1 || rate.per.count() > kMaxPeriodMs) {
    return fail(Errc::kInvalidConfig, "rate period must be between 1ms and 1d");
  }
  if (burst < 1) {
    return fail(Errc::kInvalidConfig, "burst must be at least 1");
  }
  KeyLimit limit;
  limit.count = rate.count;
  limit.period_us = rate.per.count() * kUsPerMs;
  limit.burst = burst;
  if (burst > kMaxCredit / limit.period_us) {
    return fail(Errc::kInvalidConfig, "burst " + std::to_string(burst) + " over a period of " +
                                          periodText(limit.period_us) + " is too large");
  }
  return limit;
}

std::string KeyLimit::describe() const {
  return std::to_string(count) + "/" + periodText(period_us) + " burst " + std::to_string(burst);
}

void RateLimiter::refillLocked(int64_t now_us) {
  const int64_t cap = limit_.burst * limit_.period_us;
  if (!started_) {
    started_ = true;
    credit_ = cap;
    last_us_ = now_us;
    return;
  }
  if (now_us <= last_us_) {
    return;
  }
  const auto need = static_cast<uint64_t>(cap - credit_);
  const uint64_t dt = static_cast<uint64_t>(now_us) - static_cast<uint64_t>(last_us_);
  const auto count = static_cast<uint64_t>(limit_.count);
  // Comparing before multiplying keeps dt * count from overflowing after a long idle time.
  if (dt >= (need + count - 1) / count) {
    credit_ = cap;
  } else {
    credit_ += static_cast<int64_t>(dt * count);
  }
  last_us_ = now_us;
}

RateLimiter::Take RateLimiter::tryTake(int64_t n, Clock::time_point now) {
  if (n <= 0) {
    return {true, std::chrono::microseconds(0)};
  }
  if (n > limit_.burst) {
    return {false, std::chrono::microseconds::max()};
  }
  std::lock_guard lock(mu_);
  refillLocked(micros(now));
  const int64_t cost = n * limit_.period_us;
  if (credit_ >= cost) {
    credit_ -= cost;
    return {true, std::chrono::microseconds(0)};
  }
  const int64_t missing = cost - credit_;
  return {false, std::chrono::microseconds((missing + limit_.count - 1) / limit_.count)};
}

void RateLimiter::giveBack(int64_t n) {
  if (n <= 0) {
    return;
  }
  std::lock_guard lock(mu_);
  const int64_t cap = limit_.burst * limit_.period_us;
  const int64_t back = std::min(n, limit_.burst) * limit_.period_us;
  credit_ = back >= cap - credit_ ? cap : credit_ + back;
}

int64_t RateLimiter::available(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  if (!started_) {
    return limit_.burst;
  }
  RateLimiter probe(limit_);
  probe.started_ = true;
  probe.credit_ = credit_;
  probe.last_us_ = last_us_;
  probe.refillLocked(micros(now));
  return probe.credit_ / limit_.period_us;
}

RateLimiterSharedPtr sharedLimiter(std::string_view instance, std::string_view key,
                                   const KeyLimit& limit) {
  // Length-prefixed parts: no choice of instance or key can make two entries collide.
  std::string name = std::to_string(instance.size()) + ":";
  name.append(instance).append(std::to_string(key.size())).append(":").append(key);
  name.append(limit.describe()).append("/").append(std::to_string(limit.period_us));
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::erase_if(r.limiters, [](const auto& kv) { return kv.second.expired(); });
  if (auto it = r.limiters.find(name); it != r.limiters.end()) {
    if (RateLimiterSharedPtr limiter = it->second.lock()) {
      return limiter;
    }
  }
  auto limiter = std::make_shared<RateLimiter>(limit);
  r.limiters[name] = limiter;
  return limiter;
}

int64_t retryAfterSeconds(std::chrono::microseconds wait) {
  constexpr int64_t kUsPerS = 1'000'000;
  if (wait.count() <= 0) {
    return 1;
  }
  if (wait == std::chrono::microseconds::max()) {
    return std::numeric_limits<int32_t>::max();
  }
  return std::max<int64_t>(1, (wait.count() + kUsPerS - 1) / kUsPerS);
}

}  // namespace imgate::mod::http_push
