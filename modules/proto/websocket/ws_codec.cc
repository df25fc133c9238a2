// SPDX-License-Identifier: Apache-2.0
#include "ws_codec.h"

#include <algorithm>
#include <cstring>

#include "modules/common/json_text.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "ws_envelope.h"
#include "modules/common/message_meta.h"

namespace imgate::mod::websocket {

namespace {

// Keeps WebSocket fan-out keys apart from other codecs' keys ("WSK1").
constexpr uint64_t kSharedKeyTag = uint64_t{0x57534B31} << 32;
// Payloads below this are copied next to the frame header; larger ones are appended by
// reference, which is cheaper than a copy only past a few hundred bytes.
constexpr size_t kCopyThreshold = 1024;
constexpr size_t kUnmaskChunk = 4096;

// XORs `n` bytes of `src` into `dst` with the masking key, starting `offset` bytes into the
// frame's payload (RFC 6455 §5.3).
void unmask(char* dst, const char* src, size_t n, const uint8_t* key, size_t offset) {
  uint8_t pattern[8];
  for (size_t j = 0; j < 8; ++j) {
    pattern[j] = key[(offset + j) & 3];
  }
  uint64_t word_mask;
  std::memcpy(&word_mask, pattern, sizeof(word_mask));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, src + i, sizeof(word));
    word ^= word_mask;
    std::memcpy(dst + i, &word, sizeof(word));
  }
  for (; i < n; ++i) {
    dst[i] = static_cast<char>(static_cast<uint8_t>(src[i]) ^ pattern[i & 7]);
  }
}

// Collects what a TcpFrameCodec writes, to send it as one WebSocket message. `base` is what
// already waits in the real buffer, so the frame codec's backpressure rules see the truth.
class StringOut final : public OutBuffer {
 public:
  explicit StringOut(size_t base) : base_(base) {}
  void append(std::string_view bytes) override { data.append(bytes); }
  void appendShared(Bytes bytes) override {
    if (bytes) {
      data.append(*bytes);
    }
  }
  size_t pending() const override { return base_ + data.size(); }

  std::string data;

 private:
  size_t base_;
};

// The frame codec's replies while decoding (PONG, the answer to a client CLOSE): each append is
// one frame and becomes one binary message at once, so replies keep their order relative to
// what the pipeline sends re-entrantly from the sink.
class MessageOut final : public OutBuffer {
 public:
  explicit MessageOut(OutBuffer& out) : out_(out) {}
  void append(std::string_view bytes) override {
    uint8_t header[kMaxFrameHeader];
    const size_t h = writeFrameHeader(header, true, false, Opcode::kBinary, bytes.size());
    out_.append(std::string_view(reinterpret_cast<const char*>(header), h));
    out_.append(bytes);
  }
  void appendShared(Bytes bytes) override {
    if (bytes) {
      append(*bytes);
    }
  }
  size_t pending() const override { return out_.pending(); }

 private:
  OutBuffer& out_;
};

bool isKnownOpcode(uint8_t op) {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// A text frame must hold UTF-8 or the client fails the connection (RFC 6455 §8.1, 1007). Text
// that is not, from a module or a codec that does not check (TCP frames, lines), goes out as a
// binary frame with its bytes unchanged rather than costing the client its connection.
Opcode opcodeFor(const Message& message) {
  return message.type == PayloadType::kBinary || !common::isValidUtf8(message.data())
             ? Opcode::kBinary
             : Opcode::kText;
}

// A compressed frame; with `session` null the payload uses a fresh deflate state and falls back
// to an uncompressed frame when compression does not pay (valid for every client).
Status buildCompressedFrame(std::string_view payload, Opcode opcode, Deflater* session,
                            int window_bits, int level, std::string& frame) {
  frame.assign(kMaxFrameHeader, '\0');
  Status status = session != nullptr ? session->compress(payload, frame)
                                     : deflateFresh(payload, window_bits, level, frame);
  if (!status) {
    return status;
  }
  const size_t compressed = frame.size() - kMaxFrameHeader;
  if (session == nullptr && compressed >= payload.size()) {
    frame = serverFrame(opcode, payload);
    return {};
  }
  uint8_t header[kMaxFrameHeader];
  const size_t h = writeFrameHeader(header, true, true, opcode, compressed);
  std::memcpy(frame.data() + kMaxFrameHeader - h, header, h);
  frame.erase(0, kMaxFrameHeader - h);
  return {};
}

}  // namespace

// ---- Tables and frame helpers ---------------------------------------------------------------

uint16_t closeCodeFor(Errc code) {
  switch (code) {
    case Errc::kNone: return 1000;
    case Errc::kProtocolError: return 1002;
    case Errc::kInvalidPayload: return 1007;
    case Errc::kBadRequest: return 1008;
    case Errc::kMessageTooBig: return 1009;
    case Errc::kShutdown: return 1001;
    case Errc::kInternal: return 1011;
    case Errc::kUnavailable: return 1013;
    case Errc::kTimeout: return 4000;
    case Errc::kUnauthenticated: return 4001;
    case Errc::kPermissionDenied: return 4003;
    case Errc::kEvicted: return 4009;
    case Errc::kKicked: return 4010;
    case Errc::kResourceExhausted: return 4029;
    case Errc::kSlowConsumer: return 4008;
    case Errc::kInvalidConfig:
    case Errc::kNotFound:
      break;
  }
  return 1011;
}

bool isValidCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

size_t writeFrameHeader(uint8_t* dst, bool fin, bool rsv1, Opcode opcode, uint64_t length) {
  dst[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) |
                                static_cast<uint8_t>(opcode));
  if (length < 126) {
    dst[1] = static_cast<uint8_t>(length);
    return 2;
  }
  if (length <= 0xFFFF) {
    dst[1] = 126;
    dst[2] = static_cast<uint8_t>(length >> 8);
    dst[3] = static_cast<uint8_t>(length);
    return 4;
  }
  dst[1] = 127;
  for (int i = 0; i < 8; ++i) {
    dst[2 + i] = static_cast<uint8_t>(length >> (56 - 8 * i));
  }
  return 10;
}

std::string serverFrame(Opcode opcode, std::string_view payload, bool rsv1) {
  uint8_t header[kMaxFrameHeader];
  const size_t h = writeFrameHeader(header, true, rsv1, opcode, payload.size());
  std::string frame;
  frame.reserve(h + payload.size());
  frame.append(reinterpret_cast<const char*>(header), h);
  frame.append(payload);
  return frame;
}

// ---- Decode ---------------------------------------------------------------------------------

struct WsCodec::FrameInfo {
  bool fin = false;
  bool rsv1 = false;
  Opcode opcode = Opcode::kContinuation;
  uint64_t length = 0;
  const uint8_t* mask = nullptr;
};

// Passes the frame codec's messages through; a client CLOSE must put the WebSocket close frame
// on the wire before the core sees onPeerClose(), which flushes and closes at once.
class WsCodec::FramesSink final : public CodecSink {
 public:
  FramesSink(WsCodec& codec, CodecSink& sink, OutBuffer& out)
      : codec_(codec), sink_(sink), out_(out) {}
  void onMessage(Message&& message) override { sink_.onMessage(std::move(message)); }
  void onPeerClose(Errc code, std::string_view reason) override {
    if (!codec_.close_sent_) {
      codec_.writeClose(closeCodeFor(code), {}, out_);
      codec_.close_sent_ = true;
      codec_.releaseBuffers();
    }
    sink_.onPeerClose(code, reason);
  }
  void onActivity() override { sink_.onActivity(); }
  // hello_done: the frame codec refuses HELLO and never calls this.
  void onHello(HttpRequest hello) override { (void)hello; }

 private:
  WsCodec& codec_;
  CodecSink& sink_;
  OutBuffer& out_;
};

WsCodec::WsCodec(const WsCodecOptions& options) : options_(options) {
  if (options_.binary_envelope) {
    options_.envelope = false;
    tcp_frame::TcpFrameOptions frame_options;
    // A frame cannot be larger than its message; inflated bodies are held to the same bound.
    frame_options.max_frame = options_.max_message;
    // permessage-deflate compresses the whole message; compressing the frame too would only
    // cost CPU.
    frame_options.compression = !options_.deflate.enabled;
    frame_options.compress_min_size = options_.compress_min_size;
    frame_options.compression_level = options_.compression_level;
    frame_options.hello_done = true;
    extras().frames = std::make_unique<tcp_frame::TcpFrameCodec>(frame_options);
  }
}

WsCodec::~WsCodec() = default;

Result<size_t> WsCodec::decode(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (close_received_ || close_sent_ || failed_) {
    return in.size();
  }
  Result<size_t> result = decodeFrames(in, sink, out);
  if (!result) {
    failed_ = true;
  }
  return result;
}

Result<size_t> WsCodec::decodeFrames(std::string_view in, CodecSink& sink, OutBuffer& out) {
  size_t pos = 0;
  while (in.size() - pos >= 2) {
    const auto* p = reinterpret_cast<const uint8_t*>(in.data() + pos);
    const size_t avail = in.size() - pos;
    FrameInfo frame;
    frame.fin = (p[0] & 0x80) != 0;
    frame.rsv1 = (p[0] & 0x40) != 0;
    const uint8_t op = p[0] & 0x0F;
    // Everything decidable from the first two bytes is checked before waiting for more.
    if ((p[0] & 0x30) != 0) {
      return fail(Errc::kProtocolError, "rsv2 or rsv3 set");
    }
    if (!isKnownOpcode(op)) {
      return fail(Errc::kProtocolError, "reserved opcode " + std::to_string(op));
    }
    frame.opcode = static_cast<Opcode>(op);
    if ((p[1] & 0x80) == 0) {
      return fail(Errc::kProtocolError, "unmasked client frame");
    }
    const uint8_t len7 = p[1] & 0x7F;
    const bool control = (op & 0x8) != 0;
    bool compressed = false;
    if (control) {
      if (!frame.fin) {
        return fail(Errc::kProtocolError, "fragmented control frame");
      }
      if (len7 > kMaxControlPayload) {
        return fail(Errc::kProtocolError, "control frame longer than 125 bytes");
      }
      if (frame.rsv1) {
        return fail(Errc::kProtocolError, "rsv1 set on a control frame");
      }
    } else if (frame.opcode == Opcode::kContinuation) {
      if (message_opcode_ == Opcode::kContinuation) {
        return fail(Errc::kProtocolError, "continuation frame without a message");
      }
      if (frame.rsv1) {
        return fail(Errc::kProtocolError, "rsv1 set on a continuation frame");
      }
      compressed = message_compressed_;
    } else {
      if (message_opcode_ != Opcode::kContinuation) {
        return fail(Errc::kProtocolError, "data frame inside a fragmented message");
      }
      if (frame.rsv1 && !options_.deflate.enabled) {
        return fail(Errc::kProtocolError, "rsv1 set without permessage-deflate");
      }
      if (options_.envelope && frame.opcode == Opcode::kBinary) {
        return fail(Errc::kInvalidPayload, "binary message in imgate.v1 envelope mode");
      }
      if (frames() != nullptr && frame.opcode == Opcode::kText) {
        return fail(Errc::kInvalidPayload, "text message in imgate.v1.bin mode");
      }
      compressed = frame.rsv1;
    }

    const size_t ext = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0);
    if (avail < 2 + ext) {
      break;
    }
    if (len7 == 126) {
      frame.length = (uint64_t{p[2]} << 8) | p[3];
    } else if (len7 == 127) {
      for (size_t i = 0; i < 8; ++i) {
        frame.length = (frame.length << 8) | p[2 + i];
      }
      if ((frame.length >> 63) != 0) {
        return fail(Errc::kProtocolError, "64-bit frame length with the top bit set");
      }
    } else {
      frame.length = len7;
    }
    if (!control) {
      if (compressed) {
        if (frame.length > compressedBudget(options_.max_message) - compressed_in_) {
          return fail(Errc::kMessageTooBig, "compressed message exceeds max_message");
        }
      } else if (frame.length > options_.max_message - message_.size()) {
        return fail(Errc::kMessageTooBig, "message exceeds max_message");
      }
    }
    const size_t header_len = 2 + ext + 4;
    if (avail < header_len) {
      break;
    }
    frame.mask = p + 2 + ext;
    const std::string_view rest = in.substr(pos + header_len);
    if (rest.size() < frame.length) {
      Status status = checkPartialText(frame, rest);
      if (!status) {
        return tl::unexpected(std::move(status.error()));
      }
      break;
    }
    const std::string_view payload = rest.substr(0, frame.length);
    pos += header_len + frame.length;
    sink.onActivity();
    Status status = control ? onControlFrame(frame, payload, sink, out)
                            : onDataFrame(frame, payload, sink, out);
    frame_checked_ = 0;
    if (!status) {
      return tl::unexpected(std::move(status.error()));
    }
    if (close_received_ || close_sent_) {
      return in.size();  // a close was exchanged (possibly by the sink, re-entrantly)
    }
    if (stop_requested_) {
      stop_requested_ = false;
      return pos;
    }
  }
  return pos;
}

Status WsCodec::checkPartialText(const FrameInfo& frame, std::string_view available) {
  const bool text = frame.opcode == Opcode::kText ||
                    (frame.opcode == Opcode::kContinuation && message_opcode_ == Opcode::kText);
  const bool compressed =
      frame.opcode == Opcode::kContinuation ? message_compressed_ : frame.rsv1;
  if (!text || compressed || available.size() <= frame_checked_) {
    return {};
  }
  char buf[kUnmaskChunk];
  size_t off = frame_checked_;
  while (off < available.size()) {
    const size_t n = std::min(kUnmaskChunk, available.size() - off);
    unmask(buf, available.data() + off, n, frame.mask, off);
    if (!utf8_.feed(std::string_view(buf, n))) {
      return fail(Errc::kInvalidPayload, "invalid utf-8 in text message");
    }
    off += n;
  }
  frame_checked_ = static_cast<uint32_t>(off);
  return {};
}

Status WsCodec::inflatePayload(const FrameInfo& frame, std::string_view payload) {
  if (inflater() == nullptr) {
    extras().inflater = std::make_unique<Inflater>();
  }
  const bool text = message_opcode_ == Opcode::kText;
  char buf[kUnmaskChunk];
  size_t off = 0;
  while (true) {
    const size_t n = std::min(kUnmaskChunk, payload.size() - off);
    const size_t before = message_.size();
    Status status;
    if (n > 0) {
      unmask(buf, payload.data() + off, n, frame.mask, off);
      status = inflater()->feed(std::string_view(buf, n), message_, options_.max_message);
    } else if (frame.fin) {
      status = inflater()->finish(message_, options_.max_message);
    }
    if (!status) {
      return status;
    }
    if (text && !utf8_.feed(std::string_view(message_).substr(before))) {
      return fail(Errc::kInvalidPayload, "invalid utf-8 in text message");
    }
    if (n == 0) {
      return {};
    }
    off += n;
  }
}

Status WsCodec::onDataFrame(const FrameInfo& frame, std::string_view payload, CodecSink& sink,
                            OutBuffer& out) {
  if (frame.opcode != Opcode::kContinuation) {
    message_opcode_ = frame.opcode;
    message_compressed_ = frame.rsv1;
  }
  const bool text = message_opcode_ == Opcode::kText;
  if (message_compressed_) {
    compressed_in_ += static_cast<uint32_t>(payload.size());
    Status status = inflatePayload(frame, payload);
    if (!status) {
      return status;
    }
  } else if (!payload.empty()) {
    const size_t old = message_.size();
    message_.resize(old + payload.size());
    unmask(message_.data() + old, payload.data(), payload.size(), frame.mask, 0);
    if (text && !utf8_.feed(std::string_view(message_).substr(old + frame_checked_))) {
      return fail(Errc::kInvalidPayload, "invalid utf-8 in text message");
    }
  }
  if (!frame.fin) {
    return {};
  }
  if (text && !utf8_.complete()) {
    return fail(Errc::kInvalidPayload, "text message ends inside a utf-8 sequence");
  }
  std::string data = std::move(message_);
  if (message_compressed_ && inflater() != nullptr) {
    if (options_.deflate.client_no_context_takeover) {
      extras_->inflater.reset();
    } else {
      inflater()->endMessage();
    }
  }
  resetMessage();
  if (frames() != nullptr) {
    return onFrames(std::move(data), sink, out);
  }
  if (options_.envelope) {
    return onEnvelope(std::move(data), sink, out);
  }
  Message message;
  message.kind = MessageKind::kData;
  message.type = text ? PayloadType::kText : PayloadType::kBinary;
  message.payload = makeBytes(std::move(data));
  sink.onMessage(std::move(message));
  return {};
}

Status WsCodec::onEnvelope(std::string text, CodecSink& sink, OutBuffer& out) {
  Result<Uplink> uplink = decodeEnvelope(std::move(text));
  if (!uplink) {
    return tl::unexpected(std::move(uplink.error()));
  }
  if (uplink->kind == Uplink::Kind::kPing) {
    // Same rule as WebSocket pings: a client that pings without reading gets no more pongs.
    if (out.pending() <= kPongBackpressureLimit) {
      uint8_t pong[kMaxFrameHeader + kPongEnvelope.size()];
      const size_t h = writeFrameHeader(pong, true, false, Opcode::kText, kPongEnvelope.size());
      std::memcpy(pong + h, kPongEnvelope.data(), kPongEnvelope.size());
      out.append(std::string_view(reinterpret_cast<const char*>(pong),
                                  h + kPongEnvelope.size()));
    }
    return {};
  }
  sink.onMessage(std::move(uplink->message));
  return {};
}

Status WsCodec::onFrames(std::string data, CodecSink& sink, OutBuffer& out) {
  if (data.empty()) {
    return fail(Errc::kProtocolError, "empty message in imgate.v1.bin mode");
  }
  FramesSink frames_sink(*this, sink, out);
  MessageOut replies(out);
  Result<size_t> used = frames()->decode(data, frames_sink, replies);
  if (!used) {
    return tl::unexpected(std::move(used.error()));
  }
  if (close_sent_) {
    return {};  // a client CLOSE, or the sink closed re-entrantly: the rest is ignored
  }
  if (*used != data.size()) {
    return fail(Errc::kProtocolError, "frame cut by the end of its websocket message");
  }
  return {};
}

Status WsCodec::onControlFrame(const FrameInfo& frame, std::string_view payload, CodecSink& sink,
                               OutBuffer& out) {
  char buf[kMaxControlPayload];
  unmask(buf, payload.data(), payload.size(), frame.mask, 0);
  const std::string_view data(buf, payload.size());
  switch (frame.opcode) {
    case Opcode::kPing: {
      if (out.pending() <= kPongBackpressureLimit) {
        uint8_t pong[kMaxFrameHeader + kMaxControlPayload];
        const size_t h = writeFrameHeader(pong, true, false, Opcode::kPong, data.size());
        std::memcpy(pong + h, data.data(), data.size());
        out.append(std::string_view(reinterpret_cast<const char*>(pong), h + data.size()));
      }
      return {};
    }
    case Opcode::kPong:
      return {};
    case Opcode::kClose:
      break;
    default:
      return fail(Errc::kInternal, "not a control opcode");
  }
  if (data.size() == 1) {
    return fail(Errc::kProtocolError, "close frame with a 1-byte payload");
  }
  std::string_view reason;
  if (data.size() >= 2) {
    const uint16_t code =
        static_cast<uint16_t>((static_cast<uint8_t>(data[0]) << 8) | static_cast<uint8_t>(data[1]));
    if (!isValidCloseCode(code)) {
      return fail(Errc::kProtocolError, "invalid close code " + std::to_string(code));
    }
    reason = data.substr(2);
    if (!common::isValidUtf8(reason)) {
      return fail(Errc::kInvalidPayload, "close reason is not utf-8");
    }
  }
  uint8_t echo[kMaxFrameHeader + 2];
  const size_t code_len = data.size() >= 2 ? 2 : 0;
  const size_t h = writeFrameHeader(echo, true, false, Opcode::kClose, code_len);
  std::memcpy(echo + h, data.data(), code_len);
  out.append(std::string_view(reinterpret_cast<const char*>(echo), h + code_len));
  close_received_ = true;
  close_sent_ = true;
  releaseBuffers();
  sink.onPeerClose(Errc::kNone, reason);
  return {};
}

void WsCodec::resetMessage() {
  message_ = std::string();
  message_opcode_ = Opcode::kContinuation;
  message_compressed_ = false;
  compressed_in_ = 0;
  utf8_.reset();
}

WsCodec::Extras::~Extras() = default;

WsCodec::Extras& WsCodec::extras() {
  if (!extras_) {
    extras_ = std::make_unique<Extras>();
  }
  return *extras_;
}

void WsCodec::releaseBuffers() {
  resetMessage();
  if (extras_) {
    extras_->inflater.reset();
    extras_->deflater.reset();
  }
}

// ---- Encode ---------------------------------------------------------------------------------

bool WsCodec::encodesCompressed(const Message& message) const {
  return options_.deflate.enabled && message.data().size() >= options_.compress_min_size;
}

bool WsCodec::usesSessionDeflater() const {
  return options_.session_deflater && !options_.deflate.server_no_context_takeover;
}

namespace {

}  // namespace

std::string ackErrorJson(const Message& ack) {
  std::string json = "{\"type\":\"error\",\"id\":";
  appendJsonString(json, ack.id);
  json.append(",\"event\":");
  appendJsonString(json, ack.event);
  json.append(",\"error\":");
  appendJsonString(json, metaValue(ack, "status"));
  json.append(",\"reason\":");
  appendJsonString(json, metaValue(ack, "reason"));
  json.push_back('}');
  return json;
}

// Plain WebSocket has no message ids, so an ack (the answer to a client message, e.g. from the
// route stage) becomes: nothing when it is a bare success, the backend's reply body when there is
// one, and {"type":"error","id":...,"error":...,"reason":...} when it failed.
Status WsCodec::encode(const Message& message, OutBuffer& out) {
  if (close_sent_) {
    return {};
  }
  if (frames() != nullptr) {
    StringOut frame(out.pending());
    Status status = frames()->encode(message, frame);
    if (!status) {
      return status;
    }
    // Large frames are handed over by reference, like large plain payloads.
    if (frame.data.size() > kCopyThreshold) {
      const Bytes owner = makeBytes(std::move(frame.data));
      return writeMessage(Opcode::kBinary, *owner, owner, encodesCompressed(message), out);
    }
    return writeMessage(Opcode::kBinary, frame.data, nullptr, encodesCompressed(message), out);
  }
  if (options_.envelope) {
    std::string json = encodeEnvelope(message);
    // Large envelopes are handed over by reference, like large plain payloads.
    Bytes owner = json.size() > kCopyThreshold ? makeBytes(std::move(json)) : nullptr;
    const std::string_view payload = owner ? std::string_view(*owner) : std::string_view(json);
    return writeMessage(Opcode::kText, payload, owner, encodesCompressed(message), out);
  }
  if (message.kind == MessageKind::kAck) {
    const std::string_view status = metaValue(message, "status");
    if (status.empty() || status == "ok") {
      if (message.data().empty()) {
        return {};
      }
      Message reply = message;
      reply.kind = MessageKind::kData;
      return encode(reply, out);
    }
    Message error;
    error.type = PayloadType::kText;
    error.payload = makeBytes(ackErrorJson(message));
    return encode(error, out);
  }
  return writeMessage(opcodeFor(message), message.data(), message.payload,
                      encodesCompressed(message), out);
}

Status WsCodec::writeMessage(Opcode opcode, std::string_view payload, const Bytes& owner,
                             bool compress, OutBuffer& out) {
  if (compress) {
    Deflater* session = nullptr;
    if (usesSessionDeflater()) {
      if (deflater() == nullptr) {
        extras().deflater = std::make_unique<Deflater>(options_.deflate.server_max_window_bits,
                                               options_.compression_level, 8);
      }
      session = deflater();
    }
    std::string frame;
    Status status = buildCompressedFrame(payload, opcode, session,
                                         options_.deflate.server_max_window_bits,
                                         options_.compression_level, frame);
    if (!status) {
      return status;
    }
    out.appendShared(makeBytes(std::move(frame)));
    return {};
  }
  uint8_t buf[kMaxFrameHeader + kCopyThreshold];
  const size_t h = writeFrameHeader(buf, true, false, opcode, payload.size());
  if (payload.size() <= kCopyThreshold) {
    if (!payload.empty()) {
      std::memcpy(buf + h, payload.data(), payload.size());
    }
    out.append(std::string_view(reinterpret_cast<const char*>(buf), h + payload.size()));
    return {};
  }
  out.append(std::string_view(reinterpret_cast<const char*>(buf), h));
  if (owner) {
    out.appendShared(owner);
  } else {
    out.append(payload);
  }
  return {};
}

uint64_t WsCodec::sharedEncodingKey(const Message& message) const {
  if (close_sent_ || failed_) {
    return 0;
  }
  const bool compressed = encodesCompressed(message);
  if (compressed && deflater() != nullptr) {
    // The session's deflate history must see every compressed frame the client inflates; a
    // shared frame would slip past it and corrupt later back-references.
    return 0;
  }
  uint64_t key = kSharedKeyTag;
  if (frames() != nullptr) {
    const uint64_t frame_key = frames()->sharedEncodingKey(message);
    if (frame_key == 0) {
      return 0;  // per-session frames (SEND_ACK)
    }
    // The frame codec's low 16 bits (type, kind, its compression) next to ours.
    key |= 8 | ((frame_key & 0xFFFF) << 16);
  } else if (options_.envelope) {
    key |= 4;  // the envelope is text whatever the payload
  } else if (message.type == PayloadType::kBinary) {
    key |= 1;
  }
  if (compressed) {
    key |= 2;
    key |= uint64_t{options_.deflate.server_max_window_bits} << 4;
    key |= uint64_t{options_.compression_level} << 8;
  }
  return key;
}

Bytes WsCodec::encodeShared(const Message& message) const {
  if (frames() != nullptr) {
    const Bytes frame = frames()->encodeShared(message);
    return sharedFrame(Opcode::kBinary, frame ? std::string_view(*frame) : std::string_view(),
                       encodesCompressed(message));
  }
  if (options_.envelope) {
    const std::string json = encodeEnvelope(message);
    return sharedFrame(Opcode::kText, json, encodesCompressed(message));
  }
  return sharedFrame(opcodeFor(message), message.data(), encodesCompressed(message));
}

Bytes WsCodec::sharedFrame(Opcode opcode, std::string_view payload, bool compress) const {
  if (compress) {
    // A fresh deflate state makes the frame self-contained: it refers to nothing before it.
    // A client that keeps context (its inflater still holds earlier messages) decodes it, since
    // nothing in it points back into that window, and the sync-flush ending leaves its inflater
    // ready for the next message; a client without context takeover resets before every
    // message anyway. So one byte string serves both kinds of client.
    std::string frame;
    if (buildCompressedFrame(payload, opcode, nullptr, options_.deflate.server_max_window_bits,
                             options_.compression_level, frame)) {
      return makeBytes(std::move(frame));
    }
    // zlib could not allocate: an uncompressed frame is valid for every client.
  }
  return makeBytes(serverFrame(opcode, payload));
}

void WsCodec::onOpened(const SessionOpened& opened, OutBuffer& out) {
  if (frames() != nullptr && !close_sent_) {
    StringOut hello_ack(out.pending());
    frames()->onOpened(opened, hello_ack);
    // Many rooms make a long streams list: compressed like any message of that size.
    const bool compress =
        options_.deflate.enabled && hello_ack.data.size() >= options_.compress_min_size;
    if (!writeMessage(Opcode::kBinary, hello_ack.data, nullptr, compress, out)) {
      out.append(serverFrame(Opcode::kBinary, hello_ack.data));  // zlib could not allocate
    }
    return;
  }
  if (!options_.envelope || close_sent_) {
    return;
  }
  out.append(serverFrame(Opcode::kText, encodeWelcome(opened)));
}

void WsCodec::encodePing(OutBuffer& out) {
  if (close_sent_) {
    return;
  }
  static constexpr char kPing[2] = {static_cast<char>(0x89), 0x00};
  out.append(std::string_view(kPing, sizeof(kPing)));
}

void WsCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  if (close_sent_) {
    return;
  }
  close_sent_ = true;
  if (frames() != nullptr) {
    StringOut last(out.pending());
    frames()->encodeClose(code, reason, last);
    if (!last.data.empty()) {
      out.append(serverFrame(Opcode::kBinary, last.data));
    }
  }
  writeClose(closeCodeFor(code), code == Errc::kInternal ? std::string_view() : reason, out);
  releaseBuffers();
}

void WsCodec::writeClose(uint16_t code, std::string_view reason, OutBuffer& out) {
  uint8_t frame[kMaxFrameHeader + kMaxControlPayload];
  const size_t reason_len = common::validUtf8Prefix(reason, kMaxCloseReason);
  const size_t h = writeFrameHeader(frame, true, false, Opcode::kClose, 2 + reason_len);
  frame[h] = static_cast<uint8_t>(code >> 8);
  frame[h + 1] = static_cast<uint8_t>(code);
  if (reason_len > 0) {
    std::memcpy(frame + h + 2, reason.data(), reason_len);
  }
  out.append(std::string_view(reinterpret_cast<const char*>(frame), h + 2 + reason_len));
}

}  // namespace imgate::mod::websocket
