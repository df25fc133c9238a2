// SPDX-License-Identifier: Apache-2.0
// A factory that aborts when touched: modules that must be rejected before the loader reads
// their C++ objects export it, so a loader that checks too late crashes the test.
#pragma once

#include <cstdlib>
#include <span>
#include <string_view>

#include "imgate/sdk/module.h"

namespace imgate::test::modules {

class TripwireFactory final : public StageFactory {
 public:
  std::string_view name() const override { std::abort(); }
  std::span<const ParamSpec> schema() const override { std::abort(); }
  std::string_view description() const override { std::abort(); }
  Result<StageConfigPtr> compile(const ConfigView&, LoadContext&) const override {
    std::abort();
  }
};

}  // namespace imgate::test::modules
