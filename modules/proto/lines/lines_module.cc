// SPDX-License-Identifier: Apache-2.0
#include <array>
#include <memory>

#include "imgate/sdk/module.h"
#include "lines_codec.h"

namespace imgate::mod::lines {
namespace {

constexpr std::array<ParamSpec, 1> kSchema = {{
    {.key = "max_line", .type = ParamType::kSize, .default_value = "64KiB", .min = 1,
     .max = 16 << 20,
     .help = "longest line accepted (and bytes buffered without a newline); the connection is "
             "closed with \"error message_too_big\" above it"},
}};

class LinesConfig final : public ProtocolConfig {
 public:
  explicit LinesConfig(uint32_t max_line) : max_line_(max_line) {}
  Sniff sniff(std::string_view) const override { return Sniff::kMatch; }
  CodecPtr createCodec() const override { return std::make_unique<LinesCodec>(max_line_); }

 private:
  uint32_t max_line_;
};

class LinesFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.lines"; }
  std::string_view description() const override {
    return "newline-delimited text messages over raw TCP (stream listeners; nc, telnet)";
  }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext&) const override {
    return std::make_shared<const LinesConfig>(static_cast<uint32_t>(config.getSize("max_line")));
  }
};

}  // namespace
}  // namespace imgate::mod::lines

IMGATE_MODULE(proto_lines, imgate::mod::lines::LinesFactory, "0.1.0")
