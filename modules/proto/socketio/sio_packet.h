// SPDX-License-Identifier: Apache-2.0
// Socket.IO protocol v5 packets (socket.io docs/socket.io-protocol/v5-current.md), sans-I/O.
// A packet travels as the data of one Engine.IO message:
//   <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
// followed, for BINARY_EVENT / BINARY_ACK, by <attachments> binary Engine.IO messages.
// Decoding accepts and rejects what socket.io-parser (packages/socket.io-parser/lib/index.ts)
// does, with the differences listed at parseSioPacket(). Data stays raw JSON text: the codec
// validates it but never re-serialises it, so forwarded bytes are the client's bytes.
// Everything here is pure; SioBinaryAssembler is per session (not thread-safe, like a codec).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"
#include "json_string.h"

namespace imgate::mod::socketio {

enum class SioType : uint8_t {
  kConnect = 0,
  kDisconnect = 1,
  kEvent = 2,
  kAck = 3,
  kConnectError = 4,
  kBinaryEvent = 5,
  kBinaryAck = 6,
};

inline bool isBinaryType(SioType type) {
  return type == SioType::kBinaryEvent || type == SioType::kBinaryAck;
}

struct SioPacket {
  SioType type = SioType::kEvent;
  std::string nsp = "/";
  std::optional<uint64_t> id;  // ack id, 0 .. kMaxAckId
  std::string data;            // raw JSON text; empty when absent
  uint32_t attachments = 0;    // binary types only, 1 .. SioLimits::max_attachments
};

// Largest ack id: Number.MAX_SAFE_INTEGER. A JavaScript peer cannot represent a larger id
// exactly, so it could never match its acknowledgement; larger ids are refused.
inline constexpr uint64_t kMaxAckId = (uint64_t{1} << 53) - 1;

struct SioLimits {
  // Largest packet text (the Engine.IO message data). 1 MiB: above the reference server's
  // maxHttpBufferSize (1e6), which bounds each message there.
  size_t max_packet_bytes = 1 << 20;
  // Most binary attachments per packet: socket.io-parser's maxAttachments default.
  uint32_t max_attachments = 10;
  // JSON nesting limit (see kDefaultJsonMaxDepth).
  uint32_t max_depth = kDefaultJsonMaxDepth;
  // Longest namespace name. Namespaces are path-like names chosen by the server; 256 bytes
  // is plenty and keeps them cheap as map keys and in logs. The reference has no limit.
  size_t max_namespace_bytes = 256;
  // Most bytes of binary attachments buffered for one packet: max_attachments messages of
  // 1 MiB, the largest a packet can legitimately use.
  size_t max_binary_bytes = 10u << 20;
};

// Parses one packet from the text of an Engine.IO message.
// Grammar and checks, in order (reasons in quotes; kProtocolError unless noted):
//  - non-empty ("empty packet"), at most max_packet_bytes (kMessageTooBig, "packet larger
//    than ..."); type digit 0-6 ("unknown packet type");
//  - binary types: decimal attachment count then '-' ("illegal attachments" when missing,
//    not digits or 0; "too many attachments" above max_attachments);
//  - '/' starts a namespace that runs to the first ',' (consumed) or to the end; otherwise the
//    namespace is "/". Longer than max_namespace_bytes: "namespace too long"; invalid UTF-8 or
//    a control character in it: "invalid namespace";
//  - digits: the ack id ("ack id too large" above kMaxAckId);
//  - the rest, if any, is the JSON data, validated as JSON.parse would ("invalid payload: ...")
//    and by type, as socket.io-parser's isPayloadValid / isPacketValid do:
//      CONNECT        absent, or an object
//      DISCONNECT     absent
//      CONNECT_ERROR  an object or a string
//      EVENT, BINARY_EVENT  an array whose first element is a number or a string other than
//                     "connect", "connect_error", "disconnect", "disconnecting",
//                     "newListener", "removeListener"
//      ACK, BINARY_ACK      an array
//    BINARY_* data must hold valid placeholders ("illegal attachments", see JsonScanOptions).
// Differences from socket.io-parser, all on inputs no real client produces:
//  - the attachment count must be plain digits (Number() there also takes " 1", "1e0", "0x1");
//  - whitespace after the namespace is not an ack id (Number(" ") == 0 there);
//  - absent data is refused for EVENT/ACK/CONNECT_ERROR: decodeString skips validation when
//    there is no data, but the protocol says the payload is mandatory and the newer
//    isPacketValid() refuses it too;
//  - namespace limits above, ack id bound, JSON depth limit, UTF-8 checks;
//  - placeholders nested inside a placeholder object are checked too (the reference never
//    visits them).
// Accepted non-canonical forms (encodeSioPacket writes them differently): a namespace without
// the trailing ',' ("0/admin"), an explicit "/," namespace, leading zeros in the attachment
// count and the ack id.
[[nodiscard]] Result<SioPacket> parseSioPacket(std::string_view text,
                                               const SioLimits& limits = {});

// The checks of parseSioPacket on a packet built in memory (socket.io-parser's
// isPacketValid, plus: the namespace starts with '/', is valid UTF-8 with no ',' and no
// control character, within max_namespace_bytes; attachments in range for binary types and 0
// otherwise; limits as parseSioPacket). A packet that passes encodes to text that
// parseSioPacket decodes back to the same packet.
[[nodiscard]] Status validateSioPacket(const SioPacket& packet, const SioLimits& limits = {});

// The wire text of `packet` (the inverse of parseSioPacket): the "/" (or empty) namespace is
// omitted, others are followed by ','; "<attachments>-" only for binary types; data appended
// as is. Garbage in, garbage out: use validateSioPacket() on packets not produced by
// parseSioPacket().
std::string encodeSioPacket(const SioPacket& packet);

// ---- Binary packets -------------------------------------------------------------------------

struct SioAssembled {
  SioPacket packet;
  std::vector<std::string> buffers;  // empty for non-binary packets
};

// Collects the attachments that follow a BINARY_EVENT / BINARY_ACK, as socket.io-parser's
// Decoder with its BinaryReconstructor does. Feed every Engine.IO message of the session in
// order: text messages to onText(), binary messages to onBinary(). Each returns the complete
// packet when there is one, nullopt while attachments are awaited, or an error; after an error
// the assembler is empty again, but the session should be closed (the reference throws and
// the server closes the connection). Buffers are kept as sent; placeholders are not replaced.
class SioBinaryAssembler {
 public:
  explicit SioBinaryAssembler(const SioLimits& limits = {}) : limits_(limits) {}

  // A text message: parsed with parseSioPacket. Errors: those of parseSioPacket, and
  // "got plaintext data when reconstructing a packet" while attachments are awaited.
  [[nodiscard]] Result<std::optional<SioAssembled>> onText(std::string_view text);

  // Same for a packet already parsed (or built) by the caller.
  [[nodiscard]] Result<std::optional<SioAssembled>> onPacket(SioPacket packet);

  // A binary message. Errors: "got binary data when not reconstructing a packet";
  // kMessageTooBig when the attachments of one packet exceed limits.max_binary_bytes.
  [[nodiscard]] Result<std::optional<SioAssembled>> onBinary(std::string data);

  bool awaiting() const { return pending_ != nullptr; }
  size_t bufferedBytes() const { return buffered_bytes_; }
  void reset();

 private:
  SioLimits limits_;
  // The binary packet whose attachments are awaited (out of line: sessions rarely have one).
  std::unique_ptr<SioAssembled> pending_;
  size_t buffered_bytes_ = 0;
};

// ---- Event helpers --------------------------------------------------------------------------

// An EVENT's data split into its name and its arguments.
struct EventView {
  std::string name;  // unescaped; for a numeric name, the number's JSON text
  bool numeric_name = false;
  // The remaining elements as a JSON array, each element's original bytes kept:
  // ["chat",{"a":1},2] -> [{"a":1},2]; ["ping"] -> [].
  std::string args;
};

// Errors (kProtocolError): not valid JSON (as scanJson), not an array, empty, or a first
// element that is neither a string nor a number. Reserved names are not checked here
// (parseSioPacket does).
[[nodiscard]] Result<EventView> splitEvent(std::string_view data_json,
                                           uint32_t max_depth = kDefaultJsonMaxDepth);

// The inverse: ["<event>",<elements of args_array_json>]. `args_array_json` must be a JSON
// array ("[]" for no arguments); it is validated (it usually comes from a backend) and its
// elements are copied as they are. Errors: kProtocolError.
[[nodiscard]] Result<std::string> eventJson(std::string_view event,
                                            std::string_view args_array_json,
                                            uint32_t max_depth = kDefaultJsonMaxDepth);

// A BINARY_EVENT's (or BINARY_ACK's) arguments with their attachments inlined for a backend:
// every placeholder object {"_placeholder":true,"num":N} (either key order, any whitespace, as
// socket.io-parser and python-socketio write them) becomes {"_binary":"<base64 of buffer N>"};
// strings that merely contain such text are left alone. `json` must be valid JSON (splitEvent's
// args). Errors (kProtocolError, "illegal attachments" as socket.io-parser): a placeholder
// whose num is not an index of `buffers`. A buffer no placeholder names is dropped, as the
// reference's reconstructPacket does.
[[nodiscard]] Result<std::string> inlineAttachments(std::string_view json,
                                                    const std::vector<std::string>& buffers);

// True when `args` (splitEvent's) is exactly one placeholder for attachment 0, in any of the
// spellings inlineAttachments accepts: emit("up", buffer), delivered as a binary message.
bool isSingleAttachment(std::string_view args);

// Data for a BINARY_EVENT the server pushes with n binary arguments:
// ["<event>",{"_placeholder":true,"num":0},...,{"_placeholder":true,"num":n-1}]
// (the attachments follow as n binary Engine.IO messages; packet.attachments = n).
std::string binaryEventJson(std::string_view event, size_t n_attachments);

}  // namespace imgate::mod::socketio
