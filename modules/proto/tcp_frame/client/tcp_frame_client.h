// SPDX-License-Identifier: Apache-2.0
// Sans-I/O client side of proto.tcp_frame (docs/protocol/tcp-frame.md): builds the frames a
// client sends and parses the frames the server sends. Used by the unit tests and the load
// generator; owns no socket and no clock. Not part of the server module.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"
#include "modules/proto/tcp_frame/frame.h"

namespace imgate::mod::tcp_frame::client {

// One received frame with its body already inflated.
struct Frame {
  FrameType type = FrameType::kPing;
  uint8_t flags = 0;
  uint64_t id = 0;
  std::string body;  // TLV fields (PING/PONG: opaque bytes)
};

struct Hello {
  std::string token;
  std::string device;
  std::string sdk_version;
  std::optional<uint64_t> resume_session;
  std::optional<uint64_t> last_seq;  // the user stream's position (with `epoch`)
  std::optional<uint64_t> epoch;
  std::string resume;  // JSON {"<stream>":{"epoch":"<hex>","seq":N},...}; see resumeJson()
};

// A position in one stream: what the client has processed (resume) or where the server starts
// it (HELLO_ACK streams).
struct StreamPosition {
  enum class Recovery : uint8_t { kFresh, kRecovered, kImpossible };
  std::string stream;
  uint64_t epoch = 0;
  uint64_t seq = 0;
  Recovery recovery = Recovery::kFresh;  // HELLO_ACK only
  uint64_t replayed = 0;                 // HELLO_ACK only
};

struct HelloAck {
  uint64_t id = 0;  // the HELLO's id
  uint64_t session_id = 0;
  uint64_t server_time_ms = 0;
  uint32_t heartbeat_ms = 0;
  uint32_t idle_timeout_ms = 0;
  uint32_t ping_interval_ms = 0;
  std::string app;
  std::string user;
  std::string device;
  std::vector<StreamPosition> streams;  // parsed from the streams field (absent: empty)
};

struct Push {
  uint64_t seq = 0;
  bool binary = false;
  bool ack_required = false;
  bool compressed = false;  // as sent on the wire
  uint8_t kind = 0;         // 0 data, 2 control, 3 presence
  std::string msg_id;
  std::string event;
  std::string data;
  std::string stream;  // with epoch: present when seq != 0
  uint64_t epoch = 0;
};

// READ from the server: another device of the user read `stream` up to `seq`.
struct ReadMark {
  uint64_t seq = 0;
  std::string stream;
  std::string device;
};

struct SendAck {
  uint64_t id = 0;
  std::string msg_id;
  uint16_t status = kCodeOk;
  uint64_t server_time_ms = 0;
  std::string reason;
  std::string event;
  std::string data;
};

// ERROR and CLOSE.
struct CloseInfo {
  uint16_t code = 0;
  std::string reason;
};

struct GoAway {
  std::string reason;
  std::string reconnect_hint;
  uint32_t retry_after_ms = 0;
};

// ---- Encoding ---------------------------------------------------------------------------------

struct SendOptions {
  bool binary = false;
  bool ack_required = true;
  bool compress = false;  // zlib-compress the body (only when it gets smaller)
  std::string msg_id;     // a string id in addition to the numeric header id
};

std::string encodeHello(const Hello& hello, uint64_t id = 1);
std::string encodeSend(uint64_t id, std::string_view event, std::string_view data,
                       const SendOptions& options = {});
// Cumulative: acks every seq <= `seq` of `stream` (empty: the user stream).
std::string encodePushAck(uint64_t seq, std::string_view stream = {});
// Marks `stream` read up to `seq` (non-zero) for the user's other devices.
std::string encodeRead(uint64_t seq, std::string_view stream = {});
std::string encodeJoin(uint64_t id, std::string_view room);
std::string encodeLeave(uint64_t id, std::string_view room);
std::string encodePing(uint64_t id, std::string_view body = {});
std::string encodePong(uint64_t id, std::string_view body = {});
std::string encodeClose(uint16_t code, std::string_view reason = {});
// The resume JSON for Hello::resume from positions (stream, epoch, seq; the rest is ignored).
std::string resumeJson(const std::vector<StreamPosition>& positions);

// ---- Decoding ---------------------------------------------------------------------------------

// Reassembles server frames from any split of the byte stream. feed() fails on a bad header,
// a body above max_frame (also after inflating) or corrupt compression; the decoder is then
// unusable.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}

  [[nodiscard]] Status feed(std::string_view bytes);
  // The next complete frame, in order.
  std::optional<Frame> next();
  size_t buffered() const { return buffer_.size(); }

 private:
  uint32_t max_frame_;
  std::string buffer_;
  std::deque<Frame> frames_;
  bool failed_ = false;
};

[[nodiscard]] Result<HelloAck> parseHelloAck(const Frame& frame);
[[nodiscard]] Result<Push> parsePush(const Frame& frame);
[[nodiscard]] Result<ReadMark> parseRead(const Frame& frame);
// HELLO_ACK's streams JSON [kInvalidPayload when it is not the documented shape].
[[nodiscard]] Result<std::vector<StreamPosition>> parseStreams(std::string_view json);
[[nodiscard]] Result<SendAck> parseSendAck(const Frame& frame);
[[nodiscard]] Result<CloseInfo> parseClose(const Frame& frame);  // ERROR or CLOSE
[[nodiscard]] Result<GoAway> parseGoAway(const Frame& frame);

}  // namespace imgate::mod::tcp_frame::client
