// SPDX-License-Identifier: Apache-2.0
// The factory through the core's real schema checker: defaults, bounds, compile.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/module.h"
#include "modules/proto/tcp_frame/frame.h"
#include "test/unit/modules/proto/tcp_frame/tcp_frame_fakes.h"

const imgate::ModuleFactory& imgate_module_proto_tcp_frame();

namespace imgate::mod::tcp_frame {
namespace {

class Context final : public LoadContext, public Logger, public Stats {
 public:
  std::string_view instanceName() const override { return "tcp_test"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return *this; }
  Stats& stats() override { return *this; }
  bool hasUpstream(std::string_view) const override { return false; }
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel, std::string_view) override {}
  Counter& counter(std::string_view name) override {
    auto& slot = counters_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }

 private:
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

const ProtocolFactory& factory() {
  return static_cast<const ProtocolFactory&>(imgate_module_proto_tcp_frame());
}

// Validates `yaml` against the module's schema; on success compiles it.
Result<ProtocolConfigPtr> load(const std::string& yaml, std::string* errors = nullptr) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  EXPECT_TRUE(doc.has_value());
  core::config::Errors errs;
  auto section = core::config::validate(doc->root, factory().schema(), "tcp", errs);
  if (!errs.empty()) {
    if (errors != nullptr) {
      *errors = core::config::formatErrors(errs);
    }
    return fail(Errc::kInvalidConfig, core::config::formatErrors(errs));
  }
  Context context;
  return factory().compile(*section, context);
}

TEST(ProtoTcpFrameModuleTest, SchemaIsValidAndDefaultsCompile) {
  EXPECT_EQ(factory().name(), "proto.tcp_frame");
  EXPECT_EQ(factory().kind(), ModuleKind::kProtocol);
  core::config::Errors errs;
  core::config::checkSchema(factory().schema(), "tcp", errs);
  EXPECT_TRUE(errs.empty()) << core::config::formatErrors(errs);
  auto config = load("{}");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE((*config)->handshakeInBand());
  auto codec = (*config)->createCodec();
  ASSERT_NE(codec, nullptr);
  // The default max_frame is 64KiB: one byte more fails from the header.
  testing::FakeSink sink;
  testing::FakeOut out;
  std::string header(kHeaderSize, '\0');
  writeHeader(header.data(), FrameHeader{FrameType::kPing, 0, 0, 64 * 1024 + 1});
  auto r = codec->decode(header, sink, out);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
}

TEST(ProtoTcpFrameModuleTest, SniffsTheMagic) {
  auto config = load("{}");
  ASSERT_TRUE(config);
  EXPECT_EQ((*config)->sniff(""), Sniff::kNeedMore);
  EXPECT_EQ((*config)->sniff("\xB7"), Sniff::kNeedMore);
  EXPECT_EQ((*config)->sniff("\xB7\x46\x01"), Sniff::kMatch);
  EXPECT_EQ((*config)->sniff("\xB7G"), Sniff::kNoMatch);
  EXPECT_EQ((*config)->sniff("GET / HTTP/1.1"), Sniff::kNoMatch);
  EXPECT_EQ((*config)->sniff("\x16\x03\x01"), Sniff::kNoMatch);
}

TEST(ProtoTcpFrameModuleTest, EveryBoundAcceptsJustInsideAndRejectsJustOutside) {
  const std::map<std::string, std::pair<std::string, std::string>> bounds = {
      {"max_frame", {"256", "255"}},
      {"max_frame ", {"16MiB", "16777217"}},
      {"compress_min_size", {"0", "-1"}},
      {"compress_min_size ", {"64MiB", "67108865"}},
      {"compression_level", {"1", "0"}},
      {"compression_level ", {"9", "10"}},
      {"reconnect_jitter", {"0", "-1s"}},
      {"reconnect_jitter ", {"10m", "601s"}},
  };
  for (const auto& [key_padded, values] : bounds) {
    const std::string key = key_padded.substr(0, key_padded.find(' '));
    std::string errors;
    EXPECT_TRUE(load(key + ": " + values.first, &errors)) << key << " " << errors;
    EXPECT_FALSE(load(key + ": " + values.second)) << key << " = " << values.second;
  }
  EXPECT_FALSE(load("compression: yes"));
  EXPECT_FALSE(load("max_frames: 1KiB"));
  EXPECT_TRUE(load("reconnect_hint: pool.example.com:7100"));
  auto long_hint = load("reconnect_hint: " + std::string(300, 'h'));
  ASSERT_FALSE(long_hint);
  EXPECT_EQ(long_hint.error().code, Errc::kInvalidConfig);
}

}  // namespace
}  // namespace imgate::mod::tcp_frame
