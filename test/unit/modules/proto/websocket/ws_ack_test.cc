// SPDX-License-Identifier: Apache-2.0
// How acks (answers to client messages, e.g. from the route stage) look on plain WebSocket.
#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "modules/proto/websocket/ws_codec.h"
#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

namespace imgate::mod::websocket::testing {
namespace {

Message ack(std::string status, std::string body, std::string reason = {}) {
  Message m;
  m.kind = MessageKind::kAck;
  m.id = "m1";
  m.event = "chat";
  m.meta.emplace_back("status", std::move(status));
  if (!reason.empty()) {
    m.meta.emplace_back("reason", std::move(reason));
  }
  m.payload = makeBytes(std::move(body));
  return m;
}

TEST(WsAckTest, BareSuccessSendsNothing) {
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(ack("ok", ""), out));
  EXPECT_TRUE(out.data.empty());
}

TEST(WsAckTest, SuccessWithReplyBodySendsTheBody) {
  WsCodec codec(WsCodecOptions{});
  FakeOut out;
  ASSERT_TRUE(codec.encode(ack("ok", R"({"stored":true})"), out));
  const auto frames = parseServerFrames(out.data);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 1);
  EXPECT_EQ(frames[0].payload, R"({"stored":true})");
}

TEST(WsAckTest, ErrorBecomesAJsonErrorMessage) {
  const std::pair<std::string, std::string> cases[] = {
      {"backend \"x\" down",
       R"({"type":"error","id":"m1","event":"chat","error":"unavailable",)"
       R"("reason":"backend \"x\" down"})"},
      // Escaped as JSON.stringify escapes them.
      {"line\nbreak\t\x01\\",
       R"({"type":"error","id":"m1","event":"chat","error":"unavailable",)"
       R"("reason":"line\nbreak\t\u0001\\"})"},
  };
  for (const auto& [reason, json] : cases) {
    WsCodec codec(WsCodecOptions{});
    FakeOut out;
    ASSERT_TRUE(codec.encode(ack("unavailable", "", reason), out));
    const auto frames = parseServerFrames(out.data);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, json);
  }
}

}  // namespace
}  // namespace imgate::mod::websocket::testing
