// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/route/route_stage.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/stats.h"
#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::route {
namespace {

class Session final : public imgate::Session {
 public:
   SessionExpiry expiry() const override { return {}; }
  uint64_t id() const override { return 77; }
  std::string_view protocol() const override { return "proto.tcp_frame"; }
  std::string_view listener() const override { return listener_; }
  std::string_view peerAddress() const override { return "127.0.0.1:1"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view) const override { return {}; }
  std::optional<std::string> handshakeQuery(std::string_view) const override { return {}; }
  const std::vector<std::string>& offeredSubprotocols() const override { return none_; }
  Identity identity_{"shop", "alice", "phone"};
  std::string listener_ = "tcp";
  std::vector<std::string> none_;
};

class Dispatcher final : public imgate::Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override { return nullptr; }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 1'700'000'000'000; }
};

class Callbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Logger& log() override { return logger; }
  imgate::Session& session() override { return session_; }
  imgate::Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++resumed; }
  void reject(Errc code, std::string) override { rejected.push_back(code); }
  void close(Errc, std::string) override {}
  void reply(Message m) override { replies.push_back(std::move(m)); }
  void setIdentity(Identity, std::vector<std::string>) override {}
  Upstreams& upstreams() override { return up; }
  Hub& hub() override { return fake_hub_; }
  ::imgate::mocks::NullHub fake_hub_;
  Session session_;
  Dispatcher dispatcher_;
  mocks::FakeUpstreams up;
  int resumed = 0;
  std::vector<Errc> rejected;
  std::vector<Message> replies;
  mocks::RecordingLogger logger;
};

class Context final : public LoadContext {
 public:
  std::string_view instanceName() const override { return "p[0]:route"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return logger_; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view g) const override { return groups.count(std::string(g)) > 0; }
  std::set<std::string> groups = {"chat", "chat-v2", "other"};
  core::PrefixLogger logger_{"route: "};
  core::InstanceStats stats_{"route-test"};
};

Result<StageConfigPtr> compile(const std::string& yaml, Context& ctx) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  EXPECT_TRUE(doc.has_value());
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, routeSchema(), "route", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(errors));
  }
  return compileRoute(*section, ctx);
}

Message send(std::string event, std::string body, std::string id = "m1") {
  Message m;
  m.app = "shop";
  m.from = "alice";
  m.event = std::move(event);
  m.id = std::move(id);
  m.ts_ms = 1'700'000'000'123;
  m.payload = makeBytes(std::move(body));
  return m;
}

std::string meta(const Message& m, std::string_view key) {
  for (const auto& [k, v] : m.meta) {
    if (k == key) return v;
  }
  return {};
}

constexpr const char* kRules = R"(
rules:
  - event: "chat\\..*"
    upstream: chat
    path: /im/{app}/{event}/{user}
  - event: admin
    user: "root|ops"
    upstream: other
)";

TEST(RouteStageTest, FirstMatchingRulePostsTheEnvelopeAndAcksWithTheReply) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config) << config.error().message;
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.send", "hi \"there\"");
  const Verdict v = stage->onMessage(m);
  EXPECT_EQ(v.action, Action::kPause);
  ASSERT_EQ(cb.up.calls.size(), 1u);
  const auto& call = cb.up.calls[0];
  EXPECT_EQ(call.group, "chat");
  EXPECT_EQ(call.request.method, "POST");
  EXPECT_EQ(call.request.path, "/im/shop/chat.send/alice");
  EXPECT_EQ(call.request.hash_key, "shop/alice");
  rapidjson::Document d;
  d.Parse(call.request.body.c_str());
  ASSERT_FALSE(d.HasParseError()) << call.request.body;
  EXPECT_STREQ(d["app"].GetString(), "shop");
  EXPECT_STREQ(d["user"].GetString(), "alice");
  EXPECT_STREQ(d["device"].GetString(), "phone");
  EXPECT_STREQ(d["session"].GetString(), "77");
  EXPECT_STREQ(d["id"].GetString(), "m1");
  EXPECT_STREQ(d["event"].GetString(), "chat.send");
  EXPECT_STREQ(d["body"].GetString(), "hi \"there\"");
  EXPECT_STREQ(d["type"].GetString(), "text");
  EXPECT_EQ(d["ts"].GetInt64(), 1'700'000'000'123);
  EXPECT_EQ(std::string(d["trace_id"].GetString()).size(), 16u);
  EXPECT_EQ(cb.resumed, 0);

  cb.up.complete(UpstreamResponse{200, {}, R"({"msg_id":9})", "127.0.0.1:9000"});
  EXPECT_EQ(cb.resumed, 1);
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(cb.replies[0].kind, MessageKind::kAck);
  EXPECT_EQ(cb.replies[0].id, "m1");
  EXPECT_EQ(meta(cb.replies[0], "status"), "ok");
  EXPECT_EQ(cb.replies[0].data(), R"({"msg_id":9})");
}

TEST(RouteStageTest, BinaryBodiesAreBase64) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.bin", std::string("\x00\xff", 2));
  m.type = PayloadType::kBinary;
  (void)stage->onMessage(m);
  rapidjson::Document d;
  d.Parse(cb.up.calls.at(0).request.body.c_str());
  EXPECT_STREQ(d["type"].GetString(), "binary");
  EXPECT_STREQ(d["body_base64"].GetString(), "AP8=");
}

TEST(RouteStageTest, BackendErrorsBecomeErrorAcksNotCloses) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  const std::vector<std::pair<Result<UpstreamResponse>, std::string>> cases = {
      {UpstreamResponse{403, {}, "no", "b"}, "permission_denied"},
      {UpstreamResponse{400, {}, "bad", "b"}, "bad_request"},
      {UpstreamResponse{503, {}, "", "b"}, "unavailable"},
      {fail(Errc::kUnavailable, "no healthy backend"), "unavailable"},
      {fail(Errc::kTimeout, "timed out"), "unavailable"},
  };
  int n = 0;
  for (const auto& [result, status] : cases) {
    Callbacks cb;
    auto stage = (*config)->createStage(cb);
    Message m = send("chat.x", "x", "err-" + std::to_string(n++));  // distinct ids: no dedupe
    (void)stage->onMessage(m);
    cb.up.complete(result);
    ASSERT_EQ(cb.replies.size(), 1u);
    EXPECT_EQ(meta(cb.replies[0], "status"), status);
    EXPECT_FALSE(meta(cb.replies[0], "reason").empty());
    EXPECT_EQ(cb.resumed, 1);
    EXPECT_TRUE(cb.rejected.empty());
  }
}

TEST(RouteStageTest, NoMatchAcksNotFoundOrDrops) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("weather", "x");
  EXPECT_EQ(stage->onMessage(m).action, Action::kDrop);
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(meta(cb.replies[0], "status"), "not_found");
  EXPECT_TRUE(cb.up.calls.empty());

  auto dropping = compile(std::string(kRules) + "no_match: drop\n", ctx);
  ASSERT_TRUE(dropping);
  Callbacks cb2;
  auto stage2 = (*dropping)->createStage(cb2);
  Message m2 = send("weather", "x");
  EXPECT_EQ(stage2->onMessage(m2).action, Action::kDrop);
  EXPECT_TRUE(cb2.replies.empty());
}

TEST(RouteStageTest, UserAndListenerPatternsMatchWholeValues) {
  Context ctx;
  auto config = compile(R"(
rules:
  - {event: admin, user: "root|ops", upstream: other}
  - {listener: "ws", upstream: chat-v2}
  - {upstream: chat}
)", ctx);
  ASSERT_TRUE(config);
  const auto& rc = static_cast<const RouteConfig&>(**config);
  Session s;
  Message m = send("admin", "x");
  EXPECT_EQ(rc.match(m, s)->upstream, "chat");  // alice is not root|ops, listener is tcp
  m.from = "ops";
  EXPECT_EQ(rc.match(m, s)->upstream, "other");
  m.from = "opsx";  // whole-value match, not a substring
  EXPECT_EQ(rc.match(m, s)->upstream, "chat");
  s.listener_ = "ws";
  EXPECT_EQ(rc.match(m, s)->upstream, "chat-v2");
}

TEST(RouteStageTest, MetadataPatterns) {
  Context ctx;
  auto config = compile(R"(
rules:
  - {meta: ["platform=ios|android", "sdk=2\\..*"], upstream: other}
  - {upstream: chat}
)", ctx);
  ASSERT_TRUE(config) << config.error().message;
  const auto& rc = static_cast<const RouteConfig&>(**config);
  Session s;
  Message m = send("e", "x");
  EXPECT_EQ(rc.match(m, s)->upstream, "chat");
  m.meta = {{"platform", "ios"}, {"sdk", "2.4"}};
  EXPECT_EQ(rc.match(m, s)->upstream, "other");
  m.meta = {{"platform", "ios"}, {"sdk", "1.9"}};
  EXPECT_EQ(rc.match(m, s)->upstream, "chat");
  auto bad = compile("rules: [{meta: [nokey], upstream: chat}]\n", ctx);
  EXPECT_FALSE(bad);
}

TEST(RouteStageTest, GrayReleaseByUserListAndStableShare) {
  Context ctx;
  auto config = compile(R"(
rules:
  - {upstream: chat, gray_upstream: chat-v2, gray_users: [vip], gray_percent: 30}
)", ctx);
  ASSERT_TRUE(config);
  const auto& rc = static_cast<const RouteConfig&>(**config);
  Session s;
  Message m = send("e", "x");
  m.from = "vip";
  EXPECT_EQ(rc.upstreamFor(*rc.match(m, s), m), "chat-v2");
  int gray = 0;
  for (int i = 0; i < 10000; ++i) {
    m.from = "user" + std::to_string(i);
    const bool g = rc.upstreamFor(*rc.match(m, s), m) == "chat-v2";
    gray += g ? 1 : 0;
    EXPECT_EQ(g, grayBucket("shop", m.from) < 30);  // stable: same answer every time
  }
  EXPECT_NEAR(gray, 3000, 300);
}

TEST(RouteStageTest, ConfigErrors) {
  Context ctx;
  auto bad_group = compile("rules: [{upstream: nope}]\n", ctx);
  ASSERT_FALSE(bad_group);
  EXPECT_NE(bad_group.error().message.find("no upstream group named \"nope\""), std::string::npos);
  auto bad_re = compile("rules: [{event: \"(\", upstream: chat}]\n", ctx);
  ASSERT_FALSE(bad_re);
  EXPECT_NE(bad_re.error().message.find("bad pattern"), std::string::npos);
  auto gray_without = compile("rules: [{upstream: chat, gray_percent: 5}]\n", ctx);
  ASSERT_FALSE(gray_without);
  auto no_rules = compile("no_match: drop\n", ctx);
  ASSERT_FALSE(no_rules);
  auto bad_path = compile("rules: [{upstream: chat, path: relative}]\n", ctx);
  ASSERT_FALSE(bad_path);
}

TEST(RouteStageTest, RetriedMessageIdIsAnsweredWithTheFirstAnswerNotForwardedAgain) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.x", "pay 10", "pay-1");
  ASSERT_EQ(stage->onMessage(m).action, Action::kPause);
  // The same id arrives again (e.g. on a new connection) while the first is in flight.
  Callbacks cb2;
  auto other = (*config)->createStage(cb2);
  Message again = send("chat.x", "pay 10", "pay-1");
  EXPECT_EQ(other->onMessage(again).action, Action::kDrop);
  ASSERT_EQ(cb2.replies.size(), 1u);
  EXPECT_EQ(meta(cb2.replies[0], "status"), "unavailable");
  cb.up.complete(UpstreamResponse{200, {}, "receipt-7", "b"});
  // After the answer, a retry gets the same answer without a second backend call.
  Message third = send("chat.x", "pay 10", "pay-1");
  EXPECT_EQ(other->onMessage(third).action, Action::kDrop);
  ASSERT_EQ(cb2.replies.size(), 2u);
  EXPECT_EQ(meta(cb2.replies[1], "status"), "ok");
  EXPECT_EQ(cb2.replies[1].data(), "receipt-7");
  EXPECT_TRUE(cb2.up.calls.empty());
  EXPECT_EQ(cb.up.calls.size(), 0u);
  // Another user's identical id is independent.
  Message bob = send("chat.x", "pay 10", "pay-1");
  bob.from = "bob";
  EXPECT_EQ(other->onMessage(bob).action, Action::kPause);
}

TEST(RouteStageTest, AbandonedMessageMayBeRetried) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  {
    Callbacks cb;
    auto stage = (*config)->createStage(cb);
    Message m = send("chat.x", "x", "lost-1");
    ASSERT_EQ(stage->onMessage(m).action, Action::kPause);
  }  // the session closed before the answer: the stage is destroyed
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message retry = send("chat.x", "x", "lost-1");
  EXPECT_EQ(stage->onMessage(retry).action, Action::kPause);
  EXPECT_EQ(cb.up.calls.size(), 1u);
}

TEST(RouteStageTest, AnswerInstructionsPushAndReply) {
  const BackendAnswer plain = parseAnswer(R"({"ok":true})");
  EXPECT_EQ(plain.reply, R"({"ok":true})");
  EXPECT_TRUE(plain.pushes.empty());
  const BackendAnswer a = parseAnswer(R"({"imgate":{"reply":{"id":5},"push":[
      {"to":{"users":["bob","carol"]},"data":"hi","event":"chat"},
      {"to":{"room":"lobby"},"data":{"n":1}},
      {"to":"all","data_base64":"AP8="},
      {"to":{"planets":["x"]},"data":"bad"}]}})");
  EXPECT_EQ(a.reply, R"({"id":5})");
  ASSERT_EQ(a.pushes.size(), 3u);
  EXPECT_EQ(a.pushes[0].target.kind, TargetKind::kUser);
  EXPECT_EQ(a.pushes[0].target.ids, (std::vector<std::string>{"bob", "carol"}));
  EXPECT_EQ(a.pushes[0].message.event, "chat");
  EXPECT_EQ(a.pushes[1].target.kind, TargetKind::kRoom);
  EXPECT_EQ(a.pushes[1].message.data(), R"({"n":1})");
  EXPECT_EQ(a.pushes[2].target.kind, TargetKind::kAll);
  EXPECT_EQ(a.pushes[2].message.type, PayloadType::kBinary);
  EXPECT_FALSE(a.error.empty());

  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.x", "x", "instr-1");
  ASSERT_EQ(stage->onMessage(m).action, Action::kPause);
  cb.up.complete(UpstreamResponse{200, {}, R"({"imgate":{"reply":"stored","push":[{"to":{"room":"r"},"data":"new msg"}]}})", "b"});
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(cb.replies[0].data(), "stored");
  ASSERT_EQ(cb.fake_hub_.pushes.size(), 1u);
  EXPECT_EQ(cb.fake_hub_.pushes[0].app, "shop");
  EXPECT_EQ(cb.fake_hub_.pushes[0].message.data(), "new msg");
}

// Whatever reaches a client as text is UTF-8: a raw answer that is not becomes a binary reply
// (bytes kept); strings in instructions get U+FFFD for what a lone surrogate escape decodes to.
TEST(RouteStageTest, AnswersThatAreNotUtf8TextStayDeliverable) {
  const BackendAnswer text = parseAnswer("caf\xC3\xA9");
  EXPECT_EQ(text.reply_type, PayloadType::kText);
  const BackendAnswer raw = parseAnswer("\xFF\xFE raw");
  EXPECT_EQ(raw.reply, "\xFF\xFE raw");
  EXPECT_EQ(raw.reply_type, PayloadType::kBinary);
  // Not instructions (the bytes are not UTF-8, so not JSON): the body is the reply, as binary.
  const BackendAnswer bad_json = parseAnswer("{\"imgate\":{\"reply\":\"\xC3(\"}}");
  EXPECT_EQ(bad_json.reply, "{\"imgate\":{\"reply\":\"\xC3(\"}}");
  EXPECT_EQ(bad_json.reply_type, PayloadType::kBinary);

  const std::string fffd = "\xEF\xBF\xBD";
  const BackendAnswer a = parseAnswer(R"({"imgate":{"reply":"ok \udc00","push":[
      {"to":{"users":["b\udc01"]},"data":"x\udfff","event":"e\udc00","app":"a\udc00"},
      {"to":{"room":"r\udc00"},"data":{"k":["\udc01"]}}]}})");
  EXPECT_EQ(a.reply, "ok " + fffd);
  EXPECT_EQ(a.reply_type, PayloadType::kText);
  ASSERT_EQ(a.pushes.size(), 2u);
  EXPECT_EQ(a.pushes[0].target.ids, (std::vector<std::string>{"b" + fffd}));
  EXPECT_EQ(a.pushes[0].message.data(), "x" + fffd);
  EXPECT_EQ(a.pushes[0].message.event, "e" + fffd);
  EXPECT_EQ(a.pushes[0].message.app, "a" + fffd);
  EXPECT_EQ(a.pushes[1].target.ids, (std::vector<std::string>{"r" + fffd}));
  EXPECT_EQ(a.pushes[1].message.data(), "{\"k\":[\"" + fffd + "\"]}");
  const BackendAnswer compact = parseAnswer(R"({"imgate":{"reply":{"t":"\udc00"}}})");
  EXPECT_EQ(compact.reply, "{\"t\":\"" + fffd + "\"}");

  // Through the stage: 2xx and 4xx bodies keep their bytes and go out as binary.
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.x", "x", "raw-1");
  ASSERT_EQ(stage->onMessage(m).action, Action::kPause);
  cb.up.complete(UpstreamResponse{200, {}, "\x80\x81", "b"});
  Message m2 = send("chat.x", "x", "raw-2");
  ASSERT_EQ(stage->onMessage(m2).action, Action::kPause);
  cb.up.complete(UpstreamResponse{409, {}, "no \xFF", "b"});
  ASSERT_EQ(cb.replies.size(), 2u);
  EXPECT_EQ(cb.replies[0].type, PayloadType::kBinary);
  EXPECT_EQ(cb.replies[0].data(), "\x80\x81");
  EXPECT_EQ(meta(cb.replies[0], "status"), "ok");
  EXPECT_EQ(cb.replies[1].type, PayloadType::kBinary);
  EXPECT_EQ(cb.replies[1].data(), "no \xFF");
  EXPECT_EQ(meta(cb.replies[1], "status"), "bad_request");
}

TEST(RouteStageTest, InstructionsThatCannotBeFollowedAreLogged) {
  Context ctx;
  auto config = compile(kRules, ctx);
  ASSERT_TRUE(config);
  Callbacks cb;
  auto stage = (*config)->createStage(cb);
  Message m = send("chat.x", "x", "bad-1");
  ASSERT_EQ(stage->onMessage(m).action, Action::kPause);
  cb.up.complete(UpstreamResponse{
      200, {}, R"({"imgate":{"reply":"r","push":[{"to":{"planets":["x"]},"data":"d"}]}})", "b"});
  ASSERT_EQ(cb.replies.size(), 1u);
  EXPECT_EQ(cb.replies[0].data(), "r");
  ASSERT_EQ(cb.logger.lines.size(), 1u);
  EXPECT_EQ(cb.logger.lines[0].first, LogLevel::kWarn);
  EXPECT_NE(cb.logger.lines[0].second.find("\"bad-1\""), std::string::npos);
  EXPECT_NE(cb.logger.lines[0].second.find("imgate.push entries need"), std::string::npos);
  // A good answer logs nothing.
  Message m2 = send("chat.x", "x", "good-1");
  ASSERT_EQ(stage->onMessage(m2).action, Action::kPause);
  cb.up.complete(UpstreamResponse{200, {}, R"({"imgate":{"reply":"r"}})", "b"});
  EXPECT_EQ(cb.logger.lines.size(), 1u);
}

TEST(RouteStageTest, EnvelopeIsValidJsonAndTextThatIsNotUtf8GoesAsBinary) {
  Session s;
  Message m = send("ev\xC3", "bytes \xFF\xFE", "id\x80");
  const std::string body = envelope(m, s, "0123456789abcdef");
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  ASSERT_FALSE(d.HasParseError()) << body;
  EXPECT_STREQ(d["type"].GetString(), "binary");
  EXPECT_STREQ(d["body_base64"].GetString(), "Ynl0ZXMg//4=");
  EXPECT_FALSE(d.HasMember("body"));
  EXPECT_EQ(std::string(d["id"].GetString()), "id\xEF\xBF\xBD");
  EXPECT_EQ(std::string(d["event"].GetString()), "ev\xEF\xBF\xBD");
}

TEST(RouteStageTest, ExpandPathEncodesValues) {
  Session s;
  Message m = send("a/b c", "x");
  m.from = "u?1";
  EXPECT_EQ(expandPath("/x/{event}/{user}/{session}/{nope}", m, s), "/x/a%2Fb%20c/u%3F1/77/{nope}");
}

}  // namespace
}  // namespace imgate::mod::route
