// SPDX-License-Identifier: Apache-2.0
#include "lbs.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <unordered_set>
#include <utility>

namespace imgate::mod::lbs {
namespace {

constexpr std::string_view kAllowed = "GET, HEAD";
constexpr size_t kMaxEchoed = 64;

// Request text echoed in an error reason: printable ASCII only, so any byte a client sends
// can be quoted without breaking the JSON or a terminal.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxEchoed)) {
    out.push_back(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? c : '?');
  }
  if (text.size() > kMaxEchoed) {
    out += "...";
  }
  return out;
}

std::string_view trim(std::string_view s) { return http_detail::trim(s); }

HttpResponse errorResponse(int status, Errc code, std::string_view reason) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("error");
  const std::string_view name = errcName(code);
  w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
  w.Key("reason");
  w.String(reason.data(), static_cast<rapidjson::SizeType>(reason.size()));
  w.EndObject();
  HttpResponse response =
      HttpResponse::json(status, std::string(buffer.GetString(), buffer.GetSize()));
  // An error is about this request; a cached one would keep a client from ever retrying.
  response.headers.push_back({"cache-control", "no-store"});
  return response;
}

void count(Counter* counter) {
  if (counter != nullptr) {
    counter->add();
  }
}

Rng& threadRng() {
  thread_local Rng rng{std::random_device{}()};
  return rng;
}

}  // namespace

// ---- Names --------------------------------------------------------------------------------------

std::string_view transportName(Transport transport) {
  switch (transport) {
    case Transport::kWs: return "ws";
    case Transport::kTcp: return "tcp";
    case Transport::kSocketIo: return "socketio";
    case Transport::kWss: return "wss";
  }
  return "?";
}

std::optional<Transport> transportFromName(std::string_view name) {
  for (size_t i = 0; i < kTransportCount; ++i) {
    const auto t = static_cast<Transport>(i);
    if (transportName(t) == name) {
      return t;
    }
  }
  return std::nullopt;
}

double loadValue(const NodeLoad& load, LoadMetric metric) {
  switch (metric) {
    case LoadMetric::kSessions: return static_cast<double>(load.sessions);
    case LoadMetric::kConnections: return static_cast<double>(load.connections);
    case LoadMetric::kConnectsPerSecond: return load.connects_per_s;
  }
  return 0;
}

std::string_view ruleName(RuleKind rule) {
  switch (rule) {
    case RuleKind::kApp: return "app";
    case RuleKind::kSdk: return "sdk";
    case RuleKind::kEnv: return "env";
    case RuleKind::kNetwork: return "network";
    case RuleKind::kGeoIp: return "geoip";
    case RuleKind::kDefault: return "default";
  }
  return "?";
}

std::optional<double> ConfigLoadSource::load(const LbsNode& node, const NodeLoad& self,
                                             LoadMetric metric) const {
  if (node.self) {
    return loadValue(self, metric);
  }
  return node.static_load;
}

// ---- Ordering -----------------------------------------------------------------------------------

std::vector<size_t> orderByLoad(std::vector<ScoredNode> nodes, double near_equal_percent,
                                double near_equal_absolute, Rng& rng) {
  std::sort(nodes.begin(), nodes.end(), [](const ScoredNode& a, const ScoredNode& b) {
    if (a.tier != b.tier) {
      return a.tier < b.tier;
    }
    if (a.score != b.score) {
      return a.score < b.score;
    }
    return a.index < b.index;
  });
  std::vector<size_t> order;
  order.reserve(nodes.size());
  std::vector<std::pair<double, size_t>> keys;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  size_t i = 0;
  while (i < nodes.size()) {
    const double limit = nodes[i].score * (1.0 + near_equal_percent / 100.0) + near_equal_absolute;
    size_t j = i + 1;
    while (j < nodes.size() && nodes[j].tier == nodes[i].tier && nodes[j].score <= limit) {
      ++j;
    }
    // Weighted random permutation (Efraimidis-Spirakis as exponential races): the smallest
    // key E/w wins with probability w / sum(w), and so on down the run.
    keys.clear();
    for (size_t k = i; k < j; ++k) {
      const double e = -std::log(1.0 - uniform(rng));  // 1 - [0,1) is never 0
      keys.emplace_back(e / static_cast<double>(std::max<uint32_t>(nodes[k].weight, 1)), k);
    }
    std::sort(keys.begin(), keys.end());
    for (const auto& key : keys) {
      order.push_back(nodes[key.second].index);
    }
    i = j;
  }
  return order;
}

// ---- Lbs ----------------------------------------------------------------------------------------

Lbs::Lbs(LbsOptions options, LbsCounters counters, std::shared_ptr<const LoadSource> loads)
    : options_(std::move(options)), counters_(counters), loads_(std::move(loads)) {
  if (loads_ == nullptr) {
    loads_ = std::make_shared<const ConfigLoadSource>();
  }
}

Result<LbsQuery> Lbs::parseQuery(const HttpRequest& request) const {
  LbsQuery query;
  for (const auto& [name, slot] : {std::pair<const char*, std::string*>{"app", &query.app},
                                   {"sdk", &query.sdk},
                                   {"env", &query.env}}) {
    auto value = request.queryParam(name);
    if (!value) {
      continue;
    }
    if (value->size() > kMaxParamBytes) {
      return fail(Errc::kBadRequest, std::string(name) + " is longer than " +
                                         std::to_string(kMaxParamBytes) + " bytes");
    }
    *slot = std::move(*value);
  }
  if (auto transport = request.queryParam("transport"); transport && !transport->empty()) {
    if (transport->size() > kMaxParamBytes) {
      return fail(Errc::kBadRequest,
                  "transport is longer than " + std::to_string(kMaxParamBytes) + " bytes");
    }
    query.transports.fill(false);
    std::string_view list = *transport;
    while (true) {
      const size_t comma = list.find(',');
      const std::string_view name = trim(list.substr(0, comma));
      const auto t = transportFromName(name);
      if (!t) {
        return fail(Errc::kBadRequest, "unknown transport \"" + printable(name) +
                                           "\" (known: ws, tcp, socketio, wss)");
      }
      query.transports[static_cast<size_t>(*t)] = true;
      if (comma == std::string_view::npos) {
        break;
      }
      list.remove_prefix(comma + 1);
    }
  }
  if (auto peer = parseHostPort(request.peer)) {
    std::vector<std::string_view> forwarded;
    if (!options_.trusted_proxies.empty()) {
      for (const auto& h : request.headers) {
        if (h.name == "x-forwarded-for") {
          forwarded.push_back(h.value);
        }
      }
    }
    query.client = clientAddress(*peer, forwarded, options_.trusted_proxies);
  }
  return query;
}

std::string Lbs::chooseGroup(const LbsQuery& query, LbsDecision& decision) const {
  // Location first: network rules and GeoIP also fill the answer's country/region, whatever
  // rule decides the group.
  const NetworkRule* network_group = nullptr;
  const NetworkRule* network_region = nullptr;
  if (query.client) {
    int best_group = -1;
    int best_region = -1;
    for (const NetworkRule& rule : options_.network_rules) {
      const int match = rule.cidrs.longestMatch(*query.client);
      if (match < 0) {
        continue;
      }
      if (!rule.group.empty() && match > best_group) {
        best_group = match;
        network_group = &rule;
      }
      if (!rule.region.empty() && match > best_region) {
        best_region = match;
        network_region = &rule;
      }
    }
  }
  if (network_region != nullptr) {
    const std::string& r = network_region->region;
    const size_t dash = r.find('-');
    decision.country = r.substr(0, dash);
    decision.region = dash == std::string::npos ? std::string() : r;
  } else if (options_.geoip != nullptr && query.client) {
    if (auto location = options_.geoip->lookup(*query.client)) {
      decision.country = std::move(location->country);
      decision.region = std::move(location->region);
    } else {
      count(counters_.geoip_misses);
    }
  }

  if (!query.app.empty()) {
    if (const auto it = options_.app_groups.find(query.app); it != options_.app_groups.end()) {
      decision.rule = RuleKind::kApp;
      return it->second;
    }
  }
  if (!options_.sdk_rules.empty() && !query.sdk.empty()) {
    if (const auto version = parseSdkVersion(query.sdk)) {
      for (const SdkRule& rule : options_.sdk_rules) {
        for (const VersionRange& range : rule.ranges) {
          if (range.contains(*version)) {
            decision.rule = RuleKind::kSdk;
            return rule.group;
          }
        }
      }
    }
  }
  if (!query.env.empty()) {
    if (const auto it = options_.env_groups.find(query.env); it != options_.env_groups.end()) {
      decision.rule = RuleKind::kEnv;
      return it->second;
    }
  }
  if (network_group != nullptr) {
    decision.rule = RuleKind::kNetwork;
    return network_group->group;
  }
  if (!decision.region.empty()) {
    if (const auto it = options_.region_groups.find(decision.region);
        it != options_.region_groups.end()) {
      decision.rule = RuleKind::kGeoIp;
      return it->second;
    }
  }
  if (!decision.country.empty()) {
    if (const auto it = options_.country_groups.find(decision.country);
        it != options_.country_groups.end()) {
      decision.rule = RuleKind::kGeoIp;
      return it->second;
    }
  }
  decision.rule = RuleKind::kDefault;
  return options_.default_group;
}

Result<LbsDecision> Lbs::decide(const LbsQuery& query, const std::function<NodeLoad()>& self_load,
                                Rng& rng) const {
  LbsDecision decision;
  decision.group = chooseGroup(query, decision);

  const auto eligible = [&](const LbsNode& node) {
    return node.enabled && (node.envs.empty() || std::find(node.envs.begin(), node.envs.end(),
                                                           query.env) != node.envs.end());
  };
  std::vector<size_t> candidates;
  for (size_t i = 0; i < options_.nodes.size(); ++i) {
    if (options_.nodes[i].group == decision.group && eligible(options_.nodes[i])) {
      candidates.push_back(i);
    }
  }
  if (candidates.empty()) {
    decision.fallback = true;
    for (size_t i = 0; i < options_.nodes.size(); ++i) {
      if (eligible(options_.nodes[i])) {
        candidates.push_back(i);
      }
    }
  }
  if (candidates.empty()) {
    return fail(Errc::kUnavailable,
                query.env.empty() ? std::string("no enabled node serves requests without env")
                                  : "no enabled node serves env \"" + printable(query.env) + "\"");
  }

  NodeLoad self{};
  for (size_t i : candidates) {
    if (options_.nodes[i].self) {
      if (self_load) {
        self = self_load();
      }
      break;
    }
  }
  std::vector<ScoredNode> scored;
  scored.reserve(candidates.size());
  std::vector<bool> known(candidates.size(), false);
  double known_sum = 0;
  size_t known_count = 0;
  for (size_t k = 0; k < candidates.size(); ++k) {
    const LbsNode& node = options_.nodes[candidates[k]];
    ScoredNode s{candidates[k], 0, std::max<uint32_t>(node.weight, 1), 0};
    const auto load = loads_->load(node, self, options_.load_metric);
    if (load && std::isfinite(*load) && *load >= 0) {
      s.score = *load / static_cast<double>(s.weight);
      known[k] = true;
      known_sum += s.score;
      ++known_count;
    }
    if (options_.prefer_local) {
      if (!decision.region.empty() && node.region == decision.region) {
        s.tier = 0;
      } else if (!decision.country.empty() && node.country == decision.country) {
        s.tier = 1;
      } else {
        s.tier = 2;
      }
    }
    scored.push_back(s);
  }
  const double average = known_count > 0 ? known_sum / static_cast<double>(known_count) : 0;
  for (size_t k = 0; k < scored.size(); ++k) {
    if (!known[k]) {
      scored[k].score = average;
    }
  }
  decision.order = orderByLoad(std::move(scored), options_.near_equal_percent,
                               options_.near_equal_absolute, rng);
  return decision;
}

std::string Lbs::render(const LbsQuery& query, const LbsDecision& decision) const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  const auto str = [&w](std::string_view s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartObject();
  w.Key("ttl");
  w.Int64(options_.ttl.count());
  w.Key("heartbeat_ms");
  w.Int64(options_.heartbeat.count());
  w.Key("backoff");
  w.StartObject();
  w.Key("base_ms");
  w.Int64(options_.backoff.base.count());
  w.Key("factor");
  w.Double(options_.backoff.factor);
  w.Key("jitter");
  w.Double(options_.backoff.jitter);
  w.Key("max_ms");
  w.Int64(options_.backoff.max.count());
  w.EndObject();

  w.Key("addresses");
  w.StartObject();
  std::unordered_set<std::string_view> seen;
  for (size_t t = 0; t < kTransportCount; ++t) {
    if (!query.transports[t]) {
      continue;
    }
    str(transportName(static_cast<Transport>(t)));
    w.StartArray();
    seen.clear();
    for (size_t index : decision.order) {
      for (const std::string& address : options_.nodes[index].addresses[t]) {
        if (seen.size() < options_.max_addresses && seen.insert(address).second) {
          str(address);
        }
      }
    }
    w.EndArray();
  }
  w.EndObject();

  w.Key("backup");
  w.StartArray();
  for (const std::string& b : options_.backup) {
    str(b);
  }
  w.EndArray();
  w.Key("node_group");
  str(decision.group);
  w.Key("rule");
  str(ruleName(decision.rule));
  if (decision.fallback) {
    w.Key("fallback");
    w.Bool(true);
  }
  w.Key("client_ip");
  str(query.client ? query.client->toString() : std::string());
  if (!decision.country.empty()) {
    w.Key("country");
    str(decision.country);
  }
  if (!decision.region.empty()) {
    w.Key("region");
    str(decision.region);
  }
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

void Lbs::handle(const HttpExchangePtr& exchange) const { handle(exchange, threadRng()); }

void Lbs::handle(const HttpExchangePtr& exchange, Rng& rng) const {
  count(counters_.requests);
  const HttpRequest& request = exchange->request();
  const auto answerError = [&](int status, Errc code, std::string_view reason) {
    count(counters_.errors);
    HttpResponse response = errorResponse(status, code, reason);
    if (status == 405) {
      response.headers.push_back({"allow", std::string(kAllowed)});
    }
    exchange->respond(std::move(response));
  };

  // The location matches by prefix; only the location itself (with or without a trailing
  // slash) is this resource.
  std::string_view rest = request.path;
  const std::string_view location = exchange->location();
  if (rest.substr(0, location.size()) == location) {
    rest.remove_prefix(location.size());
  }
  if (!rest.empty() && rest != "/") {
    answerError(404, Errc::kNotFound, "no resource at " + printable(request.path));
    return;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    answerError(405, Errc::kBadRequest,
                "method " + printable(request.method) + " not allowed here (allowed: GET, HEAD)");
    return;
  }
  auto query = parseQuery(request);
  if (!query) {
    answerError(httpStatusFor(query.error().code), query.error().code, query.error().message);
    return;
  }
  auto decision = decide(
      *query, [&exchange]() { return exchange->hub().nodeLoad(); }, rng);
  if (!decision) {
    answerError(httpStatusFor(decision.error().code), decision.error().code,
                decision.error().message);
    return;
  }
  count(counters_.rules[static_cast<size_t>(decision->rule)]);
  if (decision->fallback) {
    count(counters_.fallbacks);
  }
  HttpResponse response = HttpResponse::json(200, render(*query, *decision));
  // private: the answer depends on the client's address and parameters, so a shared cache
  // (CDN, corporate proxy) must not hand one client's list to another.
  response.headers.push_back(
      {"cache-control", "private, max-age=" + std::to_string(options_.ttl.count())});
  exchange->respond(std::move(response));
}

}  // namespace imgate::mod::lbs
