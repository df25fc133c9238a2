// SPDX-License-Identifier: Apache-2.0
// The backend push API (docs/http-api.md): authenticates one HTTP request, routes it on its full
// path, turns JSON into Hub calls and answers JSON. No sockets and no config parsing here, so
// tests drive it with a fake Hub and a fake HttpExchange.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"

namespace imgate::mod::http_push {

// Copied from the validated config section; the defaults equal the schema's.
struct PushApiOptions {
  // Accepted API keys. May be empty only when allow_anonymous is set (compile() enforces it).
  std::vector<std::string> api_keys;
  // Requests without a key are accepted. A key that is sent is still checked when api_keys is
  // not empty, so a misconfigured backend learns about it instead of silently passing.
  bool allow_anonymous = false;
  // Tenant used when neither the JSON field "app" nor the query parameter ?app= names one.
  std::string default_app = "default";
  // Most push objects in one {"messages":[...]} batch.
  size_t max_batch = 1000;
  // Most ids in one target list (to.users, to.sessions, to.rooms, room member lists), counted
  // before duplicates are removed, so the work per request is bounded by the request itself.
  size_t max_targets = 10000;
  // Deepest nesting of arrays/objects accepted in a body. Parsing is iterative, but "data" is
  // re-serialized recursively, so this bounds stack use.
  size_t max_json_depth = 64;
};

// Domain counters. Each may be null (tests that do not look at them). Counters are thread-safe.
struct PushApiCounters {
  Counter* requests = nullptr;      // every request handled
  Counter* errors = nullptr;        // every 4xx/5xx this module answered (401 included)
  Counter* unauthorized = nullptr;  // 401 answers
  Counter* messages = nullptr;      // push objects handed to Hub::push
};

// Immutable once built and shared by every worker: handle() keeps no state between calls.
class PushApi {
 public:
  explicit PushApi(PushApiOptions options, PushApiCounters counters = {});

  // Handles one request on the exchange's worker thread. Always answers exactly once through
  // exchange->respond(): before returning for errors and synchronous endpoints, or later from a
  // Hub completion callback (which runs on the same thread) for push and kick. The callbacks
  // hold a reference to the exchange, so it stays valid until they ran. Never throws on bad
  // input; every failure is a JSON error answer.
  void handle(const HttpExchangePtr& exchange) const;

  const PushApiOptions& options() const { return options_; }

 private:
  PushApiOptions options_;
  PushApiCounters counters_;
};

// ---- Helpers, exposed for tests -----------------------------------------------------------

// RFC 4648 §4 base64 (standard alphabet). Padding is optional, but when present it must be
// complete; whitespace and the URL-safe alphabet are refused. Error: kBadRequest.
[[nodiscard]] Result<std::string> decodeBase64(std::string_view in);

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool isValidUtf8(std::string_view text);

// Compares `presented` with `expected` in time that depends only on the length of `presented`.
bool constantTimeEquals(std::string_view presented, std::string_view expected);

}  // namespace imgate::mod::http_push
