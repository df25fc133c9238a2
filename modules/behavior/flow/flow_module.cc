// SPDX-License-Identifier: Apache-2.0
#include "flow_stage.h"
#include "imgate/sdk/module.h"

namespace imgate::mod::flow {
namespace {

class FlowFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "flow"; }
  std::string_view description() const override {
    return "token-bucket rate limits on client messages and bytes, per session, user, IP and "
           "app; bucket state survives reloads";
  }
  std::span<const ParamSpec> schema() const override { return flowSchema(); }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileFlow(config, context);
  }
};

}  // namespace
}  // namespace imgate::mod::flow

IMGATE_MODULE(flow, imgate::mod::flow::FlowFactory, "0.1.0")
