// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/auth_backend/auth_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace imgate::mod::auth_backend {
namespace {

AuthAnswerConstSharedPtr allowedAs(std::string user) {
  auto a = std::make_shared<AuthAnswer>();
  a->allowed = true;
  a->user = std::move(user);
  return a;
}

TEST(AuthBackendCache, KeyIsTheSha256OfTheToken) {
  const std::string key = AuthCache::keyOf("abc");
  ASSERT_EQ(key.size(), 32u);
  // FIPS 180-2 test vector: SHA-256("abc") = ba7816bf...
  EXPECT_EQ(static_cast<unsigned char>(key[0]), 0xba);
  EXPECT_EQ(static_cast<unsigned char>(key[31]), 0xad);
  EXPECT_EQ(AuthCache::keyOf("abc"), key);
  EXPECT_NE(AuthCache::keyOf("abd"), key);
}

TEST(AuthBackendCache, FindRespectsDeadlines) {
  AuthCache cache(100);
  const std::string k = AuthCache::keyOf("t");
  EXPECT_EQ(cache.find(k, 0), nullptr);
  cache.insert(k, allowedAs("u"), 1000, 0);
  ASSERT_NE(cache.find(k, 999), nullptr);
  EXPECT_EQ(cache.find(k, 999)->user, "u");
  EXPECT_EQ(cache.find(k, 1000), nullptr);  // expired entries are dropped when looked up
  EXPECT_EQ(cache.size(), 0u);
  cache.insert(k, allowedAs("u"), 500, 500);  // already expired: not stored
  EXPECT_EQ(cache.size(), 0u);
  cache.insert(k, allowedAs("u"), 2000, 0);
  cache.insert(k, allowedAs("v"), 3000, 0);  // replaced, not duplicated
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(k, 2500)->user, "v");
  EXPECT_EQ(cache.find("", 0), nullptr);
  cache.insert("", allowedAs("x"), 10, 0);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(AuthBackendCache, BoundedWithLeastRecentlyUsedEviction) {
  AuthCache cache(AuthCache::kShards * 2);  // two entries per shard
  EXPECT_EQ(cache.capacity(), AuthCache::kShards * 2);
  std::vector<std::string> keys;
  for (int i = 0; i < 5000; ++i) {
    keys.push_back(AuthCache::keyOf("token-" + std::to_string(i)));
    cache.insert(keys.back(), allowedAs(std::to_string(i)), 1'000'000, 0);
    ASSERT_LE(cache.size(), cache.capacity());
  }
  EXPECT_EQ(cache.size(), cache.capacity());
  // Within one shard: touching the older entry makes the newer one the victim.
  AuthCache small(1);  // one entry per shard
  EXPECT_EQ(small.capacity(), AuthCache::kShards);
  std::vector<std::string> same_shard;
  for (int i = 0; same_shard.size() < 3; ++i) {
    std::string k = AuthCache::keyOf("s" + std::to_string(i));
    if (same_shard.empty() ||
        static_cast<unsigned char>(k[0]) % AuthCache::kShards ==
            static_cast<unsigned char>(same_shard[0][0]) % AuthCache::kShards) {
      same_shard.push_back(std::move(k));
    }
  }
  AuthCache two(AuthCache::kShards * 2);
  two.insert(same_shard[0], allowedAs("a"), 100, 0);
  two.insert(same_shard[1], allowedAs("b"), 100, 0);
  ASSERT_NE(two.find(same_shard[0], 1), nullptr);  // a is now the most recent
  two.insert(same_shard[2], allowedAs("c"), 100, 0);
  EXPECT_NE(two.find(same_shard[0], 1), nullptr);
  EXPECT_EQ(two.find(same_shard[1], 1), nullptr);
  EXPECT_NE(two.find(same_shard[2], 1), nullptr);
}

TEST(AuthBackendCache, SharedByThreads) {
  AuthCache cache(1000);
  std::atomic<int> found{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, &found, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string k = AuthCache::keyOf(std::to_string(i % 300));
        if (cache.find(k, i) != nullptr) {
          found.fetch_add(1);
        } else {
          cache.insert(k, allowedAs(std::to_string(t)), 1'000'000, i);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_LE(cache.size(), 300u);
  EXPECT_GT(found.load(), 0);
}

}  // namespace
}  // namespace imgate::mod::auth_backend
