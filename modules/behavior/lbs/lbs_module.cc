// SPDX-License-Identifier: Apache-2.0
#include <memory>
#include <utility>

#include "imgate/sdk/module.h"
#include "lbs.h"
#include "lbs_config.h"

namespace imgate::mod::lbs {
namespace {

class LbsConfig final : public ProtocolConfig {
 public:
  LbsConfig(LbsOptions options, LbsCounters counters) : lbs_(std::move(options), counters) {}

  void onHttpRequest(const HttpExchangePtr& exchange) const override { lbs_.handle(exchange); }

 private:
  Lbs lbs_;
};

}  // namespace

class LbsFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "lbs"; }
  std::span<const ParamSpec> schema() const override { return lbsSchema(); }
  std::string_view description() const override {
    return "load-balancing service: ordered gateway addresses per transport for clients";
  }

  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    auto options = buildOptions(config, context);
    if (!options) {
      return tl::unexpected(options.error());
    }
    Stats& stats = context.stats();
    LbsCounters counters{
        .requests = &stats.counter("lbs_requests"),
        .errors = &stats.counter("lbs_errors"),
        .fallbacks = &stats.counter("lbs_fallbacks"),
        .geoip_misses = &stats.counter("lbs_geoip_misses"),
    };
    for (size_t i = 0; i < kRuleKindCount; ++i) {
      counters.rules[i] =
          &stats.counter("lbs_rule_" + std::string(ruleName(static_cast<RuleKind>(i))));
    }
    return std::make_shared<const LbsConfig>(std::move(*options), counters);
  }
};

}  // namespace imgate::mod::lbs

IMGATE_MODULE(lbs, imgate::mod::lbs::LbsFactory, "0.1.0")
