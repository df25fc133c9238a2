// SPDX-License-Identifier: Apache-2.0
// flow: token-bucket rate limits on what clients send (messages per period and bytes per
// second), per session, per user, per IP and per app. See README.md for the config and the
// exact semantics; the contracts below are what the code relies on.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "imgate/sdk/module.h"
#include "token_bucket.h"

namespace imgate::mod::flow {

// Checked in this order for every message: the narrowest first, so a session over its own
// limit never spends the tokens its user, IP or app share with others.
enum class Scope : uint8_t { kSession, kUser, kIp, kApp };
inline constexpr std::array<Scope, 4> kAllScopes = {Scope::kSession, Scope::kUser, Scope::kIp,
                                                    Scope::kApp};
std::string_view scopeName(Scope scope);

// What happens to a message over a limit.
enum class Excess : uint8_t {
  kReject,  // error ack "resource_exhausted" to the sender; the session stays open
  kClose,   // the session is closed with kResourceExhausted (WebSocket 4029)
  kDrop,    // discarded silently
};

// The limits of one scope, owned by the compiled configuration (a table may outlive it).
struct ScopeLimits {
  std::optional<Limit> messages;
  std::optional<Limit> bytes;
  // An entry unused this long is full under these limits (2x the longest fill time, at least
  // 1 s), so forgetting it changes nothing; derived by finish().
  std::chrono::microseconds idle{1'000'000};
  size_t max_keys = 1'000'000;

  void finish();
};

// Buckets of one scope, by key (session id, app+user, IP, app). Shared by every worker, and
// by successive generations of the same stage instance (see tableFor()). Thread-safe: 64
// shards, each behind its own mutex; a call waits for one of them at most (when the table is
// full it also sweeps others, but only those it can lock without waiting).
//
// Bounds: at most `max_keys` entries (counted across shards). Idle entries (see
// ScopeLimits::idle) are reclaimed lazily, oldest first: up to 8 per call in the shard the key
// hashes to; when the table is full, up to 1024 there and 8 in each other shard that is not
// locked at that moment. A new key that still finds the table full gets no bucket: take()
// answers kUntracked and the message is admitted (fail-open; see README.md for why).
class BucketTable {
 public:
  BucketTable(Counter& created, Counter& removed) : created_(created), removed_(removed) {}
  BucketTable(const BucketTable&) = delete;
  BucketTable& operator=(const BucketTable&) = delete;

  struct Outcome {
    enum class Kind : uint8_t { kAdmitted, kLimited, kUntracked };
    Kind kind = Kind::kAdmitted;
    bool by_bytes = false;                    // kLimited: the bytes bucket refused
    std::chrono::microseconds retry_after{};  // kLimited: microseconds::max() means never
  };

  // Takes one message token and `bytes` byte tokens for `key` (all or nothing across the two
  // buckets), creating the entry, full, if it is new.
  Outcome take(const std::string& key, const ScopeLimits& limits, Clock::time_point now,
               int64_t bytes);
  // Gives back what take() took, when a later scope refused the message.
  void give(const std::string& key, const ScopeLimits& limits, int64_t bytes);
  // Forgets `key` (a session that closed). False when it was not there.
  bool erase(const std::string& key);
  size_t size() const { return size_.load(std::memory_order_relaxed); }

  // Whole tokens left for `key` at `now`; nullopt when the key has no entry.
  std::optional<int64_t> availableForTest(const std::string& key, const ScopeLimits& limits,
                                          Clock::time_point now, bool bytes);
  // True at most once a minute: for the "table full" warning.
  bool shouldWarnFull(Clock::time_point now);

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kSweepPerCall = 8;
  static constexpr size_t kSweepWhenFull = 1024;

  // An intrusive LRU list threads the entries of a shard, most recently used first.
  struct Entry {
    std::optional<TokenBucket> messages;
    std::optional<TokenBucket> bytes;
    int64_t used_us = 0;
    const std::string* key = nullptr;  // the map node's key (node addresses are stable)
    Entry* prev = nullptr;
    Entry* next = nullptr;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> entries;
    Entry* head = nullptr;
    Entry* tail = nullptr;
  };

  Shard& shardOf(const std::string& key) {
    return shards_[std::hash<std::string>{}(key) % kShards];
  }
  static void unlink(Shard& shard, Entry& entry);
  static void pushFront(Shard& shard, Entry& entry);
  void sweep(Shard& shard, int64_t now_us, int64_t idle_us, size_t budget);
  // Makes room for one key: a long sweep of `own` (locked by the caller), then a short one of
  // every other shard that is not busy.
  void sweepWhenFull(Shard& own, int64_t now_us, int64_t idle_us);
  // Counts one more entry unless that would pass max_keys.
  bool reserve(size_t max_keys);

  Counter& created_;
  Counter& removed_;
  std::atomic<size_t> size_{0};
  std::atomic<int64_t> last_full_warning_us_{std::numeric_limits<int64_t>::min()};
  std::array<Shard, kShards> shards_;
};
using BucketTableSharedPtr = std::shared_ptr<BucketTable>;

// The bucket table for (instance, scope): the one the previous generation of this stage
// instance used, if it is still alive, else a new one (then remembered by weak reference).
// `reused` says which. The stage instance is LoadContext::instanceName(), so state carries
// over a reload as long as the stage keeps its pipeline and position.
BucketTableSharedPtr tableFor(std::string_view instance, Scope scope, Counter& created,
                              Counter& removed, bool& reused);
// Live entries in that registry (expired ones are pruned by tableFor()).
size_t registeredTablesForTest();

// "1.2.3.4" for "1.2.3.4:5678"; for IPv6 "[2001:db8:1:2:3:4:5:6]:443" the address masked to
// `ipv6_prefix` bits, "2001:db8:1:2::/64"; an IPv4-mapped IPv6 address as its IPv4 form.
// Anything else ("unix") is returned as is.
std::string ipKey(std::string_view peer, int ipv6_prefix);

class FlowConfig final : public StageConfig, public std::enable_shared_from_this<FlowConfig> {
 public:
  struct Rule {
    Scope scope = Scope::kSession;
    ScopeLimits limits;
    Excess action = Excess::kReject;
    BucketTableSharedPtr table;
    Counter* limited = nullptr;    // messages refused by this scope
    Counter* untracked = nullptr;  // messages admitted without a bucket (table full)
  };

  FlowConfig(std::vector<Rule> rules, int ipv6_prefix)
      : rules_(std::move(rules)), ipv6_prefix_(ipv6_prefix) {}
  StagePtr createStage(StageCallbacks& callbacks) const override;

  // In kAllScopes order; only configured scopes.
  const std::vector<Rule>& rules() const { return rules_; }
  const Rule* rule(Scope scope) const;
  int ipv6Prefix() const { return ipv6_prefix_; }

 private:
  std::vector<Rule> rules_;
  int ipv6_prefix_;
};

Result<StageConfigPtr> compileFlow(const ConfigView& config, LoadContext& context);
std::span<const ParamSpec> flowSchema();

}  // namespace imgate::mod::flow
