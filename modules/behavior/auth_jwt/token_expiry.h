// SPDX-License-Identifier: Apache-2.0
// Token expiry on open sessions: the wire-neutral messages of the refresh exchange.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
