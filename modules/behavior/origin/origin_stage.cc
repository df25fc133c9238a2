// SPDX-License-Identifier: Apache-2.0
#include "origin_stage.h"

#include <utility>

namespace imgate::mod::origin {

namespace {

constexpr ParamSpec kSchema[] = {
    {.key = "allow",
     .type = ParamType::kStringList,
     .required = true,
     .help = "RE2 patterns, each matched against the whole Origin (case-insensitive), e.g. "
             "\"https://([a-z0-9-]+\\\\.)?example\\\\.com\"; [] refuses every browser origin"},
    {.key = "allow_missing",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "accept handshakes without an Origin header: browsers always send one, native "
             "and server clients usually do not"},
    {.key = "allow_null",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "accept Origin: null (sandboxed iframes, file:// pages, some redirects); off "
             "because any site can produce it"},
};

// Origins are short ("https://" + a host name + a port); RE2 is linear anyway, this only keeps
// a hostile header from costing a full pass per pattern.
constexpr size_t kMaxOriginBytes = 2048;

}  // namespace

std::span<const ParamSpec> originSchema() { return kSchema; }

Decision OriginConfig::classify(const std::optional<std::string_view>& origin) const {
  if (!origin) {
    return Decision::kMissing;
  }
  // RFC 6454 §7: the header holds "null" for privacy-sensitive contexts; it is compared as is
  // (browsers write it in lower case) and never offered to the patterns.
  if (*origin == "null") {
    return Decision::kNull;
  }
  if (origin->empty() || origin->size() > kMaxOriginBytes) {
    return Decision::kRefused;
  }
  for (const auto& re : allow_) {
    if (RE2::FullMatch(*origin, *re)) {
      return Decision::kAllowed;
    }
  }
  return Decision::kRefused;
}

bool OriginConfig::allowed(Decision decision) const {
  switch (decision) {
    case Decision::kAllowed: return true;
    case Decision::kMissing: return allow_missing_;
    case Decision::kNull: return allow_null_;
    case Decision::kRefused: return false;
  }
  return false;
}

StagePtr OriginConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<OriginStage>(shared_from_this(), callbacks);
}

Verdict OriginStage::onOpen() {
  const std::optional<std::string_view> origin = callbacks_.session().handshakeHeader("origin");
  const Decision decision = config_->classify(origin);
  const auto& counters = config_->counters();
  if (decision == Decision::kMissing && counters.missing != nullptr) {
    counters.missing->add();
  }
  if (config_->allowed(decision)) {
    return Verdict::pass();
  }
  if (counters.refused != nullptr) {
    counters.refused->add();
  }
  Logger& log = callbacks_.log();
  if (log.enabled(LogLevel::kDebug)) {
    const std::string_view shown =
        origin ? origin->substr(0, 256) : std::string_view("(no origin header)");
    log.log(LogLevel::kDebug, "origin \"" + std::string(shown) + "\" not allowed");
  }
  return Verdict::reject(Errc::kPermissionDenied, "origin not allowed");
}

Result<StageConfigPtr> compileOrigin(const ConfigView& config, LoadContext& context) {
  std::vector<std::unique_ptr<RE2>> allow;
  const std::vector<std::string> patterns = config.getStringList("allow");
  for (size_t i = 0; i < patterns.size(); ++i) {
    const std::string where = "allow[" + std::to_string(i) + "]";
    if (patterns[i].empty()) {
      return fail(Errc::kInvalidConfig, where + " is empty (it would match no origin)");
    }
    RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);  // scheme and host are case-insensitive (RFC 6454 §4)
    auto re = std::make_unique<RE2>(patterns[i], options);
    if (!re->ok()) {
      return fail(Errc::kInvalidConfig,
                  where + ": bad pattern \"" + patterns[i] + "\": " + re->error());
    }
    allow.push_back(std::move(re));
  }
  const bool allow_missing = config.getBool("allow_missing");
  const bool allow_null = config.getBool("allow_null");
  if (allow.empty() && !allow_missing && context.log().enabled(LogLevel::kWarn)) {
    context.log().log(LogLevel::kWarn,
                      "allow is empty and allow_missing is false: every handshake is refused");
  }
  Stats& stats = context.stats();
  const OriginConfig::Counters counters{&stats.counter("origin_refused"),
                                        &stats.counter("origin_missing")};
  return std::make_shared<const OriginConfig>(std::move(allow), allow_missing, allow_null,
                                              counters);
}

}  // namespace imgate::mod::origin
