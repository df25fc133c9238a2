// SPDX-License-Identifier: Apache-2.0
#include "auth_cache.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace imgate::mod::auth_backend {

AuthCache::AuthCache(size_t capacity)
    : per_shard_(std::max<size_t>(1, (capacity + kShards - 1) / kShards)) {}

std::string AuthCache::keyOf(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    // Cannot happen short of a broken libcrypto; an empty key is never looked up.
    return {};
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

AuthCache::Shard& AuthCache::shardOf(const std::string& key) {
  // The key is a digest: its first bytes are already uniformly spread.
  unsigned char first = 0;
  if (!key.empty()) {
    std::memcpy(&first, key.data(), 1);
  }
  return shards_[first % kShards];
}

AuthAnswerConstSharedPtr AuthCache::find(const std::string& key, int64_t now_ms) {
  if (key.empty()) {
    return nullptr;
  }
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  const auto it = shard.index.find(key);
  if (it == shard.index.end()) {
    return nullptr;
  }
  if (it->second->expires_ms <= now_ms) {
    shard.lru.erase(it->second);
    shard.index.erase(it);
    return nullptr;
  }
  shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  return it->second->answer;
}

void AuthCache::insert(const std::string& key, AuthAnswerConstSharedPtr answer,
                       int64_t expires_ms, int64_t now_ms) {
  if (key.empty() || !answer || expires_ms <= now_ms) {
    return;
  }
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  if (const auto it = shard.index.find(key); it != shard.index.end()) {
    it->second->answer = std::move(answer);
    it->second->expires_ms = expires_ms;
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
    return;
  }
  while (shard.lru.size() >= per_shard_) {
    shard.index.erase(shard.lru.back().key);
    shard.lru.pop_back();
  }
  shard.lru.push_front(Entry{key, std::move(answer), expires_ms});
  shard.index.emplace(key, shard.lru.begin());
}

size_t AuthCache::size() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.lru.size();
  }
  return n;
}

}  // namespace imgate::mod::auth_backend
