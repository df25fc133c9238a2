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
};

// Errc -> what encodeClose writes before CLOSE: ERROR for refusals the client must act on.
bool sendsErrorFrame(Errc code);

// Percent-encodes everything but RFC 3986 unreserved characters (for the HELLO's query).
std::string percentEncode(std::string_view in);

// One session's codec.
//
// decode(): every frame calls onActivity(). Fails the session [Errc in brackets] on a bad
// header (parseHeader), a server-only frame type, a frame other than HELLO/PING/CLOSE before
// HELLO, a second HELLO, malformed TLV fields, a JOIN/LEAVE without a room [kProtocolError];
// corrupt compressed bodies and control characters in HELLO strings [kInvalidPayload]; bodies
// above max_frame, also after inflating [kMessageTooBig]. HELLO calls onHello() and decode()
// returns right after it. A client CLOSE is answered with CLOSE 1000 and onPeerClose(kNone).
//
// Idle memory is sizeof(TcpFrameCodec): no buffer is kept between frames.
class TcpFrameCodec final : public Codec {
 public:
  // Options are shared by every session of a listener (one pointer per session).
  explicit TcpFrameCodec(std::shared_ptr<const TcpFrameOptions> options)
      : options_(std::move(options)) {}
  explicit TcpFrameCodec(const TcpFrameOptions& options)
      : options_(std::make_shared<const TcpFrameOptions>(options)) {}

  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // kData / kControl / kPresence -> PUSH (id = seq, ack-required when seq != 0); kAck ->
  // SEND_ACK (id = the message id when it is a decimal u64, status from meta "status", reason
  // from meta "reason"). Nothing after a close.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // Non-zero only for PUSH frames with seq 0: fan-out bytes carry nothing per recipient.
  uint64_t sharedEncodingKey(const Message& message) const override;
  // Thread-safe: reads only immutable options.
  Bytes encodeShared(const Message& message) const override;
  // HELLO_ACK.
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
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
