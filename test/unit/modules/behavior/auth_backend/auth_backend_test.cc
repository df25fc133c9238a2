// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/auth_backend/auth_backend_stage.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>
#include <string>
#include <vector>

#include "auth_backend_fakes.h"
#include "imgate/sdk/module.h"

// Defined by IMGATE_MODULE in auth_backend_module.cc.
const imgate::ModuleFactory& imgate_module_auth_backend();

namespace imgate::mod::auth_backend {
namespace {

using test::FakeLoadContext;
using test::FakeStageCallbacks;

constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr int64_t kNow = kNowMs / 1000;
constexpr const char* kBasic = "upstream: auth\n";

UpstreamResponse answer(int status, std::string body) {
  return UpstreamResponse{status, {}, std::move(body), "127.0.0.1:9000"};
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  EXPECT_FALSE(d.HasParseError()) << body;
  return d;
}

class AuthBackendTest : public testing::Test {
 protected:
  StageConfigPtr compile(const std::string& yaml = kBasic) {
    auto r = test::compileYaml(yaml, context_);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  // New callbacks (a new session); the old stage goes first, it refers to the old callbacks.
  void fresh() {
    stage_.reset();
    cb_ = std::make_unique<FakeStageCallbacks>();
    cb_->dispatcher_.wall_ms = now_ms_;
    cb_->logger = &logger_;
  }
  // A new session (fresh callbacks) opening with `token` in the query; returns its verdict.
  Verdict open(const StageConfigPtr& config, const std::string& token = "tok-1") {
    fresh();
    if (!token.empty()) {
      cb_->session_.query["token"] = token;
    }
    stage_ = config->createStage(*cb_);
    return stage_->onOpen();
  }
  // Completes the pending backend call.
  void complete(Result<UpstreamResponse> result) {
    ASSERT_EQ(cb_->upstreams_.calls.size(), 1u);
    cb_->upstreams_.complete(std::move(result));
  }
  uint64_t counter(const std::string& name) const { return context_.stats_.value(name); }
  const Identity& identity() const { return cb_->session_.identity_; }

  FakeLoadContext context_;
  test::FakeLogger logger_;  // the sessions' runtime log
  std::unique_ptr<FakeStageCallbacks> cb_;
  StagePtr stage_;  // declared after cb_: destroyed first
  int64_t now_ms_ = kNowMs;
};

// ---- Schema and compile -----------------------------------------------------------------------

TEST(AuthBackendSchema, DefaultsAndBounds) {
  std::map<std::string_view, const ParamSpec*> by_key;
  for (const ParamSpec& p : backendSchema()) {
    EXPECT_TRUE(by_key.emplace(p.key, &p).second) << p.key;
    EXPECT_FALSE(p.help.empty()) << p.key;
  }
  ASSERT_EQ(by_key.size(), 14u);
  EXPECT_TRUE(by_key["upstream"]->required);
  EXPECT_EQ(by_key["path"]->default_value, "/auth");
  EXPECT_EQ(by_key["timeout"]->default_value, "2s");
  EXPECT_EQ(by_key["cache_ttl"]->default_value, "60s");
  EXPECT_EQ(by_key["negative_ttl"]->default_value, "5s");
  EXPECT_EQ(by_key["cache_size"]->default_value, "100000");
  EXPECT_EQ(by_key["require_token"]->default_value, "true");

  FakeLoadContext context;
  for (const char* bad : {"", "upstream: auth\ntimeout: 0\n", "upstream: auth\ntimeout: 61s\n",
                          "upstream: auth\ncache_size: -1\n",
                          "upstream: auth\ncache_size: 10000001\n",
                          "upstream: auth\ncache_ttl: 25h\n", "upstream: auth\nmax_rooms: 4097\n",
                          "upstream: auth\nmax_answer: 63\n", "upstream: auth\ncache: 1\n",
                          "upstream: auth\nforward_headers: {a: 1}\n"}) {
    auto r = test::compileYaml(bad, context);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    }
  }
  for (const char* good :
       {"upstream: auth\ntimeout: 1ms\ncache_ttl: 0\nnegative_ttl: 24h\ncache_size: 0\n",
        "upstream: auth\nforward_headers: []\nforward_query: [device, app]\n"}) {
    EXPECT_TRUE(test::compileYaml(good, context)) << good;
  }
}

TEST(AuthBackendModule, FactoryIsRegistered) {
  const ModuleFactory& factory = imgate_module_auth_backend();
  EXPECT_EQ(factory.name(), "auth.backend");
  EXPECT_EQ(factory.kind(), ModuleKind::kStage);
  EXPECT_EQ(factory.schema().size(), backendSchema().size());
  EXPECT_FALSE(dynamic_cast<const StageFactory&>(factory).terminal());
}

TEST_F(AuthBackendTest, CompileChecksUpstreamPathAndNormalisesHeaders) {
  auto r = test::compileYaml("upstream: nope\n", context_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no upstream group named \"nope\""), std::string::npos);
  r = test::compileYaml("upstream: auth\npath: auth\n", context_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("must start with /"), std::string::npos);
  r = test::compileYaml("upstream: auth\ndefault_app: \"\"\n", context_);
  EXPECT_FALSE(r);

  StageConfigPtr config = compile(
      "upstream: auth\npath: /v2/login\ntimeout: 750ms\nforward_headers: [Cookie, ORIGIN, cookie]\n"
      "cache_size: 20\n");
  const auto& c = dynamic_cast<const BackendConfig&>(*config);
  EXPECT_EQ(c.settings().path, "/v2/login");
  EXPECT_EQ(c.settings().timeout.count(), 750);
  EXPECT_EQ(c.settings().forward_headers, (std::vector<std::string>{"cookie", "origin"}));
  ASSERT_NE(c.cache(), nullptr);
  EXPECT_EQ(c.cache()->capacity(), AuthCache::kShards * 2);
  EXPECT_EQ(dynamic_cast<const BackendConfig&>(
                *compile("upstream: auth\ncache_ttl: 0\nnegative_ttl: 0\n"))
                .cache(),
            nullptr);
  EXPECT_EQ(dynamic_cast<const BackendConfig&>(*compile("upstream: auth\ncache_size: 0\n")).cache(),
            nullptr);
}

// ---- The request ------------------------------------------------------------------------------

TEST_F(AuthBackendTest, RequestCarriesCredentialsAndHandshake) {
  StageConfigPtr config = compile();
  fresh();
  cb_->dispatcher_.wall_ms = kNowMs;
  cb_->session_.headers = {{"Authorization", "Bearer abc.def"},
                           {"Origin", "https://app.example"},
                           {"USER-AGENT", "ua/1"},
                           {"Cookie", "sid=secret"}};
  cb_->session_.query = {{"device", "ios-1"}, {"other", "x"}};
  stage_ = config->createStage(*cb_);
  const Verdict v = stage_->onOpen();
  EXPECT_EQ(v.action, Action::kPause);
  ASSERT_EQ(cb_->upstreams_.calls.size(), 1u);
  const auto& call = cb_->upstreams_.calls[0];
  EXPECT_EQ(call.group, "auth");
  EXPECT_EQ(call.request.method, "POST");
  EXPECT_EQ(call.request.path, "/auth");
  EXPECT_EQ(call.request.timeout.count(), 2000);
  ASSERT_EQ(call.request.headers.size(), 1u);
  EXPECT_EQ(call.request.headers[0].name, "content-type");
  EXPECT_EQ(call.request.headers[0].value, "application/json");
  auto d = parse(call.request.body);
  EXPECT_STREQ(d["token"].GetString(), "abc.def");
  ASSERT_TRUE(d["headers"].IsObject());
  EXPECT_EQ(d["headers"].MemberCount(), 2u);  // no x-forwarded-for sent, cookie not listed
  EXPECT_STREQ(d["headers"]["origin"].GetString(), "https://app.example");
  EXPECT_STREQ(d["headers"]["user-agent"].GetString(), "ua/1");
  ASSERT_TRUE(d["query"].IsObject());
  EXPECT_EQ(d["query"].MemberCount(), 1u);
  EXPECT_STREQ(d["query"]["device"].GetString(), "ios-1");
  EXPECT_STREQ(d["peer"].GetString(), "192.0.2.7:50000");
  EXPECT_STREQ(d["protocol"].GetString(), "proto.websocket");
  EXPECT_STREQ(d["listener"].GetString(), "edge");
  EXPECT_EQ(cb_->resumed, 0);
  EXPECT_TRUE(cb_->rejected.empty());
}

// Header values may hold obs-text and a query token may be percent-decoded into any bytes: the
// request stays valid JSON, with U+FFFD where the bytes are not UTF-8.
TEST_F(AuthBackendTest, RequestIsValidJsonWhateverTheClientSent) {
  StageConfigPtr config = compile();
  fresh();
  cb_->session_.headers = {{"Authorization", "Bearer t\xC3("}, {"User-Agent", "ua \xFF\xFE"}};
  stage_ = config->createStage(*cb_);
  ASSERT_EQ(stage_->onOpen().action, Action::kPause);
  ASSERT_EQ(cb_->upstreams_.calls.size(), 1u);
  const std::string& body = cb_->upstreams_.calls[0].request.body;
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  ASSERT_FALSE(d.HasParseError()) << body;
  EXPECT_EQ(std::string(d["token"].GetString()), "t\xEF\xBF\xBD(");
  EXPECT_EQ(std::string(d["headers"]["user-agent"].GetString()),
            "ua \xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(AuthBackendTest, TokenSourcesInOrder) {
  StageConfigPtr config = compile("upstream: auth\ncache_size: 0\n");
  const auto& settings = dynamic_cast<const BackendConfig&>(*config).settings();
  test::FakeSession s;
  EXPECT_FALSE(findToken(s, settings));
  s.subprotocols = {"imgate", "bearer.", "bearer.sub"};
  EXPECT_EQ(findToken(s, settings), "sub");
  s.headers = {{"authorization", "Basic eA=="}};
  EXPECT_EQ(findToken(s, settings), "sub");
  s.headers = {{"authorization", "bearer  hdr "}};
  EXPECT_EQ(findToken(s, settings), "hdr");
  s.query = {{"token", ""}};
  EXPECT_EQ(findToken(s, settings), "hdr");
  s.query = {{"token", "q"}};
  EXPECT_EQ(findToken(s, settings), "q");
}

TEST_F(AuthBackendTest, MissingTokenIsRefusedWithoutAskingUnlessAllowed) {
  StageConfigPtr config = compile();
  const Verdict v = open(config, "");
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.code, Errc::kUnauthenticated);
  EXPECT_EQ(v.reason, "missing token");
  EXPECT_TRUE(cb_->upstreams_.calls.empty());
  EXPECT_EQ(counter("auth_backend_rejected"), 1u);

  // require_token: false lets the backend decide (cookie sessions); such answers are not cached.
  StageConfigPtr cookies =
      compile("upstream: auth\nrequire_token: false\nforward_headers: [cookie]\n");
  for (int i = 0; i < 2; ++i) {
    fresh();
    cb_->session_.headers = {{"Cookie", "sid=1"}};
    stage_ = cookies->createStage(*cb_);
    ASSERT_EQ(stage_->onOpen().action, Action::kPause);
    ASSERT_EQ(cb_->upstreams_.calls.size(), 1u) << i;
    auto d = parse(cb_->upstreams_.calls[0].request.body);
    EXPECT_TRUE(d["token"].IsNull());
    EXPECT_STREQ(d["headers"]["cookie"].GetString(), "sid=1");
    complete(answer(200, R"({"uid":"c1"})"));
    EXPECT_EQ(cb_->resumed, 1);
  }
  EXPECT_EQ(counter("auth_backend_cache_hits"), 0u);
}

// ---- The answer -------------------------------------------------------------------------------

TEST_F(AuthBackendTest, AcceptSetsIdentityWithItsRooms) {
  StageConfigPtr config = compile();
  ASSERT_EQ(open(config).action, Action::kPause);
  cb_->session_.query["device"] = "query-device";
  complete(answer(200, R"({"uid":"u1","app":"shop","device":"ios","rooms":["a","b","a"],)"
                       R"("extra":{"x":1}})"));
  EXPECT_EQ(cb_->resumed, 1);
  EXPECT_TRUE(cb_->rejected.empty());
  EXPECT_EQ(cb_->identity_calls, 1);
  EXPECT_EQ(identity().user, "u1");
  EXPECT_EQ(identity().app, "shop");
  EXPECT_EQ(identity().device, "ios");
  EXPECT_EQ(counter("auth_backend_accepted"), 1u);
  EXPECT_EQ(counter("auth_backend_cache_misses"), 1u);

  // The rooms travel with the identity (de-duplicated); the core joins them at open.
  EXPECT_EQ(cb_->joined_rooms, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(cb_->hub_.joins.empty());
  EXPECT_EQ(cb_->dispatcher_.pending(), 0u);
  EXPECT_TRUE(cb_->closed.empty());
}

TEST_F(AuthBackendTest, DefaultsForAppAndDevice) {
  StageConfigPtr config = compile("upstream: auth\ndefault_app: main\n");
  fresh();
  cb_->session_.query = {{"token", "t"}, {"device", "web-2"}};
  stage_ = config->createStage(*cb_);
  ASSERT_EQ(stage_->onOpen().action, Action::kPause);
  complete(answer(200, R"({"uid":42,"app":null,"rooms":[]})"));
  EXPECT_EQ(identity().user, "42");
  EXPECT_EQ(identity().app, "main");
  EXPECT_EQ(identity().device, "web-2");
  EXPECT_EQ(cb_->dispatcher_.pending(), 0u);  // no rooms, no expire_at: no timers
}

TEST_F(AuthBackendTest, RefusalsCarryTheBackendsReason) {
  StageConfigPtr config = compile("upstream: auth\nnegative_ttl: 0\n");
  struct Case {
    int status;
    std::string body;
    Errc code;
    std::string reason;
  };
  const std::string long_reason(200, 'r');
  const std::vector<Case> cases = {
      {401, R"({"reason":"password changed"})", Errc::kUnauthenticated, "password changed"},
      {403, R"({"reason":"account banned","error":"x"})", Errc::kPermissionDenied,
       "account banned"},
      {401, "", Errc::kUnauthenticated, "rejected by the auth backend"},
      {403, "not json", Errc::kPermissionDenied, "forbidden by the auth backend"},
      {401, R"({"reason":7})", Errc::kUnauthenticated, "rejected by the auth backend"},
      {401, R"({"reason":"a\nb\u0000c"})", Errc::kUnauthenticated, "a b c"},
      {401, R"({"reason":")" + long_reason + "\"}", Errc::kUnauthenticated,
       std::string(kMaxReasonBytes, 'r')},
      // Cut at a UTF-8 boundary: 119 ASCII bytes then a 2-byte character straddling the limit.
      {401, R"({"reason":")" + std::string(119, 'x') + "\xc3\xa9" + "\"}", Errc::kUnauthenticated,
       std::string(119, 'x')},
  };
  for (const Case& c : cases) {
    ASSERT_EQ(open(config).action, Action::kPause);
    complete(answer(c.status, c.body));
    ASSERT_EQ(cb_->rejected.size(), 1u) << c.body;
    EXPECT_EQ(cb_->rejected[0].first, c.code) << c.body;
    EXPECT_EQ(cb_->rejected[0].second, c.reason) << c.body;
    EXPECT_EQ(cb_->resumed, 0);
    EXPECT_EQ(cb_->identity_calls, 0);
  }
  EXPECT_EQ(counter("auth_backend_rejected"), cases.size());
}

TEST_F(AuthBackendTest, AnythingElseFailsClosedAsUnavailable) {
  StageConfigPtr config = compile();
  std::vector<Result<UpstreamResponse>> results = {
      answer(500, R"({"error":"boom"})"),
      answer(404, ""),
      answer(302, ""),
      answer(200, "not json"),
      answer(200, "[]"),
      answer(200, R"({"app":"shop"})"),
      answer(200, R"({"uid":""})"),
      answer(200, R"({"uid":1.5})"),
      answer(200, R"({"uid":"u","rooms":"lobby"})"),
      answer(200, R"({"uid":"u","rooms":[""]})"),
      answer(200, R"({"uid":"u","app":3})"),
      answer(200, R"({"uid":"u","expire_at":"soon"})"),
      answer(200, "{\"uid\":\"u\xff\"}"),  // not UTF-8
      // \u escapes of lone surrogates, which rapidjson 1.1 decodes into invalid UTF-8.
      answer(200, R"({"uid":"u\udc00"})"),
      answer(200, R"({"uid":"u","app":"\udfff"})"),
      answer(200, R"({"uid":"u","device":"d\ude00"})"),
      answer(200, R"({"uid":"u","rooms":["ok","\udc01"]})"),
      answer(200, std::string(64 * 1024 + 1, ' ')),
      fail(Errc::kTimeout, "no answer within 2000ms"),
      fail(Errc::kUnavailable, "no healthy backend"),
      fail(Errc::kInternal, "unreadable answer"),
  };
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_EQ(open(config, "same-token").action, Action::kPause) << i;  // never cached
    complete(results[i]);
    ASSERT_EQ(cb_->rejected.size(), 1u) << i;
    EXPECT_EQ(cb_->rejected[0].first, Errc::kUnavailable) << i;
    EXPECT_EQ(cb_->rejected[0].second, "auth backend unavailable") << i;
    EXPECT_EQ(cb_->resumed, 0) << i;
  }
  EXPECT_EQ(counter("auth_backend_unavailable"), results.size());
  EXPECT_EQ(counter("auth_backend_cache_hits"), 0u);
  // One warning per second, not one per connect.
  ASSERT_EQ(logger_.lines.size(), 1u);
  EXPECT_EQ(logger_.lines[0].first, LogLevel::kWarn);
  EXPECT_NE(logger_.lines[0].second.find("auth backend \"auth\" unavailable: status 500"),
            std::string::npos)
      << logger_.lines[0].second;
  now_ms_ += 1000;
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(fail(Errc::kTimeout, "no answer within 2000ms"));
  ASSERT_EQ(logger_.lines.size(), 2u);
  EXPECT_NE(logger_.lines[1].second.find("timeout: no answer"), std::string::npos);
}

TEST_F(AuthBackendTest, TooManyRoomsIsAnInvalidAnswer) {
  StageConfigPtr config = compile("upstream: auth\nmax_rooms: 2\n");
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(answer(200, R"({"uid":"u","rooms":["a","b","c"]})"));
  ASSERT_EQ(cb_->rejected.size(), 1u);
  EXPECT_EQ(cb_->rejected[0].first, Errc::kUnavailable);
  ASSERT_EQ(open(config, "t2").action, Action::kPause);
  complete(answer(200, R"({"uid":"u","rooms":["a","b"]})"));
  EXPECT_EQ(cb_->resumed, 1);
}

// ---- Cache ------------------------------------------------------------------------------------

TEST_F(AuthBackendTest, CacheHitMissAndExpiry) {
  StageConfigPtr config = compile("upstream: auth\ncache_ttl: 60s\n");
  ASSERT_EQ(open(config, "tok-a").action, Action::kPause);
  complete(answer(200, R"({"uid":"alice","app":"shop","rooms":["lobby"]})"));
  EXPECT_EQ(counter("auth_backend_cache_misses"), 1u);

  // Same token within cache_ttl: answered at once, no backend call, rooms still joined.
  now_ms_ += 59'000;
  const Verdict hit = open(config, "tok-a");
  EXPECT_EQ(hit.action, Action::kPass);
  EXPECT_TRUE(cb_->upstreams_.calls.empty());
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(identity().app, "shop");
  EXPECT_EQ(counter("auth_backend_cache_hits"), 1u);
  EXPECT_EQ(counter("auth_backend_accepted"), 2u);
  EXPECT_EQ(cb_->joined_rooms, std::vector<std::string>{"lobby"});

  // Another token misses.
  EXPECT_EQ(open(config, "tok-b").action, Action::kPause);
  EXPECT_EQ(counter("auth_backend_cache_misses"), 2u);

  // After cache_ttl the backend is asked again.
  now_ms_ += 1'000;
  EXPECT_EQ(open(config, "tok-a").action, Action::kPause);
  EXPECT_EQ(counter("auth_backend_cache_misses"), 3u);
  EXPECT_EQ(counter("auth_backend_cache_hits"), 1u);
}

TEST_F(AuthBackendTest, CacheNeverOutlivesExpireAt) {
  StageConfigPtr config = compile("upstream: auth\ncache_ttl: 1h\n");
  ASSERT_EQ(open(config, "tok").action, Action::kPause);
  complete(answer(200, R"({"uid":"u","expire_at":)" + std::to_string(kNow + 30) + "}"));
  now_ms_ += 29'000;
  EXPECT_EQ(open(config, "tok").action, Action::kPass);
  now_ms_ += 1'000;
  EXPECT_EQ(open(config, "tok").action, Action::kPause);
}

TEST_F(AuthBackendTest, NegativeAnswersAreCachedBriefly) {
  StageConfigPtr config = compile("upstream: auth\nnegative_ttl: 5s\n");
  ASSERT_EQ(open(config, "revoked").action, Action::kPause);
  complete(answer(401, R"({"reason":"token revoked"})"));
  now_ms_ += 4'999;
  const Verdict v = open(config, "revoked");
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.code, Errc::kUnauthenticated);
  EXPECT_EQ(v.reason, "token revoked");
  EXPECT_TRUE(cb_->upstreams_.calls.empty());
  EXPECT_EQ(counter("auth_backend_cache_hits"), 1u);
  now_ms_ += 1;
  EXPECT_EQ(open(config, "revoked").action, Action::kPause);

  // 403 too, with its own code.
  complete(answer(403, R"({"reason":"banned"})"));
  const Verdict again = open(config, "revoked");
  EXPECT_EQ(again.code, Errc::kPermissionDenied);
  EXPECT_EQ(again.reason, "banned");
}

TEST_F(AuthBackendTest, ZeroTtlsDisableEachSide) {
  StageConfigPtr no_positive = compile("upstream: auth\ncache_ttl: 0\n");
  ASSERT_EQ(open(no_positive, "t").action, Action::kPause);
  complete(answer(200, R"({"uid":"u"})"));
  EXPECT_EQ(open(no_positive, "t").action, Action::kPause);
  complete(answer(401, "{}"));
  EXPECT_EQ(open(no_positive, "t").action, Action::kReject);  // negatives still cached

  StageConfigPtr no_negative = compile("upstream: auth\nnegative_ttl: 0\n");
  ASSERT_EQ(open(no_negative, "t").action, Action::kPause);
  complete(answer(401, "{}"));
  EXPECT_EQ(open(no_negative, "t").action, Action::kPause);
}

TEST_F(AuthBackendTest, ConfigsDoNotShareTheirCache) {
  StageConfigPtr first = compile();
  ASSERT_EQ(open(first, "t").action, Action::kPause);
  complete(answer(200, R"({"uid":"u"})"));
  StageConfigPtr reloaded = compile();  // a reload starts with an empty cache
  EXPECT_EQ(open(reloaded, "t").action, Action::kPause);
  EXPECT_EQ(open(first, "t").action, Action::kPass);
}

// ---- expire_at --------------------------------------------------------------------------------

TEST_F(AuthBackendTest, ExpireAtClosesTheSession) {
  StageConfigPtr config = compile();
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(answer(200, R"({"uid":"u","expire_at":)" + std::to_string(kNow + 10) + "}"));
  EXPECT_EQ(cb_->resumed, 1);
  cb_->session_.opened_at_ms = kNowMs;
  EXPECT_EQ(cb_->session_.expiry_.at_s, kNow + 10);
  cb_->dispatcher_.advanceTo((kNow + 10) * 1000 - 1);
  EXPECT_TRUE(cb_->closed.empty());
  cb_->dispatcher_.advanceTo((kNow + 10) * 1000);
  ASSERT_EQ(cb_->closed.size(), 1u);
  EXPECT_EQ(cb_->closed[0].first, Errc::kUnauthenticated);
  EXPECT_EQ(cb_->closed[0].second, "credentials expired");
  EXPECT_EQ(counter("auth_backend_expired"), 1u);
  stage_->onClose();
  EXPECT_EQ(cb_->session_.expiry_.at_s, 0);
  EXPECT_EQ(cb_->dispatcher_.pending(), 0u);
}

TEST_F(AuthBackendTest, ExpireAtInThePastRefuses) {
  StageConfigPtr config = compile();
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(answer(200, R"({"uid":"u","expire_at":)" + std::to_string(kNow) + ".9}"));
  ASSERT_EQ(cb_->rejected.size(), 1u);
  EXPECT_EQ(cb_->rejected[0].first, Errc::kUnauthenticated);
  EXPECT_EQ(cb_->rejected[0].second, "credentials expired");
  EXPECT_EQ(cb_->identity_calls, 0);
}

TEST_F(AuthBackendTest, ReloadRecreationKeepsExpireAt) {
  StageConfigPtr config = compile();
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(answer(200, R"({"uid":"u","expire_at":)" + std::to_string(kNow + 100) + "}"));
  cb_->session_.opened_at_ms = kNowMs;
  cb_->dispatcher_.advance(5'000);
  // A reload: the stage goes without onClose, the new one comes without onOpen.
  stage_.reset();
  EXPECT_EQ(cb_->dispatcher_.pending(), 0u);
  StageConfigPtr reloaded = compile("upstream: auth\ncache_ttl: 10s\n");
  stage_ = reloaded->createStage(*cb_);
  EXPECT_EQ(cb_->dispatcher_.pending(), 1u);
  cb_->dispatcher_.advanceTo((kNow + 100) * 1000);
  ASSERT_EQ(cb_->closed.size(), 1u);
  EXPECT_EQ(cb_->closed[0].first, Errc::kUnauthenticated);
}

TEST_F(AuthBackendTest, RefusedHandshakeTakesItsTimerAlong) {
  StageConfigPtr config = compile();
  ASSERT_EQ(open(config).action, Action::kPause);
  complete(answer(200, R"({"uid":"u","expire_at":)" + std::to_string(kNow + 100) + "}"));
  EXPECT_EQ(cb_->session_.expiry_.at_s, kNow + 100);
  EXPECT_EQ(cb_->dispatcher_.pending(), 1u);
  stage_.reset();  // a later stage refused the handshake: never accepted, no onClose
  EXPECT_EQ(cb_->dispatcher_.pending(), 0u);
  cb_->dispatcher_.advanceTo((kNow + 100) * 1000);
  EXPECT_TRUE(cb_->closed.empty());
}

}  // namespace
}  // namespace imgate::mod::auth_backend
