// SPDX-License-Identifier: Apache-2.0
// Downlink streams (DESIGN.md §4, docs/reliability.md): every message to a user, a room or an
// app's broadcast gets the next sequence number of its stream and is kept in a bounded history,
// so a client that reconnects gets exactly what it missed. Each stream has an epoch, a random
// number drawn when the stream is created: a stream whose record was lost (restart, eviction of
// an idle stream) comes back with a new epoch, so "seq 41 of epoch A" is never mistaken for
// "seq 41 of epoch B". Thread-safe; called by the hub on any worker.
//
// The embedded implementation keeps history in memory. The interface is what a shared store
// (Redis Streams, in cluster mode) has to provide.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "imgate/sdk/message.h"

namespace imgate::core {

using MessagePtr = std::shared_ptr<const Message>;

// Store keys: app '\0' stream, and for user streams app '\0' "user" '\0' user.
std::string streamKey(std::string_view app, std::string_view stream, std::string_view user);
inline std::string roomStream(std::string_view room) { return "room:" + std::string(room); }

struct StreamLimits {
  size_t max_messages = 1000;                      // per stream
  size_t max_bytes = 1u << 20;                     // per stream (payload + event + id)
  std::chrono::milliseconds ttl{24 * 3600 * 1000};  // message age
  // A stream with no new message for this long is forgotten with its epoch (its next message
  // starts a new epoch).
  std::chrono::milliseconds idle_ttl{7 * 24 * 3600 * 1000LL};
  size_t max_total_bytes = 256u << 20;             // all streams (approximate: per shard share)
  size_t max_streams = 10'000'000;
};

// Reliable delivery settings (top-level `delivery` key), applied at start and every reload.
struct DeliverySettings {
  bool enabled = true;            // user, room (and all) pushes get a seq and are kept
  bool broadcast_stream = true;   // pushes to everyone form the app's "all" stream
  bool offline = true;            // a user's pushes while offline go to their next session
  bool reliable = false;          // pushes are reliable unless the push says otherwise
  std::chrono::milliseconds ack_timeout{5'000};
  double ack_backoff = 2.0;
  uint32_t max_retransmits = 5;   // then the session is closed (the client resumes)
  uint32_t max_unacked = 1024;    // reliable messages awaiting an ack, per session
  uint32_t max_replay = 1000;     // messages sent from history per stream at resume
  StreamLimits limits;
};

struct StreamHead {
  uint64_t epoch = 0;  // 0: the stream does not exist (never had a message, or was forgotten)
  uint64_t seq = 0;    // the last seq given
};

struct HistoryRead {
  enum class Status : uint8_t {
    kOk,            // `messages` are exactly those after the asked seq (maybe none)
    kEpochChanged,  // the stream's history was lost since: the client must resync
    kTooOld,        // history no longer reaches back to the asked seq
  };
  Status status = Status::kOk;
  StreamHead head;
  std::vector<MessagePtr> messages;
};

struct StreamStoreStats {
  uint64_t streams = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t evicted = 0;  // messages dropped by the count, byte or total limits (not by age)
  uint64_t expired = 0;  // messages dropped by age
};

class StreamStore {
 public:
  virtual ~StreamStore() = default;
  // Gives `message` the next seq of the stream at `key` (creating it with a new epoch) and keeps
  // a copy with stream, epoch and seq set, which it returns.
  virtual MessagePtr append(const std::string& key, std::string_view stream, Message message,
                            int64_t now_ms) = 0;
  virtual StreamHead head(const std::string& key) = 0;
  // The messages after `after_seq` of `epoch`, in order, at most `max`.
  virtual HistoryRead read(const std::string& key, uint64_t epoch, uint64_t after_seq, size_t max,
                           int64_t now_ms) = 0;
  // Per-device positions of user streams (what the device acked or read), so a device that
  // reconnects without saying where it was gets what it missed. Only for the current epoch.
  virtual void setDevicePosition(const std::string& key, std::string_view device, uint64_t epoch,
                                 uint64_t seq) = 0;
  virtual std::optional<uint64_t> devicePosition(const std::string& key, std::string_view device,
                                                 uint64_t epoch) = 0;
  // The user's last session closed: messages after the current head are "stored offline" and
  // go to the next session that has no position of its own.
  // `at`: the position to store from (default: the current head). Keeps an earlier mark.
  virtual void markOffline(const std::string& key, std::optional<uint64_t> at = std::nullopt) = 0;
  virtual std::optional<uint64_t> offlineSince(const std::string& key, uint64_t epoch) = 0;
  // Drops expired messages and idle streams, a slice of the store per call (a full pass every
  // 16 calls); called about every 250 ms.
  virtual void sweep(int64_t now_ms) = 0;
  virtual void setLimits(const StreamLimits& limits) = 0;
  virtual StreamStoreStats stats() const = 0;
};

class MemoryStreamStore final : public StreamStore {
 public:
  explicit MemoryStreamStore(StreamLimits limits = {});

  MessagePtr append(const std::string& key, std::string_view stream, Message message,
                    int64_t now_ms) override;
  StreamHead head(const std::string& key) override;
  HistoryRead read(const std::string& key, uint64_t epoch, uint64_t after_seq, size_t max,
                   int64_t now_ms) override;
  void setDevicePosition(const std::string& key, std::string_view device, uint64_t epoch,
                         uint64_t seq) override;
  std::optional<uint64_t> devicePosition(const std::string& key, std::string_view device,
                                         uint64_t epoch) override;
  void markOffline(const std::string& key, std::optional<uint64_t> at = std::nullopt) override;
  std::optional<uint64_t> offlineSince(const std::string& key, uint64_t epoch) override;
  void sweep(int64_t now_ms) override;
  void setLimits(const StreamLimits& limits) override;
  StreamStoreStats stats() const override;

  // Devices remembered per stream (most recently active kept).
  static constexpr size_t kMaxDevices = 16;

 private:
  static constexpr size_t kShards = 64;
  struct Entry {
    MessagePtr message;
    size_t bytes = 0;
    int64_t at_ms = 0;
  };
  struct Stream {
    uint64_t epoch = 0;
    uint64_t seq = 0;
    int64_t last_append_ms = 0;
    std::optional<uint64_t> offline_since;
    std::deque<Entry> entries;
    size_t bytes = 0;
    std::vector<std::pair<std::string, uint64_t>> devices;  // most recent last
    std::list<std::string>::iterator lru;                    // in Shard::lru
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Stream> streams;
    std::list<std::string> lru;  // least recently appended first
    size_t bytes = 0;
  };

  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % kShards]; }
  void dropFront(Shard& sh, Stream& s, bool expired);
  void trim(Shard& sh, Stream& s, int64_t now_ms, const StreamLimits& limits);
  uint64_t newEpoch();
  StreamLimits limits() const;

  mutable std::mutex limits_mu_;
  StreamLimits limits_;
  std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> streams_{0};
  std::atomic<uint64_t> messages_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<uint64_t> expired_{0};
  std::atomic<uint64_t> epoch_state_;
  std::atomic<size_t> sweep_cursor_{0};
  static constexpr size_t kSweepSlices = 16;
};

}  // namespace imgate::core
