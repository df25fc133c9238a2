// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/hooks/hooks_stage.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <set>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/stats.h"
#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::hooks {
namespace {

class FakeSession final : public Session {
 public:
   SessionExpiry expiry() const override { return {}; }
  uint64_t id() const override { return 42; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "edge"; }
  std::string_view peerAddress() const override { return "127.0.0.1:5555"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view) const override { return {}; }
  std::optional<std::string> handshakeQuery(std::string_view) const override { return {}; }
  const std::vector<std::string>& offeredSubprotocols() const override { return none_; }
  Identity identity_{"shop", "alice", "phone"};
  std::vector<std::string> none_;
};

class FakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override { return nullptr; }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return wall_ms; }
  int64_t wall_ms = 1'700'000'000'000;
};

class Callbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Logger& log() override { return logger; }
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++resumed; }
  void reject(Errc code, std::string) override { rejected.push_back(code); }
  void close(Errc, std::string) override {}
  void reply(Message m) override { replies.push_back(std::move(m)); }
  void setIdentity(Identity, std::vector<std::string>) override {}
  Upstreams& upstreams() override { return up; }
  Hub& hub() override { return hub_; }
  mocks::NullHub hub_;
  FakeSession session_;
  FakeDispatcher dispatcher_;
  mocks::FakeUpstreams up;
  int resumed = 0;
  std::vector<Errc> rejected;
  std::vector<Message> replies;
  mocks::RecordingLogger logger;
};

class Context final : public LoadContext {
 public:
  std::string_view instanceName() const override { return "p[1]:hooks"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return logger_; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view g) const override { return groups.count(std::string(g)) > 0; }
  std::set<std::string> groups = {"presence"};
  core::PrefixLogger logger_{"hooks: "};
  core::InstanceStats stats_{"hooks-test"};
};

Result<StageConfigPtr> compile(const std::string& yaml) {
  Context ctx;
  auto doc = core::config::loadString(yaml, "t.yaml");
  EXPECT_TRUE(doc.has_value());
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, hooksSchema(), "hooks", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(errors));
  }
  return compileHooks(*section, ctx);
}

const HooksConfig& hooksConfig(const StageConfigPtr& config) {
  return dynamic_cast<const HooksConfig&>(*config);
}

struct Counts {
  uint64_t sent, failed, applied, invalid;
  static Counts of(const StageConfigPtr& c) {
    const HooksConfig& h = hooksConfig(c);
    return {h.sent().value(), h.failed().value(), h.applied().value(), h.invalid().value()};
  }
};

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  EXPECT_FALSE(d.HasParseError()) << body;
  return d;
}

Message control(std::string event, std::string room) {
  Message m;
  m.kind = MessageKind::kControl;
  m.event = std::move(event);
  m.to_kind = TargetKind::kRoom;
  m.to = std::move(room);
  m.app = "shop";
  m.from = "alice";
  m.payload = makeBytes("");
  return m;
}

UpstreamResponse ok(std::string body) { return UpstreamResponse{200, {}, std::move(body), "b"}; }

constexpr const char* kBasic = "upstream: presence\n";

TEST(HooksStageTest, ConnectIsPostedWithoutHoldingTheSessionOpen) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config) << config.error().message;
  const Counts before = Counts::of(*config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  const Verdict v = stage->onOpen();
  EXPECT_EQ(v.action, Action::kPass);
  ASSERT_EQ(cb.up.calls.size(), 1u);
  const auto& call = cb.up.calls[0];
  EXPECT_EQ(call.group, "presence");
  EXPECT_EQ(call.request.method, "POST");
  EXPECT_EQ(call.request.path, "/imgate/events");
  EXPECT_EQ(call.request.hash_key, "shop/alice");
  EXPECT_EQ(call.request.timeout.count(), 0);
  bool json = false;
  bool event_header = false;
  for (const auto& h : call.request.headers) {
    json |= h.name == "content-type" && h.value == "application/json";
    event_header |= h.name == "x-imgate-event" && h.value == "connect";
  }
  EXPECT_TRUE(json);
  EXPECT_TRUE(event_header);
  auto d = parse(call.request.body);
  EXPECT_STREQ(d["event"].GetString(), "connect");
  EXPECT_STREQ(d["app"].GetString(), "shop");
  EXPECT_STREQ(d["user"].GetString(), "alice");
  EXPECT_STREQ(d["device"].GetString(), "phone");
  EXPECT_STREQ(d["session"].GetString(), "42");
  EXPECT_STREQ(d["listener"].GetString(), "edge");
  EXPECT_STREQ(d["protocol"].GetString(), "proto.websocket");
  EXPECT_STREQ(d["peer"].GetString(), "127.0.0.1:5555");
  EXPECT_EQ(d["ts"].GetInt64(), 1'700'000'000'000);
  EXPECT_FALSE(d.HasMember("room"));
  EXPECT_FALSE(d.HasMember("duration_ms"));
  EXPECT_EQ(Counts::of(*config).sent, before.sent + 1);
}

TEST(HooksStageTest, ConnectAnswerRepliesMessagesInOrderAndJoinsRooms) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  const Counts before = Counts::of(*config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  (void)stage->onOpen();
  cb.dispatcher_.wall_ms += 250;
  cb.up.complete(ok(R"({"messages":[{"data":"welcome","event":"hello"},)"
                    R"({"data":{"unread":3}},{"data_base64":"AP8=","event":"bin"}],)"
                    R"("rooms":["lobby","vip"],"extra":true})"));
  ASSERT_EQ(cb.replies.size(), 3u);
  EXPECT_EQ(cb.replies[0].kind, MessageKind::kData);
  EXPECT_EQ(cb.replies[0].type, PayloadType::kText);
  EXPECT_EQ(cb.replies[0].data(), "welcome");
  EXPECT_EQ(cb.replies[0].event, "hello");
  EXPECT_EQ(cb.replies[0].app, "shop");
  EXPECT_EQ(cb.replies[0].ts_ms, 1'700'000'000'250);
  EXPECT_EQ(cb.replies[1].data(), R"({"unread":3})");
  EXPECT_EQ(cb.replies[1].type, PayloadType::kText);
  EXPECT_TRUE(cb.replies[1].event.empty());
  EXPECT_EQ(cb.replies[2].type, PayloadType::kBinary);
  EXPECT_EQ(cb.replies[2].data(), std::string("\x00\xff", 2));
  EXPECT_EQ(cb.replies[2].event, "bin");
  ASSERT_EQ(cb.hub_.joins.size(), 2u);
  EXPECT_EQ(cb.hub_.joins[0].app, "shop");
  EXPECT_EQ(cb.hub_.joins[0].room, "lobby");
  EXPECT_EQ(cb.hub_.joins[0].users, std::vector<std::string>{"alice"});
  EXPECT_EQ(cb.hub_.joins[1].room, "vip");
  EXPECT_TRUE(cb.rejected.empty());
  const Counts after = Counts::of(*config);
  EXPECT_EQ(after.applied, before.applied + 1);
  EXPECT_EQ(after.failed, before.failed);
}

TEST(HooksStageTest, EmptyAnswersAreValidAndApplyNothing) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  for (const char* body : {"", "  \r\n", "{}", R"({"messages":[],"rooms":[]})"}) {
    const Counts before = Counts::of(*config);
    Callbacks cb;
    auto stage = (*config)->createStage(cb);
    (void)stage->onOpen();
    cb.up.complete(UpstreamResponse{204, {}, body, "b"});
    EXPECT_TRUE(cb.replies.empty()) << body;
    EXPECT_TRUE(cb.hub_.joins.empty()) << body;
    const Counts after = Counts::of(*config);
    EXPECT_EQ(after.failed, before.failed) << body;
    EXPECT_EQ(after.applied, before.applied) << body;
  }
}

TEST(HooksStageTest, BadAnswersAreIgnoredAndCountedWithoutClosingTheSession) {
  auto config = compile("upstream: presence\nmax_messages: 2\nmax_rooms: 1\nmax_answer: 200\n");
  ASSERT_TRUE(config) << config.error().message;
  const std::vector<std::string> bad = {
      "not json",
      "[1,2]",
      R"("welcome")",
      R"({"messages":{"data":"x"}})",
      R"({"messages":["x"]})",
      R"({"messages":[{"event":"e"}]})",
      R"({"messages":[{"data":"x","data_base64":"eA=="}]})",
      R"({"messages":[{"data_base64":"not base64!"}]})",
      R"({"messages":[{"data_base64":7}]})",
      R"({"messages":[{"data":"x","event":5}]})",
      R"({"messages":[{"data":1},{"data":2},{"data":3}]})",  // over max_messages
      R"({"rooms":"lobby"})",
      R"({"rooms":[""]})",
      R"({"rooms":[1]})",
      R"({"rooms":["a","b"]})",                               // over max_rooms
      R"({"messages":[{"data":"ok"}],"rooms":[3]})",          // nothing half-applied
      R"({"rooms":["a"]} trailing)",
      std::string(201, ' '),                                  // over max_answer
      std::string(150, '[') + std::string(150, ']'),          // deep nesting, iteratively parsed
      "{\"messages\":[{\"data\":\"\xC3(\"}]}",                      // not UTF-8
      R"({"messages":[{"data":"\udc00"}]})",                  // lone surrogates: not UTF-8 text
      R"({"messages":[{"data":{"k":"a\udfff"}}]})",
      R"({"messages":[{"data":"x","event":"\udc00"}]})",
      R"({"rooms":["r\udc00"]})",
  };
  for (const std::string& body : bad) {
    const Counts before = Counts::of(*config);
    Callbacks cb;
    auto stage = (*config)->createStage(cb);
    (void)stage->onOpen();
    cb.up.complete(ok(body));
    EXPECT_TRUE(cb.replies.empty()) << body;
    EXPECT_TRUE(cb.hub_.joins.empty()) << body;
    EXPECT_TRUE(cb.rejected.empty()) << body;
    const Counts after = Counts::of(*config);
    EXPECT_EQ(after.invalid, before.invalid + 1) << body;
    EXPECT_EQ(after.failed, before.failed + 1) << body;
    EXPECT_EQ(after.applied, before.applied) << body;
    ASSERT_EQ(cb.logger.lines.size(), 1u) << body;  // the operator sees why
    EXPECT_EQ(cb.logger.lines[0].first, LogLevel::kWarn);
    EXPECT_EQ(cb.logger.lines[0].second.rfind("connect answer ignored: ", 0), 0u);
    Message m = control("join", "r");
    EXPECT_EQ(stage->onMessage(m).action, Action::kPass);  // the session goes on
  }
}

TEST(HooksStageTest, ParseErrorsSayWhatIsWrong) {
  Settings s;
  s.max_messages = 1;
  auto r = parseConnectAnswer(R"({"messages":[{"data":1},{"data":2}]})", s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidPayload);
  EXPECT_NE(r.error().message.find("more than 1 messages"), std::string::npos);
  r = parseConnectAnswer(R"({"messages":[{"data_base64":"%%"}]})", s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("messages[0].data_base64"), std::string::npos);
  r = parseConnectAnswer("{", s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not JSON"), std::string::npos);
  r = parseConnectAnswer(R"({"messages":[{"data":"\udc00"}]})", s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("messages[0].data is not valid UTF-8"), std::string::npos);
}

TEST(HooksStageTest, FailedWebhooksAreCounted) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  const std::vector<Result<UpstreamResponse>> cases = {
      UpstreamResponse{500, {}, R"({"messages":[{"data":"x"}]})", "b"},
      UpstreamResponse{403, {}, "", "b"},
      fail(Errc::kTimeout, "timed out"),
      fail(Errc::kUnavailable, "no healthy backend"),
  };
  for (const auto& result : cases) {
    const Counts before = Counts::of(*config);
    Callbacks cb;
    auto stage = (*config)->createStage(cb);
    (void)stage->onOpen();
    cb.up.complete(result);
    EXPECT_TRUE(cb.replies.empty());
    EXPECT_TRUE(cb.rejected.empty());
    const Counts after = Counts::of(*config);
    EXPECT_EQ(after.failed, before.failed + 1);
    EXPECT_EQ(after.invalid, before.invalid);
  }
}

TEST(HooksStageTest, AnonymousSessionsGetMessagesButNoRooms) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  Callbacks cb;
  cb.session_.identity_ = Identity{};
  auto stage = (*config)->createStage(cb);
  (void)stage->onOpen();
  auto d = parse(cb.up.calls.at(0).request.body);
  EXPECT_STREQ(d["app"].GetString(), "default");
  EXPECT_STREQ(d["user"].GetString(), "");
  cb.session_.identity_.app = "default";  // what the core sets when it accepts the session
  cb.up.complete(ok(R"({"messages":[{"data":"hi"}],"rooms":["lobby"]})"));
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(cb.replies[0].app, "default");
  EXPECT_TRUE(cb.hub_.joins.empty());
}

TEST(HooksStageTest, DisconnectCarriesTheDurationAndIsFireAndForget) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  const Counts before = Counts::of(*config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  (void)stage->onOpen();
  cb.dispatcher_.wall_ms += 2'500;
  stage->onClose();
  ASSERT_EQ(cb.up.calls.size(), 2u);
  EXPECT_EQ(cb.up.calls[1].request.path, "/imgate/events");
  auto d = parse(cb.up.calls[1].request.body);
  EXPECT_STREQ(d["event"].GetString(), "disconnect");
  EXPECT_STREQ(d["session"].GetString(), "42");
  EXPECT_STREQ(d["user"].GetString(), "alice");
  EXPECT_EQ(d["ts"].GetInt64(), 1'700'000'002'500);
  EXPECT_EQ(d["duration_ms"].GetInt64(), 2'500);
  // The stage is gone before the answers: the disconnect completion must not touch it.
  stage.reset();
  cb.up.calls.erase(cb.up.calls.begin());  // the core would drop the connect completion
  cb.up.complete(fail(Errc::kTimeout, "late"));
  EXPECT_EQ(Counts::of(*config).failed, before.failed + 1);
  EXPECT_EQ(Counts::of(*config).sent, before.sent + 2);
}

TEST(HooksStageTest, DisconnectWithoutOpenHasNoDuration) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);  // as after a reload: onOpen is not run again
  stage->onClose();
  ASSERT_EQ(cb.up.calls.size(), 1u);
  auto d = parse(cb.up.calls[0].request.body);
  EXPECT_STREQ(d["event"].GetString(), "disconnect");
  EXPECT_FALSE(d.HasMember("duration_ms"));
}

TEST(HooksStageTest, JoinAndLeaveArePostedAndPassedOn) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message join = control("join", "room-1");
  EXPECT_EQ(stage->onMessage(join).action, Action::kPass);
  EXPECT_EQ(join.to, "room-1");  // untouched for the next stage
  Message leave = control("leave", "room-1");
  EXPECT_EQ(stage->onMessage(leave).action, Action::kPass);
  ASSERT_EQ(cb.up.calls.size(), 2u);
  auto d = parse(cb.up.calls[0].request.body);
  EXPECT_STREQ(d["event"].GetString(), "join");
  EXPECT_STREQ(d["room"].GetString(), "room-1");
  EXPECT_STREQ(d["user"].GetString(), "alice");
  d = parse(cb.up.calls[1].request.body);
  EXPECT_STREQ(d["event"].GetString(), "leave");
  EXPECT_STREQ(d["room"].GetString(), "room-1");
  // The gateway does not join on the client's say-so, even when the backend answers 200.
  cb.up.complete(ok(R"({"rooms":["room-1"]})"));
  EXPECT_TRUE(cb.hub_.joins.empty());

  Message data;
  data.event = "join";
  data.payload = makeBytes("x");
  EXPECT_EQ(stage->onMessage(data).action, Action::kPass);
  Message kick = control("kick", "x");
  EXPECT_EQ(stage->onMessage(kick).action, Action::kPass);
  EXPECT_EQ(cb.up.calls.size(), 1u);  // neither data nor other control events are posted
  EXPECT_TRUE(cb.replies.empty());
}

TEST(HooksStageTest, PendingJoinWebhooksAreBounded) {
  auto config = compile("upstream: presence\nmax_pending: 2\n");
  ASSERT_TRUE(config);
  const Counts before = Counts::of(*config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  for (int i = 0; i < 3; ++i) {
    Message m = control("join", "r" + std::to_string(i));
    EXPECT_EQ(stage->onMessage(m).action, Action::kPass);
  }
  EXPECT_EQ(cb.up.calls.size(), 2u);
  EXPECT_EQ(Counts::of(*config).failed, before.failed + 1);
  cb.up.complete(ok(""));
  Message m = control("leave", "r0");
  (void)stage->onMessage(m);
  EXPECT_EQ(cb.up.calls.size(), 2u);  // one answered, one new
}

TEST(HooksStageTest, EventsFilterAndPathTemplate) {
  auto config = compile("upstream: presence\nevents: [disconnect, leave]\npath: /hooks/{event}\n"
                        "timeout: 2s\n");
  ASSERT_TRUE(config) << config.error().message;
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  EXPECT_EQ(stage->onOpen().action, Action::kPass);
  Message join = control("join", "r");
  (void)stage->onMessage(join);
  EXPECT_TRUE(cb.up.calls.empty());
  Message leave = control("leave", "r");
  (void)stage->onMessage(leave);
  stage->onClose();
  ASSERT_EQ(cb.up.calls.size(), 2u);
  EXPECT_EQ(cb.up.calls[0].request.path, "/hooks/leave");
  EXPECT_EQ(cb.up.calls[1].request.path, "/hooks/disconnect");
  EXPECT_EQ(cb.up.calls[1].request.timeout.count(), 2000);
  EXPECT_EQ(expandPath("/a/{event}/{event}/{x}", Event::kJoin), "/a/join/join/{x}");
}

TEST(HooksStageTest, DefaultsAreAllEventsAndDocumentedLimits) {
  auto config = compile(kBasic);
  ASSERT_TRUE(config);
  const Settings& s = hooksConfig(*config).settings();
  EXPECT_EQ(s.path, "/imgate/events");
  EXPECT_EQ(s.events, 0xf);
  EXPECT_EQ(s.max_answer, 64u * 1024);
  EXPECT_EQ(s.max_messages, 16u);
  EXPECT_EQ(s.max_rooms, 16u);
  EXPECT_EQ(s.max_pending, 16u);
}

TEST(HooksStageTest, ConfigErrorsAreClear) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"events: [connect]\n", "upstream"},
      {"upstream: nope\n", "no upstream group named \"nope\""},
      {"upstream: presence\nevents: [connect, login]\n", "unknown event \"login\""},
      {"upstream: presence\nevents: []\n", "events"},
      {"upstream: presence\npath: imgate\n", "must start with /"},
      {"upstream: presence\nmax_pending: 0\n", "max_pending"},
      {"upstream: presence\nmax_messages: 1025\n", "max_messages"},
      {"upstream: presence\ntimeout: 301s\n", "timeout"},
      {"upstream: presence\nretries: 2\n", "retries"},
  };
  for (const Case& c : cases) {
    auto config = compile(c.yaml);
    ASSERT_FALSE(config) << c.yaml;
    EXPECT_EQ(config.error().code, Errc::kInvalidConfig) << c.yaml;
    EXPECT_NE(config.error().message.find(c.expect), std::string::npos)
        << c.yaml << " -> " << config.error().message;
  }
}

}  // namespace
}  // namespace imgate::mod::hooks
