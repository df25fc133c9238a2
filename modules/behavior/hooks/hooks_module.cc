// SPDX-License-Identifier: Apache-2.0
#include "hooks_stage.h"
#include "imgate/sdk/module.h"

namespace imgate::mod::hooks {
namespace {

class HooksFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "hooks"; }
  std::string_view description() const override {
    return "lifecycle webhooks: POSTs connect, disconnect and room join/leave events to an "
           "upstream group; the connect answer may deliver messages and join rooms";
  }
  std::span<const ParamSpec> schema() const override { return hooksSchema(); }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileHooks(config, context);
  }
};

}  // namespace
}  // namespace imgate::mod::hooks

IMGATE_MODULE(hooks, imgate::mod::hooks::HooksFactory, "0.1.0")
