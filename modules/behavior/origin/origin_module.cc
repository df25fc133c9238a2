// SPDX-License-Identifier: Apache-2.0
#include "imgate/sdk/module.h"
#include "origin_stage.h"

namespace imgate::mod::origin {
namespace {

class OriginFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "origin"; }
  std::string_view description() const override {
    return "refuses handshakes whose Origin is not on an allow-list (cross-site WebSocket "
           "hijacking)";
  }
  std::span<const ParamSpec> schema() const override { return originSchema(); }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileOrigin(config, context);
  }
};

}  // namespace
}  // namespace imgate::mod::origin

IMGATE_MODULE(origin, imgate::mod::origin::OriginFactory, "0.1.0")
