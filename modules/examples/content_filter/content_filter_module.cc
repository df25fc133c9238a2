// SPDX-License-Identifier: Apache-2.0
// The registration of example.content_filter: the only file that differs between a built-in
// module and a third-party .so is none — the same line serves both (IMGATE_MODULE exports the
// entry symbol when built with -DIMGATE_SHARED_MODULE).
#include "content_filter.h"
#include "imgate/sdk/module.h"

namespace imgate::mod::content_filter {
namespace {

class FilterFactory final : public StageFactory {
 public:
  std::string_view name() const override { return "example.content_filter"; }
  std::string_view description() const override {
    return "example stage: masks or refuses client messages matching RE2 word lists";
  }
  std::span<const ParamSpec> schema() const override { return filterSchema(); }
  Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    return compileFilter(config, context);
  }
};

}  // namespace
}  // namespace imgate::mod::content_filter

IMGATE_MODULE(example_content_filter, imgate::mod::content_filter::FilterFactory, "0.1.0")
