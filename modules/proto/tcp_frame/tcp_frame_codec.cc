// SPDX-License-Identifier: Apache-2.0
#include "tcp_frame_codec.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "modules/common/json_text.h"

namespace imgate::mod::tcp_frame {

namespace {

// Keeps tcp_frame fan-out keys apart from other codecs' keys ("TCF1").
constexpr uint64_t kSharedKeyTag = uint64_t{0x54434631} << 32;

constexpr uint8_t kKindControl = 2;
constexpr uint8_t kKindPresence = 3;

uint32_t clampMs(std::chrono::milliseconds ms) {
  const int64_t v = ms.count();
  return v <= 0 ? 0u : static_cast<uint32_t>(std::min<int64_t>(v, UINT32_MAX));
}

bool hasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<uint8_t>(c);
    return u < 0x20 || u == 0x7F;
  });
}

std::optional<std::string_view> metaValue(const Message& message, std::string_view key) {
  for (const auto& [k, v] : message.meta) {
    if (k == key) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

// SEND_ACK status: "ok"/"none"/"0" is 0, an Errc name maps through the code table, a number
// is taken as is.
uint16_t ackStatus(const Message& message) {
  const auto status = metaValue(message, "status");
  if (!status || status->empty() || *status == "ok") {
    return kCodeOk;
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(status->data(), status->data() + status->size(), value);
  if (ec == std::errc() && end == status->data() + status->size() && value <= UINT16_MAX) {
    return static_cast<uint16_t>(value);
  }
  for (uint16_t i = 0; i <= static_cast<uint16_t>(Errc::kSlowConsumer); ++i) {
    const auto code = static_cast<Errc>(i);
    if (errcName(code) == *status) {
      return code == Errc::kNone ? kCodeOk : closeCodeFor(code);
    }
  }
  return closeCodeFor(Errc::kInternal);
}

std::optional<uint64_t> decimalId(std::string_view id) {
  uint64_t value = 0;
  if (id.empty() || (id.size() > 1 && id[0] == '0')) {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  if (ec != std::errc() || end != id.data() + id.size()) {
    return std::nullopt;
  }
  return value;
}

std::string_view cutReason(std::string_view reason) {
  return reason.substr(0, std::min(reason.size(), kMaxReason));
}

}  // namespace

bool sendsErrorFrame(Errc code) {
  switch (code) {
    case Errc::kProtocolError:
    case Errc::kInvalidPayload:
    case Errc::kMessageTooBig:
    case Errc::kBadRequest:
    case Errc::kUnauthenticated:
    case Errc::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

std::string percentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    const auto u = static_cast<uint8_t>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

// ---- Decode -----------------------------------------------------------------------------------

Result<size_t> TcpFrameCodec::decode(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (close_sent_ || failed_) {
    return in.size();
  }
  size_t pos = 0;
  while (pos < in.size()) {
    const std::string_view rest = in.substr(pos);
    auto header = parseHeader(rest, options_->max_frame);
    if (!header) {
      failed_ = true;
      return tl::unexpected(std::move(header.error()));
    }
    if (!*header || rest.size() - kHeaderSize < (*header)->length) {
      break;
    }
    const FrameHeader& h = **header;
    pos += kHeaderSize + h.length;
    sink.onActivity();
    const bool had_hello = hello_seen_;
    Status status = onFrame(h, rest.substr(kHeaderSize, h.length), sink, out);
    if (!status) {
      failed_ = true;
      return tl::unexpected(std::move(status.error()));
    }
    if (close_sent_) {
      return in.size();
    }
    if (!had_hello && hello_seen_) {
      return pos;  // the core opens the session before decoding further (codec.h)
    }
  }
  return pos;
}

Status TcpFrameCodec::onFrame(const FrameHeader& header, std::string_view wire_body,
                              CodecSink& sink, OutBuffer& out) {
  const FrameType type = header.type;
  if (isServerOnly(type)) {
    return fail(Errc::kProtocolError,
                std::string(frameTypeName(type)) + " is sent by the server only");
  }
  if (!hello_seen_ && type != FrameType::kHello && type != FrameType::kPing &&
      type != FrameType::kClose) {
    return fail(Errc::kProtocolError, std::string(frameTypeName(type)) + " before HELLO");
  }
  if (hello_seen_ && type == FrameType::kHello) {
    return fail(Errc::kProtocolError, options_->hello_done
                                          ? "HELLO on a session its transport already opened"
                                          : "second HELLO");
  }
  std::string inflated;
  std::string_view body = wire_body;
  if ((header.flags & kFlagCompressed) != 0) {
    Status status = inflateBody(wire_body, options_->max_frame, inflated);
    if (!status) {
      return status;
    }
    body = inflated;
  }
  if (type == FrameType::kPing) {
    if (out.pending() <= kPongBackpressureLimit) {
      out.append(buildFrame(FrameType::kPong, 0, header.id, body));
    }
    return {};
  }
  if (type == FrameType::kPong) {
    return {};
  }
  auto fields = parseFields(body);
  if (!fields) {
    return tl::unexpected(std::move(fields.error()));
  }
  switch (type) {
    case FrameType::kHello:
      return onHello(header, *fields, sink);
    case FrameType::kSend: {
      Message m;
      m.kind = MessageKind::kData;
      m.type = (header.flags & kFlagBinary) != 0 ? PayloadType::kBinary : PayloadType::kText;
      if (auto id = fields->str(Tag::kMsgId)) {
        m.id = std::string(*id);
      } else if (header.id != 0) {
        m.id = std::to_string(header.id);
      }
      m.event = std::string(fields->str(Tag::kEvent).value_or(""));
      m.payload = makeBytes(std::string(fields->str(Tag::kData).value_or("")));
      if ((header.flags & kFlagAckRequired) != 0) {
        m.meta.emplace_back("ack_required", "1");
      }
      sink.onMessage(std::move(m));
      return {};
    }
    case FrameType::kPushAck: {
      Message m;
      m.kind = MessageKind::kAck;
      m.seq = header.id;
      m.stream = std::string(fields->str(Tag::kStream).value_or(""));
      m.id = std::string(fields->str(Tag::kMsgId).value_or(""));
      m.payload = makeBytes(std::string());
      sink.onMessage(std::move(m));
      return {};
    }
    case FrameType::kRead: {
      // A read mark at 0 would mark nothing; refusing it catches clients that send the wrong id.
      if (header.id == 0) {
        return fail(Errc::kProtocolError, "READ without a seq");
      }
      Message m;
      m.kind = MessageKind::kControl;
      m.event = "read";
      m.seq = header.id;
      m.stream = std::string(fields->str(Tag::kStream).value_or(""));
      m.payload = makeBytes(std::string());
      sink.onMessage(std::move(m));
      return {};
    }
    case FrameType::kJoin:
    case FrameType::kLeave: {
      const auto room = fields->str(Tag::kRoom);
      if (!room || room->empty()) {
        return fail(Errc::kProtocolError,
                    std::string(frameTypeName(type)) + " without a room");
      }
      Message m;
      m.kind = MessageKind::kControl;
      m.event = type == FrameType::kJoin ? "join" : "leave";
      m.to_kind = TargetKind::kRoom;
      m.to = std::string(*room);
      if (header.id != 0) {
        m.id = std::to_string(header.id);
      }
      m.payload = makeBytes(std::string());
      sink.onMessage(std::move(m));
      return {};
    }
    case FrameType::kClose: {
      out.append(buildFrame(FrameType::kClose, 0, 0, [] {
        std::string b;
        TlvWriter(b).addU16(Tag::kCode, closeCodeFor(Errc::kNone));
        return b;
      }()));
      close_sent_ = true;
      sink.onPeerClose(Errc::kNone, fields->str(Tag::kReason).value_or(""));
      return {};
    }
    default:
      return fail(Errc::kInternal, "unhandled frame type");
  }
}

Status TcpFrameCodec::onHello(const FrameHeader& header, const Fields& fields, CodecSink& sink) {
  const std::string_view token = fields.str(Tag::kToken).value_or("");
  const std::string_view device = fields.str(Tag::kDevice).value_or("");
  const std::string_view sdk = fields.str(Tag::kSdkVersion).value_or("");
  // The resume JSON becomes a header too, so it is held to the same rule: compact JSON has no
  // raw control characters (inside strings they must be escaped anyway).
  const std::string_view resume_json = fields.str(Tag::kResume).value_or("");
  if (hasControlChars(token) || hasControlChars(device) || hasControlChars(sdk) ||
      hasControlChars(resume_json)) {
    return fail(Errc::kInvalidPayload, "control characters in a HELLO field");
  }
  auto resume = fields.uint(Tag::kResumeSession, 8);
  if (!resume) {
    return tl::unexpected(std::move(resume.error()));
  }
  auto last_seq = fields.uint(Tag::kLastSeq, 8);
  if (!last_seq) {
    return tl::unexpected(std::move(last_seq.error()));
  }
  auto epoch = fields.uint(Tag::kEpoch, 8);
  if (!epoch) {
    return tl::unexpected(std::move(epoch.error()));
  }
  HttpRequest hello;
  hello.method = "HELLO";
  hello.path = "/";
  std::string query;
  auto param = [&query](std::string_view key, std::string_view value) {
    if (!query.empty()) {
      query.push_back('&');
    }
    query.append(key).append("=").append(percentEncode(value));
  };
  if (!token.empty()) {
    param("token", token);
    hello.headers.push_back({"authorization", "Bearer " + std::string(token)});
  }
  if (!device.empty()) {
    param("device", device);
    hello.headers.push_back({"x-device", std::string(device)});
  }
  if (!sdk.empty()) {
    param("sdk_version", sdk);
    hello.headers.push_back({"x-sdk-version", std::string(sdk)});
  }
  if (*resume) {
    param("resume_session", std::to_string(**resume));
    hello.headers.push_back({"x-resume-session", std::to_string(**resume)});
  }
  if (*epoch) {
    param("epoch", epochHex(**epoch));
    hello.headers.push_back({"x-epoch", epochHex(**epoch)});
  }
  if (*last_seq) {
    param("last_seq", std::to_string(**last_seq));
    hello.headers.push_back({"x-last-seq", std::to_string(**last_seq)});
  }
  if (!resume_json.empty()) {
    param("resume", resume_json);
    hello.headers.push_back({"x-imgate-resume", std::string(resume_json)});
  }
  hello.query = std::move(query);
  hello.target = hello.query.empty() ? "/" : "/?" + hello.query;
  hello_id_ = header.id;
  hello_seen_ = true;
  sink.onHello(std::move(hello));
  return {};
}

// ---- Encode -----------------------------------------------------------------------------------

std::string TcpFrameCodec::encodeFrame(const Message& message) const {
  std::string body;
  TlvWriter w(body);
  FrameType type = FrameType::kPush;
  uint64_t id = message.seq;
  uint8_t flags = message.type == PayloadType::kBinary ? kFlagBinary : 0;
  if (message.kind == MessageKind::kAck) {
    type = FrameType::kSendAck;
    const auto numeric = decimalId(message.id);
    id = numeric.value_or(0);
    if (!numeric && !message.id.empty()) {
      w.addString(Tag::kMsgId, message.id);
    }
    w.addU16(Tag::kStatus, ackStatus(message));
    w.addU64(Tag::kServerTimeMs, static_cast<uint64_t>(std::max<int64_t>(message.ts_ms, 0)));
    if (auto reason = metaValue(message, "reason")) {
      w.addString(Tag::kReason, cutReason(*reason));
    }
  } else if (message.kind == MessageKind::kControl && message.event == "read") {
    w.addString(Tag::kStream, message.stream);
    w.addString(Tag::kDevice, metaValue(message, "device").value_or(""));
    return buildFrame(FrameType::kRead, 0, message.seq, body);
  } else {
    if (message.kind == MessageKind::kControl) {
      w.addU8(Tag::kKind, kKindControl);
    } else if (message.kind == MessageKind::kPresence) {
      w.addU8(Tag::kKind, kKindPresence);
    }
    if (!message.id.empty()) {
      w.addString(Tag::kMsgId, message.id);
    }
    if (message.seq != 0) {
      w.addString(Tag::kStream, message.stream);
      w.addU64(Tag::kEpoch, message.epoch);
    }
    if (message.reliable) {
      flags |= kFlagAckRequired;
    }
  }
  if (!message.event.empty()) {
    w.addString(Tag::kEvent, message.event);
  }
  if (type == FrameType::kPush || !message.data().empty()) {
    w.addString(Tag::kData, message.data());
  }
  if (options_->compression && message.data().size() >= options_->compress_min_size) {
    std::string packed;
    if (deflateBody(body, options_->compression_level, packed) && packed.size() < body.size()) {
      return buildFrame(type, flags | kFlagCompressed, id, packed);
    }
  }
  return buildFrame(type, flags, id, body);
}

Status TcpFrameCodec::encode(const Message& message, OutBuffer& out) {
  if (close_sent_) {
    return {};
  }
  out.append(encodeFrame(message));
  return {};
}

uint64_t TcpFrameCodec::sharedEncodingKey(const Message& message) const {
  if (close_sent_ || failed_ || message.kind == MessageKind::kAck) {
    return 0;
  }
  uint64_t key = kSharedKeyTag;
  key |= message.type == PayloadType::kBinary ? 1 : 0;
  key |= uint64_t{static_cast<uint8_t>(message.kind)} << 1;
  if (options_->compression && message.data().size() >= options_->compress_min_size) {
    key |= uint64_t{1} << 4;
    key |= uint64_t(options_->compression_level) << 8;
  }
  return key;
}

Bytes TcpFrameCodec::encodeShared(const Message& message) const {
  return makeBytes(encodeFrame(message));
}

void TcpFrameCodec::onOpened(const SessionOpened& opened, OutBuffer& out) {
  std::string body;
  TlvWriter w(body);
  w.addU64(Tag::kSessionId, opened.session_id);
  w.addU64(Tag::kServerTimeMs, static_cast<uint64_t>(std::max<int64_t>(opened.server_time_ms, 0)));
  // Two fifths of the idle timeout: one lost ping still leaves a second before the cut-off.
  w.addU32(Tag::kHeartbeatMs, clampMs(opened.idle_timeout * 2 / 5));
  w.addU32(Tag::kIdleTimeoutMs, clampMs(opened.idle_timeout));
  w.addU32(Tag::kPingIntervalMs, clampMs(opened.ping_interval));
  w.addString(Tag::kApp, opened.identity.app);
  w.addString(Tag::kUser, opened.identity.user);
  w.addString(Tag::kDevice, opened.identity.device);
  size_t json_size = 0;
  if (!opened.streams.empty()) {
    std::string json;
    appendStreamsJson(json, opened.streams);
    json_size = json.size();
    w.addString(Tag::kStreams, json);
  }
  // A user in many rooms gets one entry per room: compress like a large PUSH.
  if (options_->compression && json_size > 0 && json_size >= options_->compress_min_size) {
    std::string packed;
    if (deflateBody(body, options_->compression_level, packed) && packed.size() < body.size()) {
      out.append(buildFrame(FrameType::kHelloAck, kFlagCompressed, hello_id_, packed));
      return;
    }
  }
  out.append(buildFrame(FrameType::kHelloAck, 0, hello_id_, body));
}

void TcpFrameCodec::encodePing(OutBuffer& out) {
  if (close_sent_) {
    return;
  }
  out.append(buildFrame(FrameType::kPing, 0, ++ping_id_, {}));
}

void TcpFrameCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  if (close_sent_) {
    return;
  }
  close_sent_ = true;
  const std::string_view why = code == Errc::kInternal ? std::string_view() : cutReason(reason);
  const uint16_t wire_code = closeCodeFor(code);
  if (code == Errc::kShutdown) {
    std::string body;
    TlvWriter w(body);
    w.addString(Tag::kReason, why);
    w.addString(Tag::kReconnectHint, options_->reconnect_hint);
    w.addU32(Tag::kRetryAfterMs, clampMs(options_->reconnect_jitter));
    out.append(buildFrame(FrameType::kGoaway, 0, 0, body));
  } else if (sendsErrorFrame(code)) {
    std::string body;
    TlvWriter w(body);
    w.addU16(Tag::kCode, wire_code);
    w.addString(Tag::kReason, why);
    out.append(buildFrame(FrameType::kError, 0, 0, body));
  }
  std::string body;
  TlvWriter w(body);
  w.addU16(Tag::kCode, wire_code);
  if (!why.empty()) {
    w.addString(Tag::kReason, why);
  }
  out.append(buildFrame(FrameType::kClose, 0, 0, body));
}

}  // namespace imgate::mod::tcp_frame
