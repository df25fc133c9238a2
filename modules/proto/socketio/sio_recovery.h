// SPDX-License-Identifier: Apache-2.0
// Socket.IO connection state recovery (socket.io's `connectionStateRecovery`) on imgate's
// streams (docs/reliability.md). The reference server appends an opaque "offset" string as the
// last argument of every event it sends without an ack id; socket.io-client keeps the last one
// it saw and sends it back in its next CONNECT as auth {pid, offset}. imgate's offset is the
// session's position in every stream it belongs to, after the event that carries it:
//
//   offset   = "" | entry *( "|" entry )
//   entry    = stream "~" epoch "~" seq
//   stream   = 1*( safe / "%" HEX HEX )   ; HEX upper case; every other byte escaped
//   epoch    = lower-case hex, no leading zeros ("0" for none)
//   seq      = decimal, no leading zeros
//   safe     = ALPHA / DIGIT / "-" / "." / "_" / ":" / "/" / "@" / "!" / "$" / "&" / "'" /
//              "(" / ")" / "*" / "+" / "," / ";" / "="
//
// e.g. "room:lobby%7C2~1b2c~3|user~9f3a0c11d2e4b5a6~12". Room names may hold any byte; the
// escaping keeps the separators unambiguous and the offset plain printable ASCII, so it travels
// through JSON and JavaScript strings unchanged.
// All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::socketio {

// Where a session stands in one stream: `seq` is the last message it got (0: none yet).
struct StreamPosition {
  std::string stream;  // "user", "room:<name>", "all"
  uint64_t epoch = 0;
  uint64_t seq = 0;
  bool operator==(const StreamPosition&) const = default;
};

// Most streams an offset tracks (module key `recovery_max_streams`). Every event a recovering
// session gets carries the whole offset (about 30 bytes plus the name per stream), so the bound
// keeps that overhead small; 100 covers a user stream, "all" and a large set of joined rooms.
inline constexpr size_t kDefaultRecoveryMaxStreams = 100;

// The offset of a session in more streams than the bound: it decodes as malformed, so the
// client's next CONNECT gets a fresh session rather than a recovery that would skip streams.
inline constexpr std::string_view kUnrecoverableOffset = "-";

// The offset text for `positions`, in the given order (callers keep them sorted by stream).
std::string encodeRecoveryOffset(const std::vector<StreamPosition>& positions);

// Parses an offset, accepting exactly what encodeRecoveryOffset() writes: for an accepted
// text, encodeRecoveryOffset(result) == offset. Errors (kBadRequest, with the reason): more
// than `max_streams` entries, an empty or badly escaped stream name, a stream named twice, an
// epoch or seq that is not canonical or does not fit 64 bits, missing separators.
[[nodiscard]] Result<std::vector<StreamPosition>> decodeRecoveryOffset(std::string_view offset,
                                                                       size_t max_streams);

// The handshake field the core reads to resume (header x-imgate-resume, codec.h):
// {"<stream>":{"epoch":"<lower-case hex>","seq":N},...}.
std::string resumeJson(const std::vector<StreamPosition>& positions);

}  // namespace imgate::mod::socketio
