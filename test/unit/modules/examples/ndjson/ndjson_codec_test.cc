// SPDX-License-Identifier: Apache-2.0
#include "modules/examples/ndjson/ndjson_codec.h"

#include <gtest/gtest.h>
#include <rapidjson/reader.h>

#include <optional>
#include <string>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/module.h"

// Defined by IMGATE_MODULE in ndjson_module.cc.
const imgate::ModuleFactory& imgate_module_example_ndjson();

namespace imgate::mod::ndjson {
namespace {

using namespace std::string_literals;  // NOLINT: "\0" in test inputs

struct Sink final : CodecSink {
  std::vector<Message> messages;
  std::vector<HttpRequest> hellos;
  std::vector<std::pair<Errc, std::string>> peer_closes;
  int activity = 0;
  void onMessage(Message&& m) override {
    EXPECT_NE(m.payload, nullptr);
    messages.push_back(std::move(m));
  }
  void onPeerClose(Errc code, std::string_view reason) override {
    peer_closes.emplace_back(code, std::string(reason));
  }
  void onActivity() override { ++activity; }
  void onHello(HttpRequest hello) override { hellos.push_back(std::move(hello)); }
};

struct Out final : OutBuffer {
  std::string bytes;
  int shared = 0;
  size_t extra_pending = 0;  // pretends the socket is slow
  void append(std::string_view b) override { bytes.append(b); }
  void appendShared(Bytes b) override {
    ++shared;
    bytes.append(*b);
  }
  size_t pending() const override { return bytes.size() + extra_pending; }
};

// Everything observable from one decode run, in a comparable form.
struct DecodeRun {
  std::vector<std::string> messages;  // describe() of each message
  std::vector<std::string> hellos;
  std::string out;
  int activity = 0;
  std::optional<Error> error;
  std::vector<Message> raw;
};

std::string describe(const Message& m) {
  return std::to_string(static_cast<int>(m.kind)) + "|" +
         std::to_string(static_cast<int>(m.type)) + "|event=" + m.event + "|id=" + m.id +
         "|to=" + std::to_string(static_cast<int>(m.to_kind)) + ":" + m.to +
         "|seq=" + std::to_string(m.seq) + "|data=" + std::string(m.data());
}

std::string describe(const HttpRequest& h) {
  std::string s = h.method + " " + h.target + " path=" + h.path + " query=" + h.query;
  for (const auto& header : h.headers) {
    s += " [" + header.name + ": " + header.value + "]";
  }
  return s;
}

constexpr std::string_view kWelcomeForTest = "{\"type\":\"welcome\"";

// Feeds `input` in pieces ending at `cuts`, keeping unconsumed bytes and opening the session
// after the hello the way the core does (decode stops at the hello; onOpened; decode again).
DecodeRun feed(std::string_view input, const std::vector<size_t>& cuts,
         const NdjsonOptions& options = {}) {
  NdjsonCodec codec(options);
  Sink sink;
  Out out;
  DecodeRun run;
  std::string buffered;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  bool opened = false;
  for (size_t end : ends) {
    buffered.append(input.substr(from, end - from));
    from = end;
    while (!run.error) {
      auto used = codec.decode(buffered, sink, out);
      if (!used) {
        run.error = used.error();
        break;
      }
      EXPECT_LE(*used, buffered.size());
      buffered.erase(0, *used);
      if (!sink.hellos.empty() && !opened) {
        opened = true;
        SessionOpened o;
        o.session_id = 9;
        codec.onOpened(o, out);
        continue;
      }
      break;
    }
    if (run.error) {
      break;
    }
  }
  for (const Message& m : sink.messages) {
    run.messages.push_back(describe(m));
  }
  for (const HttpRequest& h : sink.hellos) {
    run.hellos.push_back(describe(h));
  }
  run.out = out.bytes;
  run.activity = sink.activity;
  run.raw = std::move(sink.messages);
  return run;
}

// Whole, split at every offset, and byte by byte: all must give `want`'s result.
void expectSameAtEverySplit(std::string_view input, const NdjsonOptions& options = {}) {
  const DecodeRun whole = feed(input, {}, options);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    const DecodeRun split = feed(input, {cut}, options);
    EXPECT_EQ(split.messages, whole.messages) << "cut at " << cut;
    EXPECT_EQ(split.hellos, whole.hellos) << "cut at " << cut;
    EXPECT_EQ(split.out, whole.out) << "cut at " << cut;
    EXPECT_EQ(split.error.has_value(), whole.error.has_value()) << "cut at " << cut;
    if (split.error && whole.error) {
      EXPECT_EQ(split.error->code, whole.error->code) << "cut at " << cut;
      EXPECT_EQ(split.error->message, whole.error->message) << "cut at " << cut;
    }
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) {
    every.push_back(i);
  }
  const DecodeRun bytes = feed(input, every, options);
  EXPECT_EQ(bytes.messages, whole.messages);
  EXPECT_EQ(bytes.hellos, whole.hellos);
  EXPECT_EQ(bytes.out, whole.out);
  EXPECT_EQ(bytes.activity, whole.activity);
  EXPECT_EQ(bytes.error.has_value(), whole.error.has_value());
}

const std::string kHello = R"({"type":"hello","token":"t"})"
                           "\n";

Message dataMessage(std::string payload, PayloadType type = PayloadType::kText) {
  Message m;
  m.type = type;
  m.payload = makeBytes(std::move(payload));
  return m;
}

// The line must be exactly one JSON object followed by one "\n".
void expectOneJsonLine(const std::string& line) {
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  // In situ, like the module: rapidjson 1.1.0's DOM trips clang's UBSan (stack.h).
  struct RootHandler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RootHandler> {
    int events = 0;
    bool root_is_object = false;
    bool Default() {
      ++events;
      return true;
    }
    bool StartObject() {
      root_is_object = root_is_object || events == 0;
      return Default();
    }
  } handler;
  std::string copy = line.substr(0, line.size() - 1);
  rapidjson::InsituStringStream stream(copy.data());
  rapidjson::Reader reader;
  const auto result =
      reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag>(stream,
                                                                                        handler);
  EXPECT_FALSE(result.IsError()) << line;
  EXPECT_TRUE(handler.root_is_object) << line;
}

// ---- Decoding ---------------------------------------------------------------------------------

const std::string kConversation =
    "\n"
    R"({"type":"hello","token":"t.k.n","device":"d1","sdk":"x/1.0"})"
    "\r\n"
    R"({"type":"message","event":"chat","id":"c1","to":{"user":"bob"},"data":{"text":"hi"}})"
    "\n"
    R"( { "type" : "message" , "to" : { "room" : "r1" } ,)"
    R"( "data" : [ 1, {"a":"}\"]"}, null ] , "id":"c2" } )"
    "\n"
    R"({"type":"ping"})"
    "\n"
    R"({"type":"message","event":"e","data":"just \"text\" \u00e9"})"
    "\n"
    R"({"type":"message","data":-1.5e3})"
    "\n"
    R"({"type":"message","data":true,"extra":{"ignored":[1,{"x":null}]}})"
    "\n"
    R"({"type":"message"})"
    "\n"
    R"({"type":"pong"})"
    "\n"
    "   \t \n"
    R"({"type":"ack","seq":18446744073709551615,"id":"p9"})"
    "\n";

TEST(NdjsonCodecTest, ConversationDecodesAlikeAtEverySplit) {
  const DecodeRun run = feed(kConversation, {});
  ASSERT_FALSE(run.error) << run.error->message;
  ASSERT_EQ(run.raw.size(), 7u);
  EXPECT_EQ(run.raw[0].kind, MessageKind::kData);
  EXPECT_EQ(run.raw[0].type, PayloadType::kText);
  EXPECT_EQ(run.raw[0].event, "chat");
  EXPECT_EQ(run.raw[0].id, "c1");
  EXPECT_EQ(run.raw[0].to_kind, TargetKind::kUser);
  EXPECT_EQ(run.raw[0].to, "bob");
  EXPECT_EQ(run.raw[0].data(), R"({"text":"hi"})");
  EXPECT_EQ(run.raw[1].id, "c2");
  EXPECT_EQ(run.raw[1].to_kind, TargetKind::kRoom);
  EXPECT_EQ(run.raw[1].to, "r1");
  EXPECT_EQ(run.raw[1].data(), R"([ 1, {"a":"}\"]"}, null ])");  // exactly as sent
  EXPECT_EQ(run.raw[2].event, "e");
  EXPECT_EQ(run.raw[2].data(), R"("just \"text\" \u00e9")");
  EXPECT_EQ(run.raw[3].data(), "-1.5e3");
  EXPECT_EQ(run.raw[4].data(), "true");
  EXPECT_EQ(run.raw[5].data(), "");
  EXPECT_EQ(run.raw[5].to_kind, TargetKind::kNone);
  EXPECT_EQ(run.raw[6].kind, MessageKind::kAck);
  EXPECT_EQ(run.raw[6].seq, UINT64_MAX);
  EXPECT_EQ(run.raw[6].id, "p9");
  EXPECT_EQ(run.activity, 12);  // every line, blank ones included
  ASSERT_EQ(run.hellos.size(), 1u);
  EXPECT_TRUE(run.out.starts_with(kWelcomeForTest)) << run.out;
  EXPECT_TRUE(run.out.ends_with("}\n{\"type\":\"pong\"}\n")) << run.out;
  expectSameAtEverySplit(kConversation);
}

TEST(NdjsonCodecTest, HelloBecomesARequestAndDecodeStopsAfterIt) {
  NdjsonCodec codec({});
  Sink sink;
  Out out;
  const std::string hello = R"({"type":"hello","token":"a.b+c","device":"d 1","sdk":"x/1.0"})"
                            "\n";
  const std::string input = hello + R"({"type":"message"})" + "\n";
  auto used = codec.decode(input, sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, hello.size());
  EXPECT_TRUE(sink.messages.empty());
  ASSERT_EQ(sink.hellos.size(), 1u);
  const HttpRequest& h = sink.hellos[0];
  EXPECT_EQ(h.method, "HELLO");
  EXPECT_EQ(h.path, "/");
  EXPECT_EQ(h.header("authorization"), "Bearer a.b+c");
  EXPECT_EQ(h.header("x-device"), "d 1");
  EXPECT_EQ(h.header("x-sdk-version"), "x/1.0");
  EXPECT_EQ(h.query, "token=a.b%2Bc&device=d%201&sdk_version=x%2F1.0");
  EXPECT_EQ(h.target, "/?" + h.query);
  EXPECT_EQ(h.queryParam("token"), "a.b+c");
  EXPECT_EQ(h.queryParam("device"), "d 1");
  auto rest = codec.decode(std::string_view(input).substr(*used), sink, out);
  ASSERT_TRUE(rest);
  EXPECT_EQ(sink.messages.size(), 1u);
  EXPECT_TRUE(out.bytes.empty());  // nothing is written before onOpened
}

TEST(NdjsonCodecTest, HelloFieldsAreOptional) {
  const DecodeRun run = feed(R"({"type":"hello"})"
                       "\n",
                       {});
  ASSERT_EQ(run.hellos.size(), 1u);
  EXPECT_EQ(run.hellos[0], "HELLO / path=/ query=");
}

TEST(NdjsonCodecTest, PartialLineWaitsForItsNewline) {
  NdjsonCodec codec({});
  Sink sink;
  Out out;
  auto used = codec.decode(R"({"type":"hello"})", sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, 0u);
  EXPECT_TRUE(sink.hellos.empty());
  EXPECT_EQ(sink.activity, 0);
}

struct ErrorCase {
  std::string input;  // after the hello unless `before_hello`
  Errc code;
  std::string reason;  // expected substring
  bool before_hello = false;
};

TEST(NdjsonCodecTest, EveryErrorClosesWithItsCodeAndReason) {
  const std::string bad_to = R"("to" must be {"user":"<id>"} or {"room":"<name>"})";
  const std::vector<ErrorCase> cases = {
      {"not json\n", Errc::kProtocolError, "malformed JSON at byte 1: invalid value"},
      {"{\"type\":\"ping\"\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"ping\"} x\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"ping\"}{}\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"ping\",}\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"message\",\"data\":NaN}\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"message\" /*c*/}\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"message\",\"data\":\"\xff\"}\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"message\",\"data\":\"a\tb\"}\n", Errc::kProtocolError, "malformed JSON"},
      {"{'type':'ping'}\n", Errc::kProtocolError, "malformed JSON"},
      // A UTF-8 lead byte at the very end must not make the validator read past the line.
      {"{\"type\":\"message\",\"d\xEF\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"message\",\"data\":\"\xF0\x9F\n", Errc::kProtocolError, "malformed JSON"},
      {"{\"type\":\"ping\"}\0\n"s, Errc::kProtocolError, "NUL byte in a line"},
      {"[1]\n", Errc::kProtocolError, "a line must be one JSON object"},
      {"\"ping\"\n", Errc::kProtocolError, "a line must be one JSON object"},
      {"42\n", Errc::kProtocolError, "a line must be one JSON object"},
      {"{}\n", Errc::kProtocolError, "missing \"type\""},
      {"{\"type\":1}\n", Errc::kProtocolError, "\"type\" must be a string"},
      {"{\"type\":\"nope\"}\n", Errc::kProtocolError, "unknown type \"nope\""},
      {"{\"type\":\"ping\",\"type\":\"ping\"}\n", Errc::kProtocolError, "duplicate key \"type\""},
      {"{\"type\":\"message\",\"data\":1,\"data\":2}\n", Errc::kProtocolError,
       "duplicate key \"data\""},
      {"{\"type\":\"message\",\"event\":5}\n", Errc::kProtocolError, "\"event\" must be a string"},
      {"{\"type\":\"message\",\"id\":null}\n", Errc::kProtocolError, "\"id\" must be a string"},
      {"{\"type\":\"message\",\"id\":[\"x\"]}\n", Errc::kProtocolError, "\"id\" must be a string"},
      {"{\"type\":\"message\",\"event\":{}}\n", Errc::kProtocolError, "\"event\" must be a string"},
      {"{\"type\":\"message\",\"to\":\"bob\"}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":[]}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{\"user\":\"a\",\"room\":\"b\"}}\n", Errc::kProtocolError,
       bad_to},
      {"{\"type\":\"message\",\"to\":{\"group\":\"a\"}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{\"user\":\"\"}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{\"user\":7}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{\"user\":{\"x\":1}}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"message\",\"to\":{\"user\":[\"x\"]}}\n", Errc::kProtocolError, bad_to},
      {"{\"type\":\"ack\"}\n", Errc::kProtocolError, "ack without \"seq\""},
      {"{\"type\":\"ack\",\"seq\":-1}\n", Errc::kProtocolError,
       "\"seq\" must be a non-negative integer"},
      {"{\"type\":\"ack\",\"seq\":1.5}\n", Errc::kProtocolError, "\"seq\" must be a non-negative"},
      {"{\"type\":\"ack\",\"seq\":\"1\"}\n", Errc::kProtocolError, "\"seq\" must be a non-neg"},
      {"{\"type\":\"ack\",\"seq\":18446744073709551616}\n", Errc::kProtocolError,
       "\"seq\" must be a non-negative integer"},
      {"{\"type\":\"hello\"}\n", Errc::kProtocolError, "second hello"},
      {"{\"type\":\"message\"}\n", Errc::kProtocolError, "\"message\" before hello", true},
      {"{\"type\":\"ping\"}\n", Errc::kProtocolError, "\"ping\" before hello", true},
      {"{\"type\":\"close\"}\n", Errc::kProtocolError, "\"close\" before hello", true},
      {"{\"type\":\"HELLO\"}\n", Errc::kProtocolError, "unknown type \"HELLO\"", true},
      {"{\"type\":\"hello\",\"token\":\"a\\u0001b\"}\n", Errc::kInvalidPayload,
       "control characters in a hello field", true},
      {"{\"type\":\"hello\",\"device\":\"a\\nb\"}\n", Errc::kInvalidPayload,
       "control characters in a hello field", true},
      {"{\"type\":\"hello\",\"sdk\":7}\n", Errc::kProtocolError, "\"sdk\" must be a string", true},
      {"{\"type\":\"hello\",\"token\":null}\n", Errc::kProtocolError,
       "\"token\" must be a string", true},
  };
  for (const ErrorCase& c : cases) {
    const std::string input = (c.before_hello ? "" : kHello) + c.input;
    const DecodeRun run = feed(input, {});
    ASSERT_TRUE(run.error) << input;
    EXPECT_EQ(run.error->code, c.code) << input;
    EXPECT_NE(run.error->message.find(c.reason), std::string::npos)
        << input << " -> " << run.error->message;
    EXPECT_EQ(run.error->message.back() != '.', true) << run.error->message;
    expectSameAtEverySplit(input);
  }
}

TEST(NdjsonCodecTest, LongTypeNamesAreCutInReasons) {
  const DecodeRun run = feed(kHello + R"({"type":")" + std::string(200, 'x') + "\"}\n", {});
  ASSERT_TRUE(run.error);
  EXPECT_EQ(run.error->message, "unknown type \"" + std::string(32, 'x') + "\"");
}

TEST(NdjsonCodecTest, NoInputIsDecodedAfterAnError) {
  NdjsonCodec codec({});
  Sink sink;
  Out out;
  ASSERT_TRUE(codec.decode(kHello, sink, out));
  auto bad = codec.decode("nope\n", sink, out);
  ASSERT_FALSE(bad);
  const std::string more = R"({"type":"message"})"
                           "\n";
  auto after = codec.decode(more, sink, out);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, more.size());
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_EQ(codec.sharedEncodingKey(dataMessage("x")), 0u);
}

TEST(NdjsonCodecTest, NestingIsLimitedByMaxDepth) {
  NdjsonOptions options;
  options.max_depth = 4;  // the line's object is 1
  const std::string ok = kHello + R"({"type":"message","data":[[[1]]]})" + "\n";
  const DecodeRun fine = feed(ok, {}, options);
  ASSERT_FALSE(fine.error);
  ASSERT_EQ(fine.raw.size(), 1u);
  EXPECT_EQ(fine.raw[0].data(), "[[[1]]]");
  for (const std::string line : {R"({"type":"message","data":[[[[1]]]]})",
                                 R"({"type":"message","x":{"a":{"b":{"c":{}}}}})",
                                 R"({"type":"message","data":[{"a":[{}]}]})"}) {
    const std::string input = kHello + line + "\n";
    const DecodeRun deep = feed(input, {}, options);
    ASSERT_TRUE(deep.error) << line;
    EXPECT_EQ(deep.error->code, Errc::kProtocolError);
    EXPECT_EQ(deep.error->message, "JSON nested deeper than max_depth (4)");
    expectSameAtEverySplit(input, options);
  }
  // The default is 32: a hostile 100k-deep line fails fast instead of recursing.
  const std::string hostile =
      kHello + R"({"type":"message","data":)" + std::string(100000, '[') + "\n";
  NdjsonOptions big;
  big.max_line = 1 << 20;
  const DecodeRun r = feed(hostile, {}, big);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message, "JSON nested deeper than max_depth (32)");
}

TEST(NdjsonCodecTest, LinesAreLimitedByMaxLine) {
  NdjsonOptions options;
  options.max_line = 64;
  // A line of exactly max_line bytes, padded with JSON whitespace.
  std::string exact = R"({"type":"ping"})";
  exact.insert(exact.size() - 1, std::string(64 - exact.size(), ' '));
  ASSERT_EQ(exact.size(), 64u);
  {
    const DecodeRun run = feed(kHello + exact + "\n", {}, options);
    EXPECT_FALSE(run.error);
    EXPECT_TRUE(run.out.ends_with("{\"type\":\"pong\"}\n"));
    expectSameAtEverySplit(kHello + exact + "\n", options);
  }
  for (const std::string& input : {kHello + exact + " \n",   // one byte over
                                   kHello + exact + "\r\n",  // the "\r" counts
                                   kHello + exact + " ",     // over, no newline yet
                                   exact + " " + kHello}) {  // before the hello too
    const DecodeRun run = feed(input, {}, options);
    ASSERT_TRUE(run.error) << input;
    EXPECT_EQ(run.error->code, Errc::kMessageTooBig);
    EXPECT_EQ(run.error->message, "line longer than max_line (64 bytes)");
    expectSameAtEverySplit(input, options);
  }
  // max_line bytes without a newline are still fine: the newline may come next.
  const DecodeRun pending = feed(kHello + exact, {}, options);
  EXPECT_FALSE(pending.error);
}

TEST(NdjsonCodecTest, LongLineTrickledInIsScannedIncrementally) {
  // The codec must keep working when the unconsumed tail comes back longer each time.
  NdjsonOptions options;
  options.max_line = 8192;
  std::string line = R"({"type":"message","data":")" + std::string(8000, 'a') + "\"}\n";
  NdjsonCodec codec(options);
  Sink sink;
  Out out;
  ASSERT_TRUE(codec.decode(kHello, sink, out));
  std::string buffered;
  for (char c : line) {
    buffered.push_back(c);
    auto used = codec.decode(buffered, sink, out);
    ASSERT_TRUE(used);
    buffered.erase(0, *used);
  }
  EXPECT_TRUE(buffered.empty());
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].data().size(), 8002u);
}

TEST(NdjsonCodecTest, PingIsAnsweredUnlessTheOutputIsBacklogged) {
  NdjsonCodec codec({});
  Sink sink;
  Out out;
  ASSERT_TRUE(codec.decode(kHello, sink, out));
  ASSERT_TRUE(codec.decode("{\"type\":\"ping\"}\n", sink, out));
  EXPECT_EQ(out.bytes, "{\"type\":\"pong\"}\n");
  out.extra_pending = kPongBackpressureLimit + 1;
  ASSERT_TRUE(codec.decode("{\"type\":\"ping\"}\n", sink, out));
  EXPECT_EQ(out.bytes, "{\"type\":\"pong\"}\n");
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_EQ(sink.activity, 3);
}

TEST(NdjsonCodecTest, ClientCloseIsAnsweredAndEndsDecoding) {
  NdjsonCodec codec({});
  Sink sink;
  Out out;
  ASSERT_TRUE(codec.decode(kHello, sink, out));
  const std::string input = R"({"type":"close","reason":"bye"})"
                            "\n"
                            R"({"type":"message"})"
                            "\n";
  auto used = codec.decode(input, sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, input.size());
  EXPECT_EQ(out.bytes, "{\"type\":\"close\",\"code\":\"none\"}\n");
  ASSERT_EQ(sink.peer_closes.size(), 1u);
  EXPECT_EQ(sink.peer_closes[0].first, Errc::kNone);
  EXPECT_EQ(sink.peer_closes[0].second, "bye");
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_TRUE(codec.closeSent());
}

TEST(NdjsonCodecTest, DecodedMessagesEncodeBackToTheSameData) {
  const std::string input =
      kHello + R"({"type":"message","event":"chat","data": {"text" : "h\u00e9\n"} })" + "\n";
  const DecodeRun run = feed(input, {});
  ASSERT_EQ(run.raw.size(), 1u);
  const std::string line = encodeLine(run.raw[0]);
  expectOneJsonLine(line);
  EXPECT_EQ(line, R"({"type":"message","event":"chat","data":{"text" : "h\u00e9\n"}})"
                  "\n");
}

// ---- Encoding ---------------------------------------------------------------------------------

TEST(NdjsonCodecTest, EncodesMessagesWithOnlyTheFieldsSet) {
  Message m = dataMessage(R"({"text":"hi"})");
  m.event = "chat";
  m.id = "m1";
  m.seq = 7;
  m.from = "alice";
  m.to_kind = TargetKind::kRoom;
  m.to = "r1";
  m.ts_ms = 1700;
  EXPECT_EQ(encodeLine(m), R"({"type":"message","event":"chat","id":"m1","seq":7,"from":"alice",)"
                           R"("to":{"room":"r1"},"ts":1700,"data":{"text":"hi"}})"
                           "\n");
  EXPECT_EQ(encodeLine(dataMessage("")), "{\"type\":\"message\"}\n");
  Message to_user = dataMessage("1");
  to_user.to_kind = TargetKind::kUser;
  to_user.to = "bob";
  EXPECT_EQ(encodeLine(to_user), R"({"type":"message","to":{"user":"bob"},"data":1})"
                                 "\n");
  Message to_session = dataMessage("");
  to_session.to_kind = TargetKind::kSession;
  to_session.to = "42";
  EXPECT_EQ(encodeLine(to_session), "{\"type\":\"message\"}\n");
  Message control = dataMessage("");
  control.kind = MessageKind::kControl;
  control.event = "join";
  EXPECT_EQ(encodeLine(control), R"({"type":"message","kind":"control","event":"join"})"
                                 "\n");
  Message presence = dataMessage(R"({"online":true})");
  presence.kind = MessageKind::kPresence;
  EXPECT_EQ(encodeLine(presence),
            R"({"type":"message","kind":"presence","data":{"online":true}})"
            "\n");
}

TEST(NdjsonCodecTest, PayloadsAreEmbeddedEscapedOrBase64) {
  struct Case {
    Message message;
    std::string data;  // what follows "data" in the line
  };
  const std::vector<Case> cases = {
      {dataMessage("{\n  \"a\": [1,\r\n 2]\n}"), R"("data":{   "a": [1,   2] })"},
      {dataMessage("123"), R"("data":123)"},
      {dataMessage("\"quoted\""), R"("data":"quoted")"},
      {dataMessage("hello \"you\"\n\t\x01\\"), R"("data":"hello \"you\"\n\t\u0001\\")"},
      {dataMessage("{\"a\":1} trailing"), R"("data":"{\"a\":1} trailing")"},
      {dataMessage("{}\0x"s), R"("data":"{}\u0000x")"},
      {dataMessage("caf\xC3\xA9"), "\"data\":\"caf\xC3\xA9\""},
      {dataMessage("\xFF\xFE"), R"("data_b64":"//4=")"},
      {dataMessage("\xED\xA0\x80"), R"("data_b64":"7aCA")"},  // a UTF-8 encoded surrogate
      {dataMessage("abc", PayloadType::kBinary), R"("data_b64":"YWJj")"},
      {dataMessage("ab", PayloadType::kBinary), R"("data_b64":"YWI=")"},
      {dataMessage("a", PayloadType::kBinary), R"("data_b64":"YQ==")"},
      {dataMessage("{}", PayloadType::kBinary), R"("data_b64":"e30=")"},
  };
  for (const Case& c : cases) {
    const std::string line = encodeLine(c.message);
    EXPECT_EQ(line, "{\"type\":\"message\"," + c.data + "}\n");
    expectOneJsonLine(line);
  }
}

TEST(NdjsonCodecTest, DeeplyNestedPayloadsAreSentAsStrings) {
  const std::string ok = std::string(512, '[') + std::string(512, ']');
  EXPECT_TRUE(isJsonText(ok));
  EXPECT_EQ(encodeLine(dataMessage(ok)), "{\"type\":\"message\",\"data\":" + ok + "}\n");
  const std::string deep = std::string(513, '[') + std::string(513, ']');
  EXPECT_FALSE(isJsonText(deep));
  EXPECT_EQ(encodeLine(dataMessage(deep)),
            "{\"type\":\"message\",\"data\":\"" + deep + "\"}\n");
  EXPECT_FALSE(isJsonText(std::string(1 << 20, '[')));  // fails fast, no deep recursion
  EXPECT_FALSE(isJsonText("\"\xF0"));                    // no read past the end
  EXPECT_FALSE(isJsonText("[\"\xE2\x82"));
}

TEST(NdjsonCodecTest, StringsAreEscapedAndInvalidUtf8Replaced) {
  Message m = dataMessage("");
  m.event = "e\xC3";     // truncated sequence
  m.id = "i\"d\\\x7F";  // DEL is allowed raw in JSON
  m.from = "\xF0\x9F\x98\x80";
  const std::string line = encodeLine(m);
  EXPECT_EQ(line, "{\"type\":\"message\",\"event\":\"e\xEF\xBF\xBD\",\"id\":\"i\\\"d\\\\\x7F\","
                  "\"from\":\"\xF0\x9F\x98\x80\"}\n");
  expectOneJsonLine(line);
  std::string s;
  appendJsonString(s, "\xC0\xAF\xF4\x90\x80\x80");  // overlong '/', above U+10FFFF
  EXPECT_EQ(s, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(NdjsonCodecTest, AcksAndErrors) {
  Message ack;
  ack.kind = MessageKind::kAck;
  ack.id = "c1";
  ack.event = "chat";
  ack.ts_ms = 5;
  ack.meta = {{"status", "ok"}};
  ack.payload = makeBytes("");
  EXPECT_EQ(encodeLine(ack), R"({"type":"ack","id":"c1","event":"chat","ts":5})"
                             "\n");
  ack.payload = makeBytes(R"({"reply":1})");
  ack.meta.clear();
  EXPECT_EQ(encodeLine(ack), R"({"type":"ack","id":"c1","event":"chat","ts":5,"data":{"reply":1}})"
                             "\n");
  Message error;
  error.kind = MessageKind::kAck;
  error.id = "c2";
  error.meta = {{"status", "unavailable"}, {"reason", "backend \"down\""}};
  error.payload = makeBytes("");
  const std::string line = encodeLine(error);
  EXPECT_EQ(line, R"({"type":"error","id":"c2","event":"","error":"unavailable",)"
                  R"("reason":"backend \"down\""})"
                  "\n");
  expectOneJsonLine(line);
  error.payload = makeBytes("no such room");
  EXPECT_TRUE(encodeLine(error).ends_with(R"(,"data":"no such room"})"
                                          "\n"));
}

TEST(NdjsonCodecTest, EncodeWritesTheLineAndSharesBigOnes) {
  NdjsonCodec codec({});
  Out out;
  Message small = dataMessage("1");
  ASSERT_TRUE(codec.encode(small, out));
  EXPECT_EQ(out.bytes, encodeLine(small));
  EXPECT_EQ(out.shared, 0);
  Message big = dataMessage(std::string(2000, 'x'));
  ASSERT_TRUE(codec.encode(big, out));
  EXPECT_EQ(out.bytes, encodeLine(small) + encodeLine(big));
  EXPECT_EQ(out.shared, 1);
}

TEST(NdjsonCodecTest, FanOutSharesOneEncoding) {
  NdjsonCodec a({});
  NdjsonOptions other;
  other.max_line = 128;
  NdjsonCodec b(other);
  std::vector<Message> messages = {dataMessage(R"({"t":1})"),
                                   dataMessage("x", PayloadType::kBinary)};
  messages.push_back(dataMessage(""));
  messages.back().kind = MessageKind::kAck;
  for (const Message& m : messages) {
    const uint64_t key = a.sharedEncodingKey(m);
    EXPECT_NE(key, 0u);
    EXPECT_NE(key, 1u);  // proto.lines' key: keys are compared across codecs
    EXPECT_EQ(b.sharedEncodingKey(m), key);
    Out out;
    ASSERT_TRUE(a.encode(m, out));
    EXPECT_EQ(*a.encodeShared(m), out.bytes);
  }
  Out out;
  a.encodeClose(Errc::kShutdown, "bye", out);
  EXPECT_EQ(a.sharedEncodingKey(messages[0]), 0u);
}

TEST(NdjsonCodecTest, WelcomePingAndClose) {
  NdjsonCodec codec({});
  Out out;
  SessionOpened opened;
  opened.session_id = 42;
  opened.server_time_ms = 1700000000000;
  opened.idle_timeout = std::chrono::seconds(30);
  opened.ping_interval = std::chrono::seconds(10);
  opened.identity = {"shop", "alice", "d1"};
  codec.onOpened(opened, out);
  EXPECT_EQ(out.bytes, R"({"type":"welcome","session":"42","user":"alice","app":"shop",)"
                       R"("device":"d1","server_time":1700000000000,"ping_interval":10000,)"
                       R"("idle_timeout":30000})"
                       "\n");
  expectOneJsonLine(out.bytes);
  out.bytes.clear();
  codec.encodePing(out);
  EXPECT_EQ(out.bytes, "{\"type\":\"ping\"}\n");
  out.bytes.clear();
  codec.encodeClose(Errc::kMessageTooBig, "line longer than max_line (64 bytes)", out);
  EXPECT_EQ(out.bytes, R"({"type":"close","code":"message_too_big",)"
                       R"j("reason":"line longer than max_line (64 bytes)"})j"
                       "\n");
  out.bytes.clear();
  codec.encodeClose(Errc::kNone, {}, out);  // once only
  codec.encodePing(out);
  ASSERT_TRUE(codec.encode(dataMessage("1"), out));
  codec.onOpened(opened, out);
  EXPECT_TRUE(out.bytes.empty());
  Sink sink;
  auto used = codec.decode(kHello, sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, kHello.size());
  EXPECT_TRUE(sink.hellos.empty());
}

TEST(NdjsonCodecTest, CloseFormsPerCode) {
  auto closeLine = [](Errc code, std::string_view reason) {
    NdjsonCodec codec({});
    Out out;
    codec.encodeClose(code, reason, out);
    return out.bytes;
  };
  EXPECT_EQ(closeLine(Errc::kNone, {}), "{\"type\":\"close\",\"code\":\"none\"}\n");
  EXPECT_EQ(closeLine(Errc::kTimeout, "idle\ntimeout"),
            R"({"type":"close","code":"timeout","reason":"idle\ntimeout"})"
            "\n");
  EXPECT_EQ(closeLine(Errc::kInternal, "stage x crashed at 0xdead"),
            "{\"type\":\"close\",\"code\":\"internal\"}\n");
  EXPECT_EQ(closeLine(Errc::kUnauthenticated, "expired token"),
            R"({"type":"close","code":"unauthenticated","reason":"expired token"})"
            "\n");
  std::string long_reason;
  for (int i = 0; i < 150; ++i) {
    long_reason += "\xC3\xA9";  // 300 bytes of 2-byte characters
  }
  long_reason = "x" + long_reason;  // so byte 256 falls inside a character
  const std::string line = closeLine(Errc::kKicked, long_reason);
  expectOneJsonLine(line);
  EXPECT_EQ(line, R"({"type":"close","code":"kicked","reason":")" + long_reason.substr(0, 255) +
                      "\"}\n");
}

// ---- Sniffing and configuration ---------------------------------------------------------------

TEST(NdjsonCodecTest, Sniff) {
  EXPECT_EQ(sniffNdjson(""), Sniff::kNeedMore);
  EXPECT_EQ(sniffNdjson(" \r\n\t"), Sniff::kNeedMore);
  EXPECT_EQ(sniffNdjson("{"), Sniff::kMatch);
  EXPECT_EQ(sniffNdjson("  \n{\"type\""), Sniff::kMatch);
  EXPECT_EQ(sniffNdjson("GET / HTTP/1.1\r\n"), Sniff::kNoMatch);
  EXPECT_EQ(sniffNdjson("\xB7\x46"), Sniff::kNoMatch);  // proto.tcp_frame's magic
  EXPECT_EQ(sniffNdjson(" ["), Sniff::kNoMatch);
  EXPECT_EQ(sniffNdjson("\xEF\xBB\xBF{"), Sniff::kNoMatch);  // no BOM
  EXPECT_EQ(NdjsonProtocol({}).sniff("{"), Sniff::kMatch);
}

Result<ProtocolConfigPtr> compileYaml(const std::string& yaml, std::string* errors_out = nullptr) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  EXPECT_TRUE(doc.has_value());
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, ndjsonSchema(), "ndjson", errors);
  if (!errors.empty()) {
    if (errors_out != nullptr) {
      *errors_out = errors[0].message;
    }
    return fail(Errc::kInvalidConfig, errors[0].message);
  }
  return compileNdjson(*section);
}

TEST(NdjsonCodecTest, ConfigDefaultsLimitsAndFactory) {
  core::config::Errors schema_errors;
  core::config::checkSchema(ndjsonSchema(), "ndjson", schema_errors);
  EXPECT_TRUE(schema_errors.empty());

  auto defaults = compileYaml("{}\n");
  ASSERT_TRUE(defaults) << defaults.error().message;
  const auto* protocol = dynamic_cast<const NdjsonProtocol*>(defaults->get());
  ASSERT_NE(protocol, nullptr);
  EXPECT_EQ(protocol->options().max_line, kDefaultMaxLine);
  EXPECT_EQ(protocol->options().max_depth, kDefaultMaxDepth);
  EXPECT_TRUE(protocol->handshakeInBand());
  EXPECT_NE(protocol->createCodec(), nullptr);

  auto set = compileYaml("max_line: 1KiB\nmax_depth: 4\n");
  ASSERT_TRUE(set) << set.error().message;
  const auto* small = dynamic_cast<const NdjsonProtocol*>(set->get());
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(small->options().max_line, 1024u);
  EXPECT_EQ(small->options().max_depth, 4u);
  // The compiled limits reach the codecs.
  CodecPtr codec = small->createCodec();
  Sink sink;
  Out out;
  auto r = codec->decode(std::string(1025, ' '), sink, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);

  EXPECT_FALSE(compileYaml("max_depth: 1\n"));
  EXPECT_FALSE(compileYaml("max_line: 32\n"));
  EXPECT_FALSE(compileYaml("max_line: 17MiB\n"));
  EXPECT_FALSE(compileYaml("max_lines: 1KiB\n"));

  const ModuleFactory& factory = imgate_module_example_ndjson();
  EXPECT_EQ(factory.name(), "example.ndjson");
  EXPECT_EQ(factory.kind(), ModuleKind::kProtocol);
  EXPECT_EQ(factory.schema().size(), 2u);
}

TEST(NdjsonCodecTest, IdleCodecIsSmall) {
  EXPECT_LE(sizeof(NdjsonCodec), 48u);
}

}  // namespace
}  // namespace imgate::mod::ndjson
