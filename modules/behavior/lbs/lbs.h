// SPDX-License-Identifier: Apache-2.0
// The LBS answer (issue 5): which gateway addresses a client should try, in which order.
// GET <location>?app=&sdk=&env=&transport= → rule precedence picks a node group, the group's
// nodes are ordered by load (weighted, near-equals shuffled so clients do not herd), and the
// addresses are answered as JSON with the client's reconnect policy. No sockets and no config
// parsing here (lbs_config.h builds LbsOptions), so tests drive it with fakes.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "geoip.h"
#include "imgate/sdk/codec.h"
#include "imgate/sdk/http.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"
#include "ip_match.h"
#include "version_range.h"

namespace imgate::mod::lbs {

// Transports a node can offer, in the order their keys appear in answers.
enum class Transport : uint8_t { kWs, kTcp, kSocketIo, kWss };
inline constexpr size_t kTransportCount = 4;
std::string_view transportName(Transport transport);  // "ws", "tcp", "socketio", "wss"
std::optional<Transport> transportFromName(std::string_view name);

// Which number of NodeLoad is "the load". Static `load` values are in the same unit.
enum class LoadMetric : uint8_t { kSessions, kConnections, kConnectsPerSecond };
double loadValue(const NodeLoad& load, LoadMetric metric);

// The rule that chose the group, in precedence order.
enum class RuleKind : uint8_t { kApp, kSdk, kEnv, kNetwork, kGeoIp, kDefault };
inline constexpr size_t kRuleKindCount = 6;
std::string_view ruleName(RuleKind rule);  // "app", "sdk", "env", "network", "geoip", "default"

struct LbsNode {
  std::string name;  // unique
  std::string group = "default";
  uint32_t weight = 1;            // relative capacity, >= 1
  std::vector<std::string> envs;  // empty: serves every env; else only requests naming one
  std::string region;             // "CN-ZJ", upper case; may be empty
  std::string country;            // "CN", upper case; may be empty
  std::array<std::vector<std::string>, kTransportCount> addresses;  // by Transport
  bool self = false;                  // this process: its load is Hub::nodeLoad()
  std::optional<double> static_load;  // other nodes: configured load; nullopt = unknown
  bool enabled = true;                // false: never offered (draining)
};

struct SdkRule {
  std::vector<VersionRange> ranges;  // any of them
  std::string group;
};

struct NetworkRule {
  CidrList cidrs;
  std::string group;   // may be empty when region is set
  std::string region;  // "CN-ZJ" or "CN"; sets the client's location; may be empty
};

struct Backoff {
  std::chrono::milliseconds base{1000};
  double factor = 2.0;
  double jitter = 0.2;
  std::chrono::milliseconds max{60000};
};

// Copied from the validated config (lbs_config.h); the defaults equal the schema's. Every
// group named here exists (lbs_config.h checks it).
struct LbsOptions {
  std::vector<LbsNode> nodes;
  std::string default_group = "default";
  std::unordered_map<std::string, std::string> app_groups;      // app → group
  std::vector<SdkRule> sdk_rules;                               // first match wins
  std::unordered_map<std::string, std::string> env_groups;      // env → group
  std::vector<NetworkRule> network_rules;                       // longest prefix wins
  std::shared_ptr<const GeoIpDatabase> geoip;                   // null: no database
  std::unordered_map<std::string, std::string> region_groups;   // "CN-ZJ" → group
  std::unordered_map<std::string, std::string> country_groups;  // "CN" → group
  CidrList trusted_proxies;
  std::chrono::seconds ttl{300};
  std::chrono::milliseconds heartbeat{30000};
  Backoff backoff;
  std::vector<std::string> backup;
  size_t max_addresses = 8;  // per transport
  LoadMetric load_metric = LoadMetric::kSessions;
  // Two per-weight loads a <= b are near-equal when b <= a * (1 + percent/100) + absolute.
  double near_equal_percent = 10;
  double near_equal_absolute = 10;
  // Order nodes of the client's region, then country, before others (still by load within).
  bool prefer_local = false;
};

// Where node loads come from. The default (ConfigLoadSource) knows this node's live load and
// the static `load` values of the config; the cluster issue plugs in one fed by peer reports.
class LoadSource {
 public:
  virtual ~LoadSource() = default;
  // Called on a worker thread, for each candidate node of one request, so it must be cheap
  // and thread-safe. `self` is this node's live load, read once per request from
  // Hub::nodeLoad() (zero when no candidate is the self node). Returns the node's load in
  // `metric` units, or nullopt when unknown (then it counts as the average of the others).
  virtual std::optional<double> load(const LbsNode& node, const NodeLoad& self,
                                     LoadMetric metric) const = 0;
};

class ConfigLoadSource final : public LoadSource {
 public:
  std::optional<double> load(const LbsNode& node, const NodeLoad& self,
                             LoadMetric metric) const override;
};

// Domain counters. Each may be null (tests that do not look at them). Thread-safe.
struct LbsCounters {
  Counter* requests = nullptr;      // every request handled
  Counter* errors = nullptr;        // every 4xx/5xx answer
  Counter* fallbacks = nullptr;     // answers with "fallback":true
  Counter* geoip_misses = nullptr;  // a database is configured but knew nothing of the client
  std::array<Counter*, kRuleKindCount> rules{};  // answers per deciding rule, by RuleKind
};

// What a request asks, after parsing. Limits: each parameter at most kMaxParamBytes.
struct LbsQuery {
  std::optional<IpAddress> client;  // nullopt when the peer is not an IP address
  std::string app;
  std::string sdk;
  std::string env;
  std::array<bool, kTransportCount> transports{true, true, true, true};
};
inline constexpr size_t kMaxParamBytes = 256;

struct LbsDecision {
  std::string group;
  RuleKind rule = RuleKind::kDefault;
  bool fallback = false;  // the group had no eligible node: every eligible node was used
  std::string country;    // the client's, when known
  std::string region;
  std::vector<size_t> order;  // indexes into LbsOptions::nodes, best first
};

using Rng = std::mt19937_64;

// One node for orderByLoad(): its per-weight load and its locality tier (0 best).
struct ScoredNode {
  size_t index = 0;
  double score = 0;  // load / weight
  uint32_t weight = 1;
  int tier = 0;
};

// Orders `nodes` by (tier, score). Runs of near-equal scores within a tier (see
// LbsOptions::near_equal_*; measured from the run's least loaded node) are shuffled with
// probability proportional to weight, so equal nodes share new clients by capacity. Returns
// the indexes, best first.
std::vector<size_t> orderByLoad(std::vector<ScoredNode> nodes, double near_equal_percent,
                                double near_equal_absolute, Rng& rng);

// Immutable once built and shared by every worker; handle() keeps no state between calls.
class Lbs {
 public:
  explicit Lbs(LbsOptions options, LbsCounters counters = {},
               std::shared_ptr<const LoadSource> loads = nullptr);

  // Answers one request on the exchange's worker thread, always exactly once and before
  // returning. Never throws on bad input; every failure is a JSON error answer. The first form
  // uses a per-thread generator seeded from std::random_device.
  void handle(const HttpExchangePtr& exchange) const;
  void handle(const HttpExchangePtr& exchange, Rng& rng) const;

  // ---- Steps of handle(), exposed for tests -----------------------------------------------------
  // Query parameters and the client address. Error: kBadRequest (unknown transport, a
  // parameter longer than kMaxParamBytes).
  [[nodiscard]] Result<LbsQuery> parseQuery(const HttpRequest& request) const;
  // Rule precedence, candidates and order. `self_load` is called at most once, and only when
  // a candidate is the self node. Error: kUnavailable when no enabled node serves the env.
  [[nodiscard]] Result<LbsDecision> decide(const LbsQuery& query,
                                           const std::function<NodeLoad()>& self_load,
                                           Rng& rng) const;
  // The JSON body for a decision.
  std::string render(const LbsQuery& query, const LbsDecision& decision) const;

  const LbsOptions& options() const { return options_; }

 private:
  std::string chooseGroup(const LbsQuery& query, LbsDecision& decision) const;

  LbsOptions options_;
  LbsCounters counters_;
  std::shared_ptr<const LoadSource> loads_;
};

}  // namespace imgate::mod::lbs
