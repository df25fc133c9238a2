// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/auth_jwt/jwt_stage.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "auth_jwt_fakes.h"
#include "imgate/sdk/module.h"

// Defined by IMGATE_MODULE in auth_jwt_module.cc.
const imgate::ModuleFactory& imgate_module_auth_jwt();

namespace imgate::mod::auth_jwt {
namespace {

using test::FakeConfigView;
using test::FakeLoadContext;
using test::FakeStageCallbacks;
using test::signToken;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";
constexpr int64_t kNowMs = 1'700'000'000'500;
constexpr int64_t kNow = kNowMs / 1000;

std::string claims(std::string_view extra = {}) {
  std::string p = R"({"sub":"alice","exp":)" + std::to_string(kNow + 3600);
  if (!extra.empty()) {
    p += ",";
    p += extra;
  }
  return p + "}";
}

class AuthJwtStageTest : public testing::Test {
 protected:
  using Scalars = std::map<std::string, std::string>;
  using Lists = std::map<std::string, std::vector<std::string>>;

  Result<StageConfigPtr> compile(Scalars scalars, Lists lists = {}) {
    FakeConfigView view(jwtStageSchema(), std::move(scalars), std::move(lists));
    return compileJwtStage(view, context_);
  }
  StageConfigPtr compileOk(Scalars scalars = {{"secret", std::string(kSecret)}}, Lists lists = {}) {
    auto r = compile(std::move(scalars), std::move(lists));
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : nullptr;
  }
  Verdict open(const StageConfigPtr& config) {
    cb_.dispatcher_.wall_ms = kNowMs;
    stage_ = config->createStage(cb_);
    return stage_->onOpen();
  }
  uint64_t counter(const std::string& name) const { return context_.stats_.value(name); }
  const Identity& identity() const { return cb_.session_.identity_; }

  FakeLoadContext context_;
  FakeStageCallbacks cb_;
  StagePtr stage_;
};

void expectReject(const Verdict& v, std::string_view reason) {
  EXPECT_EQ(v.action, Action::kReject);
  EXPECT_EQ(v.code, Errc::kUnauthenticated);
  EXPECT_EQ(v.reason, reason);
}

// ---- Schema and compile ---------------------------------------------------------------------

TEST(AuthJwtSchema, DefaultsAndBounds) {
  std::map<std::string_view, const ParamSpec*> by_key;
  for (const ParamSpec& p : jwtStageSchema()) {
    EXPECT_TRUE(by_key.emplace(p.key, &p).second) << "duplicate key " << p.key;
    EXPECT_FALSE(p.help.empty()) << p.key;
  }
  ASSERT_EQ(by_key.size(), 13u);
  EXPECT_EQ(by_key["algorithms"]->type, ParamType::kStringList);
  EXPECT_EQ(by_key["algorithms"]->default_value, "HS256");
  EXPECT_EQ(by_key["leeway"]->type, ParamType::kDuration);
  EXPECT_EQ(by_key["leeway"]->default_value, "30s");
  EXPECT_EQ(by_key["leeway"]->max, 600000);
  EXPECT_EQ(by_key["leeway"]->min, 0);
  EXPECT_EQ(by_key["query_param"]->default_value, "token");
  EXPECT_EQ(by_key["subprotocol_prefix"]->default_value, "bearer.");
  EXPECT_EQ(by_key["user_claim"]->default_value, "sub");
  EXPECT_EQ(by_key["app_claim"]->default_value, "app");
  EXPECT_EQ(by_key["default_app"]->default_value, "default");
  EXPECT_EQ(by_key["required"]->type, ParamType::kBool);
  EXPECT_EQ(by_key["required"]->default_value, "true");
  EXPECT_TRUE(by_key["secret"]->default_value.empty());
  EXPECT_TRUE(by_key["issuer"]->default_value.empty());
  EXPECT_TRUE(by_key["audience"]->default_value.empty());
}

TEST(AuthJwtModule, FactoryIsRegistered) {
  const ModuleFactory& factory = imgate_module_auth_jwt();
  EXPECT_EQ(factory.name(), "auth.jwt");
  EXPECT_EQ(factory.kind(), ModuleKind::kStage);
  EXPECT_EQ(factory.schema().size(), jwtStageSchema().size());
  const auto& stage_factory = static_cast<const StageFactory&>(factory);
  EXPECT_FALSE(stage_factory.terminal());
  FakeConfigView view(jwtStageSchema(), {{"secret", std::string(kSecret)}});
  FakeLoadContext context;
  EXPECT_TRUE(stage_factory.compile(view, context));
}

TEST_F(AuthJwtStageTest, SecretSourceMustBeExactlyOne) {
  for (const Scalars& s : {Scalars{}, Scalars{{"secret", "a"}, {"secret_file", "f"}}}) {
    auto r = compile(s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    EXPECT_NE(r.error().message.find("exactly one of \"secret\" and \"secret_file\""),
              std::string::npos)
        << r.error().message;
  }
  auto empty = compile({{"secret", ""}});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Errc::kInvalidConfig);
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);
}

TEST_F(AuthJwtStageTest, AlgorithmsAreChecked) {
  const Scalars secret = {{"secret", std::string(kSecret)}};
  auto none = compile(secret, {{"algorithms", {"HS256", "none"}}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kInvalidConfig);
  EXPECT_NE(none.error().message.find("algorithm \"none\" cannot be enabled"), std::string::npos);
  EXPECT_NE(none.error().message.find("auth.jwt.algorithms"), std::string::npos);
  auto rs = compile(secret, {{"algorithms", {"RS256"}}});
  ASSERT_FALSE(rs);
  EXPECT_NE(rs.error().message.find("unknown algorithm \"RS256\""), std::string::npos);
  auto lower = compile(secret, {{"algorithms", {"hs256"}}});
  EXPECT_FALSE(lower);

  StageConfigPtr config = compileOk(secret, {{"algorithms", {"HS384", "HS256", "HS384"}}});
  ASSERT_TRUE(config);
  const auto& settings = static_cast<const JwtStageConfig&>(*config).settings();
  EXPECT_EQ(settings.verifier.algorithms, (std::vector<Alg>{Alg::kHs384, Alg::kHs256}));
}

TEST_F(AuthJwtStageTest, CompiledSettingsFollowConfig) {
  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)},
                                     {"leeway", "2m"},
                                     {"query_param", "access_token"},
                                     {"subprotocol_prefix", ""},
                                     {"user_claim", "uid"},
                                     {"required", "false"},
                                     {"issuer", "iss-1"}});
  ASSERT_TRUE(config);
  const auto& s = static_cast<const JwtStageConfig&>(*config).settings();
  EXPECT_EQ(s.verifier.leeway, std::chrono::seconds(120));
  EXPECT_EQ(s.query_param, "access_token");
  EXPECT_EQ(s.subprotocol_prefix, "");
  EXPECT_EQ(s.verifier.user_claim, "uid");
  EXPECT_EQ(s.verifier.app_claim, "app");
  EXPECT_FALSE(s.required);
  EXPECT_EQ(s.verifier.issuer, "iss-1");
  EXPECT_FALSE(s.verifier.audience);

  auto no_user = compile({{"secret", std::string(kSecret)}, {"user_claim", ""}});
  EXPECT_FALSE(no_user);
}

TEST_F(AuthJwtStageTest, ShortSecretWarnsButCompiles) {
  ASSERT_TRUE(compileOk({{"secret", "short"}}));
  ASSERT_EQ(context_.logger.lines.size(), 1u);
  EXPECT_EQ(context_.logger.lines[0].first, LogLevel::kWarn);
  EXPECT_NE(context_.logger.lines[0].second.find("shorter than the 32 bytes"), std::string::npos);

  context_.logger.lines.clear();
  ASSERT_TRUE(compileOk({{"secret", std::string(kSecret)}}));
  EXPECT_TRUE(context_.logger.lines.empty());

  ASSERT_TRUE(compileOk({{"secret", std::string(kSecret)}}, {{"algorithms", {"HS512"}}}));
  ASSERT_EQ(context_.logger.lines.size(), 1u);
  EXPECT_NE(context_.logger.lines[0].second.find("64 bytes"), std::string::npos);
}

class AuthJwtSecretFileTest : public AuthJwtStageTest {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "auth_jwt_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    context_.config_dir = dir_;
  }
  void TearDown() override {
    for (const std::string& f : files_) {
      std::remove(f.c_str());
    }
    rmdir(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    files_.push_back(path);
    return path;
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(AuthJwtSecretFileTest, RelativePathAndTrailingNewline) {
  write("jwt.key", std::string(kSecret) + "\n");
  StageConfigPtr config = compileOk({{"secret_file", "jwt.key"}});
  ASSERT_TRUE(config);
  cb_.session_.query["token"] = signToken(kSecret, claims());
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().user, "alice");
}

TEST_F(AuthJwtSecretFileTest, AbsolutePath) {
  const std::string path = write("abs.key", std::string(kSecret));
  context_.config_dir = "/nonexistent";
  StageConfigPtr config = compileOk({{"secret_file", path}});
  ASSERT_TRUE(config);
  cb_.session_.query["token"] = signToken(kSecret, claims());
  EXPECT_EQ(open(config).action, Action::kPass);
}

TEST_F(AuthJwtSecretFileTest, UnreadableEmptyOrHugeFileFails) {
  auto missing = compile({{"secret_file", "missing.key"}});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kInvalidConfig);
  EXPECT_NE(missing.error().message.find(dir_ + "/missing.key"), std::string::npos);
  EXPECT_NE(missing.error().message.find("auth.jwt.secret_file"), std::string::npos);

  write("empty.key", "\n");
  auto empty = compile({{"secret_file", "empty.key"}});
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message.find("empty"), std::string::npos);

  write("huge.key", std::string(kMaxSecretFileBytes + 1, 'k'));
  auto huge = compile({{"secret_file", "huge.key"}});
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("larger than"), std::string::npos);
}

// ---- Token sources --------------------------------------------------------------------------

TEST_F(AuthJwtStageTest, TokenFromQueryParameter) {
  StageConfigPtr config = compileOk();
  cb_.session_.query["token"] = signToken(kSecret, claims(R"("app":"chat","device":"d1")"));
  const Verdict v = open(config);
  EXPECT_EQ(v.action, Action::kPass);
  EXPECT_EQ(cb_.identity_calls, 1);
  EXPECT_EQ(identity().app, "chat");
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(identity().device, "d1");
  EXPECT_EQ(counter("auth_jwt_accepted"), 1u);
  EXPECT_EQ(counter("auth_jwt_rejected"), 0u);
}

TEST_F(AuthJwtStageTest, TokenFromAuthorizationHeader) {
  StageConfigPtr config = compileOk();
  for (const char* scheme : {"Bearer ", "bearer   ", "BEARER "}) {
    cb_.session_.headers = {{"Authorization", scheme + signToken(kSecret, claims())}};
    EXPECT_EQ(open(config).action, Action::kPass) << scheme;
    EXPECT_EQ(
        findToken(cb_.session_, static_cast<const JwtStageConfig&>(*config).settings()).source,
        TokenSource::kHeader);
  }
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(counter("auth_jwt_accepted"), 3u);
}

TEST_F(AuthJwtStageTest, TokenFromSubprotocol) {
  StageConfigPtr config = compileOk();
  cb_.session_.subprotocols = {"chat.v1", "bearer.", "bearer." + signToken(kSecret, claims())};
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(findToken(cb_.session_, static_cast<const JwtStageConfig&>(*config).settings()).source,
            TokenSource::kSubprotocol);
}

TEST_F(AuthJwtStageTest, SourcesAreTriedInOrder) {
  StageConfigPtr config = compileOk();
  const auto& settings = static_cast<const JwtStageConfig&>(*config).settings();
  const std::string good = signToken(kSecret, claims());
  cb_.session_.query["token"] = good;
  cb_.session_.headers = {{"authorization", "Bearer garbage"}};
  cb_.session_.subprotocols = {"bearer.garbage"};
  EXPECT_EQ(findToken(cb_.session_, settings).source, TokenSource::kQuery);
  EXPECT_EQ(open(config).action, Action::kPass);

  // First match wins even when it is bad: no falling through to a later source.
  cb_.session_.query["token"] = "garbage";
  cb_.session_.headers = {{"authorization", "Bearer " + good}};
  expectReject(open(config), "malformed token: expected three dot-separated segments");

  // Empty query value and a non-Bearer header are skipped.
  cb_.session_.query["token"] = "";
  cb_.session_.headers = {{"authorization", "Basic dXNlcjpwYXNz"}};
  cb_.session_.subprotocols = {"bearer." + good};
  EXPECT_EQ(findToken(cb_.session_, settings).source, TokenSource::kSubprotocol);
  EXPECT_EQ(open(config).action, Action::kPass);
}

TEST_F(AuthJwtStageTest, SourcesCanBeRenamedOrTurnedOff) {
  const std::string good = signToken(kSecret, claims());
  StageConfigPtr renamed = compileOk({{"secret", std::string(kSecret)},
                                      {"query_param", "access_token"},
                                      {"subprotocol_prefix", "jwt-"}});
  cb_.session_.query["token"] = good;
  expectReject(open(renamed), "missing token");
  cb_.session_.query = {{"access_token", good}};
  EXPECT_EQ(open(renamed).action, Action::kPass);
  cb_.session_.query.clear();
  cb_.session_.subprotocols = {"jwt-" + good};
  EXPECT_EQ(open(renamed).action, Action::kPass);

  StageConfigPtr off = compileOk(
      {{"secret", std::string(kSecret)}, {"query_param", ""}, {"subprotocol_prefix", ""}});
  cb_.session_.query = {{"", good}, {"token", good}};
  cb_.session_.subprotocols = {good, "bearer." + good};
  expectReject(open(off), "missing token");
}

// ---- Outcomes -------------------------------------------------------------------------------

TEST_F(AuthJwtStageTest, MissingTokenIsRejectedWhenRequired) {
  StageConfigPtr config = compileOk();
  expectReject(open(config), "missing token");
  EXPECT_EQ(cb_.identity_calls, 0);
  EXPECT_EQ(counter("auth_jwt_rejected"), 1u);
  EXPECT_EQ(counter("auth_jwt_accepted"), 0u);
}

TEST_F(AuthJwtStageTest, NotRequiredLetsAnonymousIn) {
  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)}, {"required", "false"}});
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(cb_.identity_calls, 0);
  EXPECT_TRUE(identity().user.empty());
  EXPECT_EQ(counter("auth_jwt_anonymous"), 1u);

  // A token that is present but bad is still refused.
  cb_.session_.query["token"] = signToken("wrong secret", claims());
  expectReject(open(config), "signature mismatch");
  EXPECT_EQ(counter("auth_jwt_rejected"), 1u);

  cb_.session_.query["token"] = signToken(kSecret, claims());
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(counter("auth_jwt_accepted"), 1u);
}

TEST_F(AuthJwtStageTest, UsesDispatcherWallClockAndLeeway) {
  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)}, {"leeway", "0"}});
  const std::string token =
      signToken(kSecret, R"({"sub":"a","exp":)" + std::to_string(kNow + 10) + "}");
  cb_.session_.query["token"] = token;
  EXPECT_EQ(open(config).action, Action::kPass);

  stage_ = config->createStage(cb_);
  cb_.dispatcher_.wall_ms = (kNow + 10) * 1000;
  expectReject(stage_->onOpen(), "token expired");

  StageConfigPtr lenient = compileOk({{"secret", std::string(kSecret)}, {"leeway", "1m"}});
  stage_ = lenient->createStage(cb_);
  cb_.dispatcher_.wall_ms = (kNow + 60) * 1000;
  EXPECT_EQ(stage_->onOpen().action, Action::kPass);
  cb_.dispatcher_.wall_ms = (kNow + 70) * 1000;
  expectReject(stage_->onOpen(), "token expired");
}

TEST_F(AuthJwtStageTest, DeviceFallsBackToQueryParameter) {
  StageConfigPtr config = compileOk();
  cb_.session_.query = {{"token", signToken(kSecret, claims())}, {"device", "web-1"}};
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().device, "web-1");
  EXPECT_EQ(identity().app, "default");

  cb_.session_.query["token"] = signToken(kSecret, claims(R"("device":"ios-2")"));
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().device, "ios-2");
}

TEST_F(AuthJwtStageTest, IssuerAudienceAndClaimNamesFromConfig) {
  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)},
                                     {"issuer", "auth"},
                                     {"audience", "gw"},
                                     {"user_claim", "uid"},
                                     {"app_claim", "tenant"},
                                     {"default_app", "main"}});
  cb_.session_.query["token"] = signToken(kSecret, R"({"uid":"u1","iss":"auth","aud":"gw"})");
  EXPECT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(identity().user, "u1");
  EXPECT_EQ(identity().app, "main");
  cb_.session_.query["token"] = signToken(kSecret, R"({"uid":"u1","iss":"other","aud":"gw"})");
  expectReject(open(config), "issuer mismatch");
  cb_.session_.query["token"] = signToken(kSecret, R"({"uid":"u1","iss":"auth","aud":"x"})");
  expectReject(open(config), "audience mismatch");
  cb_.session_.query["token"] = signToken(kSecret, R"({"sub":"u1","iss":"auth","aud":"gw"})");
  expectReject(open(config), "missing claim \"uid\"");
}

TEST_F(AuthJwtStageTest, RejectsDisallowedAlgorithms) {
  StageConfigPtr config = compileOk();
  cb_.session_.query["token"] = signToken(kSecret, claims(), "HS512");
  expectReject(open(config), "algorithm \"HS512\" not allowed");
  cb_.session_.query["token"] =
      test::b64url(R"({"alg":"none"})") + "." + test::b64url(claims()) + ".";
  expectReject(open(config), "algorithm \"none\" not allowed");
  EXPECT_EQ(counter("auth_jwt_rejected"), 2u);
}

TEST_F(AuthJwtStageTest, MessagesPassAndStageKeepsConfigAlive) {
  StageConfigPtr config = compileOk();
  cb_.session_.query["token"] = signToken(kSecret, claims());
  ASSERT_EQ(open(config).action, Action::kPass);
  config.reset();  // a reload dropped the generation; the session's stage lives on
  Message message;
  message.payload = makeBytes("hi");
  EXPECT_EQ(stage_->onMessage(message).action, Action::kPass);
  EXPECT_EQ(message.data(), "hi");
  EXPECT_EQ(stage_->onOpen().action, Action::kPass);
  stage_->onClose();
}

}  // namespace
}  // namespace imgate::mod::auth_jwt
