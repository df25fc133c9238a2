// SPDX-License-Identifier: Apache-2.0
// Token expiry on open sessions: the token.expiring notice, auth.refresh, the close at
// exp + leeway, and the deadline surviving a reload (stage re-created without onOpen).
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <string>
#include <vector>

#include "auth_jwt_fakes.h"
#include "modules/behavior/auth_jwt/jwt_stage.h"
#include "modules/behavior/auth_jwt/token_expiry.h"

namespace imgate::mod::auth_jwt {
namespace {

using test::FakeConfigView;
using test::FakeLoadContext;
using test::FakeStageCallbacks;
using test::signToken;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";
constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kNow = kNowMs / 1000;
constexpr int64_t kExp = kNow + 600;  // ten minutes of validity at connect

std::string token(std::string_view sub, int64_t exp, std::string_view extra = {}) {
  std::string p = R"({"sub":")" + std::string(sub) + R"(","exp":)" + std::to_string(exp);
  if (!extra.empty()) {
    p += ",";
    p += extra;
  }
  return signToken(kSecret, p + "}");
}

std::string metaValue(const Message& m, std::string_view key) {
  for (const auto& [k, v] : m.meta) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

Message refreshMessage(std::string payload, std::string id = "r1",
                       std::string event = std::string(kRefreshEvent)) {
  Message m;
  m.event = std::move(event);
  m.id = std::move(id);
  m.payload = makeBytes(std::move(payload));
  return m;
}

class AuthJwtExpiryTest : public testing::Test {
 protected:
  using Scalars = std::map<std::string, std::string>;

  StageConfigPtr compile(Scalars extra = {}) {
    Scalars scalars = {{"secret", std::string(kSecret)}, {"leeway", "30s"}};
    for (auto& [k, v] : extra) {
      scalars[k] = v;
    }
    FakeConfigView view(jwtStageSchema(), std::move(scalars));
    auto r = compileJwtStage(view, context_);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  // Opens a session with `tok` at kNowMs; the stage passes.
  void open(const StageConfigPtr& config, const std::string& tok) {
    cb_.dispatcher_.wall_ms = kNowMs;
    cb_.session_.query["token"] = tok;
    stage_ = config->createStage(cb_);
    ASSERT_EQ(stage_->onOpen().action, Action::kPass);
  }
  std::vector<Message>& replies() { return cb_.replies; }
  uint64_t counter(const std::string& name) const { return context_.stats_.value(name); }
  void advanceTo(int64_t ms) { cb_.dispatcher_.advanceTo(ms); }
  Verdict send(Message m) { return stage_->onMessage(m); }
  uint64_t sessionId() const { return cb_.session_.id(); }

  FakeLoadContext context_;
  FakeStageCallbacks cb_;
  StagePtr stage_;
};

void expectNotice(const Message& m, int64_t exp) {
  EXPECT_EQ(m.kind, MessageKind::kControl);
  EXPECT_EQ(m.type, PayloadType::kText);
  EXPECT_EQ(m.event, "token.expiring");
  EXPECT_EQ(m.app, "default");
  EXPECT_EQ(m.data(), R"({"event":"token.expiring","expires_at":)" + std::to_string(exp) + "}");
}

void expectOkAck(const Message& m, std::string_view id, int64_t exp) {
  EXPECT_EQ(m.kind, MessageKind::kAck);
  EXPECT_EQ(m.id, id);
  EXPECT_EQ(m.event, "auth.refresh");
  EXPECT_EQ(metaValue(m, "status"), "ok");
  EXPECT_EQ(m.data(),
            R"({"event":"auth.refresh","status":"ok","expires_at":)" + std::to_string(exp) + "}");
}

void expectErrorAck(const Message& m, std::string_view id, std::string_view reason) {
  EXPECT_EQ(m.kind, MessageKind::kAck);
  EXPECT_EQ(m.id, id);
  EXPECT_EQ(m.event, "auth.refresh");
  EXPECT_EQ(metaValue(m, "status"), "unauthenticated");
  EXPECT_EQ(metaValue(m, "reason"), reason);
  EXPECT_TRUE(m.data().empty());
}

// ---- Notice and close -------------------------------------------------------------------------

TEST_F(AuthJwtExpiryTest, NoticeIsSentRefreshWindowBeforeExp) {
  StageConfigPtr config = compile({{"refresh_window", "60s"}});
  open(config, token("alice", kExp));
  EXPECT_EQ(cb_.dispatcher_.pending(), 1u);  // one timer: the notice, then the close
  advanceTo((kExp - 60) * 1000 - 1);
  EXPECT_TRUE(replies().empty());
  advanceTo((kExp - 60) * 1000);
  ASSERT_EQ(replies().size(), 1u);
  expectNotice(replies()[0], kExp);
  EXPECT_TRUE(cb_.closed.empty());
  EXPECT_EQ(counter("auth_jwt_expiry_notices"), 1u);
  EXPECT_EQ(cb_.dispatcher_.pending(), 1u);  // now the close
  EXPECT_EQ(cb_.session_.expiry_.at_s, kExp);
  EXPECT_TRUE(cb_.session_.expiry_.notified);  // a re-created stage sends no second notice
  // Once per token: nothing more until the close.
  advanceTo((kExp + 30) * 1000 - 1);
  EXPECT_EQ(replies().size(), 1u);
  EXPECT_TRUE(cb_.closed.empty());
}

TEST_F(AuthJwtExpiryTest, ExpiryClosesUnauthenticatedAfterLeeway) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  advanceTo((kExp + 30) * 1000 - 1);
  EXPECT_TRUE(cb_.closed.empty());
  advanceTo((kExp + 30) * 1000);
  ASSERT_EQ(cb_.closed.size(), 1u);
  EXPECT_EQ(cb_.closed[0].first, Errc::kUnauthenticated);  // WebSocket close 4001
  EXPECT_EQ(cb_.closed[0].second, "token expired");
  EXPECT_EQ(counter("auth_jwt_expired"), 1u);
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  stage_->onClose();
  EXPECT_EQ(cb_.session_.expiry_.at_s, 0);
}

TEST_F(AuthJwtExpiryTest, TokenInsideTheWindowAtConnectGetsTheNoticeAtOnce) {
  StageConfigPtr config = compile({{"refresh_window", "5m"}, {"leeway", "0"}});
  open(config, token("alice", kNow + 10));
  advanceTo(kNowMs);
  ASSERT_EQ(replies().size(), 1u);
  expectNotice(replies()[0], kNow + 10);
  advanceTo((kNow + 10) * 1000);
  ASSERT_EQ(cb_.closed.size(), 1u);
}

TEST_F(AuthJwtExpiryTest, NoticeWaitsUntilTheSessionIsAccepted) {
  StageConfigPtr config = compile({{"refresh_window", "10m"}});  // due at connect
  cb_.session_.opened_at_ms = 0;  // a later stage still holds the handshake
  open(config, token("alice", kExp));
  advanceTo(kNowMs + 250);
  EXPECT_TRUE(replies().empty());
  cb_.session_.opened_at_ms = kNowMs + 250;
  advanceTo(kNowMs + 300);
  ASSERT_EQ(replies().size(), 1u);
  expectNotice(replies()[0], kExp);
}

// ---- Refresh ----------------------------------------------------------------------------------

TEST_F(AuthJwtExpiryTest, RefreshMovesTheDeadline) {
  StageConfigPtr config = compile({{"refresh_window", "60s"}});
  open(config, token("alice", kExp));
  advanceTo((kExp - 60) * 1000);
  ASSERT_EQ(replies().size(), 1u);

  const int64_t exp2 = kExp + 3600;
  const Verdict v = send(refreshMessage(token("alice", exp2), "r1"));
  EXPECT_EQ(v.action, Action::kDrop);  // never reaches the backend
  ASSERT_EQ(replies().size(), 2u);
  expectOkAck(replies()[1], "r1", exp2);
  EXPECT_EQ(counter("auth_jwt_refreshed"), 1u);
  ASSERT_NE(cb_.session_.expiry_.at_s, 0);
  EXPECT_EQ(cb_.session_.expiry_.at_s, exp2);

  advanceTo((kExp + 31) * 1000);  // the old deadline passes
  EXPECT_TRUE(cb_.closed.empty());
  advanceTo((exp2 - 60) * 1000);
  ASSERT_EQ(replies().size(), 3u);
  expectNotice(replies()[2], exp2);
  advanceTo((exp2 + 30) * 1000);
  ASSERT_EQ(cb_.closed.size(), 1u);
  EXPECT_EQ(cb_.closed[0].first, Errc::kUnauthenticated);
}

TEST_F(AuthJwtExpiryTest, RefreshPayloadForms) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  const int64_t exp2 = kExp + 100;
  const std::string t = token("alice", exp2);
  struct Case {
    Message message;
    std::string ack_id;
  };
  std::vector<Case> cases;
  cases.push_back({refreshMessage(t, "1"), "1"});                         // plain text
  cases.push_back({refreshMessage("  " + t + "\n", "2"), "2"});           // with whitespace
  cases.push_back({refreshMessage("\"" + t + "\"", "3"), "3"});           // JSON string
  cases.push_back({refreshMessage(R"({"token":")" + t + "\"}", "4"), "4"});  // JSON object
  cases.push_back({refreshMessage("[\"" + t + "\"]", "5"), "5"});          // Socket.IO args
  cases.push_back({refreshMessage(R"([{"token":")" + t + "\"},1]", "6"), "6"});
  // Plain WebSocket: no event, the envelope names it; its id answers when the message has none.
  cases.push_back({refreshMessage(R"({"event":"auth.refresh","token":")" + t + R"(","id":"w1"})",
                                  "", ""),
                   "w1"});
  cases.push_back(
      {refreshMessage(R"( {"id":42,"token":")" + t + R"(","event":"auth.refresh"})", "", ""),
       "42"});
  cases.push_back({refreshMessage(R"({"event":"auth.refresh","token":")" + t + "\"}", "", ""), ""});
  for (size_t i = 0; i < cases.size(); ++i) {
    replies().clear();
    EXPECT_EQ(send(cases[i].message).action, Action::kDrop) << i;
    ASSERT_EQ(replies().size(), 1u) << i;
    SCOPED_TRACE(i);
    expectOkAck(replies()[0], cases[i].ack_id, exp2);
  }
  EXPECT_EQ(counter("auth_jwt_refreshed"), cases.size());
}

TEST_F(AuthJwtExpiryTest, WrongUserBadTokensAndEmptyRefreshesAreRefused) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp, R"("app":"chat")"));
  const int64_t later = kExp + 3600;
  struct Case {
    std::string payload;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {token("bob", later, R"("app":"chat")"), "token is for another user"},
      {token("alice", later, R"("app":"shop")"), "token is for another user"},
      {token("alice", later), "token is for another user"},  // app "default"
      {signToken("another secret 0123456789abcdef", R"({"sub":"alice","app":"chat"})"),
       "signature mismatch"},
      {token("alice", kNow - 60, R"("app":"chat")"), "token expired"},
      {"", "refresh without a token"},
      {"{}", "refresh without a token"},
      {"[]", "refresh without a token"},
      {R"({"token":7})", "refresh without a token"},
      {"{not json", "malformed refresh: payload is not valid JSON"},
      {std::string(kMaxRefreshPayload + 1, 'a'), "token too long"},
  };
  for (const Case& c : cases) {
    replies().clear();
    EXPECT_EQ(send(refreshMessage(c.payload, "x")).action, Action::kDrop) << c.reason;
    ASSERT_EQ(replies().size(), 1u) << c.reason;
    expectErrorAck(replies()[0], "x", c.reason);
  }
  EXPECT_EQ(counter("auth_jwt_refresh_failed"), cases.size());
  EXPECT_EQ(counter("auth_jwt_refreshed"), 0u);
  // The old expiry stands.
  EXPECT_EQ(cb_.session_.expiry_.at_s, kExp);
  advanceTo((kExp + 30) * 1000);
  ASSERT_EQ(cb_.closed.size(), 1u);
  EXPECT_EQ(cb_.closed[0].second, "token expired");
}

TEST_F(AuthJwtExpiryTest, OrdinaryMessagesPassUntouched) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  std::vector<Message> messages;
  messages.push_back(refreshMessage("hello", "1", "chat"));
  messages.push_back(refreshMessage("hello", "", ""));
  messages.push_back(refreshMessage(R"({"event":"chat","text":"auth.refresh"})", "", ""));
  messages.push_back(refreshMessage(R"({"event":"auth.refresh.x","token":"t"})", "", ""));
  messages.push_back(refreshMessage(R"({"event":"auth.refresh","token":)", "", ""));  // not JSON
  messages.push_back(refreshMessage(R"(["auth.refresh"])", "", ""));
  Message binary = refreshMessage(R"({"event":"auth.refresh","token":"t"})", "", "");
  binary.type = PayloadType::kBinary;
  messages.push_back(binary);
  Message ack = refreshMessage("t");
  ack.kind = MessageKind::kAck;  // a client's ack is never a refresh
  messages.push_back(ack);
  for (Message& m : messages) {
    const std::string before(m.data());
    EXPECT_EQ(stage_->onMessage(m).action, Action::kPass) << before;
    EXPECT_EQ(m.data(), before);
  }
  EXPECT_TRUE(replies().empty());
}

TEST_F(AuthJwtExpiryTest, RefreshToATokenWithoutExpEndsExpiry) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  EXPECT_EQ(send(refreshMessage(signToken(kSecret, R"({"sub":"alice"})"))).action, Action::kDrop);
  ASSERT_EQ(replies().size(), 1u);
  EXPECT_EQ(replies()[0].data(), R"({"event":"auth.refresh","status":"ok"})");
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  EXPECT_EQ(cb_.session_.expiry_.at_s, 0);
  advanceTo(kNowMs + int64_t{365} * 24 * 3600 * 1000);
  EXPECT_TRUE(cb_.closed.empty());
}

TEST_F(AuthJwtExpiryTest, AnonymousSessionCannotRefresh) {
  StageConfigPtr config = compile({{"required", "false"}});
  cb_.dispatcher_.wall_ms = kNowMs;
  stage_ = config->createStage(cb_);
  ASSERT_EQ(stage_->onOpen().action, Action::kPass);
  EXPECT_EQ(send(refreshMessage(token("alice", kExp))).action, Action::kDrop);
  ASSERT_EQ(replies().size(), 1u);
  expectErrorAck(replies()[0], "r1", "anonymous session: nothing to refresh");
}

// ---- Modes ------------------------------------------------------------------------------------

TEST_F(AuthJwtExpiryTest, IgnoreModeKeepsConnectOnlyBehaviour) {
  StageConfigPtr config = compile({{"expiry", "ignore"}});
  open(config, token("alice", kExp));
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  EXPECT_EQ(cb_.session_.expiry_.at_s, 0);
  Message m = refreshMessage(token("alice", kExp + 100));
  EXPECT_EQ(stage_->onMessage(m).action, Action::kPass);  // the backend's business
  advanceTo((kExp + 3600) * 1000);
  EXPECT_TRUE(replies().empty());
  EXPECT_TRUE(cb_.closed.empty());
}

TEST_F(AuthJwtExpiryTest, TokenWithoutExpNeverCloses) {
  StageConfigPtr config = compile();
  open(config, signToken(kSecret, R"({"sub":"alice"})"));
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  EXPECT_EQ(cb_.session_.expiry_.at_s, 0);
  advanceTo(kNowMs + int64_t{10} * 365 * 24 * 3600 * 1000);
  EXPECT_TRUE(replies().empty());
  EXPECT_TRUE(cb_.closed.empty());
  // A refresh is still answered (and may bring an exp).
  EXPECT_EQ(send(refreshMessage(token("alice", cb_.dispatcher_.wall_ms / 1000 + 100))).action,
            Action::kDrop);
  ASSERT_EQ(replies().size(), 1u);
  EXPECT_EQ(metaValue(replies()[0], "status"), "ok");
  EXPECT_EQ(cb_.dispatcher_.pending(), 1u);
}

// ---- Reload -----------------------------------------------------------------------------------

TEST_F(AuthJwtExpiryTest, ReloadRecreationKeepsTheDeadline) {
  StageConfigPtr config = compile({{"refresh_window", "60s"}});
  open(config, token("alice", kExp));
  advanceTo(kNowMs + 1000);
  // A reload: the stage goes without onClose, the new generation's stage comes without onOpen.
  stage_.reset();
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  StageConfigPtr reloaded = compile({{"refresh_window", "120s"}});
  stage_ = reloaded->createStage(cb_);
  EXPECT_EQ(cb_.dispatcher_.pending(), 1u);
  advanceTo((kExp - 120) * 1000);  // the new window applies
  ASSERT_EQ(replies().size(), 1u);
  expectNotice(replies()[0], kExp);

  // Re-created again after the notice: no second notice, same close.
  stage_.reset();
  stage_ = reloaded->createStage(cb_);
  EXPECT_EQ(cb_.dispatcher_.pending(), 1u);
  advanceTo((kExp + 30) * 1000 - 1);
  EXPECT_EQ(replies().size(), 1u);
  EXPECT_TRUE(cb_.closed.empty());
  advanceTo((kExp + 30) * 1000);
  ASSERT_EQ(cb_.closed.size(), 1u);
  EXPECT_EQ(cb_.closed[0].first, Errc::kUnauthenticated);
}

TEST_F(AuthJwtExpiryTest, ReloadAfterRefreshKeepsTheNewDeadline) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  const int64_t exp2 = kExp + 1000;
  ASSERT_EQ(send(refreshMessage(token("alice", exp2))).action, Action::kDrop);
  stage_ = config->createStage(cb_);  // the old one is destroyed without onClose
  advanceTo((kExp + 31) * 1000);
  EXPECT_TRUE(cb_.closed.empty());
  advanceTo((exp2 + 30) * 1000);
  EXPECT_EQ(cb_.closed.size(), 1u);
}

TEST_F(AuthJwtExpiryTest, CloseAndRefusedHandshakeForgetTheSession) {
  StageConfigPtr config = compile();
  open(config, token("alice", kExp));
  ASSERT_NE(cb_.session_.expiry_.at_s, 0);
  stage_->onClose();
  EXPECT_EQ(cb_.session_.expiry_.at_s, 0);
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);
  stage_ = config->createStage(cb_);  // nothing to re-arm
  EXPECT_EQ(cb_.dispatcher_.pending(), 0u);

  // A stage destroyed without onClose (a reload, or a handshake a later stage refused) takes
  // its timer with it and leaves the record to the session.
  FakeStageCallbacks other;
  other.session_.opened_at_ms = 0;
  other.dispatcher_.wall_ms = kNowMs;
  other.session_.query["token"] = token("bob", kExp);
  StagePtr refused = config->createStage(other);
  ASSERT_EQ(refused->onOpen().action, Action::kPass);
  EXPECT_EQ(other.session_.expiry_.at_s, kExp);
  EXPECT_EQ(other.dispatcher_.pending(), 1u);
  refused.reset();
  EXPECT_EQ(other.dispatcher_.pending(), 0u);
  other.dispatcher_.advanceTo((kExp + 3600) * 1000);
  EXPECT_TRUE(other.closed.empty());
}

// ---- Pieces -----------------------------------------------------------------------------------

TEST(AuthJwtExpiryMessages, ParseRefreshIgnoresLookalikes) {
  Message m;
  m.payload = makeBytes(R"({"event":"auth.refresh","token":"abc"})");
  RefreshRequest r = parseRefresh(m);
  EXPECT_TRUE(r.is_refresh);
  EXPECT_EQ(r.token, "abc");
  EXPECT_TRUE(r.error.empty());
  m.event = "chat";  // an event name wins over the payload
  EXPECT_FALSE(parseRefresh(m).is_refresh);
  m.event.clear();
  m.payload = makeBytes(R"({"event":"auth.refresh"})");
  r = parseRefresh(m);
  EXPECT_TRUE(r.is_refresh);
  EXPECT_EQ(r.error, "refresh without a token");
  m.payload = makeBytes(std::string(kMaxRefreshPayload + 1, ' ') + R"({"event":"auth.refresh"})");
  EXPECT_FALSE(parseRefresh(m).is_refresh);
  // Deep nesting is parsed iteratively: refused, no crash.
  m.event = "auth.refresh";
  m.payload = makeBytes(std::string(4000, '[') + std::string(4000, ']'));
  r = parseRefresh(m);
  EXPECT_TRUE(r.is_refresh);
  EXPECT_EQ(r.error, "refresh without a token");
}

TEST(AuthJwtExpiryMessages, NoticeAndAckPayloadsAreJson) {
  for (const Message& m : {expiringNotice("a", 1700000000, 5), refreshAck("a", "1", 42, 5),
                           refreshAck("a", "1", std::nullopt, 5)}) {
    rapidjson::Document d;
    d.Parse(m.payload->c_str());
    EXPECT_FALSE(d.HasParseError()) << *m.payload;
    EXPECT_TRUE(d.IsObject());
    EXPECT_EQ(m.ts_ms, 5);
  }
  const Message error = refreshError("a", "7", "token expired", 5);
  EXPECT_EQ(metaValue(error, "reason"), "token expired");
  ASSERT_TRUE(error.payload);
}

}  // namespace
}  // namespace imgate::mod::auth_jwt
