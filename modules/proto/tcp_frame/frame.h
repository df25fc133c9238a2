// SPDX-License-Identifier: Apache-2.0
// The proto.tcp_frame wire format (docs/protocol/tcp-frame.md), shared by the server codec and
// the client library: the 20-byte header, the TLV body fields, the close-code table and the
// zlib body helpers. No state, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "imgate/sdk/status.h"

namespace imgate::mod::tcp_frame {

// 0xB7 is a UTF-8 continuation byte: it cannot start HTTP, TLS (0x16), or any text line, so a
// listener can tell this protocol from the others by its first byte.
inline constexpr uint8_t kMagic0 = 0xB7;
inline constexpr uint8_t kMagic1 = 0x46;
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderSize = 20;
inline constexpr uint32_t kDefaultMaxFrame = 64 * 1024;

enum class FrameType : uint8_t {
  kHello = 0x01,     // client -> server, first frame (only PING and CLOSE may precede it)
  kHelloAck = 0x02,  // server -> client
  kPing = 0x03,      // both ways; answered with PONG carrying the same id and body
  kPong = 0x04,      // both ways
  kSend = 0x05,      // client -> server: one uplink message
  kSendAck = 0x06,   // server -> client: the answer to a SEND
  kPush = 0x07,      // server -> client: one downlink message
  kPushAck = 0x08,   // client -> server
  kJoin = 0x09,      // client -> server: join a room
  kLeave = 0x0A,     // client -> server: leave a room
  kError = 0x0B,     // server -> client, followed by CLOSE
  kGoaway = 0x0C,    // server -> client: draining, reconnect elsewhere; followed by CLOSE
  kClose = 0x0D,     // both ways: the last frame a side sends
  kRead = 0x0E,      // both ways: a read mark (C->S: "read up to"; S->C: another device's)
};

// Flag bits (header byte 4). Any other bit set is a protocol error.
inline constexpr uint8_t kFlagCompressed = 0x01;   // body is one zlib (RFC 1950) stream
inline constexpr uint8_t kFlagAckRequired = 0x02;  // SEND: wants a SEND_ACK; PUSH: send PUSH_ACK
                                                   // (the server retransmits it until acked)
inline constexpr uint8_t kFlagBinary = 0x04;       // the data field is binary (else UTF-8 text)
inline constexpr uint8_t kKnownFlags = kFlagCompressed | kFlagAckRequired | kFlagBinary;

// TLV field tags. Values are big-endian; strings are raw bytes (no terminator).
enum class Tag : uint8_t {
  kToken = 0x01,           // str  HELLO
  kDevice = 0x02,          // str  HELLO, HELLO_ACK
  kSdkVersion = 0x03,      // str  HELLO
  kResumeSession = 0x04,   // u64  HELLO: the session id the client had before
  kLastSeq = 0x05,         // u64  HELLO: the last seq the client processed in its user stream
  kSessionId = 0x06,       // u64  HELLO_ACK
  kHeartbeatMs = 0x07,     // u32  HELLO_ACK: ping at least this often
  kIdleTimeoutMs = 0x08,   // u32  HELLO_ACK: the server closes after this much silence
  kServerTimeMs = 0x09,    // u64  HELLO_ACK, SEND_ACK: wall clock, ms since the epoch
  kUser = 0x0A,            // str  HELLO_ACK
  kApp = 0x0B,             // str  HELLO_ACK
  kEvent = 0x0C,           // str  SEND, SEND_ACK, PUSH
  kData = 0x0D,            // bytes SEND, SEND_ACK, PUSH
  kStatus = 0x0E,          // u16  SEND_ACK: 0 ok, else a code from the close-code table
  kReason = 0x0F,          // str  SEND_ACK, ERROR, GOAWAY, CLOSE
  kCode = 0x10,            // u16  ERROR, CLOSE
  kRoom = 0x11,            // str  JOIN, LEAVE
  kReconnectHint = 0x12,   // str  GOAWAY: where to reconnect (empty: the same address)
  kRetryAfterMs = 0x13,    // u32  GOAWAY: wait a random time up to this before reconnecting
  kMsgId = 0x14,           // str  SEND, SEND_ACK, PUSH, PUSH_ACK: a string message id
  kPingIntervalMs = 0x15,  // u32  HELLO_ACK: the server pings this often (0: it does not)
  kKind = 0x16,            // u8   PUSH: 2 control, 3 presence (absent: data)
  kStream = 0x17,          // str  PUSH (seq != 0), PUSH_ACK, READ: "user", "room:<name>", "all"
  kEpoch = 0x18,           // u64  PUSH (seq != 0); HELLO: the user stream's epoch (with last_seq)
  kResume = 0x19,          // str  HELLO: JSON {"<stream>":{"epoch":"<hex>","seq":N},...}
  kStreams = 0x1A,         // str  HELLO_ACK: JSON, where the session starts in each stream
};
inline constexpr Tag kLastAssignedTag = Tag::kStreams;
inline constexpr size_t kMaxTag = 0x1F;  // tags above this are skipped as unknown

// Close and status codes: the WebSocket close codes imgate uses (docs/websocket.md).
inline constexpr uint16_t kCodeOk = 0;  // SEND_ACK status only
uint16_t closeCodeFor(Errc code);
// The reverse, for clients and SEND_ACK statuses; unknown codes give kInternal.
Errc errcForCode(uint16_t code);
std::string_view frameTypeName(FrameType type);
bool isKnownFrameType(uint8_t type);
// True for the types only the server may send.
bool isServerOnly(FrameType type);

struct FrameHeader {
  FrameType type = FrameType::kPing;
  uint8_t flags = 0;
  uint64_t id = 0;
  uint32_t length = 0;  // body bytes on the wire (compressed size when kFlagCompressed)
};

// Checks the header bytes that are present, in wire order, so any split of the stream fails
// the same way: magic, version, type, flags, reserved bytes, then length > max_frame
// [kMessageTooBig]; the rest [kProtocolError]. nullopt: fewer than kHeaderSize bytes, no
// error yet.
[[nodiscard]] Result<std::optional<FrameHeader>> parseHeader(std::string_view in,
                                                             uint32_t max_frame);
// Writes kHeaderSize bytes.
void writeHeader(char* dst, const FrameHeader& header);
// A whole frame: header plus `body` as given (already compressed when the flag says so).
std::string buildFrame(FrameType type, uint8_t flags, uint64_t id, std::string_view body);

// ---- TLV fields -------------------------------------------------------------------------------
// A body is a sequence of records: tag (1 byte), length (4 bytes), value.

class TlvWriter {
 public:
  explicit TlvWriter(std::string& out) : out_(out) {}
  void addString(Tag tag, std::string_view value);
  void addU8(Tag tag, uint8_t value);
  void addU16(Tag tag, uint16_t value);
  void addU32(Tag tag, uint32_t value);
  void addU64(Tag tag, uint64_t value);

 private:
  std::string& out_;
};

// Views into one body; valid while the body is.
class Fields {
 public:
  std::optional<std::string_view> str(Tag tag) const { return values_[index(tag)]; }
  bool has(Tag tag) const { return values_[index(tag)].has_value(); }
  // A u8/u16/u32/u64 field of exactly that size [kProtocolError otherwise]; nullopt if absent.
  [[nodiscard]] Result<std::optional<uint64_t>> uint(Tag tag, size_t width) const;

 private:
  friend Result<Fields> parseFields(std::string_view body);
  static size_t index(Tag tag) { return static_cast<size_t>(tag) & kMaxTag; }
  std::array<std::optional<std::string_view>, kMaxTag + 1> values_{};
};

// Truncated records and a known tag given twice fail [kProtocolError]; tags above kMaxTag and
// unassigned tags are skipped, so later versions can add fields.
[[nodiscard]] Result<Fields> parseFields(std::string_view body);

// ---- Compression ------------------------------------------------------------------------------

// Inflates one complete zlib stream into `out`. At most limit + 1 bytes are ever produced: more
// fails with kMessageTooBig (inflate-bomb guard). Corrupt data, a truncated stream, or bytes
// after its end [kInvalidPayload]; zlib allocation failure [kInternal].
[[nodiscard]] Status inflateBody(std::string_view in, size_t limit, std::string& out);
// Deterministic zlib stream of `in` at `level` (same input, same bytes). False if zlib failed.
bool deflateBody(std::string_view in, int level, std::string& out);

}  // namespace imgate::mod::tcp_frame
