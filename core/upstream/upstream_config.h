// SPDX-License-Identifier: Apache-2.0
// Upstream groups: named sets of backend HTTP servers, declared under the top-level
// `upstreams:` key, compiled once per (re)load on the main thread into an immutable
// UpstreamSet shared by every worker. A group's BackendStates come from the BackendRegistry,
// so health and totals survive a reload that keeps the backend.
//
//   upstreams:
//     chat:
//       backends:
//         - {address: 10.0.0.5:8080, weight: 3}
//         - {address: chat-b.internal:8080}
//       policy: consistent_hash
//       health_check: {path: /healthz, interval: 5s}
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "config/yaml_loader.h"
#include "imgate/sdk/config.h"
#include "upstream/backend_state.h"
#include "upstream/upstream_policy.h"

namespace imgate::core::upstream {

enum class Policy : uint8_t { kRoundRobin, kLeastInFlight, kConsistentHash };

struct BackendConfig {
  std::string address;  // "host:port" as written; also the Host header sent
  uint32_t weight = 1;
  // Resolved once at compile time (getaddrinfo on the main thread, first result): a backend
  // whose name stops resolving keeps working until the next reload.
  sockaddr_storage sockaddr{};
  socklen_t sockaddr_len = 0;
  std::shared_ptr<BackendState> state;  // never null in a compiled group
};

struct HealthCheckConfig {
  std::string path;  // empty: active checks off
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{1000};
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  int expected_min = 200;  // a probe passes when expected_min <= status <= expected_max
  int expected_max = 399;
};

struct PassiveConfig {
  uint32_t consecutive_failures = 5;  // 0: passive ejection off
  std::chrono::milliseconds ejection_time{30000};
};

// Immutable after compileUpstreams(); shared by all workers. Always owned by a shared_ptr
// (the client keeps the group alive while a call on it is in flight).
struct GroupConfig : std::enable_shared_from_this<GroupConfig> {
  std::string name;
  std::vector<BackendConfig> backends;  // at least one
  std::vector<uint32_t> weights;        // backends[i].weight, for the policies
  Policy policy = Policy::kRoundRobin;
  HashRing ring;                        // built for every policy (cheap), used by kConsistentHash
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds timeout{5000};  // per attempt: from its start to the whole response
  uint32_t retries = 1;
  uint32_t retry_budget = 20;           // percent
  size_t max_connections = 64;          // per backend per worker
  size_t max_idle = 16;                 // per backend per worker
  std::chrono::milliseconds idle_timeout{60000};
  size_t max_pending = 1024;            // per group per worker
  size_t max_response = 1024 * 1024;
  std::string host_header;              // empty: each backend's address
  HealthCheckConfig health_check;
  PassiveConfig passive;
};

class UpstreamSet {
 public:
  UpstreamSet() = default;
  explicit UpstreamSet(std::vector<std::shared_ptr<const GroupConfig>> groups);

  // nullptr when there is no such group.
  std::shared_ptr<const GroupConfig> find(std::string_view name) const;
  const std::vector<std::shared_ptr<const GroupConfig>>& groups() const { return groups_; }

 private:
  std::vector<std::shared_ptr<const GroupConfig>> groups_;  // sorted by name
};

// Schema of one group (the value under `upstreams.<name>`), for config::validate, checkSchema
// and `imgate --describe`.
std::span<const ParamSpec> upstreamGroupSchema();

// Compiles the top-level `upstreams:` node (a map: group name -> group). A null or invalid node
// gives an empty set. Every problem is reported, each located as
// `file:line:col: upstreams.<name>.<key>: message`: schema errors, group names that are not
// [A-Za-z0-9_.-]+, addresses that are not host:port or do not resolve, duplicate addresses in a
// group, a bad health_check.expected_status or path. States come from `registry`.
[[nodiscard]] tl::expected<std::shared_ptr<const UpstreamSet>, config::Errors> compileUpstreams(
    const config::RawNode& node, const std::string& file, BackendRegistry& registry);
[[nodiscard]] tl::expected<std::shared_ptr<const UpstreamSet>, config::Errors> compileUpstreams(
    const config::RawNode& node, const std::string& file);

}  // namespace imgate::core::upstream
