// SPDX-License-Identifier: Apache-2.0
// SioCodec on the HTTP long-polling transport (POST bodies in, "\x1e"-separated packets out),
// the polling -> WebSocket switch (attachTransport) and SioProbeCodec, the upgrade connection's
// codec. Bodies are whole by contract, so polling decode is checked for what it consumes: all of
// a body, or a prefix ending right after the hello, the rest given again after the open. The
// probe's WebSocket frames are fed whole, one byte at a time and split at every offset.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modules/common/base64.h"
#include "modules/proto/socketio/sio_codec.h"
#include "modules/proto/socketio/sio_probe_codec.h"
#include "test/unit/modules/proto/socketio/sio_test_support.h"

namespace imgate::mod::socketio {
namespace {

using namespace socketio::testing;

constexpr char kSep = '\x1e';

HttpRequest handshakeRequest() { return clientRequest("polling"); }

std::string body(std::initializer_list<std::string_view> packets) {
  std::string b;
  for (std::string_view p : packets) {
    if (!b.empty()) {
      b.push_back(kSep);
    }
    b.append(p);
  }
  return b;
}

std::string b64(std::string_view data) {
  return common::base64Encode(data, common::Base64Alphabet::kStandard, true);
}

// Polling output as packets: every packet must start with the separator; binary packets
// ('b' + base64) read "bin:" + the decoded bytes.
std::vector<std::string> pollingPackets(std::string_view bytes) {
  std::vector<std::string> packets;
  if (bytes.empty()) {
    return packets;
  }
  EXPECT_EQ(bytes[0], kSep) << "polling output must start with a separator";
  bytes.remove_prefix(1);
  while (true) {
    const size_t next = bytes.find(kSep);
    std::string piece(bytes.substr(0, next));
    EXPECT_FALSE(piece.empty());
    if (!piece.empty() && piece[0] == 'b') {
      auto raw = common::base64Decode(std::string_view(piece).substr(1),
                                      common::Base64Alphabet::kStandard);
      EXPECT_TRUE(raw.has_value()) << piece;
      piece = "bin:" + raw.value_or("");
    }
    packets.push_back(std::move(piece));
    if (next == std::string_view::npos) {
      return packets;
    }
    bytes.remove_prefix(next + 1);
  }
}

std::string render(const Message& m) {
  std::string s = (m.type == PayloadType::kText ? "text " : "binary ") + m.event;
  if (!m.id.empty()) {
    s += " id=" + m.id;
  }
  return s + " " + std::string(m.data());
}

using Packets = std::vector<std::string>;

class SioPollingTest : public ::testing::Test {
 protected:
  SioPollingTest() { reset(testSettings()); }

  void reset(std::shared_ptr<const SocketIoSettings> settings) {
    settings_ = std::move(settings);
    codec_ = std::make_unique<SioCodec>(settings_, handshakeRequest());
    sink_ = SioSink();
    out_.data.clear();
  }

  Result<size_t> decode(std::string_view in) { return codec_->decode(in, sink_, out_); }

  // A POST body as the core feeds it: decoded until consumed, with onOpened after the hello.
  void post(std::string_view in) {
    while (!in.empty()) {
      Result<size_t> r = decode(in);
      ASSERT_TRUE(r) << r.error().message;
      ASSERT_LE(*r, in.size());
      in.remove_prefix(*r);
      if (sink_.hellos == 1 && !opened_) {
        opened_ = true;
        SessionOpened opened;
        opened.session_id = 9;
        codec_->onOpened(opened, out_);
        continue;
      }
      ASSERT_TRUE(in.empty()) << "the rest of a body must be consumed once open";
    }
  }

  std::optional<Errc> decodeError(std::string_view in) {
    Result<size_t> r = decode(in);
    return r ? std::nullopt : std::optional<Errc>(r.error().code);
  }

  // Opens the session with a hello CONNECT; leaves the output empty and sid_ set.
  void open() {
    post(R"(40{"token":"T"})");
    const Packets p = take();
    ASSERT_EQ(p.size(), 1u);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(p[0], m, std::regex(R"re(^40\{"sid":"([A-Za-z0-9_-]{20})"\}$)re")))
        << p[0];
    sid_ = m[1].str();
  }

  Packets take() {
    Packets p = pollingPackets(out_.data);
    out_.data.clear();
    return p;
  }

  Packets encoded(const Message& message) {
    Status s = codec_->encode(message, out_);
    EXPECT_TRUE(s) << s.error().message;
    return take();
  }

  std::shared_ptr<const SocketIoSettings> settings_;
  std::unique_ptr<SioCodec> codec_;
  SioSink sink_;
  FakeOut out_;
  bool opened_ = false;
  std::string sid_;
};

// ---- Decode ---------------------------------------------------------------------------------

TEST_F(SioPollingTest, StartsOnPolling) { EXPECT_EQ(codec_->transport(), SioTransport::kPolling); }

TEST_F(SioPollingTest, HelloStopsRightAfterItsSeparator) {
  const std::string hello = R"(40{"token":"T"})";
  const std::string in = body({hello, R"(42["chat",1])", "3"});
  Result<size_t> r = decode(in);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, hello.size() + 1);
  EXPECT_EQ(sink_.hellos, 1);
  EXPECT_TRUE(sink_.messages.empty());
  ASSERT_TRUE(sink_.hello);
  EXPECT_EQ(sink_.hello->method, "CONNECT");
  EXPECT_EQ(sink_.hello->query, "EIO=4&transport=polling&room=lobby");
  EXPECT_EQ(sink_.hello->header("authorization"), "Bearer T");
  EXPECT_EQ(sink_.hello->header("origin"), "https://app.test");
  EXPECT_TRUE(out_.data.empty());

  // The core opens the session, then hands over the rest of the body.
  codec_->onOpened(SessionOpened{}, out_);
  const Packets answer = take();
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].substr(0, 9), R"(40{"sid":)");
  const std::string_view rest = std::string_view(in).substr(*r);
  Result<size_t> r2 = decode(rest);
  ASSERT_TRUE(r2) << r2.error().message;
  EXPECT_EQ(*r2, rest.size());
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(render(sink_.messages[0]), "text chat [1]");
}

TEST_F(SioPollingTest, HelloAloneIsConsumedWhole) {
  Result<size_t> r = decode("40");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 2u);
  EXPECT_EQ(sink_.hellos, 1);
}

TEST_F(SioPollingTest, PacketsBeforeTheHelloTakeEffect) {
  // A ping before the CONNECT is answered; the CONNECT in the same body is the hello.
  Result<size_t> r = decode(body({"2", "40", R"(42["x"])"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 5u);
  EXPECT_EQ(sink_.hellos, 1);
  EXPECT_EQ(take(), Packets{"3"});
}

TEST_F(SioPollingTest, EventsAcksAndNamespaces) {
  open();
  post(body({"40/chat,", R"(42["a",{"x":1}])", R"(42/chat,7["b"])", "3"}));
  EXPECT_EQ(take(), Packets{R"(40/chat,{"sid":")" + sid_ + "\"}"});
  ASSERT_EQ(sink_.messages.size(), 2u);
  EXPECT_EQ(render(sink_.messages[0]), R"(text a [{"x":1}])");
  EXPECT_EQ(render(sink_.messages[1]), "text b id=7@/chat []");
  EXPECT_GE(sink_.activity, 2);
}

TEST_F(SioPollingTest, BinaryAttachmentInTheSameBody) {
  open();
  const std::string bytes("\x00\xff\x1e" "z", 4);  // a separator byte inside binary data is fine
  post(body({R"(451-["up",)" + kPlaceholder0 + "]", "b" + b64(bytes)}));
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(sink_.messages[0].type, PayloadType::kBinary);
  EXPECT_EQ(sink_.messages[0].event, "up");
  EXPECT_EQ(sink_.messages[0].data(), bytes);
}

TEST_F(SioPollingTest, AttachmentInALaterBody) {
  open();
  post(R"(451-["up",)" + kPlaceholder0 + "]");
  EXPECT_TRUE(sink_.messages.empty());
  post("b" + b64("late"));
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(sink_.messages[0].data(), "late");
}

TEST_F(SioPollingTest, ClientPingIsAnsweredInTheNextPoll) {
  open();
  post(body({"2", "2probe"}));
  EXPECT_EQ(take(), (Packets{"3", "3probe"}));
}

TEST_F(SioPollingTest, CloseEndsTheBody) {
  open();
  const std::string in = body({R"(42["a"])", "1", R"(42["ignored"])"});
  Result<size_t> r = decode(in);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, in.size());
  ASSERT_EQ(sink_.messages.size(), 1u);
  ASSERT_EQ(sink_.closes.size(), 1u);
  EXPECT_EQ(sink_.closes[0].first, Errc::kNone);
}

TEST_F(SioPollingTest, BodiesThatDoNotParseFailWhole) {
  open();
  // As decodeEioPayload: checked before any packet takes effect.
  for (const std::string& in : {
           std::string(1, kSep) + R"(42["a"])",   // leading separator
           R"(42["a"])" + std::string(1, kSep),   // trailing separator
           body({R"(42["a"])", "", "3"}),         // doubled separator
           body({R"(42["a"])", "9"}),             // unknown type
           body({R"(42["a"])", "b!!"}),           // invalid base64
       }) {
    SCOPED_TRACE(in);
    EXPECT_EQ(decodeError(in), Errc::kProtocolError);
    EXPECT_TRUE(sink_.messages.empty());
  }
}

TEST_F(SioPollingTest, BodiesThatAreNotUtf8Fail) {
  open();
  EXPECT_EQ(decodeError(body({R"(42["a"])", "2\xda\""})), Errc::kInvalidPayload);
  EXPECT_TRUE(sink_.messages.empty());
  EXPECT_TRUE(out_.data.empty()) << "not even the ping is answered";
}

TEST_F(SioPollingTest, BadPacketsFailTheSession) {
  for (const std::string& bad : {std::string("5"), std::string("0"),
                                 std::string("4not socket.io")}) {
    SCOPED_TRACE(bad);
    reset(testSettings());
    opened_ = false;
    open();
    EXPECT_EQ(decodeError(body({R"(42["a"])", bad})), Errc::kProtocolError);
    EXPECT_EQ(sink_.messages.size(), 1u);  // packets before the bad one took effect
  }
}

TEST_F(SioPollingTest, BodyAboveMaxPayloadIsTooBig) {
  auto settings = testSettings();
  settings->max_payload = 64;
  reset(settings);
  EXPECT_EQ(decodeError(R"(40{"token":")" + std::string(60, 'x') + "\"}"), Errc::kMessageTooBig);
}

TEST_F(SioPollingTest, PacketsBeforeConnectFail) {
  EXPECT_EQ(decodeError(R"(42["a"])"), Errc::kProtocolError);
}

TEST_F(SioPollingTest, EmptyInputConsumesNothing) {
  Result<size_t> r = decode("");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 0u);
}

// ---- Encode ---------------------------------------------------------------------------------

TEST_F(SioPollingTest, EncodeIsPayloadForm) {
  open();
  EXPECT_EQ(encoded(dataMessage("news", R"({"a":1})")), Packets{R"(42["news",{"a":1}])"});
  EXPECT_EQ(encoded(dataMessage("t", "not json")), Packets{R"(42["t","not json"])"});
  const std::string raw("\x01\x1e\xff", 3);
  EXPECT_EQ(encoded(dataMessage("bin", raw, {}, PayloadType::kBinary)),
            (Packets{R"(451-["bin",)" + kPlaceholder0 + "]", "bin:" + raw}));
  Message ack;
  ack.kind = MessageKind::kAck;
  ack.id = "7";
  ack.payload = makeBytes(std::string(R"({"ok":true})"));
  EXPECT_EQ(encoded(ack), Packets{R"(437[{"ok":true}])"});
  // The raw bytes: every packet after a separator, nothing else.
  ASSERT_TRUE(codec_->encode(dataMessage("x", "1"), out_));
  ASSERT_TRUE(codec_->encode(dataMessage("y", "2"), out_));
  EXPECT_EQ(out_.data, std::string(1, kSep) + R"(42["x",1])" + kSep + R"(42["y",2])");
}

TEST_F(SioPollingTest, EncodePing) {
  open();
  codec_->encodePing(out_);
  EXPECT_EQ(out_.data, std::string(1, kSep) + "2");
}

TEST_F(SioPollingTest, SharedEncodingMatchesEncodeAndDiffersFromWebSocket) {
  open();
  auto ws = std::make_unique<SioCodec>(settings_, handshakeRequest(), wsOptions());
  SioSink ws_sink;
  FakeOut ws_out;
  ASSERT_TRUE(ws->decode(textFrame("40"), ws_sink, ws_out));
  ws->onOpened(SessionOpened{}, ws_out);
  for (const Message& m : {dataMessage("news", R"({"a":1})"),
                           dataMessage("b", "\x01\x02", {}, PayloadType::kBinary)}) {
    const uint64_t key = codec_->sharedEncodingKey(m);
    ASSERT_NE(key, 0u);
    EXPECT_NE(key, ws->sharedEncodingKey(m)) << "transports must not share encodings";
    out_.data.clear();
    ASSERT_TRUE(codec_->encode(m, out_));
    Bytes shared = codec_->encodeShared(m);
    ASSERT_TRUE(shared);
    EXPECT_EQ(*shared, out_.data);
  }
  EXPECT_NE(codec_->sharedEncodingKey(dataMessage("a", "1")),
            codec_->sharedEncodingKey(dataMessage("a", "1", {}, PayloadType::kBinary)));
}

TEST_F(SioPollingTest, CloseWritesPacketsOnly) {
  open();
  codec_->encodeClose(Errc::kKicked, "bye", out_);
  EXPECT_EQ(take(), Packets{"41"});
  codec_->encodeClose(Errc::kNone, "again", out_);
  codec_->encodePing(out_);
  EXPECT_TRUE(out_.data.empty());
  EXPECT_TRUE(codec_->encode(dataMessage("late", "1"), out_));
  EXPECT_TRUE(out_.data.empty());
  EXPECT_EQ(codec_->sharedEncodingKey(dataMessage("late", "1")), 0u);
}

TEST_F(SioPollingTest, CloseForErrorsIsEngineIoClose) {
  open();
  codec_->encodeClose(Errc::kShutdown, "draining", out_);
  EXPECT_EQ(take(), Packets{"1"});
}

TEST_F(SioPollingTest, RefusedHelloGetsConnectError) {
  Result<size_t> r = decode("40");
  ASSERT_TRUE(r);
  codec_->encodeClose(Errc::kUnauthenticated, "bad token", out_);
  EXPECT_EQ(take(),
            Packets{R"(44{"message":"bad token","data":{"code":"unauthenticated"}})"});
}

TEST_F(SioPollingTest, CloseBeforeAnyConnectIsEngineIoClose) {
  codec_->encodeClose(Errc::kTimeout, "no connect", out_);
  EXPECT_EQ(take(), Packets{"1"});
}

// ---- Plain Engine.IO over polling -----------------------------------------------------------

class SioPollingEngineIoTest : public SioPollingTest {
 protected:
  SioPollingEngineIoTest() {
    auto settings = testSettings();
    settings->engineio_only = true;
    reset(settings);
    codec_->onOpened(SessionOpened{}, out_);  // engineio mode opens at the handshake
    EXPECT_TRUE(out_.data.empty());
  }
};

TEST_F(SioPollingEngineIoTest, MessagesBothWays) {
  post(body({"4hello", "b" + b64(std::string("\x00\x01", 2)), "3"}));
  ASSERT_EQ(sink_.messages.size(), 2u);
  EXPECT_EQ(render(sink_.messages[0]), "text  hello");
  EXPECT_EQ(sink_.messages[1].type, PayloadType::kBinary);
  EXPECT_EQ(sink_.messages[1].data(), std::string("\x00\x01", 2));
  EXPECT_EQ(encoded(dataMessage("", "hi")), Packets{"4hi"});
  EXPECT_EQ(encoded(dataMessage("", "\x02", {}, PayloadType::kBinary)), Packets{"bin:\x02"});
  for (const Message& m :
       {dataMessage("", "hi"), dataMessage("", "\x02\x1e", {}, PayloadType::kBinary)}) {
    ASSERT_NE(codec_->sharedEncodingKey(m), 0u);
    ASSERT_TRUE(codec_->encode(m, out_));
    EXPECT_EQ(*codec_->encodeShared(m), out_.data);
    out_.data.clear();
  }
}

// Text that is not UTF-8 (from TCP-frame or lines clients) goes as binary, bytes unchanged: a
// text packet would reach the client with its bytes replaced.
TEST_F(SioPollingEngineIoTest, TextThatIsNotUtf8GoesAsBinary) {
  for (const std::string& bytes : {std::string("\xFF"), std::string("a\xC3"),
                                   std::string("x\xFE") + kSep}) {
    const Message m = dataMessage("", bytes);
    EXPECT_EQ(encoded(m), Packets{"bin:" + bytes});
    if (codec_->sharedEncodingKey(m) != 0) {
      ASSERT_TRUE(codec_->encode(m, out_));
      EXPECT_EQ(*codec_->encodeShared(m), out_.data);
      out_.data.clear();
    }
  }
}

TEST_F(SioPollingEngineIoTest, TextWithASeparatorIsRefused) {
  const Message m = dataMessage("", std::string("a") + kSep + "b");
  EXPECT_EQ(codec_->sharedEncodingKey(m), 0u);
  Status s = codec_->encode(m, out_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInvalidPayload);
  EXPECT_TRUE(out_.data.empty());
}

// ---- Polling -> WebSocket -------------------------------------------------------------------

TEST_F(SioPollingTest, AttachReframesQueuedOutput) {
  open();
  const std::string raw("\x00\x1e\xfe", 3);
  ASSERT_TRUE(codec_->encode(dataMessage("news", R"({"a":1})"), out_));
  ASSERT_TRUE(codec_->encode(dataMessage("bin", raw, {}, PayloadType::kBinary), out_));
  codec_->encodePing(out_);
  const std::string queued = out_.data;
  out_.data.clear();

  SioProbeCodec probe(wsOptions());
  FakeOut ws_out;
  Status s = codec_->attachTransport(probe, queued, ws_out);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(codec_->transport(), SioTransport::kWebSocket);
  EXPECT_EQ(serverFrames(ws_out.data),
            (Packets{R"(42["news",{"a":1}])", R"(451-["bin",)" + kPlaceholder0 + "]",
                     "bin:" + raw, "2"}));

  // From now on: WebSocket both ways, with the WebSocket transport's shared key.
  ws_out.data.clear();
  Result<size_t> r = codec_->decode(textFrame(R"(42["up",2])"), sink_, ws_out);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(sink_.messages.size(), 1u);
  EXPECT_EQ(render(sink_.messages[0]), "text up [2]");
  ASSERT_TRUE(codec_->encode(dataMessage("n", "1"), ws_out));
  EXPECT_EQ(serverFrames(ws_out.data), Packets{R"(42["n",1])"});
  auto ws = std::make_unique<SioCodec>(settings_, handshakeRequest(), wsOptions());
  SioSink ws_sink;
  FakeOut other;
  ASSERT_TRUE(ws->decode(textFrame("40"), ws_sink, other));
  ws->onOpened(SessionOpened{}, other);
  EXPECT_EQ(codec_->sharedEncodingKey(dataMessage("n", "1")),
            ws->sharedEncodingKey(dataMessage("n", "1")));
  ws_out.data.clear();
  codec_->encodeClose(Errc::kShutdown, "bye", ws_out);
  EXPECT_EQ(serverFrames(ws_out.data), (Packets{"1", "close:1001:bye"}));
}

TEST_F(SioPollingTest, AttachWithNothingQueued) {
  open();
  SioProbeCodec probe(wsOptions());
  FakeOut ws_out;
  ASSERT_TRUE(codec_->attachTransport(probe, "", ws_out));
  EXPECT_TRUE(ws_out.data.empty());
  EXPECT_EQ(codec_->transport(), SioTransport::kWebSocket);
}

TEST_F(SioPollingTest, AttachAdoptsTheProbesLimits) {
  open();
  websocket::WsCodecOptions small = wsOptions();
  small.max_message = 16;
  SioProbeCodec probe(small);
  FakeOut ws_out;
  ASSERT_TRUE(codec_->attachTransport(probe, "", ws_out));
  Result<size_t> r = codec_->decode(textFrame(R"(42["a","0123456789abcdef"])"), sink_, ws_out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
}

TEST_F(SioPollingTest, AttachFailures) {
  open();
  FakeOut ws_out;
  websocket::WsCodec not_a_probe(wsOptions());
  Status s = codec_->attachTransport(not_a_probe, "", ws_out);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInternal);

  SioProbeCodec probe(wsOptions());
  for (const std::string& queued : {std::string("42[]"), std::string(1, kSep) + "9",
                                    std::string(1, kSep) + "b!!"}) {
    s = codec_->attachTransport(probe, queued, ws_out);
    ASSERT_FALSE(s) << queued;
    EXPECT_EQ(s.error().code, Errc::kInternal);
    EXPECT_EQ(codec_->transport(), SioTransport::kPolling) << "a failed attach changes nothing";
  }
  EXPECT_TRUE(ws_out.data.empty());

  ASSERT_TRUE(codec_->attachTransport(probe, "", ws_out));
  s = codec_->attachTransport(probe, "", ws_out);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInternal);

  auto ws = std::make_unique<SioCodec>(settings_, handshakeRequest(), wsOptions());
  s = ws->attachTransport(probe, "", ws_out);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kInternal);
}

// ---- The probe codec ------------------------------------------------------------------------

struct ProbeRun {
  std::vector<TransportStep> steps;
  std::vector<std::string> out;
  std::optional<Errc> error;
  size_t consumed = 0;  // bytes the probe took before it committed or failed
  int peer_closes = 0;
  bool operator==(const ProbeRun&) const = default;
};

void PrintTo(const ProbeRun& run, std::ostream* os) {
  *os << "{steps=" << run.steps.size() << " out=[";
  for (const auto& f : run.out) {
    *os << f << "; ";
  }
  *os << "] error=" << (run.error ? std::string(errcName(*run.error)) : std::string("none"))
      << " consumed=" << run.consumed << " peer_closes=" << run.peer_closes << "}";
}

// Feeds `bytes` in pieces ending at `cuts`, as the core does (unconsumed bytes kept, the next
// piece appended), until the probe commits or fails.
ProbeRun runProbe(std::string_view bytes, const std::vector<size_t>& cuts = {}) {
  SioProbeCodec probe(wsOptions());
  SioSink sink;
  FakeOut out;
  const auto fed = feedInPieces(
      bytes, cuts, [&](std::string_view in) { return probe.decode(in, sink, out); },
      [&] { return probe.committed(); });
  ProbeRun run;
  run.steps = sink.steps;
  run.out = serverFrames(out.data);
  run.peer_closes = static_cast<int>(sink.closes.size());
  run.error = fed.error;
  run.consumed = run.error ? 0 : fed.consumed;
  return run;
}

ProbeRun runProbeAllWays(std::string_view bytes) {
  const ProbeRun whole = runProbe(bytes);
  EXPECT_EQ(whole, runProbe(bytes, everyByte(bytes.size()))) << "byte-by-byte differs";
  for (size_t k = 1; k < bytes.size(); ++k) {
    const ProbeRun split = runProbe(bytes, {k});
    EXPECT_EQ(whole, split) << "split at offset " << k << " differs";
    if (!(whole == split)) {
      break;
    }
  }
  return whole;
}

TEST(SioProbeCodec, ProbeThenCommitStopsRightAfterTheUpgrade) {
  const std::string upgrade = textFrame("2probe") + clientFrame(kFin | kPingOp, "hb") +
                              textFrame("5");
  const std::string session_bytes = textFrame(R"(42["after"])");
  const ProbeRun run = runProbeAllWays(upgrade + session_bytes);
  EXPECT_EQ(run.steps, (std::vector<TransportStep>{TransportStep::kProbe, TransportStep::kCommit}));
  EXPECT_EQ(run.out, (Packets{"3probe", "op10:hb"}));
  EXPECT_FALSE(run.error);
  EXPECT_EQ(run.consumed, upgrade.size()) << "the session's bytes are left for its codec";
}

TEST(SioProbeCodec, CommitWithoutProbe) {
  const ProbeRun run = runProbeAllWays(textFrame("5"));
  EXPECT_EQ(run.steps, std::vector<TransportStep>{TransportStep::kCommit});
  EXPECT_TRUE(run.out.empty());
}

TEST(SioProbeCodec, RepeatedProbesAreAnswered) {
  const ProbeRun run = runProbeAllWays(textFrame("2probe") + textFrame("2probe"));
  EXPECT_EQ(run.steps, (std::vector<TransportStep>{TransportStep::kProbe, TransportStep::kProbe}));
  EXPECT_EQ(run.out, (Packets{"3probe", "3probe"}));
}

TEST(SioProbeCodec, AnythingElseFails) {
  for (const std::string& bytes :
       {textFrame("2"), textFrame("4hello"), textFrame("3probe"), textFrame("6"),
        textFrame(R"(42["early"])"), clientFrame(kFin | kBinaryOp, "5"),
        textFrame("2probe") + textFrame("1")}) {
    const ProbeRun run = runProbeAllWays(bytes);
    EXPECT_EQ(run.error, Errc::kProtocolError);
    EXPECT_TRUE(run.steps.empty() || run.steps == std::vector<TransportStep>{
                                                      TransportStep::kProbe});
  }
}

TEST(SioProbeCodec, WebSocketCloseFromClient) {
  const ProbeRun run = runProbeAllWays(textFrame("2probe") +
                                       clientFrame(kFin | kCloseOp, closePayload(1000)));
  EXPECT_EQ(run.steps, std::vector<TransportStep>{TransportStep::kProbe});
  EXPECT_EQ(run.out, (Packets{"3probe", "close:1000:"}));
  EXPECT_EQ(run.peer_closes, 1);
}

TEST(SioProbeCodec, EncodeWritesNothingAndCloseIsAFrame) {
  SioProbeCodec probe(wsOptions());
  FakeOut out;
  ASSERT_TRUE(probe.encode(dataMessage("x", "1"), out));
  EXPECT_TRUE(out.data.empty());
  probe.encodeClose(Errc::kNotFound, "session gone", out);
  const auto frames = serverFrames(out.data);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].substr(0, 6), "close:");
}

TEST(SioProbeCodec, AfterCommitNothingIsConsumed) {
  SioProbeCodec probe(wsOptions());
  SioSink sink;
  FakeOut out;
  const std::string more = textFrame(R"(42["x"])");
  Result<size_t> r = probe.decode(textFrame("5") + more, sink, out);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, textFrame("5").size());
  r = probe.decode(more, sink, out);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 0u);
}

}  // namespace
}  // namespace imgate::mod::socketio
