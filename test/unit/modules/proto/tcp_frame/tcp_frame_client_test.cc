// SPDX-License-Identifier: Apache-2.0
// Round trips between the client library and the server codec.
#include "modules/proto/tcp_frame/client/tcp_frame_client.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "test/unit/modules/proto/tcp_frame/tcp_frame_fakes.h"

namespace imgate::mod::tcp_frame {
namespace {

using testing::FakeOut;
using testing::FakeSink;

TEST(ProtoTcpFrameClientTest, FullConversationRoundTrips) {
  TcpFrameCodec server(TcpFrameOptions{});
  FakeSink sink;
  FakeOut to_client;
  client::FrameDecoder decoder;

  const std::string hello = client::encodeHello({"jwt", "d1", "cpp/0.1", std::nullopt, 3}, 8);
  auto used = server.decode(hello, sink, to_client);
  ASSERT_TRUE(used);
  ASSERT_TRUE(sink.hello);
  EXPECT_EQ(sink.hello->header("x-last-seq"), "3");
  server.onOpened(testing::testOpened(), to_client);

  client::SendOptions options;
  options.compress = true;
  const std::string text(3000, 'q');
  ASSERT_TRUE(server.decode(client::encodeSend(21, "chat", text, options), sink, to_client));
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].id, "21");
  EXPECT_EQ(sink.messages[0].event, "chat");
  EXPECT_EQ(sink.messages[0].data(), text);

  Message reply;
  reply.kind = MessageKind::kAck;
  reply.id = sink.messages[0].id;
  reply.ts_ms = 99;
  reply.payload = makeBytes(text);  // compressed on the way back too
  ASSERT_TRUE(server.encode(reply, to_client));
  Message push;
  push.event = "news";
  push.seq = 4;
  push.stream = "room:r1";
  push.epoch = 0x9f3a0c11d2e4b5a6ull;
  push.reliable = true;
  push.payload = makeBytes("breaking");
  ASSERT_TRUE(server.encode(push, to_client));
  ASSERT_TRUE(server.decode(client::encodePushAck(push.seq, push.stream), sink, to_client));
  ASSERT_EQ(sink.messages.size(), 2u);
  EXPECT_EQ(sink.messages[1].kind, MessageKind::kAck);
  EXPECT_EQ(sink.messages[1].seq, 4u);
  EXPECT_EQ(sink.messages[1].stream, "room:r1");
  server.encodeClose(Errc::kShutdown, "bye", to_client);
  // After the close the server ignores the client's bytes.
  ASSERT_TRUE(server.decode(client::encodePushAck(push.seq), sink, to_client));
  EXPECT_EQ(sink.messages.size(), 2u);

  ASSERT_TRUE(decoder.feed(to_client.data));
  std::vector<client::Frame> got;
  while (auto f = decoder.next()) {
    got.push_back(std::move(*f));
  }
  ASSERT_EQ(got.size(), 5u);
  auto ack = client::parseHelloAck(got[0]);
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->id, 8u);
  EXPECT_EQ(ack->session_id, 77u);
  auto sack = client::parseSendAck(got[1]);
  ASSERT_TRUE(sack);
  EXPECT_EQ(sack->id, 21u);
  EXPECT_EQ(sack->data, text);
  EXPECT_EQ(sack->server_time_ms, 99u);
  EXPECT_NE(got[1].flags & kFlagCompressed, 0);
  auto p = client::parsePush(got[2]);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->seq, 4u);
  EXPECT_TRUE(p->ack_required);
  EXPECT_EQ(p->data, "breaking");
  EXPECT_EQ(p->stream, "room:r1");
  EXPECT_EQ(p->epoch, 0x9f3a0c11d2e4b5a6ull);
  EXPECT_TRUE(client::parseGoAway(got[3]));
  EXPECT_EQ(client::parseClose(got[4])->code, 1001);
}

TEST(ProtoTcpFrameClientTest, DecoderReassemblesAnySplit) {
  TcpFrameCodec server(TcpFrameOptions{});
  FakeOut out;
  server.onOpened(testing::testOpened(), out);
  Message m;
  m.event = "e";
  m.payload = makeBytes(std::string(1000, 'c'));
  ASSERT_TRUE(server.encode(m, out));
  server.encodePing(out);
  const std::string& bytes = out.data;
  auto collect = [&bytes](const std::vector<size_t>& cuts) {
    client::FrameDecoder decoder;
    size_t from = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(bytes.size());
    for (size_t end : ends) {
      EXPECT_TRUE(decoder.feed(std::string_view(bytes).substr(from, end - from)));
      from = end;
    }
    std::vector<std::string> types;
    while (auto f = decoder.next()) {
      types.push_back(std::string(frameTypeName(f->type)) + ":" + f->body);
    }
    return types;
  };
  const auto whole = collect({});
  ASSERT_EQ(whole.size(), 3u);
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    EXPECT_EQ(collect({cut}), whole) << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < bytes.size(); ++i) {
    every.push_back(i);
  }
  EXPECT_EQ(collect(every), whole);
}

TEST(ProtoTcpFrameClientTest, DecoderEnforcesItsLimitAndFailsForGood) {
  client::FrameDecoder decoder(100);
  Status s = decoder.feed(buildFrame(FrameType::kPush, 0, 0, std::string(101, 'x')));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kMessageTooBig);
  EXPECT_FALSE(decoder.feed(client::encodePing(1)));
  client::FrameDecoder garbage;
  EXPECT_FALSE(garbage.feed("GET / HTTP/1.1\r\n"));
}

TEST(ProtoTcpFrameClientTest, ParsersRejectTheWrongFrameType) {
  const client::Frame ping{FrameType::kPing, 0, 1, ""};
  EXPECT_FALSE(client::parseHelloAck(ping));
  EXPECT_FALSE(client::parsePush(ping));
  EXPECT_FALSE(client::parseSendAck(ping));
  EXPECT_FALSE(client::parseClose(ping));
  EXPECT_FALSE(client::parseGoAway(ping));
  const client::Frame no_session{FrameType::kHelloAck, 0, 1, ""};
  EXPECT_FALSE(client::parseHelloAck(no_session));
}

}  // namespace
}  // namespace imgate::mod::tcp_frame
