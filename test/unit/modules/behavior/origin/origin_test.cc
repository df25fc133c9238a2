// SPDX-License-Identifier: Apache-2.0
// The origin stage: config through the core's schema checker, pattern matching (anchored,
// case-insensitive), missing and null origins, verdicts and counters.
#include "modules/behavior/origin/origin_stage.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/module.h"
#include "test/mocks/sdk_fakes.h"

// Defined by IMGATE_MODULE in origin_module.cc.
const imgate::ModuleFactory& imgate_module_origin();

namespace imgate::mod::origin {
namespace {

class FakeSession final : public Session {
 public:
   SessionExpiry expiry() const override { return {}; }
  uint64_t id() const override { return 5; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "edge"; }
  std::string_view peerAddress() const override { return "203.0.113.5:4000"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view name) const override {
    const auto it = headers.find(std::string(name));
    if (it == headers.end()) {
      return std::nullopt;
    }
    return std::string_view(it->second);
  }
  std::optional<std::string> handshakeQuery(std::string_view) const override { return {}; }
  const std::vector<std::string>& offeredSubprotocols() const override { return none_; }

  std::map<std::string, std::string> headers;  // lower-case names, as the core matches them

 private:
  Identity identity_;
  std::vector<std::string> none_;
};

class FakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override { return nullptr; }
  void post(std::function<void()>) override {}
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
};

class RecordingLogger final : public Logger {
 public:
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(level, std::string(message));
  }
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class FakeCallbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++calls; }
  void reject(Errc, std::string) override { ++calls; }
  void close(Errc, std::string) override { ++calls; }
  void reply(Message) override { ++calls; }
  void setIdentity(Identity, std::vector<std::string>) override { ++calls; }
  Upstreams& upstreams() override { return upstreams_; }
  Logger& log() override { return logger; }
  Hub& hub() override { return hub_; }

  FakeSession session_;
  RecordingLogger logger;
  int calls = 0;  // the stage must not use any callback to refuse: its verdict does

 private:
  FakeDispatcher dispatcher_;
  mocks::FakeUpstreams upstreams_;
  mocks::NullHub hub_;
};

class FakeStats final : public Stats {
 public:
  Counter& counter(std::string_view name) override { return counters[std::string(name)]; }
  std::map<std::string, Counter> counters;
};

class FakeContext final : public LoadContext {
 public:
  std::string_view instanceName() const override { return "im[0]:origin"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return logger; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view) const override { return false; }
  RecordingLogger logger;
  FakeStats stats_;
};

const StageFactory& factory() { return static_cast<const StageFactory&>(imgate_module_origin()); }

// Validates `yaml` with the core's schema checker, then compiles it, as a config load does.
Result<StageConfigPtr> compile(const std::string& yaml, FakeContext& context) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(doc.error()));
  }
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, factory().schema(), "origin", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, "schema: " + core::config::formatErrors(errors));
  }
  return factory().compile(*section, context);
}

// The verdict of onOpen for a handshake with `origin` (nullopt: no Origin header).
Verdict open(const StageConfigPtr& config, std::optional<std::string> origin,
             FakeCallbacks& callbacks) {
  callbacks.session_.headers.clear();
  if (origin) {
    callbacks.session_.headers["origin"] = *origin;
  }
  StagePtr stage = config->createStage(callbacks);
  return stage->onOpen();
}

constexpr const char* kExample =
    R"(allow: [ "https://([a-z0-9-]+\\.)?example\\.com", "http://localhost:[0-9]+" ])";

TEST(OriginStage, FactoryAndSchema) {
  EXPECT_EQ(factory().name(), "origin");
  EXPECT_EQ(factory().kind(), ModuleKind::kStage);
  EXPECT_FALSE(factory().terminal());
  core::config::Errors errors;
  core::config::checkSchema(factory().schema(), "origin", errors);
  EXPECT_TRUE(errors.empty()) << core::config::formatErrors(errors);
  std::map<std::string_view, std::string_view> defaults;
  for (const auto& spec : factory().schema()) {
    defaults[spec.key] = spec.default_value;
    EXPECT_FALSE(spec.help.empty()) << spec.key;
  }
  EXPECT_EQ(defaults, (std::map<std::string_view, std::string_view>{
                          {"allow", ""}, {"allow_missing", "true"}, {"allow_null", "false"}}));
}

TEST(OriginStage, AllowListIsAnchoredAndCaseInsensitive) {
  FakeContext context;
  auto config = compile(kExample, context);
  ASSERT_TRUE(config) << config.error().message;
  FakeCallbacks cb;
  for (const char* good : {"https://example.com", "https://www.example.com",
                           "https://a-b.example.com", "HTTPS://WWW.Example.COM",
                           "http://localhost:3000"}) {
    const Verdict v = open(*config, good, cb);
    EXPECT_EQ(v.action, Action::kPass) << good;
  }
  // Each of these would pass an unanchored or a sloppy pattern.
  const std::vector<std::string> refused = {
      "https://evil.com",         "https://example.com.evil.com", "https://evilexample.com",
      "https://notexample.com",   "http://example.com",           "https://example.com:8443",
      "https://example.com/",     "xhttps://example.com",         "https://a.b.example.com.",
      "https://example.comx",     "http://localhost",             "",
      std::string(3000, 'a')};
  for (const auto& bad : refused) {
    const Verdict v = open(*config, bad, cb);
    EXPECT_EQ(v.action, Action::kReject) << bad;
    EXPECT_EQ(v.code, Errc::kPermissionDenied) << bad;
    EXPECT_EQ(v.reason, "origin not allowed");
  }
  EXPECT_EQ(open(*config, "https://a.b.example.com", cb).action, Action::kReject)
      << "one subdomain level only, as the pattern says";
  EXPECT_EQ(cb.calls, 0);
  EXPECT_EQ(context.stats_.counters["origin_refused"].value(), 14u);
  EXPECT_EQ(context.stats_.counters["origin_missing"].value(), 0u);
}

TEST(OriginStage, MissingAndNullOrigins) {
  FakeContext context;
  auto defaults = compile(kExample, context);
  ASSERT_TRUE(defaults) << defaults.error().message;
  FakeCallbacks cb;
  EXPECT_EQ(open(*defaults, std::nullopt, cb).action, Action::kPass) << "allow_missing: true";
  EXPECT_EQ(open(*defaults, "null", cb).action, Action::kReject) << "allow_null: false";
  EXPECT_EQ(context.stats_.counters["origin_missing"].value(), 1u);

  auto strict = compile(std::string(kExample) + "\nallow_missing: false\nallow_null: true",
                        context);
  ASSERT_TRUE(strict) << strict.error().message;
  const Verdict missing = open(*strict, std::nullopt, cb);
  EXPECT_EQ(missing.action, Action::kReject);
  EXPECT_EQ(missing.code, Errc::kPermissionDenied);
  EXPECT_EQ(open(*strict, "null", cb).action, Action::kPass);
  EXPECT_EQ(open(*strict, "https://example.com", cb).action, Action::kPass);
  // "null" is only ever the literal value; patterns never see it, and "NULL" is not it.
  auto null_pattern = compile("allow: [ \"null\" ]", context);
  ASSERT_TRUE(null_pattern);
  EXPECT_EQ(open(*null_pattern, "null", cb).action, Action::kReject);
  EXPECT_EQ(open(*strict, "NULL", cb).action, Action::kReject);
}

TEST(OriginStage, EmptyAllowListRefusesEveryBrowser) {
  FakeContext context;
  auto config = compile("allow: []", context);
  ASSERT_TRUE(config) << config.error().message;
  FakeCallbacks cb;
  EXPECT_EQ(open(*config, "https://example.com", cb).action, Action::kReject);
  EXPECT_EQ(open(*config, std::nullopt, cb).action, Action::kPass);
  EXPECT_TRUE(context.logger.lines.empty());
  auto closed = compile("allow: []\nallow_missing: false", context);
  ASSERT_TRUE(closed);
  ASSERT_EQ(context.logger.lines.size(), 1u);
  EXPECT_EQ(context.logger.lines[0].first, LogLevel::kWarn);
}

TEST(OriginStage, RefusalsAreLoggedAtDebugWithTheOrigin) {
  FakeContext context;
  auto config = compile(kExample, context);
  ASSERT_TRUE(config);
  FakeCallbacks cb;
  (void)open(*config, "https://evil.test", cb);
  ASSERT_EQ(cb.logger.lines.size(), 1u);
  EXPECT_EQ(cb.logger.lines[0].first, LogLevel::kDebug);
  EXPECT_EQ(cb.logger.lines[0].second, "origin \"https://evil.test\" not allowed");
}

TEST(OriginStage, MessagesPassUntouched) {
  FakeContext context;
  auto config = compile(kExample, context);
  ASSERT_TRUE(config);
  FakeCallbacks cb;
  StagePtr stage = (*config)->createStage(cb);
  Message m;
  m.event = "chat";
  EXPECT_EQ(stage->onMessage(m).action, Action::kPass);
  EXPECT_EQ(m.event, "chat");
}

TEST(OriginStage, ConfigErrors) {
  FakeContext context;
  const auto error = [&](const std::string& yaml) {
    auto r = compile(yaml, context);
    return r ? std::string() : r.error().message;
  };
  const std::string bad = error(R"(allow: [ "https://ok\\.com", "https://(a" ])");
  EXPECT_NE(bad.find("allow[1]: bad pattern \"https://(a\": missing )"), std::string::npos) << bad;
  EXPECT_NE(error("allow: [ \"\" ]").find("allow[0] is empty"), std::string::npos);
  EXPECT_NE(error("allow_missing: true").find("allow"), std::string::npos) << "allow is required";
  EXPECT_NE(error("allow: [x]\nallow_null: yes").find("allow_null"), std::string::npos);
  EXPECT_NE(error("allow: [x]\nalow_missing: true").find("alow_missing"), std::string::npos);
  EXPECT_EQ(error("allow: [ \"https://ok\\\\.com\" ]"), "");
}

}  // namespace
}  // namespace imgate::mod::origin
