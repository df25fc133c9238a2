// SPDX-License-Identifier: Apache-2.0
#include "sio_codec.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json_string.h"
#include "modules/common/base64.h"
#include "modules/common/message_meta.h"
#include "modules/common/utf8.h"
#include "sio_probe_codec.h"

namespace imgate::mod::socketio {

namespace {

using websocket::Opcode;
using websocket::serverFrame;

constexpr uint64_t kSharedKeyTag = uint64_t{0x53494f31} << 32;     // "SIO1"
constexpr uint64_t kEngineIoKeyTag = uint64_t{0x45494f31} << 32;  // "EIO1"
constexpr uint64_t kBinaryKeyBit = 1;
constexpr uint64_t kPollingKeyBit = 2;

// A packet in polling form, as the poll handler expects the output: separator first.
std::string pollingText(std::string_view text) {
  std::string out;
  out.reserve(1 + text.size());
  out.push_back(kEioRecordSeparator);
  out.append(text);
  return out;
}

std::string pollingBinary(std::string_view data) {
  std::string out;
  out.reserve(2 + (data.size() + 2) / 3 * 4);
  out.push_back(kEioRecordSeparator);
  out.push_back('b');
  out.append(common::base64Encode(data, common::Base64Alphabet::kStandard, true));
  return out;
}

std::string_view namespaceOf(const Message& message) {
  const std::string_view nsp = metaValue(message, "nsp");
  return nsp.empty() ? std::string_view("/") : nsp;
}

// Plain Engine.IO sends a text message as it is. Text that is not UTF-8 (from a module or a
// codec that does not check) would fail the client's WebSocket (1007) or garble its polling
// payload, so it goes out as binary with its bytes unchanged, as the WebSocket module does.
bool engineIoBinary(const Message& message) {
  return message.type == PayloadType::kBinary || !common::isValidUtf8(message.data());
}

bool isJsonValue(std::string_view text) {
  JsonScanOptions options;
  return !text.empty() && scanJson(text, options).has_value();
}

// One argument: the payload as it is when it is JSON, else as a JSON string.
void appendArgument(std::string& out, std::string_view payload) {
  if (isJsonValue(payload)) {
    out.append(payload);
  } else {
    appendJsonString(out, payload);
  }
}

// The Socket.IO packet for an outbound data message, without its attachment: asking for an
// ack with `ack_id`, and with `offset` (connection state recovery) as its last argument.
SioPacket eventPacket(const Message& message, std::optional<uint64_t> ack_id = std::nullopt,
                      const std::string* offset = nullptr) {
  SioPacket packet;
  packet.nsp = std::string(namespaceOf(message));
  const std::string_view event = message.event.empty() ? std::string_view("message")
                                                       : std::string_view(message.event);
  if (message.type == PayloadType::kBinary) {
    packet.type = SioType::kBinaryEvent;
    packet.attachments = 1;
    packet.data = binaryEventJson(event, 1);
  } else {
    packet.type = SioType::kEvent;
    packet.data = "[";
    appendJsonString(packet.data, event);
    packet.data.push_back(',');
    appendArgument(packet.data, message.data());
    packet.data.push_back(']');
  }
  packet.id = ack_id;
  if (offset != nullptr) {
    packet.data.pop_back();
    packet.data.push_back(',');
    appendJsonString(packet.data, *offset);
    packet.data.push_back(']');
  }
  return packet;
}

bool isReservedEvent(std::string_view event) {
  for (std::string_view reserved : {"connect", "connect_error", "disconnect", "disconnecting",
                                    "newListener", "removeListener"}) {
    if (event == reserved) {
      return true;
    }
  }
  return false;
}

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// One top-level member of a JSON object, as written.
struct JsonMember {
  std::string_view text;            // "name": value (no surrounding whitespace or commas)
  std::optional<std::string> name;  // unescaped
  std::string_view value;
};

// The members of a JSON object, without a DOM: `json` has been validated (scanJson) as an
// object. Values are skipped by bracket counting (strings are skipped whole, so brackets
// inside them do not count).
std::vector<JsonMember> objectMembers(std::string_view json) {
  std::vector<JsonMember> members;
  size_t i = 0;
  auto ws = [&] {
    while (i < json.size() && isJsonSpace(json[i])) {
      ++i;
    }
  };
  auto stringEnd = [&](size_t from) {  // json[from] == '"'; returns the index past the close
    size_t j = from + 1;
    while (j < json.size() && json[j] != '"') {
      j += json[j] == '\\' ? 2 : 1;
    }
    return std::min(j + 1, json.size());
  };
  ws();
  if (i >= json.size() || json[i] != '{') {
    return members;
  }
  ++i;
  while (true) {
    ws();
    if (i >= json.size() || json[i] != '"') {
      return members;
    }
    JsonMember member;
    const size_t begin = i;
    i = stringEnd(i);
    if (auto name = parseJsonString(json.substr(begin, i - begin))) {
      member.name = std::move(*name);
    }
    ws();
    i = std::min(i + 1, json.size());  // ':'
    ws();
    const size_t value_begin = i;
    if (i < json.size() && json[i] == '"') {
      i = stringEnd(i);
    } else {
      int depth = 0;
      while (i < json.size()) {
        const char c = json[i];
        if (c == '"') {
          i = stringEnd(i);
          continue;
        }
        if (c == '{' || c == '[') {
          ++depth;
        } else if (c == '}' || c == ']') {
          if (depth == 0) {
            break;
          }
          --depth;
        } else if (c == ',' && depth == 0) {
          break;
        }
        ++i;
      }
    }
    size_t value_end = i;
    while (value_end > value_begin && isJsonSpace(json[value_end - 1])) {
      --value_end;
    }
    member.value = json.substr(value_begin, value_end - value_begin);
    member.text = json.substr(begin, value_end - begin);
    members.push_back(std::move(member));
    ws();
    if (i < json.size() && json[i] == ',') {
      ++i;
      continue;
    }
    return members;
  }
}

// The first string value of a top-level member named `key` (values of other types are
// skipped, so {"token":5} has no token).
std::optional<std::string> stringMember(const std::vector<JsonMember>& members,
                                        std::string_view key) {
  for (const JsonMember& m : members) {
    if (m.name && *m.name == key && !m.value.empty() && m.value[0] == '"') {
      if (auto value = parseJsonString(m.value)) {
        return std::move(*value);
      }
    }
  }
  return std::nullopt;
}

std::string eioMessage(std::string_view sio_text) {
  std::string text;
  text.reserve(1 + sio_text.size());
  text.push_back('4');
  text.append(sio_text);
  return text;
}

}  // namespace

bool SocketIoSettings::knownNamespace(std::string_view nsp) const {
  return nsp == "/" || std::find(namespaces.begin(), namespaces.end(), nsp) != namespaces.end();
}

// Receives the WebSocket layer's messages (one per Engine.IO packet) during decode().
class SioCodec::FrameSink final : public CodecSink {
 public:
  FrameSink(SioCodec& codec, CodecSink& sink, OutBuffer& out)
      : codec_(codec), sink_(sink), out_(out) {}
  void onMessage(Message&& frame) override {
    if (!error_) {
      Status s = codec_.onFrame(std::move(frame), sink_, out_);
      if (!s) {
        error_ = std::move(s.error());
        codec_.ws_->stopDecoding();
      }
    }
  }
  void onPeerClose(Errc code, std::string_view reason) override { sink_.onPeerClose(code, reason); }
  void onActivity() override { sink_.onActivity(); }
  void onHello(HttpRequest) override {}  // the WebSocket layer has none
  std::optional<Error> error_;

 private:
  SioCodec& codec_;
  CodecSink& sink_;
  OutBuffer& out_;
};

SioCodec::SioCodec(std::shared_ptr<const SocketIoSettings> settings, HttpRequest handshake,
                   const websocket::WsCodecOptions& ws)
    : settings_(std::move(settings)),
      handshake_(std::make_unique<HttpRequest>(std::move(handshake))),
      ws_(std::in_place, ws),
      assembler_(settings_->limits) {}

SioCodec::SioCodec(std::shared_ptr<const SocketIoSettings> settings, HttpRequest handshake)
    : settings_(std::move(settings)),
      handshake_(std::make_unique<HttpRequest>(std::move(handshake))),
      assembler_(settings_->limits) {}

std::string SioCodec::openPacket(const SocketIoSettings& settings, std::string_view sid,
                                 std::span<const std::string> upgrades) {
  EioPacket open;
  open.type = EioType::kOpen;
  open.data = openPacketJson(sid, upgrades, static_cast<uint32_t>(settings.ping_interval.count()),
                             static_cast<uint32_t>(settings.ping_timeout.count()),
                             settings.max_payload);
  return encodeEioFrame(open);
}

std::string SioCodec::openFrame(const SocketIoSettings& settings, std::string_view sid) {
  // WebSocket is the best transport there is: nothing to upgrade to.
  return serverFrame(Opcode::kText, openPacket(settings, sid, {}));
}

Result<size_t> SioCodec::decode(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (closed_) {
    return in.size();
  }
  if (!ws_) {
    return decodePolling(in, sink, out);
  }
  FrameSink frames(*this, sink, out);
  Result<size_t> used = ws_->decode(in, frames, out);
  if (frames.error_) {
    return tl::unexpected(std::move(*frames.error_));
  }
  return used;
}

Result<size_t> SioCodec::decodePolling(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (in.empty()) {
    return 0;
  }
  EioLimits limits;
  limits.max_payload_bytes = settings_->max_payload;
  // The body is checked whole before any packet takes effect (the reference delivers the
  // packets before a bad one, then closes: the session ends either way).
  auto packets = decodeEioPayload(in, limits);
  if (!packets) {
    return tl::unexpected(std::move(packets.error()));
  }
  // Text packets are text: the WebSocket layer checks its text frames, this is the same check
  // for bodies (the reference decodes them as UTF-8, replacing bad sequences; we refuse them).
  if (!common::isValidUtf8(in)) {
    return fail(Errc::kInvalidPayload, "payload is not valid utf-8");
  }
  sink.onActivity();
  size_t used = 0;
  for (EioPacket& packet : *packets) {
    const size_t separator = in.find(kEioRecordSeparator, used);
    used = separator == std::string_view::npos ? in.size() : separator + 1;
    const bool close = !packet.binary && packet.type == EioType::kClose;
    if (Status s = onPacket(std::move(packet), sink, out); !s) {
      return tl::unexpected(std::move(s.error()));
    }
    if (close) {
      return in.size();
    }
    if (stop_requested_) {
      stop_requested_ = false;
      return used;
    }
  }
  return in.size();
}

Status SioCodec::onFrame(Message&& frame, CodecSink& sink, OutBuffer& out) {
  if (frame.type == PayloadType::kBinary) {
    if (settings_->engineio_only) {
      sink.onMessage(std::move(frame));  // a binary Engine.IO message is the payload itself
      return {};
    }
    return onBinary(std::string(frame.data()), sink, out);
  }
  auto packet = parseEioText(frame.data());
  if (!packet) {
    return tl::unexpected(std::move(packet.error()));
  }
  return onPacket(std::move(*packet), sink, out);
}

Status SioCodec::onBinary(std::string data, CodecSink& sink, OutBuffer& out) {
  if (settings_->engineio_only) {
    Message message;
    message.type = PayloadType::kBinary;
    message.payload = makeBytes(std::move(data));
    sink.onMessage(std::move(message));
    return {};
  }
  if (!opened_) {
    return fail(Errc::kProtocolError, "binary data before CONNECT");
  }
  auto assembled = assembler_.onBinary(std::move(data));
  if (!assembled) {
    return tl::unexpected(std::move(assembled.error()));
  }
  return *assembled ? onSioPacket(std::move(**assembled), sink, out) : Status{};
}

Status SioCodec::onPacket(EioPacket&& packet, CodecSink& sink, OutBuffer& out) {
  if (packet.binary) {
    return onBinary(std::move(packet.data), sink, out);
  }
  switch (packet.type) {
    case EioType::kPing:  // a client probe; answered like the reference server does
      sendText(encodeEioFrame(EioPacket{EioType::kPong, false, std::move(packet.data)}), out);
      return {};
    case EioType::kPong:
    case EioType::kNoop:
      return {};
    case EioType::kClose:
      sink.onPeerClose(Errc::kNone, "client closed the transport");
      return {};
    case EioType::kMessage: {
      if (settings_->engineio_only) {
        Message message;
        message.payload = makeBytes(std::move(packet.data));
        sink.onMessage(std::move(message));
        return {};
      }
      if (hello_sent_ && !opened_) {
        return {};  // the core stopped decoding at the hello; nothing else may come before open
      }
      auto assembled = assembler_.onText(packet.data);
      if (!assembled) {
        return tl::unexpected(std::move(assembled.error()));
      }
      return *assembled ? onSioPacket(std::move(**assembled), sink, out) : Status{};
    }
    case EioType::kOpen:
    case EioType::kUpgrade:
      break;
  }
  return fail(Errc::kProtocolError,
              "unexpected engine.io packet \"" + std::string(eioTypeName(packet.type)) + "\"");
}

void SioCodec::stopDecoding() {
  if (ws_) {
    ws_->stopDecoding();
  } else {
    stop_requested_ = true;
  }
}

Status SioCodec::onConnect(const SioPacket& packet, CodecSink& sink, OutBuffer& out) {
  if (!settings_->knownNamespace(packet.nsp)) {
    SioPacket error{SioType::kConnectError, packet.nsp, std::nullopt,
                    R"({"message":"Invalid namespace"})", 0};
    sendSio(error, out, nullptr);
    return {};
  }
  if (opened_) {
    if (connected_.insert(packet.nsp).second) {
      sendText(eioMessage(connectAnswer(packet.nsp)), out);
    }
    return {};
  }
  if (hello_sent_) {
    return {};
  }
  // The hello: the upgrade request plus what CONNECT's auth payload says.
  HttpRequest hello = std::move(*handshake_);
  handshake_.reset();
  hello.method = "CONNECT";
  if (!packet.data.empty()) {
    // parseSioPacket accepts only an object as CONNECT data.
    std::string resume;
    std::string auth = settings_->recovery ? recoveryAuth(packet.data, resume) : packet.data;
    // {"token": "..."}: what auth.jwt and the other auth stages read as a bearer token.
    auto token = stringMember(objectMembers(auth), "token");
    hello.headers.push_back({"x-socketio-auth", std::move(auth)});
    if (token && !token->empty()) {
      hello.headers.push_back({"authorization", "Bearer " + *token});
    }
    if (!resume.empty()) {
      // Ours replaces whatever the upgrade request said: the offset is what the client saw.
      std::erase_if(hello.headers,
                    [](const HttpHeader& h) { return h.name == "x-imgate-resume"; });
      hello.headers.push_back({"x-imgate-resume", std::move(resume)});
    }
  }
  hello_nsp_ = packet.nsp;
  hello_sent_ = true;
  stopDecoding();
  sink.onHello(std::move(hello));
  return {};
}

std::string SioCodec::recoveryAuth(std::string_view auth, std::string& resume) {
  const std::vector<JsonMember> members = objectMembers(auth);
  // socket.io-client adds them to the app's auth ({pid, offset, ...auth}): they are the
  // library's, not the app's, so stages never see them.
  std::string stripped = "{";
  for (const JsonMember& m : members) {
    if (m.name && (*m.name == "pid" || *m.name == "offset")) {
      continue;
    }
    if (stripped.size() > 1) {
      stripped.push_back(',');
    }
    stripped.append(m.text);
  }
  stripped.push_back('}');
  auto pid = stringMember(members, "pid");
  auto offset = stringMember(members, "offset");
  if (!pid || !offset || !plausibleSessionId(*pid)) {
    return stripped;  // not ours to resume: a fresh session with a new pid
  }
  auto positions = decodeRecoveryOffset(*offset, settings_->recovery_max_streams);
  if (!positions) {
    return stripped;  // a malformed offset is not an error: the client just starts afresh
  }
  resume_ = std::make_unique<Resume>();
  resume_->pid = std::move(*pid);
  for (const StreamPosition& p : *positions) {
    resume_->streams.insert(p.stream);
  }
  if (!positions->empty()) {
    resume = resumeJson(*positions);
  }
  return stripped;
}

Status SioCodec::onSioPacket(SioAssembled&& assembled, CodecSink& sink, OutBuffer& out) {
  SioPacket& packet = assembled.packet;
  if (packet.type == SioType::kConnect) {
    return onConnect(packet, sink, out);
  }
  if (!opened_) {
    return fail(Errc::kProtocolError, "packet before CONNECT");
  }
  if (connected_.count(packet.nsp) == 0) {
    return {};  // not joined to that namespace: ignored, as the reference server does
  }
  switch (packet.type) {
    case SioType::kDisconnect:
      connected_.erase(packet.nsp);
      if (connected_.empty()) {
        sink.onPeerClose(Errc::kNone, "client disconnected");
      }
      return {};
    case SioType::kEvent:
    case SioType::kBinaryEvent: {
      auto event = splitEvent(packet.data, settings_->limits.max_depth);
      if (!event) {
        return tl::unexpected(std::move(event.error()));
      }
      Message message;
      message.event = std::move(event->name);
      if (packet.id) {
        // The client counts ack ids per namespace: the namespace makes the id session-unique,
        // and tells encode() where the answer goes.
        message.id = std::to_string(*packet.id);
        if (packet.nsp != "/") {
          message.id.append("@").append(packet.nsp);
        }
        // Ack ids are counters of one client socket, not message ids: every socket (tab,
        // device, reload) starts again at 0. Duplicates are only those of this session.
        message.meta.emplace_back("id_scope", "session");
      }
      if (packet.nsp != "/") {
        message.meta.emplace_back("nsp", packet.nsp);
      }
      if (packet.type == SioType::kBinaryEvent && assembled.buffers.size() == 1 &&
          isSingleAttachment(event->args)) {
        // emit("up", buffer): the attachment is the message, binary as from any protocol.
        message.type = PayloadType::kBinary;
        message.payload = makeBytes(std::move(assembled.buffers[0]));
      } else if (packet.type == SioType::kBinaryEvent) {
        // Any other shape: the arguments as JSON, each attachment inline as {"_binary": base64}.
        auto inlined = inlineAttachments(event->args, assembled.buffers);
        if (!inlined) {
          return tl::unexpected(std::move(inlined.error()));
        }
        message.payload = makeBytes(std::move(*inlined));
      } else {
        message.payload = makeBytes(std::move(event->args));
      }
      sink.onMessage(std::move(message));
      return {};
    }
    case SioType::kAck:
    case SioType::kBinaryAck: {
      // The client's ack callback ran for a reliable push. Its arguments mean nothing to the
      // core; unknown or forgotten ids (and ids from another namespace) are ignored, as the
      // reference server ignores acks it did not ask for.
      auto it = packet.id ? pending_acks_.find(*packet.id) : pending_acks_.end();
      if (it == pending_acks_.end() || it->second.nsp != packet.nsp) {
        return {};
      }
      Message ack;
      ack.kind = MessageKind::kAck;
      ack.stream = std::move(it->second.stream);
      ack.seq = it->second.seq;
      ack.payload = makeBytes(std::string());
      pending_acks_.erase(it);
      sink.onMessage(std::move(ack));
      return {};
    }
    case SioType::kConnect:
    case SioType::kConnectError:
      break;
  }
  return fail(Errc::kProtocolError, "unexpected socket.io packet from a client");
}

std::string SioCodec::connectAnswer(std::string_view nsp) const {
  SioPacket answer;
  answer.type = SioType::kConnect;
  answer.nsp = std::string(nsp);
  answer.data = "{\"sid\":";
  appendJsonString(answer.data, sid_);
  if (settings_->recovery && !settings_->engineio_only) {
    answer.data.append(",\"pid\":");
    appendJsonString(answer.data, recovery_ ? recovery_->pid : std::string());
  }
  answer.data.push_back('}');
  return encodeSioPacket(answer);
}

void SioCodec::onOpened(const SessionOpened& opened, OutBuffer& out) {
  auto sid = newSessionId();
  sid_ = sid ? *sid : std::to_string(opened.session_id);
  opened_ = true;
  if (settings_->engineio_only) {
    return;  // no Socket.IO CONNECT to answer
  }
  if (settings_->recovery) {
    // Recovered: every stream the client named that the session still has resumed where the
    // client left it. A stream it did not name (joined since) cannot have been missed; one it
    // named that the session no longer has is gone either way.
    bool recovered = resume_ != nullptr;
    size_t named = 0;
    for (const StreamStart& start : opened.streams) {
      notePosition(start.stream, start.epoch, start.seq);
      if (resume_ && resume_->streams.count(start.stream) != 0) {
        ++named;
        recovered = recovered && start.outcome == StreamStart::Outcome::kRecovered;
      }
    }
    if (recovered && named > 0) {
      recovery().pid = std::move(resume_->pid);
    } else {
      // The pid grants nothing (every CONNECT is authenticated): it only tells the client
      // whether it recovered, so the session id is an acceptable fallback.
      auto pid = newSessionId();
      recovery().pid = pid ? *pid : std::to_string(opened.session_id);
    }
  }
  resume_.reset();  // asked and answered
  connected_.insert(hello_nsp_);
  sendText(eioMessage(connectAnswer(hello_nsp_)), out);
}

void SioCodec::notePosition(std::string_view stream, uint64_t epoch, uint64_t seq) {
  if (stream.empty()) {
    stream = "user";  // the SDK's default stream
  }
  Recovery& r = recovery();
  auto it = r.positions.find(stream);
  if (it == r.positions.end()) {
    if (r.positions.size() >= settings_->recovery_max_streams) {
      r.overflow = true;
      r.offset_stale = true;
      return;
    }
    it = r.positions.emplace(std::string(stream), Position{}).first;
  } else if (it->second.epoch == epoch && seq < it->second.seq) {
    return;  // a retransmission of an older message: the client has seen further already
  }
  it->second = Position{epoch, seq};
  r.offset_stale = true;
}

SioCodec::Recovery& SioCodec::recovery() {
  if (!recovery_) {
    recovery_ = std::make_unique<Recovery>();
  }
  return *recovery_;
}

const std::string& SioCodec::offset() {
  Recovery& r = recovery();
  if (r.offset_stale) {
    if (r.overflow) {
      r.offset = std::string(kUnrecoverableOffset);
    } else {
      std::vector<StreamPosition> positions;
      positions.reserve(r.positions.size());
      for (const auto& [stream, p] : r.positions) {
        positions.push_back(StreamPosition{stream, p.epoch, p.seq});
      }
      r.offset = encodeRecoveryOffset(positions);
    }
    r.offset_stale = false;
  }
  return r.offset;
}

void SioCodec::sendText(std::string text, OutBuffer& out) {
  if (!ws_) {
    text.insert(text.begin(), kEioRecordSeparator);
    out.append(text);
    return;
  }
  Message frame;
  frame.type = PayloadType::kText;
  frame.payload = makeBytes(std::move(text));
  (void)ws_->encode(frame, out);
}

void SioCodec::sendBinary(std::string_view data, OutBuffer& out) {
  if (!ws_) {
    out.append(pollingBinary(data));
    return;
  }
  Message frame;
  frame.type = PayloadType::kBinary;
  frame.payload = makeBytes(std::string(data));
  (void)ws_->encode(frame, out);
}

void SioCodec::sendSio(const SioPacket& packet, OutBuffer& out,
                       const std::vector<std::string>* buffers) {
  sendText(eioMessage(encodeSioPacket(packet)), out);
  if (buffers != nullptr) {
    for (const std::string& b : *buffers) {
      sendBinary(b, out);
    }
  }
}

Status SioCodec::encode(const Message& message, OutBuffer& out) {
  if (silenced() || !opened_) {
    return {};
  }
  if (settings_->engineio_only) {
    return encodeEngineIo(message, out);
  }
  if (message.kind == MessageKind::kAck) {
    // "<id>" answers an event of "/", "<id>@<namespace>" one of another namespace.
    const std::string_view full = message.id;
    const size_t at = full.find('@');
    const std::string_view digits = full.substr(0, at);
    if (digits.empty() || digits.size() > 16 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {};  // not an answer to a Socket.IO ack request
    }
    uint64_t id = 0;
    for (char c : digits) {
      id = id * 10 + static_cast<uint64_t>(c - '0');
    }
    SioPacket ack;
    ack.type = SioType::kAck;
    ack.nsp = at == std::string_view::npos ? std::string("/") : std::string(full.substr(at + 1));
    ack.id = id;
    if (connected_.count(ack.nsp) == 0) {
      return {};
    }
    const std::string_view status = metaValue(message, "status");
    ack.data = "[";
    if (!status.empty() && status != "ok") {
      ack.data.append("{\"error\":");
      appendJsonString(ack.data, status);
      ack.data.append(",\"reason\":");
      appendJsonString(ack.data, metaValue(message, "reason"));
      ack.data.push_back('}');
    } else if (message.type == PayloadType::kBinary) {
      ack.type = SioType::kBinaryAck;
      ack.attachments = 1;
      ack.data.append(R"({"_placeholder":true,"num":0})");
    } else if (!message.data().empty()) {
      appendArgument(ack.data, message.data());
    }
    ack.data.push_back(']');
    std::vector<std::string> buffers;
    if (ack.type == SioType::kBinaryAck) {
      buffers.emplace_back(message.data());
    }
    sendSio(ack, out, buffers.empty() ? nullptr : &buffers);
    return {};
  }
  if (connected_.count(namespaceOf(message)) == 0) {
    return {};
  }
  if (isReservedEvent(message.event)) {
    // socket.io-parser refuses these names and drops the connection: never send them.
    return fail(Errc::kInvalidPayload, "reserved socket.io event name \"" + message.event + "\"");
  }
  std::optional<uint64_t> ack_id;
  if (message.reliable && message.seq != 0) {
    ack_id = next_ack_id_;
    next_ack_id_ = next_ack_id_ == kMaxAckId ? 0 : next_ack_id_ + 1;
    pending_acks_[*ack_id] =
        PendingAck{std::string(namespaceOf(message)), message.stream, message.seq};
    if (pending_acks_.size() > kMaxPendingAcks) {
      pending_acks_.erase(pending_acks_.begin());
    }
  }
  const std::string* event_offset = nullptr;
  if (settings_->recovery) {
    if (message.seq != 0) {
      notePosition(message.stream, message.epoch, message.seq);
    }
    // Not on events with an ack id, as the reference: the client passes the ack callback as
    // the handler's last argument, so an offset there would take its place (and
    // socket.io-client records offsets only from events without one).
    if (!ack_id) {
      event_offset = &offset();
    }
  }
  const SioPacket packet = eventPacket(message, ack_id, event_offset);
  std::vector<std::string> buffers;
  if (packet.type == SioType::kBinaryEvent) {
    buffers.emplace_back(message.data());
  }
  sendSio(packet, out, buffers.empty() ? nullptr : &buffers);
  return {};
}

uint64_t SioCodec::transportKeyBits(const Message& message) const {
  return (message.type == PayloadType::kBinary ? kBinaryKeyBit : 0) |
         (ws_ ? 0 : kPollingKeyBit);
}

uint64_t SioCodec::sharedEncodingKey(const Message& message) const {
  if (silenced() || !opened_ || message.kind == MessageKind::kAck) {
    return 0;
  }
  if (settings_->engineio_only) {
    if (!ws_ && message.type == PayloadType::kText &&
        message.data().find(kEioRecordSeparator) != std::string_view::npos) {
      return 0;  // encode() refuses it
    }
    return kEngineIoKeyTag | transportKeyBits(message);
  }
  if (settings_->recovery || (message.reliable && message.seq != 0) ||
      isReservedEvent(message.event) || namespaceOf(message) != "/" ||
      connected_.count("/") == 0) {
    return 0;
  }
  return kSharedKeyTag | transportKeyBits(message);
}

Bytes SioCodec::encodeShared(const Message& message) const {
  if (settings_->engineio_only) {
    const bool binary = engineIoBinary(message);
    if (!ws_) {
      return makeBytes(binary ? pollingBinary(message.data())
                              : pollingText(eioMessage(message.data())));
    }
    return makeBytes(binary ? serverFrame(Opcode::kBinary, message.data())
                            : serverFrame(Opcode::kText, eioMessage(message.data())));
  }
  const SioPacket packet = eventPacket(message);
  const std::string text = eioMessage(encodeSioPacket(packet));
  const bool attachment = packet.type == SioType::kBinaryEvent;
  if (!ws_) {
    std::string bytes = pollingText(text);
    if (attachment) {
      bytes.append(pollingBinary(message.data()));
    }
    return makeBytes(std::move(bytes));
  }
  std::string bytes = serverFrame(Opcode::kText, text);
  if (attachment) {
    bytes.append(serverFrame(Opcode::kBinary, message.data()));
  }
  return makeBytes(std::move(bytes));
}

// Plain Engine.IO: a data message is one Engine.IO message; an ok ack with a payload is sent as
// a message (there are no acks on the wire), an error ack as a JSON error text, as the WebSocket
// module does.
Status SioCodec::encodeEngineIo(const Message& message, OutBuffer& out) {
  if (message.kind == MessageKind::kAck) {
    const std::string_view status = metaValue(message, "status");
    if (!status.empty() && status != "ok") {
      sendText(eioMessage(websocket::ackErrorJson(message)), out);
      return {};
    }
    if (message.data().empty()) {
      return {};
    }
  }
  if (engineIoBinary(message)) {
    if (!ws_) {
      sendBinary(message.data(), out);
      return {};
    }
    Message frame;
    frame.type = PayloadType::kBinary;
    frame.payload = message.payload;
    return ws_->encode(frame, out);
  }
  if (!ws_ && message.data().find(kEioRecordSeparator) != std::string_view::npos) {
    return fail(Errc::kInvalidPayload,
                "text with a record separator (0x1e) cannot be sent over http long-polling");
  }
  sendText(eioMessage(message.data()), out);
  return {};
}

void SioCodec::encodePing(OutBuffer& out) {
  if (!silenced()) {
    sendText(encodeEioFrame(EioPacket{EioType::kPing, false, {}}), out);
  }
}

void SioCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  if (closed_) {
    return;
  }
  if (!silenced()) {
    if (settings_->engineio_only) {
      sendText(encodeEioFrame(EioPacket{EioType::kClose, false, {}}), out);
    } else if (!opened_) {
      if (hello_sent_) {
        SioPacket error{SioType::kConnectError, hello_nsp_, std::nullopt, "{\"message\":", 0};
        appendJsonString(error.data, code == Errc::kInternal ? std::string_view("internal error")
                                                             : reason);
        error.data.append(",\"data\":{\"code\":");
        appendJsonString(error.data, errcName(code));
        error.data.append("}}");
        sendSio(error, out, nullptr);
      } else if (!ws_) {
        // No CONNECT yet (connect timeout, shutdown): a polling client would otherwise learn
        // it only from its next poll's "Session ID unknown".
        sendText(encodeEioFrame(EioPacket{EioType::kClose, false, {}}), out);
      }
    } else if (code == Errc::kKicked || code == Errc::kEvicted || code == Errc::kNone) {
      for (const std::string& nsp : connected_) {
        sendSio(SioPacket{SioType::kDisconnect, nsp, std::nullopt, {}, 0}, out, nullptr);
      }
    } else {
      sendText(encodeEioFrame(EioPacket{EioType::kClose, false, {}}), out);
    }
  }
  closed_ = true;
  if (ws_) {
    ws_->encodeClose(code, reason, out);
  }
}

// ---- Polling -> WebSocket -------------------------------------------------------------------

Status SioCodec::attachTransport(Codec& probe, std::string queued, OutBuffer& out) {
  auto* probe_codec = dynamic_cast<SioProbeCodec*>(&probe);
  if (probe_codec == nullptr) {
    return fail(Errc::kInternal, "the upgrade connection's codec is not a socket.io probe");
  }
  if (ws_) {
    return fail(Errc::kInternal, "the session is already on websocket");
  }
  // Checked before switching, so a failure leaves the session as it was.
  std::vector<EioPacket> packets;
  std::string_view rest = queued;
  while (!rest.empty()) {
    if (rest[0] != kEioRecordSeparator) {
      return fail(Errc::kInternal, "queued polling output does not start with a separator");
    }
    rest.remove_prefix(1);
    const size_t next = rest.find(kEioRecordSeparator);
    const std::string_view piece = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
    auto packet = parseEioText(piece);
    if (!packet) {
      return fail(Errc::kInternal, "queued polling output: " + packet.error().message);
    }
    packets.push_back(std::move(*packet));
  }
  ws_.emplace(probe_codec->wsOptions());
  for (const EioPacket& packet : packets) {
    if (packet.binary) {
      sendBinary(packet.data, out);
    } else {
      sendText(encodeEioFrame(packet), out);
    }
  }
  return {};
}

}  // namespace imgate::mod::socketio
