// SPDX-License-Identifier: Apache-2.0
// Real-socket tests of UpstreamClient and HealthChecker against TestBackend servers on
// 127.0.0.1, with the EventLoop run on the test thread.
#include "upstream/upstream_client.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "event/worker.h"
#include "test/unit/core/upstream/test_backend.h"
#include "upstream/health_checker.h"

namespace imgate::core::upstream {
namespace {

using imgate::test::TestBackend;
using namespace std::chrono_literals;

// Runs the loop until pred() or the limit; returns pred().
template <class Pred>
bool runUntil(EventLoop& loop, Pred pred, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred() && std::chrono::steady_clock::now() < deadline) {
    auto tick = loop.schedule(5ms, [] {});
    event_base_loop(loop.base(), EVLOOP_ONCE);
  }
  return pred();
}

class UpstreamClientTest : public ::testing::Test {
 protected:
  std::shared_ptr<const GroupConfig> group(const std::string& yaml) {
    auto doc = config::loadString("upstreams:\n  g:\n" + yaml, "t.yaml");
    EXPECT_TRUE(doc);
    auto set = compileUpstreams(doc->root.get("upstreams"), "t.yaml", registry_);
    EXPECT_TRUE(set) << (set ? "" : config::formatErrors(set.error()));
    set_ = *set;
    return set_->find("g");
  }

  static std::string backends(const std::vector<std::string>& addresses) {
    std::string out = "    backends:\n";
    for (const auto& a : addresses) {
      out += "      - address: " + a + "\n";
    }
    return out;
  }

  Result<UpstreamResponse> callSync(UpstreamClient& client, const GroupConfig& g,
                                    UpstreamRequest req) {
    std::optional<Result<UpstreamResponse>> result;
    client.call(g, std::move(req), [&](Result<UpstreamResponse> r) { result = std::move(r); });
    EXPECT_TRUE(runUntil(loop_, [&] { return result.has_value(); }));
    if (!result) {
      return fail(Errc::kInternal, "test: no answer");
    }
    return std::move(*result);
  }

  static UpstreamRequest get(std::string key = "") {
    UpstreamRequest r;
    r.method = "GET";
    r.path = "/x";
    r.hash_key = std::move(key);
    return r;
  }
  static UpstreamRequest post() {
    UpstreamRequest r;
    r.method = "POST";
    r.path = "/msg";
    r.body = R"({"a":1})";
    r.headers.push_back({"content-type", "application/json"});
    r.headers.push_back({"host", "evil"});  // owned by the client: dropped
    return r;
  }

  EventLoop loop_;
  BackendRegistry registry_;
  std::shared_ptr<const UpstreamSet> set_;
};

TEST_F(UpstreamClientTest, KeepAliveReusesOneConnection) {
  TestBackend a("a");
  auto g = group(backends({a.address()}));
  UpstreamClient client(loop_);
  for (int i = 0; i < 5; ++i) {
    auto r = callSync(client, *g, post());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "a");
    EXPECT_EQ(r->backend, a.address());
  }
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(client.connectionsOpened(), 1u);
  EXPECT_EQ(client.idleConnections(), 1u);
  const auto heads = a.heads();
  ASSERT_EQ(heads.size(), 5u);
  EXPECT_EQ(heads[0].rfind("POST /msg HTTP/1.1\r\nHost: " + a.address() + "\r\n", 0), 0u)
      << heads[0];
  EXPECT_EQ(heads[0].find("evil"), std::string::npos);
  EXPECT_NE(heads[0].find("content-type: application/json\r\n"), std::string::npos);
  EXPECT_NE(heads[0].find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_NE(heads[0].find("Connection: keep-alive\r\n"), std::string::npos);
  EXPECT_EQ(g->backends[0].state->requests.load(), 5u);
  EXPECT_EQ(g->backends[0].state->in_flight.load(), 0);
  EXPECT_EQ(g->backends[0].state->latency_count.load(), 5u);
}

TEST_F(UpstreamClientTest, CallByName) {
  TestBackend a("a");
  group(backends({a.address()}));
  UpstreamClient client(loop_);
  std::optional<Result<UpstreamResponse>> known;
  std::optional<Result<UpstreamResponse>> unknown;
  client.call(set_.get(), "g", get(), [&](Result<UpstreamResponse> r) { known = std::move(r); });
  client.call(set_.get(), "nope", get(),
              [&](Result<UpstreamResponse> r) { unknown = std::move(r); });
  EXPECT_FALSE(unknown.has_value());  // posted, not synchronous
  ASSERT_TRUE(runUntil(loop_, [&] { return known.has_value() && unknown.has_value(); }));
  ASSERT_TRUE(*known);
  EXPECT_EQ((*known)->body, "a");
  ASSERT_FALSE(*unknown);
  EXPECT_EQ(unknown->error().code, Errc::kUnavailable);
  EXPECT_EQ(unknown->error().message, "no upstream group named \"nope\"");
}

TEST_F(UpstreamClientTest, DoneIsNeverSynchronous) {
  auto g = group(backends({"127.0.0.1:" + std::to_string(TestBackend::refusedPort())}) +
                 "    retries: 0\n");
  UpstreamClient client(loop_);
  bool returned = false;
  bool called_before_return = false;
  bool called = false;
  client.call(*g, get(), [&](Result<UpstreamResponse> r) {
    called_before_return = !returned;
    called = true;
    EXPECT_FALSE(r);
  });
  returned = true;
  ASSERT_TRUE(runUntil(loop_, [&] { return called; }));
  EXPECT_FALSE(called_before_return);
}

TEST_F(UpstreamClientTest, RetriesAnotherBackendOn500ForGet) {
  TestBackend a("a");
  TestBackend b("b");
  a.setMode(TestBackend::Mode::kError);
  auto g = group(backends({a.address(), b.address()}) +
                 "    passive: {consecutive_failures: 0}\n");
  UpstreamClient client(loop_);
  for (int i = 0; i < 4; ++i) {
    auto r = callSync(client, *g, get());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "b");
  }
  EXPECT_GE(a.requests(), 1);
  EXPECT_EQ(b.requests(), 4);
  EXPECT_EQ(g->backends[1].state->retries.load(), static_cast<uint64_t>(a.requests()));
  EXPECT_EQ(g->backends[0].state->failures.load(), static_cast<uint64_t>(a.requests()));
}

TEST_F(UpstreamClientTest, PostIsNotRetriedOnceWritten) {
  TestBackend a("a");
  TestBackend b("b");
  a.setMode(TestBackend::Mode::kError);
  auto g = group(backends({a.address(), b.address()}) +
                 "    passive: {consecutive_failures: 0}\n");
  UpstreamClient client(loop_);
  // Round robin starts with a: its 500 comes back as is.
  auto r = callSync(client, *g, post());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->backend, a.address());
  EXPECT_EQ(b.requests(), 0);
  // A backend that reads the request and hangs up: an error, still no retry.
  a.setMode(TestBackend::Mode::kDrop);
  auto r2 = callSync(client, *g, post());  // b's turn
  ASSERT_TRUE(r2);
  auto r3 = callSync(client, *g, post());  // a again
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().code, Errc::kUnavailable);
  EXPECT_EQ(b.requests(), 1);
}

TEST_F(UpstreamClientTest, PostIsRetriedOnConnectRefused) {
  TestBackend b("b");
  const std::string refused = "127.0.0.1:" + std::to_string(TestBackend::refusedPort());
  auto g = group(backends({refused, b.address()}) + "    passive: {consecutive_failures: 0}\n");
  UpstreamClient client(loop_);
  for (int i = 0; i < 4; ++i) {
    auto r = callSync(client, *g, post());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->body, "b");
  }
  EXPECT_EQ(b.requests(), 4);
  EXPECT_GE(g->backends[0].state->failures.load(), 1u);
}

TEST_F(UpstreamClientTest, RetriesStopAtTheLimit) {
  const std::string r1 = "127.0.0.1:" + std::to_string(TestBackend::refusedPort());
  auto g = group(backends({r1}) + "    retries: 3\n");
  UpstreamClient client(loop_);
  auto r = callSync(client, *g, get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_NE(r.error().message.find("connect"), std::string::npos) << r.error().message;
  EXPECT_EQ(g->backends[0].state->requests.load(), 1u);  // one backend: nothing else to try
}

TEST_F(UpstreamClientTest, TimeoutGivesKTimeout) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kDelay);
  a.setDelayMs(600);
  auto g = group(backends({a.address()}) + "    timeout: 100ms\n    retries: 0\n");
  UpstreamClient client(loop_);
  const auto start = std::chrono::steady_clock::now();
  auto r = callSync(client, *g, get());
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTimeout);
  EXPECT_LT(took, 450ms);
  EXPECT_GE(took, 90ms);
  EXPECT_EQ(client.openConnections(), 0u);  // the late answer has nowhere to go
  // A per-request timeout overrides the group's.
  UpstreamRequest longer = get();
  longer.timeout = 2000ms;
  auto ok = callSync(client, *g, longer);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->status, 200);
}

TEST_F(UpstreamClientTest, CircuitBreakerFailsFast) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kDelay);
  a.setDelayMs(300);
  auto g = group(backends({a.address()}) + "    max_pending: 2\n");
  UpstreamClient client(loop_);
  std::vector<Result<UpstreamResponse>> results;
  std::vector<std::chrono::steady_clock::time_point> when;
  for (int i = 0; i < 3; ++i) {
    client.call(*g, post(), [&](Result<UpstreamResponse> r) {
      results.push_back(std::move(r));
      when.push_back(std::chrono::steady_clock::now());
    });
  }
  ASSERT_TRUE(runUntil(loop_, [&] { return results.size() == 3; }));
  ASSERT_FALSE(results[0]);  // the third call, refused at once
  EXPECT_EQ(results[0].error().code, Errc::kUnavailable);
  EXPECT_EQ(results[0].error().message, "circuit open: 2 pending");
  EXPECT_TRUE(results[1]);
  EXPECT_TRUE(results[2]);
  EXPECT_LT(when[0] + 200ms, when[1]);
  EXPECT_EQ(client.pending("g"), 0u);
}

TEST_F(UpstreamClientTest, QueuesAtMaxConnections) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kDelay);
  a.setDelayMs(30);
  auto g = group(backends({a.address()}) + "    max_connections: 1\n");
  UpstreamClient client(loop_);
  int ok = 0;
  int done = 0;
  for (int i = 0; i < 4; ++i) {
    client.call(*g, post(), [&](Result<UpstreamResponse> r) {
      ++done;
      ok += r && r->status == 200 ? 1 : 0;
    });
  }
  ASSERT_TRUE(runUntil(loop_, [&] { return done == 4; }));
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(a.requests(), 4);
}

TEST_F(UpstreamClientTest, PassiveEjectionAndReadmission) {
  TestBackend a("a");
  TestBackend b("b");
  a.setMode(TestBackend::Mode::kError);
  auto g = group(backends({a.address(), b.address()}) +
                 "    retries: 0\n    passive: {consecutive_failures: 2, ejection_time: 300ms}\n");
  UpstreamClient client(loop_);
  std::map<std::string, int> by_body;
  for (int i = 0; i < 4; ++i) {  // a, b, a (ejected now), b
    auto r = callSync(client, *g, post());
    ASSERT_TRUE(r);
    ++by_body[r->body];
  }
  EXPECT_EQ(a.requests(), 2);
  EXPECT_EQ(g->backends[0].state->ejections.load(), 1u);
  EXPECT_FALSE(g->backends[0].state->available(steadyMs()));
  for (int i = 0; i < 6; ++i) {
    auto r = callSync(client, *g, post());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "b");
  }
  EXPECT_EQ(a.requests(), 2);
  a.setMode(TestBackend::Mode::kOk);
  runUntil(loop_, [] { return false; }, 350ms);
  int to_a = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = callSync(client, *g, post());
    ASSERT_TRUE(r);
    to_a += r->body == "a" ? 1 : 0;
  }
  EXPECT_EQ(to_a, 2);
}

TEST_F(UpstreamClientTest, NoHealthyBackend) {
  TestBackend a("a");
  auto g = group(backends({a.address()}));
  g->backends[0].state->healthy.store(false);
  UpstreamClient client(loop_);
  auto r = callSync(client, *g, get());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kUnavailable);
  EXPECT_EQ(r.error().message, "no healthy backend in group g");
  EXPECT_EQ(a.requests(), 0);
}

TEST_F(UpstreamClientTest, ConsistentHashSticksAKeyToOneBackend) {
  TestBackend a("a");
  TestBackend b("b");
  TestBackend c("c");
  auto g = group(backends({a.address(), b.address(), c.address()}) +
                 "    policy: consistent_hash\n");
  UpstreamClient client(loop_);
  std::map<std::string, std::string> first;
  std::map<std::string, int> spread;
  for (int round = 0; round < 3; ++round) {
    for (int u = 0; u < 12; ++u) {
      const std::string key = "user-" + std::to_string(u);
      auto r = callSync(client, *g, get(key));
      ASSERT_TRUE(r);
      if (round == 0) {
        first[key] = r->body;
        ++spread[r->body];
      } else {
        EXPECT_EQ(r->body, first[key]) << key;
      }
    }
  }
  EXPECT_GE(spread.size(), 2u);
  // Taking a key's backend out moves that key elsewhere; others stay.
  const std::string moved_key = "user-0";
  const size_t owner = first[moved_key] == "a" ? 0 : first[moved_key] == "b" ? 1 : 2;
  g->backends[owner].state->healthy.store(false);
  for (int u = 0; u < 12; ++u) {
    const std::string key = "user-" + std::to_string(u);
    auto r = callSync(client, *g, get(key));
    ASSERT_TRUE(r);
    if (first[key] == first[moved_key]) {
      EXPECT_NE(r->body, first[key]);
    } else {
      EXPECT_EQ(r->body, first[key]);
    }
  }
}

TEST_F(UpstreamClientTest, IdleConnectionClosedByPeerIsDropped) {
  auto a = std::make_unique<TestBackend>("a");
  auto g = group(backends({a->address()}));
  UpstreamClient client(loop_);
  ASSERT_TRUE(callSync(client, *g, get()));
  ASSERT_EQ(client.idleConnections(), 1u);
  a->stop();  // closes the server side of the idle connection
  EXPECT_TRUE(runUntil(loop_, [&] { return client.openConnections() == 0; }));
}

TEST_F(UpstreamClientTest, ConnectionCloseIsNotReused) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kCloseAfter);
  auto g = group(backends({a.address()}));
  UpstreamClient client(loop_);
  ASSERT_TRUE(callSync(client, *g, get()));
  ASSERT_TRUE(callSync(client, *g, get()));
  EXPECT_EQ(a.connections(), 2);
  EXPECT_EQ(client.idleConnections(), 0u);
}

TEST_F(UpstreamClientTest, IdleTimeoutAndMaxIdle) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kDelay);
  a.setDelayMs(20);
  auto g = group(backends({a.address()}) + "    max_idle: 1\n    idle_timeout: 100ms\n");
  UpstreamClient client(loop_);
  int done = 0;
  for (int i = 0; i < 3; ++i) {
    client.call(*g, get(), [&](Result<UpstreamResponse> r) {
      EXPECT_TRUE(r);
      ++done;
    });
  }
  ASSERT_TRUE(runUntil(loop_, [&] { return done == 3; }));
  EXPECT_EQ(a.connections(), 3);
  EXPECT_EQ(client.idleConnections(), 1u);  // two closed: over max_idle
  EXPECT_TRUE(runUntil(loop_, [&] { return client.openConnections() == 0; }, 1000ms));
}

TEST_F(UpstreamClientTest, RefusesBadRequests) {
  TestBackend a("a");
  auto g = group(backends({a.address()}));
  UpstreamClient client(loop_);
  UpstreamRequest bad = get();
  bad.headers.push_back({"x-a", "1\r\nInjected: yes"});
  auto r = callSync(client, *g, bad);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kBadRequest);
  UpstreamRequest bad_path = get();
  bad_path.path = "/a b";
  EXPECT_FALSE(callSync(client, *g, bad_path));
  EXPECT_EQ(a.requests(), 0);
}

TEST_F(UpstreamClientTest, DestroyingTheClientFailsPendingCalls) {
  TestBackend a("a");
  a.setMode(TestBackend::Mode::kDelay);
  a.setDelayMs(500);
  auto g = group(backends({a.address()}));
  std::optional<Result<UpstreamResponse>> result;
  {
    UpstreamClient client(loop_);
    client.call(*g, get(), [&](Result<UpstreamResponse> r) { result = std::move(r); });
    runUntil(loop_, [&] { return a.requests() == 1; });
  }
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->error().code, Errc::kShutdown);
  EXPECT_EQ(g->backends[0].state->in_flight.load(), 0);
}

TEST_F(UpstreamClientTest, HealthCheckMarksDownAndUp) {
  TestBackend a("a");
  TestBackend b("b");
  auto g = group(backends({a.address(), b.address()}) +
                 "    health_check: {path: /health, interval: 20ms, timeout: 200ms,"
                 " healthy_threshold: 2, unhealthy_threshold: 2}\n");
  HealthChecker checker(loop_);
  checker.setUpstreams(set_);
  auto& sa = *g->backends[0].state;
  ASSERT_TRUE(runUntil(loop_, [&] { return a.healthRequests() >= 3; }));
  EXPECT_TRUE(sa.healthy.load());
  a.setHealthStatus(503);
  ASSERT_TRUE(runUntil(loop_, [&] { return !sa.healthy.load(); }));
  EXPECT_TRUE(g->backends[1].state->healthy.load());
  UpstreamClient client(loop_);
  for (int i = 0; i < 3; ++i) {
    auto r = callSync(client, *g, get());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "b");
  }
  a.setHealthStatus(200);
  ASSERT_TRUE(runUntil(loop_, [&] { return sa.healthy.load(); }));
  // A stopped backend (connection refused) goes down too.
  b.stop();
  ASSERT_TRUE(runUntil(loop_, [&] { return !g->backends[1].state->healthy.load(); }));
  checker.setUpstreams(nullptr);
  const uint64_t sent = checker.probesSent();
  runUntil(loop_, [] { return false; }, 100ms);
  EXPECT_EQ(checker.probesSent(), sent);
}

}  // namespace
}  // namespace imgate::core::upstream
