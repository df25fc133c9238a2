// SPDX-License-Identifier: Apache-2.0
// The lbs module: config validation through the core's schema checker, rule precedence,
// candidates, load ordering and herding, the JSON answer, HTTP errors and counters.
#include "modules/behavior/lbs/lbs.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "modules/behavior/lbs/lbs_config.h"
#include "test/unit/modules/behavior/lbs/lbs_fakes.h"
#include "test/unit/modules/behavior/lbs/test_mmdb.h"

namespace imgate::mod::lbs {
namespace {

using testing::FakeContext;
using testing::FakeExchange;
using testing::FakeHub;
using testing::get;
using testing::loadError;

// A folder holding test.mmdb (the 28-bit test database), removed with the object.
class GeoDir {
 public:
  GeoDir() {
    char dir[] = "/tmp/lbs_test_XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    std::ofstream out(dir_ + "/test.mmdb", std::ios::binary);
    out.write(reinterpret_cast<const char*>(kTestMmdb28),
              static_cast<std::streamsize>(kTestMmdb28Size));
  }
  ~GeoDir() {
    std::remove((dir_ + "/test.mmdb").c_str());
    rmdir(dir_.c_str());
  }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

// Loads by node name; the self node reports the live load like ConfigLoadSource.
class MapLoadSource final : public LoadSource {
 public:
  std::optional<double> load(const LbsNode& node, const NodeLoad& self,
                             LoadMetric metric) const override {
    if (node.self) {
      return loadValue(self, metric);
    }
    const auto it = loads.find(node.name);
    return it == loads.end() ? std::nullopt : it->second;
  }
  std::map<std::string, std::optional<double>> loads;
};

Lbs build(const std::string& yaml, std::shared_ptr<const LoadSource> loads = nullptr,
          FakeContext* context = nullptr) {
  auto options = testing::options(yaml, context);
  EXPECT_TRUE(options) << (options ? "" : options.error().message);
  return Lbs(options ? std::move(*options) : LbsOptions{}, {}, std::move(loads));
}

LbsQuery query(std::string client, std::string app = "", std::string sdk = "",
               std::string env = "") {
  LbsQuery q;
  if (!client.empty()) {
    q.client = *parseIp(client);
  }
  q.app = std::move(app);
  q.sdk = std::move(sdk);
  q.env = std::move(env);
  return q;
}

LbsDecision decide(const Lbs& lbs, const LbsQuery& q, uint64_t seed = 1) {
  Rng rng(seed);
  const auto idle = [] { return NodeLoad{}; };
  auto d = lbs.decide(q, idle, rng);
  EXPECT_TRUE(d) << (d ? "" : d.error().message);
  return d ? *d : LbsDecision{};
}

std::vector<std::string> names(const Lbs& lbs, const std::vector<size_t>& order) {
  std::vector<std::string> out;
  for (size_t i : order) {
    out.push_back(lbs.options().nodes[i].name);
  }
  return out;
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str(), body.size());
  EXPECT_FALSE(doc.HasParseError()) << body;
  return doc;
}

std::vector<std::string> strings(const rapidjson::Value& array) {
  std::vector<std::string> out;
  for (const auto& v : array.GetArray()) {
    out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

// ---- Config -------------------------------------------------------------------------------------

constexpr const char* kOneNode = R"(
nodes:
  - { name: a, addresses: { ws: [wss://a.example/ws] } }
)";

TEST(LbsConfigTest, SchemaIsValidAndDefaultsMatchTheDocs) {
  EXPECT_EQ(testing::factory().name(), "lbs");
  EXPECT_EQ(testing::factory().kind(), ModuleKind::kProtocol);
  core::config::Errors errs;
  core::config::checkSchema(lbsSchema(), "lbs", errs);
  EXPECT_TRUE(errs.empty()) << core::config::formatErrors(errs);

  auto o = testing::options(kOneNode);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->ttl.count(), 300);
  EXPECT_EQ(o->heartbeat.count(), 30000);
  EXPECT_EQ(o->backoff.base.count(), 1000);
  EXPECT_EQ(o->backoff.factor, 2.0);
  EXPECT_EQ(o->backoff.jitter, 0.2);
  EXPECT_EQ(o->backoff.max.count(), 60000);
  EXPECT_EQ(o->max_addresses, 8u);
  EXPECT_EQ(o->load_metric, LoadMetric::kSessions);
  EXPECT_EQ(o->near_equal_percent, 10);
  EXPECT_EQ(o->near_equal_absolute, 10);
  EXPECT_FALSE(o->prefer_local);
  EXPECT_EQ(o->default_group, "default");
  EXPECT_TRUE(o->trusted_proxies.empty());
  EXPECT_TRUE(o->backup.empty());
  EXPECT_EQ(o->geoip, nullptr);
  ASSERT_EQ(o->nodes.size(), 1u);
  const LbsNode& a = o->nodes[0];
  EXPECT_EQ(a.group, "default");
  EXPECT_EQ(a.weight, 1u);
  EXPECT_TRUE(a.enabled);
  EXPECT_FALSE(a.self);
  EXPECT_FALSE(a.static_load);
  EXPECT_EQ(a.addresses[static_cast<size_t>(Transport::kWs)],
            std::vector<std::string>{"wss://a.example/ws"});

  // The factory compiles it and registers its counters.
  FakeContext context;
  testing::Section section = testing::validate(kOneNode);
  ASSERT_TRUE(section.errors.empty()) << section.errors;
  auto compiled = testing::factory().compile(*section.view, context);
  ASSERT_TRUE(compiled) << compiled.error().message;
  EXPECT_TRUE(context.logged("1 nodes in 1 groups"));
}

TEST(LbsConfigTest, EveryKeyIsRead) {
  GeoDir geo;
  FakeContext context;
  context.config_dir = geo.path();
  auto o = testing::options(R"(
nodes:
  - name: a
    group: g1
    weight: 3
    env: [prod, gray]
    region: cn-zj
    self: true
    addresses: { ws: [ws://a/ws], tcp: ["a:9000"], socketio: [http://a/sio], wss: [wss://a/ws] }
  - { name: b, group: g2, country: us, load: 250, enabled: false, addresses: { tcp: ["b:9000"] } }
groups: [g3]
default_group: g2
rules:
  apps: [ { match: [chat, game], group: g1 } ]
  sdk_versions: [ { match: [">=2.0 <3", "=1.9.9"], group: g2 } ]
  environments: [ { match: staging, group: g3 } ]
  networks: [ { match: [10.0.0.0/8, "fd00::/8"], group: g1, region: CN-SH } ]
  geoip: { database: test.mmdb, rules: [ { match: [CN-ZJ, us], group: g3 } ] }
trusted_proxies: [127.0.0.1/32, "::1"]
ttl: 90s
heartbeat: 45s
backoff: { base: 500ms, factor: "1.5", jitter: "0", max: 2m }
backup: [backup.example, backup2.example]
max_addresses: 3
load_metric: connects_per_s
near_equal_percent: 25
near_equal_absolute: 0
prefer_local: true
)",
                            &context);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->nodes[0].weight, 3u);
  EXPECT_EQ(o->nodes[0].envs, (std::vector<std::string>{"prod", "gray"}));
  EXPECT_EQ(o->nodes[0].region, "CN-ZJ");
  EXPECT_EQ(o->nodes[0].country, "CN") << "derived from the region";
  EXPECT_TRUE(o->nodes[0].self);
  for (size_t t = 0; t < kTransportCount; ++t) {
    EXPECT_EQ(o->nodes[0].addresses[t].size(), 1u);
  }
  EXPECT_EQ(o->nodes[1].country, "US");
  EXPECT_EQ(o->nodes[1].static_load, 250.0);
  EXPECT_FALSE(o->nodes[1].enabled);
  EXPECT_EQ(o->default_group, "g2");
  EXPECT_EQ(o->app_groups.at("game"), "g1");
  EXPECT_EQ(o->sdk_rules.size(), 1u);
  EXPECT_EQ(o->sdk_rules[0].ranges.size(), 2u);
  EXPECT_EQ(o->env_groups.at("staging"), "g3");
  ASSERT_EQ(o->network_rules.size(), 1u);
  EXPECT_EQ(o->network_rules[0].cidrs.size(), 2u);
  EXPECT_EQ(o->network_rules[0].region, "CN-SH");
  ASSERT_NE(o->geoip, nullptr);
  EXPECT_EQ(o->region_groups.at("CN-ZJ"), "g3");
  EXPECT_EQ(o->country_groups.at("US"), "g3");
  EXPECT_EQ(o->trusted_proxies.size(), 2u);
  EXPECT_EQ(o->ttl.count(), 90);
  EXPECT_EQ(o->heartbeat.count(), 45000);
  EXPECT_EQ(o->backoff.base.count(), 500);
  EXPECT_EQ(o->backoff.factor, 1.5);
  EXPECT_EQ(o->backoff.jitter, 0.0);
  EXPECT_EQ(o->backoff.max.count(), 120000);
  EXPECT_EQ(o->backup.size(), 2u);
  EXPECT_EQ(o->max_addresses, 3u);
  EXPECT_EQ(o->load_metric, LoadMetric::kConnectsPerSecond);
  EXPECT_EQ(o->near_equal_percent, 25);
  EXPECT_EQ(o->near_equal_absolute, 0);
  EXPECT_TRUE(o->prefer_local);
  EXPECT_TRUE(context.logged("geoip \"imgate-Test-Country\""));
  EXPECT_TRUE(context.logged("group \"g3\" has no enabled node"));
  EXPECT_TRUE(context.logged("group \"g2\"") == false) << "g2 was not declared in groups";
}

TEST(LbsConfigTest, BadConfigsFailWithClearMessages) {
  const std::string node = "  - { name: a, group: g, addresses: { ws: [wss://a/ws] } }\n";
  const std::string nodes = "nodes:\n" + node;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{}", "nodes"},
      {"nodes: []", "nodes"},
      {"nodez:\n" + node, "nodez"},
      {nodes + "default_group: nope", "default_group: unknown group \"nope\" (groups: g"},
      {nodes + "default_group: g\nrules: { apps: [ { match: [x], group: nope } ] }",
       "rules.apps[0].group: unknown group \"nope\""},
      {nodes + "default_group: g\nrules: { networks: [ { match: [10.0.0.1/8], group: g } ] }",
       "rules.networks[0].match: \"10.0.0.1/8\": host bits are set below the prefix (did you "
       "mean 10.0.0.0/8?)"},
      {nodes +
           "default_group: g\nrules: { networks: [ { match: [\"2001:db8::/129\"], group: g } ] }",
       "rules.networks[0].match: \"2001:db8::/129\": the prefix length must be 0..128"},
      {nodes + "default_group: g\nrules: { networks: [ { match: [10.0.0.0/8] } ] }",
       "rules.networks[0]: needs a group, a region, or both"},
      {nodes + "default_group: g\nrules: { networks: [ { match: [10.0.0.0/8], region: China } ] }",
       "rules.networks[0].region: \"CHINA\" is not a code"},
      {nodes + "default_group: g\nrules: { sdk_versions: [ { match: [\">=2.x\"], group: g } ] }",
       "rules.sdk_versions[0].match: version range \">=2.x\": \"2.x\" is not a version"},
      {nodes + "default_group: g\nrules: { geoip: { database: /nonexistent/geo.mmdb } }",
       "rules.geoip.database: cannot open GeoIP database \"/nonexistent/geo.mmdb\""},
      {nodes + "default_group: g\nrules: { geoip: { rules: [ { match: [China], group: g } ] } }",
       "rules.geoip.rules[0].match: \"China\" is not a country (CN) or region (CN-ZJ) code"},
      {nodes + "default_group: g\nrules: { geoip: { rules: [ { match: [CN], group: g }, "
               "{ match: [cn], group: g } ] } }",
       "rules.geoip.rules[1].match: \"cn\" is also matched by rules.geoip.rules[0]"},
      {nodes + "default_group: g\nrules: { apps: [ { match: [x], group: g }, "
               "{ match: [y, x], group: g } ] }",
       "rules.apps[1].match: \"x\" is also matched by rules.apps[0]"},
      {nodes + "default_group: g\nrules: { environments: [ { match: [\"\"], group: g } ] }",
       "rules.environments[0].match: values must be 1..256 bytes"},
      {nodes + "default_group: g\ntrusted_proxies: [localhost]",
       "trusted_proxies[0]: \"localhost\" is not a CIDR block"},
      {nodes + "default_group: g\nbackoff: { factor: fast }",
       "backoff.factor: \"fast\" is not a number in 1..10"},
      {nodes + "default_group: g\nbackoff: { factor: \"0.5\" }", "backoff.factor"},
      {nodes + "default_group: g\nbackoff: { jitter: \"1.5\" }",
       "backoff.jitter: \"1.5\" is not a number in 0..1"},
      {nodes + "default_group: g\nbackoff: { base: 2m, max: 1m }",
       "backoff: base (120000ms) is above max (60000ms)"},
      {nodes + "default_group: g\nbackup: [\"has space.example\"]", "backup[0]"},
      {nodes + "default_group: g\ngroups: [\"bad group\"]", "groups[0]: \"bad group\" must be"},
      {nodes + "default_group: g\nmax_addresses: 0", "max_addresses"},
      {nodes + "default_group: g\nmax_addresses: 65", "max_addresses"},
      {nodes + "default_group: g\nnear_equal_percent: -1", "near_equal_percent"},
      {nodes + "default_group: g\nttl: 500ms", "ttl"},
      {nodes + "default_group: g\nheartbeat: 0", "heartbeat"},
      {nodes + "default_group: g\nload_metric: cpu", "load_metric"},
      {"nodes:\n" + node + node + "default_group: g", "nodes[1].name: \"a\" is also nodes[0].name"},
      {"nodes: [ { name: \"a b\", addresses: { ws: [x] } } ]", "nodes[0].name: \"a b\" must be"},
      {"nodes: [ { name: a, group: \"g/1\", addresses: { ws: [x] } } ]", "nodes[0].group"},
      {"nodes: [ { name: a, addresses: {} } ]", "nodes[0].addresses: node \"a\" has no address"},
      {"nodes: [ { name: a } ]", "addresses"},
      {"nodes: [ { name: a, addresses: { ws: [\"wss://a/ws x\"] } } ]",
       "nodes[0].addresses.ws: \"wss://a/ws x\" must be 1..512 printable ASCII"},
      {"nodes: [ { name: a, addresses: { http: [x] } } ]", "http"},
      {"nodes: [ { name: a, weight: 0, addresses: { ws: [x] } } ]", "weight"},
      {"nodes: [ { name: a, load: -1, addresses: { ws: [x] } } ]", "load"},
      {"nodes: [ { name: a, region: Zhejiang, addresses: { ws: [x] } } ]",
       "nodes[0].region: \"ZHEJIANG\" is not an ISO 3166-2 code like CN-ZJ"},
      {"nodes: [ { name: a, region: CN, addresses: { ws: [x] } } ]", "nodes[0].region"},
      {"nodes: [ { name: a, country: C1, addresses: { ws: [x] } } ]",
       "nodes[0].country: \"C1\" is not an ISO 3166-1 code"},
      {"nodes: [ { name: a, region: CN-ZJ, country: US, addresses: { ws: [x] } } ]",
       "nodes[0]: country \"US\" does not match region \"CN-ZJ\""},
      {"nodes: [ { name: a, self: true, addresses: { ws: [x] } },"
       " { name: b, self: true, addresses: { ws: [x] } } ]",
       "nodes[1].self: only one node can be self"},
      {"nodes: [ { name: a, self: true, load: 5, addresses: { ws: [x] } } ]",
       "nodes[0].load: the self node's load is live"},
      {"nodes: [ { name: a, env: [\"\"], addresses: { ws: [x] } } ]", "nodes[0].env"},
  };
  for (const auto& [yaml, expected] : cases) {
    const std::string error = loadError(yaml);
    EXPECT_NE(error.find(expected), std::string::npos)
        << "config:\n" + yaml + "\nexpected: " + expected + "\ngot: " + error;
  }
  // The values just inside the bounds load.
  for (const std::string extra :
       {"max_addresses: 1", "max_addresses: 64", "near_equal_percent: 0", "ttl: 1s",
        "heartbeat: 1s", "backoff: { factor: \"1\", jitter: \"1\", base: 10ms, max: 100ms }",
        "backoff: { factor: \"10.0\", jitter: \"0\" }", "near_equal_absolute: 0"}) {
    EXPECT_EQ(loadError(nodes + "default_group: g\n" + extra), "") << extra;
  }
}

TEST(LbsConfigTest, WarnsAboutRulesThatCannotMatch) {
  FakeContext context;
  auto o = testing::options(
      std::string(kOneNode) + "rules: { geoip: { rules: [ { match: [CN], group: default } ] } }",
      &context);
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_TRUE(context.logged("rules.geoip.rules can never match"));

  FakeContext disabled;
  ASSERT_TRUE(testing::options("nodes: [ { name: a, enabled: false, addresses: { ws: [x] } } ]",
                               &disabled));
  EXPECT_TRUE(disabled.logged("every node is disabled"));
}

// ---- Rules --------------------------------------------------------------------------------------

constexpr const char* kRules = R"(
nodes:
  - { name: a1, group: ga, addresses: { ws: [wss://a1/ws] } }
  - { name: s1, group: gs, addresses: { ws: [wss://s1/ws] } }
  - { name: e1, group: ge, addresses: { ws: [wss://e1/ws] } }
  - { name: n1, group: gn, addresses: { ws: [wss://n1/ws] } }
  - { name: n6, group: gn6, addresses: { ws: [wss://n6/ws] } }
  - { name: r1, group: gr, addresses: { ws: [wss://r1/ws] } }
  - { name: c1, group: gc, addresses: { ws: [wss://c1/ws] } }
  - { name: d1, addresses: { ws: [wss://d1/ws] } }
groups: [empty]
rules:
  apps: [ { match: [chat], group: ga }, { match: [ghost], group: empty } ]
  sdk_versions: [ { match: [">=2.0.0 <3.0.0"], group: gs } ]
  environments: [ { match: [staging], group: ge } ]
  networks:
    - { match: [10.0.0.0/8], group: gn }
    - { match: ["2001:db8::/32"], group: gn6 }
    - { match: [10.1.0.0/16, 192.168.9.0/24], region: CN-ZJ }
    - { match: [192.168.8.0/24], region: us }
  geoip:
    database: test.mmdb
    rules:
      - { match: [CN-ZJ], group: gr }
      - { match: [CN, US], group: gc }
)";

class LbsRulesTest : public ::testing::Test {
 protected:
  LbsRulesTest() : lbs_(makeLbs()) {}

  Lbs makeLbs() {
    context_.config_dir = geo_.path();
    return build(kRules, nullptr, &context_);
  }

  std::pair<std::string, std::string> pick(const LbsQuery& q) {
    const LbsDecision d = decide(lbs_, q);
    return {d.group, std::string(ruleName(d.rule))};
  }

  using Pick = std::pair<std::string, std::string>;
  GeoDir geo_;
  FakeContext context_;
  Lbs lbs_;
};

TEST_F(LbsRulesTest, EachRuleAlone) {
  EXPECT_EQ(pick(query("203.0.113.1", "chat")), Pick("ga", "app"));
  EXPECT_EQ(pick(query("203.0.113.1", "unknown-app")), Pick("default", "default"))
      << "an unknown app is fine";
  EXPECT_EQ(pick(query("203.0.113.1", "", "2.4.1")), Pick("gs", "sdk"));
  EXPECT_EQ(pick(query("203.0.113.1", "", "3.0.0")), Pick("default", "default"));
  EXPECT_EQ(pick(query("203.0.113.1", "", "not-a-version")), Pick("default", "default"));
  EXPECT_EQ(pick(query("203.0.113.1", "", "", "staging")), Pick("ge", "env"));
  EXPECT_EQ(pick(query("203.0.113.1", "", "", "prod")), Pick("default", "default"));
  EXPECT_EQ(pick(query("10.200.0.1")), Pick("gn", "network"));
  EXPECT_EQ(pick(query("::ffff:10.200.0.1")), Pick("gn", "network"));
  EXPECT_EQ(pick(query("2001:db8:5::1")), Pick("gn6", "network"));
  EXPECT_EQ(pick(query("1.2.3.4")), Pick("gr", "geoip")) << "GeoIP region CN-ZJ";
  EXPECT_EQ(pick(query("1.2.4.4")), Pick("gc", "geoip")) << "GeoIP country CN";
  EXPECT_EQ(pick(query("5.6.8.1")), Pick("gc", "geoip")) << "US-CA: no region rule, country US";
  EXPECT_EQ(pick(query("5.6.7.1")), Pick("default", "default")) << "DE has no rule";
  EXPECT_EQ(pick(query("8.8.8.8")), Pick("default", "default")) << "not in the database";
  EXPECT_EQ(pick(query("")), Pick("default", "default")) << "no client address at all";
}

TEST_F(LbsRulesTest, PrecedenceIsAppSdkEnvNetworkGeoDefault) {
  // 1.2.3.4 is CN-ZJ by GeoIP; 10.1.2.3 is in a group network block and a region block.
  EXPECT_EQ(pick(query("10.1.2.3", "chat", "2.0.0", "staging")), Pick("ga", "app"));
  EXPECT_EQ(pick(query("10.1.2.3", "other", "2.0.0", "staging")), Pick("gs", "sdk"));
  EXPECT_EQ(pick(query("10.1.2.3", "other", "1.0.0", "staging")), Pick("ge", "env"));
  EXPECT_EQ(pick(query("10.1.2.3", "other", "1.0.0", "prod")), Pick("gn", "network"));
  EXPECT_EQ(pick(query("1.2.3.4", "other", "1.0.0", "prod")), Pick("gr", "geoip"));
  EXPECT_EQ(pick(query("8.8.8.8", "other", "1.0.0", "prod")), Pick("default", "default"));
}

TEST_F(LbsRulesTest, NetworkRegionsOverrideGeoIp) {
  // 192.168.9.0/24 has only a region: the group then comes from the geoip rules.
  LbsDecision d = decide(lbs_, query("192.168.9.7"));
  EXPECT_EQ(d.group, "gr");
  EXPECT_EQ(d.rule, RuleKind::kGeoIp);
  EXPECT_EQ(d.region, "CN-ZJ");
  EXPECT_EQ(d.country, "CN");
  d = decide(lbs_, query("192.168.8.7"));
  EXPECT_EQ(d.group, "gc");
  EXPECT_EQ(d.country, "US");
  EXPECT_EQ(d.region, "");
  // The group block and the region block both apply to 10.1.2.3: the network group decides,
  // and the answer still carries the region.
  d = decide(lbs_, query("10.1.2.3"));
  EXPECT_EQ(d.group, "gn");
  EXPECT_EQ(d.region, "CN-ZJ");
  // GeoIP fills the location when no network rule names a region.
  d = decide(lbs_, query("1.2.3.4", "chat"));
  EXPECT_EQ(d.group, "ga");
  EXPECT_EQ(d.region, "CN-ZJ");
}

TEST(LbsRulesPlainTest, LongestNetworkPrefixWinsAcrossRules) {
  const Lbs lbs = build(R"(
nodes:
  - { name: wide, group: wide, addresses: { ws: [w] } }
  - { name: narrow, group: narrow, addresses: { ws: [n] } }
  - { name: d, addresses: { ws: [d] } }
rules:
  networks:
    - { match: [10.0.0.0/8, "2001:db8::/32"], group: wide }
    - { match: [10.1.2.0/24, "2001:db8:1::/48"], group: narrow }
    - { match: [0.0.0.0/0], group: wide }
)");
  EXPECT_EQ(decide(lbs, query("10.1.2.3")).group, "narrow");
  EXPECT_EQ(decide(lbs, query("10.1.3.3")).group, "wide");
  EXPECT_EQ(decide(lbs, query("2001:db8:1::5")).group, "narrow");
  EXPECT_EQ(decide(lbs, query("2001:db8:2::5")).group, "wide");
  EXPECT_EQ(decide(lbs, query("192.0.2.1")).group, "wide") << "0.0.0.0/0 is every IPv4";
  EXPECT_EQ(decide(lbs, query("2001:db9::1")).group, "default") << "...but no IPv6";
}

TEST(LbsRulesPlainTest, FirstMatchingSdkRuleWins) {
  const Lbs lbs = build(R"(
nodes:
  - { name: old, group: old, addresses: { ws: [o] } }
  - { name: new, group: new, addresses: { ws: [n] } }
  - { name: d, addresses: { ws: [d] } }
rules:
  sdk_versions:
    - { match: ["<1.5", "=1.9.9"], group: old }
    - { match: [">=1.0"], group: new }
)");
  EXPECT_EQ(decide(lbs, query("", "", "1.4.9")).group, "old");
  EXPECT_EQ(decide(lbs, query("", "", "1.9.9")).group, "old") << "any range of a rule";
  EXPECT_EQ(decide(lbs, query("", "", "1.5")).group, "new");
  EXPECT_EQ(decide(lbs, query("", "", "v2.0.0-beta.1")).group, "new");
}

// ---- Candidates ---------------------------------------------------------------------------------

TEST(LbsCandidatesTest, EmptyGroupFallsBackToEveryNode) {
  const Lbs lbs = build(R"(
nodes:
  - { name: a, group: g1, addresses: { ws: [a] } }
  - { name: b, group: g2, addresses: { ws: [b] } }
  - { name: c, group: g3, enabled: false, addresses: { ws: [c] } }
groups: [empty]
default_group: g1
rules:
  apps: [ { match: [x], group: empty }, { match: [y], group: g3 } ]
)");
  LbsDecision d = decide(lbs, query("", "x"));
  EXPECT_EQ(d.group, "empty");
  EXPECT_TRUE(d.fallback);
  const auto all = names(lbs, d.order);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()), (std::set<std::string>{"a", "b"}))
      << "every enabled node, never the disabled one";
  d = decide(lbs, query("", "y"));
  EXPECT_TRUE(d.fallback) << "a group whose nodes are all disabled is empty";
  EXPECT_EQ(d.order.size(), 2u);
  d = decide(lbs, query("", "z"));
  EXPECT_FALSE(d.fallback);
  EXPECT_EQ(names(lbs, d.order), std::vector<std::string>{"a"});
}

TEST(LbsCandidatesTest, EnvTagsRestrictNodes) {
  const Lbs lbs = build(R"(
nodes:
  - { name: any, addresses: { ws: [any] } }
  - { name: staging, env: [staging, gray], addresses: { ws: [st] } }
  - { name: dev, group: devs, env: [dev], addresses: { ws: [dev] } }
rules:
  environments: [ { match: [dev], group: devs } ]
)");
  auto order = [&](std::string env) {
    return names(lbs, decide(lbs, query("", "", "", env)).order);
  };
  EXPECT_EQ(order(""), std::vector<std::string>{"any"}) << "tagged nodes need the env";
  EXPECT_EQ(order("prod"), std::vector<std::string>{"any"});
  const auto gray = order("gray");
  EXPECT_EQ(std::set<std::string>(gray.begin(), gray.end()),
            (std::set<std::string>{"any", "staging"}));
  EXPECT_EQ(order("dev"), std::vector<std::string>{"dev"});

  // No node at all for a request: 503, with the reason.
  const Lbs only_tagged = build("nodes: [ { name: t, env: [x], addresses: { ws: [t] } } ]");
  Rng rng(1);
  auto none = only_tagged.decide(query("", "", "", "y"), nullptr, rng);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::kUnavailable);
  EXPECT_EQ(none.error().message, "no enabled node serves env \"y\"");
  none = only_tagged.decide(query(""), nullptr, rng);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "no enabled node serves requests without env");
}

// ---- Ordering -----------------------------------------------------------------------------------

std::string fourNodes(int near_equal_percent = 0, int near_equal_absolute = 0) {
  return R"(
nodes:
  - { name: a, addresses: { ws: [a] } }
  - { name: b, addresses: { ws: [b] } }
  - { name: c, addresses: { ws: [c] } }
  - { name: d, addresses: { ws: [d] } }
near_equal_percent: )" +
         std::to_string(near_equal_percent) +
         "\nnear_equal_absolute: " + std::to_string(near_equal_absolute) + "\n";
}

TEST(LbsOrderTest, LeastLoadedFirstPerWeight) {
  auto loads = std::make_shared<MapLoadSource>();
  loads->loads = {{"a", 400}, {"b", 100}, {"c", 300}, {"d", 200}};
  const Lbs lbs = build(fourNodes(), loads);
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    EXPECT_EQ(names(lbs, decide(lbs, query(""), seed).order),
              (std::vector<std::string>{"b", "d", "c", "a"}))
        << "no near-equals: the order is the load order whatever the seed";
  }
  // Weight is capacity: 300 sessions on a weight-4 node are less load than 100 on weight 1.
  const Lbs weighted = build(R"(
nodes:
  - { name: small, load: 100, addresses: { ws: [s] } }
  - { name: big, weight: 4, load: 300, addresses: { ws: [b] } }
near_equal_percent: 0
near_equal_absolute: 0
)");
  EXPECT_EQ(names(weighted, decide(weighted, query("")).order),
            (std::vector<std::string>{"big", "small"}));
}

TEST(LbsOrderTest, UnknownLoadCountsAsTheAverage) {
  auto loads = std::make_shared<MapLoadSource>();
  loads->loads = {{"a", 100}, {"b", 300}, {"c", std::nullopt}, {"d", -5}};  // -5: invalid
  const Lbs lbs = build(fourNodes(), loads);
  const auto order = names(lbs, decide(lbs, query("")).order);
  // Average of the known loads is 200: c and d sit between a and b.
  EXPECT_EQ(order.front(), "a");
  EXPECT_EQ(order.back(), "b");
  // With no known load at all, everything is equal and shuffled.
  const Lbs unknown = build(R"(
nodes:
  - { name: a, addresses: { ws: [a] } }
  - { name: b, addresses: { ws: [b] } }
)");
  std::set<std::string> firsts;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    firsts.insert(names(unknown, decide(unknown, query(""), seed).order).front());
  }
  EXPECT_EQ(firsts, (std::set<std::string>{"a", "b"}));
}

TEST(LbsOrderTest, SelfNodeUsesTheLiveLoadInTheConfiguredMetric) {
  const std::string yaml = R"(
nodes:
  - { name: self, self: true, addresses: { ws: [self] } }
  - { name: other, load: 50, addresses: { ws: [other] } }
near_equal_percent: 0
near_equal_absolute: 0
)";
  for (const auto& [metric, live, expected_first] :
       std::vector<std::tuple<std::string, NodeLoad, std::string>>{
           {"sessions", NodeLoad{1000, 10, 0, 2}, "self"},
           {"sessions", NodeLoad{0, 80, 0, 2}, "other"},
           {"connections", NodeLoad{10, 1000, 0, 2}, "self"},
           {"connections", NodeLoad{80, 0, 0, 2}, "other"},
           {"connects_per_s", NodeLoad{0, 0, 49.5, 2}, "self"},
           {"connects_per_s", NodeLoad{0, 0, 50.5, 2}, "other"},
       }) {
    const Lbs lbs = build(yaml + "load_metric: " + metric);
    int calls = 0;
    Rng rng(3);
    auto d = lbs.decide(
        query(""),
        [&calls, live = live]() {
          ++calls;
          return live;
        },
        rng);
    ASSERT_TRUE(d);
    EXPECT_EQ(names(lbs, d->order).front(), expected_first) << metric;
    EXPECT_EQ(calls, 1) << "read once per request";
  }
  // Not read when the self node is not a candidate.
  const Lbs grouped = build(R"(
nodes:
  - { name: self, group: s, self: true, addresses: { ws: [self] } }
  - { name: other, addresses: { ws: [other] } }
)");
  int calls = 0;
  Rng rng(3);
  const auto count_calls = [&calls] {
    ++calls;
    return NodeLoad{};
  };
  ASSERT_TRUE(grouped.decide(query(""), count_calls, rng));
  EXPECT_EQ(calls, 0);
}

TEST(LbsOrderTest, NearEqualNodesShareFirstPlaceFairly) {
  // Within 10% of the least loaded: all four are near-equal and each should come first about
  // a quarter of the time.
  auto loads = std::make_shared<MapLoadSource>();
  loads->loads = {{"a", 1000}, {"b", 1020}, {"c", 1050}, {"d", 1090}};
  const Lbs lbs = build(fourNodes(10, 0), loads);
  std::map<std::string, int> firsts;
  Rng rng(12345);
  constexpr int kDraws = 8000;
  for (int i = 0; i < kDraws; ++i) {
    auto d = lbs.decide(query(""), nullptr, rng);
    ASSERT_TRUE(d);
    ++firsts[names(lbs, d->order).front()];
  }
  for (const char* n : {"a", "b", "c", "d"}) {
    // Binomial(8000, 0.25): sd ~39; 1700..2300 is beyond 7 sd.
    EXPECT_GT(firsts[n], 1700) << n;
    EXPECT_LT(firsts[n], 2300) << n;
  }
}

TEST(LbsOrderTest, WeightsSplitNewClientsAmongNearEquals) {
  const Lbs lbs = build(R"(
nodes:
  - { name: one, weight: 1, load: 100, addresses: { ws: [one] } }
  - { name: three, weight: 3, load: 300, addresses: { ws: [three] } }
)");
  int three_first = 0;
  Rng rng(777);
  constexpr int kDraws = 8000;
  for (int i = 0; i < kDraws; ++i) {
    auto d = lbs.decide(query(""), nullptr, rng);
    ASSERT_TRUE(d);
    three_first += names(lbs, d->order).front() == "three" ? 1 : 0;
  }
  // Expected 75% (sd ~0.5%).
  EXPECT_GT(three_first, kDraws * 70 / 100);
  EXPECT_LT(three_first, kDraws * 80 / 100);
}

TEST(LbsOrderTest, HeavilyLoadedNodeIsNeverFirst) {
  auto loads = std::make_shared<MapLoadSource>();
  loads->loads = {{"a", 500}, {"b", 505}, {"c", 510}, {"d", 5000}};
  const Lbs lbs = build(fourNodes(10, 10), loads);
  Rng rng(99);
  int heavy_first = 0;
  int heavy_last = 0;
  for (int i = 0; i < 4000; ++i) {
    auto d = lbs.decide(query(""), nullptr, rng);
    ASSERT_TRUE(d);
    const auto order = names(lbs, d->order);
    heavy_first += order.front() == "d" ? 1 : 0;
    heavy_last += order.back() == "d" ? 1 : 0;
  }
  EXPECT_EQ(heavy_first, 0);
  EXPECT_EQ(heavy_last, 4000);
}

TEST(LbsOrderTest, SameSeedSameOrder) {
  const Lbs lbs = build(R"(
nodes:
  - { name: a, addresses: { ws: [a] } }
  - { name: b, addresses: { ws: [b] } }
  - { name: c, addresses: { ws: [c] } }
  - { name: d, addresses: { ws: [d] } }
)");
  Rng x(2024);
  Rng y(2024);
  std::set<std::vector<size_t>> seen;
  for (int i = 0; i < 50; ++i) {
    auto dx = lbs.decide(query(""), nullptr, x);
    auto dy = lbs.decide(query(""), nullptr, y);
    ASSERT_TRUE(dx && dy);
    EXPECT_EQ(dx->order, dy->order);
    seen.insert(dx->order);
  }
  EXPECT_GT(seen.size(), 5u) << "equal nodes are shuffled";
}

TEST(LbsOrderTest, OrderByLoadRunsAreMeasuredFromTheirLeastLoadedNode) {
  // 100, 105, 112, 118: 105 is within 10% of 100, 112 is not; the next run starts at 112 and
  // takes 118. So {n0, n1} always precede {n2, n3}.
  std::vector<ScoredNode> nodes = {{0, 100, 1, 0}, {1, 105, 1, 0}, {2, 112, 1, 0}, {3, 118, 1, 0}};
  Rng rng(5);
  std::set<std::vector<size_t>> seen;
  for (int i = 0; i < 200; ++i) {
    const auto order = orderByLoad(nodes, 10, 0, rng);
    ASSERT_EQ(order.size(), 4u);
    EXPECT_EQ(std::set<size_t>(order.begin(), order.begin() + 2), (std::set<size_t>{0, 1}));
    EXPECT_EQ(std::set<size_t>(order.begin() + 2, order.end()), (std::set<size_t>{2, 3}));
    seen.insert(order);
  }
  EXPECT_EQ(seen.size(), 4u) << "both runs are shuffled";
  // Tiers come before load.
  const auto tiered = orderByLoad({{0, 1, 1, 1}, {1, 999, 1, 0}}, 10, 10, rng);
  EXPECT_EQ(tiered, (std::vector<size_t>{1, 0}));
  EXPECT_TRUE(orderByLoad({}, 10, 10, rng).empty());
}

TEST(LbsOrderTest, PreferLocalListsTheClientsRegionThenCountryFirst) {
  GeoDir geo;
  FakeContext context;
  context.config_dir = geo.path();
  auto loads = std::make_shared<MapLoadSource>();
  loads->loads = {{"zj", 900}, {"sh", 500}, {"us", 100}};
  const Lbs lbs = build(R"(
nodes:
  - { name: zj, region: CN-ZJ, addresses: { ws: [zj] } }
  - { name: sh, region: CN-SH, addresses: { ws: [sh] } }
  - { name: us, country: US, addresses: { ws: [us] } }
rules: { geoip: { database: test.mmdb } }
prefer_local: true
)",
                        loads, &context);
  EXPECT_EQ(names(lbs, decide(lbs, query("1.2.3.4")).order),
            (std::vector<std::string>{"zj", "sh", "us"}));
  EXPECT_EQ(names(lbs, decide(lbs, query("1.2.4.4")).order),
            (std::vector<std::string>{"sh", "zj", "us"}))
      << "country CN: both CN nodes first, by load";
  EXPECT_EQ(names(lbs, decide(lbs, query("8.8.8.8")).order),
            (std::vector<std::string>{"us", "sh", "zj"}))
      << "unknown location: load order";
}

// ---- The HTTP answer ----------------------------------------------------------------------------

constexpr const char* kAnswer = R"(
nodes:
  - name: a
    group: g1
    load: 10
    addresses:
      ws: [wss://a.example/ws, wss://shared.example/ws]
      tcp: ["a.example:9000"]
  - name: b
    group: g1
    load: 500
    addresses:
      ws: [wss://b.example/ws, wss://shared.example/ws]
      tcp: ["b.example:9000"]
      wss: [wss://b.example/secure]
default_group: g1
ttl: 120s
heartbeat: 25s
backoff: { base: 2s, factor: "1.5", jitter: "0.25", max: 90s }
backup: [backup.example, backup2.example]
near_equal_percent: 0
near_equal_absolute: 0
trusted_proxies: [127.0.0.1/32, "::1"]
rules:
  networks: [ { match: [10.0.0.0/8], region: CN-ZJ } ]
)";

class LbsHttpTest : public ::testing::Test {
 protected:
  LbsHttpTest() {
    testing::Section section = testing::validate(kAnswer);
    EXPECT_TRUE(section.errors.empty()) << section.errors;
    auto compiled = testing::factory().compile(*section.view, context_);
    EXPECT_TRUE(compiled) << (compiled ? "" : compiled.error().message);
    config_ = *compiled;
  }

  std::shared_ptr<FakeExchange> send(HttpRequest request, std::string location = "/v1/lbs") {
    auto exchange = std::make_shared<FakeExchange>(std::move(request), hub_, location);
    config_->onHttpRequest(exchange);
    EXPECT_EQ(exchange->responses, 1) << "exactly one answer";
    return exchange;
  }

  FakeHub hub_;
  FakeContext context_;
  ProtocolConfigPtr config_;
};

TEST_F(LbsHttpTest, AnswerShape) {
  auto ex = send(get("app=chat&sdk=1.4.2&env=prod&device=ios"));
  ASSERT_EQ(ex->response().status, 200) << ex->response().body;
  EXPECT_EQ(ex->header("content-type"), "application/json");
  EXPECT_EQ(ex->header("cache-control"), "private, max-age=120");
  EXPECT_EQ(ex->response().body,
            R"({"ttl":120,"heartbeat_ms":25000,)"
            R"("backoff":{"base_ms":2000,"factor":1.5,"jitter":0.25,"max_ms":90000},)"
            R"("addresses":{"ws":["wss://a.example/ws","wss://shared.example/ws",)"
            R"("wss://b.example/ws"],"tcp":["a.example:9000","b.example:9000"],)"
            R"("socketio":[],"wss":["wss://b.example/secure"]},)"
            R"("backup":["backup.example","backup2.example"],"node_group":"g1",)"
            R"("rule":"default","client_ip":"203.0.113.9"})")
      << "less loaded a first, shared address once, backup last";
  EXPECT_EQ(hub_.load_calls, 0) << "no self node";
}

TEST_F(LbsHttpTest, TransportFilterAndHead) {
  auto ex = send(get("transport=tcp,%20wss"));
  ASSERT_EQ(ex->response().status, 200);
  auto doc = parse(ex->response().body);
  const auto& addresses = doc["addresses"];
  EXPECT_EQ(addresses.MemberCount(), 2u);
  EXPECT_EQ(strings(addresses["tcp"]),
            (std::vector<std::string>{"a.example:9000", "b.example:9000"}));
  EXPECT_EQ(strings(addresses["wss"]), std::vector<std::string>{"wss://b.example/secure"});
  EXPECT_EQ(send(get("transport="))->response().status, 200) << "empty means all";

  HttpRequest head = get("");
  head.method = "HEAD";
  ex = send(head);
  EXPECT_EQ(ex->response().status, 200);
  EXPECT_FALSE(ex->response().body.empty()) << "the core drops the body of a HEAD answer";
  // A trailing slash is the same resource.
  HttpRequest slash = get("");
  slash.path = "/v1/lbs/";
  EXPECT_EQ(send(slash)->response().status, 200);
}

TEST_F(LbsHttpTest, ClientAddressFromTrustedProxies) {
  HttpRequest r = get("", "127.0.0.1:5555");
  r.headers.push_back({"x-forwarded-for", "6.6.6.6, 10.1.2.3"});
  auto doc = parse(send(r)->response().body);
  EXPECT_STREQ(doc["client_ip"].GetString(), "10.1.2.3");
  EXPECT_STREQ(doc["region"].GetString(), "CN-ZJ");
  EXPECT_STREQ(doc["country"].GetString(), "CN");

  HttpRequest v6 = get("", "[::1]:5555");
  v6.headers.push_back({"x-forwarded-for", "[2001:db8::7]:1234"});
  EXPECT_STREQ(parse(send(v6)->response().body)["client_ip"].GetString(), "2001:db8::7");

  // From an untrusted peer the header is ignored.
  HttpRequest forged = get("", "198.51.100.1:5555");
  forged.headers.push_back({"x-forwarded-for", "10.1.2.3"});
  doc = parse(send(forged)->response().body);
  EXPECT_STREQ(doc["client_ip"].GetString(), "198.51.100.1");
  EXPECT_FALSE(doc.HasMember("region"));
  EXPECT_FALSE(doc.HasMember("country"));

  // A peer that is not an IP address (a Unix socket) still gets an answer.
  doc = parse(send(get("", "unix"))->response().body);
  EXPECT_STREQ(doc["client_ip"].GetString(), "");
}

TEST_F(LbsHttpTest, ErrorsAreJsonAndCounted) {
  HttpRequest post = get("");
  post.method = "POST";
  auto ex = send(post);
  EXPECT_EQ(ex->response().status, 405);
  EXPECT_EQ(ex->header("allow"), "GET, HEAD");
  EXPECT_EQ(ex->header("cache-control"), "no-store");
  auto doc = parse(ex->response().body);
  EXPECT_STREQ(doc["error"].GetString(), "bad_request");
  EXPECT_NE(std::string(doc["reason"].GetString()).find("method POST not allowed"),
            std::string::npos);

  HttpRequest other = get("");
  other.path = "/v1/lbsx";
  ex = send(other);
  EXPECT_EQ(ex->response().status, 404);
  EXPECT_STREQ(parse(ex->response().body)["error"].GetString(), "not_found");
  other.path = "/v1/lbs/more";
  EXPECT_EQ(send(other)->response().status, 404);

  ex = send(get("transport=ws,quic%22%00"));
  EXPECT_EQ(ex->response().status, 400);
  doc = parse(ex->response().body);
  EXPECT_STREQ(doc["reason"].GetString(),
               "unknown transport \"quic??\" (known: ws, tcp, socketio, wss)");

  ex = send(get("app=" + std::string(kMaxParamBytes + 1, 'x')));
  EXPECT_EQ(ex->response().status, 400);
  EXPECT_STREQ(parse(ex->response().body)["reason"].GetString(), "app is longer than 256 bytes");
  EXPECT_EQ(send(get("app=" + std::string(kMaxParamBytes, 'x')))->response().status, 200);

  EXPECT_EQ(context_.value("lbs_requests"), 6u);
  EXPECT_EQ(context_.value("lbs_errors"), 5u);
  EXPECT_EQ(context_.value("lbs_rule_default"), 1u);
}

TEST(LbsHttpCountersTest, RuleHitsFallbacksAndGeoMisses) {
  GeoDir geo;
  FakeContext context;
  context.config_dir = geo.path();
  testing::Section section = testing::validate(R"(
nodes:
  - { name: self, self: true, addresses: { ws: [ws://self/ws] } }
  - { name: other, group: g2, env: [only], addresses: { ws: [ws://other/ws] } }
groups: [empty]
rules:
  apps: [ { match: [a], group: empty } ]
  sdk_versions: [ { match: [">=2"], group: default } ]
  environments: [ { match: [e], group: default } ]
  networks: [ { match: ["2001:db8:ffff::/48"], group: default } ]
  geoip: { database: test.mmdb, rules: [ { match: [CN], group: default } ] }
)");
  ASSERT_TRUE(section.errors.empty()) << section.errors;
  auto compiled = testing::factory().compile(*section.view, context);
  ASSERT_TRUE(compiled) << compiled.error().message;
  FakeHub hub;
  hub.load.sessions = 7;
  const auto send = [&](HttpRequest r) {
    auto ex = std::make_shared<FakeExchange>(std::move(r), hub);
    (*compiled)->onHttpRequest(ex);
    return parse(ex->response().body);
  };
  auto doc = send(get("app=a"));
  EXPECT_TRUE(doc["fallback"].GetBool());
  EXPECT_STREQ(doc["node_group"].GetString(), "empty");
  EXPECT_EQ(hub.load_calls, 1) << "the self node is a candidate";
  send(get("sdk=2.1"));
  send(get("env=e"));
  doc = send(get("", "[2001:db8:ffff::1]:1"));
  EXPECT_STREQ(doc["rule"].GetString(), "network");
  doc = send(get("", "1.2.4.1:1"));
  EXPECT_STREQ(doc["rule"].GetString(), "geoip");
  EXPECT_STREQ(doc["country"].GetString(), "CN");
  EXPECT_FALSE(doc.HasMember("fallback"));
  send(get("", "8.8.8.8:1"));  // a GeoIP miss
  HttpRequest post = get("");
  post.method = "POST";
  doc = send(post);
  EXPECT_STREQ(doc["error"].GetString(), "bad_request");
  EXPECT_EQ(hub.load_calls, 6);
  EXPECT_EQ(context.value("lbs_requests"), 7u);
  EXPECT_EQ(context.value("lbs_rule_app"), 1u);
  EXPECT_EQ(context.value("lbs_rule_sdk"), 1u);
  EXPECT_EQ(context.value("lbs_rule_env"), 1u);
  EXPECT_EQ(context.value("lbs_rule_network"), 1u);
  EXPECT_EQ(context.value("lbs_rule_geoip"), 1u);
  EXPECT_EQ(context.value("lbs_rule_default"), 1u);
  EXPECT_EQ(context.value("lbs_fallbacks"), 1u);
  EXPECT_EQ(context.value("lbs_geoip_misses"), 4u) << "203.0.113.9 three times, 8.8.8.8";
  EXPECT_EQ(context.value("lbs_errors"), 1u);
}

TEST(LbsRenderTest, MaxAddressesCapsEachTransport) {
  std::string yaml = "nodes:\n";
  for (int i = 0; i < 5; ++i) {
    yaml += "  - { name: n" + std::to_string(i) + ", load: " + std::to_string(i * 100) +
            ", addresses: { ws: [ws://n" + std::to_string(i) + "/a, ws://n" + std::to_string(i) +
            "/b], tcp: [\"n" + std::to_string(i) + ":1\"] } }\n";
  }
  yaml += "max_addresses: 3\nnear_equal_percent: 0\nnear_equal_absolute: 0\n";
  const Lbs lbs = build(yaml);
  const LbsQuery q = query("192.0.2.1");
  const auto doc = parse(lbs.render(q, decide(lbs, q)));
  EXPECT_EQ(strings(doc["addresses"]["ws"]),
            (std::vector<std::string>{"ws://n0/a", "ws://n0/b", "ws://n1/a"}));
  EXPECT_EQ(strings(doc["addresses"]["tcp"]), (std::vector<std::string>{"n0:1", "n1:1", "n2:1"}));
  EXPECT_EQ(doc["backup"].Size(), 0u);
}

}  // namespace
}  // namespace imgate::mod::lbs
