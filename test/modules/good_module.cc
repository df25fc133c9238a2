// SPDX-License-Identifier: Apache-2.0
// Test-only module: a minimal stage that replies "good:<payload>", so a test can tell that the
// code running is the .so's.
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "imgate/sdk/module.h"

namespace imgate::test::modules {
namespace {

class GoodStage final : public Stage {
 public:
  explicit GoodStage(StageCallbacks& callbacks) : callbacks_(callbacks) {}
  Verdict onMessage(Message& message) override {
    Message out;
    out.payload = makeBytes("good:" + std::string(message.data()));
    callbacks_.reply(std::move(out));
    return Verdict::pass();
  }

 private:
  StageCallbacks& callbacks_;
};

class GoodConfig final : public StageConfig {
 public:
  StagePtr createStage(StageCallbacks& callbacks) const override {
    return std::make_unique<GoodStage>(callbacks);
  }
};

}  // namespace

class GoodFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "test.good"; }
  std::span<const ParamSpec> schema() const override { return {}; }
  std::string_view description() const override { return "test-only stage"; }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    (void)config;
    (void)context;
    return std::make_shared<const GoodConfig>();
  }
};

}  // namespace imgate::test::modules

IMGATE_MODULE(good, imgate::test::modules::GoodFactory, "1.2.3")
