// SPDX-License-Identifier: Apache-2.0
// proto.tcp_frame: the server side of the binary TCP frame protocol (docs/protocol/tcp-frame.md)
// as a sans-I/O Codec with an in-band HELLO handshake.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "frame.h"
#include "imgate/sdk/codec.h"

namespace imgate::mod::tcp_frame {

inline constexpr uint32_t kDefaultCompressMinSize = 256;
inline constexpr int kDefaultCompressionLevel = 1;
// Pongs are skipped while this many bytes wait in the output buffer, so a client that pings
// without reading cannot grow it.
inline constexpr size_t kPongBackpressureLimit = 64 * 1024;
// ERROR / CLOSE / GOAWAY reasons are cut to this many bytes.
inline constexpr size_t kMaxReason = 256;

struct TcpFrameOptions {
  // Largest inbound body, on the wire and after inflating [kMessageTooBig].
  uint32_t max_frame = kDefaultMaxFrame;
  // Outbound PUSH / SEND_ACK bodies of at least this many bytes are zlib-compressed (when that
  // makes them smaller).
  bool compression = true;
  uint32_t compress_min_size = kDefaultCompressMinSize;
  int compression_level = kDefaultCompressionLevel;
  // GOAWAY contents (kShutdown).
  std::string reconnect_hint;
  std::chrono::milliseconds reconnect_jitter{5000};
  // The transport already opened the session (WebSocket subprotocol imgate.v1.bin, where the
  // upgrade request authenticated it): every client frame type is accepted from the first byte,
  // a HELLO fails [kProtocolError], onHello() is never called and HELLO_ACK answers id 0.
  bool hello_done = false;
};

// Errc -> what encodeClose writes before CLOSE: ERROR for refusals the client must act on.
bool sendsErrorFrame(Errc code);

// Percent-encodes everything but RFC 3986 unreserved characters (for the HELLO's query).
std::string percentEncode(std::string_view in);

// One session's codec.
//
// decode(): every frame calls onActivity(). Fails the session [Errc in brackets] on a bad
// header (parseHeader), a server-only frame type, a frame other than HELLO/PING/CLOSE before
// HELLO, a second HELLO (with hello_done: any HELLO), malformed TLV fields (integers of the
// wrong size included), a JOIN/LEAVE without a room, a READ with id 0 [kProtocolError]; corrupt
// compressed bodies and control characters in HELLO strings (token, device, sdk_version,
// resume) [kInvalidPayload]; bodies above max_frame, also after inflating [kMessageTooBig].
// HELLO calls onHello() and decode() returns right after it. A client CLOSE is answered with
// CLOSE 1000 and onPeerClose(kNone). The resume JSON and stream names are passed through
// unparsed: the core validates them (a stream it does not know is its business, not a framing
// error).
//
// Idle memory is sizeof(TcpFrameCodec): no buffer is kept between frames.
class TcpFrameCodec final : public Codec {
 public:
  // Options are shared by every session of a listener (one pointer per session).
  explicit TcpFrameCodec(std::shared_ptr<const TcpFrameOptions> options)
      : options_(std::move(options)), hello_seen_(options_->hello_done) {}
  explicit TcpFrameCodec(const TcpFrameOptions& options)
      : options_(std::make_shared<const TcpFrameOptions>(options)),
        hello_seen_(options.hello_done) {}

  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // kData / kControl / kPresence -> PUSH (id = seq; stream and epoch fields when seq != 0;
  // ACK_REQUIRED iff message.reliable); kControl with event "read" -> READ (id = seq, stream,
  // device from meta "device"); kAck -> SEND_ACK (id = the message id when it is a decimal u64,
  // status from meta "status", reason from meta "reason"). Nothing after a close.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // Non-zero for PUSH and READ frames, sequenced or not: their bytes depend only on the message
  // and the listener's options, never on the session (a room's stream/epoch/seq is the same for
  // every recipient). Zero for kAck (SEND_ACK answers one session) and after a close.
  uint64_t sharedEncodingKey(const Message& message) const override;
  // Thread-safe: reads only immutable options.
  Bytes encodeShared(const Message& message) const override;
  // HELLO_ACK, with the `streams` field (appendStreamsJson(), modules/common/json_text.h) when
  // opened.streams is not empty (compressed like a PUSH when that JSON reaches
  // compress_min_size).
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
  // Clients answer ACK_REQUIRED pushes with PUSH_ACK (cumulative per stream).
  bool acksDownlink() const override { return true; }
  void encodePing(OutBuffer& out) override;
  // kShutdown: GOAWAY then CLOSE 1001; sendsErrorFrame(code): ERROR then CLOSE; otherwise CLOSE.
  // Once only; the reason is omitted for kInternal.
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

  bool helloSeenForTest() const { return hello_seen_; }
  bool closeSent() const { return close_sent_; }

 private:
  [[nodiscard]] Status onFrame(const FrameHeader& header, std::string_view body,
                               CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onHello(const FrameHeader& header, const Fields& fields, CodecSink& sink);
  std::string encodeFrame(const Message& message) const;

  std::shared_ptr<const TcpFrameOptions> options_;
  uint64_t hello_id_ = 0;
  uint64_t ping_id_ = 0;
  bool hello_seen_ = false;
  bool close_sent_ = false;
  bool failed_ = false;
};

}  // namespace imgate::mod::tcp_frame
