// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/tcp_frame/client/tcp_frame_client.h"

#include <rapidjson/document.h>

#include <charconv>
#include <utility>

#include "modules/common/json_text.h"

namespace imgate::mod::tcp_frame::client {

namespace {

Status expectType(const Frame& frame, FrameType want) {
  if (frame.type != want) {
    return fail(Errc::kProtocolError, "expected " + std::string(frameTypeName(want)) + ", got " +
                                          std::string(frameTypeName(frame.type)));
  }
  return {};
}

std::string withRoom(FrameType type, uint64_t id, std::string_view room) {
  std::string body;
  TlvWriter(body).addString(Tag::kRoom, room);
  return buildFrame(type, 0, id, body);
}

std::string str(const Fields& f, Tag tag) { return std::string(f.str(tag).value_or("")); }

std::string withStream(FrameType type, uint64_t seq, std::string_view stream) {
  std::string body;
  if (!stream.empty()) {
    TlvWriter(body).addString(Tag::kStream, stream);
  }
  return buildFrame(type, 0, seq, body);
}

std::optional<uint64_t> parseHex(std::string_view s) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, 16);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

// ---- Encoding ---------------------------------------------------------------------------------

std::string encodeHello(const Hello& hello, uint64_t id) {
  std::string body;
  TlvWriter w(body);
  if (!hello.token.empty()) {
    w.addString(Tag::kToken, hello.token);
  }
  if (!hello.device.empty()) {
    w.addString(Tag::kDevice, hello.device);
  }
  if (!hello.sdk_version.empty()) {
    w.addString(Tag::kSdkVersion, hello.sdk_version);
  }
  if (hello.resume_session) {
    w.addU64(Tag::kResumeSession, *hello.resume_session);
  }
  if (hello.last_seq) {
    w.addU64(Tag::kLastSeq, *hello.last_seq);
  }
  if (hello.epoch) {
    w.addU64(Tag::kEpoch, *hello.epoch);
  }
  if (!hello.resume.empty()) {
    w.addString(Tag::kResume, hello.resume);
  }
  return buildFrame(FrameType::kHello, 0, id, body);
}

std::string encodeSend(uint64_t id, std::string_view event, std::string_view data,
                       const SendOptions& options) {
  std::string body;
  TlvWriter w(body);
  if (!options.msg_id.empty()) {
    w.addString(Tag::kMsgId, options.msg_id);
  }
  if (!event.empty()) {
    w.addString(Tag::kEvent, event);
  }
  w.addString(Tag::kData, data);
  uint8_t flags = 0;
  if (options.binary) {
    flags |= kFlagBinary;
  }
  if (options.ack_required) {
    flags |= kFlagAckRequired;
  }
  if (options.compress) {
    std::string packed;
    if (deflateBody(body, 6, packed) && packed.size() < body.size()) {
      return buildFrame(FrameType::kSend, flags | kFlagCompressed, id, packed);
    }
  }
  return buildFrame(FrameType::kSend, flags, id, body);
}

std::string encodePushAck(uint64_t seq, std::string_view stream) {
  return withStream(FrameType::kPushAck, seq, stream);
}

std::string encodeRead(uint64_t seq, std::string_view stream) {
  return withStream(FrameType::kRead, seq, stream);
}

std::string resumeJson(const std::vector<StreamPosition>& positions) {
  std::string out;
  appendResumeJson(out, positions);
  return out;
}

std::string encodeJoin(uint64_t id, std::string_view room) {
  return withRoom(FrameType::kJoin, id, room);
}

std::string encodeLeave(uint64_t id, std::string_view room) {
  return withRoom(FrameType::kLeave, id, room);
}

std::string encodePing(uint64_t id, std::string_view body) {
  return buildFrame(FrameType::kPing, 0, id, body);
}

std::string encodePong(uint64_t id, std::string_view body) {
  return buildFrame(FrameType::kPong, 0, id, body);
}

std::string encodeClose(uint16_t code, std::string_view reason) {
  std::string body;
  TlvWriter w(body);
  w.addU16(Tag::kCode, code);
  if (!reason.empty()) {
    w.addString(Tag::kReason, reason);
  }
  return buildFrame(FrameType::kClose, 0, 0, body);
}

// ---- Decoding ---------------------------------------------------------------------------------

Status FrameDecoder::feed(std::string_view bytes) {
  if (failed_) {
    return fail(Errc::kProtocolError, "decoder already failed");
  }
  buffer_.append(bytes);
  size_t pos = 0;
  Status status;
  while (pos < buffer_.size()) {
    const std::string_view rest = std::string_view(buffer_).substr(pos);
    auto header = parseHeader(rest, max_frame_);
    if (!header) {
      status = tl::unexpected(std::move(header.error()));
      break;
    }
    if (!*header || rest.size() - kHeaderSize < (*header)->length) {
      break;
    }
    const FrameHeader& h = **header;
    Frame frame{h.type, h.flags, h.id, {}};
    const std::string_view body = rest.substr(kHeaderSize, h.length);
    if ((h.flags & kFlagCompressed) != 0) {
      status = inflateBody(body, max_frame_, frame.body);
      if (!status) {
        break;
      }
    } else {
      frame.body.assign(body);
    }
    pos += kHeaderSize + h.length;
    frames_.push_back(std::move(frame));
  }
  buffer_.erase(0, pos);
  if (!status) {
    failed_ = true;
  }
  return status;
}

std::optional<Frame> FrameDecoder::next() {
  if (frames_.empty()) {
    return std::nullopt;
  }
  Frame f = std::move(frames_.front());
  frames_.pop_front();
  return f;
}

Result<HelloAck> parseHelloAck(const Frame& frame) {
  if (Status s = expectType(frame, FrameType::kHelloAck); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  HelloAck ack;
  ack.id = frame.id;
  auto session = f->uint(Tag::kSessionId, 8);
  auto time = f->uint(Tag::kServerTimeMs, 8);
  auto heartbeat = f->uint(Tag::kHeartbeatMs, 4);
  auto idle = f->uint(Tag::kIdleTimeoutMs, 4);
  auto ping = f->uint(Tag::kPingIntervalMs, 4);
  for (const auto* r : {&session, &time, &heartbeat, &idle, &ping}) {
    if (!*r) {
      return tl::unexpected(r->error());
    }
  }
  if (!*session) {
    return fail(Errc::kProtocolError, "HELLO_ACK without a session id");
  }
  ack.session_id = **session;
  ack.server_time_ms = time->value_or(0);
  ack.heartbeat_ms = static_cast<uint32_t>(heartbeat->value_or(0));
  ack.idle_timeout_ms = static_cast<uint32_t>(idle->value_or(0));
  ack.ping_interval_ms = static_cast<uint32_t>(ping->value_or(0));
  ack.app = str(*f, Tag::kApp);
  ack.user = str(*f, Tag::kUser);
  ack.device = str(*f, Tag::kDevice);
  if (auto json = f->str(Tag::kStreams)) {
    auto streams = parseStreams(*json);
    if (!streams) {
      return tl::unexpected(std::move(streams.error()));
    }
    ack.streams = std::move(*streams);
  }
  return ack;
}

Result<std::vector<StreamPosition>> parseStreams(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(json.data(),
                                                                                    json.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return fail(Errc::kInvalidPayload, "streams is not a JSON object");
  }
  std::vector<StreamPosition> out;
  const rapidjson::Document& root = doc;  // const iterators: clang 14 flags the mixed compare
  for (const auto& member : root.GetObject()) {
    const rapidjson::Value& v = member.value;
    if (!v.IsObject() || !v.HasMember("epoch") || !v["epoch"].IsString() ||
        !v.HasMember("seq") || !v["seq"].IsUint64() || !v.HasMember("recovery") ||
        !v["recovery"].IsString() || !v.HasMember("replayed") || !v["replayed"].IsUint64()) {
      return fail(Errc::kInvalidPayload, "malformed streams entry");
    }
    StreamPosition p;
    p.stream.assign(member.name.GetString(), member.name.GetStringLength());
    const auto epoch =
        parseHex(std::string_view(v["epoch"].GetString(), v["epoch"].GetStringLength()));
    if (!epoch) {
      return fail(Errc::kInvalidPayload, "streams epoch is not hex");
    }
    p.epoch = *epoch;
    p.seq = v["seq"].GetUint64();
    p.replayed = v["replayed"].GetUint64();
    const std::string_view recovery(v["recovery"].GetString(), v["recovery"].GetStringLength());
    if (recovery == "fresh") {
      p.recovery = StreamPosition::Recovery::kFresh;
    } else if (recovery == "recovered") {
      p.recovery = StreamPosition::Recovery::kRecovered;
    } else if (recovery == "impossible") {
      p.recovery = StreamPosition::Recovery::kImpossible;
    } else {
      return fail(Errc::kInvalidPayload, "unknown streams recovery");
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<Push> parsePush(const Frame& frame) {
  if (Status s = expectType(frame, FrameType::kPush); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  auto kind = f->uint(Tag::kKind, 1);
  if (!kind) {
    return tl::unexpected(std::move(kind.error()));
  }
  auto epoch = f->uint(Tag::kEpoch, 8);
  if (!epoch) {
    return tl::unexpected(std::move(epoch.error()));
  }
  Push push;
  push.seq = frame.id;
  push.binary = (frame.flags & kFlagBinary) != 0;
  push.ack_required = (frame.flags & kFlagAckRequired) != 0;
  push.compressed = (frame.flags & kFlagCompressed) != 0;
  push.kind = static_cast<uint8_t>(kind->value_or(0));
  push.msg_id = str(*f, Tag::kMsgId);
  push.event = str(*f, Tag::kEvent);
  push.data = str(*f, Tag::kData);
  push.stream = str(*f, Tag::kStream);
  push.epoch = epoch->value_or(0);
  return push;
}

Result<ReadMark> parseRead(const Frame& frame) {
  if (Status s = expectType(frame, FrameType::kRead); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  return ReadMark{frame.id, str(*f, Tag::kStream), str(*f, Tag::kDevice)};
}

Result<SendAck> parseSendAck(const Frame& frame) {
  if (Status s = expectType(frame, FrameType::kSendAck); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  auto status = f->uint(Tag::kStatus, 2);
  auto time = f->uint(Tag::kServerTimeMs, 8);
  if (!status) {
    return tl::unexpected(std::move(status.error()));
  }
  if (!time) {
    return tl::unexpected(std::move(time.error()));
  }
  SendAck ack;
  ack.id = frame.id;
  ack.msg_id = str(*f, Tag::kMsgId);
  ack.status = static_cast<uint16_t>(status->value_or(kCodeOk));
  ack.server_time_ms = time->value_or(0);
  ack.reason = str(*f, Tag::kReason);
  ack.event = str(*f, Tag::kEvent);
  ack.data = str(*f, Tag::kData);
  return ack;
}

Result<CloseInfo> parseClose(const Frame& frame) {
  if (frame.type != FrameType::kError && frame.type != FrameType::kClose) {
    return fail(Errc::kProtocolError, "expected ERROR or CLOSE");
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  auto code = f->uint(Tag::kCode, 2);
  if (!code) {
    return tl::unexpected(std::move(code.error()));
  }
  return CloseInfo{static_cast<uint16_t>(code->value_or(1000)), str(*f, Tag::kReason)};
}

Result<GoAway> parseGoAway(const Frame& frame) {
  if (Status s = expectType(frame, FrameType::kGoaway); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  auto f = parseFields(frame.body);
  if (!f) {
    return tl::unexpected(std::move(f.error()));
  }
  auto retry = f->uint(Tag::kRetryAfterMs, 4);
  if (!retry) {
    return tl::unexpected(std::move(retry.error()));
  }
  return GoAway{str(*f, Tag::kReason), str(*f, Tag::kReconnectHint),
                static_cast<uint32_t>(retry->value_or(0))};
}

}  // namespace imgate::mod::tcp_frame::client
