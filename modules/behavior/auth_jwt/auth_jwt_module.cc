// SPDX-License-Identifier: Apache-2.0
// Registration of the auth.jwt stage; the logic is in jwt.{h,cc} and jwt_stage.{h,cc}.
#include "imgate/sdk/module.h"
#include "jwt_stage.h"

namespace imgate::mod::auth_jwt {

class AuthJwtFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "auth.jwt"; }
  std::span<const ParamSpec> schema() const override { return jwtStageSchema(); }
  std::string_view description() const override {
    return "authenticates sessions at connect with a JWT (HS*, RS*, PS*, ES*, EdDSA; JWKS)";
  }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileJwtStage(config, context);
  }
};

}  // namespace imgate::mod::auth_jwt

IMGATE_MODULE(auth_jwt, imgate::mod::auth_jwt::AuthJwtFactory, "0.1.0")
