// SPDX-License-Identifier: Apache-2.0
// Engine.IO protocol v4 packets (socket.io docs/engine.io-protocol/v4-current.md), sans-I/O:
// WebSocket frames and HTTP long-polling payloads in and out, the handshake ("open") JSON,
// session ids and the error table of the reference server (socket.io packages/engine.io).
// Decoders accept and reject what engine.io-parser does, except where noted. All functions are
// pure and thread-safe except newSessionId(), which reads OpenSSL's RNG (also thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::socketio {

// Wire digits '0'..'6'.
enum class EioType : uint8_t { kOpen, kClose, kPing, kPong, kMessage, kUpgrade, kNoop };

// "open", "close", ... as engine.io names them; for logs.
std::string_view eioTypeName(EioType type);

// One packet. `binary` packets are always messages (v4 has no typed binary packets); their
// `data` is raw bytes. Text packets carry their data after the type digit, possibly empty.
struct EioPacket {
  EioType type = EioType::kMessage;
  bool binary = false;
  std::string data;
};

// ---- WebSocket transport: one packet per frame ------------------------------------------------

// A text frame: type digit + data. As in engine.io-parser's decodePacket, a text frame starting
// with 'b' is a base64-encoded binary message (the polling form; clients never send it over
// WebSocket, but the reference accepts it). No UTF-8 check here: the WebSocket codec has
// validated text frames, and the Socket.IO parser validates the JSON it carries.
// Errors (kProtocolError): "empty packet", "unknown packet type", "invalid base64".
[[nodiscard]] Result<EioPacket> parseEioText(std::string_view frame);

// A binary frame is always a binary message, the frame payload being the data; cannot fail.
EioPacket parseEioBinary(std::string_view frame);

// The frame payload for `packet`: the frame is binary iff packet.binary (then the bytes are
// packet.data as is), otherwise text (type digit + data).
std::string encodeEioFrame(const EioPacket& packet);

// ---- HTTP long-polling payloads -------------------------------------------------------------

struct EioLimits {
  // Largest request body accepted, in bytes. 1e6 is the reference server's maxHttpBufferSize
  // default, which it also announces to clients as "maxPayload" so they split larger batches.
  // The module should check Content-Length against it before buffering (the reference answers
  // 413 then).
  size_t max_payload_bytes = 1000000;
  // Most packets in one body. A client batches everything buffered (up to maxPayload bytes),
  // so an app emitting in a loop legitimately sends thousands; this bounds the decoded vector
  // (1e6 bytes of "2\x1e" would otherwise be 500k packets, ~20 MB of bookkeeping).
  size_t max_packets = 10000;
};

// Decodes one complete request body: packets separated by '\x1e' (record separator), each a
// type digit + data, or 'b' + base64 (standard alphabet, padding optional) for a binary message.
// Errors: body larger than max_payload_bytes or more than max_packets packets
// (kMessageTooBig); "empty payload", "empty packet" (also a leading, trailing or doubled
// separator), "unknown packet type", "invalid base64" (kProtocolError).
// Differences from engine.io-parser, which is more lenient: it delivers the packets before
// the first bad one and then closes, we reject the body as a whole (the session closes either
// way); Node's base64 decoder skips invalid characters and accepts '-' and '_', we refuse them
// (every client encodes with the standard alphabet).
[[nodiscard]] Result<std::vector<EioPacket>> decodeEioPayload(std::string_view body,
                                                              const EioLimits& limits = {});

// Appends one packet in payload form (type digit + data, or 'b' + padded base64), without a
// separator. Precondition: text data contains no '\x1e' (the protocol has no escape for it;
// JSON.stringify output never contains a raw control character, so Socket.IO packets and the
// handshake never do).
void appendEioPayloadPacket(std::string& out, const EioPacket& packet);

// Packets joined by '\x1e', as engine.io-parser's encodePayload does; `packets` must not be
// empty (a response always carries at least one packet, a noop if nothing else).
std::string encodeEioPayload(std::span<const EioPacket> packets);

// ---- Handshake ------------------------------------------------------------------------------

// The JSON data of the "open" packet, byte for byte what the reference server sends
// (JSON.stringify of {sid, upgrades, pingInterval, pingTimeout, maxPayload}, in that order):
//   {"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,
//    "pingTimeout":20000,"maxPayload":1000000}
// The caller sends it as EioPacket{EioType::kOpen, false, json}.
std::string openPacketJson(std::string_view sid, std::span<const std::string> upgrades,
                           uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                           uint64_t max_payload);

// Length of the ids newSessionId() makes.
inline constexpr size_t kSessionIdLength = 20;

// A new session id: 15 bytes from OpenSSL RAND_bytes as 20 characters of base64url, the same
// shape as the reference's base64id but with all 120 bits random (base64id spends 24 of them on
// a sequence number). Fails (kInternal) only if the RNG cannot be seeded; there is deliberately
// no weaker fallback, since the sid is the only credential of a polling request.
[[nodiscard]] Result<std::string> newSessionId();

// Cheap shape check for a sid from a query string, before any lookup: exactly
// kSessionIdLength characters of the base64url alphabet. Rejects anything we cannot have issued.
bool plausibleSessionId(std::string_view sid);

// ---- Errors of the reference server (Server.errors / errorMessages) -------------------------

enum class EioError : uint8_t {
  kUnknownTransport = 0,
  kUnknownSid = 1,
  kBadHandshakeMethod = 2,
  kBadRequest = 3,
  kForbidden = 4,
  kUnsupportedProtocolVersion = 5,
};

// "Transport unknown", "Session ID unknown", "Bad handshake method", "Bad request",
// "Forbidden", "Unsupported protocol version".
std::string_view eioErrorMessage(EioError error);

// HTTP status of a polling request refused with `error`: 403 for kForbidden, 400 otherwise
// (abortRequest in the reference). A refused WebSocket upgrade is always answered
// "400 Bad Request" with the message as a text/html body (abortUpgrade).
int eioErrorHttpStatus(EioError error);

// Body of that response (Content-Type: application/json), e.g.
// {"code":1,"message":"Session ID unknown"}. A non-empty `message` replaces the standard one,
// as the reference does with the message an allowRequest hook gives for kForbidden.
std::string eioErrorBody(EioError error, std::string_view message = {});

}  // namespace imgate::mod::socketio
