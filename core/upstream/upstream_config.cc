// SPDX-License-Identifier: Apache-2.0
#include "upstream/upstream_config.h"

#include <netdb.h>

#include <algorithm>
#include <iterator>
#include <array>
#include <charconv>
#include <cstring>
#include <set>

#include "config/config_view.h"
#include "config/schema_check.h"

namespace imgate::core::upstream {

namespace {

constexpr std::array<std::string_view, 3> kPolicies = {"round_robin", "least_in_flight",
                                                       "consistent_hash"};

constexpr std::array<ParamSpec, 2> kBackendSchema = {{
    {.key = "address", .type = ParamType::kString, .required = true, .min = 1, .max = 300,
     .help = "host:port ([v6]:port for IPv6); names are resolved at (re)load"},
    {.key = "weight", .type = ParamType::kInt, .default_value = "1", .min = 1, .max = 1000,
     .help = "relative share of requests for round_robin and least_in_flight, of keys for "
             "consistent_hash"},
}};

constexpr std::array<ParamSpec, 6> kHealthCheckSchema = {{
    {.key = "path", .type = ParamType::kString, .default_value = "", .max = 2048,
     .help = "path probed with GET on every backend; empty turns active checks off"},
    {.key = "interval", .type = ParamType::kDuration, .default_value = "5s", .min = 10,
     .max = 3'600'000, .help = "time between two probes of one backend"},
    {.key = "timeout", .type = ParamType::kDuration, .default_value = "1s", .min = 1,
     .max = 60'000, .help = "a probe with no complete answer by then fails"},
    {.key = "healthy_threshold", .type = ParamType::kInt, .default_value = "2", .min = 1,
     .max = 100, .help = "passing probes in a row that bring a down backend back"},
    {.key = "unhealthy_threshold", .type = ParamType::kInt, .default_value = "3", .min = 1,
     .max = 100, .help = "failed probes in a row that take a backend out"},
    {.key = "expected_status", .type = ParamType::kString, .default_value = "200-399",
     .help = "status (\"200\") or inclusive range (\"200-399\") a passing probe answers with"},
}};

constexpr std::array<ParamSpec, 2> kPassiveSchema = {{
    {.key = "consecutive_failures", .type = ParamType::kInt, .default_value = "5", .min = 0,
     .max = 1000,
     .help = "failures in a row (5xx, connect error, timeout, bad response) that eject a "
             "backend; 0 turns passive ejection off"},
    {.key = "ejection_time", .type = ParamType::kDuration, .default_value = "30s", .min = 1,
     .max = 3'600'000, .help = "how long an ejected backend gets no traffic"},
}};

constexpr std::array<ParamSpec, 14> kGroupSchema = {{
    {.key = "backends", .type = ParamType::kMapList, .required = true, .min = 1, .max = 256,
     .help = "the backend HTTP servers of the group", .fields = kBackendSchema},
    {.key = "policy", .type = ParamType::kEnum, .default_value = "round_robin",
     .choices = kPolicies,
     .help = "round_robin (smooth, weighted), least_in_flight (weighted) or consistent_hash "
             "(on the caller's hash key, e.g. the user id)"},
    {.key = "connect_timeout", .type = ParamType::kDuration, .default_value = "1s", .min = 1,
     .max = 60'000, .help = "time allowed to open a TCP connection to a backend"},
    {.key = "timeout", .type = ParamType::kDuration, .default_value = "5s", .min = 1,
     .max = 600'000,
     .help = "per attempt: from picking a backend to the whole response (callers may ask for "
             "less or more per request)"},
    {.key = "retries", .type = ParamType::kInt, .default_value = "1", .min = 0, .max = 5,
     .help = "extra attempts on other backends after a connect error, a timeout or a 5xx "
             "(timeouts and 5xx only for idempotent methods)"},
    {.key = "retry_budget", .type = ParamType::kInt, .default_value = "20", .min = 0, .max = 100,
     .help = "percent of requests (per worker, over 10s) that may be retries; 3 retries per "
             "window are always allowed"},
    {.key = "max_connections", .type = ParamType::kInt, .default_value = "64", .min = 1,
     .max = 100'000, .help = "open connections per backend per worker; more requests queue"},
    {.key = "max_idle", .type = ParamType::kInt, .default_value = "16", .min = 0,
     .max = 100'000, .help = "idle keep-alive connections kept per backend per worker"},
    {.key = "idle_timeout", .type = ParamType::kDuration, .default_value = "60s", .min = 1,
     .max = 3'600'000, .help = "an idle keep-alive connection is closed after this long"},
    {.key = "max_pending", .type = ParamType::kInt, .default_value = "1024", .min = 1,
     .max = 10'000'000,
     .help = "circuit breaker: requests in flight or queued per group per worker above which "
             "calls fail at once with unavailable"},
    {.key = "max_response", .type = ParamType::kSize, .default_value = "1MiB", .min = 0,
     .max = int64_t{1} << 30, .help = "largest response body accepted (bigger is an error)"},
    {.key = "health_check", .type = ParamType::kMap, .help = "active HTTP health checks",
     .fields = kHealthCheckSchema},
    {.key = "passive", .type = ParamType::kMap,
     .help = "passive checks: eject a backend after failures of live traffic",
     .fields = kPassiveSchema},
    {.key = "host_header", .type = ParamType::kString, .default_value = "",
     .help = "Host header sent to every backend; empty sends the backend's address"},
}};

bool validGroupName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
  });
}

// Splits "host:port" / "[v6]:port"; returns an error message or "".
std::string splitAddress(std::string_view address, std::string& host, std::string& port) {
  size_t colon = std::string_view::npos;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return "expected [ipv6]:port";
    }
    host = std::string(address.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return "expected host:port";
    }
    host = std::string(address.substr(0, colon));
    if (host.find(':') != std::string::npos) {
      return "write IPv6 addresses as [addr]:port";
    }
  }
  port = std::string(address.substr(colon + 1));
  int value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
    return "port must be a number from 1 to 65535";
  }
  if (host.empty()) {
    return "expected host:port";
  }
  return "";
}

std::string resolve(const std::string& host, const std::string& port, BackendConfig& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    return "cannot resolve \"" + host + "\": " + gai_strerror(rc);
  }
  std::memcpy(&out.sockaddr, result->ai_addr, result->ai_addrlen);
  out.sockaddr_len = result->ai_addrlen;
  freeaddrinfo(result);
  return "";
}

bool parseStatusRange(std::string_view text, int& lo, int& hi) {
  auto number = [](std::string_view s, int& v) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size() && v >= 100 && v <= 599;
  };
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    return number(text, lo) && number(text, hi);
  }
  return number(text.substr(0, dash), lo) && number(text.substr(dash + 1), hi) && lo <= hi;
}

void addError(config::Errors& errors, const config::ValidatedSection& section,
              std::string_view key, std::string message) {
  errors.push_back(config::ConfigError{section.file(), section.mark(key), section.pathOf(key),
                                       std::move(message)});
}

std::shared_ptr<GroupConfig> compileGroup(const std::string& name,
                                          const config::ValidatedSection& s,
                                          BackendRegistry& registry, config::Errors& errors) {
  auto g = std::make_shared<GroupConfig>();
  g->name = name;
  std::set<std::string> seen;
  for (const config::ValidatedSection* b : s.sections("backends")) {
    BackendConfig backend;
    backend.address = b->getString("address");
    backend.weight = static_cast<uint32_t>(b->getInt("weight"));
    std::string host;
    std::string port;
    std::string problem = splitAddress(backend.address, host, port);
    if (problem.empty()) {
      problem = resolve(host, port, backend);
    }
    if (!problem.empty()) {
      addError(errors, *b, "address", "\"" + backend.address + "\": " + problem);
      continue;
    }
    if (!seen.insert(backend.address).second) {
      addError(errors, *b, "address", "duplicate backend \"" + backend.address + "\"");
      continue;
    }
    backend.state = registry.get(name, backend.address);
    g->weights.push_back(backend.weight);
    g->backends.push_back(std::move(backend));
  }
  const std::string policy = s.getString("policy");
  g->policy = policy == "least_in_flight"   ? Policy::kLeastInFlight
              : policy == "consistent_hash" ? Policy::kConsistentHash
                                            : Policy::kRoundRobin;
  std::vector<std::string> addresses;
  for (const auto& b : g->backends) {
    addresses.push_back(b.address);
  }
  g->ring = HashRing(addresses, g->weights);
  g->connect_timeout = s.getDuration("connect_timeout");
  g->timeout = s.getDuration("timeout");
  g->retries = static_cast<uint32_t>(s.getInt("retries"));
  g->retry_budget = static_cast<uint32_t>(s.getInt("retry_budget"));
  g->max_connections = static_cast<size_t>(s.getInt("max_connections"));
  g->max_idle = static_cast<size_t>(s.getInt("max_idle"));
  g->idle_timeout = s.getDuration("idle_timeout");
  g->max_pending = static_cast<size_t>(s.getInt("max_pending"));
  g->max_response = static_cast<size_t>(s.getSize("max_response"));
  g->host_header = s.getString("host_header");

  const config::ValidatedSection& hc = s.section("health_check");
  g->health_check.path = hc.getString("path");
  if (!g->health_check.path.empty() &&
      (g->health_check.path.front() != '/' ||
       g->health_check.path.find_first_of(" \r\n\t") != std::string::npos)) {
    addError(errors, hc, "path", "must start with / and contain no spaces");
  }
  g->health_check.interval = hc.getDuration("interval");
  g->health_check.timeout = hc.getDuration("timeout");
  g->health_check.healthy_threshold = static_cast<uint32_t>(hc.getInt("healthy_threshold"));
  g->health_check.unhealthy_threshold = static_cast<uint32_t>(hc.getInt("unhealthy_threshold"));
  const std::string expected = hc.getString("expected_status");
  if (!parseStatusRange(expected, g->health_check.expected_min, g->health_check.expected_max)) {
    addError(errors, hc, "expected_status",
             "\"" + expected + "\" is not a status (100-599) or a range such as 200-399");
  }
  const config::ValidatedSection& passive = s.section("passive");
  g->passive.consecutive_failures =
      static_cast<uint32_t>(passive.getInt("consecutive_failures"));
  g->passive.ejection_time = passive.getDuration("ejection_time");
  return g;
}

}  // namespace

UpstreamSet::UpstreamSet(std::vector<std::shared_ptr<const GroupConfig>> groups)
    : groups_(std::move(groups)) {
  std::sort(groups_.begin(), groups_.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
}

std::shared_ptr<const GroupConfig> UpstreamSet::find(std::string_view name) const {
  auto it = std::lower_bound(groups_.begin(), groups_.end(), name,
                             [](const auto& g, std::string_view n) { return g->name < n; });
  if (it != groups_.end() && (*it)->name == name) {
    return *it;
  }
  return nullptr;
}

std::span<const ParamSpec> upstreamGroupSchema() { return kGroupSchema; }

tl::expected<std::shared_ptr<const UpstreamSet>, config::Errors> compileUpstreams(
    const config::RawNode& node, const std::string& file, BackendRegistry& registry) {
  config::Errors errors;
  std::vector<std::shared_ptr<const GroupConfig>> groups;
  if (!node.valid() || node.isNull()) {
    return std::make_shared<const UpstreamSet>();
  }
  if (!node.isMap()) {
    errors.push_back(config::ConfigError{file, node.mark(), "upstreams",
                                         "expected a map of group name to group, got " +
                                             node.describe()});
    return tl::unexpected(std::move(errors));
  }
  for (const auto& [key, value] : node.entries()) {
    const std::string name = key.scalar();
    const std::string path = "upstreams." + name;
    if (!key.isScalar() || !validGroupName(name)) {
      errors.push_back(config::ConfigError{
          file, key.mark(), path,
          "group names are 1 to 64 characters from A-Z a-z 0-9 _ - ."});
      continue;
    }
    auto section = config::validate(value, kGroupSchema, path, errors);
    const size_t before = errors.size();
    if (!value.isMap()) {
      continue;  // validate() reported it
    }
    auto group = compileGroup(name, *section, registry, errors);
    if (errors.size() == before && !group->backends.empty()) {
      groups.push_back(std::move(group));
    }
  }
  if (!errors.empty()) {
    return tl::unexpected(std::move(errors));
  }
  return std::make_shared<const UpstreamSet>(std::move(groups));
}

tl::expected<std::shared_ptr<const UpstreamSet>, config::Errors> compileUpstreams(
    const config::RawNode& node, const std::string& file) {
  return compileUpstreams(node, file, BackendRegistry::instance());
}

}  // namespace imgate::core::upstream
