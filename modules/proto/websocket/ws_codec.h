// SPDX-License-Identifier: Apache-2.0
// RFC 6455 server-side framing with optional RFC 7692 permessage-deflate: a sans-I/O Codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "imgate/sdk/codec.h"
#include "modules/common/utf8.h"
#include "ws_deflate.h"

namespace imgate::mod::tcp_frame {
class TcpFrameCodec;
}  // namespace imgate::mod::tcp_frame

namespace imgate::mod::websocket {

inline constexpr uint32_t kDefaultMaxMessage = 64 * 1024;
inline constexpr uint32_t kDefaultCompressMinSize = 64;
inline constexpr int kDefaultCompressionLevel = 1;
// A close frame's payload is at most 125 bytes: 2 for the code, 123 for the reason.
inline constexpr size_t kMaxCloseReason = 123;
inline constexpr size_t kMaxControlPayload = 125;
// Pongs are skipped while this many bytes wait in the output buffer, so a client that pings
// without reading cannot grow the buffer; RFC 6455 §5.5.3 allows answering only the most
// recent ping.
inline constexpr size_t kPongBackpressureLimit = 64 * 1024;

enum class Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// Per-session parameters: the listener's limits plus what the handshake negotiated.
struct WsCodecOptions {
  // Largest inbound message after reassembly and decompression; larger ones fail with
  // kMessageTooBig (close 1009) as soon as a frame header or the inflater shows it.
  uint32_t max_message = kDefaultMaxMessage;
  // Outbound messages shorter than this are never compressed.
  uint32_t compress_min_size = kDefaultCompressMinSize;
  uint8_t compression_level = kDefaultCompressionLevel;
  // Keep a deflate stream per session for encode() when the client allows context takeover.
  // Off by default: it costs up to 2^(w+2) + 128 KiB per session that ever got a compressed
  // per-session message, and it forces per-session encoding of compressed fan-out.
  bool session_deflater = false;
  // The client selected the "imgate.v1" subprotocol: every message in both directions is one
  // JSON envelope in a text message (ws_envelope.h, docs/websocket.md "Envelope"). Off: plain
  // payloads, as any WebSocket client expects.
  bool envelope = false;
  // The client selected "imgate.v1.bin": every message in both directions is one binary message
  // holding one or more whole proto.tcp_frame frames (docs/protocol/tcp-frame.md), with no
  // HELLO (the upgrade request opened the session). Wins over `envelope` if both are set.
  bool binary_envelope = false;
  DeflateParams deflate;
};

// The Errc -> close code table (RFC 6455 §7.4, plus the 4xxx application range documented in
// the module README). Unknown or future codes map to 1011.
uint16_t closeCodeFor(Errc code);

// Close codes a peer may send (RFC 6455 §7.4.1/§7.4.2): 1000-1003, 1007-1014, 3000-4999.
bool isValidCloseCode(uint16_t code);

// Writes an unmasked (server) frame header into `dst`, which must hold kMaxFrameHeader bytes;
// returns its length (2, 4 or 10).
inline constexpr size_t kMaxFrameHeader = 10;
size_t writeFrameHeader(uint8_t* dst, bool fin, bool rsv1, Opcode opcode, uint64_t length);

// A whole unmasked frame (FIN=1).
std::string serverFrame(Opcode opcode, std::string_view payload, bool rsv1 = false);

// Plain mode's text for a failed ack (meta "status" other than "ok"):
// {"type":"error","id":..,"event":..,"error":<status>,"reason":<meta "reason">}. Socket.IO's
// plain Engine.IO mode sends the same text.
std::string ackErrorJson(const Message& ack);

// One session's codec. Server side only: inbound frames must be masked, outbound are not.
//
// decode() rules, all failing the session with the Errc in brackets (the core then calls
// encodeClose, which sends the matching close code):
// - unmasked frames, RSV2/RSV3, RSV1 without permessage-deflate or on a control or
//   continuation frame, reserved opcodes, control frames that are fragmented or longer than
//   125 bytes, a continuation without a message, a new data frame inside a message, and a
//   64-bit length with the top bit set [kProtocolError]. Non-minimal length encodings are
//   accepted: they cannot change a frame's meaning and Autobahn does not require refusing them.
// - a message (after decompression) above max_message [kMessageTooBig]; checked from the
//   frame header before the core buffers the payload, and while inflating.
// - invalid UTF-8 in a text message, checked incrementally, also on partially received frames
//   and after decompression, so the session fails at the first bad byte sequence; corrupt
//   deflate data [kInvalidPayload].
// - close frames: a 1-byte payload or an invalid code [kProtocolError], a reason that is not
//   UTF-8 [kInvalidPayload]. A valid close is echoed (same code, no reason) and reported with
//   CodecSink::onPeerClose(kNone, reason); decode() then ignores all further input.
// - envelope mode only: a binary message, checked at its first frame header, and a text message
//   that decodeEnvelope() refuses [kInvalidPayload]. {"t":"ping"} is answered with
//   {"t":"pong"} (skipped under the same backpressure rule as pongs) and reaches no sink.
// - binary envelope mode only: a text message, checked at its first frame header
//   [kInvalidPayload]; an empty message, and a message that ends inside a frame (frames never
//   span messages) [kProtocolError]; whatever the embedded tcp_frame::TcpFrameCodec (hello_done,
//   max_frame = max_message) refuses, e.g. a HELLO [its Errc]. The frames reach the sink as
//   that codec maps them; its replies (PONG, the CLOSE answering a client CLOSE) go out as one
//   binary message each, and a client CLOSE is followed by a WebSocket close 1000 before
//   onPeerClose().
//
// Idle memory is sizeof(WsCodec) plus nothing: the message buffer is empty between messages
// and zlib state exists only while a compressed message is in flight (or for the whole session
// when the client keeps context, or with session_deflater). Binary envelope sessions add their
// TcpFrameCodec and its options (two allocations, about 150 bytes, no buffers).
class WsCodec final : public Codec {
 public:
  explicit WsCodec(const WsCodecOptions& options);
  ~WsCodec() override;

  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // One unmasked FIN frame, text or binary per message.type; compressed (RSV1) when deflate was
  // negotiated and the payload has at least compress_min_size bytes. Uncompressed payloads are
  // appended by reference (no copy). Does nothing after a close was sent.
  // Envelope mode: a text frame with encodeEnvelope(message), for every kind (acks included);
  // the compress_min_size rule still looks at the message's payload, so that the decision, and
  // with it sharedEncodingKey(), needs no encoding.
  // Binary envelope mode: one binary message holding the TcpFrameCodec's frame (PUSH, READ or
  // SEND_ACK); permessage-deflate follows the same payload-size rule, and when it was not
  // negotiated the frame itself is zlib-compressed from compress_min_size bytes of data on.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // Distinguishes plain from (binary) envelope mode, text/binary (plain only: the envelope is
  // always text), in binary envelope mode the TcpFrameCodec's own key (zero for acks, so zero
  // here too), compressed or not, and for compressed frames the server window and compression
  // level; zero after a close was sent (so the core falls back to encode(), which drops the
  // message) and, with session_deflater, once the session's deflate stream holds history that
  // shared frames would desynchronise.
  uint64_t sharedEncodingKey(const Message& message) const override;
  // Thread-safe: reads only immutable options and uses a local z_stream.
  Bytes encodeShared(const Message& message) const override;
  // Envelope mode: the {"t":"welcome"} message (encodeWelcome). Binary envelope mode: one
  // binary message with the HELLO_ACK frame (id 0, with `streams`). Plain mode: nothing.
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
  // True in both envelope modes, whose clients ack reliable pushes.
  bool acksDownlink() const override { return options_.envelope || options_.binary_envelope; }
  // A WebSocket ping in every mode (WebSocket clients answer it without application code).
  void encodePing(OutBuffer& out) override;
  // Sends close(closeCodeFor(code), reason) once; the reason is cut to 123 bytes on a UTF-8
  // boundary and omitted for kInternal (it may describe internals). Later calls are ignored.
  // Binary envelope mode first sends one binary message with the TcpFrameCodec's last frames
  // (ERROR or GOAWAY as its encodeClose decides, then CLOSE with the same code).
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

  bool closeSent() const { return close_sent_; }
  // For codecs layered on this one (Socket.IO): called from the sink during decode(), makes
  // decode() return right after the current frame, leaving later bytes unconsumed (e.g. after
  // the frame that carried an in-band hello).
  void stopDecoding() { stop_requested_ = true; }
  bool hasInflaterForTest() const { return inflater() != nullptr; }
  bool hasDeflaterForTest() const { return deflater() != nullptr; }
  size_t bufferedForTest() const { return message_.capacity(); }

 private:
  struct FrameInfo;
  class FramesSink;
  [[nodiscard]] Status onDataFrame(const FrameInfo& frame, std::string_view payload,
                                   CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onEnvelope(std::string text, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onFrames(std::string data, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onControlFrame(const FrameInfo& frame, std::string_view payload,
                                      CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status checkPartialText(const FrameInfo& frame, std::string_view available);
  [[nodiscard]] Status inflatePayload(const FrameInfo& frame, std::string_view payload);
  [[nodiscard]] Result<size_t> decodeFrames(std::string_view in, CodecSink& sink, OutBuffer& out);
  void resetMessage();
  void releaseBuffers();
  bool encodesCompressed(const Message& message) const;
  [[nodiscard]] Status writeMessage(Opcode opcode, std::string_view payload, const Bytes& owner,
                                    bool compress, OutBuffer& out);
  Bytes sharedFrame(Opcode opcode, std::string_view payload, bool compress) const;
  bool usesSessionDeflater() const;
  void writeClose(uint16_t code, std::string_view reason, OutBuffer& out);

  WsCodecOptions options_;
  std::string message_;                 // payload of the message being reassembled
  // What plain sessions never need, in one allocation made on first use (the codec stays in
  // the 80-byte class): the inflater while a compressed message is in flight, the session
  // deflater (context takeover only), and in binary envelope mode the frame codec the
  // messages' contents go through.
  struct Extras {
    std::unique_ptr<Inflater> inflater;
    std::unique_ptr<Deflater> deflater;
    std::unique_ptr<tcp_frame::TcpFrameCodec> frames;
    ~Extras();  // in ws_codec.cc, where TcpFrameCodec is complete
  };
  Extras& extras();
  Inflater* inflater() const { return extras_ ? extras_->inflater.get() : nullptr; }
  Deflater* deflater() const { return extras_ ? extras_->deflater.get() : nullptr; }
  tcp_frame::TcpFrameCodec* frames() const { return extras_ ? extras_->frames.get() : nullptr; }
  std::unique_ptr<Extras> extras_;
  uint32_t compressed_in_ = 0;          // compressed bytes of the current message
  uint32_t frame_checked_ = 0;          // payload bytes of the pending frame already UTF-8 checked
  common::Utf8Validator utf8_;
  Opcode message_opcode_ = Opcode::kContinuation;  // kContinuation: no message in progress
  bool message_compressed_ = false;
  bool close_received_ = false;
  bool close_sent_ = false;
  bool failed_ = false;  // decode() failed; the core is closing the session
  bool stop_requested_ = false;
};

}  // namespace imgate::mod::websocket
