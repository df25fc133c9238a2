// SPDX-License-Identifier: Apache-2.0
// The hub: who is connected where (DESIGN.md §1). Owned by the core; thread-safe. Completion
// callbacks run on the thread that made the call (a worker), never synchronously inside it. A
// thread without an event loop gets them on the thread that finished the job (possibly inside
// the call).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "imgate/sdk/message.h"
#include "imgate/sdk/status.h"

namespace imgate {

struct PushTarget {
  TargetKind kind = TargetKind::kNone;
  std::vector<std::string> ids;  // users, session ids (decimal) or rooms; empty for kAll
  // kUser: wait up to this long for the first ack from one of each user's devices before
  // `done` runs (PushResult::acked / unacked). Zero: `done` runs once the message is written.
  std::chrono::milliseconds wait_ack{0};
};

struct PushResult {
  uint64_t sessions = 0;                  // sessions the message was written to
  std::vector<std::string> offline;       // target users / sessions with no live session
  uint64_t dropped = 0;                   // sessions that refused it (slow consumer, stage drop)
  // Users in `offline` whose message was kept in their stream for their next connect.
  std::vector<std::string> offline_stored;
  // wait_ack: users one of whose devices acked in time / who got it on a session but did not.
  std::vector<std::string> acked;
  std::vector<std::string> unacked;
  // Where the message went in each target's stream (users and rooms; the app for kAll).
  struct Position {
    std::string target;
    std::string stream;
    uint64_t epoch = 0;
    uint64_t seq = 0;
  };
  std::vector<Position> positions;
};

struct SessionInfo {
  uint64_t id = 0;
  std::string user;
  std::string device;
  std::string protocol;
  std::string listener;
  std::string peer;
  int64_t connected_at_ms = 0;
  std::vector<std::string> rooms;
};

struct HubStats {
  uint64_t sessions = 0;
  uint64_t users = 0;
  uint64_t rooms = 0;
};

// This node's load, for load-aware answers (the LBS module orders addresses by it).
struct NodeLoad {
  uint64_t connections = 0;    // open client TCP connections, every listener
  uint64_t sessions = 0;       // long-lived sessions (WebSocket, TCP frame, ...)
  double connects_per_s = 0;   // sessions opened per second over the last 10 s or so
  unsigned workers = 0;        // worker threads
};

class Hub {
 public:
  // Delivers `message` to every session of `target` within `app`. The payload is encoded once
  // per protocol variant and shared. `done` gets the totals once every worker has delivered.
  virtual void push(const std::string& app, PushTarget target, Message message,
                    std::function<void(PushResult)> done) = 0;
  // Live sessions of a user.
  virtual std::vector<SessionInfo> userSessions(const std::string& app, const std::string& user) = 0;
  // Closes every session of `user` (all, or only `session_id` when non-zero) with Errc::kKicked
  // and `reason`. `done` gets the number of sessions closed.
  virtual void kick(const std::string& app, const std::string& user, uint64_t session_id,
                    std::string reason, std::function<void(uint64_t)> done) = 0;
  // Adds users to / removes users from a room: every live session of each user joins or leaves.
  // Membership lasts while the user has at least one session. Returns the users who had none
  // (and so were not joined), for join; for leave, the users who were not members.
  virtual std::vector<std::string> join(const std::string& app, const std::string& room,
                                        const std::vector<std::string>& users) = 0;
  virtual std::vector<std::string> leave(const std::string& app, const std::string& room,
                                         const std::vector<std::string>& users) = 0;
  virtual std::vector<std::string> roomMembers(const std::string& app, const std::string& room) = 0;
  virtual HubStats stats(const std::string& app) = 0;
  // Cheap (counters, no locks held long): may be called on every request.
  virtual NodeLoad nodeLoad() { return {}; }

 protected:
  ~Hub() = default;
};

}  // namespace imgate
