// SPDX-License-Identifier: Apache-2.0
#include "upstream/upstream_config.h"

#include <gtest/gtest.h>

#include <string>

#include "config/schema_check.h"

namespace imgate::core::upstream {
namespace {

tl::expected<std::shared_ptr<const UpstreamSet>, config::Errors> compileText(
    const std::string& yaml, BackendRegistry& registry) {
  auto doc = config::loadString(yaml, "up.yaml");
  EXPECT_TRUE(doc) << (doc ? "" : config::formatErrors(doc.error()));
  return compileUpstreams(doc->root.get("upstreams"), "up.yaml", registry);
}

std::string errorsOf(const std::string& yaml) {
  BackendRegistry registry;
  auto set = compileText(yaml, registry);
  return set ? std::string("OK") : config::formatErrors(set.error());
}

TEST(UpstreamConfig, SchemaIsWellFormed) {
  config::Errors errors;
  config::checkSchema(upstreamGroupSchema(), "upstreams.x", errors);
  EXPECT_TRUE(errors.empty()) << config::formatErrors(errors);
}

TEST(UpstreamConfig, DefaultsAndValues) {
  BackendRegistry registry;
  auto set = compileText(R"(
upstreams:
  chat:
    backends:
      - address: 127.0.0.1:8080
      - {address: "[::1]:9090", weight: 3}
  sticky:
    backends: [{address: "localhost:81"}]
    policy: consistent_hash
    timeout: 250ms
    retries: 0
    health_check: {path: /healthz, interval: 2s, expected_status: "200"}
    passive: {consecutive_failures: 0}
)",
                         registry);
  ASSERT_TRUE(set) << config::formatErrors(set.error());
  ASSERT_EQ((*set)->groups().size(), 2u);
  auto chat = (*set)->find("chat");
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->policy, Policy::kRoundRobin);
  ASSERT_EQ(chat->backends.size(), 2u);
  EXPECT_EQ(chat->backends[0].weight, 1u);
  EXPECT_EQ(chat->backends[1].weight, 3u);
  EXPECT_EQ(chat->backends[1].sockaddr.ss_family, AF_INET6);
  EXPECT_EQ(chat->connect_timeout, std::chrono::seconds(1));
  EXPECT_EQ(chat->timeout, std::chrono::seconds(5));
  EXPECT_EQ(chat->retries, 1u);
  EXPECT_EQ(chat->retry_budget, 20u);
  EXPECT_EQ(chat->max_connections, 64u);
  EXPECT_EQ(chat->max_idle, 16u);
  EXPECT_EQ(chat->idle_timeout, std::chrono::seconds(60));
  EXPECT_EQ(chat->max_pending, 1024u);
  EXPECT_EQ(chat->max_response, 1024u * 1024u);
  EXPECT_TRUE(chat->health_check.path.empty());
  EXPECT_EQ(chat->health_check.expected_min, 200);
  EXPECT_EQ(chat->health_check.expected_max, 399);
  EXPECT_EQ(chat->passive.consecutive_failures, 5u);
  EXPECT_EQ(chat->passive.ejection_time, std::chrono::seconds(30));
  auto sticky = (*set)->find("sticky");
  ASSERT_NE(sticky, nullptr);
  EXPECT_EQ(sticky->policy, Policy::kConsistentHash);
  EXPECT_EQ(sticky->timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(sticky->retries, 0u);
  EXPECT_EQ(sticky->health_check.path, "/healthz");
  EXPECT_EQ(sticky->health_check.interval, std::chrono::seconds(2));
  EXPECT_EQ(sticky->health_check.expected_min, 200);
  EXPECT_EQ(sticky->health_check.expected_max, 200);
  EXPECT_EQ(sticky->passive.consecutive_failures, 0u);
  EXPECT_GT(sticky->ring.points(), 0u);
  EXPECT_EQ((*set)->find("nope"), nullptr);
}

TEST(UpstreamConfig, ErrorsAreLocated) {
  const std::string yaml = R"(upstreams:
  chat:
    backends:
      - address: 127.0.0.1
      - address: 127.0.0.1:70000
      - {address: 127.0.0.1:80, weight: 0}
    policy: random
    retries: 6
    health_check: {expected_status: "abc", path: nope}
    colour: blue
  "bad name!":
    backends: [{address: 127.0.0.1:1}]
  empty:
    backends: []
)";
  const std::string errors = errorsOf(yaml);
  EXPECT_NE(errors.find("up.yaml:4:18: upstreams.chat.backends[0].address: \"127.0.0.1\": "
                        "expected host:port"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("up.yaml:5:18: upstreams.chat.backends[1].address: "),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("port must be a number"), std::string::npos) << errors;
  EXPECT_NE(errors.find("up.yaml:6:41: upstreams.chat.backends[2].weight:"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("up.yaml:7:13: upstreams.chat.policy:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("up.yaml:8:14: upstreams.chat.retries:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("upstreams.chat.health_check.expected_status: \"abc\""),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("upstreams.chat.health_check.path: must start with /"),
            std::string::npos)
      << errors;
  EXPECT_NE(errors.find("upstreams.chat.colour"), std::string::npos) << errors;
  EXPECT_NE(errors.find("up.yaml:11:3: upstreams.bad name!: group names"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("upstreams.empty.backends"), std::string::npos) << errors;
}

TEST(UpstreamConfig, DuplicateAndUnresolvableBackends) {
  const std::string errors = errorsOf(R"(upstreams:
  g:
    backends:
      - address: 127.0.0.1:80
      - address: 127.0.0.1:80
      - address: no-such-host.invalid:80
)");
  EXPECT_NE(errors.find("upstreams.g.backends[1].address: duplicate backend"), std::string::npos)
      << errors;
  EXPECT_NE(errors.find("upstreams.g.backends[2].address: \"no-such-host.invalid:80\": cannot "
                        "resolve"),
            std::string::npos)
      << errors;
}

TEST(UpstreamConfig, NotAMapAndEmpty) {
  EXPECT_NE(errorsOf("upstreams: [1, 2]\n").find("upstreams: expected a map"),
            std::string::npos);
  BackendRegistry registry;
  auto empty = compileText("other: 1\n", registry);
  ASSERT_TRUE(empty);
  EXPECT_TRUE((*empty)->groups().empty());
}

TEST(UpstreamConfig, ReloadKeepsBackendState) {
  BackendRegistry registry;
  auto first = compileText(R"(
upstreams:
  g:
    backends: [{address: "127.0.0.1:1001"}, {address: "127.0.0.1:1002"}]
)",
                           registry);
  ASSERT_TRUE(first);
  auto kept = (*first)->find("g")->backends[0].state;
  kept->healthy.store(false);
  kept->requests.store(7);
  auto second = compileText(R"(
upstreams:
  g:
    backends: [{address: "127.0.0.1:1001", weight: 5}, {address: "127.0.0.1:1003"}]
  h:
    backends: [{address: "127.0.0.1:1001"}]
)",
                            registry);
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)->find("g")->backends[0].state, kept);
  EXPECT_FALSE((*second)->find("g")->backends[0].state->healthy.load());
  EXPECT_EQ((*second)->find("g")->backends[0].state->requests.load(), 7u);
  // Same address in another group: its own state.
  EXPECT_NE((*second)->find("h")->backends[0].state, kept);
  first->reset();
  // 1002 is gone with the first set; 1001 (twice) and 1003 remain.
  EXPECT_EQ(registry.snapshot().size(), 3u);
}

TEST(UpstreamConfig, MetricsRenderEveryBackend) {
  BackendRegistry registry;
  auto set = compileText(R"(
upstreams:
  g:
    backends: [{address: "127.0.0.1:1001"}, {address: "127.0.0.1:1002"}]
)",
                         registry);
  ASSERT_TRUE(set);
  auto& s = *(*set)->find("g")->backends[1].state;
  s.requests.store(12);
  s.failures.store(3);
  s.retries.store(2);
  s.in_flight.store(4);
  s.healthy.store(false);
  s.recordSuccess(std::chrono::microseconds(1500));
  std::string out;
  renderUpstreamMetrics(out, registry);
  EXPECT_NE(out.find("# TYPE imgate_upstream_requests_total counter"), std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_requests_total{group=\"g\",backend=\"127.0.0.1:1002\"} 12"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("imgate_upstream_failures_total{group=\"g\",backend=\"127.0.0.1:1002\"} 3"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_retries_total{group=\"g\",backend=\"127.0.0.1:1002\"} 2"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_in_flight{group=\"g\",backend=\"127.0.0.1:1002\"} 4"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_healthy{group=\"g\",backend=\"127.0.0.1:1002\"} 0"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_healthy{group=\"g\",backend=\"127.0.0.1:1001\"} 1"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_latency_seconds_sum{group=\"g\",backend=\"127.0.0.1:1002\"} "
                     "0.001500"),
            std::string::npos);
  EXPECT_NE(out.find("imgate_upstream_latency_seconds_count{group=\"g\",backend=\"127.0.0.1:1002\"}"
                     " 1"),
            std::string::npos);
}

TEST(UpstreamConfig, PassiveEjectionCounting) {
  BackendState s("g", "a:1");
  EXPECT_FALSE(s.recordFailure(1000, 3, std::chrono::milliseconds(500)));
  EXPECT_FALSE(s.recordFailure(1000, 3, std::chrono::milliseconds(500)));
  s.recordSuccess(std::chrono::microseconds(1));  // breaks the streak
  EXPECT_FALSE(s.recordFailure(1000, 3, std::chrono::milliseconds(500)));
  EXPECT_FALSE(s.recordFailure(1000, 3, std::chrono::milliseconds(500)));
  EXPECT_TRUE(s.recordFailure(1000, 3, std::chrono::milliseconds(500)));
  EXPECT_FALSE(s.available(1499));
  EXPECT_TRUE(s.available(1500));
  EXPECT_EQ(s.ejections.load(), 1u);
  EXPECT_EQ(s.failures.load(), 5u);
  EXPECT_FALSE(s.recordFailure(2000, 0, std::chrono::milliseconds(500)));  // 0: never ejects
}

}  // namespace
}  // namespace imgate::core::upstream
