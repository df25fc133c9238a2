// SPDX-License-Identifier: Apache-2.0
// The "imgate.v1" envelope: encoder and decoder on their own, then through WsCodec (masked
// client frames split at every offset, shared encodings) and the handshake.
#include "modules/proto/websocket/ws_envelope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "imgate/sdk/module.h"
#include "modules/proto/websocket/ws_codec.h"
#include "modules/proto/websocket/ws_handshake.h"
#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

// Defined by IMGATE_MODULE in ws_module.cc.
const imgate::ModuleFactory& imgate_module_proto_websocket();

namespace imgate::mod::websocket::testing {
namespace {

constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kClose = 0x8;

Message push(std::string payload, PayloadType type = PayloadType::kText) {
  Message m;
  m.type = type;
  m.payload = makeBytes(std::move(payload));
  return m;
}

Message sequenced(std::string payload) {
  Message m = push(std::move(payload));
  m.stream = "room:lobby";
  m.epoch = 0x9f3a0c11d2e4b5a6;
  m.seq = 42;
  m.reliable = true;
  m.id = "m1";
  m.event = "chat";
  return m;
}

Message ack(std::string status, std::string body, std::string reason = {}) {
  Message m;
  m.kind = MessageKind::kAck;
  m.id = "c1";
  m.event = "chat";
  m.ts_ms = 1700000000123;
  if (!status.empty()) {
    m.meta.emplace_back("status", std::move(status));
  }
  if (!reason.empty()) {
    m.meta.emplace_back("reason", std::move(reason));
  }
  m.payload = makeBytes(std::move(body));
  return m;
}

// Every field a decoded message can carry, in one comparable line.
std::string describe(const Message& m) {
  std::string s;
  s += std::to_string(static_cast<int>(m.kind)) + "|";
  s += m.type == PayloadType::kBinary ? "bin|" : "text|";
  s += m.event + "|" + m.id + "|" + m.stream + "|" + std::to_string(m.seq) + "|";
  s += std::to_string(static_cast<int>(m.to_kind)) + "|" + m.to + "|";
  for (const auto& [k, v] : m.meta) {
    s += k + "=" + v + ";";
  }
  s += "|";
  s += m.payload ? std::string(m.data()) : std::string("<null>");
  return s;
}

std::string decoded(std::string text) {
  Result<Uplink> r = decodeEnvelope(std::move(text));
  if (!r) {
    return "error: " + r.error().message;
  }
  if (r->kind == Uplink::Kind::kPing) {
    return "ping";
  }
  return describe(r->message);
}

// ---- Encoder --------------------------------------------------------------------------------

TEST(WsEnvelopeTest, EncodesEveryDownlinkShape) {
  struct Case {
    std::string name;
    Message message;
    std::string json;
  };
  std::vector<Case> cases;
  cases.push_back({"bare text push", push("hi"), R"({"t":"push","data":"hi"})"});
  cases.push_back({"empty push", push(""), R"({"t":"push","data":""})"});
  cases.push_back({"sequenced reliable push", sequenced("hello"),
                   R"({"t":"push","stream":"room:lobby","epoch":"9f3a0c11d2e4b5a6","seq":42,)"
                   R"("ack":true,"id":"m1","event":"chat","data":"hello"})"});
  {
    Message m = sequenced("x");
    m.reliable = false;
    m.epoch = 0;
    m.stream = "user";
    m.seq = 1;
    cases.push_back({"unreliable, epoch 0", m,
                     R"({"t":"push","stream":"user","epoch":"0","seq":1,"id":"m1",)"
                     R"("event":"chat","data":"x"})"});
  }
  {
    Message m = push("\x00\x01\xff", PayloadType::kBinary);
    m.payload = makeBytes(std::string("\x00\x01\xff", 3));
    m.event = "blob";
    cases.push_back({"binary push", m, R"({"t":"push","event":"blob","data_base64":"AAH/"})"});
  }
  {
    Message m = push(R"({"room":"r"})");
    m.kind = MessageKind::kControl;
    m.event = "kick";
    cases.push_back(
        {"control", m, R"({"t":"control","event":"kick","data":"{\"room\":\"r\"}"})"});
  }
  {
    Message m = push("online");
    m.kind = MessageKind::kPresence;
    m.event = "presence";
    m.stream = "room:a";
    m.epoch = 1;
    m.seq = 3;
    cases.push_back({"presence", m,
                     R"({"t":"presence","stream":"room:a","epoch":"1","seq":3,)"
                     R"("event":"presence","data":"online"})"});
  }
  {
    Message m;
    m.kind = MessageKind::kControl;
    m.event = "read";
    m.stream = "user";
    m.seq = 7;
    m.meta.emplace_back("device", "phone");
    m.payload = makeBytes("");
    cases.push_back({"read mark", m, R"({"t":"read","stream":"user","seq":7,"device":"phone"})"});
  }
  cases.push_back({"ack ok, no body", ack("ok", ""),
                   R"({"t":"ack","id":"c1","status":"ok","ts":1700000000123,"event":"chat"})"});
  cases.push_back({"ack without status is ok", ack("", ""),
                   R"({"t":"ack","id":"c1","status":"ok","ts":1700000000123,"event":"chat"})"});
  cases.push_back({"ack ok with reply", ack("ok", R"({"stored":true})"),
                   R"({"t":"ack","id":"c1","status":"ok","ts":1700000000123,"event":"chat",)"
                   R"("data":"{\"stored\":true}"})"});
  cases.push_back({"ack failed", ack("unavailable", "", "backend \"x\" down"),
                   R"({"t":"ack","id":"c1","status":"unavailable",)"
                   R"("reason":"backend \"x\" down","ts":1700000000123,"event":"chat"})"});
  cases.push_back({"ack failed without reason", ack("permission_denied", "no"),
                   R"({"t":"ack","id":"c1","status":"permission_denied","reason":"",)"
                   R"("ts":1700000000123,"event":"chat","data":"no"})"});
  {
    Message m = ack("ok", std::string("\x01\x02", 2));
    m.type = PayloadType::kBinary;
    m.id.clear();
    m.event.clear();
    m.ts_ms = 0;
    cases.push_back({"ack, binary reply, no id", m,
                     R"({"t":"ack","status":"ok","ts":0,"data_base64":"AQI="})"});
  }
  {
    Message m =
        push(std::string("q\" b\\ \b \f \n \r \t \x01 \x1f \x7f / \xc3\xa9 \xf0\x9f\x98\x80"));
    m.id = "i\n";
    cases.push_back({"escaping as JSON.stringify", m,
                     "{\"t\":\"push\",\"id\":\"i\\n\",\"data\":\"q\\\" b\\\\ \\b \\f \\n \\r \\t "
                     "\\u0001 \\u001f \x7f / \xc3\xa9 \xf0\x9f\x98\x80\"}"});
  }
  {
    // Text frames must be valid UTF-8 (RFC 6455 §8.1), so bytes a JavaScript string could not
    // hold become U+FFFD rather than reaching the browser.
    Message m = push(std::string("a\xff b\xe2\x82 c\xc3\xa9", 10));
    m.event = std::string("\xc0\xaf", 2);
    cases.push_back({"invalid UTF-8 as U+FFFD", m,
                     "{\"t\":\"push\",\"event\":\"\xef\xbf\xbd\xef\xbf\xbd\","
                     "\"data\":\"a\xef\xbf\xbd b\xef\xbf\xbd c\xc3\xa9\"}"});
  }
  for (const Case& c : cases) {
    EXPECT_EQ(encodeEnvelope(c.message), c.json) << c.name;
  }
}

TEST(WsEnvelopeTest, EncodesWelcome) {
  SessionOpened opened;
  opened.session_id = 18446744073709551615u;
  opened.server_time_ms = 1700000000000;
  opened.idle_timeout = std::chrono::milliseconds(120000);
  opened.ping_interval = std::chrono::milliseconds(0);
  opened.identity.app = "demo";
  opened.identity.user = "u\"1";
  opened.identity.device = "web";
  EXPECT_EQ(encodeWelcome(opened),
            R"({"t":"welcome","session":"18446744073709551615","app":"demo","user":"u\"1",)"
            R"("device":"web","server_time":1700000000000,"idle_timeout":120000,)"
            R"("ping_interval":0,"streams":{}})");

  opened.session_id = 7;
  opened.streams.push_back({"user", 0xabc, 10, StreamStart::Outcome::kRecovered, 3});
  opened.streams.push_back({"room:lobby", 0, 0, StreamStart::Outcome::kFresh, 0});
  opened.streams.push_back({"all", 0xffffffffffffffff, 99, StreamStart::Outcome::kImpossible, 0});
  EXPECT_EQ(encodeWelcome(opened),
            R"({"t":"welcome","session":"7","app":"demo","user":"u\"1","device":"web",)"
            R"("server_time":1700000000000,"idle_timeout":120000,"ping_interval":0,"streams":{)"
            R"("user":{"epoch":"abc","seq":10,"recovery":"recovered","replayed":3},)"
            R"("room:lobby":{"epoch":"0","seq":0,"recovery":"fresh","replayed":0},)"
            R"("all":{"epoch":"ffffffffffffffff","seq":99,"recovery":"impossible",)"
            R"("replayed":0}}})");
}

// ---- Decoder --------------------------------------------------------------------------------

TEST(WsEnvelopeTest, DecodesEveryClientMessage) {
  struct Case {
    std::string json;
    std::string expected;  // describe() of the message, or "ping"
  };
  const std::vector<Case> cases = {
      {R"({"t":"msg","id":"c1","event":"chat","data":"hi"})",
       "0|text|chat|c1||0|0||ack_required=1;|hi"},
      {R"({"t":"msg","data_base64":"AAH/","event":"blob"})", std::string("0|bin|blob|||0|0|||") +
                                                                 std::string("\x00\x01\xff", 3)},
      {R"({"t":"msg"})", "0|text||||0|0|||"},
      {R"({"t":"msg","data":"a\"b\\c\n\u00e9\ud83d\ude00\u0000"})",
       std::string("0|text||||0|0|||a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80") + std::string(1, '\0')},
      {R"({"t":"msg","id":"","data":"x"})", "0|text||||0|0|||x"},  // no id: no ack wanted
      {R"({"t":"ack","stream":"user","seq":12})", "1|text|||user|12|0|||"},
      {R"({"t":"ack","seq":1})", "1|text||||1|0|||"},
      {R"({"t":"ack","stream":"room:lobby","seq":9007199254740992})",
       "1|text|||room:lobby|9007199254740992|0|||"},
      {R"({"t":"read","stream":"user","seq":5})", "2|text|read||user|5|0|||"},
      {R"({"t":"read","seq":5})", "2|text|read|||5|0|||"},
      {R"({"t":"join","room":"lobby","id":"j1"})", "2|text|join|j1||0|3|lobby||"},
      {R"({"t":"leave","room":"lobby"})", "2|text|leave|||0|3|lobby||"},
      {R"({"t":"ping"})", "ping"},
      // Whitespace, key order and unknown keys (any value, nested) do not matter.
      {" \r\n\t{ \"data\" : \"x\" , \"t\" : \"msg\" , \"v\" : [1, {\"a\": null}, true] } \n",
       "0|text||||0|0|||x"},
      {R"({"x":{"t":"nope","seq":-1},"t":"ack","seq":2,"ts":1.5})", "1|text||||2|0|||"},
      // Known keys that the type does not use are ignored (when well typed).
      {R"({"t":"ping","room":"r","seq":3})", "ping"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(decoded(c.json), c.expected) << c.json;
  }
  // Payloads are never null.
  Result<Uplink> r = decodeEnvelope(R"({"t":"ack","seq":1})");
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.payload, nullptr);
}

TEST(WsEnvelopeTest, RefusesMalformedEnvelopes) {
  struct Case {
    std::string json;
    std::string reason;  // a substring of the error message
  };
  std::string deep = R"({"t":"ping","x":)";
  for (uint32_t i = 0; i < kMaxEnvelopeDepth; ++i) {
    deep += "[";
  }
  deep += std::string(kMaxEnvelopeDepth, ']') + "}";
  const std::vector<Case> cases = {
      {"", "invalid json"},
      {"   ", "invalid json"},
      {"nope", "invalid json"},
      {R"({"t":"ping")", "invalid json"},
      {R"({"t":"ping"} {})", "invalid json"},
      {R"({"t":"ping",})", "invalid json"},
      {R"({'t':'ping'})", "invalid json"},
      {R"({"t":"ping"} // c)", "invalid json"},
      {std::string("{\"t\":\"ping\"}\0", 13), "trailing bytes"},
      {std::string("{\"t\":\"ping\"}\0{}", 15), "trailing bytes"},
      {std::string("{\"t\":\"ms\0g\"}", 12), "invalid json"},
      {"{\"t\":\"msg\",\"data\":\"a\nb\"}", "invalid json"},  // raw control character
      {"{\"t\":\"msg\",\"data\":\"\xff\"}", "invalid json"},   // invalid UTF-8
      {"{\"t\":\"msg\",\"data\":\"\xef", "invalid json"},      // truncated UTF-8 at the end
      {R"(["t","ping"])", "json object"},
      {R"("ping")", "json object"},
      {"42", "json object"},
      {"null", "json object"},
      {"{}", "missing \"t\""},
      {R"({"type":"ping"})", "missing \"t\""},
      {R"({"t":"pong"})", "unknown \"t\" \"pong\""},
      {R"({"t":""})", "unknown \"t\""},
      {R"({"t":"MSG"})", "unknown \"t\""},
      {R"({"t":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})",
       "unknown \"t\" \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""},  // quoted up to 32 bytes
      {R"({"t":1})", "\"t\" must be a string"},
      {R"({"t":null})", "\"t\" must be a string"},
      {R"({"t":["msg"]})", "\"t\" must be a string"},
      {R"({"t":"msg","t":"msg"})", "duplicate \"t\""},
      {R"({"t":"msg","id":1})", "\"id\" must be a string"},
      {R"({"t":"msg","event":{}})", "\"event\" must be a string"},
      {R"({"t":"msg","data":{"a":1}})", "\"data\" must be a string"},
      {R"({"t":"msg","data":null})", "\"data\" must be a string"},
      {R"({"t":"msg","data_base64":true})", "\"data_base64\" must be a string"},
      {R"({"t":"msg","data":"a","data_base64":"YQ=="})", "together"},
      {R"({"t":"msg","data_base64":"YQ="})", "not valid base64"},
      {R"({"t":"msg","data_base64":"Y Q=="})", "not valid base64"},
      {R"({"t":"msg","data_base64":"YR=="})", "not valid base64"},  // non-canonical
      {R"({"t":"msg","data":"\ud800"})", "surrogate"},  // rapidjson refuses a lone high one
      {R"({"t":"msg","data":"\udc00x"})", "\"data\" is not valid utf-8"},
      {R"({"t":"msg","id":"\u0001"})", "control character in \"id\""},
      {R"({"t":"msg","event":"a\nb"})", "control character in \"event\""},
      {R"({"t":"join","room":"a\u0000b"})", "control character in \"room\""},
      {R"({"t":"ack","stream":"\t","seq":1})", "control character in \"stream\""},
      {R"({"t":"ack"})", "\"ack\" without \"seq\""},
      {R"({"t":"read","stream":"user"})", "\"read\" without \"seq\""},
      {R"({"t":"ack","seq":0})", "1..2^53"},
      {R"({"t":"ack","seq":-1})", "1..2^53"},
      {R"({"t":"ack","seq":-0})", "1..2^53"},
      {R"({"t":"ack","seq":1.0})", "1..2^53"},
      {R"({"t":"ack","seq":1e3})", "1..2^53"},
      {R"({"t":"ack","seq":9007199254740993})", "1..2^53"},
      {R"({"t":"ack","seq":18446744073709551616})", "1..2^53"},
      {R"({"t":"ack","seq":"5"})", "1..2^53"},
      {R"({"t":"ack","seq":[5]})", "1..2^53"},
      {R"({"t":"ack","seq":1,"seq":2})", "duplicate \"seq\""},
      {R"({"t":"ack","stream":5,"seq":1})", "\"stream\" must be a string"},
      {R"({"t":"join"})", "\"join\" without \"room\""},
      {R"({"t":"leave","room":""})", "\"leave\" without \"room\""},
      {R"({"t":"join","room":["a"]})", "\"room\" must be a string"},
      {deep, "nested too deeply"},
  };
  for (const Case& c : cases) {
    Result<Uplink> r = decodeEnvelope(c.json);
    ASSERT_FALSE(r.has_value()) << c.json;
    EXPECT_EQ(r.error().code, Errc::kInvalidPayload) << c.json;
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos)
        << c.json << " -> " << r.error().message;
    EXPECT_LE(r.error().message.size(), kMaxCloseReason) << c.json;
  }
  // One level less than the limit is fine.
  std::string ok = R"({"t":"ping","x":)";
  ok += std::string(kMaxEnvelopeDepth - 1, '[') + std::string(kMaxEnvelopeDepth - 1, ']') + "}";
  EXPECT_EQ(decoded(ok), "ping");
}

// ---- Through WsCodec ------------------------------------------------------------------------

WsCodecOptions envelopeOptions() {
  WsCodecOptions o;
  o.envelope = true;
  return o;
}

struct EnvelopeRun {
  std::vector<std::string> messages;
  std::string out;
  std::optional<Errc> error;
  size_t leftover = 0;
  bool operator==(const EnvelopeRun&) const = default;
};

// Feeds `bytes` to a fresh envelope codec in pieces ending at each of `cuts`, as the core does.
EnvelopeRun runEnvelope(const WsCodecOptions& options, std::string_view bytes,
                        const std::vector<size_t>& cuts = {}) {
  const WsFeed feed = feedFreshCodec(options, bytes, cuts);
  EnvelopeRun run;
  run.error = feed.fed.error;
  for (const Message& m : feed.sink.messages) {
    run.messages.push_back(describe(m));
  }
  run.out = feed.out.data;
  run.leftover = run.error ? 0 : feed.fed.leftover;
  return run;
}

EnvelopeRun runAllWays(const WsCodecOptions& options, std::string_view bytes) {
  const EnvelopeRun whole = runEnvelope(options, bytes);
  EXPECT_TRUE(whole == runEnvelope(options, bytes, everyByte(bytes.size())))
      << "byte-by-byte feed differs";
  for (size_t k = 1; k < bytes.size(); ++k) {
    const EnvelopeRun split = runEnvelope(options, bytes, {k});
    EXPECT_TRUE(whole == split) << "split at offset " << k << " differs";
    if (!(whole == split)) {
      break;
    }
  }
  return whole;
}

TEST(WsEnvelopeTest, CodecDecodesEnvelopesWholeBytewiseAndEverySplit) {
  ClientDeflater deflater(false);
  const std::string compressed = deflater.deflateMessage(R"({"t":"read","seq":3})");
  const std::string bytes =
      clientFrame(kFin | kText, R"({"t":"msg","id":"c1","event":"chat","data":"hi"})") +
      clientFrame(kFin | kPing, "p") +
      // A fragmented envelope with a ping in the middle.
      clientFrame(kText, R"({"t":"ack",)") + clientFrame(kFin | kPing, "") +
      clientFrame(kContinuation, R"("stream":"user",)") +
      clientFrame(kFin | kContinuation, R"("seq":12})") +
      clientFrame(kFin | kText, R"({"t":"ping"})") +
      clientFrame(kFin | kText, R"({"t":"join","room":"lobby"})") +
      clientFrame(kFin | kText | kRsv1, compressed) +
      clientFrame(kFin | kText, R"({"t":"msg","data_base64":"AAE="})");
  WsCodecOptions options = envelopeOptions();
  options.deflate.enabled = true;
  const EnvelopeRun run = runAllWays(options, bytes);
  EXPECT_FALSE(run.error.has_value());
  EXPECT_EQ(run.leftover, 0u);
  EXPECT_EQ(run.messages,
            (std::vector<std::string>{"0|text|chat|c1||0|0||ack_required=1;|hi",
                                      "1|text|||user|12|0|||", "2|text|join|||0|3|lobby||",
                                      "2|text|read|||3|0|||",
                                      "0|bin||||0|0|||" + std::string("\x00\x01", 2)}));
  // Pong frames for the two WebSocket pings, then the envelope pong.
  EXPECT_EQ(run.out, std::string("\x8A\x01p\x8A\x00", 5) + serverFrame(Opcode::kText,
                                                                         R"({"t":"pong"})"));
}

TEST(WsEnvelopeTest, CodecRefusesBadEnvelopesWholeBytewiseAndEverySplit) {
  const std::string good = clientFrame(kFin | kText, R"({"t":"read","seq":1})");
  const std::vector<std::string> bad = {
      clientFrame(kFin | kBinary, R"({"t":"ping"})"),
      clientFrame(kBinary, "a") + clientFrame(kFin | kContinuation, "b"),
      clientFrame(kFin | kText, "not json"),
      clientFrame(kFin | kText, R"({"t":"msg","data":1})"),
      clientFrame(kFin | kText, R"({"t":"ack","seq":0})"),
      clientFrame(kFin | kText, ""),
  };
  for (const std::string& frame : bad) {
    const EnvelopeRun run = runAllWays(envelopeOptions(), good + frame + good);
    EXPECT_EQ(run.error, Errc::kInvalidPayload);
    EXPECT_EQ(run.messages, std::vector<std::string>{"2|text|read|||1|0|||"});
  }
  // The binary message is refused from its first frame header, before its payload arrives.
  WsCodec codec(envelopeOptions());
  FakeSink sink;
  FakeOut out;
  const std::string binary = clientFrame(kFin | kBinary, std::string(1000, 'x'));
  Result<size_t> r = codec.decode(binary.substr(0, 2), sink, out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidPayload);
  codec.encodeClose(r.error().code, r.error().message, out);
  const auto frames = parseServerFrames(out.data);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kClose);
  EXPECT_EQ(frames[0].payload.substr(0, 2), closePayload(1007));
}

TEST(WsEnvelopeTest, MaxMessageAppliesToTheEnvelope) {
  WsCodecOptions options = envelopeOptions();
  options.max_message = 20;
  const std::string fits = R"({"t":"read","seq":1})";  // 20 bytes
  ASSERT_EQ(fits.size(), 20u);
  EXPECT_FALSE(runEnvelope(options, clientFrame(kFin | kText, fits)).error.has_value());
  EXPECT_EQ(runEnvelope(options, clientFrame(kFin | kText, R"({"t":"read","seq":12})")).error,
            Errc::kMessageTooBig);
}

TEST(WsEnvelopeTest, EnvelopePongRespectsBackpressure) {
  WsCodec codec(envelopeOptions());
  FakeSink sink;
  FakeOut out;
  out.extra_pending = kPongBackpressureLimit + 1;
  ASSERT_TRUE(codec.decode(clientFrame(kFin | kText, R"({"t":"ping"})"), sink, out));
  EXPECT_TRUE(out.data.empty());
  EXPECT_TRUE(sink.messages.empty());
}

TEST(WsEnvelopeTest, CodecEncodesEnvelopesAsTextFrames) {
  WsCodec codec(envelopeOptions());
  EXPECT_TRUE(codec.acksDownlink());
  EXPECT_FALSE(WsCodec(WsCodecOptions{}).acksDownlink());
  FakeOut out;
  ASSERT_TRUE(codec.encode(push(std::string("\x00\xff", 2), PayloadType::kBinary), out));
  ASSERT_TRUE(codec.encode(ack("ok", ""), out));  // plain mode sends nothing for this one
  ASSERT_TRUE(codec.encode(sequenced(std::string(3000, 'a')), out));
  const auto frames = parseServerFrames(out.data);
  ASSERT_EQ(frames.size(), 3u);
  for (const ServerFrame& f : frames) {
    EXPECT_EQ(f.opcode, kText);
    EXPECT_TRUE(f.fin);
    EXPECT_FALSE(f.rsv1);
  }
  EXPECT_EQ(frames[0].payload, R"({"t":"push","data_base64":"AP8="})");
  EXPECT_EQ(frames[1].payload, encodeEnvelope(ack("ok", "")));
  EXPECT_EQ(frames[2].payload, encodeEnvelope(sequenced(std::string(3000, 'a'))));

  // Compressed when deflate was negotiated and the payload reaches compress_min_size.
  WsCodecOptions deflate = deflateOptions();
  deflate.envelope = true;
  WsCodec compressing(deflate);
  FakeOut zout;
  ASSERT_TRUE(compressing.encode(sequenced(std::string(500, 'z')), zout));
  ASSERT_TRUE(compressing.encode(push("hi"), zout));
  const auto zframes = parseServerFrames(zout.data);
  ASSERT_EQ(zframes.size(), 2u);
  EXPECT_TRUE(zframes[0].rsv1);
  ClientInflater inflater(true);
  EXPECT_EQ(inflater.inflateMessage(zframes[0].payload),
            encodeEnvelope(sequenced(std::string(500, 'z'))));
  EXPECT_FALSE(zframes[1].rsv1);
  EXPECT_EQ(zframes[1].payload, R"({"t":"push","data":"hi"})");
}

TEST(WsEnvelopeTest, WelcomeOnlyInEnvelopeMode) {
  SessionOpened opened;
  opened.session_id = 5;
  opened.identity.user = "u1";
  opened.streams.push_back({"user", 0x10, 4, StreamStart::Outcome::kFresh, 0});
  WsCodec codec(envelopeOptions());
  FakeOut out;
  codec.onOpened(opened, out);
  const auto frames = parseServerFrames(out.data);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, kText);
  EXPECT_EQ(frames[0].payload, encodeWelcome(opened));

  WsCodec plain(WsCodecOptions{});
  FakeOut plain_out;
  plain.onOpened(opened, plain_out);
  EXPECT_TRUE(plain_out.data.empty());
}

TEST(WsEnvelopeTest, SharedEncodingsEqualPerSessionOnes) {
  WsCodecOptions deflate = deflateOptions();
  deflate.envelope = true;
  WsCodec envelope(envelopeOptions());
  WsCodec envelope2(envelopeOptions());
  WsCodec envelope_deflate(deflate);
  WsCodec plain(WsCodecOptions{});
  WsCodec plain_deflate(deflateOptions());

  const std::vector<Message> messages = {
      push("hi"), push(std::string(200, 'b'), PayloadType::kBinary), sequenced("small"),
      sequenced(std::string(2000, 'x'))};
  for (const Message& m : messages) {
    const uint64_t key = envelope.sharedEncodingKey(m);
    EXPECT_NE(key, 0u);
    EXPECT_EQ(key, envelope2.sharedEncodingKey(m));
    EXPECT_NE(key, plain.sharedEncodingKey(m));
    EXPECT_NE(key, plain_deflate.sharedEncodingKey(m));
    for (WsCodec* codec : {&envelope, &envelope_deflate}) {
      FakeOut out;
      ASSERT_TRUE(codec->encode(m, out));
      const Bytes shared = codec->encodeShared(m);
      ASSERT_NE(shared, nullptr);
      EXPECT_EQ(*shared, out.data);
    }
  }
  // Text and binary payloads give the same kind of frame in envelope mode.
  EXPECT_EQ(envelope.sharedEncodingKey(push("x")),
            envelope.sharedEncodingKey(push("x", PayloadType::kBinary)));
  // Compressed and uncompressed envelopes do not share; small ones do.
  const Message big = sequenced(std::string(200, 'c'));
  EXPECT_NE(envelope.sharedEncodingKey(big), envelope_deflate.sharedEncodingKey(big));
  EXPECT_EQ(envelope.sharedEncodingKey(push("x")), envelope_deflate.sharedEncodingKey(push("x")));
  // After a close nothing is shared.
  FakeOut out;
  envelope2.encodeClose(Errc::kNone, "", out);
  EXPECT_EQ(envelope2.sharedEncodingKey(push("x")), 0u);
}

// ---- Handshake ------------------------------------------------------------------------------

HttpRequest upgradeWith(std::string protocols) {
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

std::optional<std::string> echoedProtocol(const HttpResponse& r) {
  for (const HttpHeader& h : r.headers) {
    if (http_detail::iequals(h.name, "sec-websocket-protocol")) {
      return h.value;
    }
  }
  return std::nullopt;
}

TEST(WsEnvelopeTest, HandshakeNegotiatesTheEnvelope) {
  WsSettings settings;
  settings.envelope = true;
  settings.subprotocols = {"chat.v1"};
  struct Case {
    std::string offers;
    bool envelope_setting;
    std::string selected;
  };
  const std::vector<Case> cases = {
      {"imgate.v1", true, "imgate.v1"},
      {"chat.v1, imgate.v1", true, "imgate.v1"},  // wins over the client's order
      {"bearer.eyJ, imgate.v1, chat.v1", true, "imgate.v1"},
      {"chat.v1", true, "chat.v1"},
      {"imgate.v2, Imgate.v1", true, ""},
      {"", true, ""},
      {"imgate.v1", false, ""},
      {"chat.v1, imgate.v1", false, "chat.v1"},
      {"imgate.v1, chat.v1", false, "chat.v1"},
  };
  for (const Case& c : cases) {
    settings.envelope = c.envelope_setting;
    auto result = evaluateUpgrade(upgradeWith(c.offers), settings);
    ASSERT_TRUE(result.has_value()) << c.offers;
    EXPECT_EQ(result->subprotocol, c.selected) << c.offers;
    EXPECT_EQ(result->codec.envelope, c.selected == "imgate.v1") << c.offers;
    const auto echoed = echoedProtocol(result->response);
    if (c.selected.empty()) {
      EXPECT_FALSE(echoed.has_value()) << c.offers;
    } else {
      EXPECT_EQ(echoed, c.selected) << c.offers;
    }
  }
  // WsSettings' own default is off, for protocols layered on this handshake (Socket.IO).
  auto layered = evaluateUpgrade(upgradeWith("imgate.v1"), WsSettings{});
  ASSERT_TRUE(layered.has_value());
  EXPECT_FALSE(layered->codec.envelope);
  EXPECT_TRUE(layered->subprotocol.empty());
}

TEST(WsEnvelopeTest, ModuleKeyEnvelope) {
  const auto& factory = static_cast<const ProtocolFactory&>(imgate_module_proto_websocket());
  const std::span<const ParamSpec> schema = factory.schema();
  const auto it = std::find_if(schema.begin(), schema.end(),
                               [](const ParamSpec& s) { return s.key == "envelope"; });
  ASSERT_NE(it, schema.end());
  EXPECT_EQ(it->type, ParamType::kBool);
  EXPECT_EQ(it->default_value, "true");
  FakeLoadContext context;
  {
    FakeConfigView view(factory.schema(), {}, {{"subprotocols", {"chat.v1"}}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    EXPECT_TRUE(config.settings().envelope);
    auto exchange = std::make_shared<FakeHttpExchange>(upgradeWith("chat.v1, imgate.v1"));
    config.onHttpRequest(exchange);
    ASSERT_TRUE(exchange->upgraded);
    EXPECT_EQ(echoedProtocol(exchange->accept), "imgate.v1");
    EXPECT_EQ(exchange->subprotocols, (std::vector<std::string>{"chat.v1", "imgate.v1"}));
    ASSERT_TRUE(exchange->codec);
    EXPECT_TRUE(exchange->codec->acksDownlink());
    FakeSink sink;
    FakeOut out;
    ASSERT_TRUE(exchange->codec->decode(
        clientFrame(kFin | kText, R"({"t":"msg","id":"a","data":"x"})"), sink, out));
    ASSERT_EQ(sink.messages.size(), 1u);
    EXPECT_EQ(sink.messages[0].id, "a");

    auto plain = std::make_shared<FakeHttpExchange>(upgradeWith("chat.v1"));
    config.onHttpRequest(plain);
    ASSERT_TRUE(plain->codec);
    EXPECT_FALSE(plain->codec->acksDownlink());
  }
  {
    FakeConfigView view(factory.schema(), {{"envelope", "false"}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    EXPECT_FALSE(config.settings().envelope);
    auto exchange = std::make_shared<FakeHttpExchange>(upgradeWith("imgate.v1"));
    config.onHttpRequest(exchange);
    ASSERT_TRUE(exchange->codec);
    EXPECT_FALSE(echoedProtocol(exchange->accept).has_value());
    EXPECT_FALSE(exchange->codec->acksDownlink());
  }
  {
    // Listing the envelope subprotocol while the envelope is off would echo it to clients that
    // then speak a protocol the server does not.
    FakeConfigView view(factory.schema(), {{"envelope", "false"}},
                        {{"subprotocols", {"chat.v1", "imgate.v1"}}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_FALSE(compiled.has_value());
    EXPECT_EQ(compiled.error().code, Errc::kInvalidConfig);
    EXPECT_NE(compiled.error().message.find("subprotocols"), std::string::npos);
  }
}

}  // namespace
}  // namespace imgate::mod::websocket::testing
