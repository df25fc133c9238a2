// SPDX-License-Identifier: Apache-2.0
// Token expiry on open sessions: where a session's current `exp` is kept (outside the Stage, so
// it survives a reload), and the wire-neutral messages of the refresh exchange.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "imgate/sdk/message.h"
#include "jwt.h"

namespace imgate::mod::auth_jwt {

// The event of the message a client sends with a new token, and of the notice it gets before
// its token expires.
inline constexpr std::string_view kRefreshEvent = "auth.refresh";
inline constexpr std::string_view kExpiringEvent = "token.expiring";
// Largest refresh payload looked at: a token of kMaxTokenBytes plus its JSON wrapping. A bigger
// payload cannot hold an acceptable token, so it is refused without parsing.
inline constexpr size_t kMaxRefreshPayload = kMaxTokenBytes + 1024;

struct SessionExpiry {
  int64_t exp_s = 0;      // the current token's "exp" (seconds since the epoch)
  bool notified = false;  // the token.expiring notice for this exp was sent
};

// Session id -> its token's expiry, for every session whose token has an exp (expiry: close).
// A reload destroys a session's stages without onClose and re-creates them without onOpen, so
// this is the only place the new stage can learn the deadline from. Process-wide (session ids
// are unique in the process and never reused), sharded, thread-safe.
//
// Entries are erased by the stage's onClose. A session that a reload moves to a pipeline
// without auth.jwt never runs it, so set() also sweeps, amortised, entries whose exp is more
// than kOrphanAfterS in the past: any stage still tracking such an entry closed its session
// at exp + leeway (leeway is at most 10 minutes), so nobody reads it any more.
class ExpiryRegistry {
 public:
  static constexpr int64_t kOrphanAfterS = 3600;

  // The process-wide instance the stages use.
  static ExpiryRegistry& instance();

  void set(uint64_t session_id, SessionExpiry expiry, int64_t now_s);
  std::optional<SessionExpiry> get(uint64_t session_id) const;
  void erase(uint64_t session_id);
  size_t size() const;

 private:
  static constexpr size_t kShards = 16;
  // A shard is swept when it reaches this many entries, then at twice its size after a sweep.
  static constexpr size_t kMinSweepAt = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, SessionExpiry> entries;
    size_t sweep_at = kMinSweepAt;
  };
  Shard& shardOf(uint64_t id) { return shards_[id % kShards]; }
  const Shard& shardOf(uint64_t id) const { return shards_[id % kShards]; }

  std::array<Shard, kShards> shards_;
};

// What an inbound message asks of the expiry logic.
struct RefreshRequest {
  bool is_refresh = false;  // false: an ordinary message, passed on untouched
  std::string token;        // the new token (empty when `error` is set)
  std::string id;           // the id the ack answers: the message's, else the envelope's "id"
  std::string error;        // a refresh message without a usable token: the ack's reason
};

// Recognises a refresh message:
//  - event "auth.refresh" (Socket.IO, TCP frames, any protocol with event names): the payload
//    is the token as plain text, a JSON string, {"token":"..."}, or a JSON array whose first
//    element is one of those (Socket.IO event arguments);
//  - no event and a text payload that is a JSON object whose "event" is "auth.refresh" (plain
//    WebSocket, which has no event names): {"event":"auth.refresh","token":"...","id":"r1"};
//    "id" (string or integer) is optional.
// Anything else is not a refresh. Payloads over kMaxRefreshPayload are refused unparsed.
RefreshRequest parseRefresh(const Message& message);

// The kControl notice sent refresh_window before exp: event "token.expiring", payload
// {"event":"token.expiring","expires_at":<exp>}.
Message expiringNotice(std::string app, int64_t exp_s, int64_t now_ms);

// The answer to a refresh message: a kAck for `id`, event "auth.refresh". Success carries meta
// status "ok" and the payload {"event":"auth.refresh","status":"ok","expires_at":<exp>} (without
// expires_at when the new token has none), so plain WebSocket clients, which get an ok ack's
// payload as a text message, see it too. Failure carries meta status "unauthenticated" and
// `reason`, and no payload (each protocol renders its own error form).
Message refreshAck(std::string app, std::string id, std::optional<int64_t> exp_s, int64_t now_ms);
Message refreshError(std::string app, std::string id, std::string reason, int64_t now_ms);

}  // namespace imgate::mod::auth_jwt
