// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/echo/echo_stage.h"
#include "test/mocks/sdk_fakes.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "imgate/sdk/module.h"
#include "test/unit/modules/proto/http_push/fake_config_view.h"

// Defined by IMGATE_MODULE in echo_module.cc.
const imgate::ModuleFactory& imgate_module_echo();

namespace imgate::mod::echo {
namespace {

class EchoFakeSession final : public Session {
 public:
   SessionExpiry expiry() const override { return {}; }
  uint64_t id() const override { return 1; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "test"; }
  std::string_view peerAddress() const override { return "127.0.0.1:1"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<std::string> handshakeQuery(std::string_view) const override {
    return std::nullopt;
  }
  const std::vector<std::string>& offeredSubprotocols() const override { return protocols_; }

 private:
  Identity identity_;
  std::vector<std::string> protocols_;
};

class EchoFakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    return std::make_unique<Timer>();
  }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
};

// Records what the stage asks of the core.
class EchoFakeCallbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Upstreams& upstreams() override { return fake_upstreams; }
  Hub& hub() override { return fake_hub_; }
  ::imgate::mocks::NullHub fake_hub_;
  ::imgate::mocks::FakeUpstreams fake_upstreams;
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++resumes; }
  void reject(Errc, std::string) override { ++rejects; }
  void close(Errc, std::string) override {}
  void reply(Message message) override { replies.push_back(std::move(message)); }
  void setIdentity(Identity, std::vector<std::string>) override { ++identities; }

  std::vector<Message> replies;
  int resumes = 0;
  int rejects = 0;
  int identities = 0;

 private:
  EchoFakeSession session_;
  EchoFakeDispatcher dispatcher_;
};

const StageFactory& factory() { return dynamic_cast<const StageFactory&>(imgate_module_echo()); }

StageConfigPtr compileEcho() {
  test::http_push::FakeConfigView view(factory().schema());
  test::http_push::FakeLoadContext context;
  auto compiled = factory().compile(view, context);
  EXPECT_TRUE(compiled);
  return compiled ? *compiled : nullptr;
}

TEST(EchoModule, Factory) {
  const auto& f = factory();
  EXPECT_EQ(f.name(), "echo");
  EXPECT_EQ(f.kind(), ModuleKind::kStage);
  EXPECT_TRUE(f.terminal());
  EXPECT_TRUE(f.schema().empty());
  EXPECT_FALSE(f.description().empty());
  const auto config = compileEcho();
  ASSERT_NE(config, nullptr);
  EXPECT_FALSE(config->wantsOutbound());
}

TEST(EchoStage, RepliesWithTheSamePayloadObject) {
  const auto config = compileEcho();
  ASSERT_NE(config, nullptr);
  EchoFakeCallbacks callbacks;
  const auto stage = config->createStage(callbacks);
  ASSERT_NE(stage, nullptr);
  EXPECT_EQ(stage->onOpen().action, Action::kPass);

  for (const PayloadType type : {PayloadType::kText, PayloadType::kBinary}) {
    callbacks.replies.clear();
    Message in;
    in.kind = MessageKind::kData;
    in.type = type;
    in.app = "a";
    in.from = "u1";
    in.event = "chat";
    in.id = "m1";
    in.payload = makeBytes(std::string("hi\0there", 8));
    const Bytes sent = in.payload;

    const Verdict v = stage->onMessage(in);
    EXPECT_EQ(v.action, Action::kPass);
    ASSERT_EQ(callbacks.replies.size(), 1u);
    const Message& out = callbacks.replies[0];
    EXPECT_EQ(out.type, type);
    EXPECT_EQ(out.kind, MessageKind::kData);
    EXPECT_EQ(out.event, "chat");
    EXPECT_EQ(out.id, "m1");
    EXPECT_EQ(out.payload.get(), sent.get());  // shared, not copied
    EXPECT_EQ(out.data(), std::string("hi\0there", 8));
    EXPECT_EQ(in.payload.get(), sent.get());  // the inbound message is left intact
  }
  EXPECT_EQ(callbacks.resumes + callbacks.rejects + callbacks.identities, 0);
}

TEST(EchoStage, IgnoresNonDataMessages) {
  const auto config = compileEcho();
  ASSERT_NE(config, nullptr);
  EchoFakeCallbacks callbacks;
  const auto stage = config->createStage(callbacks);
  for (const MessageKind kind :
       {MessageKind::kAck, MessageKind::kControl, MessageKind::kPresence}) {
    Message in;
    in.kind = kind;
    in.payload = makeBytes("x");
    EXPECT_EQ(stage->onMessage(in).action, Action::kPass);
  }
  EXPECT_TRUE(callbacks.replies.empty());
}

TEST(EchoStage, EmptyPayloadIsEchoed) {
  const auto config = compileEcho();
  ASSERT_NE(config, nullptr);
  EchoFakeCallbacks callbacks;
  const auto stage = config->createStage(callbacks);
  Message in;
  in.payload = makeBytes("");
  EXPECT_EQ(stage->onMessage(in).action, Action::kPass);
  ASSERT_EQ(callbacks.replies.size(), 1u);
  EXPECT_EQ(callbacks.replies[0].data(), "");
  EXPECT_EQ(callbacks.replies[0].payload.get(), in.payload.get());
}

}  // namespace
}  // namespace imgate::mod::echo
