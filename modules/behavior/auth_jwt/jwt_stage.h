// SPDX-License-Identifier: Apache-2.0
// The auth.jwt stage: authenticates a session at onOpen() from a JWT in its handshake.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"
#include "jwt.h"
#include "modules/common/bearer_token.h"
#include "token_expiry.h"

namespace imgate::mod::auth_jwt {

// The module's config keys (README.md lists them with their reasons).
std::span<const ParamSpec> jwtStageSchema();

// Largest secret_file read at compile(); an HMAC key beyond the hash's block size is hashed
// down anyway, so anything larger is a wrong path, not a key.
inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;
// Largest public_key_file / jwks_file: a certificate or a JWK Set of kMaxJwksKeys 4096-bit RSA
// keys is far smaller.
inline constexpr size_t kMaxKeyFileBytes = 1024 * 1024;

// What happens when the token of an open session reaches its exp.
enum class ExpiryMode : uint8_t {
  kClose,   // notice, refresh, and close at exp + leeway (README "Token expiry")
  kIgnore,  // the token is checked at connect only; the session outlives it
};

struct JwtSettings {
  Verifier verifier;
  std::string query_param;         // empty: the query parameter is not looked at
  std::string subprotocol_prefix;  // empty: subprotocols are not looked at
  bool required = true;            // false: a session without any token passes, anonymous
  ExpiryMode expiry = ExpiryMode::kClose;
  // The token.expiring notice goes out this long before exp.
  std::chrono::milliseconds refresh_window{60'000};
};

// The module's counters (README "Stats"); they live as long as the process.
struct JwtCounters {
  Counter& accepted;
  Counter& rejected;
  Counter& anonymous;
  Counter& notices;          // token.expiring notices sent
  Counter& refreshed;        // refresh messages accepted
  Counter& refresh_failed;   // refresh messages refused (bad token, other user, no token)
  Counter& expired;          // sessions closed because their token expired
};

using common::FoundToken;
using common::TokenSource;

// common::findToken with the configured query_param and subprotocol_prefix: the query
// parameter, then "Authorization: Bearer", then the first offered "<prefix><token>"
// subprotocol. Only valid while the handshake is (onOpen).
FoundToken findToken(const Session& session, const JwtSettings& settings);

// Compiled config: immutable, shared by every worker. Its stages refer to it: the session's
// pipeline, which holds the config, outlives them (StageRunner destroys stages first).
class JwtStageConfig final : public StageConfig {
 public:
  JwtStageConfig(JwtSettings settings, JwtCounters counters);

  StagePtr createStage(StageCallbacks& callbacks) const override;
  const JwtSettings& settings() const { return settings_; }
  const JwtCounters& counters() const { return counters_; }

  Counter& accepted() const { return counters_.accepted; }
  Counter& rejected() const { return counters_.rejected; }
  Counter& anonymous() const { return counters_.anonymous; }

 private:
  JwtSettings settings_;
  JwtCounters counters_;
};

// With expiry: close, the stage of a session whose token has an exp keeps one timer, embedded
// (no allocation), set for the nearer of the token.expiring notice at exp - refresh_window and
// the close (Errc::kUnauthenticated, "token expired") at exp + leeway. The exp, and whether the
// notice went out, live with the session only (StageCallbacks::setExpiry, Session::expiry), so
// a stage re-created by a reload (no onOpen) re-arms from there in its constructor. The stage
// is 56 bytes (the 64-byte class).
class JwtStage final : public Stage, private TimerSlot {
 public:
  // A notice due while the session is still being accepted (a later stage paused its open) is
  // retried this often: replies before the accept are not delivered.
  static constexpr std::chrono::milliseconds kNoticeRetry{100};

  JwtStage(const JwtStageConfig& config, StageCallbacks& callbacks);
  JwtStage(const JwtStage&) = delete;
  JwtStage& operator=(const JwtStage&) = delete;

  // Finds and verifies the token, then sets the identity {app, user, device}; the device falls
  // back to the handshake's "device" query parameter. Rejects with kUnauthenticated. With
  // expiry: close and a token with exp, starts tracking the expiry.
  Verdict onOpen() override;
  // With expiry: close, consumes refresh messages (parseRefresh): verifies the new token with
  // the same Verifier, requires the session's user and app, moves the deadline, answers with
  // an ack (ok, or unauthenticated and a reason; a refused refresh leaves the old deadline) and
  // drops the message, so it never reaches later stages. Every other message passes.
  Verdict onMessage(Message& message) override;
  // Forgets the session's expiry.
  void onClose() override;

 private:
  void track(int64_t exp_s);
  void untrack();
  void arm();  // from the session's expiry
  // Sets the timer for the nearer of the notice (at notice_at_ms) and the close.
  void schedule(int64_t now_ms, int64_t notice_at_ms);
  int64_t noticeAtMs(const SessionExpiry& expiry) const;  // INT64_MAX once it went out
  static void onTimerSlot(TimerSlot& slot);
  void onTimer();
  void noticeDue();
  Verdict refresh(const RefreshRequest& request);
  int64_t nowSeconds() const;

  const JwtStageConfig& config_;
  StageCallbacks& callbacks_;
  bool timer_for_close_ = false;
};

// Validates the section beyond what the schema checks (key sources, algorithm names, that each
// algorithm has a key), reads secret_file, public_key_file and jwks_file relative to
// context.configDir() (at every load, so a reload picks up rotated keys), and warns through
// context.log() about secrets shorter than RFC 7518 §3.2 asks for. Errors are kInvalidConfig.
// All keys end up in settings().verifier.keys: the secret and the PEM key without kid, then the
// JWK Set's keys.
[[nodiscard]] Result<StageConfigPtr> compileJwtStage(const ConfigView& config,
                                                     LoadContext& context);

}  // namespace imgate::mod::auth_jwt
