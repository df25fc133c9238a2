// SPDX-License-Identifier: Apache-2.0
// route: the terminal stage that sends what clients say to the backends that already exist.
// Each inbound data message is matched against ordered rules (app, event, user, listener; RE2)
// and POSTed as a JSON envelope to the rule's upstream group; the backend's answer comes back to
// the sender as the ack (TCP SEND_ACK, WebSocket message), after the backend accepted it.
#pragma once

#include <re2/re2.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "imgate/sdk/module.h"

namespace imgate::mod::route {

struct Rule {
  std::unique_ptr<RE2> app;
  std::unique_ptr<RE2> event;
  std::unique_ptr<RE2> user;
  std::unique_ptr<RE2> listener;
  std::string upstream;
  std::string path;  // template: {app} {user} {device} {event} {session}
  // Gray release: these users, or a stable share of all users, go to gray_upstream instead.
  std::string gray_upstream;
  std::unordered_set<std::string> gray_users;
  uint32_t gray_percent = 0;
};

enum class NoMatch : uint8_t { kReject, kDrop };

class RouteConfig final : public StageConfig, public std::enable_shared_from_this<RouteConfig> {
 public:
  RouteConfig(std::vector<Rule> rules, NoMatch no_match, std::chrono::milliseconds timeout,
              Counter& routed, Counter& failed, Counter& unrouted)
      : rules_(std::move(rules)), no_match_(no_match), timeout_(timeout), routed_(routed),
        failed_(failed), unrouted_(unrouted) {}
  StagePtr createStage(StageCallbacks& callbacks) const override;

  // The rule for `message` from `session`, or nullptr.
  const Rule* match(const Message& message, const Session& session) const;
  // The group a user goes to under `rule` (gray release applied).
  const std::string& upstreamFor(const Rule& rule, const Message& message) const;
  NoMatch noMatch() const { return no_match_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  Counter& routed() const { return routed_; }
  Counter& failed() const { return failed_; }
  Counter& unrouted() const { return unrouted_; }

 private:
  std::vector<Rule> rules_;
  NoMatch no_match_;
  std::chrono::milliseconds timeout_;
  Counter& routed_;
  Counter& failed_;
  Counter& unrouted_;
};

// The JSON body POSTed to the backend (documented in the module README).
std::string envelope(const Message& message, const Session& session, std::string_view trace_id);
// Expands {app} {user} {device} {event} {session} in `path` (values percent-encoded).
std::string expandPath(const std::string& path, const Message& message, const Session& session);
// Stable 0..99 bucket of (app, user), for gray release shares.
uint32_t grayBucket(std::string_view app, std::string_view user);

Result<StageConfigPtr> compileRoute(const ConfigView& config, LoadContext& context);
std::span<const ParamSpec> routeSchema();

}  // namespace imgate::mod::route
