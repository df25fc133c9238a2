// SPDX-License-Identifier: Apache-2.0
#include "imgate/sdk/module.h"
#include "route_stage.h"

namespace imgate::mod::route {
namespace {

class RouteFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "route"; }
  std::string_view description() const override {
    return "terminal stage: POSTs client messages to upstream groups by rules and acks with the "
           "backend's answer";
  }
  bool terminal() const override { return true; }
  std::span<const ParamSpec> schema() const override { return routeSchema(); }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileRoute(config, context);
  }
};

}  // namespace
}  // namespace imgate::mod::route

IMGATE_MODULE(route, imgate::mod::route::RouteFactory, "0.1.0")
