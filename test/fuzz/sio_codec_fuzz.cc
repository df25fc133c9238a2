// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for proto.socketio's codecs: SioCodec over WebSocket, SioCodec over HTTP
// long-polling (then moved to WebSocket with attachTransport), and SioProbeCodec, each driven by
// every input. Input layout:
//   byte 0   flags: bit 0 raw client bytes (else records, below; WebSocket and probe runs);
//            bits 1-2 prefix (none, a hello with a token, a hello on /chat, an unknown namespace
//            then a hello); bit 3 refuse the hello (encodeClose before open) instead of
//            opening; bits 4-7 the Errc of the final encodeClose;
//   byte 1   bits 0-6 seed the split pattern (0: whole input at once); bit 7 turns on
//            connection state recovery and pushes reliable sequenced messages right after the
//            open, so the client bytes' ACKs can match their ack ids;
//   rest     client bytes, or records [head][length][payload] each turned into one masked
//            frame (head bits 0-2 pick text, binary, fragment, continuation, ping or close;
//            bit 3 puts "4" in front of the payload, making it an Engine.IO message).
//            The polling run splits the rest at '\n' into POST bodies (the prefix is a body of
//            its own), each decoded whole as the core does.
// WebSocket bytes go through decode() as the core feeds them (unconsumed bytes kept, the next
// piece appended, onOpened after the hello and the kept bytes decoded at once); a POST body is
// decoded until consumed (onOpened after the hello, then the rest). Then the decoded messages
// are answered (acks), a few messages encoded, and the session closed.
// Invariants: decode never claims more than it got (polling: all of a body, or exactly up to
// and including the separator after the hello); at most one hello, no message before the
// session opened, every message has a payload, ids are decimal, acks name a stream and seq we
// pushed reliably; with recovery, the hello's auth has no pid/offset and its resume header is
// a JSON object, and every server EVENT without an ack id ends with an offset that decodes
// (or the unrecoverable marker); every byte the server writes parses as whole unmasked frames
// (polling: as '\x1e'-led packets, text or 'b' + base64, which read as the same frames), text
// frames are UTF-8 Engine.IO packets, Socket.IO packets in them parse back, binary packets are
// followed by exactly their attachments, nothing follows the close frame and a second
// encodeClose writes nothing; encodeShared() equals encode() whenever sharedEncodingKey() is
// non-zero; attachTransport() re-frames queued polling output into exactly those frames. The
// probe answers only "2probe" (with "3probe"), commits at most once, on "5", consumes nothing
// after that frame, and fails on anything else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "modules/common/base64.h"
#include "modules/common/utf8.h"
#include "modules/proto/socketio/eio_packet.h"
#include "modules/proto/socketio/json_string.h"
#include "modules/proto/socketio/sio_codec.h"
#include "modules/proto/socketio/sio_probe_codec.h"
#include "modules/proto/socketio/sio_packet.h"
#include "modules/proto/socketio/sio_recovery.h"
#include "test/fuzz/fuzz_codec_support.h"

namespace {

using imgate::Bytes;
using imgate::Errc;
using imgate::HttpRequest;
using imgate::Message;
using imgate::MessageKind;
using imgate::PayloadType;
using imgate::Result;
using imgate::TransportStep;
using imgate::fuzz::check;
using imgate::mod::common::isValidUtf8;
using namespace imgate::mod::socketio;

using Out = imgate::fuzz::StringOut;

constexpr uint8_t kMask[4] = {0x11, 0x9c, 0x5a, 0xe3};

std::string maskedFrame(uint8_t b0, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) {
      f.push_back(static_cast<char>(n >> (8 * i)));
    }
  }
  f.append(reinterpret_cast<const char*>(kMask), sizeof(kMask));
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ static_cast<char>(kMask[i & 3])));
  }
  return f;
}

std::string sioFrame(std::string_view packet) {
  return maskedFrame(0x81, "4" + std::string(packet));
}

// Records -> frames (see the header comment).
std::string framesFromRecords(std::string_view body) {
  std::string bytes;
  size_t pos = 0;
  while (pos < body.size()) {
    const auto head = static_cast<uint8_t>(body[pos++]);
    size_t length = pos < body.size() ? static_cast<uint8_t>(body[pos++]) : 0;
    length = std::min(length, body.size() - pos);
    std::string payload((head & 0x08) != 0 ? "4" : "");
    payload.append(body.substr(pos, length));
    pos += length;
    uint8_t b0 = 0x81;
    switch (head & 0x07) {
      case 3: b0 = 0x82; break;                                // binary
      case 4: b0 = 0x01; break;                                // text, more to come
      case 5: b0 = 0x80; break;                                // last continuation
      case 6: b0 = 0x00; break;                                // middle continuation
      case 7: b0 = (head & 0x80) != 0 ? 0x88 : 0x89; break;    // close or ping
      default: break;                                          // text
    }
    if ((b0 & 0x08) != 0 && payload.size() > 125) {
      payload.resize(125);
    }
    bytes.append(maskedFrame(b0, payload));
  }
  return bytes;
}

// The member names of a valid JSON object (strings at depth 1 followed by ':').
std::vector<std::string> topLevelKeys(std::string_view json) {
  std::vector<std::string> keys;
  int depth = 0;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < json.size() && json[j] != '"') {
        j += json[j] == '\\' ? 2 : 1;
      }
      size_t k = j + 1;
      while (k < json.size() && (json[k] == ' ' || json[k] == '\t' || json[k] == '\n' ||
                                 json[k] == '\r')) {
        ++k;
      }
      if (depth == 1 && k < json.size() && json[k] == ':') {
        auto key = parseJsonString(json.substr(i, j + 1 - i));
        check(key.has_value());
        keys.push_back(std::move(*key));
      }
      i = j;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return keys;
}

class Sink final : public imgate::CodecSink {
 public:
  void onMessage(Message&& message) override {
    check(opened);
    check(message.payload != nullptr);
    if (message.kind == MessageKind::kAck) {
      // Only for what was pushed reliably: the "user" stream, seqs 1-3, or "room:r" seq 1.
      check(message.data().empty() && message.id.empty());
      check((message.stream == "user" && message.seq >= 1 && message.seq <= 3) ||
            (message.stream == "room:r" && message.seq == 1));
      ++acks;
      return;
    }
    check(message.kind == MessageKind::kData);
    // Ack ids: "<digits>" on "/", "<digits>@<namespace>" elsewhere (the meta's namespace).
    const std::string_view id = message.id;
    const size_t at = id.find('@');
    for (char c : id.substr(0, at)) {
      check(c >= '0' && c <= '9');
    }
    std::string_view nsp = "/";
    for (const auto& [key, value] : message.meta) {
      if (key == "id_scope") {
        check(value == "session" && !id.empty());  // ack ids are per client socket
        continue;
      }
      check(key == "nsp" && value != "/" && !value.empty() && value[0] == '/');
      nsp = value;
    }
    if (at != std::string_view::npos) {
      check(at > 0 && id.substr(at + 1) == nsp);
    } else if (!id.empty()) {
      check(nsp == "/");
    }
    if (message.type == PayloadType::kText) {
      check(scanJson(message.data()).has_value());
    }
    messages.push_back(std::move(message));
  }
  void onPeerClose(Errc, std::string_view) override { peer_closed = true; }
  void onActivity() override {}
  void onTransportSwitch(TransportStep) override { check(false); }  // session codecs never
  void onHello(HttpRequest hello) override {
    check(hellos == 0 && !opened);
    ++hellos;
    if (auto auth = hello.header("x-socketio-auth")) {
      check(scanJson(*auth).has_value());
      if (recovery) {
        for (const std::string& key : topLevelKeys(*auth)) {
          check(key != "pid" && key != "offset");
        }
      }
    } else {
      check(!hello.header("authorization"));
    }
    if (auto resume = hello.header("x-imgate-resume")) {
      check(recovery);
      auto shape = scanJson(*resume);
      check(shape.has_value() && shape->root == imgate::mod::socketio::JsonKind::kObject);
    }
  }
  std::vector<Message> messages;
  bool recovery = false;
  int acks = 0;
  int hellos = 0;
  bool opened = false;
  bool peer_closed = false;
};

// With recovery on, an EVENT without an ack id ends with the session's offset.
// An offset holds no quote or backslash: the last argument is the text between the last two
// quotes.
void checkOffset(const SioPacket& packet) {
  const std::string_view data = packet.data;
  check(data.size() >= 4 && data.substr(data.size() - 2) == "\"]");
  const size_t open = data.rfind('"', data.size() - 3);
  check(open != std::string_view::npos && open > 0 && data[open - 1] == ',');
  const std::string_view offset = data.substr(open + 1, data.size() - 2 - (open + 1));
  check(offset == kUnrecoverableOffset || decodeRecoveryOffset(offset, 1000).has_value());
}

// Everything the server wrote, checked as a socket.io client would read it.
void checkServerOutput(std::string_view b, bool recovery) {
  SioLimits lenient;
  lenient.max_packet_bytes = size_t{1} << 30;
  lenient.max_depth = 1024;  // the codec wraps payloads, which may already be at the limit
  lenient.max_attachments = 1000;
  size_t pos = 0;
  size_t attachments_due = 0;
  bool closed = false;
  while (pos < b.size()) {
    check(!closed);
    check(b.size() - pos >= 2);
    const auto b0 = static_cast<uint8_t>(b[pos]);
    const auto b1 = static_cast<uint8_t>(b[pos + 1]);
    check((b0 & 0xF0) == 0x80 && (b1 & 0x80) == 0);
    uint64_t n = b1 & 0x7F;
    size_t h = 2;
    if (n >= 126) {
      const size_t ext = n == 126 ? 2 : 8;
      check(b.size() - pos >= 2 + ext);
      n = 0;
      for (size_t i = 0; i < ext; ++i) {
        n = (n << 8) | static_cast<uint8_t>(b[pos + 2 + i]);
      }
      h += ext;
    }
    check(b.size() - pos - h >= n);
    const std::string_view payload = b.substr(pos + h, n);
    pos += h + n;
    const uint8_t op = b0 & 0x0F;
    if (op == 0x2) {
      check(attachments_due > 0);
      --attachments_due;
      continue;
    }
    check(attachments_due == 0);
    if (op == 0x8) {
      check(payload.empty() || (payload.size() >= 2 && isValidUtf8(payload.substr(2))));
      closed = true;
      continue;
    }
    if (op == 0xA) {
      continue;  // WebSocket pong
    }
    check(op == 0x1);
    check(isValidUtf8(payload));
    auto eio = parseEioText(payload);
    check(eio.has_value() && !eio->binary);
    check(eio->type != EioType::kUpgrade && eio->type != EioType::kNoop);
    if (eio->type != EioType::kMessage) {
      continue;
    }
    auto sio = parseSioPacket(eio->data, lenient);
    check(sio.has_value());
    check(encodeSioPacket(*sio) == eio->data);
    if (recovery && !sio->id &&
        (sio->type == SioType::kEvent || sio->type == SioType::kBinaryEvent)) {
      checkOffset(*sio);
    }
    if (isBinaryType(sio->type)) {
      attachments_due = sio->attachments;
    }
  }
  check(attachments_due == 0);
}

Message dataMessage(std::string event, std::string payload, PayloadType type,
                    std::string nsp = {}) {
  Message m;
  m.event = std::move(event);
  m.type = type;
  m.payload = imgate::makeBytes(std::move(payload));
  if (!nsp.empty()) {
    m.meta.emplace_back("nsp", std::move(nsp));
  }
  return m;
}

// Encodes `message` per session, checking the fan-out path against it.
void encodeChecked(SioCodec& codec, const Message& message, Out& out) {
  const uint64_t key = codec.sharedEncodingKey(message);
  const size_t before = out.data.size();
  check(codec.encode(message, out).has_value());
  if (key != 0) {
    check(message.kind == MessageKind::kData);
    Bytes shared = codec.encodeShared(message);
    check(shared != nullptr && *shared == std::string_view(out.data).substr(before));
  }
}

HttpRequest upgradeRequest() {
  HttpRequest r;
  r.method = "GET";
  r.target = "/socket.io/?EIO=4&transport=websocket";
  r.path = "/socket.io/";
  r.query = "EIO=4&transport=websocket";
  r.headers = {{"host", "fuzz.test"}};
  return r;
}

constexpr Errc kCloseCodes[16] = {
    Errc::kNone,         Errc::kKicked,           Errc::kEvicted,        Errc::kShutdown,
    Errc::kInternal,     Errc::kUnauthenticated,  Errc::kTimeout,        Errc::kProtocolError,
    Errc::kInvalidPayload, Errc::kMessageTooBig,  Errc::kPermissionDenied, Errc::kUnavailable,
    Errc::kResourceExhausted, Errc::kBadRequest,  Errc::kNotFound,       Errc::kInvalidConfig,
};

// What one input asks for (see the header comment).
struct Input {
  uint8_t flags = 0;
  uint32_t rng = 0;
  bool whole = false;
  bool recovery = false;
  std::string_view body;
};

std::shared_ptr<SocketIoSettings> fuzzSettings(bool recovery) {
  auto settings = std::make_shared<SocketIoSettings>();
  settings->namespaces = {"/", "/chat"};
  settings->max_payload = 4096;
  settings->limits.max_packet_bytes = 4096;
  settings->limits.max_binary_bytes = 8192;
  settings->recovery = recovery;
  settings->recovery_max_streams = 3;  // small, so the unrecoverable offset shows up
  return settings;
}

imgate::mod::websocket::WsCodecOptions wsOptions() {
  imgate::mod::websocket::WsCodecOptions ws;
  ws.max_message = 4096;
  return ws;
}

uint32_t nextRandom(uint32_t& rng) {
  rng = rng * 1664525u + 1013904223u;
  return rng;
}

// The hello arrived: refuse it (flags bit 3) or open the session as the core does, pushing
// reliable messages at once with recovery on. Returns false when refused.
bool openOrRefuse(SioCodec& codec, Sink& sink, Out& out, const Input& in, uint32_t& rng) {
  if ((in.flags & 0x08) != 0) {
    codec.encodeClose(Errc::kUnauthenticated, "refused", out);
    return false;
  }
  sink.opened = true;
  imgate::SessionOpened opened;
  opened.session_id = 7;
  if (in.recovery) {
    using Outcome = imgate::StreamStart::Outcome;
    const auto outcome = static_cast<Outcome>(nextRandom(rng) % 3);
    opened.streams = {{"user", 0xab, 0, outcome, 0}, {"room:r|x", 1, 5, Outcome::kRecovered, 0}};
  }
  codec.onOpened(opened, out);
  if (in.recovery) {
    for (uint64_t seq = 1; seq <= 3; ++seq) {
      Message push = dataMessage("r", std::to_string(seq), PayloadType::kText);
      push.stream = "user";
      push.epoch = 0xab;
      push.seq = seq;
      push.reliable = true;
      encodeChecked(codec, push, out);
    }
    Message room = dataMessage("r", "{}", PayloadType::kText, "/chat");
    room.stream = "room:r";
    room.epoch = 2;
    room.seq = 1;
    room.reliable = true;
    encodeChecked(codec, room, out);
  }
  return true;
}

// Answers what came in, then pushes a few messages of our own.
void answerAndPush(SioCodec& codec, const Sink& sink, Out& out, std::string_view body) {
  for (const Message& m : sink.messages) {
    Message ack;
    ack.kind = MessageKind::kAck;
    ack.id = m.id;
    ack.meta = m.meta;
    ack.type = m.type;
    ack.payload = m.payload;
    if ((m.data().size() & 1) != 0) {
      ack.meta.emplace_back("status", "permission_denied");
      ack.meta.emplace_back("reason", std::string(m.data().substr(0, 8)));
    }
    encodeChecked(codec, ack, out);
    std::string nsp_of_m;
    for (const auto& [key, value] : m.meta) {
      if (key == "nsp") {
        nsp_of_m = value;
      }
    }
    encodeChecked(codec, dataMessage(m.event, std::string(m.data()), m.type, nsp_of_m), out);
  }
  encodeChecked(codec, dataMessage("news", std::string(body.substr(0, 64)), PayloadType::kText),
                out);
  encodeChecked(codec, dataMessage("", std::string(body.substr(0, 16)), PayloadType::kBinary),
                out);
  encodeChecked(codec, dataMessage("room", "{\"a\":[1]}", PayloadType::kText, "/chat"), out);
  for (uint64_t i = 0; i < 3; ++i) {  // streams beyond recovery_max_streams
    Message m = dataMessage("s", "1", PayloadType::kText);
    m.stream = "room:" + std::string(body.substr(0, i * 4));
    m.epoch = i;
    m.seq = i + 1;
    encodeChecked(codec, m, out);
  }
  codec.encodePing(out);
}

// ---- WebSocket from the start ----------------------------------------------------------------

void runWebSocket(Input in) {
  auto settings = fuzzSettings(in.recovery);
  SioCodec codec(settings, upgradeRequest(), wsOptions());
  Sink sink;
  sink.recovery = in.recovery;
  Out out;

  std::string input;
  switch ((in.flags >> 1) & 3) {
    case 1: input = sioFrame(R"(0{"token":"T"})"); break;
    case 2: input = sioFrame("0/chat,"); break;
    case 3: input = sioFrame("0/nope,") + sioFrame("0"); break;
    default: break;
  }
  input.append((in.flags & 1) != 0 ? std::string(in.body) : framesFromRecords(in.body));

  std::string buffer;
  size_t pos = 0;
  bool failed = false;
  bool refused = false;
  while (pos < input.size() && !failed && !refused && !sink.peer_closed) {
    const size_t piece = in.whole ? input.size() : 1 + (nextRandom(in.rng) >> 16) % 48;
    const size_t take = std::min(piece, input.size() - pos);
    buffer.append(input, pos, take);
    pos += take;
    while (true) {
      Result<size_t> r = codec.decode(buffer, sink, out);
      if (!r) {
        codec.encodeClose(r.error().code, r.error().message, out);
        failed = true;
        break;
      }
      check(*r <= buffer.size());
      buffer.erase(0, *r);
      if (sink.hellos == 1 && !sink.opened) {
        if (!openOrRefuse(codec, sink, out, in, in.rng)) {
          refused = true;
          break;
        }
        continue;  // the core decodes the kept bytes at once
      }
      break;
    }
  }

  if (!failed && !refused) {
    answerAndPush(codec, sink, out, in.body);
    codec.encodeClose(kCloseCodes[in.flags >> 4], "bye", out);
  }
  const size_t after_close = out.data.size();
  codec.encodeClose(Errc::kNone, "again", out);
  codec.encodePing(out);
  check(out.data.size() == after_close);
  checkServerOutput(out.data, in.recovery);
}

// ---- HTTP long-polling, then WebSocket ---------------------------------------------------------

// Polling output as the WebSocket frames it stands for: every packet follows a separator and
// is text (one text frame) or 'b' + valid base64 (one binary frame).
std::string pollingAsFrames(std::string_view b) {
  using imgate::mod::websocket::Opcode;
  using imgate::mod::websocket::serverFrame;
  std::string frames;
  while (!b.empty()) {
    check(b[0] == kEioRecordSeparator);
    b.remove_prefix(1);
    const size_t next = b.find(kEioRecordSeparator);
    const std::string_view piece = b.substr(0, next);
    b = next == std::string_view::npos ? std::string_view() : b.substr(next);
    check(!piece.empty());
    if (piece[0] == 'b') {
      auto raw = imgate::mod::common::base64Decode(piece.substr(1),
                                                   imgate::mod::common::Base64Alphabet::kStandard);
      check(raw.has_value());
      frames.append(serverFrame(Opcode::kBinary, *raw));
    } else {
      frames.append(serverFrame(Opcode::kText, piece));
    }
  }
  return frames;
}

void runPolling(Input in) {
  auto settings = fuzzSettings(in.recovery);
  SioCodec codec(settings, upgradeRequest());
  Sink sink;
  sink.recovery = in.recovery;
  Out out;

  std::vector<std::string> bodies;
  switch ((in.flags >> 1) & 3) {
    case 1: bodies.emplace_back(R"(40{"token":"T"})"); break;
    case 2: bodies.emplace_back("40/chat,"); break;
    case 3: bodies.push_back(std::string("40/nope,") + kEioRecordSeparator + "40"); break;
    default: break;
  }
  for (std::string_view rest = in.body; !rest.empty();) {
    const size_t nl = rest.find('\n');
    bodies.emplace_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }

  bool failed = false;
  bool refused = false;
  for (const std::string& body : bodies) {
    if (failed || refused || sink.peer_closed) {
      break;
    }
    std::string_view rest = body;
    while (!rest.empty()) {
      const int hellos_before = sink.hellos;
      Result<size_t> r = codec.decode(rest, sink, out);
      if (!r) {
        codec.encodeClose(r.error().code, r.error().message, out);
        failed = true;
        break;
      }
      check(*r <= rest.size());
      if (*r < rest.size()) {
        // Only the hello stops a body early, right after its separator.
        check(sink.hellos == 1 && hellos_before == 0 && *r > 0 &&
              rest[*r - 1] == kEioRecordSeparator);
      }
      rest.remove_prefix(*r);
      if (sink.hellos == 1 && !sink.opened) {
        if (!openOrRefuse(codec, sink, out, in, in.rng)) {
          refused = true;
          break;
        }
        continue;
      }
      check(rest.empty());
    }
  }

  if (failed || refused) {
    const size_t after_close = out.data.size();
    codec.encodeClose(Errc::kNone, "again", out);
    codec.encodePing(out);
    check(out.data.size() == after_close);
    checkServerOutput(pollingAsFrames(out.data), in.recovery);
    return;
  }
  answerAndPush(codec, sink, out, in.body);
  if ((nextRandom(in.rng) & 0x10000) != 0) {
    codec.encodeClose(kCloseCodes[in.flags >> 4], "bye", out);
    const size_t after_close = out.data.size();
    codec.encodeClose(Errc::kNone, "again", out);
    codec.encodePing(out);
    check(out.data.size() == after_close);
    checkServerOutput(pollingAsFrames(out.data), in.recovery);
    return;
  }
  // The client upgrades: what no poll fetched moves to the WebSocket connection.
  const std::string queued = pollingAsFrames(out.data);
  imgate::mod::socketio::SioProbeCodec probe(wsOptions());
  Out ws_out;
  check(codec.attachTransport(probe, out.data, ws_out).has_value());
  check(codec.transport() == SioTransport::kWebSocket);
  check(ws_out.data == queued);
  encodeChecked(codec, dataMessage("after", "[1]", PayloadType::kText), ws_out);
  codec.encodeClose(kCloseCodes[in.flags >> 4], "bye", ws_out);
  const size_t after_close = ws_out.data.size();
  codec.encodeClose(Errc::kNone, "again", ws_out);
  check(ws_out.data.size() == after_close);
  checkServerOutput(ws_out.data, in.recovery);
}

// ---- The upgrade probe ------------------------------------------------------------------------

class ProbeSink final : public imgate::CodecSink {
 public:
  void onMessage(Message&&) override { check(false); }  // the probe delivers no messages
  void onPeerClose(Errc, std::string_view) override { peer_closed = true; }
  void onActivity() override {}
  void onHello(HttpRequest) override { check(false); }
  void onTransportSwitch(TransportStep step) override {
    check(!committed);
    if (step == TransportStep::kCommit) {
      committed = true;
    } else {
      ++probes;
    }
  }
  int probes = 0;
  bool committed = false;
  bool peer_closed = false;
};

void runProbe(Input in) {
  imgate::mod::socketio::SioProbeCodec probe(wsOptions());
  ProbeSink sink;
  Out out;
  std::string input = (in.flags & 0x02) != 0 ? maskedFrame(0x81, "2probe") : std::string();
  if ((in.flags & 0x04) != 0) {
    input.append(maskedFrame(0x81, "5"));
  }
  input.append((in.flags & 1) != 0 ? std::string(in.body) : framesFromRecords(in.body));

  std::string buffer;
  size_t pos = 0;
  bool failed = false;
  while (pos < input.size() && !failed && !sink.committed && !sink.peer_closed) {
    const size_t piece = in.whole ? input.size() : 1 + (nextRandom(in.rng) >> 16) % 48;
    const size_t take = std::min(piece, input.size() - pos);
    buffer.append(input, pos, take);
    pos += take;
    Result<size_t> r = probe.decode(buffer, sink, out);
    if (!r) {
      check(!sink.committed);
      probe.encodeClose(r.error().code, r.error().message, out);
      failed = true;
      break;
    }
    check(*r <= buffer.size());
    buffer.erase(0, *r);
    check(sink.committed == probe.committed());
  }
  if (sink.committed) {
    // Nothing after the "5" frame was consumed: its bytes are the session's.
    Result<size_t> again = probe.decode(buffer, sink, out);
    check(again.has_value() && *again == 0);
  }
  // The output: "3probe" per probe, WebSocket pongs, at most one close frame.
  size_t b = 0;
  int answers = 0;
  const std::string_view o = out.data;
  while (b < o.size()) {
    check(o.size() - b >= 2);
    const auto b0 = static_cast<uint8_t>(o[b]);
    const size_t n = static_cast<uint8_t>(o[b + 1]) & 0x7F;
    check(n < 126 && o.size() - b - 2 >= n);
    const std::string_view payload = o.substr(b + 2, n);
    if (b0 == 0x81) {
      check(payload == "3probe");
      ++answers;
    } else {
      check(b0 == 0x8A || b0 == 0x88);
    }
    b += 2 + n;
  }
  check(answers == sink.probes);
  probe.encodeClose(Errc::kNotFound, "session gone", out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) {
    return 0;
  }
  Input in;
  in.flags = data[0];
  in.rng = 0x9E3779B9u ^ (uint32_t{data[1]} * 0x01000193u);
  in.whole = (data[1] & 0x7F) == 0;
  in.recovery = (data[1] & 0x80) != 0;
  in.body = std::string_view(reinterpret_cast<const char*>(data + 2), size - 2);
  runWebSocket(in);
  runPolling(in);
  runProbe(in);
  return 0;
}
