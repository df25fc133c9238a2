// SPDX-License-Identifier: Apache-2.0
// The "imgate.v1.bin" subprotocol: proto.tcp_frame frames inside binary WebSocket messages
// (WsCodecOptions::binary_envelope), from the handshake to decode, encode, fan-out and close.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/module.h"
#include "modules/proto/tcp_frame/frame.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "modules/proto/websocket/ws_codec.h"
#include "modules/proto/websocket/ws_envelope.h"
#include "modules/proto/websocket/ws_handshake.h"
#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

// Defined by IMGATE_MODULE in ws_module.cc.
const imgate::ModuleFactory& imgate_module_proto_websocket();

namespace imgate::mod::websocket::testing {
namespace {

namespace tf = imgate::mod::tcp_frame;

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kClose = 0x8;
constexpr uint64_t kEpoch = 0x9f3a0c11d2e4b5a6;

WsCodecOptions binOptions(bool deflate = false) {
  WsCodecOptions o = deflate ? deflateOptions() : WsCodecOptions{};
  o.binary_envelope = true;
  return o;
}

// ---- Client frames ----------------------------------------------------------------------------

std::string tcpFrame(tf::FrameType type, uint64_t id, std::string body, uint8_t flags = 0) {
  return tf::buildFrame(type, flags, id, body);
}

std::string sendFrame(uint64_t id, std::string_view event, std::string_view data,
                      uint8_t flags = tf::kFlagAckRequired) {
  std::string body;
  tf::TlvWriter w(body);
  w.addString(tf::Tag::kEvent, event);
  w.addString(tf::Tag::kData, data);
  return tcpFrame(tf::FrameType::kSend, id, body, flags);
}

std::string withStream(std::string_view stream) {
  std::string body;
  if (!stream.empty()) {
    tf::TlvWriter(body).addString(tf::Tag::kStream, stream);
  }
  return body;
}

std::string roomBody(std::string_view room) {
  std::string body;
  tf::TlvWriter(body).addString(tf::Tag::kRoom, room);
  return body;
}

std::string helloFrame() {
  std::string body;
  tf::TlvWriter(body).addString(tf::Tag::kToken, "t");
  return tcpFrame(tf::FrameType::kHello, 1, body);
}

std::string closeFrame(uint16_t code, std::string_view reason) {
  std::string body;
  tf::TlvWriter w(body);
  w.addU16(tf::Tag::kCode, code);
  w.addString(tf::Tag::kReason, reason);
  return tcpFrame(tf::FrameType::kClose, 0, body);
}

std::string binaryMessage(std::string_view frames) { return clientFrame(kFin | kBinary, frames); }

// ---- Server output ----------------------------------------------------------------------------

struct TcpOut {
  tf::FrameHeader header;
  std::string body;  // inflated
  std::optional<std::string> str(tf::Tag tag) const {
    auto fields = tf::parseFields(body);
    if (!fields) {
      return std::nullopt;
    }
    auto v = fields->str(tag);
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  }
  std::optional<uint64_t> uint(tf::Tag tag, size_t width) const {
    auto fields = tf::parseFields(body);
    if (!fields) {
      return std::nullopt;
    }
    auto v = fields->uint(tag, width);
    return v ? *v : std::nullopt;
  }
};

// Every TCP frame of one message; fails the test on a partial or malformed frame (the server
// must never send one).
std::vector<TcpOut> tcpFrames(std::string_view payload) {
  std::vector<TcpOut> frames;
  while (!payload.empty()) {
    auto header = tf::parseHeader(payload, 1u << 30);
    EXPECT_TRUE(header.has_value());
    if (!header || !*header || payload.size() - tf::kHeaderSize < (*header)->length) {
      ADD_FAILURE() << "partial frame in a server message";
      break;
    }
    TcpOut f;
    f.header = **header;
    const std::string_view wire = payload.substr(tf::kHeaderSize, f.header.length);
    if ((f.header.flags & tf::kFlagCompressed) != 0) {
      EXPECT_TRUE(tf::inflateBody(wire, 1u << 30, f.body).has_value());
    } else {
      f.body = std::string(wire);
    }
    frames.push_back(std::move(f));
    payload.remove_prefix(tf::kHeaderSize + f.header.length);
  }
  return frames;
}

// Server output as WebSocket frames; binary ones must hold whole TCP frames.
struct ServerOutput {
  std::vector<ServerFrame> ws;
  std::vector<std::vector<TcpOut>> tcp;  // per WebSocket frame (empty for non-binary ones)
};

ServerOutput parseOutput(std::string_view bytes, ClientInflater* inflater = nullptr) {
  ServerOutput out;
  bool ok = false;
  out.ws = parseServerFrames(bytes, &ok);
  EXPECT_TRUE(ok) << "truncated server frame";
  for (const ServerFrame& f : out.ws) {
    std::string payload = f.payload;
    if (f.rsv1) {
      EXPECT_NE(inflater, nullptr) << "compressed frame without deflate";
      if (inflater == nullptr) {
        out.tcp.emplace_back();
        continue;
      }
      auto inflated = inflater->inflateMessage(payload);
      EXPECT_TRUE(inflated.has_value());
      payload = inflated.value_or("");
    }
    out.tcp.push_back(f.opcode == kBinary ? tcpFrames(payload) : std::vector<TcpOut>{});
  }
  return out;
}

uint16_t wsCloseCode(const ServerFrame& f) {
  return f.payload.size() < 2 ? 0
                              : static_cast<uint16_t>((static_cast<uint8_t>(f.payload[0]) << 8) |
                                                      static_cast<uint8_t>(f.payload[1]));
}

// ---- Decode driver ----------------------------------------------------------------------------

std::string describe(const Message& m) {
  std::string s;
  switch (m.kind) {
    case MessageKind::kData: s = "data"; break;
    case MessageKind::kAck: s = "ack"; break;
    case MessageKind::kControl: s = "control"; break;
    case MessageKind::kPresence: s = "presence"; break;
  }
  s += m.type == PayloadType::kBinary ? " bin" : " text";
  s += " id=" + m.id + " event=" + m.event + " stream=" + m.stream +
       " seq=" + std::to_string(m.seq) + " to=" + m.to + " data=" + std::string(m.data());
  for (const auto& [k, v] : m.meta) {
    s += " " + k + "=" + v;
  }
  return s;
}

struct BinRun {
  std::vector<std::string> messages;
  std::string out;
  std::optional<Errc> error;
  bool peer_closed = false;
  std::string close_reason;
  size_t leftover = 0;
  bool operator==(const BinRun&) const = default;
};

void PrintTo(const BinRun& run, std::ostream* os) {
  *os << "{messages=[";
  for (const std::string& m : run.messages) {
    *os << m << "; ";
  }
  *os << "] out=" << run.out.size() << "B error="
      << (run.error ? std::string(errcName(*run.error)) : std::string("none"))
      << " closed=" << run.peer_closed << " leftover=" << run.leftover << "}";
}

BinRun runBin(const WsCodecOptions& options, std::string_view bytes,
              const std::vector<size_t>& cuts = {}) {
  const WsFeed feed = feedFreshCodec(options, bytes, cuts);
  BinRun run;
  run.error = feed.fed.error;
  for (const Message& m : feed.sink.messages) {
    run.messages.push_back(describe(m));
  }
  run.out = feed.out.data;
  run.peer_closed = feed.sink.peer_closed;
  run.close_reason = feed.sink.close_reason;
  run.leftover = run.error ? 0 : feed.fed.leftover;
  return run;
}

BinRun runBinAllWays(const WsCodecOptions& options, std::string_view bytes) {
  const BinRun whole = runBin(options, bytes);
  EXPECT_EQ(whole, runBin(options, bytes, everyByte(bytes.size()))) << "byte-by-byte differs";
  for (size_t k = 1; k < bytes.size(); ++k) {
    const BinRun split = runBin(options, bytes, {k});
    EXPECT_EQ(whole, split) << "split at offset " << k << " differs";
    if (!(whole == split)) {
      break;
    }
  }
  return whole;
}

// ---- Handshake and module ---------------------------------------------------------------------

HttpRequest upgradeOffering(std::string protocols) {
  HttpRequest r;
  r.method = "GET";
  r.target = "/ws";
  r.path = "/ws";
  r.version_minor = 1;
  r.headers = {
      {"host", "server.example.com"},
      {"upgrade", "websocket"},
      {"connection", "Upgrade"},
      {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"sec-websocket-version", "13"},
  };
  if (!protocols.empty()) {
    r.headers.push_back({"sec-websocket-protocol", std::move(protocols)});
  }
  return r;
}

std::optional<std::string> selectedProtocol(const HttpResponse& r) {
  for (const HttpHeader& h : r.headers) {
    if (http_detail::iequals(h.name, "sec-websocket-protocol")) {
      return h.value;
    }
  }
  return std::nullopt;
}

TEST(WsBinTest, HandshakeSelectsTheBinaryEnvelope) {
  EXPECT_EQ(kBinaryEnvelopeSubprotocol, "imgate.v1.bin");
  WsSettings settings;
  settings.subprotocols = {"chat.v1"};
  struct Case {
    std::string offers;
    bool envelope_setting;
    std::string selected;
  };
  const std::vector<Case> cases = {
      {"imgate.v1.bin", true, "imgate.v1.bin"},
      {"chat.v1, imgate.v1.bin", true, "imgate.v1.bin"},  // wins over the client's order
      {"bearer.eyJ, imgate.v1.bin", true, "imgate.v1.bin"},
      {"imgate.v1.bin, imgate.v1", true, "imgate.v1.bin"},  // between the two: client's order
      {"imgate.v1, imgate.v1.bin", true, "imgate.v1"},
      {"chat.v1, imgate.v1, imgate.v1.bin", true, "imgate.v1"},
      {"imgate.v1.BIN, imgate.v1.bin2", true, ""},
      {"imgate.v1.bin", false, ""},
      {"imgate.v1.bin, chat.v1", false, "chat.v1"},
  };
  for (const Case& c : cases) {
    settings.envelope = c.envelope_setting;
    auto result = evaluateUpgrade(upgradeOffering(c.offers), settings);
    ASSERT_TRUE(result.has_value()) << c.offers;
    EXPECT_EQ(result->subprotocol, c.selected) << c.offers;
    EXPECT_EQ(result->codec.binary_envelope, c.selected == "imgate.v1.bin") << c.offers;
    EXPECT_EQ(result->codec.envelope, c.selected == "imgate.v1") << c.offers;
    const auto echoed = selectedProtocol(result->response);
    EXPECT_EQ(echoed.value_or(""), c.selected) << c.offers;
  }
  // Protocols layered on the handshake (Socket.IO) keep WsSettings' default: never selected.
  auto layered = evaluateUpgrade(upgradeOffering("imgate.v1.bin"), WsSettings{});
  ASSERT_TRUE(layered.has_value());
  EXPECT_FALSE(layered->codec.binary_envelope);
  EXPECT_TRUE(layered->subprotocol.empty());
}

TEST(WsBinTest, ModuleKeyEnvelopeCoversTheBinaryForm) {
  const auto& factory = static_cast<const ProtocolFactory&>(imgate_module_proto_websocket());
  FakeLoadContext context;
  {
    FakeConfigView view(factory.schema(), {});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    auto exchange = std::make_shared<FakeHttpExchange>(upgradeOffering("imgate.v1.bin"));
    config.onHttpRequest(exchange);
    ASSERT_TRUE(exchange->upgraded);
    EXPECT_EQ(selectedProtocol(exchange->accept), "imgate.v1.bin");
    ASSERT_TRUE(exchange->codec);
    EXPECT_TRUE(exchange->codec->acksDownlink());
    FakeSink sink;
    FakeOut out;
    const std::string bytes = binaryMessage(sendFrame(3, "chat", "hi"));
    auto used = exchange->codec->decode(bytes, sink, out);
    ASSERT_TRUE(used.has_value());
    EXPECT_EQ(*used, bytes.size());
    ASSERT_EQ(sink.messages.size(), 1u);
    EXPECT_EQ(sink.messages[0].id, "3");
    EXPECT_EQ(sink.messages[0].data(), "hi");
  }
  {
    FakeConfigView view(factory.schema(), {{"envelope", "false"}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    auto exchange = std::make_shared<FakeHttpExchange>(upgradeOffering("imgate.v1.bin"));
    config.onHttpRequest(exchange);
    ASSERT_TRUE(exchange->codec);
    EXPECT_FALSE(selectedProtocol(exchange->accept).has_value());
    EXPECT_FALSE(exchange->codec->acksDownlink());
  }
  {
    FakeConfigView view(factory.schema(), {{"envelope", "false"}},
                        {{"subprotocols", {"imgate.v1.bin"}}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_FALSE(compiled.has_value());
    EXPECT_EQ(compiled.error().code, Errc::kInvalidConfig);
    EXPECT_NE(compiled.error().message.find("imgate.v1.bin"), std::string::npos);
  }
}

// ---- Open --------------------------------------------------------------------------------------

SessionOpened opened() {
  SessionOpened o;
  o.session_id = 4711;
  o.server_time_ms = 1700000000000;
  o.idle_timeout = std::chrono::milliseconds(120000);
  o.identity.app = "demo";
  o.identity.user = "u42";
  o.identity.device = "web";
  StreamStart user;
  user.stream = "user";
  user.epoch = kEpoch;
  user.seq = 17;
  user.outcome = StreamStart::Outcome::kRecovered;
  user.replayed = 3;
  o.streams.push_back(user);
  return o;
}

TEST(WsBinTest, HelloAckIsOneBinaryMessage) {
  for (bool deflate : {false, true}) {
    WsCodec codec(binOptions(deflate));
    FakeOut out;
    codec.onOpened(opened(), out);
    ClientInflater inflater(false);
    const ServerOutput parsed = parseOutput(out.data, &inflater);
    ASSERT_EQ(parsed.ws.size(), 1u) << deflate;
    EXPECT_EQ(parsed.ws[0].opcode, kBinary);
    ASSERT_EQ(parsed.tcp[0].size(), 1u);
    const TcpOut& ack = parsed.tcp[0][0];
    EXPECT_EQ(ack.header.type, tf::FrameType::kHelloAck);
    EXPECT_EQ(ack.header.id, 0u);  // no HELLO to answer
    EXPECT_EQ(ack.uint(tf::Tag::kSessionId, 8), 4711u);
    EXPECT_EQ(ack.uint(tf::Tag::kIdleTimeoutMs, 4), 120000u);
    EXPECT_EQ(ack.str(tf::Tag::kUser), "u42");
    EXPECT_EQ(ack.str(tf::Tag::kStreams),
              R"({"user":{"epoch":"9f3a0c11d2e4b5a6","seq":17,"recovery":"recovered",)"
              R"("replayed":3}})");
  }
}

// ---- Decode ------------------------------------------------------------------------------------

TEST(WsBinTest, DecodesFramesWholeBytewiseAndEverySplit) {
  const std::string first = sendFrame(7, "chat", "hi") +
                            tcpFrame(tf::FrameType::kPushAck, 42, withStream("room:lobby"));
  const std::string second = tcpFrame(tf::FrameType::kRead, 5, withStream("")) +
                             tcpFrame(tf::FrameType::kJoin, 3, roomBody("lobby")) +
                             tcpFrame(tf::FrameType::kLeave, 0, roomBody("lobby"));
  std::string packed;
  std::string send_body;
  {
    tf::TlvWriter w(send_body);
    w.addString(tf::Tag::kData, std::string(300, 'z'));
  }
  ASSERT_TRUE(tf::deflateBody(send_body, 6, packed));
  const std::string compressed_send =
      tcpFrame(tf::FrameType::kSend, 0, packed, tf::kFlagCompressed | tf::kFlagBinary);
  const std::string bytes =
      binaryMessage(first) + clientFrame(kFin | kPing, "p") +
      // One message in two fragments, cut inside a TCP frame, with a ping in between.
      clientFrame(kBinary, second.substr(0, 30)) + clientFrame(kFin | kPing, "") +
      clientFrame(kFin | kContinuation, second.substr(30)) +
      binaryMessage(tcpFrame(tf::FrameType::kPing, 9, "pp")) + binaryMessage(compressed_send);
  const BinRun run = runBinAllWays(binOptions(), bytes);
  EXPECT_FALSE(run.error.has_value());
  EXPECT_EQ(run.leftover, 0u);
  const std::vector<std::string> expected = {
      "data text id=7 event=chat stream= seq=0 to= data=hi ack_required=1",
      "ack text id= event= stream=room:lobby seq=42 to= data=",
      "control text id= event=read stream= seq=5 to= data=",
      "control text id=3 event=join stream= seq=0 to=lobby data=",
      "control text id= event=leave stream= seq=0 to=lobby data=",
      "data bin id= event= stream= seq=0 to= data=" + std::string(300, 'z'),
  };
  EXPECT_EQ(run.messages, expected);
  // Two WebSocket pongs, then the PONG frame in its own binary message.
  const ServerOutput out = parseOutput(run.out);
  ASSERT_EQ(out.ws.size(), 3u);
  EXPECT_EQ(out.ws[0].opcode, 0xA);
  EXPECT_EQ(out.ws[1].opcode, 0xA);
  EXPECT_EQ(out.ws[2].opcode, kBinary);
  ASSERT_EQ(out.tcp[2].size(), 1u);
  EXPECT_EQ(out.tcp[2][0].header.type, tf::FrameType::kPong);
  EXPECT_EQ(out.tcp[2][0].header.id, 9u);
  EXPECT_EQ(out.tcp[2][0].body, "pp");
}

TEST(WsBinTest, DecodesPermessageDeflateMessages) {
  ClientDeflater deflater(false);
  const std::string frames = sendFrame(1, "e", std::string(500, 'a')) + sendFrame(2, "e", "b");
  const std::string bytes = clientFrame(kFin | kRsv1 | kBinary, deflater.deflateMessage(frames));
  const BinRun run = runBinAllWays(binOptions(true), bytes);
  EXPECT_FALSE(run.error.has_value());
  ASSERT_EQ(run.messages.size(), 2u);
  EXPECT_EQ(run.messages[1], "data text id=2 event=e stream= seq=0 to= data=b ack_required=1");
}

TEST(WsBinTest, RefusesWhatTheBinaryFormForbids) {
  struct Case {
    const char* what;
    std::string bytes;
    Errc error;
    size_t delivered;  // messages that reached the sink before the error
  };
  std::string bomb_body;
  tf::TlvWriter(bomb_body).addString(tf::Tag::kData, std::string(kDefaultMaxMessage, 'x'));
  std::string bomb;
  ASSERT_TRUE(tf::deflateBody(bomb_body, 9, bomb));
  std::string bad_magic = sendFrame(1, "e", "d");
  bad_magic[0] = 'X';
  const std::string send = sendFrame(1, "e", "d");
  const std::vector<Case> cases = {
      {"hello", binaryMessage(helloFrame()), Errc::kProtocolError, 0},
      {"hello after a frame", binaryMessage(send + helloFrame()), Errc::kProtocolError, 1},
      {"text message", clientFrame(kFin | kText, "{}"), Errc::kInvalidPayload, 0},
      {"text after binary", binaryMessage(send) + clientFrame(kFin | kText, "x"),
       Errc::kInvalidPayload, 1},
      {"empty message", binaryMessage(""), Errc::kProtocolError, 0},
      {"frame spans two messages",
       binaryMessage(send + send.substr(0, 25)) + binaryMessage(send.substr(25)),
       Errc::kProtocolError, 1},
      {"partial header", binaryMessage(send.substr(0, 10)), Errc::kProtocolError, 0},
      {"server-only frame", binaryMessage(tcpFrame(tf::FrameType::kPush, 1, "")),
       Errc::kProtocolError, 0},
      {"bad magic", binaryMessage(bad_magic), Errc::kProtocolError, 0},
      {"inflates above max_message",
       binaryMessage(tcpFrame(tf::FrameType::kSend, 0, bomb, tf::kFlagCompressed)),
       Errc::kMessageTooBig, 0},
      {"message above max_message",
       binaryMessage(sendFrame(1, "e", std::string(kDefaultMaxMessage, 'y'))),
       Errc::kMessageTooBig, 0},
      {"read without seq", binaryMessage(tcpFrame(tf::FrameType::kRead, 0, "")),
       Errc::kProtocolError, 0},
  };
  for (const Case& c : cases) {
    const BinRun run = runBin(binOptions(), c.bytes);
    EXPECT_EQ(run.error, c.error) << c.what;
    EXPECT_EQ(run.messages.size(), c.delivered) << c.what;
  }
  // The same rules hold for every split of the input (the first cases stay small).
  for (size_t i = 0; i < 8; ++i) {
    runBinAllWays(binOptions(), cases[i].bytes);
  }
}

TEST(WsBinTest, ErrorsCloseWithFramesThenTheWebSocketClose) {
  struct Case {
    Errc code;
    std::vector<tf::FrameType> frames;
    uint16_t close;
    std::string ws_reason;
  };
  const std::vector<Case> cases = {
      {Errc::kProtocolError, {tf::FrameType::kError, tf::FrameType::kClose}, 1002, "why"},
      {Errc::kShutdown, {tf::FrameType::kGoaway, tf::FrameType::kClose}, 1001, "why"},
      {Errc::kInternal, {tf::FrameType::kClose}, 1011, ""},
      {Errc::kTimeout, {tf::FrameType::kClose}, 4000, "why"},
  };
  for (const Case& c : cases) {
    WsCodec codec(binOptions());
    FakeOut out;
    codec.encodeClose(c.code, "why", out);
    codec.encodeClose(Errc::kNone, "again", out);  // ignored
    Message m;
    m.payload = makeBytes("late");
    ASSERT_TRUE(codec.encode(m, out).has_value());  // dropped after the close
    EXPECT_EQ(codec.sharedEncodingKey(m), 0u);
    const ServerOutput parsed = parseOutput(out.data);
    ASSERT_EQ(parsed.ws.size(), 2u) << errcName(c.code);
    EXPECT_EQ(parsed.ws[0].opcode, kBinary);
    std::vector<tf::FrameType> types;
    for (const TcpOut& f : parsed.tcp[0]) {
      types.push_back(f.header.type);
    }
    EXPECT_EQ(types, c.frames) << errcName(c.code);
    EXPECT_EQ(parsed.tcp[0].back().uint(tf::Tag::kCode, 2), c.close);
    EXPECT_EQ(parsed.ws[1].opcode, kClose);
    EXPECT_EQ(wsCloseCode(parsed.ws[1]), c.close);
    EXPECT_EQ(parsed.ws[1].payload.substr(2), c.ws_reason);
  }
}

// Records what was written when the core learned of the peer's close: the core flushes then.
class SnapshotSink final : public CodecSink {
 public:
  explicit SnapshotSink(const FakeOut& out) : out_(out) {}
  void onMessage(Message&& message) override { messages.push_back(std::move(message)); }
  void onPeerClose(Errc code, std::string_view reason) override {
    closes.push_back({code, std::string(reason)});
    at_close = out_.data;
  }
  void onActivity() override {}
  void onHello(HttpRequest) override { ++hellos; }

  std::vector<Message> messages;
  std::vector<std::pair<Errc, std::string>> closes;
  std::string at_close;
  int hellos = 0;

 private:
  const FakeOut& out_;
};

TEST(WsBinTest, ClientCloseIsAnsweredBeforeTheCoreLearnsOfIt) {
  WsCodec codec(binOptions());
  FakeOut out;
  SnapshotSink sink(out);
  const std::string bytes = binaryMessage(sendFrame(1, "e", "before") + closeFrame(1000, "bye") +
                                          sendFrame(2, "e", "after")) +
                            binaryMessage(sendFrame(3, "e", "later"));
  auto used = codec.decode(bytes, sink, out);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(*used, bytes.size());
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].data(), "before");
  ASSERT_EQ(sink.closes.size(), 1u);
  EXPECT_EQ(sink.closes[0], (std::pair<Errc, std::string>{Errc::kNone, "bye"}));
  EXPECT_EQ(sink.at_close, out.data);  // everything was written before onPeerClose
  const ServerOutput parsed = parseOutput(out.data);
  ASSERT_EQ(parsed.ws.size(), 2u);
  ASSERT_EQ(parsed.tcp[0].size(), 1u);
  EXPECT_EQ(parsed.tcp[0][0].header.type, tf::FrameType::kClose);
  EXPECT_EQ(parsed.tcp[0][0].uint(tf::Tag::kCode, 2), 1000u);
  EXPECT_EQ(wsCloseCode(parsed.ws[1]), 1000);
  EXPECT_TRUE(codec.closeSent());
  // Nothing more: later input, encodes and closes are ignored.
  const size_t before = out.data.size();
  ASSERT_TRUE(codec.decode(binaryMessage(sendFrame(4, "e", "x")), sink, out).has_value());
  codec.encodeClose(Errc::kShutdown, "", out);
  codec.encodePing(out);
  EXPECT_EQ(out.data.size(), before);
  EXPECT_EQ(sink.hellos, 0);
}

// Closes the session from inside onMessage, as a stage rejecting a message does.
class ClosingSink final : public CodecSink {
 public:
  ClosingSink(WsCodec& codec, FakeOut& out) : codec_(codec), out_(out) {}
  void onMessage(Message&& message) override {
    messages.push_back(std::move(message));
    codec_.encodeClose(Errc::kBadRequest, "refused", out_);
  }
  void onPeerClose(Errc, std::string_view) override { ++peer_closes; }
  void onActivity() override {}
  void onHello(HttpRequest) override {}

  std::vector<Message> messages;
  int peer_closes = 0;

 private:
  WsCodec& codec_;
  FakeOut& out_;
};

TEST(WsBinTest, CloseFromTheSinkEndsTheMessage) {
  WsCodec codec(binOptions());
  FakeOut out;
  ClosingSink sink(codec, out);
  const std::string bytes = binaryMessage(tcpFrame(tf::FrameType::kPing, 1, "") +
                                          sendFrame(2, "e", "one") + sendFrame(3, "e", "two")) +
                            binaryMessage(sendFrame(4, "e", "three"));
  auto used = codec.decode(bytes, sink, out);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(*used, bytes.size());
  EXPECT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.peer_closes, 0);
  const ServerOutput parsed = parseOutput(out.data);
  ASSERT_EQ(parsed.ws.size(), 3u);  // PONG, ERROR + CLOSE, the WebSocket close: nothing after
  EXPECT_EQ(parsed.tcp[0][0].header.type, tf::FrameType::kPong);
  ASSERT_EQ(parsed.tcp[1].size(), 2u);
  EXPECT_EQ(parsed.tcp[1][0].header.type, tf::FrameType::kError);
  EXPECT_EQ(parsed.tcp[1][0].uint(tf::Tag::kCode, 2), 1008u);
  EXPECT_EQ(parsed.ws[2].opcode, kClose);
  EXPECT_EQ(wsCloseCode(parsed.ws[2]), 1008);
}

TEST(WsBinTest, PingsAreNotAnsweredUnderBackpressure) {
  WsCodec codec(binOptions());
  FakeSink sink;
  FakeOut out;
  out.extra_pending = tf::kPongBackpressureLimit + 1;
  ASSERT_TRUE(codec.decode(binaryMessage(tcpFrame(tf::FrameType::kPing, 1, "x")), sink, out));
  EXPECT_TRUE(out.data.empty());
  out.extra_pending = 0;
  ASSERT_TRUE(codec.decode(binaryMessage(tcpFrame(tf::FrameType::kPing, 2, "x")), sink, out));
  EXPECT_FALSE(out.data.empty());
}

// ---- Encode ------------------------------------------------------------------------------------

Message sequencedPush(std::string payload, bool reliable = true) {
  Message m;
  m.kind = MessageKind::kData;
  m.stream = "room:lobby";
  m.epoch = kEpoch;
  m.seq = 42;
  m.reliable = reliable;
  m.id = "m-881";
  m.event = "chat";
  m.payload = makeBytes(std::move(payload));
  return m;
}

TcpOut encodeOne(WsCodec& codec, const Message& m) {
  FakeOut out;
  EXPECT_TRUE(codec.encode(m, out).has_value());
  const ServerOutput parsed = parseOutput(out.data);
  EXPECT_EQ(parsed.ws.size(), 1u);
  if (parsed.ws.size() != 1 || parsed.tcp[0].size() != 1) {
    ADD_FAILURE() << "not one frame in one message";
    return {};
  }
  EXPECT_EQ(parsed.ws[0].opcode, kBinary);
  return parsed.tcp[0][0];
}

TEST(WsBinTest, EncodeMapsMessagesToFrames) {
  WsCodec codec(binOptions());
  EXPECT_TRUE(codec.acksDownlink());

  TcpOut f = encodeOne(codec, sequencedPush("hello"));
  EXPECT_EQ(f.header.type, tf::FrameType::kPush);
  EXPECT_EQ(f.header.id, 42u);
  EXPECT_EQ(f.header.flags, tf::kFlagAckRequired);
  EXPECT_EQ(f.str(tf::Tag::kStream), "room:lobby");
  EXPECT_EQ(f.uint(tf::Tag::kEpoch, 8), kEpoch);
  EXPECT_EQ(f.str(tf::Tag::kMsgId), "m-881");
  EXPECT_EQ(f.str(tf::Tag::kEvent), "chat");
  EXPECT_EQ(f.str(tf::Tag::kData), "hello");

  Message unsequenced;
  unsequenced.type = PayloadType::kBinary;
  unsequenced.payload = makeBytes(std::string("\x00\xff", 2));
  f = encodeOne(codec, unsequenced);
  EXPECT_EQ(f.header.id, 0u);
  EXPECT_EQ(f.header.flags, tf::kFlagBinary);
  EXPECT_FALSE(f.str(tf::Tag::kStream).has_value());
  EXPECT_FALSE(f.str(tf::Tag::kEpoch).has_value());

  Message ack;
  ack.kind = MessageKind::kAck;
  ack.id = "7";
  ack.meta = {{"status", "unavailable"}, {"reason", "backend down"}};
  ack.payload = makeBytes("");
  f = encodeOne(codec, ack);
  EXPECT_EQ(f.header.type, tf::FrameType::kSendAck);
  EXPECT_EQ(f.header.id, 7u);
  EXPECT_EQ(f.uint(tf::Tag::kStatus, 2), 1013u);
  EXPECT_EQ(f.str(tf::Tag::kReason), "backend down");

  Message read;
  read.kind = MessageKind::kControl;
  read.event = "read";
  read.stream = "user";
  read.seq = 5;
  read.meta = {{"device", "phone"}};
  read.payload = makeBytes("");
  f = encodeOne(codec, read);
  EXPECT_EQ(f.header.type, tf::FrameType::kRead);
  EXPECT_EQ(f.header.id, 5u);
  EXPECT_EQ(f.str(tf::Tag::kDevice), "phone");
}

TEST(WsBinTest, SharedEncodingsMatchPerSessionOnesAndAreKeyedApart) {
  WsCodec bin(binOptions());
  WsCodec bin_deflate(binOptions(true));
  WsCodecOptions json_options;
  json_options.envelope = true;
  WsCodec json(json_options);
  WsCodec plain(WsCodecOptions{});
  for (const std::string& payload : {std::string("short"), std::string(3000, 'q')}) {
    for (bool reliable : {false, true}) {
      const Message m = sequencedPush(payload, reliable);
      const uint64_t key = bin.sharedEncodingKey(m);
      EXPECT_NE(key, 0u);
      EXPECT_NE(key, json.sharedEncodingKey(m));
      EXPECT_NE(key, plain.sharedEncodingKey(m));
      // Identical bytes from encode() and encodeShared(), so sessions may share them.
      FakeOut out;
      ASSERT_TRUE(bin.encode(m, out).has_value());
      const Bytes shared = bin.encodeShared(m);
      ASSERT_TRUE(shared);
      EXPECT_EQ(*shared, out.data);
      FakeOut deflated;
      ASSERT_TRUE(bin_deflate.encode(m, deflated).has_value());
      const Bytes shared_deflated = bin_deflate.encodeShared(m);
      ASSERT_TRUE(shared_deflated);
      // Below compress_min_size neither layer compresses: same bytes, same key; above it the
      // two sessions compress at different layers.
      const bool small = payload.size() < kDefaultCompressMinSize;
      EXPECT_EQ(key == bin_deflate.sharedEncodingKey(m), small);
      EXPECT_EQ(*shared == *shared_deflated, small);
      ClientInflater a(false);
      ClientInflater b(false);
      const ServerOutput x = parseOutput(deflated.data, &a);
      const ServerOutput y = parseOutput(*shared_deflated, &b);
      ASSERT_EQ(x.tcp.size(), 1u);
      ASSERT_EQ(y.tcp.size(), 1u);
      ASSERT_EQ(x.tcp[0].size(), 1u);
      ASSERT_EQ(y.tcp[0].size(), 1u);
      EXPECT_EQ(x.tcp[0][0].body, y.tcp[0][0].body);
      EXPECT_EQ(x.tcp[0][0].str(tf::Tag::kData), payload);
    }
  }
  // Reliable or not changes a flag, not the key: the flag comes from the message itself.
  EXPECT_EQ(bin.sharedEncodingKey(sequencedPush("a", false)),
            bin.sharedEncodingKey(sequencedPush("a", true)));
  // Acks answer one session.
  Message ack;
  ack.kind = MessageKind::kAck;
  ack.payload = makeBytes("");
  EXPECT_EQ(bin.sharedEncodingKey(ack), 0u);
  EXPECT_NE(bin.sharedEncodingKey(sequencedPush("a")),
            bin.sharedEncodingKey(sequencedPush(std::string(3000, 'q'))));
}

TEST(WsBinTest, CompressionHappensOnceAtTheRightLayer) {
  const Message big = sequencedPush(std::string(4000, 'r'));
  {
    // No permessage-deflate: the frame body is zlib-compressed, the WebSocket frame is not.
    WsCodec codec(binOptions());
    FakeOut out;
    ASSERT_TRUE(codec.encode(big, out).has_value());
    const ServerOutput parsed = parseOutput(out.data);
    ASSERT_EQ(parsed.ws.size(), 1u);
    EXPECT_FALSE(parsed.ws[0].rsv1);
    ASSERT_EQ(parsed.tcp[0].size(), 1u);
    EXPECT_NE(parsed.tcp[0][0].header.flags & tf::kFlagCompressed, 0);
    EXPECT_LT(out.data.size(), 1000u);
  }
  {
    // permessage-deflate: the WebSocket message is compressed, the frame inside is not.
    WsCodec codec(binOptions(true));
    FakeOut out;
    ASSERT_TRUE(codec.encode(big, out).has_value());
    ClientInflater inflater(false);
    const ServerOutput parsed = parseOutput(out.data, &inflater);
    ASSERT_EQ(parsed.ws.size(), 1u);
    EXPECT_TRUE(parsed.ws[0].rsv1);
    ASSERT_EQ(parsed.tcp[0].size(), 1u);
    EXPECT_EQ(parsed.tcp[0][0].header.flags & tf::kFlagCompressed, 0);
    EXPECT_LT(out.data.size(), 1000u);
  }
}

// ---- TcpFrameCodec's hello_done option ---------------------------------------------------------

TEST(WsBinTest, TcpFrameCodecHelloDoneOption) {
  tf::TcpFrameOptions options;
  options.hello_done = true;
  tf::TcpFrameCodec codec(options);
  EXPECT_TRUE(codec.helloSeenForTest());
  FakeSink sink;
  FakeOut out;
  const std::string send = sendFrame(1, "e", "d");
  auto used = codec.decode(send + send, sink, out);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(*used, 2 * send.size());  // no stop after a HELLO: there is none
  EXPECT_EQ(sink.messages.size(), 2u);
  auto hello = codec.decode(helloFrame(), sink, out);
  ASSERT_FALSE(hello.has_value());
  EXPECT_EQ(hello.error().code, Errc::kProtocolError);
  EXPECT_NE(hello.error().message.find("HELLO"), std::string::npos);

  // Without the option the HELLO rule is unchanged.
  tf::TcpFrameCodec classic{tf::TcpFrameOptions{}};
  EXPECT_FALSE(classic.helloSeenForTest());
  FakeSink classic_sink;
  auto early = classic.decode(send, classic_sink, out);
  ASSERT_FALSE(early.has_value());
  EXPECT_EQ(early.error().code, Errc::kProtocolError);
}

}  // namespace
}  // namespace imgate::mod::websocket::testing
