// SPDX-License-Identifier: Apache-2.0
// Reliable delivery on proto.tcp_frame: stream/epoch on PUSH, PUSH_ACK with a stream, READ both
// ways, epoch and resume in HELLO, the streams answer in HELLO_ACK, shared sequenced encodings.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modules/common/json_text.h"
#include "modules/proto/tcp_frame/client/tcp_frame_client.h"
#include "modules/proto/tcp_frame/frame.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "test/unit/modules/proto/tcp_frame/tcp_frame_fakes.h"

namespace imgate::mod::tcp_frame {
namespace {

using testing::FakeOut;
using testing::FakeSink;
using testing::Outcome;
using testing::run;
using testing::sameOutcome;

constexpr uint64_t kEpoch = 0x9f3a0c11d2e4b5a6ull;

std::string hello() { return client::encodeHello({"tok", "dev", "sdk/1", {}, {}, {}, {}}, 5); }

Outcome expectSplitInvariant(const std::string& input) {
  const Outcome whole = run(input, {});
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    EXPECT_TRUE(sameOutcome(whole, run(input, {cut}))) << "cut at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) {
    every.push_back(i);
  }
  EXPECT_TRUE(sameOutcome(whole, run(input, every))) << "byte by byte";
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

std::string tlv(Tag tag, std::string_view value) {
  std::string body;
  TlvWriter(body).addString(tag, value);
  return body;
}

Message roomPush(uint64_t seq, bool reliable, std::string data = "hi") {
  Message m;
  m.kind = MessageKind::kData;
  m.event = "chat";
  m.stream = "room:r1";
  m.epoch = kEpoch;
  m.seq = seq;
  m.reliable = reliable;
  m.to_kind = TargetKind::kRoom;
  m.to = "r1";
  m.payload = makeBytes(std::move(data));
  return m;
}

Message readMark(std::string stream, uint64_t seq, std::optional<std::string> device) {
  Message m;
  m.kind = MessageKind::kControl;
  m.event = "read";
  m.stream = std::move(stream);
  m.seq = seq;
  if (device) {
    m.meta.emplace_back("device", *device);
  }
  m.payload = makeBytes("");
  return m;
}

// ---- HELLO --------------------------------------------------------------------------------------

TEST(ProtoTcpFrameReliableTest, HelloEpochLastSeqAndResumeBecomeHandshakeFields) {
  const std::string resume =
      R"({"user":{"epoch":"9f3a0c11d2e4b5a6","seq":7},"room:a b":{"epoch":"1","seq":2}})";
  client::Hello h{"tok", "dev", "sdk/1", {}, uint64_t{7}, kEpoch, resume};
  const Outcome o = expectSplitInvariant(client::encodeHello(h, 3));
  ASSERT_FALSE(o.error);
  ASSERT_TRUE(o.hello);
  const HttpRequest& r = *o.hello;
  EXPECT_EQ(r.header("x-epoch"), "9f3a0c11d2e4b5a6");
  EXPECT_EQ(r.header("x-last-seq"), "7");
  EXPECT_EQ(r.header("x-imgate-resume"), resume);
  EXPECT_EQ(r.queryParam("epoch"), "9f3a0c11d2e4b5a6");
  EXPECT_EQ(r.queryParam("last_seq"), "7");
  EXPECT_EQ(r.queryParam("resume"), resume);
  // Percent-encoded: the JSON's quotes, braces and spaces never reach the raw query.
  EXPECT_EQ(r.query.find_first_of("\"{} "), std::string::npos);
  EXPECT_EQ(r.target, "/?" + r.query);
}

TEST(ProtoTcpFrameReliableTest, HelloPassesEpochZeroAndUnparsedResumeThrough) {
  // The codec does not judge positions: epoch 0, an epoch without last_seq and resume text that
  // is not JSON all reach the core, which validates them.
  client::Hello h{"tok", "", "", {}, {}, uint64_t{0}, "not json"};
  const Outcome o = run(client::encodeHello(h, 1), {});
  ASSERT_FALSE(o.error);
  ASSERT_TRUE(o.hello);
  EXPECT_EQ(o.hello->header("x-epoch"), "0");
  EXPECT_FALSE(o.hello->header("x-last-seq"));
  EXPECT_EQ(o.hello->header("x-imgate-resume"), "not json");
  // Absent fields add nothing; an empty resume is absent.
  std::string body = tlv(Tag::kToken, "tok") + tlv(Tag::kResume, "");
  const Outcome plain = run(buildFrame(FrameType::kHello, 0, 1, body), {});
  ASSERT_TRUE(plain.hello);
  EXPECT_FALSE(plain.hello->header("x-epoch"));
  EXPECT_FALSE(plain.hello->header("x-imgate-resume"));
  EXPECT_FALSE(plain.hello->queryParam("resume"));
  EXPECT_FALSE(plain.hello->queryParam("epoch"));
}

TEST(ProtoTcpFrameReliableTest, MalformedReliabilityFieldsFailAtEverySplit) {
  std::string short_epoch;
  TlvWriter(short_epoch).addU32(Tag::kEpoch, 1);
  std::string long_epoch = tlv(Tag::kEpoch, std::string(9, '\1'));
  struct Case {
    const char* name;
    std::string input;
    Errc code;
  };
  const std::vector<Case> cases = {
      {"hello epoch u32", buildFrame(FrameType::kHello, 0, 1, short_epoch), Errc::kProtocolError},
      {"hello epoch 9 bytes", buildFrame(FrameType::kHello, 0, 1, long_epoch),
       Errc::kProtocolError},
      {"resume with a newline",
       buildFrame(FrameType::kHello, 0, 1, tlv(Tag::kResume, "{\"user\":\n{}}")),
       Errc::kInvalidPayload},
      {"resume with DEL", buildFrame(FrameType::kHello, 0, 1, tlv(Tag::kResume, "{\x7f}")),
       Errc::kInvalidPayload},
      {"resume twice",
       buildFrame(FrameType::kHello, 0, 1, tlv(Tag::kResume, "{}") + tlv(Tag::kResume, "{}")),
       Errc::kProtocolError},
      {"read before hello", client::encodeRead(3, "user"), Errc::kProtocolError},
      {"read with id 0", hello() + client::encodeRead(0, "user"), Errc::kProtocolError},
      {"read stream twice",
       hello() + buildFrame(FrameType::kRead, 0, 3,
                            tlv(Tag::kStream, "user") + tlv(Tag::kStream, "all")),
       Errc::kProtocolError},
      {"push ack stream truncated",
       hello() + buildFrame(FrameType::kPushAck, 0, 3, tlv(Tag::kStream, "user").substr(0, 7)),
       Errc::kProtocolError},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Outcome o = expectSplitInvariant(c.input);
    ASSERT_TRUE(o.error);
    EXPECT_EQ(*o.error, c.code);
    EXPECT_TRUE(o.messages.empty());
    const auto out = frames(o.out);
    ASSERT_GE(out.size(), 2u);
    EXPECT_EQ(out[out.size() - 2].type, FrameType::kError);
    EXPECT_EQ(client::parseClose(out.back())->code, closeCodeFor(c.code));
  }
}

// ---- Client -> server: PUSH_ACK, READ -----------------------------------------------------------

TEST(ProtoTcpFrameReliableTest, PushAcksAndReadMarksDecodeTheSameAtEverySplit) {
  const std::string input =
      hello() + client::encodePushAck(5, "room:r1") + client::encodePushAck(6) +
      buildFrame(FrameType::kPushAck, 0, 7, tlv(Tag::kStream, "")) +
      buildFrame(FrameType::kPushAck, kFlagCompressed, 8, [] {
        std::string packed;
        deflateBody(tlv(Tag::kStream, "all"), 6, packed);
        return packed;
      }()) +
      client::encodeRead(9, "user") + client::encodeRead(UINT64_MAX) +
      client::encodeRead(4, "room:r1");
  const Outcome o = expectSplitInvariant(input);
  ASSERT_FALSE(o.error);
  // kind|type|to_kind|to|event|id|seq|stream|meta|data
  const std::vector<std::string> want = {
      "1|0|0||||5|room:r1||",
      "1|0|0||||6|||",
      "1|0|0||||7|||",
      "1|0|0||||8|all||",
      "2|0|0||read||9|user||",
      "2|0|0||read||18446744073709551615|||",
      "2|0|0||read||4|room:r1||",
  };
  EXPECT_EQ(o.messages, want);
  // The codec answers none of them itself: the output is the HELLO_ACK alone.
  EXPECT_EQ(frames(o.out).size(), 1u);
}

TEST(ProtoTcpFrameReliableTest, PushAckWithoutAStreamKeepsItsOldBytes) {
  // Clients written before streams existed send exactly this; it still means the user stream.
  EXPECT_EQ(client::encodePushAck(31), buildFrame(FrameType::kPushAck, 0, 31, {}));
  EXPECT_EQ(client::encodeRead(2), buildFrame(FrameType::kRead, 0, 2, {}));
  EXPECT_EQ(client::encodePushAck(31, "all"),
            buildFrame(FrameType::kPushAck, 0, 31, std::string("\x17\0\0\0\x03" "all", 8)));
}

// ---- Server -> client: PUSH, READ ---------------------------------------------------------------

TEST(ProtoTcpFrameReliableTest, SequencedPushBytesAreExact) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  Message m = roomPush(3, true, "d");
  m.event = "e";
  ASSERT_TRUE(codec.encode(m, out));
  const std::string body = std::string("\x17\0\0\0\x07room:r1", 12) +
                           std::string("\x18\0\0\0\x08\x9f\x3a\x0c\x11\xd2\xe4\xb5\xa6", 13) +
                           std::string("\x0C\0\0\0\x01" "e", 6) +
                           std::string("\x0D\0\0\0\x01" "d", 6);
  EXPECT_EQ(out.data, buildFrame(FrameType::kPush, kFlagAckRequired, 3, body));
}

TEST(ProtoTcpFrameReliableTest, StreamAndEpochOnlyWithASeqAndAckRequiredOnlyWhenReliable) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(roomPush(12, true), out));
  ASSERT_TRUE(codec.encode(roomPush(13, false), out));  // sequenced, sent once
  ASSERT_TRUE(codec.encode(roomPush(0, false), out));   // not part of a stream
  ASSERT_TRUE(codec.encode(roomPush(0, true), out));    // the flag follows `reliable` alone
  Message user = roomPush(1, true);
  user.stream = "user";
  user.epoch = 0;
  ASSERT_TRUE(codec.encode(user, out));
  const auto f = frames(out.data);
  ASSERT_EQ(f.size(), 5u);
  std::vector<client::Push> p;
  for (const auto& frame : f) {
    auto push = client::parsePush(frame);
    ASSERT_TRUE(push);
    p.push_back(*push);
  }
  EXPECT_EQ(p[0].seq, 12u);
  EXPECT_EQ(p[0].stream, "room:r1");
  EXPECT_EQ(p[0].epoch, kEpoch);
  EXPECT_TRUE(p[0].ack_required);
  EXPECT_EQ(p[0].data, "hi");
  EXPECT_EQ(p[1].seq, 13u);
  EXPECT_EQ(p[1].stream, "room:r1");
  EXPECT_FALSE(p[1].ack_required);
  EXPECT_EQ(p[2].seq, 0u);
  EXPECT_EQ(p[2].stream, "");
  EXPECT_FALSE(parseFields(f[2].body)->has(Tag::kStream));
  EXPECT_FALSE(parseFields(f[2].body)->has(Tag::kEpoch));
  EXPECT_FALSE(p[2].ack_required);
  EXPECT_TRUE(p[3].ack_required);
  EXPECT_EQ(p[4].stream, "user");
  EXPECT_EQ(p[4].epoch, 0u);
  EXPECT_TRUE(parseFields(f[4].body)->has(Tag::kEpoch));  // epoch 0 is still written
}

TEST(ProtoTcpFrameReliableTest, ReadMarksBecomeReadFrames) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(readMark("room:r1", 12, "tablet"), out));
  ASSERT_TRUE(codec.encode(readMark("user", 3, std::nullopt), out));
  const std::string first = buildFrame(FrameType::kRead, 0, 12,
                                       tlv(Tag::kStream, "room:r1") + tlv(Tag::kDevice, "tablet"));
  EXPECT_EQ(out.data.substr(0, first.size()), first);
  const auto f = frames(out.data);
  ASSERT_EQ(f.size(), 2u);
  auto r0 = client::parseRead(f[0]);
  ASSERT_TRUE(r0);
  EXPECT_EQ(r0->seq, 12u);
  EXPECT_EQ(r0->stream, "room:r1");
  EXPECT_EQ(r0->device, "tablet");
  EXPECT_EQ(f[0].flags, 0);
  EXPECT_FALSE(parseFields(f[0].body)->has(Tag::kData));
  auto r1 = client::parseRead(f[1]);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->seq, 3u);
  EXPECT_EQ(r1->stream, "user");
  EXPECT_EQ(r1->device, "");
  EXPECT_FALSE(client::parseRead(client::Frame{FrameType::kPush, 0, 1, ""}));
  // Other control notices stay PUSH frames with kind 2.
  Message join = readMark("", 0, std::nullopt);
  join.event = "join";
  out.data.clear();
  ASSERT_TRUE(codec.encode(join, out));
  auto p = client::parsePush(frames(out.data).at(0));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind, 2);
  EXPECT_EQ(p->event, "join");
}

TEST(ProtoTcpFrameReliableTest, SequencedPushesAndReadMarksShareOneEncoding) {
  TcpFrameCodec a(TcpFrameOptions{});
  TcpFrameCodec b(TcpFrameOptions{});
  const std::string big(2000, 'x');
  for (const Message& m : {roomPush(5, true), roomPush(6, false), roomPush(7, true, big),
                           readMark("room:r1", 4, "phone")}) {
    SCOPED_TRACE(m.seq);
    const uint64_t key = a.sharedEncodingKey(m);
    EXPECT_NE(key, 0u);
    EXPECT_EQ(key, b.sharedEncodingKey(m));
    FakeOut out_a;
    FakeOut out_b;
    ASSERT_TRUE(a.encode(m, out_a));
    ASSERT_TRUE(b.encode(m, out_b));
    EXPECT_EQ(out_a.data, out_b.data);
    EXPECT_EQ(*a.encodeShared(m), out_a.data);
  }
  // A compressed sequenced push is shared too, and still carries its stream fields.
  auto p = client::parsePush(frames(*a.encodeShared(roomPush(7, true, big))).at(0));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->compressed);
  EXPECT_EQ(p->stream, "room:r1");
  EXPECT_EQ(p->epoch, kEpoch);
  EXPECT_EQ(p->data, big);
}

TEST(ProtoTcpFrameReliableTest, ClientsAckDownlink) {
  TcpFrameCodec codec(TcpFrameOptions{});
  const Codec& base = codec;
  EXPECT_TRUE(base.acksDownlink());
}

// ---- HELLO_ACK streams --------------------------------------------------------------------------

SessionOpened openedWithStreams() {
  SessionOpened opened = testing::testOpened();
  opened.streams = {
      {"user", kEpoch, 7, StreamStart::Outcome::kRecovered, 3},
      {std::string("room:a\"b\n\x01", 10), 0, 0, StreamStart::Outcome::kImpossible, 0},
      {"all", 1, UINT64_MAX, StreamStart::Outcome::kFresh, 0},
  };
  return opened;
}

// The `streams` field of openedWithStreams()'s HELLO_ACK.
constexpr std::string_view kStreamsJson =
    R"({"user":{"epoch":"9f3a0c11d2e4b5a6","seq":7,"recovery":"recovered","replayed":3},)"
    R"("room:a\"b\n\u0001":{"epoch":"0","seq":0,"recovery":"impossible","replayed":0},)"
    R"("all":{"epoch":"1","seq":18446744073709551615,"recovery":"fresh","replayed":0}})";

TEST(ProtoTcpFrameReliableTest, HelloAckCarriesStreamsOnlyWhenThereAreAny) {
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeSink sink;
  FakeOut out;
  ASSERT_TRUE(codec.decode(hello(), sink, out));
  codec.onOpened(openedWithStreams(), out);
  auto f = frames(out.data);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(parseFields(f[0].body)->str(Tag::kStreams), kStreamsJson);
  auto ack = client::parseHelloAck(f[0]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->id, 5u);
  EXPECT_EQ(ack->session_id, 77u);
  ASSERT_EQ(ack->streams.size(), 3u);
  EXPECT_EQ(ack->streams[0].stream, "user");
  EXPECT_EQ(ack->streams[0].epoch, kEpoch);
  EXPECT_EQ(ack->streams[0].seq, 7u);
  EXPECT_EQ(ack->streams[0].recovery, client::StreamPosition::Recovery::kRecovered);
  EXPECT_EQ(ack->streams[0].replayed, 3u);
  EXPECT_EQ(ack->streams[1].stream, std::string("room:a\"b\n\x01", 10));
  EXPECT_EQ(ack->streams[1].recovery, client::StreamPosition::Recovery::kImpossible);
  EXPECT_EQ(ack->streams[2].seq, UINT64_MAX);
  EXPECT_EQ(ack->streams[2].recovery, client::StreamPosition::Recovery::kFresh);

  TcpFrameCodec none(TcpFrameOptions{});
  FakeOut out2;
  none.onOpened(testing::testOpened(), out2);
  auto f2 = frames(out2.data);
  ASSERT_EQ(f2.size(), 1u);
  EXPECT_FALSE(parseFields(f2[0].body)->has(Tag::kStreams));
  EXPECT_TRUE(client::parseHelloAck(f2[0])->streams.empty());
}

TEST(ProtoTcpFrameReliableTest, ManyStreamsCompressTheHelloAck) {
  SessionOpened opened = testing::testOpened();
  for (int i = 0; i < 500; ++i) {
    opened.streams.push_back({"room:r" + std::to_string(i), kEpoch, uint64_t(i),
                              StreamStart::Outcome::kFresh, 0});
  }
  TcpFrameCodec codec(TcpFrameOptions{});
  FakeOut out;
  codec.onOpened(opened, out);
  std::string json;
  appendStreamsJson(json, opened.streams);
  EXPECT_LT(out.data.size(), json.size() / 4);
  auto f = frames(out.data);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_NE(f[0].flags & kFlagCompressed, 0);
  auto ack = client::parseHelloAck(f[0]);
  ASSERT_TRUE(ack);
  ASSERT_EQ(ack->streams.size(), 500u);
  EXPECT_EQ(ack->streams[499].stream, "room:r499");
  EXPECT_EQ(ack->streams[499].seq, 499u);
  // compression: false sends it as it is.
  TcpFrameOptions off;
  off.compression = false;
  TcpFrameCodec plain(off);
  FakeOut out2;
  plain.onOpened(opened, out2);
  EXPECT_EQ(frames(out2.data).at(0).flags, 0);
  EXPECT_GT(out2.data.size(), json.size());
}

// ---- Client library -----------------------------------------------------------------------------

TEST(ProtoTcpFrameReliableTest, ClientResumeJsonRoundTripsThroughTheStreamsParser) {
  const std::vector<client::StreamPosition> positions = {
      {"user", kEpoch, 7, {}, 0},
      {"room:\"q\"", 0, 0, {}, 0},
  };
  const std::string json = client::resumeJson(positions);
  EXPECT_EQ(json, R"({"user":{"epoch":"9f3a0c11d2e4b5a6","seq":7},)"
                  R"("room:\"q\"":{"epoch":"0","seq":0}})");
  EXPECT_EQ(client::resumeJson({}), "{}");
  // The server's hello carries it as it is.
  const Outcome o = run(client::encodeHello({"t", "", "", {}, {}, {}, json}, 1), {});
  ASSERT_TRUE(o.hello);
  EXPECT_EQ(o.hello->header("x-imgate-resume"), json);
}

TEST(ProtoTcpFrameReliableTest, ClientStreamsParserRejectsMalformedJson) {
  EXPECT_TRUE(client::parseStreams("{}"));
  for (const char* bad : {
           "",
           "[]",
           "{\"user\":1}",
           R"({"user":{"epoch":"1","seq":1,"recovery":"fresh"}})",
           R"({"user":{"epoch":1,"seq":1,"recovery":"fresh","replayed":0}})",
           R"({"user":{"epoch":"xyz","seq":1,"recovery":"fresh","replayed":0}})",
           R"({"user":{"epoch":"","seq":1,"recovery":"fresh","replayed":0}})",
           R"({"user":{"epoch":"1","seq":-1,"recovery":"fresh","replayed":0}})",
           R"({"user":{"epoch":"1","seq":1,"recovery":"maybe","replayed":0}})",
           R"({"user":{"epoch":"10000000000000000","seq":1,"recovery":"fresh","replayed":0}})",
           "{\"user\":{\"epoch\":\"1\"",
       }) {
    SCOPED_TRACE(bad);
    auto r = client::parseStreams(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidPayload);
  }
  // A HELLO_ACK whose streams field is malformed fails to parse as a whole.
  std::string body;
  TlvWriter w(body);
  w.addU64(Tag::kSessionId, 1);
  w.addString(Tag::kStreams, "nope");
  EXPECT_FALSE(client::parseHelloAck(client::Frame{FrameType::kHelloAck, 0, 1, body}));
  std::string bad_epoch;
  TlvWriter(bad_epoch).addU32(Tag::kEpoch, 1);
  EXPECT_FALSE(client::parsePush(client::Frame{FrameType::kPush, 0, 1, bad_epoch}));
}

}  // namespace
}  // namespace imgate::mod::tcp_frame
