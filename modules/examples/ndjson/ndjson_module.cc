// SPDX-License-Identifier: Apache-2.0
// The registration of example.ndjson. The module is built only as a .so (in tree and out of
// tree alike); IMGATE_MODULE exports the entry symbol when built with -DIMGATE_SHARED_MODULE.
#include "imgate/sdk/module.h"
#include "ndjson_codec.h"

namespace imgate::mod::ndjson {
namespace {

class NdjsonFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "example.ndjson"; }
  std::string_view description() const override {
    return "example protocol: newline-delimited JSON over raw TCP with an in-band hello";
  }
  std::span<const ParamSpec> schema() const override { return ndjsonSchema(); }
  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext&) const override {
    return compileNdjson(config);
  }
};

}  // namespace
}  // namespace imgate::mod::ndjson

IMGATE_MODULE(example_ndjson, imgate::mod::ndjson::NdjsonFactory, "0.1.0")
