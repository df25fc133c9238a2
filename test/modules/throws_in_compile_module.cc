// SPDX-License-Identifier: Apache-2.0
// Test-only module: loads fine, but compile() throws. Catching that is the core's job at
// compile time, not the loader's.
#include <span>
#include <stdexcept>
#include <string_view>

#include "imgate/sdk/module.h"

namespace imgate::test::modules {

class ThrowsInCompileFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "test.throws_in_compile"; }
  std::span<const ParamSpec> schema() const override { return {}; }
  std::string_view description() const override { return "test-only stage"; }
  Result<StageConfigPtr> compile(const ConfigView&, LoadContext&) const override {
    throw std::runtime_error("compile exploded");
  }
};

}  // namespace imgate::test::modules

IMGATE_MODULE(throws_in_compile, imgate::test::modules::ThrowsInCompileFactory, "0.1.0")
