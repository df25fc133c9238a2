// SPDX-License-Identifier: Apache-2.0
// Where a handshake carries a bearer token, shared by the auth modules (auth.jwt, auth.backend)
// so that every one of them looks in the same places in the same order. Header-only so each
// module, built in or as a .so, carries its own copy and needs no core symbol.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "imgate/sdk/http.h"
#include "imgate/sdk/stage.h"

namespace imgate::mod::common {

// The places looked at; an empty name turns that place off (the Authorization header is
// always looked at).
struct TokenPlaces {
  std::string_view query_param;         // e.g. "token": ?token=<token>
  std::string_view subprotocol_prefix;  // e.g. "bearer.": Sec-WebSocket-Protocol bearer.<token>
};

enum class TokenSource : uint8_t { kNone, kQuery, kHeader, kSubprotocol };

struct FoundToken {
  TokenSource source = TokenSource::kNone;  // kNone: no token anywhere (token is empty)
  std::string token;
};

// Looks for the token, first match wins: the query parameter, then "Authorization: Bearer"
// (RFC 6750 §2.1), then the first offered subprotocol starting with the prefix. Empty values
// are skipped, as is an Authorization header with another scheme; the token is not checked
// for syntax (the caller verifies it). Valid only while the handshake is (onOpen): the core
// frees it once the session is accepted.
inline FoundToken findToken(const Session& session, const TokenPlaces& places) {
  if (!places.query_param.empty()) {
    auto value = session.handshakeQuery(places.query_param);
    if (value && !value->empty()) {
      return {TokenSource::kQuery, std::move(*value)};
    }
  }
  if (const auto auth = session.handshakeHeader("authorization")) {
    // "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
    constexpr std::string_view kScheme = "bearer ";
    if (auth->size() > kScheme.size() &&
        http_detail::iequals(auth->substr(0, kScheme.size()), kScheme)) {
      const std::string_view token = http_detail::trim(auth->substr(kScheme.size()));
      if (!token.empty()) {
        return {TokenSource::kHeader, std::string(token)};
      }
    }
  }
  const std::string_view prefix = places.subprotocol_prefix;
  if (!prefix.empty()) {
    for (const std::string& offered : session.offeredSubprotocols()) {
      const std::string_view p(offered);
      if (p.size() > prefix.size() && p.substr(0, prefix.size()) == prefix) {
        return {TokenSource::kSubprotocol, std::string(p.substr(prefix.size()))};
      }
    }
  }
  return {};
}

}  // namespace imgate::mod::common
