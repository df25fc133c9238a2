// SPDX-License-Identifier: Apache-2.0
// The "imgate.v1" JSON envelope (docs/websocket.md, "Envelope"): one JSON object per text
// message, carrying what plain WebSocket cannot (ids, events, stream positions, acks). Pure
// functions, no session state, so WsCodec can share envelope encodings across a fan-out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/message.h"
#include "imgate/sdk/status.h"

namespace imgate::mod::websocket {

// The subprotocol a client offers to get the envelope.
inline constexpr std::string_view kEnvelopeSubprotocol = "imgate.v1";
// Its binary variant: whole proto.tcp_frame frames in binary messages (WsCodecOptions::
// binary_envelope; docs/websocket.md "Envelope, binary").
inline constexpr std::string_view kBinaryEnvelopeSubprotocol = "imgate.v1.bin";
// Largest seq a client may send: 2^53, the end of the integers a JavaScript number holds
// exactly (browsers parse JSON numbers as doubles).
inline constexpr uint64_t kMaxEnvelopeSeq = uint64_t{1} << 53;
// Nesting allowed inside fields the server ignores (forward compatibility); bounds the
// parser's recursion. Known fields are flat.
inline constexpr uint32_t kMaxEnvelopeDepth = 16;
// The answer to {"t":"ping"}.
inline constexpr std::string_view kPongEnvelope = R"({"t":"pong"})";

// One decoded client envelope.
struct Uplink {
  enum class Kind : uint8_t {
    kMessage,  // `message` goes to the pipeline
    kPing,     // answer kPongEnvelope; nothing reaches the pipeline
  };
  Kind kind = Kind::kMessage;
  Message message;  // payload never null for kMessage
};

// Parses the whole text of one client message. `text` is parsed in place (consumed).
//   {"t":"msg","id":"c1","event":"chat","data":"..."}  -> kData text (or "data_base64": binary);
//                                                         meta ack_required=1 when id is set
//   {"t":"ack","stream":"user","seq":N}                -> kAck, stream ("" when absent), seq
//   {"t":"read","stream":"user","seq":N}               -> kControl event "read", stream, seq
//   {"t":"join"|"leave","room":"r","id":".."}          -> kControl event join/leave, kRoom
//   {"t":"ping"}                                       -> Kind::kPing
// Unknown keys are ignored (any JSON value nested at most kMaxEnvelopeDepth deep). Fails with
// kInvalidPayload and a short reason on: invalid JSON (strict RFC 8259, trailing bytes
// included), a non-object, missing or unknown "t", a repeated or mistyped known key, "seq"
// missing where required or not an integer in 1..2^53, "data" together with "data_base64",
// invalid base64, a missing or empty room, a string that is not valid UTF-8 once unescaped
// (a lone surrogate escape), and control characters in id, event, stream or room.
[[nodiscard]] Result<Uplink> decodeEnvelope(std::string text);

// The envelope for one downlink message; depends on nothing but `message`, so equal messages
// give equal bytes for every session.
//   kAck            {"t":"ack","id","status":"ok"|<meta status>,"reason"(failed only),"ts",
//                   "event","data"|"data_base64"(non-empty payload only)}
//   kControl "read" {"t":"read","stream","seq","device":<meta device>}
//   otherwise       {"t":"push"|"control"|"presence","stream","epoch","seq"(seq != 0 only),
//                   "ack":true(reliable only),"id","event","data"|"data_base64"}
// id and event are written only when non-empty; binary payloads go to data_base64 (standard
// alphabet, padded). Strings are written as JSON.stringify writes them, invalid UTF-8 as U+FFFD
// (appendJsonString(), modules/common/json_text.h), so the text message is always valid UTF-8.
std::string encodeEnvelope(const Message& message);

// The hello answer: {"t":"welcome","session":"<decimal>","app","user","device","server_time",
// "idle_timeout","ping_interval","streams":{"<stream>":{"epoch","seq","recovery","replayed"}}}.
std::string encodeWelcome(const SessionOpened& opened);

}  // namespace imgate::mod::websocket
