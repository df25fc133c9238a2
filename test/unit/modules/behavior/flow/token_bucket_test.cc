// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/flow/token_bucket.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <random>

namespace imgate::mod::flow {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Simulated time: an arbitrary, non-zero origin so nothing depends on the epoch.
const Clock::time_point kT0 = Clock::time_point(std::chrono::hours(1000));

Limit limit(int64_t count, milliseconds per, int64_t burst) {
  auto l = Limit::make(count, per, burst);
  EXPECT_TRUE(l.has_value()) << l.error().message;
  return *l;
}

TEST(FlowTokenBucketTest, MakeRefusesBadLimits) {
  EXPECT_FALSE(Limit::make(0, milliseconds(1000), 1));
  EXPECT_FALSE(Limit::make(1, milliseconds(0), 1));
  EXPECT_FALSE(Limit::make(1, milliseconds(1000), 0));
  EXPECT_FALSE(Limit::make(1, milliseconds(24 * 3600 * 1000 + 1), 1));
  auto too_big = Limit::make(1, milliseconds(24 * 3600 * 1000), int64_t{1} << 40);
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, Errc::kInvalidConfig);
  EXPECT_NE(too_big.error().message.find("too large"), std::string::npos);
  // The largest values the schema allows still fit.
  EXPECT_TRUE(Limit::make(1, milliseconds(24 * 3600 * 1000), 1'000'000'000 / 20));
  EXPECT_TRUE(Limit::make(int64_t{1} << 40, milliseconds(1000), int64_t{1} << 40));
}

TEST(FlowTokenBucketTest, DescribeUsesThePeriodAsWritten) {
  EXPECT_EQ(limit(20, milliseconds(1000), 40).describe(""), "20/s burst 40");
  EXPECT_EQ(limit(1200, milliseconds(60'000), 5).describe(""), "1200/m burst 5");
  EXPECT_EQ(limit(3, milliseconds(10'000), 3).describe(""), "3/10s burst 3");
  EXPECT_EQ(limit(1024, milliseconds(1000), 4096).describe("B"), "1024B/s burst 4096B");
}

TEST(FlowTokenBucketTest, BurstIsExhaustedAtMessageBurstPlusOne) {
  for (int64_t burst : {1, 2, 5, 20, 1000}) {
    const Limit l = limit(10, milliseconds(1000), burst);
    TokenBucket b(l, kT0);
    for (int64_t i = 0; i < burst; ++i) {
      ASSERT_TRUE(b.take(l, kT0, 1)) << "burst " << burst << " message " << i + 1;
    }
    EXPECT_FALSE(b.take(l, kT0, 1)) << "burst " << burst;
    EXPECT_EQ(b.available(l, kT0), 0);
  }
}

TEST(FlowTokenBucketTest, OneTokenComesBackAfterExactlyOneOverRate) {
  // 20/s: 50 ms per token; 1200/m: also 50 ms; 3/10s: 3333.334 ms (rounded up to the µs).
  struct Case {
    int64_t count;
    milliseconds per;
    microseconds interval;
  };
  for (const Case& c : {Case{20, milliseconds(1000), microseconds(50'000)},
                        Case{1200, milliseconds(60'000), microseconds(50'000)},
                        Case{3, milliseconds(10'000), microseconds(3'333'334)},
                        Case{1, milliseconds(1), microseconds(1000)}}) {
    const Limit l = limit(c.count, c.per, 2);
    TokenBucket b(l, kT0);
    ASSERT_TRUE(b.take(l, kT0, 2));
    EXPECT_EQ(b.retryAfter(l, kT0, 1), c.interval);
    EXPECT_FALSE(b.take(l, kT0 + c.interval - microseconds(1), 1)) << c.count;
    EXPECT_TRUE(b.take(l, kT0 + c.interval, 1)) << c.count;
    EXPECT_FALSE(b.take(l, kT0 + c.interval, 1)) << c.count;
  }
}

TEST(FlowTokenBucketTest, RefillIsCappedAtTheBurst) {
  const Limit l = limit(10, milliseconds(1000), 3);
  TokenBucket b(l, kT0);
  ASSERT_TRUE(b.take(l, kT0, 3));
  const Clock::time_point later = kT0 + std::chrono::hours(24 * 365);
  b.refill(l, later);
  EXPECT_EQ(b.available(l, later), 3);
  EXPECT_TRUE(b.take(l, later, 3));
  EXPECT_FALSE(b.take(l, later, 1));
  EXPECT_EQ(b.lastUpdate(), later);
}

TEST(FlowTokenBucketTest, PartialRefillAccumulatesWithoutDrift) {
  // 3 tokens per 10 s do not divide into whole microseconds; a million tiny steps must still
  // add up to exactly the tokens earned, not more and not fewer.
  const Limit l = limit(3, milliseconds(10'000), 100);
  TokenBucket b(l, kT0);
  ASSERT_TRUE(b.take(l, kT0, 100));
  Clock::time_point t = kT0;
  for (int i = 0; i < 1'000'000; ++i) {
    t += microseconds(7);
    b.refill(l, t);
  }
  // 7 s at 0.3/s = 2.1 tokens.
  EXPECT_EQ(b.available(l, t), 2);
  EXPECT_TRUE(b.take(l, t, 2));
  EXPECT_FALSE(b.take(l, t, 1));
  // The remaining 0.1 token plus 0.9 more = 3 s.
  EXPECT_FALSE(b.take(l, t + milliseconds(3000) - microseconds(1), 1));
  EXPECT_TRUE(b.take(l, t + milliseconds(3000), 1));
}

TEST(FlowTokenBucketTest, TakeIsAllOrNothing) {
  const Limit l = limit(100, milliseconds(1000), 250);
  TokenBucket b(l, kT0);
  EXPECT_TRUE(b.take(l, kT0, 200));
  EXPECT_FALSE(b.take(l, kT0, 51));
  EXPECT_EQ(b.available(l, kT0), 50);
  EXPECT_TRUE(b.take(l, kT0, 50));
  EXPECT_TRUE(b.take(l, kT0, 0));
  EXPECT_TRUE(b.take(l, kT0, -5));
  EXPECT_EQ(b.available(l, kT0), 0);
}

TEST(FlowTokenBucketTest, MoreThanTheBurstNeverPasses) {
  const Limit l = limit(100, milliseconds(1000), 250);
  TokenBucket b(l, kT0);
  EXPECT_FALSE(b.take(l, kT0, 251));
  EXPECT_EQ(b.retryAfter(l, kT0, 251), microseconds::max());
  EXPECT_EQ(b.available(l, kT0), 250);  // the refusal took nothing
  EXPECT_FALSE(b.take(l, kT0 + std::chrono::hours(1), 251));
}

TEST(FlowTokenBucketTest, RetryAfterMatchesWhenTakeSucceeds) {
  const Limit l = limit(7, milliseconds(1000), 10);
  TokenBucket b(l, kT0);
  EXPECT_EQ(b.retryAfter(l, kT0, 10), microseconds(0));
  ASSERT_TRUE(b.take(l, kT0, 10));
  for (int64_t n = 1; n <= 10; ++n) {
    const microseconds wait = b.retryAfter(l, kT0, n);
    TokenBucket probe = b;
    EXPECT_FALSE(probe.take(l, kT0 + wait - microseconds(1), n)) << n;
    probe = b;
    EXPECT_TRUE(probe.take(l, kT0 + wait, n)) << n;
  }
}

TEST(FlowTokenBucketTest, GiveReturnsTokensUpToTheBurst) {
  const Limit l = limit(1, milliseconds(60'000), 5);
  TokenBucket b(l, kT0);
  ASSERT_TRUE(b.take(l, kT0, 4));
  b.give(l, 2);
  EXPECT_EQ(b.available(l, kT0), 3);
  b.give(l, 100);
  EXPECT_EQ(b.available(l, kT0), 5);
  b.give(l, -1);
  EXPECT_EQ(b.available(l, kT0), 5);
}

TEST(FlowTokenBucketTest, TimeGoingBackwardsAddsNothing) {
  const Limit l = limit(10, milliseconds(1000), 2);
  TokenBucket b(l, kT0 + milliseconds(500));
  ASSERT_TRUE(b.take(l, kT0 + milliseconds(500), 2));
  EXPECT_FALSE(b.take(l, kT0, 1));
  EXPECT_FALSE(b.take(l, kT0 + milliseconds(599), 1));
  EXPECT_EQ(b.lastUpdate(), kT0 + milliseconds(599));
  EXPECT_TRUE(b.take(l, kT0 + milliseconds(600), 1));
}

TEST(FlowTokenBucketTest, ANewLimitClampsTokensToItsBurst) {
  const Limit old_limit = limit(10, milliseconds(1000), 10);
  TokenBucket b(old_limit, kT0);
  ASSERT_TRUE(b.take(old_limit, kT0, 2));  // 8 left
  const Limit smaller = limit(10, milliseconds(1000), 5);
  EXPECT_EQ(b.available(smaller, kT0), 5);
  const Limit larger = limit(10, milliseconds(1000), 20);
  TokenBucket c(old_limit, kT0);
  ASSERT_TRUE(c.take(old_limit, kT0, 2));
  // A larger burst keeps the tokens there were; it does not fill the bucket.
  EXPECT_EQ(c.available(larger, kT0), 8);
  EXPECT_TRUE(c.take(larger, kT0, 8));
  EXPECT_FALSE(c.take(larger, kT0, 1));
}

TEST(FlowTokenBucketTest, ANewPeriodKeepsTheTokens) {
  const Limit per_second = limit(10, milliseconds(1000), 10);
  TokenBucket b(per_second, kT0);
  ASSERT_TRUE(b.take(per_second, kT0, 6));  // 4 left
  const Limit per_minute = limit(600, milliseconds(60'000), 10);
  EXPECT_EQ(b.available(per_minute, kT0), 4);
  EXPECT_TRUE(b.take(per_minute, kT0, 4));
  EXPECT_FALSE(b.take(per_minute, kT0, 1));
  // 600/m is 100 ms per token, as before.
  EXPECT_TRUE(b.take(per_minute, kT0 + milliseconds(100), 1));
  // And back: still consistent.
  EXPECT_EQ(b.available(per_second, kT0 + milliseconds(100)), 0);
  EXPECT_TRUE(b.take(per_second, kT0 + milliseconds(200), 1));
}

TEST(FlowTokenBucketTest, AdmittedNeverExceedsBurstPlusRateTimesElapsed) {
  // Random arrivals and sizes over simulated minutes: the classic token-bucket bound holds, and
  // a greedy sender gets close to it (the bucket does not under-admit either).
  const Limit l = limit(50, milliseconds(1000), 20);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> gap(0, 40'000);
  std::uniform_int_distribution<int64_t> size(1, 3);
  TokenBucket b(l, kT0);
  Clock::time_point t = kT0;
  int64_t admitted = 0;
  for (int i = 0; i < 200'000; ++i) {
    t += microseconds(gap(rng));
    const int64_t n = size(rng);
    if (b.take(l, t, n)) {
      admitted += n;
    }
    const int64_t elapsed_us = std::chrono::duration_cast<microseconds>(t - kT0).count();
    ASSERT_LE(admitted, l.burst + elapsed_us * l.count / 1'000'000) << "after " << i;
  }
  const int64_t elapsed_us = std::chrono::duration_cast<microseconds>(t - kT0).count();
  EXPECT_GE(admitted, elapsed_us * l.count / 1'000'000 - 3);
}

TEST(FlowTokenBucketTest, LargeLimitsDoNotOverflow) {
  const Limit bytes = limit(int64_t{1} << 40, milliseconds(1000), int64_t{1} << 40);
  TokenBucket b(bytes, kT0);
  EXPECT_TRUE(b.take(bytes, kT0, int64_t{1} << 40));
  EXPECT_FALSE(b.take(bytes, kT0, 1));
  EXPECT_EQ(b.available(bytes, kT0 + std::chrono::hours(24 * 365 * 100)), int64_t{1} << 40);
  const Limit daily = limit(1'000'000'000, milliseconds(24 * 3600 * 1000), 50'000'000);
  TokenBucket d(daily, kT0);
  EXPECT_TRUE(d.take(daily, kT0, 50'000'000));
  EXPECT_EQ(d.available(daily, kT0 + std::chrono::hours(12)), 50'000'000);
}

}  // namespace
}  // namespace imgate::mod::flow
