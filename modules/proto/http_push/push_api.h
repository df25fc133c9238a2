// SPDX-License-Identifier: Apache-2.0
// The backend push API (docs/http-api.md): authenticates one HTTP request, routes it on its full
// path, turns JSON into Hub calls and answers JSON. No sockets and no config parsing here, so
// tests drive it with a fake Hub and a fake HttpExchange.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"
#include "rate_limiter.h"

namespace imgate::mod::http_push {

// What a key may do. Every endpoint needs exactly one scope (docs/http-api.md, "Scopes");
// kAdmin allows every endpoint.
enum class Scope : uint8_t {
  kPush = 1,   // POST /v1/push, POST and DELETE /v1/rooms/{room}/members
  kRead = 2,   // GET /v1/users/{uid}, GET /v1/rooms/{room}/members, GET /v1/stats
  kAdmin = 4,  // DELETE /v1/users/{uid}/sessions (kick), and everything else
};
using ScopeSet = uint8_t;  // bits of Scope
inline constexpr ScopeSet kAllScopes = 7;

// "push", "read", "admin"; nullopt for anything else (case-sensitive).
std::optional<Scope> parseScope(std::string_view name);
std::string_view scopeName(Scope scope);
// True when `scopes` allows an endpoint that needs `needed`.
inline bool allows(ScopeSet scopes, Scope needed) {
  return (scopes & (static_cast<ScopeSet>(needed) | static_cast<ScopeSet>(Scope::kAdmin))) != 0;
}

// One accepted key with what it may do. The secret is never logged nor put in a response:
// reasons name the key by `name`.
struct ApiKey {
  std::string name;  // "keys[1]" unless configured; "api_keys[0]" for old-style keys
  std::string key;
  ScopeSet scopes = kAllScopes;
  std::vector<std::string> apps;  // tenants the key may use; empty: every app
  RateLimiterSharedPtr limiter;   // null: no rate limit
};

// Copied from the validated config section; the defaults equal the schema's.
struct PushApiOptions {
  // Old-style keys: every scope, every app, no rate limit. Kept beside `keys`.
  std::vector<std::string> api_keys;
  // Keys with scopes, apps and a rate limit. api_keys and keys may both be empty only when
  // allow_anonymous is set (compile() enforces it). A key appears once across both lists.
  std::vector<ApiKey> keys;
  // Requests without a key are accepted, with every scope and no limit. A key that is sent is
  // still checked when any key is configured, so a misconfigured backend learns about it
  // instead of silently passing.
  bool allow_anonymous = false;
  // Tenant used when neither the JSON field "app" nor the query parameter ?app= names one.
  std::string default_app = "default";
  // Most push objects in one {"messages":[...]} batch.
  size_t max_batch = 1000;
  // Most ids in one target list (to.users, to.sessions, to.rooms, room member lists), counted
  // before duplicates are removed, so the work per request is bounded by the request itself.
  size_t max_targets = 10000;
  // Deepest nesting of arrays/objects accepted in a body. It is counted before parsing (a body
  // over it gets the strict, iterative parse, which recurses nowhere), so it bounds the stack
  // that the recursive parse and the re-serialization of "data" use.
  size_t max_json_depth = 64;
};

// Domain counters. Each may be null (tests that do not look at them). Counters are thread-safe.
struct PushApiCounters {
  Counter* requests = nullptr;      // every request handled
  Counter* errors = nullptr;        // every 4xx/5xx this module answered (401 included)
  Counter* unauthorized = nullptr;  // 401 answers
  Counter* messages = nullptr;      // push objects handed to Hub::push
  Counter* forbidden = nullptr;     // 403 answers (scope or app not allowed for the key)
  Counter* rate_limited = nullptr;  // 429 answers (the key's rate limit)
};

// Immutable once built and shared by every worker: handle() keeps no state between calls.
class PushApi {
 public:
  explicit PushApi(PushApiOptions options, PushApiCounters counters = {});

  // Handles one request on the exchange's worker thread. Always answers exactly once through
  // exchange->respond(): before returning for errors and synchronous endpoints, or later from a
  // Hub completion callback (which runs on the same thread) for push and kick. The callbacks
  // hold a reference to the exchange, so it stays valid until they ran. Never throws on bad
  // input; every failure is a JSON error answer. Rate limits read the clock from
  // exchange->dispatcher().now(); the buckets are the only state shared between calls (they
  // lock), so handle() may run on every worker at once.
  void handle(const HttpExchangePtr& exchange) const;

  const PushApiOptions& options() const { return options_; }

 private:
  PushApiOptions options_;
  PushApiCounters counters_;
  std::vector<ApiKey> all_keys_;  // api_keys (all scopes) then keys, as compared per request
};

// ---- Helpers, exposed for tests -----------------------------------------------------------

// RFC 4648 §4 base64 (standard alphabet). Padding is optional, but when present it must be
// complete; whitespace and the URL-safe alphabet are refused. Error: kBadRequest.
[[nodiscard]] Result<std::string> decodeBase64(std::string_view in);

// Compares `presented` with `expected` in time that depends only on the length of `presented`.
bool constantTimeEquals(std::string_view presented, std::string_view expected);

}  // namespace imgate::mod::http_push
