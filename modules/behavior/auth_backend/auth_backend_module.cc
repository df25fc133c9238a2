// SPDX-License-Identifier: Apache-2.0
// Registration of the auth.backend stage; the logic is in auth_backend_stage.{h,cc}.
#include "auth_backend_stage.h"
#include "imgate/sdk/module.h"

namespace imgate::mod::auth_backend {

class AuthBackendFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "auth.backend"; }
  std::span<const ParamSpec> schema() const override { return backendSchema(); }
  std::string_view description() const override {
    return "authenticates sessions at connect by asking a backend (cached, fail closed)";
  }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileBackend(config, context);
  }
};

}  // namespace imgate::mod::auth_backend

IMGATE_MODULE(auth_backend, imgate::mod::auth_backend::AuthBackendFactory, "0.1.0")
