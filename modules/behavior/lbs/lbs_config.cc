// SPDX-License-Identifier: Apache-2.0
#include "lbs_config.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace imgate::mod::lbs {
namespace {

constexpr std::string_view kMetricChoices[] = {"sessions", "connections", "connects_per_s"};

constexpr ParamSpec kAddressFields[] = {
    {.key = "ws",
     .type = ParamType::kStringList,
     .max = 16,
     .help = "WebSocket URLs, answered verbatim (e.g. wss://a.example/ws)"},
    {.key = "tcp",
     .type = ParamType::kStringList,
     .max = 16,
     .help = "host:port of the TCP frame listener"},
    {.key = "socketio",
     .type = ParamType::kStringList,
     .max = 16,
     .help = "Socket.IO endpoint URLs"},
    {.key = "wss",
     .type = ParamType::kStringList,
     .max = 16,
     .help = "TLS WebSocket URLs for clients that ask for them separately"},
};

constexpr ParamSpec kNodeFields[] = {
    {.key = "name",
     .type = ParamType::kString,
     .required = true,
     .min = 1,
     .max = 64,
     .help = "unique node name (letters, digits, _ . : -)"},
    {.key = "group",
     .type = ParamType::kString,
     .default_value = "default",
     .min = 1,
     .max = 64,
     .help = "node group that rules select"},
    {.key = "weight",
     .type = ParamType::kInt,
     .default_value = "1",
     .min = 1,
     .max = 10000,
     .help = "relative capacity: load is divided by it, and near-equal nodes are picked first "
             "in proportion to it"},
    {.key = "env",
     .type = ParamType::kStringList,
     .max = 64,
     .help = "env tags; a tagged node is offered only to requests whose env is one of them"},
    {.key = "region",
     .type = ParamType::kString,
     .max = 16,
     .help = "ISO 3166-2 region, e.g. CN-ZJ (used by prefer_local)"},
    {.key = "country",
     .type = ParamType::kString,
     .max = 2,
     .help = "ISO 3166-1 alpha-2 country; defaults to the region's prefix"},
    {.key = "self",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "this process: its load is live (Hub::nodeLoad); at most one node"},
    {.key = "load",
     .type = ParamType::kInt,
     .min = 0,
     .help = "static load of another node, in load_metric units; absent = unknown, counted as "
             "the average of the known loads"},
    {.key = "enabled",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "false takes the node out of answers (draining) without deleting it"},
    {.key = "addresses",
     .type = ParamType::kMap,
     .required = true,
     .help = "addresses per transport: ws, tcp, socketio, wss",
     .fields = kAddressFields},
};

constexpr ParamSpec kRuleFields[] = {
    {.key = "match",
     .type = ParamType::kStringList,
     .required = true,
     .min = 1,
     .max = 10000,
     .help = "values that select the group"},
    {.key = "group",
     .type = ParamType::kString,
     .required = true,
     .min = 1,
     .max = 64,
     .help = "group chosen when a value matches"},
};

constexpr ParamSpec kNetworkRuleFields[] = {
    {.key = "match",
     .type = ParamType::kStringList,
     .required = true,
     .min = 1,
     .max = 10000,
     .help = "CIDR blocks, IPv4 or IPv6"},
    {.key = "group",
     .type = ParamType::kString,
     .max = 64,
     .help = "group for clients in these blocks"},
    {.key = "region",
     .type = ParamType::kString,
     .max = 16,
     .help = "location of clients in these blocks (CN or CN-ZJ); overrides GeoIP"},
};

constexpr ParamSpec kGeoFields[] = {
    {.key = "database",
     .type = ParamType::kString,
     .help = "MaxMind DB file (.mmdb); relative to the config file's folder"},
    {.key = "rules",
     .type = ParamType::kMapList,
     .max = 1000,
     .help = "country (CN) or region (CN-ZJ) codes → group; a region match beats a country one",
     .fields = kRuleFields},
};

constexpr ParamSpec kRulesFields[] = {
    {.key = "apps",
     .type = ParamType::kMapList,
     .max = 1000,
     .help = "app names → group",
     .fields = kRuleFields},
    {.key = "sdk_versions",
     .type = ParamType::kMapList,
     .max = 1000,
     .help = "version ranges (\">=2.0.0 <3.0.0\") → group; the first matching rule wins",
     .fields = kRuleFields},
    {.key = "environments",
     .type = ParamType::kMapList,
     .max = 1000,
     .help = "env values → group",
     .fields = kRuleFields},
    {.key = "networks",
     .type = ParamType::kMapList,
     .max = 1000,
     .help = "CIDR blocks → group and/or region; the longest prefix wins",
     .fields = kNetworkRuleFields},
    {.key = "geoip",
     .type = ParamType::kMap,
     .help = "GeoIP database and country/region rules",
     .fields = kGeoFields},
};

constexpr ParamSpec kBackoffFields[] = {
    {.key = "base",
     .type = ParamType::kDuration,
     .default_value = "1s",
     .min = 10,
     .max = 3'600'000,
     .help = "first reconnect delay"},
    {.key = "factor",
     .type = ParamType::kString,
     .default_value = "2.0",
     .help = "delay multiplier per failed attempt, 1.0..10.0"},
    {.key = "jitter",
     .type = ParamType::kString,
     .default_value = "0.2",
     .help = "random fraction added to or taken from each delay, 0..1, so a restart does not "
             "bring every client back in the same second"},
    {.key = "max",
     .type = ParamType::kDuration,
     .default_value = "60s",
     .min = 100,
     .max = 86'400'000,
     .help = "longest reconnect delay"},
};

constexpr ParamSpec kSchema[] = {
    {.key = "nodes",
     .type = ParamType::kMapList,
     .required = true,
     .min = 1,
     .max = 1024,
     .help = "gateway nodes that answers may list",
     .fields = kNodeFields},
    {.key = "groups",
     .type = ParamType::kStringList,
     .max = 1024,
     .help = "groups that may have no node yet (node groups are declared implicitly); a rule "
             "naming any other group fails the load"},
    {.key = "default_group",
     .type = ParamType::kString,
     .default_value = "default",
     .min = 1,
     .max = 64,
     .help = "group when no rule matches"},
    {.key = "rules",
     .type = ParamType::kMap,
     .help = "group selection; precedence app, sdk, env, network, geoip, default",
     .fields = kRulesFields},
    {.key = "trusted_proxies",
     .type = ParamType::kStringList,
     .max = 1000,
     .help = "CIDRs whose X-Forwarded-For is believed; empty by default because anyone can "
             "write the header"},
    {.key = "ttl",
     .type = ParamType::kDuration,
     .default_value = "300s",
     .min = 1000,
     .max = 86'400'000,
     .help = "how long a client may reuse an answer (ttl field and Cache-Control max-age)"},
    {.key = "heartbeat",
     .type = ParamType::kDuration,
     .default_value = "30s",
     .min = 1000,
     .max = 3'600'000,
     .help = "client heartbeat interval announced in answers"},
    {.key = "backoff",
     .type = ParamType::kMap,
     .help = "client reconnect policy announced in answers",
     .fields = kBackoffFields},
    {.key = "backup",
     .type = ParamType::kStringList,
     .max = 16,
     .help = "backup domains for clients to try after every listed address"},
    {.key = "max_addresses",
     .type = ParamType::kInt,
     .default_value = "8",
     .min = 1,
     .max = 64,
     .help = "most addresses per transport in one answer; more only slow a client "
             "that walks a dead list"},
    {.key = "load_metric",
     .type = ParamType::kEnum,
     .default_value = "sessions",
     .choices = kMetricChoices,
     .help = "what load means: open sessions, open connections, or new sessions per second"},
    {.key = "near_equal_percent",
     .type = ParamType::kInt,
     .default_value = "10",
     .min = 0,
     .max = 1000,
     .help = "per-weight loads within this percent of the least loaded are "
             "shuffled (weighted) so that clients do not herd onto one node"},
    {.key = "near_equal_absolute",
     .type = ParamType::kInt,
     .default_value = "10",
     .min = 0,
     .max = 1'000'000'000,
     .help = "also near-equal when this close in load units per weight; keeps nearly idle "
             "nodes (0 vs 3 sessions) from being ordered by noise"},
    {.key = "prefer_local",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "list nodes of the client's region, then country, before the others"},
};

// ---- Checks -------------------------------------------------------------------------------------

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

Error configError(const std::string& where, const std::string& message) {
  return Error{Errc::kInvalidConfig, where + ": " + message};
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == ':' || c == '-';
}

bool validName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), isNameChar);
}

// Addresses and backup domains are answered verbatim: printable ASCII without spaces,
// quotes or backslashes keeps every answer valid JSON and every client's URL parser happy.
bool validAddress(std::string_view s) {
  return !s.empty() && s.size() <= 512 && std::all_of(s.begin(), s.end(), [](char c) {
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
}

std::string upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return s;
}

bool isUpperAlnum(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// "CN" or "CN-ZJ" (already upper case).
bool validLocation(std::string_view s) {
  if (s.size() < 2 || !(s[0] >= 'A' && s[0] <= 'Z') || !(s[1] >= 'A' && s[1] <= 'Z')) {
    return false;
  }
  if (s.size() == 2) {
    return true;
  }
  return s[2] == '-' && s.size() >= 4 && s.size() <= 11 &&
         std::all_of(s.begin() + 3, s.end(), isUpperAlnum);
}

Result<double> parseDecimal(const std::string& where, const std::string& text, double min,
                            double max) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    char range[64];
    std::snprintf(range, sizeof(range), "%g..%g", min, max);
    return tl::unexpected(configError(where, quote(text) + " is not a number in " + range));
  }
  return value;
}

class GroupSet {
 public:
  void add(const std::string& g) { groups_.insert(g); }
  bool has(const std::string& g) const { return groups_.count(g) > 0; }
  Status require(const std::string& where, const std::string& g) const {
    if (has(g)) {
      return {};
    }
    std::string known;
    size_t n = 0;
    for (const auto& name : groups_) {
      if (n++ == 10) {
        known += ", ...";
        break;
      }
      known += (known.empty() ? "" : ", ") + name;
    }
    return tl::unexpected(configError(where, "unknown group " + quote(g) + " (groups: " + known +
                                                 "; declare a group without nodes in `groups`)"));
  }
  size_t size() const { return groups_.size(); }

 private:
  std::set<std::string> groups_;
};

Status readNodes(const ConfigView& config, LbsOptions& options, GroupSet& groups) {
  const auto views = config.children("nodes");
  std::map<std::string, size_t> names;
  int self_count = 0;
  for (size_t i = 0; i < views.size(); ++i) {
    const ConfigView& v = *views[i];
    const std::string where = "nodes[" + std::to_string(i) + "]";
    LbsNode node;
    node.name = v.getString("name");
    if (!validName(node.name)) {
      return tl::unexpected(configError(where + ".name", quote(node.name) +
                                                             " must be 1..64 letters, digits, "
                                                             "'_', '.', ':' or '-'"));
    }
    if (const auto [it, added] = names.emplace(node.name, i); !added) {
      return tl::unexpected(configError(
          where + ".name",
          quote(node.name) + " is also nodes[" + std::to_string(it->second) + "].name"));
    }
    node.group = v.getString("group");
    if (!validName(node.group)) {
      return tl::unexpected(configError(where + ".group", quote(node.group) +
                                                              " must be 1..64 letters, digits, "
                                                              "'_', '.', ':' or '-'"));
    }
    groups.add(node.group);
    node.weight = static_cast<uint32_t>(v.getInt("weight"));
    node.envs = v.getStringList("env");
    for (const auto& env : node.envs) {
      if (env.empty() || env.size() > kMaxParamBytes) {
        return tl::unexpected(configError(
            where + ".env", "env tags must be 1.." + std::to_string(kMaxParamBytes) + " bytes"));
      }
    }
    node.region = upper(v.getString("region"));
    node.country = upper(v.getString("country"));
    if (!node.region.empty() && (!validLocation(node.region) || node.region.size() < 4)) {
      return tl::unexpected(configError(
          where + ".region", quote(node.region) + " is not an ISO 3166-2 code like CN-ZJ"));
    }
    if (!node.country.empty() && !validLocation(node.country)) {
      return tl::unexpected(configError(
          where + ".country", quote(node.country) + " is not an ISO 3166-1 code like CN"));
    }
    if (!node.region.empty()) {
      const std::string prefix = node.region.substr(0, 2);
      if (node.country.empty()) {
        node.country = prefix;
      } else if (node.country != prefix) {
        return tl::unexpected(configError(
            where,
            "country " + quote(node.country) + " does not match region " + quote(node.region)));
      }
    }
    node.self = v.getBool("self");
    if (node.self && ++self_count > 1) {
      return tl::unexpected(configError(where + ".self", "only one node can be self"));
    }
    if (v.has("load")) {
      if (node.self) {
        return tl::unexpected(configError(
            where + ".load", "the self node's load is live (Hub::nodeLoad); remove load"));
      }
      node.static_load = static_cast<double>(v.getInt("load"));
    }
    node.enabled = v.getBool("enabled");
    const ConfigView& addresses = v.child("addresses");
    size_t total = 0;
    for (size_t t = 0; t < kTransportCount; ++t) {
      const std::string_view key = transportName(static_cast<Transport>(t));
      node.addresses[t] = addresses.getStringList(key);
      for (const auto& a : node.addresses[t]) {
        if (!validAddress(a)) {
          return tl::unexpected(configError(
              where + ".addresses." + std::string(key),
              quote(a) + " must be 1..512 printable ASCII characters without spaces, quotes "
                         "or backslashes"));
        }
      }
      total += node.addresses[t].size();
    }
    if (total == 0) {
      return tl::unexpected(
          configError(where + ".addresses", "node " + quote(node.name) + " has no address"));
    }
    options.nodes.push_back(std::move(node));
  }
  return {};
}

// apps / environments: value → group, each value in one rule only.
Status readMapRules(const ConfigView& rules, std::string_view key, const GroupSet& groups,
                    std::unordered_map<std::string, std::string>& out) {
  const auto views = rules.children(key);
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < views.size(); ++i) {
    const std::string where = "rules." + std::string(key) + "[" + std::to_string(i) + "]";
    const std::string group = views[i]->getString("group");
    if (Status s = groups.require(where + ".group", group); !s) {
      return s;
    }
    for (const std::string& value : views[i]->getStringList("match")) {
      if (value.empty() || value.size() > kMaxParamBytes) {
        return tl::unexpected(configError(
            where + ".match", "values must be 1.." + std::to_string(kMaxParamBytes) + " bytes"));
      }
      if (const auto [it, added] = seen.emplace(value, i); !added) {
        return tl::unexpected(configError(
            where + ".match", quote(value) + " is also matched by rules." + std::string(key) + "[" +
                                  std::to_string(it->second) + "]"));
      }
      out.emplace(value, group);
    }
  }
  return {};
}

Status readRules(const ConfigView& config, LoadContext& context, LbsOptions& options,
                 const GroupSet& groups) {
  const ConfigView& rules = config.child("rules");
  if (Status s = readMapRules(rules, "apps", groups, options.app_groups); !s) {
    return s;
  }
  if (Status s = readMapRules(rules, "environments", groups, options.env_groups); !s) {
    return s;
  }

  const auto sdk_views = rules.children("sdk_versions");
  for (size_t i = 0; i < sdk_views.size(); ++i) {
    const std::string where = "rules.sdk_versions[" + std::to_string(i) + "]";
    SdkRule rule;
    rule.group = sdk_views[i]->getString("group");
    if (Status s = groups.require(where + ".group", rule.group); !s) {
      return s;
    }
    for (const std::string& text : sdk_views[i]->getStringList("match")) {
      auto range = VersionRange::parse(text);
      if (!range) {
        return tl::unexpected(configError(where + ".match", range.error().message));
      }
      rule.ranges.push_back(std::move(*range));
    }
    options.sdk_rules.push_back(std::move(rule));
  }

  bool any_region = false;
  const auto net_views = rules.children("networks");
  for (size_t i = 0; i < net_views.size(); ++i) {
    const std::string where = "rules.networks[" + std::to_string(i) + "]";
    NetworkRule rule;
    rule.group = net_views[i]->getString("group");
    rule.region = upper(net_views[i]->getString("region"));
    if (rule.group.empty() && rule.region.empty()) {
      return tl::unexpected(configError(where, "needs a group, a region, or both"));
    }
    if (!rule.group.empty()) {
      if (Status s = groups.require(where + ".group", rule.group); !s) {
        return s;
      }
    }
    if (!rule.region.empty() && !validLocation(rule.region)) {
      return tl::unexpected(
          configError(where + ".region", quote(rule.region) + " is not a code like CN or CN-ZJ"));
    }
    any_region = any_region || !rule.region.empty();
    for (const std::string& text : net_views[i]->getStringList("match")) {
      auto cidr = parseCidr(text);
      if (!cidr) {
        return tl::unexpected(configError(where + ".match", cidr.error().message));
      }
      rule.cidrs.add(*cidr);
    }
    options.network_rules.push_back(std::move(rule));
  }

  const ConfigView& geo = rules.child("geoip");
  const std::string database = geo.getString("database");
  if (!database.empty()) {
    const std::string dir(context.configDir());
    const std::string path =
        database.front() == '/' || dir.empty() ? database : dir + "/" + database;
    auto db = GeoIpDatabase::open(path);
    if (!db) {
      return tl::unexpected(configError("rules.geoip.database", db.error().message));
    }
    options.geoip = std::shared_ptr<const GeoIpDatabase>(std::move(*db));
  }
  const auto geo_views = geo.children("rules");
  std::map<std::string, size_t> seen;
  for (size_t i = 0; i < geo_views.size(); ++i) {
    const std::string where = "rules.geoip.rules[" + std::to_string(i) + "]";
    const std::string group = geo_views[i]->getString("group");
    if (Status s = groups.require(where + ".group", group); !s) {
      return s;
    }
    for (const std::string& raw : geo_views[i]->getStringList("match")) {
      const std::string code = upper(raw);
      if (!validLocation(code)) {
        return tl::unexpected(configError(
            where + ".match", quote(raw) + " is not a country (CN) or region (CN-ZJ) code"));
      }
      if (const auto [it, added] = seen.emplace(code, i); !added) {
        return tl::unexpected(
            configError(where + ".match", quote(raw) + " is also matched by rules.geoip.rules[" +
                                              std::to_string(it->second) + "]"));
      }
      (code.size() == 2 ? options.country_groups : options.region_groups).emplace(code, group);
    }
  }
  if (!geo_views.empty() && options.geoip == nullptr && !any_region) {
    context.log().log(LogLevel::kWarn,
                      "rules.geoip.rules can never match: there is no geoip database and no "
                      "network rule sets a region");
  }
  return {};
}

Status readAnswerKeys(const ConfigView& config, LbsOptions& options) {
  options.ttl = std::chrono::duration_cast<std::chrono::seconds>(config.getDuration("ttl"));
  options.heartbeat = config.getDuration("heartbeat");
  const ConfigView& backoff = config.child("backoff");
  options.backoff.base = backoff.getDuration("base");
  options.backoff.max = backoff.getDuration("max");
  auto factor = parseDecimal("backoff.factor", backoff.getString("factor"), 1.0, 10.0);
  if (!factor) {
    return tl::unexpected(factor.error());
  }
  options.backoff.factor = *factor;
  auto jitter = parseDecimal("backoff.jitter", backoff.getString("jitter"), 0.0, 1.0);
  if (!jitter) {
    return tl::unexpected(jitter.error());
  }
  options.backoff.jitter = *jitter;
  if (options.backoff.base > options.backoff.max) {
    return tl::unexpected(configError(
        "backoff", "base (" + std::to_string(options.backoff.base.count()) + "ms) is above max (" +
                       std::to_string(options.backoff.max.count()) + "ms)"));
  }
  options.backup = config.getStringList("backup");
  for (size_t i = 0; i < options.backup.size(); ++i) {
    if (!validAddress(options.backup[i])) {
      return tl::unexpected(configError("backup[" + std::to_string(i) + "]",
                                        quote(options.backup[i]) +
                                            " must be 1..512 printable ASCII characters without "
                                            "spaces, quotes or backslashes"));
    }
  }
  options.max_addresses = static_cast<size_t>(config.getInt("max_addresses"));
  const std::string metric = config.getString("load_metric");
  options.load_metric = metric == "connections"      ? LoadMetric::kConnections
                        : metric == "connects_per_s" ? LoadMetric::kConnectsPerSecond
                                                     : LoadMetric::kSessions;
  options.near_equal_percent = static_cast<double>(config.getInt("near_equal_percent"));
  options.near_equal_absolute = static_cast<double>(config.getInt("near_equal_absolute"));
  options.prefer_local = config.getBool("prefer_local");
  const auto proxies = config.getStringList("trusted_proxies");
  for (size_t i = 0; i < proxies.size(); ++i) {
    auto cidr = parseCidr(proxies[i]);
    if (!cidr) {
      return tl::unexpected(
          configError("trusted_proxies[" + std::to_string(i) + "]", cidr.error().message));
    }
    options.trusted_proxies.add(*cidr);
  }
  return {};
}

}  // namespace

std::span<const ParamSpec> lbsSchema() { return kSchema; }

Result<LbsOptions> buildOptions(const ConfigView& config, LoadContext& context) {
  LbsOptions options;
  GroupSet groups;
  if (Status s = readNodes(config, options, groups); !s) {
    return tl::unexpected(s.error());
  }
  const auto declared = config.getStringList("groups");
  for (size_t i = 0; i < declared.size(); ++i) {
    if (!validName(declared[i])) {
      return tl::unexpected(configError("groups[" + std::to_string(i) + "]",
                                        quote(declared[i]) +
                                            " must be 1..64 letters, digits, '_', '.', ':' or "
                                            "'-'"));
    }
    groups.add(declared[i]);
  }
  options.default_group = config.getString("default_group");
  if (Status s = groups.require("default_group", options.default_group); !s) {
    return tl::unexpected(s.error());
  }
  if (Status s = readRules(config, context, options, groups); !s) {
    return tl::unexpected(s.error());
  }
  if (Status s = readAnswerKeys(config, options); !s) {
    return tl::unexpected(s.error());
  }

  std::set<std::string> with_nodes;
  bool any_enabled = false;
  for (const LbsNode& node : options.nodes) {
    if (node.enabled) {
      with_nodes.insert(node.group);
      any_enabled = true;
    }
  }
  if (!any_enabled) {
    context.log().log(LogLevel::kWarn, "every node is disabled: every request gets a 503");
  }
  for (const auto& g : declared) {
    if (with_nodes.count(g) == 0) {
      context.log().log(LogLevel::kNotice, "group \"" + g +
                                               "\" has no enabled node: its clients get every node "
                                               "(\"fallback\":true)");
    }
  }
  std::string geo = options.geoip != nullptr ? ", geoip \"" + options.geoip->type() + "\"" : "";
  context.log().log(LogLevel::kInfo, std::to_string(options.nodes.size()) + " nodes in " +
                                         std::to_string(groups.size()) + " groups" + geo);
  return options;
}

}  // namespace imgate::mod::lbs
