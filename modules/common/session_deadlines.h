// SPDX-License-Identifier: Apache-2.0
// A per-session deadline kept outside the Stage, shared by the modules that close a session at
// a point in time (auth.jwt: the token's exp; auth.backend: the answer's expire_at).
// Header-only so each module, built in or as a .so, carries its own copy and needs no core
// symbol.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>

namespace imgate::mod::common {

// Session id -> Value, where DeadlineOf(value) is the deadline in seconds since the epoch.
//
// Why it exists: a reload destroys a session's stages without onClose and re-creates them
// without onOpen, so a stage that armed a close timer loses it; the new stage reads the
// deadline back from here (under the session id) in its constructor and re-arms.
//
// Contract for the stage that uses it:
//  - set() when the deadline is learnt or moves, erase() at onClose, and also in the
//    destructor while session().openedAtMs() == 0 (a handshake refused by a later stage never
//    runs onClose; a reload only ever replaces stages of accepted sessions, whose entry must
//    stay);
//  - keep one registry per module (a derived class with its own instance(), see below): two
//    modules tracking the same session must not see each other's entries.
//
// Orphans: a session that a reload moves to a pipeline without the module never runs its
// onClose, so set() also sweeps, amortised, entries whose deadline is more than kOrphanAfterS
// in the past. Every user closes its session at the deadline (plus at most a few minutes of
// leeway), so nobody reads such an entry any more. Memory is bounded by the live sessions plus
// the orphans of the last hour.
//
// Thread-safe: sharded by session id, one mutex a shard; sessions of all workers share it.
template <typename Value, typename DeadlineOf = std::identity>
  requires std::copy_constructible<Value> &&
           std::convertible_to<std::invoke_result_t<DeadlineOf, const Value&>, int64_t>
class SessionDeadlines {
 public:
  static constexpr int64_t kOrphanAfterS = 3600;

  SessionDeadlines() = default;
  SessionDeadlines(const SessionDeadlines&) = delete;
  SessionDeadlines& operator=(const SessionDeadlines&) = delete;

  // Records (or replaces) the session's entry; now_s is the wall clock, for the sweep.
  void set(uint64_t session_id, Value value, int64_t now_s) {
    Shard& shard = shardOf(session_id);
    std::lock_guard lock(shard.mu);
    shard.entries.insert_or_assign(session_id, std::move(value));
    if (shard.entries.size() < shard.sweep_at) {
      return;
    }
    std::erase_if(shard.entries, [now_s](const auto& entry) {
      return static_cast<int64_t>(DeadlineOf{}(entry.second)) < now_s - kOrphanAfterS;
    });
    shard.sweep_at = std::max(kMinSweepAt, 2 * shard.entries.size());
  }

  std::optional<Value> get(uint64_t session_id) const {
    const Shard& shard = shardOf(session_id);
    std::lock_guard lock(shard.mu);
    const auto it = shard.entries.find(session_id);
    if (it == shard.entries.end()) {
      return std::nullopt;
    }
    return it->second;
  }

  void erase(uint64_t session_id) {
    Shard& shard = shardOf(session_id);
    std::lock_guard lock(shard.mu);
    shard.entries.erase(session_id);
  }

  // Entries in all shards (for tests and stats; not a snapshot under concurrent writers).
  size_t size() const {
    size_t n = 0;
    for (const Shard& shard : shards_) {
      std::lock_guard lock(shard.mu);
      n += shard.entries.size();
    }
    return n;
  }

 private:
  static constexpr size_t kShards = 16;
  // A shard is swept when it reaches this many entries, then at twice its size after a sweep,
  // so the sweeps cost O(1) amortised per set().
  static constexpr size_t kMinSweepAt = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, Value> entries;
    size_t sweep_at = kMinSweepAt;
  };
  Shard& shardOf(uint64_t id) { return shards_[id % kShards]; }
  const Shard& shardOf(uint64_t id) const { return shards_[id % kShards]; }

  std::array<Shard, kShards> shards_;
};

}  // namespace imgate::mod::common
