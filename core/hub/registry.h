// SPDX-License-Identifier: Apache-2.0
// The process-wide half of the hub: identity -> sessions and room -> users, sharded with one
// mutex per shard. It is touched on connect, disconnect, join/leave and push lookups, never per
// inbound message. Delivery itself is per worker (LocalHub), reached by posting to the worker
// that owns each session (a session id carries its worker index in its low byte).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/small_string.h"
#include "hub/stream_store.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/runtime.h"

namespace imgate::core {

class Worker;
struct PushJob;

// Module and listener names, kept for the life of the process (a config names a few): one
// NUL-terminated copy each however many sessions refer to them.
const char* internName(std::string_view name);
// "protocol\0listener", interned the same way: one pointer for both names of a session.
const char* internOrigin(std::string_view protocol, std::string_view listener);

// What the registry keeps of each session of a user: 72 bytes (the 80-byte allocator class),
// with the device and the peer address in place when they are short, as they are.
struct SessionRef {
  uint64_t id = 0;
  SmallString device;
  const char* origin = "\0";  // internOrigin(), or a literal "protocol\0listener"
  SmallString peer;
  int64_t connected_at_ms = 0;

  std::string_view protocol() const { return origin; }
  std::string_view listener() const { return origin + std::char_traits<char>::length(origin) + 1; }
};

// A user's sessions, oldest first. Most users have one: it sits in place (inside the registry's
// map node), and a vector is made when a second one arrives. Session ids are never 0, so an
// empty list is a first entry with id 0.
class SessionList {
 public:
  class const_iterator {
   public:
    const_iterator(const SessionList* list, size_t i) : list_(list), i_(i) {}
    const SessionRef& operator*() const { return i_ == 0 ? list_->first_ : (*list_->more_)[i_ - 1]; }
    const SessionRef* operator->() const { return &**this; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }

   private:
    const SessionList* list_;
    size_t i_;
  };

  bool empty() const { return first_.id == 0; }
  size_t size() const { return empty() ? 0 : 1 + (more_ ? more_->size() : 0); }
  const SessionRef& front() const { return first_; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size()}; }

  void push_back(const SessionRef& ref) {
    if (empty()) {
      first_ = ref;
      return;
    }
    if (!more_) {
      more_ = std::make_unique<std::vector<SessionRef>>();
    }
    more_->push_back(ref);
  }
  void pop_front() {
    if (more_ && !more_->empty()) {
      first_ = std::move(more_->front());
      more_->erase(more_->begin());
      if (more_->empty()) {
        more_.reset();
      }
    } else {
      first_ = SessionRef();
    }
  }
  // Removes the session `id` (nothing when absent).
  void erase(uint64_t id) {
    if (id == 0 || empty()) {
      return;
    }
    if (first_.id == id) {
      pop_front();
    } else if (more_) {
      std::erase_if(*more_, [id](const SessionRef& r) { return r.id == id; });
      if (more_->empty()) {
        more_.reset();
      }
    }
  }

 private:
  SessionRef first_;
  std::unique_ptr<std::vector<SessionRef>> more_;
};

// The dispatcher completions are posted back to; set by each worker thread at start.
void setCurrentDispatcher(Dispatcher* dispatcher);

inline uint32_t workerOf(uint64_t session_id) { return static_cast<uint32_t>(session_id & 0xff); }

class Registry final : public Hub {
 public:
  explicit Registry(std::vector<Worker*> workers);
  ~Registry();
  // Called once, before any worker runs.
  void setWorkers(std::vector<Worker*> workers) { workers_ = std::move(workers); }

  // Adds a session of (app, user). Returns the rooms the user is in (the session joins them)
  // and, when the user now has more than `max_per_user` sessions (0 = no cap), the ids of the
  // oldest ones to evict.
  struct AddResult {
    std::vector<std::string> rooms;
    std::vector<uint64_t> evict;
    bool first = false;  // the user had no other live session
  };
  AddResult add(const std::string& app, const std::string& user, const SessionRef& ref,
                uint32_t max_per_user);
  void remove(const std::string& app, const std::string& user, uint64_t session_id);

  // Reliable delivery.
  void configure(const DeliverySettings& settings);
  DeliverySettings delivery() const;
  StreamStore& streams() { return *store_; }
  // A session of `user` acked up to `seq` of its user stream (fires wait_ack pushes).
  void streamAcked(const std::string& app, const std::string& user, uint64_t epoch, uint64_t seq);
  void forgetWaiter(const PushJob* job);

  // imgate::Hub (thread-safe; completions run on the calling worker).
  void push(const std::string& app, PushTarget target, Message message,
            std::function<void(PushResult)> done) override;
  std::vector<SessionInfo> userSessions(const std::string& app, const std::string& user) override;
  void kick(const std::string& app, const std::string& user, uint64_t session_id,
            std::string reason, std::function<void(uint64_t)> done) override;
  std::vector<std::string> join(const std::string& app, const std::string& room,
                                const std::vector<std::string>& users) override;
  std::vector<std::string> leave(const std::string& app, const std::string& room,
                                 const std::vector<std::string>& users) override;
  std::vector<std::string> roomMembers(const std::string& app, const std::string& room) override;
  HubStats stats(const std::string& app) override;
  NodeLoad nodeLoad() override;

  // Detached sessions (HttpExchange::detach): the worker that holds each key, so a request on
  // any worker finds it. add() fails when the key is taken.
  bool addDetached(const std::string& key, uint32_t worker);
  std::optional<uint32_t> detachedWorker(std::string_view key) const;
  void removeDetached(const std::string& key);

  uint64_t totalUsers() const;
  uint64_t totalRooms() const;
  size_t workerCount() const { return workers_.size(); }
  Worker& worker(uint32_t index) const { return *workers_[index % workers_.size()]; }

 private:
  // nodeLoad()'s connect-rate windows.
  std::mutex rate_mu_;
  std::pair<int64_t, uint64_t> rate_prev_{0, 0};  // (steady us, sessions opened) at its start
  int64_t rate_window_start_us_ = 0;
  uint64_t rate_window_opened_ = 0;
  static constexpr size_t kShards = 64;
  // A user's rooms: most users are in none, so the set is allocated on the first join (an
  // empty unordered_set alone is 56 bytes in every user's entry).
  class RoomSet {
   public:
    bool insert(const std::string& room) {
      if (!set_) {
        set_ = std::make_unique<std::unordered_set<std::string>>();
      }
      return set_->insert(room).second;
    }
    size_t erase(const std::string& room) { return set_ ? set_->erase(room) : 0; }
    std::vector<std::string> list() const {
      return set_ ? std::vector<std::string>(set_->begin(), set_->end()) : std::vector<std::string>{};
    }

   private:
    std::unique_ptr<std::unordered_set<std::string>> set_;
  };
  struct UserEntry {
    SessionList sessions;
    RoomSet rooms;
  };
  struct UserShard {
    mutable std::mutex mu;
    std::unordered_map<std::string, UserEntry> users;  // key: app '\0' user
  };
  struct RoomShard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::unordered_set<std::string>> rooms;  // key -> users
  };

  static std::string key(const std::string& app, const std::string& name);
  void updateRoomIndexes(std::vector<std::vector<uint64_t>>& per_worker, const std::string& rk,
                         bool join, StreamHead head);
  UserShard& userShard(const std::string& k) { return users_[std::hash<std::string>{}(k) % kShards]; }
  RoomShard& roomShard(const std::string& k) { return rooms_[std::hash<std::string>{}(k) % kShards]; }

  std::vector<Worker*> workers_;
  mutable std::mutex delivery_mu_;
  DeliverySettings delivery_;
  std::unique_ptr<StreamStore> store_;
  struct AckWaiter {
    uint64_t epoch = 0;
    uint64_t seq = 0;
    std::string user;
    std::shared_ptr<PushJob> job;
  };
  std::mutex waiters_mu_;
  std::unordered_multimap<std::string, AckWaiter> waiters_;  // by user stream key
  std::array<UserShard, kShards> users_;
  std::array<RoomShard, kShards> rooms_;
  mutable std::mutex detached_mu_;
  std::unordered_map<std::string, uint32_t> detached_;
};

}  // namespace imgate::core
