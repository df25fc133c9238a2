// SPDX-License-Identifier: Apache-2.0
#pragma once

// Client-side wire helpers of the load generator: encoders and incremental parsers for the
// WebSocket, TCP frame and HTTP/1.1 forms imgate speaks, JWT minting and the payload format
// that carries publish timestamps. Sans-I/O: bytes in, views out, so the tests feed them split
// at every offset.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace imgate::bench::load {

enum class Parse : uint8_t { kNeedMore, kOk, kError };

// ---- Encodings ------------------------------------------------------------------------------

std::string base64(std::string_view in);
std::string base64Url(std::string_view in);  // RFC 4648 §5, no padding (JWT)

// An HS256 JWT {"sub":user,"iat":iat_s,"exp":exp_s} signed with `secret` (OpenSSL HMAC).
std::string makeJwt(std::string_view secret, std::string_view user, int64_t iat_s, int64_t exp_s);

// Sec-WebSocket-Key derived from a per-run salt and the connection id, so the key need not be
// stored per connection to check the server's Sec-WebSocket-Accept.
std::string wsKey(uint64_t salt, uint32_t id);
std::string wsAccept(std::string_view key);

// ---- HTTP/1.1 response heads ------------------------------------------------------------------

struct HttpHead {
  int status = 0;
  size_t head_len = 0;  // bytes up to and including the blank line
  uint64_t content_length = 0;
  bool has_length = false;
  bool chunked = false;
};

// Parses a response head at the start of `buf`. kNeedMore until the blank line arrived; kError
// for a malformed status line, a head longer than max_head or a bad Content-Length.
Parse parseHttpHead(std::string_view buf, size_t max_head, HttpHead& out);

// The value of header `name` (case-insensitive) in a head, trimmed; nullopt when absent.
std::optional<std::string_view> headerValue(std::string_view head, std::string_view name);

// Parses a request head (the test backend's side): method, Content-Length, head length.
struct HttpRequestHead {
  size_t head_len = 0;
  uint64_t content_length = 0;
  bool close = false;  // Connection: close
};
Parse parseHttpRequestHead(std::string_view buf, size_t max_head, HttpRequestHead& out);

// One whole answer on a keep-alive connection (the push API client's side): the head and a
// Content-Length body at the start of `buf`. kNeedMore until all of it arrived; kError for a bad
// head, an answer without Content-Length (neither imgate nor nginx sends chunked or
// close-delimited answers to these requests) or a body above max_body. `body` views `buf`.
struct HttpAnswer {
  int status = 0;
  std::string_view body;
  size_t size = 0;  // head and body: where the next answer starts
};
Parse parseHttpAnswer(std::string_view buf, size_t max_head, uint64_t max_body, HttpAnswer& out);

// ---- WebSocket (RFC 6455) -----------------------------------------------------------------------

enum WsOpcode : uint8_t {
  kWsContinuation = 0x0,
  kWsText = 0x1,
  kWsBinary = 0x2,
  kWsClose = 0x8,
  kWsPing = 0x9,
  kWsPong = 0xA,
};

struct WsFrame {
  uint8_t opcode = 0;
  bool fin = false;
  size_t header_len = 0;
  uint64_t payload_len = 0;
  size_t size() const { return header_len + static_cast<size_t>(payload_len); }
};

// One server frame at the start of [p, p+n). kError: reserved bits (no extension is ever
// negotiated), unknown opcode, a masked server frame, a fragmented or oversized control frame,
// a non-minimal or 64-bit length with the top bit set, or a payload above max_payload.
Parse parseWsFrame(const uint8_t* p, size_t n, uint64_t max_payload, WsFrame& out);

// Appends one masked client frame (FIN set) with the given masking key.
void appendWsFrame(std::string& out, uint8_t opcode, std::string_view payload, uint32_t mask);

// ---- TCP frames (docs/protocol/tcp-frame.md) ---------------------------------------------------

constexpr size_t kTcpHeaderSize = 20;

enum TcpType : uint8_t {
  kTcpHello = 0x01,
  kTcpHelloAck = 0x02,
  kTcpPing = 0x03,
  kTcpPong = 0x04,
  kTcpSend = 0x05,
  kTcpSendAck = 0x06,
  kTcpPush = 0x07,
  kTcpPushAck = 0x08,
  kTcpError = 0x0B,
  kTcpGoaway = 0x0C,
  kTcpClose = 0x0D,
  kTcpRead = 0x0E,
};

enum TcpFlag : uint8_t { kTcpCompressed = 0x01, kTcpAckRequired = 0x02, kTcpBinary = 0x04 };

enum TcpTag : uint8_t {
  kTagToken = 0x01,
  kTagDevice = 0x02,
  kTagSdkVersion = 0x03,
  kTagEvent = 0x0C,
  kTagData = 0x0D,
  kTagStatus = 0x0E,
  kTagReason = 0x0F,
  kTagCode = 0x10,
  kTagMsgId = 0x14,
  kTagStream = 0x17,
};

struct TcpFrame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint64_t id = 0;
  uint32_t length = 0;
  size_t size() const { return kTcpHeaderSize + length; }
};

// The 20-byte header at the start of [p, p+n). kError: bad magic, version, reserved flag bits
// or bytes, or a length above max_length.
Parse parseTcpHeader(const uint8_t* p, size_t n, uint32_t max_length, TcpFrame& out);

struct Tlv {
  uint8_t tag;
  std::string_view value;
};

// Appends a frame whose body is the given TLV fields (for PING/PONG: pass the raw body as one
// field with tag 0, which is written without a TLV header).
void appendTcpFrame(std::string& out, uint8_t type, uint8_t flags, uint64_t id,
                    std::initializer_list<Tlv> fields);
void appendTcpRawFrame(std::string& out, uint8_t type, uint8_t flags, uint64_t id,
                       std::string_view body);

// Finds `tag` in a TLV body. Returns kOk with the value, kNeedMore when the tag is absent (the
// body is well formed), kError for a truncated field.
Parse findTlv(std::string_view body, uint8_t tag, std::string_view& value);

uint64_t readBe(std::string_view bytes);  // big-endian integer of up to 8 bytes

// Inflates one zlib stream (RFC 1950) into out; false when corrupt, truncated, followed by
// extra bytes, or larger than max_out.
bool inflateZlib(std::string_view in, size_t max_out, std::string& out);

// ---- Nchan (bench/peers/nchan.conf.in) -------------------------------------------------------

// The channels one subscriber connection multiplexes (nchan_channel_id in the bench config).
constexpr std::string_view kNchanBroadcastChannel = "all";
std::string nchanUserChannel(std::string_view user);  // user_<user>
std::string nchanRoomChannel(std::string_view room);  // room_<room>

// A subscriber's request target: <path>?user=<user>&room=<room> (names are URL-safe: options.cc
// only admits letters, digits, '-', '_' and '.').
std::string nchanSubscribeTarget(std::string_view path, std::string_view user,
                                 std::string_view room);

// Appends POST <prefix><channel> with `body` as the raw message, on a keep-alive connection,
// asking for the JSON form of the channel status (Accept: application/json).
void appendNchanPublish(std::string& out, std::string_view host, std::string_view prefix,
                        std::string_view channel, std::string_view body);

// Subscribers of the channel that took a publish, from the answer body: JSON
// {"subscribers": N, ...} or the text/plain form "active subscribers: N". Nchan answers 201
// when the channel had subscribers and 202 when the message was only queued; both are 2xx.
std::optional<uint64_t> nchanSubscribers(std::string_view body);

// ---- Payloads ---------------------------------------------------------------------------------

// The pusher's payload: {"lg_t":<ns since epoch>,"lg_n":<n>[,"p":"xxx..."]} padded with `p` to
// at least pad_to bytes. Receivers find lg_t/lg_n whether the payload arrives as is (plain
// WebSocket, TCP data, Socket.IO argument) or escaped inside a JSON string (the envelope).
std::string makePayload(uint64_t t_ns, uint64_t n, size_t pad_to);

// Finds `key` (e.g. "lg_t") in text, skips the quotes, backslashes, colon and blanks that follow
// it, and reads a decimal integer. False when the key or the digits are missing.
bool scanU64(std::string_view text, std::string_view key, uint64_t& out);

// The timestamp and number of a payload made by makePayload, if `text` holds one.
bool scanPayload(std::string_view text, uint64_t& t_ns, uint64_t& n);

}  // namespace imgate::bench::load
