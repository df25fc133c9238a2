// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/tcp_frame/tcp_frame_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modules/proto/tcp_frame/client/tcp_frame_client.h"
#include "modules/proto/tcp_frame/frame.h"
#include "test/unit/modules/proto/tcp_frame/tcp_frame_fakes.h"

namespace imgate::mod::tcp_frame {
namespace {

using testing::FakeOut;
using testing::FakeSink;
using testing::Outcome;
using testing::run;
using testing::sameOutcome;

std::string hello(std::string token = "tok", std::string device = "dev") {
  return client::encodeHello({token, device, "sdk/1.0", std::nullopt, std::nullopt}, 5);
}

// Every split of `input` (whole, every single cut, byte by byte) gives the same outcome.
Outcome expectSplitInvariant(const std::string& input, const TcpFrameOptions& options = {}) {
  const Outcome whole = run(input, {}, options);
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    EXPECT_TRUE(sameOutcome(whole, run(input, {cut}, options))) << "cut at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) {
    every.push_back(i);
  }
  EXPECT_TRUE(sameOutcome(whole, run(input, every, options))) << "byte by byte";
  return whole;
}

std::vector<client::Frame> frames(const std::string& bytes) {
  client::FrameDecoder decoder(16 << 20);
  EXPECT_TRUE(decoder.feed(bytes));
  std::vector<client::Frame> out;
  while (auto f = decoder.next()) {
    out.push_back(std::move(*f));
  }
  EXPECT_EQ(decoder.buffered(), 0u);
  return out;
}

std::string zlibOf(const std::string& s) {
  std::string packed;
  EXPECT_TRUE(deflateBody(s, 6, packed));
  return packed;
}

// ---- Wire format ------------------------------------------------------------------------------

TEST(ProtoTcpFrameCodecTest, HeaderIsTwentyBigEndianBytes) {
  const std::string f = buildFrame(FrameType::kSend, kFlagBinary | kFlagAckRequired,
                                   0x0102030405060708ull, "xyz");
  const std::string want("\xB7\x46\x01\x05\x06\x00\x00\x00"
                         "\x01\x02\x03\x04\x05\x06\x07\x08"
                         "\x00\x00\x00\x03xyz",
                         23);
  EXPECT_EQ(f, want);
  std::string body;
  TlvWriter(body).addString(Tag::kEvent, "hi");
  EXPECT_EQ(body, std::string("\x0C\x00\x00\x00\x02hi", 7));
}

TEST(ProtoTcpFrameCodecTest, FieldsRejectTruncationAndDuplicatesAndSkipUnknownTags) {
  std::string body;
  TlvWriter w(body);
  w.addString(Tag::kEvent, "e");
  w.addString(static_cast<Tag>(0x7F), "future");
  w.addString(static_cast<Tag>(0x1E), "unassigned");
  auto f = parseFields(body);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->str(Tag::kEvent), "e");
  EXPECT_FALSE(f->has(Tag::kData));
  EXPECT_FALSE(parseFields(body.substr(0, body.size() - 1)));
  EXPECT_FALSE(parseFields(body.substr(0, 3)));
  std::string dup = body;
  TlvWriter(dup).addString(Tag::kEvent, "again");
  auto d = parseFields(dup);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::kProtocolError);
  std::string wide;
  TlvWriter(wide).addU32(Tag::kSessionId, 1);
  auto w2 = parseFields(wide);
  ASSERT_TRUE(w2);
  EXPECT_FALSE(w2->uint(Tag::kSessionId, 8));
}

TEST(ProtoTcpFrameCodecTest, CloseCodeTableMirrorsWebSocket) {
  EXPECT_EQ(closeCodeFor(Errc::kNone), 1000);
  EXPECT_EQ(closeCodeFor(Errc::kShutdown), 1001);
  EXPECT_EQ(closeCodeFor(Errc::kProtocolError), 1002);
  EXPECT_EQ(closeCodeFor(Errc::kInvalidPayload), 1007);
  EXPECT_EQ(closeCodeFor(Errc::kBadRequest), 1008);
  EXPECT_EQ(closeCodeFor(Errc::kMessageTooBig), 1009);
  EXPECT_EQ(closeCodeFor(Errc::kInternal), 1011);
  EXPECT_EQ(closeCodeFor(Errc::kUnavailable), 1013);
  EXPECT_EQ(closeCodeFor(Errc::kTimeout), 4000);
  EXPECT_EQ(closeCodeFor(Errc::kUnauthenticated), 4001);
  EXPECT_EQ(closeCodeFor(Errc::kPermissionDenied), 4003);
  EXPECT_EQ(closeCodeFor(Errc::kNotFound), 4004);
  EXPECT_EQ(closeCodeFor(Errc::kEvicted), 4009);
  EXPECT_EQ(closeCodeFor(Errc::kKicked), 4010);
  EXPECT_EQ(closeCodeFor(Errc::kResourceExhausted), 4029);
  EXPECT_EQ(closeCodeFor(Errc::kInvalidConfig), 1011);
  for (uint16_t i = 0; i <= static_cast<uint16_t>(Errc::kSlowConsumer); ++i) {
    const auto code = static_cast<Errc>(i);
    if (code != Errc::kInvalidConfig) {
      EXPECT_EQ(errcForCode(closeCodeFor(code)), code) << errcName(code);
    }
  }
  EXPECT_EQ(errcForCode(4999), Errc::kInternal);
}

// ---- A whole session, any split -----------------------------------------------------------------

TEST(ProtoTcpFrameCodecTest, EveryClientFrameTypeDecodesTheSameAtEverySplit) {
  client::SendOptions binary_compressed;
  binary_compressed.binary = true;
  binary_compressed.compress = true;
  binary_compressed.ack_required = false;
  const std::string big(600, 'a');
  client::SendOptions string_id;
  string_id.msg_id = "m-1";
  const std::string input = client::encodePing(9, "early") + hello() +
                            client::encodeSend(11, "chat", "hello") +
                            client::encodeSend(12, "", big, binary_compressed) +
                            client::encodeSend(0, "ev", "", string_id) +
                            client::encodePushAck(31) + client::encodeJoin(13, "room-1") +
                            client::encodeLeave(14, "room-1") + client::encodePong(1) +
                            client::encodePing(15) + client::encodeClose(1000, "bye") +
                            client::encodeSend(16, "after", "ignored");
  const Outcome o = expectSplitInvariant(input);
  ASSERT_FALSE(o.error);
  EXPECT_TRUE(o.peer_closed);
  EXPECT_EQ(o.hellos, 1);
  EXPECT_EQ(o.activity, 11);  // every frame up to and including CLOSE
  const std::vector<std::string> want = {
      "0|0|0||chat|11|0||ack_required=1;|hello",
      "0|1|0|||12|0|||" + big,
      "0|0|0||ev|m-1|0||ack_required=1;|",
      "1|0|0||||31|||",  // PUSH_ACK: kAck with seq 31 (id only from a msg_id field)
      "2|0|3|room-1|join|13|0|||",
      "2|0|3|room-1|leave|14|0|||",
  };
  ASSERT_EQ(o.messages.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(o.messages[i], want[i]);
  }
  const auto out = frames(o.out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].type, FrameType::kPong);
  EXPECT_EQ(out[0].id, 9u);
  EXPECT_EQ(out[0].body, "early");
  auto ack = client::parseHelloAck(out[1]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->id, 5u);
  EXPECT_EQ(ack->session_id, 77u);
  EXPECT_EQ(ack->server_time_ms, 1700000000123u);
  EXPECT_EQ(ack->heartbeat_ms, 48000u);
  EXPECT_EQ(ack->idle_timeout_ms, 120000u);
  EXPECT_EQ(ack->ping_interval_ms, 0u);
  EXPECT_EQ(ack->app, "app1");
  EXPECT_EQ(ack->user, "u1");
  EXPECT_EQ(ack->device, "phone");
  EXPECT_EQ(out[2].type, FrameType::kPong);
  EXPECT_EQ(out[2].id, 15u);
  auto close = client::parseClose(out[3]);
  ASSERT_TRUE(close);
  EXPECT_EQ(out[3].type, FrameType::kClose);
  EXPECT_EQ(close->code, 1000);
}

TEST(ProtoTcpFrameCodecTest, HelloBecomesRequestFieldsForTheAuthStage) {
  const std::string token = "a.b+c/d=";
  const std::string input =
      client::encodeHello({token, "dev 1&x=y", "ios/2.3", uint64_t{42}, uint64_t{7}}, 3);
  const Outcome o = expectSplitInvariant(input);
  ASSERT_FALSE(o.error);
  ASSERT_TRUE(o.hello);
  const HttpRequest& h = *o.hello;
  EXPECT_EQ(h.header("authorization"), "Bearer " + token);
  EXPECT_EQ(h.header("x-device"), "dev 1&x=y");
  EXPECT_EQ(h.header("x-sdk-version"), "ios/2.3");
  EXPECT_EQ(h.header("x-resume-session"), "42");
  EXPECT_EQ(h.header("x-last-seq"), "7");
  EXPECT_EQ(h.queryParam("token"), token);
  EXPECT_EQ(h.queryParam("device"), "dev 1&x=y");
  EXPECT_EQ(h.queryParam("sdk_version"), "ios/2.3");
  EXPECT_EQ(h.queryParam("resume_session"), "42");
  EXPECT_EQ(h.query.find(' '), std::string::npos);
  EXPECT_EQ(h.target, "/?" + h.query);
  // A HELLO without a token is anonymous: no authorization header, no token parameter.
  const Outcome anon = run(client::encodeHello({}, 1), {});
  ASSERT_TRUE(anon.hello);
  EXPECT_FALSE(anon.hello->header("authorization"));
  EXPECT_FALSE(anon.hello->queryParam("token"));
}

TEST(ProtoTcpFrameCodecTest, DecodeStopsRightAfterTheHello) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeSink sink;
  FakeOut out;
  const std::string h = hello();
  const std::string input = h + client::encodeSend(1, "e", "x");
  auto used = codec.decode(input, sink, out);
  ASSERT_TRUE(used);
  EXPECT_EQ(*used, h.size());
  EXPECT_EQ(sink.hellos, 1);
  EXPECT_TRUE(sink.messages.empty());
  EXPECT_TRUE(codec.helloSeenForTest());
}

// ---- Errors -------------------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  std::string input;
  Errc code;
};

std::string withByte(std::string frame, size_t at, char value) {
  frame[at] = value;
  return frame;
}

std::string rawFrame(FrameType type, uint8_t flags, std::string_view body) {
  return buildFrame(type, flags, 1, body);
}

TEST(ProtoTcpFrameCodecTest, EveryErrorFailsTheSameAtEverySplit) {
  const std::string ping = client::encodePing(1);
  std::string bad_resume;
  TlvWriter(bad_resume).addU32(Tag::kResumeSession, 1);
  std::string ctl_token;
  TlvWriter(ctl_token).addString(Tag::kToken, std::string("a\nb"));
  std::string dup;
  TlvWriter(dup).addString(Tag::kEvent, "a");
  TlvWriter(dup).addString(Tag::kEvent, "b");
  std::string bomb_body;
  TlvWriter(bomb_body).addString(Tag::kData, std::string(1 << 20, '\0'));
  const std::string bomb = zlibOf(bomb_body);
  ASSERT_LT(bomb.size(), 2048u);
  std::string big_header(kHeaderSize, '\0');
  writeHeader(big_header.data(), FrameHeader{FrameType::kSend, 0, 1, kDefaultMaxFrame + 1});

  const std::vector<ErrorCase> cases = {
      {"bad magic 0", withByte(ping, 0, 'G'), Errc::kProtocolError},
      {"bad magic 1", withByte(ping, 1, 'E'), Errc::kProtocolError},
      {"bad version", withByte(ping, 2, 2), Errc::kProtocolError},
      {"unknown type 0", withByte(ping, 3, 0), Errc::kProtocolError},
      {"unknown type 15", withByte(ping, 3, 15), Errc::kProtocolError},
      {"reserved flag", withByte(ping, 4, 0x08), Errc::kProtocolError},
      {"reserved byte", withByte(ping, 6, 1), Errc::kProtocolError},
      {"too big (header only)", big_header, Errc::kMessageTooBig},
      {"send before hello", client::encodeSend(1, "e", "x"), Errc::kProtocolError},
      {"join before hello", client::encodeJoin(1, "r"), Errc::kProtocolError},
      {"push ack before hello", client::encodePushAck(1), Errc::kProtocolError},
      {"second hello", hello() + hello(), Errc::kProtocolError},
      {"server-only PUSH", hello() + rawFrame(FrameType::kPush, 0, ""), Errc::kProtocolError},
      {"server-only HELLO_ACK", rawFrame(FrameType::kHelloAck, 0, ""), Errc::kProtocolError},
      {"server-only SEND_ACK", hello() + rawFrame(FrameType::kSendAck, 0, ""),
       Errc::kProtocolError},
      {"server-only ERROR", hello() + rawFrame(FrameType::kError, 0, ""), Errc::kProtocolError},
      {"server-only GOAWAY", hello() + rawFrame(FrameType::kGoaway, 0, ""), Errc::kProtocolError},
      {"truncated tlv", hello() + rawFrame(FrameType::kSend, 0, "\x0C\x00\x00"),
       Errc::kProtocolError},
      {"tlv past body", hello() + rawFrame(FrameType::kSend, 0, std::string("\x0C\0\0\0\x09x", 6)),
       Errc::kProtocolError},
      {"duplicate field", hello() + rawFrame(FrameType::kSend, 0, dup), Errc::kProtocolError},
      {"resume not u64", rawFrame(FrameType::kHello, 0, bad_resume), Errc::kProtocolError},
      {"control char in token", rawFrame(FrameType::kHello, 0, ctl_token),
       Errc::kInvalidPayload},
      {"join without room", hello() + rawFrame(FrameType::kJoin, 0, ""), Errc::kProtocolError},
      {"leave with empty room", hello() + client::encodeLeave(1, ""), Errc::kProtocolError},
      {"corrupt zlib", hello() + rawFrame(FrameType::kSend, kFlagCompressed, "\x78\x9c garbage"),
       Errc::kInvalidPayload},
      {"truncated zlib",
       hello() + rawFrame(FrameType::kSend, kFlagCompressed,
                          zlibOf(std::string(100, 'x')).substr(0, 8)),
       Errc::kInvalidPayload},
      {"bytes after zlib end",
       hello() + rawFrame(FrameType::kSend, kFlagCompressed, zlibOf("abc") + "x"),
       Errc::kInvalidPayload},
      {"inflate bomb", hello() + rawFrame(FrameType::kSend, kFlagCompressed, bomb),
       Errc::kMessageTooBig},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Outcome o = expectSplitInvariant(c.input);
    ASSERT_TRUE(o.error);
    EXPECT_EQ(*o.error, c.code);
    EXPECT_TRUE(o.messages.empty());
    // The close that follows: ERROR + CLOSE with the same code for these client faults.
    const auto out = frames(o.out);
    ASSERT_GE(out.size(), 2u);
    const auto& err = out[out.size() - 2];
    const auto& close = out.back();
    EXPECT_EQ(err.type, FrameType::kError);
    EXPECT_EQ(close.type, FrameType::kClose);
    EXPECT_EQ(client::parseClose(err)->code, closeCodeFor(c.code));
    EXPECT_EQ(client::parseClose(close)->code, closeCodeFor(c.code));
  }
}

TEST(ProtoTcpFrameCodecTest, OversizedFrameFailsBeforeItsBodyArrives) {
  TcpFrameOptions options;
  options.max_frame = 1024;
  TcpFrameCodec codec(options);
  FakeSink sink;
  FakeOut out;
  ASSERT_TRUE(codec.decode(hello(), sink, out));
  const std::string frame = client::encodeSend(1, "e", std::string(2000, 'x'));
  auto r = codec.decode(std::string_view(frame).substr(0, kHeaderSize), sink, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
  // Exactly max_frame is fine.
  TcpFrameCodec ok(options);
  ASSERT_TRUE(ok.decode(hello(), sink, out));
  std::string body;
  TlvWriter(body).addString(Tag::kData, std::string(1024 - 5, 'y'));
  auto r2 = ok.decode(rawFrame(FrameType::kSend, 0, body), sink, out);
  ASSERT_TRUE(r2);
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].data().size(), 1019u);
}

TEST(ProtoTcpFrameCodecTest, CompressedInboundBodyUpToMaxFrameIsAccepted) {
  TcpFrameOptions options;
  options.max_frame = 4096;
  std::string body;
  TlvWriter(body).addString(Tag::kData, std::string(4096 - 5, 'z'));
  const Outcome ok =
      run(hello() + rawFrame(FrameType::kSend, kFlagCompressed, zlibOf(body)), {}, options);
  ASSERT_FALSE(ok.error);
  ASSERT_EQ(ok.messages.size(), 1u);
  body.push_back('z');  // one byte over after inflating
  const Outcome over =
      run(hello() + rawFrame(FrameType::kSend, kFlagCompressed, zlibOf(body)), {}, options);
  ASSERT_TRUE(over.error);
  EXPECT_EQ(*over.error, Errc::kMessageTooBig);
}

TEST(ProtoTcpFrameCodecTest, InputAfterAFailureOrCloseIsIgnored) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeSink sink;
  FakeOut out;
  EXPECT_FALSE(codec.decode(client::encodeSend(1, "e", "x"), sink, out));
  auto again = codec.decode(hello(), sink, out);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, hello().size());
  EXPECT_EQ(sink.hellos, 0);
}

// ---- Encoding -----------------------------------------------------------------------------------

Message push(std::string data, uint64_t seq = 0, PayloadType type = PayloadType::kText) {
  Message m;
  m.kind = MessageKind::kData;
  m.type = type;
  m.event = "news";
  m.id = "p-1";
  m.seq = seq;
  m.payload = makeBytes(std::move(data));
  return m;
}

TEST(ProtoTcpFrameCodecTest, PushCarriesSeqEventIdAndTextOrBinary) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(push("hi", 0), out));
  Message reliable = push(std::string("\0\1", 2), 9, PayloadType::kBinary);
  reliable.reliable = true;
  ASSERT_TRUE(codec.encode(reliable, out));
  const auto f = frames(out.data);
  ASSERT_EQ(f.size(), 2u);
  auto p0 = client::parsePush(f[0]);
  ASSERT_TRUE(p0);
  EXPECT_EQ(p0->seq, 0u);
  EXPECT_FALSE(p0->binary);
  EXPECT_FALSE(p0->ack_required);
  EXPECT_EQ(p0->event, "news");
  EXPECT_EQ(p0->msg_id, "p-1");
  EXPECT_EQ(p0->data, "hi");
  EXPECT_EQ(p0->kind, 0);
  auto p1 = client::parsePush(f[1]);
  ASSERT_TRUE(p1);
  EXPECT_EQ(p1->seq, 9u);
  EXPECT_TRUE(p1->binary);
  EXPECT_TRUE(p1->ack_required);
  EXPECT_EQ(p1->data, std::string("\0\1", 2));
  Message presence = push("on");
  presence.kind = MessageKind::kPresence;
  out.data.clear();
  ASSERT_TRUE(codec.encode(presence, out));
  EXPECT_EQ(client::parsePush(frames(out.data)[0])->kind, 3);
}

TEST(ProtoTcpFrameCodecTest, LargePushesAreCompressedWhenItPays) {
  const std::string json = [] {
    std::string s;
    while (s.size() < 2000) {
      s += R"({"type":"message","room":"general","text":"hello there"})";
    }
    return s;
  }();
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(push(json), out));
  ASSERT_TRUE(codec.encode(push("short"), out));
  EXPECT_LT(out.data.size(), json.size());
  const auto f = frames(out.data);
  ASSERT_EQ(f.size(), 2u);
  auto big = client::parsePush(f[0]);
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->compressed);
  EXPECT_EQ(big->data, json);
  EXPECT_FALSE(client::parsePush(f[1])->compressed);
  // Incompressible data and compression: false go out as they are.
  std::string noise;
  uint32_t x = 1;
  for (int i = 0; i < 1000; ++i) {
    x = x * 1103515245u + 12345u;
    noise.push_back(static_cast<char>(x >> 24));
  }
  FakeOut out2;
  ASSERT_TRUE(codec.encode(push(noise, 0, PayloadType::kBinary), out2));
  EXPECT_FALSE(client::parsePush(frames(out2.data)[0])->compressed);
  TcpFrameOptions off;
  off.compression = false;
  TcpFrameCodec plain(off);
  FakeOut out3;
  ASSERT_TRUE(plain.encode(push(json), out3));
  EXPECT_FALSE(client::parsePush(frames(out3.data)[0])->compressed);
}

TEST(ProtoTcpFrameCodecTest, FanOutSharesBytesOfEveryPushButNotAcks) {
  TcpFrameCodec a(TcpFrameOptions{});
  TcpFrameCodec b(TcpFrameOptions{});
  const Message m = push("hello");
  EXPECT_NE(a.sharedEncodingKey(m), 0u);
  EXPECT_EQ(a.sharedEncodingKey(m), b.sharedEncodingKey(m));
  FakeOut out;
  ASSERT_TRUE(a.encode(m, out));
  EXPECT_EQ(*a.encodeShared(m), out.data);
  EXPECT_NE(a.sharedEncodingKey(push("hello", 0, PayloadType::kBinary)), a.sharedEncodingKey(m));
  EXPECT_NE(a.sharedEncodingKey(push(std::string(300, 'x'))), a.sharedEncodingKey(m));
  // stream/epoch/seq are the same for every recipient of a room or broadcast message.
  EXPECT_NE(a.sharedEncodingKey(push("hello", 5)), 0u);
  Message ack = push("r");
  ack.kind = MessageKind::kAck;
  EXPECT_EQ(a.sharedEncodingKey(ack), 0u);
  TcpFrameOptions level9;
  level9.compression_level = 9;
  TcpFrameCodec c(level9);
  const Message big = push(std::string(300, 'x'));
  EXPECT_NE(a.sharedEncodingKey(big), c.sharedEncodingKey(big));
  a.encodeClose(Errc::kNone, "", out);
  EXPECT_EQ(a.sharedEncodingKey(m), 0u);
}

TEST(ProtoTcpFrameCodecTest, AckMessagesBecomeSendAcks) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  Message ok;
  ok.kind = MessageKind::kAck;
  ok.id = "42";
  ok.ts_ms = 1234;
  ok.payload = makeBytes("reply");
  Message bad = ok;
  bad.id = "client-abc";
  bad.payload = makeBytes("");
  bad.meta = {{"status", "unavailable"}, {"reason", "no backend"}};
  Message numeric = ok;
  numeric.id = "007";  // not canonical: kept as a string id
  numeric.meta = {{"status", "4029"}};
  ASSERT_TRUE(codec.encode(ok, out));
  ASSERT_TRUE(codec.encode(bad, out));
  ASSERT_TRUE(codec.encode(numeric, out));
  const auto f = frames(out.data);
  ASSERT_EQ(f.size(), 3u);
  auto a0 = client::parseSendAck(f[0]);
  ASSERT_TRUE(a0);
  EXPECT_EQ(a0->id, 42u);
  EXPECT_EQ(a0->msg_id, "");
  EXPECT_EQ(a0->status, kCodeOk);
  EXPECT_EQ(a0->server_time_ms, 1234u);
  EXPECT_EQ(a0->data, "reply");
  auto a1 = client::parseSendAck(f[1]);
  ASSERT_TRUE(a1);
  EXPECT_EQ(a1->id, 0u);
  EXPECT_EQ(a1->msg_id, "client-abc");
  EXPECT_EQ(a1->status, 1013);
  EXPECT_EQ(a1->reason, "no backend");
  EXPECT_EQ(a1->data, "");
  auto a2 = client::parseSendAck(f[2]);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->msg_id, "007");
  EXPECT_EQ(a2->status, 4029);
}

TEST(ProtoTcpFrameCodecTest, EncodeCloseWritesGoawayErrorOrCloseOnce) {
  TcpFrameOptions options;
  options.reconnect_hint = "pool.example:7100";
  options.reconnect_jitter = std::chrono::milliseconds(3000);
  {
    TcpFrameCodec codec(options);
    FakeOut out;
    codec.encodeClose(Errc::kShutdown, "server shutting down", out);
    codec.encodeClose(Errc::kTimeout, "again", out);
    const auto f = frames(out.data);
    ASSERT_EQ(f.size(), 2u);
    auto g = client::parseGoAway(f[0]);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->reason, "server shutting down");
    EXPECT_EQ(g->reconnect_hint, "pool.example:7100");
    EXPECT_EQ(g->retry_after_ms, 3000u);
    EXPECT_EQ(f[1].type, FrameType::kClose);
    EXPECT_EQ(client::parseClose(f[1])->code, 1001);
    // Nothing after the close.
    ASSERT_TRUE(codec.encode(push("x"), out));
    codec.encodePing(out);
    EXPECT_EQ(frames(out.data).size(), 2u);
  }
  {
    TcpFrameCodec codec(options);
    FakeOut out;
    codec.encodeClose(Errc::kUnauthenticated, "bad token", out);
    const auto f = frames(out.data);
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].type, FrameType::kError);
    EXPECT_EQ(client::parseClose(f[0])->code, 4001);
    EXPECT_EQ(client::parseClose(f[0])->reason, "bad token");
    EXPECT_EQ(client::parseClose(f[1])->code, 4001);
  }
  for (Errc code : {Errc::kTimeout, Errc::kEvicted, Errc::kKicked, Errc::kResourceExhausted,
                    Errc::kUnavailable, Errc::kNone}) {
    TcpFrameCodec codec(options);
    FakeOut out;
    codec.encodeClose(code, "why", out);
    const auto f = frames(out.data);
    ASSERT_EQ(f.size(), 1u) << errcName(code);
    EXPECT_EQ(f[0].type, FrameType::kClose);
    EXPECT_EQ(client::parseClose(f[0])->code, closeCodeFor(code));
    EXPECT_EQ(client::parseClose(f[0])->reason, "why");
  }
  {
    TcpFrameCodec codec(options);
    FakeOut out;
    codec.encodeClose(Errc::kInternal, "secret details", out);
    const auto f = frames(out.data);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(client::parseClose(f[0])->code, 1011);
    EXPECT_EQ(client::parseClose(f[0])->reason, "");
  }
  {
    TcpFrameCodec codec(options);
    FakeOut out;
    codec.encodeClose(Errc::kProtocolError, std::string(1000, 'r'), out);
    EXPECT_EQ(client::parseClose(frames(out.data)[0])->reason.size(), kMaxReason);
  }
}

TEST(ProtoTcpFrameCodecTest, ServerPingsAndPongBackpressure) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeSink sink;
  FakeOut out;
  codec.encodePing(out);
  codec.encodePing(out);
  auto f = frames(out.data);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].type, FrameType::kPing);
  EXPECT_EQ(f[0].id, 1u);
  EXPECT_EQ(f[1].id, 2u);
  out.data.clear();
  out.extra_pending = kPongBackpressureLimit + 1;
  ASSERT_TRUE(codec.decode(client::encodePing(3), sink, out));
  EXPECT_TRUE(out.data.empty());
  EXPECT_EQ(sink.activity, 1);
  out.extra_pending = 0;
  ASSERT_TRUE(codec.decode(client::encodePing(4), sink, out));
  EXPECT_EQ(frames(out.data).at(0).id, 4u);
}

TEST(ProtoTcpFrameCodecTest, IdleCodecIsSmall) {
  EXPECT_LE(sizeof(TcpFrameCodec), 64u);
}

}  // namespace
}  // namespace imgate::mod::tcp_frame
