// SPDX-License-Identifier: Apache-2.0
#include <memory>

#include "imgate/sdk/module.h"
#include "echo_stage.h"

namespace imgate::mod::echo {

class EchoFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "echo"; }
  std::span<const ParamSpec> schema() const override { return {}; }
  std::string_view description() const override {
    return "terminal stage that sends every inbound data message back to its sender";
  }
  bool terminal() const override { return true; }

  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    (void)config;
    (void)context;
    return std::make_shared<const EchoConfig>();
  }
};

}  // namespace imgate::mod::echo

IMGATE_MODULE(echo, imgate::mod::echo::EchoFactory, "0.1.0")
