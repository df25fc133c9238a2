// SPDX-License-Identifier: Apache-2.0
// The auth.backend answer cache: decisive backend answers by token digest, shared by every
// worker of one compiled config.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::auth_backend {

// A decisive answer of the auth backend: who the session is, or why it is refused.
struct AuthAnswer {
  bool allowed = false;
  // allowed
  std::string user;
  std::string app;
  std::string device;  // empty: the handshake's "device" query parameter, if any
  std::vector<std::string> rooms;
  std::optional<int64_t> expire_at_s;  // the session is closed at this wall-clock second
  // refused
  Errc code = Errc::kNone;  // kUnauthenticated (401) or kPermissionDenied (403)
  std::string reason;
};
using AuthAnswerConstSharedPtr = std::shared_ptr<const AuthAnswer>;

// Thread-safe LRU of answers keyed by keyOf(token): tokens themselves are never stored. Split
// into kShards shards, each with its own mutex and an equal share of `capacity` (at least one
// entry each), so workers opening sessions at the same time rarely wait for one another. An
// entry is valid until its own deadline (wall-clock ms, chosen by the caller); expired entries
// are dropped when looked up, or pushed out of the LRU by newer ones.
class AuthCache {
 public:
  static constexpr size_t kShards = 16;

  explicit AuthCache(size_t capacity);
  AuthCache(const AuthCache&) = delete;
  AuthCache& operator=(const AuthCache&) = delete;

  // SHA-256 of the token (32 raw bytes).
  static std::string keyOf(std::string_view token);

  // The answer under `key` if its deadline is after `now_ms` (and marks it recently used).
  AuthAnswerConstSharedPtr find(const std::string& key, int64_t now_ms);
  // Stores (or replaces) the answer under `key` until `expires_ms`, evicting the shard's least
  // recently used entry when the shard is full. Does nothing when expires_ms <= now_ms.
  void insert(const std::string& key, AuthAnswerConstSharedPtr answer, int64_t expires_ms,
              int64_t now_ms);
  size_t size() const;
  size_t capacity() const { return per_shard_ * kShards; }

 private:
  struct Entry {
    std::string key;
    AuthAnswerConstSharedPtr answer;
    int64_t expires_ms = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::list<Entry> lru;  // most recently used first
    std::unordered_map<std::string, std::list<Entry>::iterator> index;
  };
  Shard& shardOf(const std::string& key);

  size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace imgate::mod::auth_backend
