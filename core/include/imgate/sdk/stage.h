// SPDX-License-Identifier: Apache-2.0
// Behaviour stages: the ordered pipeline a listener declares in YAML.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/hub.h"
#include "imgate/sdk/message.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"
#include "imgate/sdk/upstream.h"

namespace imgate {

// Who a session is, once authenticated. Empty `user` means anonymous.
struct Identity {
  std::string app;
  std::string user;
  std::string device;
};

// When a session's credentials run out (a token's exp, an auth answer's expire_at), as the
// stage that authenticated it recorded it (StageCallbacks::setExpiry).
struct SessionExpiry {
  int64_t at_s = 0;       // seconds since the epoch; 0: the session does not expire
  bool notified = false;  // the client was told it is coming (auth.jwt's token.expiring)
};

// One client connection, owned by the core; outlives every Stage of the session. Only valid on
// the session's worker thread.
class Session {
 public:
  virtual uint64_t id() const = 0;                   // unique in the process, never reused
  virtual std::string_view protocol() const = 0;     // "proto.websocket", ...
  virtual std::string_view listener() const = 0;     // listener name from the config
  virtual std::string_view peerAddress() const = 0;  // "127.0.0.1:53312"
  virtual const Identity& identity() const = 0;      // empty until an auth stage sets it
  // The handshake that opened the session (HTTP upgrade request, or HELLO frame fields).
  // Header names are matched case-insensitively; both return nullopt when absent. Available
  // while the pipeline's onOpen hooks run; the core frees the handshake once the session is
  // accepted (it is large and rarely needed later), after which both return nullopt.
  virtual std::optional<std::string_view> handshakeHeader(std::string_view name) const = 0;
  virtual std::optional<std::string> handshakeQuery(std::string_view name) const = 0;
  // WebSocket subprotocols offered by the client, in order (empty for other protocols).
  virtual const std::vector<std::string>& offeredSubprotocols() const = 0;
  // Wall-clock time (ms since the epoch) the session was accepted; 0 while its handshake runs.
  virtual int64_t openedAtMs() const { return 0; }
  // The expiry last set by a stage. Kept with the session, so it survives a reload: a stage
  // re-created without onOpen reads back what the stage it replaces set.
  virtual SessionExpiry expiry() const = 0;

 protected:
  ~Session() = default;
};

enum class Action : uint8_t {
  kPass,    // hand the message to the next stage
  kPause,   // async work started; the stage MUST later call resume() or reject()
  kDrop,    // discard silently (load shedding); counted by the core
  kReject,  // stop; the protocol module turns `code` into its own wire error
};

struct [[nodiscard]] Verdict {
  Action action = Action::kPass;
  Errc code = Errc::kNone;  // kReject only
  std::string reason;       // kReject only; logged, and sent to the client where the code allows

  static Verdict pass() { return {}; }
  static Verdict pause() { return {Action::kPause, Errc::kNone, {}}; }
  static Verdict drop() { return {Action::kDrop, Errc::kNone, {}}; }
  static Verdict reject(Errc code, std::string reason) {
    return {Action::kReject, code, std::move(reason)};
  }
};

// What a stage may ask of the core. Calls made from inside a stage hook are queued and run after
// the hook returns: the core never re-enters a stage. Valid for the Stage's whole life.
class StageCallbacks {
 public:
  virtual Session& session() = 0;
  virtual Dispatcher& dispatcher() = 0;
  // After Action::kPause: continue with the next stage, or fail the paused event. Calling either
  // without a pause in progress is a bug (counted, ignored).
  virtual void resume() = 0;
  virtual void reject(Errc code, std::string reason) = 0;
  // Closes the session with `code` (the protocol's close: WebSocket close code, TCP ERROR frame,
  // Socket.IO disconnect), from any hook or callback, e.g. a timer when a token expires. Takes
  // effect after the current hook returns; later calls are ignored.
  virtual void close(Errc code, std::string reason) = 0;
  // Sends a message to this session's client (through the outbound side of the pipeline).
  virtual void reply(Message message) = 0;
  // Auth stages only, in onOpen: sets who the session is, and the rooms the user joins when the
  // session opens (a token's rooms claim, an auth backend's answer; like the push API's room
  // membership, a join covers all the user's live sessions and lasts while the user has one).
  // Takes effect when the hook returns; the session keeps the identity, not the room list.
  virtual void setIdentity(Identity identity, std::vector<std::string> rooms) = 0;
  // Auth stages only: records when the session's credentials run out (Session::expiry; {}:
  // never), at once. The core keeps the value and nothing else: the stage that sets it arms
  // its own timer and closes the session. One value per session: of two stages that set it,
  // the last call wins.
  virtual void setExpiry(SessionExpiry expiry) = 0;
  // The configured upstream groups (backend HTTP calls); see upstream.h for the callback rules.
  virtual Upstreams& upstreams() = 0;
  // The process log, with "session <id>: " and the stage's instance name added by the core.
  // Thread: the session's. Never log payloads above debug.
  virtual Logger& log() {
    static class : public Logger {
      bool enabled(LogLevel) const override { return false; }
      void log(LogLevel, std::string_view) override {}
    } none;
    return none;
  }
  // The hub: push to other users, rooms or everyone, join users to rooms, presence. Its `done`
  // callbacks are not guarded like upstream ones: pass an empty function unless the callback
  // captures nothing that can die with the session.
  virtual Hub& hub() = 0;

 protected:
  ~StageCallbacks() = default;
};

// Per-session instance. Lives on one worker thread and holds per-session state only.
// Hooks must not block and must not throw.
class Stage {
 public:
  virtual ~Stage() = default;

  // The session's handshake, before it is accepted (WebSocket: before the 101 is written).
  // Reject here to refuse the connection (HTTP 401/403/429/503 by the code).
  virtual Verdict onOpen() { return Verdict::pass(); }

  // Every inbound message, in order. `message` may be edited in place. A terminal stage consumes
  // the message (its verdict is still respected). Return kPause only after arranging for
  // resume() or reject(); the pipeline's pause_timeout rejects with kTimeout otherwise.
  virtual Verdict onMessage(Message& message) = 0;

  // Every outbound message to this session, when the stage's config asked for it
  // (StageConfig::wantsOutbound). The message is shared with other recipients: read only.
  // kPause is not allowed here (treated as kPass and counted as a bug).
  virtual Verdict onOutbound(const Message& message) {
    (void)message;
    return Verdict::pass();
  }

  // The session is closing. No callbacks may be used after this returns.
  // When a reload moves a session to a new generation, its stages are destroyed without
  // onClose and re-created from the new StageConfigs (onOpen is not run again: the session's
  // identity, set by the auth stage at open, is kept by the core).
  virtual void onClose() {}
};
using StagePtr = std::unique_ptr<Stage>;

// Compiled configuration: immutable, shared by every session of one generation, read
// concurrently by all workers (so it must be thread-safe).
class StageConfig {
 public:
  virtual ~StageConfig() = default;
  // Called on the session's worker when the session opens or moves to a new generation.
  // Must be cheap: no I/O. The core keeps this config alive for as long as any stage it
  // created lives (the session's pipeline holds it and is released after its stages), so a
  // stage may keep a plain reference to it.
  virtual StagePtr createStage(StageCallbacks& callbacks) const = 0;
  // True when onOutbound must be called; false keeps fan-out free of per-session stage calls.
  virtual bool wantsOutbound() const { return false; }
};
using StageConfigPtr = std::shared_ptr<const StageConfig>;

}  // namespace imgate
