// SPDX-License-Identifier: Apache-2.0
// Test-only module: a valid stage whose name collides with the built-in "echo".
#include <span>
#include <string_view>

#include "imgate/sdk/module.h"

namespace imgate::test::modules {

class DuplicateNameFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "echo"; }
  std::span<const ParamSpec> schema() const override { return {}; }
  std::string_view description() const override { return "test-only stage"; }
  Result<StageConfigPtr> compile(const ConfigView&, LoadContext&) const override {
    return fail(Errc::kInvalidConfig, "never compiled");
  }
};

}  // namespace imgate::test::modules

IMGATE_MODULE(duplicate_name, imgate::test::modules::DuplicateNameFactory, "0.1.0")
