// SPDX-License-Identifier: Apache-2.0
// The origin stage: refuses WebSocket (and Socket.IO) handshakes whose Origin header is not on
// an allow-list, against cross-site WebSocket hijacking. Browsers send the page's origin with
// every WebSocket handshake and attach the site's cookies whatever the origin, so a server that
// authenticates by cookie must check Origin itself; non-browser clients send no Origin.
#pragma once

#include <re2/re2.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"

namespace imgate::mod::origin {

std::span<const ParamSpec> originSchema();

// What one Origin value gets.
enum class Decision : uint8_t { kAllowed, kMissing, kNull, kRefused };

// Compiled once per load; immutable and shared by every worker (RE2 matching is thread-safe).
class OriginConfig final : public StageConfig,
                           public std::enable_shared_from_this<OriginConfig> {
 public:
  struct Counters {
    Counter* refused = nullptr;  // handshakes refused (null origin included)
    Counter* missing = nullptr;  // handshakes without Origin (allowed or not)
  };

  OriginConfig(std::vector<std::unique_ptr<RE2>> allow, bool allow_missing, bool allow_null,
               Counters counters)
      : allow_(std::move(allow)), allow_missing_(allow_missing), allow_null_(allow_null),
        counters_(counters) {}

  StagePtr createStage(StageCallbacks& callbacks) const override;

  // The decision for an Origin header value (nullopt: no header). kMissing and kNull are
  // refusals unless allow_missing / allow_null say otherwise; allowed() folds that in.
  Decision classify(const std::optional<std::string_view>& origin) const;
  bool allowed(Decision decision) const;

  const Counters& counters() const { return counters_; }

 private:
  std::vector<std::unique_ptr<RE2>> allow_;  // case-insensitive, matched against the whole value
  bool allow_missing_;
  bool allow_null_;
  Counters counters_;
};

// Per session: only onOpen does anything. Holds its config, so the compiled patterns live as
// long as any session that may still use them.
class OriginStage final : public Stage {
 public:
  OriginStage(std::shared_ptr<const OriginConfig> config, StageCallbacks& callbacks)
      : config_(std::move(config)), callbacks_(callbacks) {}

  // Reads Session::handshakeHeader("origin"); refuses with kPermissionDenied ("origin not
  // allowed": HTTP 403 at the WebSocket handshake).
  Verdict onOpen() override;
  Verdict onMessage(Message& message) override {
    (void)message;
    return Verdict::pass();
  }

 private:
  std::shared_ptr<const OriginConfig> config_;
  StageCallbacks& callbacks_;
};

// Builds the config from the validated section. Errors (kInvalidConfig) name the pattern:
// `allow[1]: bad pattern "https://(a": missing ): ...`.
Result<StageConfigPtr> compileOrigin(const ConfigView& config, LoadContext& context);

}  // namespace imgate::mod::origin
