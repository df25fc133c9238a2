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
#include "auth_jwt_keys.h"
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
  ASSERT_EQ(by_key.size(), 20u);
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
  EXPECT_EQ(by_key["algorithms"]->max, 13);
  EXPECT_TRUE(by_key["public_key_file"]->default_value.empty());
  EXPECT_TRUE(by_key["jwks_file"]->default_value.empty());
  EXPECT_EQ(by_key["rooms_claim"]->default_value, "rooms");
  EXPECT_EQ(by_key["max_rooms"]->type, ParamType::kInt);
  EXPECT_EQ(by_key["max_rooms"]->default_value, "256");
  EXPECT_EQ(by_key["max_age"]->type, ParamType::kDuration);
  EXPECT_TRUE(by_key["max_age"]->default_value.empty());
  EXPECT_EQ(by_key["expiry"]->type, ParamType::kEnum);
  EXPECT_EQ(by_key["expiry"]->default_value, "close");
  ASSERT_EQ(by_key["expiry"]->choices.size(), 2u);
  EXPECT_EQ(by_key["expiry"]->choices[0], "close");
  EXPECT_EQ(by_key["expiry"]->choices[1], "ignore");
  EXPECT_EQ(by_key["refresh_window"]->type, ParamType::kDuration);
  EXPECT_EQ(by_key["refresh_window"]->default_value, "60s");
  EXPECT_EQ(by_key["refresh_window"]->min, 0);
  EXPECT_EQ(by_key["refresh_window"]->max, 86'400'000);
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
  auto unknown = compile(secret, {{"algorithms", {"ES256K"}}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown algorithm \"ES256K\""), std::string::npos);
  // Known, but a secret cannot verify it (alg confusion: the secret is never an RSA key).
  auto rs = compile(secret, {{"algorithms", {"RS256"}}});
  ASSERT_FALSE(rs);
  EXPECT_NE(rs.error().message.find("no configured key verifies \"RS256\""), std::string::npos)
      << rs.error().message;
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

// ---- Public keys and JWK Sets ---------------------------------------------------------------

class AuthJwtKeyFileTest : public AuthJwtSecretFileTest {
 protected:
  Verdict openWith(const StageConfigPtr& config, const std::string& token) {
    cb_.session_.query["token"] = token;
    return open(config);
  }
  std::string es256(const std::string& key_name, std::string_view kid,
                    std::string_view payload = {}) {
    return test::signToken("ES256", test::key(key_name),
                           kid.empty() ? std::string() : test::kidHeader("ES256", kid),
                           payload.empty() ? claims() : payload);
  }
  bool logged(LogLevel level, std::string_view part) const {
    for (const auto& [l, line] : context_.logger.lines) {
      if (l == level && line.find(part) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
};

TEST_F(AuthJwtKeyFileTest, PublicKeyFile) {
  write("rsa.pem", test::publicPem(test::key("rsa")));
  StageConfigPtr config =
      compileOk({{"public_key_file", "rsa.pem"}}, {{"algorithms", {"RS256", "PS256"}}});
  ASSERT_TRUE(config);
  EXPECT_TRUE(logged(LogLevel::kInfo, "rsa.pem\": RSA-2048"));
  EXPECT_EQ(openWith(config, test::signToken("RS256", test::key("rsa"), {}, claims())).action,
            Action::kPass);
  EXPECT_EQ(identity().user, "alice");
  EXPECT_EQ(openWith(config, test::signToken("PS256", test::key("rsa"), {}, claims())).action,
            Action::kPass);
  expectReject(openWith(config, test::signToken("RS512", test::key("rsa"), {}, claims())),
               "algorithm \"RS512\" not allowed");
  expectReject(openWith(config, test::signToken("RS256", test::key("rsa2"), {}, claims())),
               "signature mismatch");
  // The classic confusion: HS256 keyed with the PEM text is refused, HS256 is not even listed.
  expectReject(openWith(config, signToken(test::publicPem(test::key("rsa")), claims())),
               "algorithm \"HS256\" not allowed");
}

TEST_F(AuthJwtKeyFileTest, CertificateFile) {
  write("cert.pem", test::certificatePem(test::key("ed25519")));
  StageConfigPtr config = compileOk({{"public_key_file", "cert.pem"}}, {{"algorithms", {"EdDSA"}}});
  ASSERT_TRUE(config);
  EXPECT_EQ(openWith(config, test::signToken("EdDSA", test::key("ed25519"), {}, claims())).action,
            Action::kPass);
}

TEST_F(AuthJwtKeyFileTest, AlgorithmsMustBeExplicitForPublicKeys) {
  write("ec.pem", test::publicPem(test::key("p256")));
  write("keys.jwks", test::jwks({test::jwk(test::key("p256"), "a")}));
  for (const Scalars& s : {Scalars{{"public_key_file", "ec.pem"}},
                           Scalars{{"jwks_file", "keys.jwks"}},
                           Scalars{{"jwks_file", "keys.jwks"}, {"secret", std::string(kSecret)}}}) {
    auto r = compile(s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    EXPECT_NE(r.error().message.find("\"algorithms\" must be listed"), std::string::npos)
        << r.error().message;
  }
  // Listing the HS256 default explicitly is fine, but then the EC key is useless: an error
  // without a JWK Set.
  auto hs = compile({{"public_key_file", "ec.pem"}, {"secret", std::string(kSecret)}},
                    {{"algorithms", {"HS256", "RS256"}}});
  ASSERT_FALSE(hs);
  EXPECT_NE(hs.error().message.find("no configured key verifies \"RS256\""), std::string::npos)
      << hs.error().message;
  EXPECT_NE(hs.error().message.find("auth.jwt.algorithms"), std::string::npos);
}

TEST_F(AuthJwtKeyFileTest, BadPublicKeyFiles) {
  write("rsa1024.pem", test::publicPem(test::key("rsa1024")));
  write("private.pem", test::privatePem(test::key("p256")));
  write("huge.pem", std::string(kMaxKeyFileBytes + 1, 'k'));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rsa1024.pem", "RSA key of 1024 bits is too short: at least 2048 bits are required"},
      {"private.pem", "holds a private key"},
      {"huge.pem", "is larger than 1 MiB"},
      {"missing.pem", "cannot open"},
  };
  for (const auto& [file, reason] : cases) {
    auto r = compile({{"public_key_file", file}}, {{"algorithms", {"RS256"}}});
    ASSERT_FALSE(r) << file;
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    EXPECT_NE(r.error().message.find(reason), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("auth.jwt.public_key_file"), std::string::npos);
    EXPECT_NE(r.error().message.find(dir_ + "/" + file), std::string::npos) << r.error().message;
  }
}

TEST_F(AuthJwtKeyFileTest, JwksFileAndRotation) {
  write("keys.jwks", test::jwks({test::jwk(test::key("p256"), "a", "ES256"),
                                 test::jwk(test::key("rsa"), "enc", "", R"("use":"enc")")}));
  StageConfigPtr first = compileOk({{"jwks_file", "keys.jwks"}}, {{"algorithms", {"ES256"}}});
  ASSERT_TRUE(first);
  EXPECT_TRUE(logged(LogLevel::kInfo, "1 key(s): kid \"a\" P-256 ES256; skipped keys[1]"));
  const std::string token_a = es256("p256", "a");
  const std::string token_b = es256("p256b", "b");
  EXPECT_EQ(openWith(first, token_a).action, Action::kPass);
  expectReject(openWith(first, token_b), "unknown key id");

  // Rotation: the file now holds only key b; the next load reads it again.
  write("keys.jwks", test::jwks({test::jwk(test::key("p256b"), "b")}));
  StageConfigPtr second = compileOk({{"jwks_file", "keys.jwks"}}, {{"algorithms", {"ES256"}}});
  ASSERT_TRUE(second);
  expectReject(openWith(second, token_a), "unknown key id");
  EXPECT_EQ(openWith(second, token_b).action, Action::kPass);
  // The old generation keeps its keys until the core drops it.
  EXPECT_EQ(openWith(first, token_a).action, Action::kPass);

  // A broken file fails the load (the core then keeps the previous generation).
  write("keys.jwks", R"({"keys":[{"kty":"EC","crv":"P-256","kid":"c","x":"!!","y":"AA"}]})");
  auto broken = compile({{"jwks_file", "keys.jwks"}}, {{"algorithms", {"ES256"}}});
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Errc::kInvalidConfig);
  EXPECT_NE(broken.error().message.find("auth.jwt.jwks_file"), std::string::npos);
  EXPECT_NE(broken.error().message.find("keys[0] (kid \"c\"): \"x\" is not valid base64url"),
            std::string::npos)
      << broken.error().message;
}

TEST_F(AuthJwtKeyFileTest, JwksErrorsAndWarnings) {
  write("rsa1024.jwks", test::jwks({test::jwk(test::key("rsa1024"), "old")}));
  auto short_rsa = compile({{"jwks_file", "rsa1024.jwks"}}, {{"algorithms", {"RS256"}}});
  ASSERT_FALSE(short_rsa);
  EXPECT_NE(short_rsa.error().message.find("keys[0] (kid \"old\"): RSA key of 1024 bits is too "
                                           "short"),
            std::string::npos)
      << short_rsa.error().message;

  write("huge.jwks", std::string(kMaxKeyFileBytes + 1, ' '));
  auto huge = compile({{"jwks_file", "huge.jwks"}}, {{"algorithms", {"RS256"}}});
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().message.find("larger than 1 MiB"), std::string::npos);

  // An algorithm without a key in the set only warns (the next rotation may add one) ...
  write("ec.jwks", test::jwks({test::jwk(test::key("p256"), "a")}));
  ASSERT_TRUE(compileOk({{"jwks_file", "ec.jwks"}}, {{"algorithms", {"ES256", "RS256"}}}));
  EXPECT_TRUE(logged(LogLevel::kWarn, "no key verifies algorithm RS256 yet"));
  // ... but a set that verifies none of them is an error.
  auto none = compile({{"jwks_file", "ec.jwks"}}, {{"algorithms", {"RS256"}}});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no configured key verifies any of the algorithms"),
            std::string::npos);

  // Short oct keys warn like a short secret.
  context_.logger.lines.clear();
  write("oct.jwks", test::jwks({test::octJwk("short", "h")}));
  ASSERT_TRUE(compileOk({{"jwks_file", "oct.jwks"}}, {{"algorithms", {"HS256"}}}));
  EXPECT_TRUE(logged(LogLevel::kWarn, "jwks_file key kid \"h\" HMAC is 5 bytes, shorter than"));
}

TEST_F(AuthJwtKeyFileTest, SecretPublicKeyAndJwksTogether) {
  write("rsa.pem", test::publicPem(test::key("rsa")));
  write("keys.jwks", test::jwks({test::jwk(test::key("p256"), "a")}));
  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)},
                                     {"public_key_file", "rsa.pem"},
                                     {"jwks_file", "keys.jwks"}},
                                    {{"algorithms", {"HS256", "RS256", "ES256"}}});
  ASSERT_TRUE(config);
  const auto& keys = static_cast<const JwtStageConfig&>(*config).settings().verifier.keys;
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_TRUE(keys[0].key->supports(Alg::kHs256));
  EXPECT_TRUE(keys[1].key->supports(Alg::kRs256));
  EXPECT_EQ(keys[2].kid, "a");
  EXPECT_EQ(openWith(config, signToken(kSecret, claims())).action, Action::kPass);
  EXPECT_EQ(openWith(config, test::signToken("RS256", test::key("rsa"), {}, claims())).action,
            Action::kPass);
  EXPECT_EQ(openWith(config, es256("p256", "a")).action, Action::kPass);
  EXPECT_EQ(openWith(config, es256("p256", "")).action, Action::kPass);  // the only ES256 key
  EXPECT_EQ(counter("auth_jwt_accepted"), 4u);
}

TEST_F(AuthJwtKeyFileTest, RoomsAndMaxAgeSettings) {
  StageConfigPtr defaults = compileOk();
  const auto& d = static_cast<const JwtStageConfig&>(*defaults).settings().verifier;
  EXPECT_EQ(d.rooms_claim, "rooms");
  EXPECT_EQ(d.max_rooms, 256u);
  EXPECT_FALSE(d.max_age);

  StageConfigPtr config = compileOk({{"secret", std::string(kSecret)},
                                     {"rooms_claim", "chans"},
                                     {"max_rooms", "2"},
                                     {"max_age", "10m"}});
  const auto& v = static_cast<const JwtStageConfig&>(*config).settings().verifier;
  EXPECT_EQ(v.rooms_claim, "chans");
  EXPECT_EQ(v.max_rooms, 2u);
  EXPECT_EQ(v.max_age, std::chrono::seconds(600));
  // Rooms are parsed and checked; the identity does not carry them (the core wires them).
  expectReject(openWith(config, signToken(kSecret, R"({"sub":"a","iat":)" +
                                                       std::to_string(kNow) +
                                                       R"(,"chans":["x","y","z"]})")),
               "claim \"chans\" has more than 2 entries");
  EXPECT_EQ(openWith(config, signToken(kSecret, R"({"sub":"a","iat":)" + std::to_string(kNow) +
                                                    R"(,"chans":["x"]})"))
                .action,
            Action::kPass);
  expectReject(openWith(config, signToken(kSecret, R"({"sub":"a","iat":)" +
                                                       std::to_string(kNow - 700) + "}")),
               "token too old");
  expectReject(openWith(config, signToken(kSecret, R"({"sub":"a"})")), "missing claim \"iat\"");
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

TEST_F(AuthJwtStageTest, RoomsClaimTravelsWithTheIdentity) {
  StageConfigPtr config = compileOk();
  cb_.session_.query["token"] = signToken(kSecret, claims(R"("rooms":["lobby","team-7","lobby"])"));
  ASSERT_EQ(open(config).action, Action::kPass);
  EXPECT_EQ(cb_.joined_rooms, (std::vector<std::string>{"lobby", "team-7"}));
  cb_.session_.query["token"] = signToken(kSecret, claims());
  ASSERT_EQ(open(config).action, Action::kPass);
  EXPECT_TRUE(cb_.joined_rooms.empty());
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

TEST_F(AuthJwtStageTest, MessagesPassUntouched) {
  // The stage refers to its config, which the session's pipeline keeps alive (the core
  // promises it: StageRunnerLifetimeTest), as `config` does here.
  StageConfigPtr config = compileOk();
  cb_.session_.query["token"] = signToken(kSecret, claims());
  ASSERT_EQ(open(config).action, Action::kPass);
  Message message;
  message.payload = makeBytes("hi");
  EXPECT_EQ(stage_->onMessage(message).action, Action::kPass);
  EXPECT_EQ(message.data(), "hi");
  EXPECT_EQ(stage_->onOpen().action, Action::kPass);
  stage_->onClose();
}

}  // namespace
}  // namespace imgate::mod::auth_jwt
