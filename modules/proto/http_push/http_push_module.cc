// SPDX-License-Identifier: Apache-2.0
// Errors from compile() carry only the message: the core adds file, line and YAML path.
#include <memory>
#include <string>
#include <utility>

#include "imgate/sdk/module.h"
#include "push_api.h"

namespace imgate::mod::http_push {
namespace {

constexpr ParamSpec kSchema[] = {
    {.key = "api_keys",
     .type = ParamType::kStringList,
     .help = "keys accepted in Authorization: Bearer <key> or X-API-Key; at least one is required "
             "unless allow_anonymous is true"},
    {.key = "allow_anonymous",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "accept requests without a key (only for a listener no one else can reach); off by "
             "default so a forgotten key list fails the load instead of opening the API"},
    {.key = "default_app",
     .type = ParamType::kString,
     .default_value = "default",
     .help = "tenant used when a request names none (JSON \"app\" or ?app=)"},
    {.key = "max_batch",
     .type = ParamType::kInt,
     .default_value = "1000",
     .min = 1,
     .max = 100000,
     .help = "most messages in one {\"messages\":[...]} push; bounds the work of one request"},
    {.key = "max_targets",
     .type = ParamType::kInt,
     .default_value = "10000",
     .min = 1,
     .max = 10000000,
     .help = "most ids in one target or member list; use a room or \"all\" for larger audiences"},
    {.key = "max_json_depth",
     .type = ParamType::kInt,
     .default_value = "64",
     .min = 1,
     .max = 512,
     .help = "deepest array/object nesting accepted in a body; bounds stack use when \"data\" is "
             "re-serialized"},
};

class HttpPushConfig final : public ProtocolConfig {
 public:
  HttpPushConfig(PushApiOptions options, PushApiCounters counters)
      : api_(std::move(options), counters) {}

  void onHttpRequest(const HttpExchangePtr& exchange) const override { api_.handle(exchange); }

 private:
  PushApi api_;
};

bool hasOuterSpace(const std::string& s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  return !s.empty() && (space(s.front()) || space(s.back()));
}

}  // namespace

class HttpPushFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.http_push"; }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  std::string_view description() const override {
    return "backend HTTP API: push to users, sessions, rooms or all; presence, kick, rooms";
  }

  Result<ProtocolConfigPtr> compile(const ConfigView& config,
                                    LoadContext& context) const override {
    PushApiOptions options;
    options.api_keys = config.getStringList("api_keys");
    options.allow_anonymous = config.getBool("allow_anonymous");
    options.default_app = config.getString("default_app");
    options.max_batch = static_cast<size_t>(config.getInt("max_batch"));
    options.max_targets = static_cast<size_t>(config.getInt("max_targets"));
    options.max_json_depth = static_cast<size_t>(config.getInt("max_json_depth"));

    if (options.api_keys.empty() && !options.allow_anonymous) {
      return fail(Errc::kInvalidConfig,
                  "api_keys needs at least one key (or set allow_anonymous: true to run the "
                  "push api without authentication)");
    }
    for (size_t i = 0; i < options.api_keys.size(); ++i) {
      const std::string& key = options.api_keys[i];
      if (key.empty()) {
        return fail(Errc::kInvalidConfig, "api_keys[" + std::to_string(i) + "] is empty");
      }
      if (hasOuterSpace(key)) {
        return fail(Errc::kInvalidConfig,
                    "api_keys[" + std::to_string(i) +
                        "] starts or ends with whitespace, which no request can match");
      }
    }
    if (options.default_app.empty()) {
      return fail(Errc::kInvalidConfig, "default_app must not be empty");
    }
    if (options.allow_anonymous && options.api_keys.empty()) {
      context.log().log(LogLevel::kWarn,
                        "allow_anonymous is true and api_keys is empty: anyone who reaches this "
                        "location can push, kick and read presence");
    }

    Stats& stats = context.stats();
    const PushApiCounters counters{
        .requests = &stats.counter("http_push_requests"),
        .errors = &stats.counter("http_push_errors"),
        .unauthorized = &stats.counter("http_push_unauthorized"),
        .messages = &stats.counter("http_push_messages"),
    };
    return std::make_shared<const HttpPushConfig>(std::move(options), counters);
  }
};

}  // namespace imgate::mod::http_push

IMGATE_MODULE(proto_http_push, imgate::mod::http_push::HttpPushFactory, "0.1.0")
