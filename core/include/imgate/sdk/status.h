// SPDX-License-Identifier: Apache-2.0
// Errors as values. Every fallible SDK call returns Result<T> or Status; modules never throw
// across a hook (the core catches anyway and turns it into kInternal for that session only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>  // Debian libexpected-dev; std::expected once we move to C++23.

namespace imgate {

// Error categories. Stages and codecs report a category plus a reason; each protocol module
// owns the one table that maps a category to its wire form (WebSocket close code, HTTP status,
// ...). The numeric values are part of the ABI: append only.
enum class Errc : uint16_t {
  kNone = 0,            // normal closure (WebSocket 1000)
  kInvalidConfig,       // load/reload time only
  kProtocolError,       // peer sent bytes the codec cannot accept (WS 1002, HTTP 400)
  kInvalidPayload,      // well-framed but invalid content, e.g. bad UTF-8 (WS 1007)
  kMessageTooBig,       // a limit on message or frame size (WS 1009, HTTP 413)
  kUnauthenticated,     // missing, bad or expired credentials (HTTP 401, WS 4001)
  kPermissionDenied,    // authenticated but not allowed (HTTP 403, WS 4003)
  kResourceExhausted,   // rate limit, queue full, slow consumer (HTTP 429, WS 4029)
  kUnavailable,         // no healthy upstream, draining (HTTP 503, WS 1013)
  kTimeout,             // idle timeout, pause timeout (WS 4000)
  kEvicted,             // replaced by a newer session of the same user (WS 4009)
  kKicked,              // closed by the push API (WS 4010)
  kShutdown,            // the server is stopping or draining (WS 1001)
  kInternal,            // a bug; counted and logged with the module name (WS 1011, HTTP 500)
  kNotFound,            // HTTP 404
  kBadRequest,          // HTTP 400 for well-formed requests with bad content
  kSlowConsumer,        // the client reads too slowly: outbound buffer full (WS 4008)
};

// Stable lower-case name, used in logs, metrics labels and JSON error bodies.
std::string_view errcName(Errc code) noexcept;

struct Error {
  Errc code = Errc::kInternal;
  std::string message;  // lower case, no trailing period; the core adds module/file/line
};

template <class T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(Errc code, std::string message) {
  return tl::unexpected<Error>(Error{code, std::move(message)});
}

inline std::string_view errcName(Errc code) noexcept {
  switch (code) {
    case Errc::kNone: return "none";
    case Errc::kInvalidConfig: return "invalid_config";
    case Errc::kProtocolError: return "protocol_error";
    case Errc::kInvalidPayload: return "invalid_payload";
    case Errc::kMessageTooBig: return "message_too_big";
    case Errc::kUnauthenticated: return "unauthenticated";
    case Errc::kPermissionDenied: return "permission_denied";
    case Errc::kResourceExhausted: return "resource_exhausted";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kTimeout: return "timeout";
    case Errc::kEvicted: return "evicted";
    case Errc::kKicked: return "kicked";
    case Errc::kShutdown: return "shutdown";
    case Errc::kInternal: return "internal";
    case Errc::kNotFound: return "not_found";
    case Errc::kBadRequest: return "bad_request";
    case Errc::kSlowConsumer: return "slow_consumer";
  }
  return "unknown";
}

}  // namespace imgate
