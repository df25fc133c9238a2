// SPDX-License-Identifier: Apache-2.0
// The auth.jwt stage: authenticates a session at onOpen() from a JWT in its handshake.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"
#include "jwt.h"

namespace imgate::mod::auth_jwt {

// The module's config keys (README.md lists them with their reasons).
std::span<const ParamSpec> jwtStageSchema();

// Largest secret_file read at compile(); an HMAC key beyond the hash's block size is hashed
// down anyway, so anything larger is a wrong path, not a key.
inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;
// Largest public_key_file / jwks_file: a certificate or a JWK Set of kMaxJwksKeys 4096-bit RSA
// keys is far smaller.
inline constexpr size_t kMaxKeyFileBytes = 1024 * 1024;

struct JwtSettings {
  Verifier verifier;
  std::string query_param;         // empty: the query parameter is not looked at
  std::string subprotocol_prefix;  // empty: subprotocols are not looked at
  bool required = true;            // false: a session without any token passes, anonymous
};

enum class TokenSource : uint8_t { kNone, kQuery, kHeader, kSubprotocol };

struct FoundToken {
  TokenSource source = TokenSource::kNone;
  std::string token;
};

// Looks for the token, first match wins: the query parameter, then "Authorization: Bearer",
// then the first offered subprotocol starting with the prefix. Empty values are skipped, as is
// an Authorization header with another scheme. Only valid while the handshake is (onOpen).
FoundToken findToken(const Session& session, const JwtSettings& settings);

// Compiled config: immutable, shared by every worker. Always owned by a shared_ptr (stages
// keep it alive for as long as they live).
class JwtStageConfig final : public StageConfig,
                             public std::enable_shared_from_this<JwtStageConfig> {
 public:
  JwtStageConfig(JwtSettings settings, Counter& accepted, Counter& rejected, Counter& anonymous);

  StagePtr createStage(StageCallbacks& callbacks) const override;
  const JwtSettings& settings() const { return settings_; }

  Counter& accepted() const { return accepted_; }
  Counter& rejected() const { return rejected_; }
  Counter& anonymous() const { return anonymous_; }

 private:
  JwtSettings settings_;
  Counter& accepted_;
  Counter& rejected_;
  Counter& anonymous_;
};

class JwtStage final : public Stage {
 public:
  JwtStage(std::shared_ptr<const JwtStageConfig> config, StageCallbacks& callbacks);

  // Finds and verifies the token, then sets the identity {app, user, device}; the device falls
  // back to the handshake's "device" query parameter. Rejects with kUnauthenticated.
  Verdict onOpen() override;
  // Authentication happens once per session; messages are not inspected.
  Verdict onMessage(Message& message) override;

 private:
  std::shared_ptr<const JwtStageConfig> config_;
  StageCallbacks& callbacks_;
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
