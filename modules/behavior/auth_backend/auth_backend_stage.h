// SPDX-License-Identifier: Apache-2.0
// auth.backend: backend-delegated authentication. At onOpen the session's credentials and
// handshake metadata are POSTed to an upstream group; the answer sets the identity, joins rooms
// and may bound the session's life, or refuses the handshake. Decisive answers are cached by
// token digest. Messages are not inspected.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth_cache.h"
#include "imgate/sdk/module.h"

namespace imgate::mod::auth_backend {

struct BackendSettings {
  std::string upstream;
  std::string path = "/auth";
  std::chrono::milliseconds timeout{2000};
  std::vector<std::string> forward_headers = {"origin", "user-agent", "x-forwarded-for"};
  std::vector<std::string> forward_query = {"device"};
  std::string query_param = "token";         // empty: not looked at
  std::string subprotocol_prefix = "bearer.";  // empty: not looked at
  bool require_token = true;  // false: sessions without a token are still sent, "token": null
  std::string default_app = "default";
  std::chrono::milliseconds cache_ttl{60'000};    // 0: allowed answers are not cached
  std::chrono::milliseconds negative_ttl{5'000};  // 0: refusals are not cached
  size_t cache_size = 100'000;
  size_t max_answer = 64 * 1024;  // bytes of a backend answer
  size_t max_rooms = 256;         // entries of an answer's "rooms"
};

// The token of a handshake: common::findToken (as auth.jwt) with the configured query_param
// and subprotocol_prefix; the query parameter, "Authorization: Bearer", the first offered
// subprotocol "<prefix><token>". Valid only during onOpen.
std::optional<std::string> findToken(const Session& session, const BackendSettings& settings);

// The JSON body POSTed to the backend (README "The request"): {"token", "headers", "query",
// "peer", "protocol", "listener"}; token null when absent, headers and query only with the
// configured names that are present (header names lower case).
std::string requestBody(const Session& session, const std::optional<std::string>& token,
                        const BackendSettings& settings);

// Reads the backend's answer (README "The answer"):
//  - 2xx with a JSON object holding a non-empty "uid" (string or integer): allowed. "app"
//    (default: default_app), "device", "rooms" (array of non-empty strings, at most max_rooms)
//    and "expire_at" (Unix seconds) are optional; unknown members are ignored;
//  - 401 / 403: refused with kUnauthenticated / kPermissionDenied and the body's "reason"
//    (a JSON string, cut to kMaxReasonBytes; a default otherwise).
// Anything else (another status, a transport error or timeout, a 2xx body that is not as
// above, an answer over max_answer) is an error whose message says what went wrong, for the
// log. The stage turns it into kUnavailable "auth backend unavailable" (fail closed).
[[nodiscard]] Result<AuthAnswer> interpretAnswer(const Result<UpstreamResponse>& result,
                                                 const BackendSettings& settings);

// A reason longer than this is cut (at a UTF-8 boundary): it ends up in an HTTP error body or
// a WebSocket close frame, whose reason holds 123 bytes.
inline constexpr size_t kMaxReasonBytes = 120;

// The module's counters (README "Stats").
struct BackendCounters {
  Counter& accepted;
  Counter& rejected;     // refused by the backend, or missing token, or expire_at passed
  Counter& unavailable;  // backend error, timeout, bad answer
  Counter& cache_hits;
  Counter& cache_misses;
  Counter& expired;  // sessions closed at their expire_at
};

class BackendConfig final : public StageConfig,
                            public std::enable_shared_from_this<BackendConfig> {
 public:
  BackendConfig(BackendSettings settings, BackendCounters counters);
  StagePtr createStage(StageCallbacks& callbacks) const override;

  const BackendSettings& settings() const { return settings_; }
  const BackendCounters& counters() const { return counters_; }
  // Null when both cache_ttl and negative_ttl are 0 (or cache_size is 0).
  AuthCache* cache() const { return cache_.get(); }
  // At most one "backend unavailable" warning per second per config, whatever the connect rate.
  bool shouldWarn(int64_t now_ms) const;

 private:
  BackendSettings settings_;
  BackendCounters counters_;
  std::unique_ptr<AuthCache> cache_;
  mutable std::atomic<int64_t> last_warn_ms_{0};
};

[[nodiscard]] Result<StageConfigPtr> compileBackend(const ConfigView& config,
                                                    LoadContext& context);
std::span<const ParamSpec> backendSchema();

}  // namespace imgate::mod::auth_backend
