// SPDX-License-Identifier: Apache-2.0
// API keys of the push API: scopes per endpoint, app restrictions, per-key rate limits with
// simulated time, and the `keys` config (through the core's schema checker, as at load).
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/module.h"
#include "modules/proto/http_push/push_api.h"
#include "modules/proto/http_push/rate_limiter.h"
#include "test/unit/modules/proto/http_push/fake_config_view.h"
#include "test/unit/modules/proto/http_push/push_api_fakes.h"

// Defined by IMGATE_MODULE in http_push_module.cc.
const imgate::ModuleFactory& imgate_module_proto_http_push();

namespace imgate::mod::http_push {
namespace {

using namespace std::chrono_literals;
using test::http_push::FakeDispatcher;
using test::http_push::FakeExchange;
using test::http_push::FakeHub;
using test::http_push::FakeLoadContext;
using test::http_push::headerOf;
using Headers = std::vector<HttpHeader>;

constexpr ScopeSet kPush = static_cast<ScopeSet>(Scope::kPush);
constexpr ScopeSet kRead = static_cast<ScopeSet>(Scope::kRead);
constexpr ScopeSet kAdmin = static_cast<ScopeSet>(Scope::kAdmin);

ApiKey makeKey(std::string name, std::string secret, ScopeSet scopes,
               std::vector<std::string> apps = {}, RateLimiterSharedPtr limiter = nullptr) {
  return ApiKey{std::move(name), std::move(secret), scopes, std::move(apps), std::move(limiter)};
}

RateLimiterSharedPtr limiter(uint32_t count, std::chrono::milliseconds per, int64_t burst) {
  auto limit = KeyLimit::make(Rate{count, per}, burst);
  EXPECT_TRUE(limit) << limit.error().message;
  return std::make_shared<RateLimiter>(*limit);
}

rapidjson::Document parse(const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  EXPECT_FALSE(doc.HasParseError()) << body;
  return doc;
}

// ---- Fixture -------------------------------------------------------------------------------

class HttpPushKeysTest : public ::testing::Test {
 protected:
  HttpPushKeysTest() { reset(); }

  // Alice is online with one session in room "lobby": every endpoint can succeed.
  void reset() {
    hub_.users.clear();
    hub_.rooms.clear();
    SessionInfo s;
    s.id = 11;
    hub_.addSession("alice", s);
    hub_.rooms["lobby"].insert("alice");
  }

  size_t hubCalls() const {
    return hub_.pushes.size() + hub_.kicks.size() + hub_.apps.size() + hub_.rooms_called.size();
  }

  PushApiCounters counters() {
    return PushApiCounters{&requests_, &errors_,    &unauthorized_,
                           &messages_, &forbidden_, &rate_limited_};
  }

  HttpResponse send(const PushApi& api, std::string method, std::string target,
                    std::string body, Headers headers) {
    HttpRequest r;
    r.method = std::move(method);
    r.target = target;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string::npos ? std::string() : target.substr(q + 1);
    if (!body.empty()) {
      headers.push_back({"content-type", "application/json"});
    }
    r.headers = std::move(headers);
    r.body = std::move(body);
    auto ex = std::make_shared<FakeExchange>(std::move(r), hub_, dispatcher_);
    api.handle(ex);
    EXPECT_EQ(ex->responses, 1);
    return ex->response.value_or(HttpResponse{0, {}, {}});
  }

  HttpResponse as(const PushApi& api, const std::string& secret, std::string method,
                  std::string target, std::string body = "") {
    return send(api, std::move(method), std::move(target), std::move(body),
                {{"x-api-key", secret}});
  }

  static void expectError(const HttpResponse& r, int status, std::string_view error,
                          std::string_view reason_part) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto doc = parse(r.body);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error") && doc.HasMember("reason")) << r.body;
    EXPECT_EQ(doc["error"].GetString(), std::string(error)) << r.body;
    EXPECT_NE(std::string(doc["reason"].GetString()).find(reason_part), std::string::npos)
        << r.body;
  }

  FakeHub hub_;
  FakeDispatcher dispatcher_;
  Counter requests_, errors_, unauthorized_, messages_, forbidden_, rate_limited_;
};

struct Endpoint {
  const char* method;
  const char* target;
  const char* body;
  Scope needed;
};

// Every route and method of docs/http-api.md, with the scope the docs give it.
const Endpoint kEndpoints[] = {
    {"POST", "/v1/push", R"({"to":{"users":["alice"]},"data":"x"})", Scope::kPush},
    {"POST", "/v1/rooms/lobby/members", R"({"users":["alice"]})", Scope::kPush},
    {"DELETE", "/v1/rooms/lobby/members?user=alice", "", Scope::kPush},
    {"GET", "/v1/users/alice", "", Scope::kRead},
    {"GET", "/v1/rooms/lobby/members", "", Scope::kRead},
    {"GET", "/v1/stats", "", Scope::kRead},
    {"DELETE", "/v1/users/alice/sessions", "", Scope::kAdmin},
};

// ---- Scopes ----------------------------------------------------------------------------------

TEST_F(HttpPushKeysTest, EveryEndpointTimesEveryScope) {
  PushApiOptions o;
  o.keys = {makeKey("pusher", "k-push", kPush), makeKey("reader", "k-read", kRead),
            makeKey("admin", "k-admin", kAdmin), makeKey("both", "k-both", kPush | kRead)};
  const PushApi api(o, counters());
  struct Who {
    const char* secret;
    const char* name;
    ScopeSet scopes;
  };
  const Who who[] = {{"k-push", "pusher", kPush},
                     {"k-read", "reader", kRead},
                     {"k-admin", "admin", kAdmin},
                     {"k-both", "both", kPush | kRead}};
  uint64_t refused = 0;
  for (const auto& e : kEndpoints) {
    for (const auto& w : who) {
      reset();
      const size_t before = hubCalls();
      const HttpResponse r = as(api, w.secret, e.method, e.target, e.body);
      const std::string what = std::string(e.method) + " " + e.target + " as " + w.name;
      const bool allowed = (w.scopes & (static_cast<ScopeSet>(e.needed) | kAdmin)) != 0;
      if (allowed) {
        EXPECT_EQ(r.status, 200) << what << ": " << r.body;
        EXPECT_GT(hubCalls(), before) << what;
      } else {
        ++refused;
        expectError(r, 403, "permission_denied",
                    "key \"" + std::string(w.name) + "\" lacks scope \"" +
                        std::string(scopeName(e.needed)) + "\"");
        EXPECT_EQ(hubCalls(), before) << what << ": a refused request must do nothing";
      }
    }
  }
  EXPECT_EQ(forbidden_.value(), refused);
  // Refused pairs: pusher on 3 read + 1 admin route, reader on 3 push + 1 admin, both on 1.
  EXPECT_EQ(refused, 9u);
}

TEST_F(HttpPushKeysTest, ScopeReasonNamesRouteAndNeverTheKey) {
  PushApiOptions o;
  o.keys = {makeKey("reporting", "very-secret-value", kRead)};
  const PushApi api(o, counters());
  const HttpResponse r = as(api, "very-secret-value", "DELETE", "/v1/users/alice/sessions");
  expectError(r, 403, "permission_denied",
              "key \"reporting\" lacks scope \"admin\" (DELETE /v1/users/{uid}/sessions needs "
              "admin)");
  expectError(as(api, "very-secret-value", "POST", "/v1/push", R"({"to":"all","data":"x"})"),
              403, "permission_denied", "(POST /v1/push needs push or admin)");
  EXPECT_EQ(r.body.find("very-secret-value"), std::string::npos);
  EXPECT_TRUE(hub_.kicks.empty());
}

TEST_F(HttpPushKeysTest, ScopeIsCheckedAfterRouteAndMethodButBeforeTheBody) {
  PushApiOptions o;
  o.keys = {makeKey("reader", "k-read", kRead)};
  const PushApi api(o, counters());
  expectError(as(api, "k-read", "GET", "/v1/nowhere"), 404, "not_found", "no route");
  EXPECT_EQ(as(api, "k-read", "PUT", "/v1/push").status, 405);
  // A push with a broken body: the key may not push at all, so 403 comes first.
  expectError(as(api, "k-read", "POST", "/v1/push", "{broken"), 403, "permission_denied",
              "lacks scope \"push\"");
}

TEST_F(HttpPushKeysTest, OldStyleKeysHaveEveryScopeBesideNewKeys) {
  PushApiOptions o;
  o.api_keys = {"legacy"};
  o.keys = {makeKey("reader", "k-read", kRead)};
  const PushApi api(o, counters());
  for (const auto& e : kEndpoints) {
    reset();
    EXPECT_EQ(as(api, "legacy", e.method, e.target, e.body).status, 200) << e.target;
  }
  EXPECT_EQ(as(api, "k-read", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(as(api, "k-read", "POST", "/v1/push", kEndpoints[0].body).status, 403);
  expectError(as(api, "nope", "GET", "/v1/stats"), 401, "unauthenticated", "invalid api key");
}

TEST_F(HttpPushKeysTest, AuthorizationHeaderWinsWhenBothCarryValidKeys) {
  PushApiOptions o;
  o.keys = {makeKey("reader", "k-read", kRead), makeKey("admin", "k-admin", kAdmin)};
  const PushApi api(o, counters());
  EXPECT_EQ(send(api, "GET", "/v1/stats", "",
                 {{"authorization", "Bearer k-read"}, {"x-api-key", "k-admin"}})
                .status,
            200);
  expectError(send(api, "DELETE", "/v1/users/alice/sessions", "",
                   {{"authorization", "Bearer k-read"}, {"x-api-key", "k-admin"}}),
              403, "permission_denied", "\"reader\"");
  // A wrong Authorization key next to a valid X-API-Key: the valid one is used.
  EXPECT_EQ(send(api, "DELETE", "/v1/users/alice/sessions", "",
                 {{"authorization", "Bearer wrong"}, {"x-api-key", "k-admin"}})
                .status,
            200);
}

TEST_F(HttpPushKeysTest, AnonymousRequestsKeepEveryScope) {
  PushApiOptions o;
  o.allow_anonymous = true;
  o.keys = {makeKey("reader", "k-read", kRead, {"shop"}, limiter(1, 1s, 1))};
  const PushApi api(o, counters());
  for (const auto& e : kEndpoints) {
    reset();
    EXPECT_EQ(send(api, e.method, e.target, e.body, {}).status, 200) << e.target;
  }
  // A key that is sent is still bound by its scopes.
  EXPECT_EQ(as(api, "k-read", "POST", "/v1/push", kEndpoints[0].body).status, 403);
}

// ---- Apps --------------------------------------------------------------------------------------

TEST_F(HttpPushKeysTest, AppsRestrictEveryWayOfNamingTheApp) {
  PushApiOptions o;
  o.default_app = "default";
  o.keys = {makeKey("shop-only", "k-shop", kAdmin, {"shop", "shop-eu"})};
  const PushApi api(o, counters());

  EXPECT_EQ(as(api, "k-shop", "GET", "/v1/stats?app=shop").status, 200);
  EXPECT_EQ(as(api, "k-shop", "GET", "/v1/stats?app=shop-eu").status, 200);
  expectError(as(api, "k-shop", "GET", "/v1/stats?app=news"), 403, "permission_denied",
              "key \"shop-only\" may not use app \"news\"");
  // No app named: default_app applies, and it is not in the list.
  expectError(as(api, "k-shop", "GET", "/v1/stats"), 403, "permission_denied", "\"default\"");
  expectError(as(api, "k-shop", "GET", "/v1/users/alice?app=news"), 403, "permission_denied",
              "news");
  expectError(as(api, "k-shop", "GET", "/v1/rooms/lobby/members?app=news"), 403,
              "permission_denied", "news");

  const size_t calls = hubCalls();
  // App in the query, in the body, per message in a batch.
  expectError(as(api, "k-shop", "POST", "/v1/push?app=news", R"({"to":"all","data":"x"})"), 403,
              "permission_denied", "news");
  expectError(as(api, "k-shop", "POST", "/v1/push?app=shop",
                 R"({"to":"all","data":"x","app":"news"})"),
              403, "permission_denied", "news");
  expectError(as(api, "k-shop", "POST", "/v1/push",
                 R"({"app":"shop","messages":[{"to":"all","data":"a"},)"
                 R"({"to":"all","data":"b","app":"news"}]})"),
              403, "permission_denied", "news");
  expectError(as(api, "k-shop", "POST", "/v1/rooms/lobby/members?app=shop",
                 R"({"users":["alice"],"app":"news"})"),
              403, "permission_denied", "news");
  expectError(as(api, "k-shop", "DELETE", "/v1/rooms/lobby/members?app=news&user=alice"), 403,
              "permission_denied", "news");
  expectError(as(api, "k-shop", "DELETE", "/v1/users/alice/sessions?app=news"), 403,
              "permission_denied", "news");
  EXPECT_EQ(hubCalls(), calls) << "a refused request must not reach the hub";

  EXPECT_EQ(as(api, "k-shop", "POST", "/v1/push",
               R"({"app":"shop","messages":[{"to":"all","data":"a"},)"
               R"({"to":"all","data":"b","app":"shop-eu"}]})")
                .status,
            200);
  ASSERT_EQ(hub_.pushes.size(), 2u);
  EXPECT_EQ(hub_.pushes[1].app, "shop-eu");
  EXPECT_EQ(as(api, "k-shop", "DELETE", "/v1/users/alice/sessions?app=shop").status, 200);
  EXPECT_EQ(forbidden_.value(), 10u);
}

// ---- Rate limits -----------------------------------------------------------------------------

TEST_F(HttpPushKeysTest, RateLimitWith429AndRetryAfter) {
  PushApiOptions o;
  o.keys = {makeKey("slow", "k-slow", kAdmin, {}, limiter(2, 1s, 2)),
            makeKey("free", "k-free", kAdmin)};
  const PushApi api(o, counters());
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 200);
  const HttpResponse r = as(api, "k-slow", "GET", "/v1/stats");
  expectError(r, 429, "resource_exhausted", "rate limit of key \"slow\" exceeded (2/s burst 2)");
  EXPECT_EQ(headerOf(r, "retry-after").value_or(""), "1");
  const auto doc = parse(r.body);
  ASSERT_TRUE(doc.HasMember("retry_after"));
  EXPECT_EQ(doc["retry_after"].GetInt64(), 1);
  EXPECT_EQ(rate_limited_.value(), 1u);
  // Other keys have their own bucket (or none).
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(as(api, "k-free", "GET", "/v1/stats").status, 200);
  }
  // One token every 500ms.
  dispatcher_.now_ += 499ms;
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 429);
  dispatcher_.now_ += 1ms;
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 429);
  // A long quiet time fills the bucket to the burst, not beyond.
  dispatcher_.now_ += 1h;
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(as(api, "k-slow", "GET", "/v1/stats").status, 429);
  EXPECT_EQ(rate_limited_.value(), 4u);
}

TEST_F(HttpPushKeysTest, RetryAfterIsRoundedUpToWholeSeconds) {
  PushApiOptions o;
  o.keys = {makeKey("hourly", "k", kAdmin, {}, limiter(1, 10'000ms, 1))};
  const PushApi api(o, counters());
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(headerOf(as(api, "k", "GET", "/v1/stats"), "retry-after").value_or(""), "10");
  dispatcher_.now_ += 8'500ms;
  EXPECT_EQ(headerOf(as(api, "k", "GET", "/v1/stats"), "retry-after").value_or(""), "2");
  dispatcher_.now_ += 1'499ms;
  EXPECT_EQ(headerOf(as(api, "k", "GET", "/v1/stats"), "retry-after").value_or(""), "1");
}

TEST_F(HttpPushKeysTest, ClockGoingBackwardsEarnsNothing) {
  PushApiOptions o;
  o.keys = {makeKey("k", "k", kAdmin, {}, limiter(1, 1s, 1))};
  const PushApi api(o, counters());
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 200);
  dispatcher_.now_ -= 5s;  // another worker's cached clock
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 429);
  dispatcher_.now_ += 5s + 999ms;
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 429);
  dispatcher_.now_ += 1ms;
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 200);
}

TEST_F(HttpPushKeysTest, BatchCostsOneTokenPerMessage) {
  PushApiOptions o;
  o.keys = {makeKey("k", "k", kPush, {}, limiter(5, 1s, 5))};
  const PushApi api(o, counters());
  const std::string three =
      R"({"messages":[{"to":"all","data":"a"},{"to":"all","data":"b"},{"to":"all","data":"c"}]})";
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", three).status, 200);
  EXPECT_EQ(hub_.pushes.size(), 3u);
  // 2 tokens left: a batch of 3 is refused whole, costs nothing, and says when 3 are back
  // (one more token takes 200ms).
  const HttpResponse r = as(api, "k", "POST", "/v1/push", three);
  expectError(r, 429, "resource_exhausted", "rate limit");
  EXPECT_EQ(headerOf(r, "retry-after").value_or(""), "1");
  EXPECT_EQ(hub_.pushes.size(), 3u);
  // The refused batch gave its tokens back: two single pushes still pass.
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", R"({"to":"all","data":"x"})").status, 200);
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", R"({"to":"all","data":"x"})").status, 200);
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", R"({"to":"all","data":"x"})").status, 429);
  dispatcher_.now_ += 600ms;  // 3 tokens
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", three).status, 200);
  EXPECT_EQ(hub_.pushes.size(), 8u);
}

TEST_F(HttpPushKeysTest, BatchLargerThanTheBurstIs413) {
  PushApiOptions o;
  o.keys = {makeKey("small", "k", kPush, {}, limiter(100, 1s, 2))};
  const PushApi api(o, counters());
  const std::string three =
      R"({"messages":[{"to":"all","data":"a"},{"to":"all","data":"b"},{"to":"all","data":"c"}]})";
  expectError(as(api, "k", "POST", "/v1/push", three), 413, "message_too_big",
              "batch of 3 messages is more than the burst 2 of key \"small\"");
  EXPECT_TRUE(hub_.pushes.empty());
  const std::string two = R"({"messages":[{"to":"all","data":"a"},{"to":"all","data":"b"}]})";
  dispatcher_.now_ += 1s;
  EXPECT_EQ(as(api, "k", "POST", "/v1/push", two).status, 200);
}

TEST_F(HttpPushKeysTest, BadRequestsCostATokenRefusalsDoNot) {
  PushApiOptions o;
  o.keys = {makeKey("k", "k", kRead | kPush, {"shop"}, limiter(2, 1s, 2))};
  const PushApi api(o, counters());
  // 403 for scope: no token taken.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(as(api, "k", "DELETE", "/v1/users/alice/sessions?app=shop").status, 403);
  }
  // 400 for a broken body: one token each, so a key sending garbage is limited too.
  EXPECT_EQ(as(api, "k", "POST", "/v1/push?app=shop", "{broken").status, 400);
  EXPECT_EQ(as(api, "k", "POST", "/v1/push?app=shop", "{broken").status, 400);
  EXPECT_EQ(as(api, "k", "POST", "/v1/push?app=shop", "{broken").status, 429);
}

TEST_F(HttpPushKeysTest, UnauthenticatedRequestsAreNotCountedAgainstKeys) {
  PushApiOptions o;
  o.keys = {makeKey("k", "k", kRead, {}, limiter(1, 1s, 1))};
  const PushApi api(o, counters());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(as(api, "wrong", "GET", "/v1/stats").status, 401);
  }
  EXPECT_EQ(as(api, "k", "GET", "/v1/stats").status, 200);
}

// ---- The bucket itself -------------------------------------------------------------------------

TEST(HttpPushRateLimiter, LimitValidation) {
  EXPECT_FALSE(KeyLimit::make(Rate{0, 1000ms}, 1));
  EXPECT_FALSE(KeyLimit::make(Rate{1, 0ms}, 1));
  EXPECT_FALSE(KeyLimit::make(Rate{1, 86'400'001ms}, 1));
  EXPECT_FALSE(KeyLimit::make(Rate{1, 1000ms}, 0));
  EXPECT_TRUE(KeyLimit::make(Rate{1, 86'400'000ms}, 1));
  // burst * period must fit the bucket's integer credit.
  EXPECT_TRUE(KeyLimit::make(Rate{4'000'000'000u, 1000ms}, 4'000'000'000));
  const auto big = KeyLimit::make(Rate{1, 86'400'000ms}, 1'000'000'000);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("too large"), std::string::npos);
  EXPECT_EQ(KeyLimit::make(Rate{1000, 1000ms}, 2000)->describe(), "1000/s burst 2000");
  EXPECT_EQ(KeyLimit::make(Rate{5, 60'000ms}, 5)->describe(), "5/m burst 5");
  EXPECT_EQ(KeyLimit::make(Rate{3, 1500ms}, 1)->describe(), "3/1500ms burst 1");
}

TEST(HttpPushRateLimiter, TakeGiveAndWait) {
  const Clock::time_point t0{std::chrono::seconds(50)};
  RateLimiter bucket(*KeyLimit::make(Rate{10, 1000ms}, 4));
  EXPECT_EQ(bucket.available(t0), 4);
  EXPECT_TRUE(bucket.tryTake(3, t0).taken);
  EXPECT_EQ(bucket.available(t0), 1);
  auto refused = bucket.tryTake(2, t0);
  EXPECT_FALSE(refused.taken);
  EXPECT_EQ(refused.wait, 100ms);  // one token per 100ms
  EXPECT_EQ(bucket.available(t0), 1) << "a refused take takes nothing";
  EXPECT_FALSE(bucket.tryTake(5, t0).taken);
  EXPECT_EQ(bucket.tryTake(5, t0).wait, std::chrono::microseconds::max());
  EXPECT_TRUE(bucket.tryTake(0, t0).taken);
  bucket.giveBack(100);
  EXPECT_EQ(bucket.available(t0), 4) << "giving back is capped at the burst";
  EXPECT_TRUE(bucket.tryTake(4, t0).taken);
  EXPECT_EQ(bucket.available(t0 + 250ms), 2);
  EXPECT_EQ(bucket.tryTake(1, t0 + 50ms).wait, 50ms);
  // Fractions of a token are kept between calls.
  EXPECT_FALSE(bucket.tryTake(1, t0 + 99ms).taken);
  EXPECT_TRUE(bucket.tryTake(1, t0 + 100ms).taken);
}

TEST(HttpPushRateLimiter, LongIdleDoesNotOverflow) {
  RateLimiter bucket(*KeyLimit::make(Rate{4'000'000'000u, 1000ms}, 4'000'000'000));
  const Clock::time_point t0{};
  EXPECT_TRUE(bucket.tryTake(4'000'000'000, t0).taken);
  const Clock::time_point later = t0 + std::chrono::hours(24 * 365 * 100);
  EXPECT_EQ(bucket.available(later), 4'000'000'000);
}

TEST(HttpPushRateLimiter, RetryAfterSeconds) {
  EXPECT_EQ(retryAfterSeconds(0us), 1);
  EXPECT_EQ(retryAfterSeconds(1us), 1);
  EXPECT_EQ(retryAfterSeconds(1'000'000us), 1);
  EXPECT_EQ(retryAfterSeconds(1'000'001us), 2);
  EXPECT_EQ(retryAfterSeconds(std::chrono::microseconds::max()), 2147483647);
}

TEST(HttpPushRateLimiter, SharedLimiterSurvivesWhileItsOwnerLives) {
  const KeyLimit a = *KeyLimit::make(Rate{1, 1000ms}, 1);
  const KeyLimit b = *KeyLimit::make(Rate{2, 1000ms}, 1);
  auto first = sharedLimiter("loc", "secret", a);
  EXPECT_EQ(sharedLimiter("loc", "secret", a), first);
  EXPECT_NE(sharedLimiter("loc", "secret", b), first) << "another limit: another bucket";
  EXPECT_NE(sharedLimiter("loc2", "secret", a), first) << "another location";
  EXPECT_NE(sharedLimiter("loc", "secret2", a), first) << "another key";
  // The length prefixes keep ("lo", "csecret") apart from ("loc", "secret").
  EXPECT_NE(sharedLimiter("lo", "csecret", a), first);
  std::weak_ptr<RateLimiter> weak = first;
  first.reset();
  EXPECT_TRUE(weak.expired()) << "the registry must not keep a bucket alive";
}

// ---- Config ------------------------------------------------------------------------------------

const ProtocolFactory& factory() {
  return static_cast<const ProtocolFactory&>(imgate_module_proto_http_push());
}

// Validates `yaml` with the core's schema checker, then compiles it, as a config load does.
Result<ProtocolConfigPtr> compileYaml(const std::string& yaml, FakeLoadContext& context) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(doc.error()));
  }
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, factory().schema(), "cfg", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, "schema: " + core::config::formatErrors(errors));
  }
  return factory().compile(*section, context);
}

std::string loadError(const std::string& yaml) {
  FakeLoadContext context;
  auto r = compileYaml(yaml, context);
  return r ? std::string() : r.error().message;
}

// A folder for key files, removed with the object.
class KeyDir {
 public:
  KeyDir() {
    char dir[] = "/tmp/http_push_keys_XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  ~KeyDir() {
    for (const auto& f : files_) {
      std::remove(f.c_str());
    }
    rmdir(dir_.c_str());
  }
  void write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    files_.push_back(path);
  }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
  std::vector<std::string> files_;
};

class HttpPushKeysConfigTest : public HttpPushKeysTest {
 protected:
  HttpResponse call(const ProtocolConfigPtr& config, const std::string& secret,
                    std::string method, std::string target, std::string body = "") {
    HttpRequest r;
    r.method = std::move(method);
    r.target = target;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string::npos ? std::string() : target.substr(q + 1);
    r.headers = {{"authorization", "Bearer " + secret}};
    if (!body.empty()) {
      r.headers.push_back({"content-type", "application/json"});
    }
    r.body = std::move(body);
    auto ex = std::make_shared<FakeExchange>(std::move(r), hub_, dispatcher_);
    config->onHttpRequest(ex);
    return ex->response.value_or(HttpResponse{0, {}, {}});
  }
};

TEST(HttpPushKeysConfig, SchemaIsWellFormed) {
  core::config::Errors errors;
  core::config::checkSchema(factory().schema(), "proto.http_push", errors);
  EXPECT_TRUE(errors.empty()) << core::config::formatErrors(errors);
}

TEST_F(HttpPushKeysConfigTest, KeysFromConfigAndKeyFile) {
  KeyDir dir;
  dir.write("read.key", "  file-secret-1\n");
  FakeLoadContext context;
  context.config_dir = dir.path();
  auto config = compileYaml(R"(
api_keys: [ "old-style-key" ]
keys:
  - { key: "k1", scopes: [push], rate: 1000/s, burst: 2000, apps: [shop] }
  - { key_file: read.key, scopes: [read], name: reporting }
  - { key: "k3", scopes: [read, push], rate: 1/s }
)",
                            context);
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(call(*config, "old-style-key", "DELETE", "/v1/users/alice/sessions").status, 200);
  EXPECT_EQ(call(*config, "k1", "POST", "/v1/push?app=shop", R"({"to":"all","data":"x"})").status,
            200);
  expectError(call(*config, "k1", "GET", "/v1/stats?app=shop"), 403, "permission_denied",
              "key \"keys[0]\" lacks scope \"read\"");
  expectError(call(*config, "k1", "POST", "/v1/push", R"({"to":"all","data":"x"})"), 403,
              "permission_denied", "may not use app \"default\"");
  EXPECT_EQ(call(*config, "file-secret-1", "GET", "/v1/stats").status, 200);
  expectError(call(*config, "file-secret-1", "POST", "/v1/push", R"({"to":"all","data":"x"})"),
              403, "permission_denied", "key \"reporting\"");
  EXPECT_EQ(call(*config, "  file-secret-1", "GET", "/v1/stats").status, 200)
      << "the header value is trimmed, as the file is";
  // burst defaults to the rate's count.
  EXPECT_EQ(call(*config, "k3", "GET", "/v1/stats").status, 200);
  const HttpResponse limited = call(*config, "k3", "GET", "/v1/stats");
  expectError(limited, 429, "resource_exhausted", "1/s burst 1");
  EXPECT_EQ(context.stats_.value("http_push_forbidden"), 3u);
  EXPECT_EQ(context.stats_.value("http_push_rate_limited"), 1u);
  for (const auto& [level, line] : context.logger.lines) {
    EXPECT_EQ(line.find("file-secret-1"), std::string::npos) << line;
    EXPECT_EQ(line.find("k1"), std::string::npos) << line;
  }
}

TEST_F(HttpPushKeysConfigTest, ReloadKeepsTheBucketUnlessTheLimitChanged) {
  FakeLoadContext context;
  const std::string yaml = "keys: [ { key: k, scopes: [read], rate: 1/m } ]";
  auto first = compileYaml(yaml, context);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(call(*first, "k", "GET", "/v1/stats").status, 200);
  EXPECT_EQ(call(*first, "k", "GET", "/v1/stats").status, 429);
  // The reloaded config (the old one is still alive, as during a reload) shares the bucket.
  auto second = compileYaml(yaml, context);
  ASSERT_TRUE(second);
  EXPECT_EQ(call(*second, "k", "GET", "/v1/stats").status, 429);
  // A changed rate starts a fresh bucket.
  auto third = compileYaml("keys: [ { key: k, scopes: [read], rate: 2/m } ]", context);
  ASSERT_TRUE(third);
  EXPECT_EQ(call(*third, "k", "GET", "/v1/stats").status, 200);
  // Another location with the same key has its own bucket.
  context.instance = "other:/v1/";
  auto other = compileYaml(yaml, context);
  ASSERT_TRUE(other);
  EXPECT_EQ(call(*other, "k", "GET", "/v1/stats").status, 200);
}

TEST(HttpPushKeysConfig, ConfigErrors) {
  KeyDir dir;
  dir.write("empty.key", " \n\n");
  dir.write("two.key", "line-one\nline-two\n");
  dir.write("big.key", std::string(5000, 'x'));
  dir.write("ok.key", "file-key\n");
  const auto inDir = [&](const std::string& yaml) {
    FakeLoadContext context;
    context.config_dir = dir.path();
    auto r = compileYaml(yaml, context);
    return r ? std::string() : r.error().message;
  };
  struct Case {
    std::string yaml;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"keys: [ { key: k, scopes: [push, wrtie] } ]",
       "keys[0].scopes: unknown scope \"wrtie\" (expected push, read or admin)"},
      {"keys: [ { key: k, scopes: [Push] } ]", "unknown scope \"Push\""},
      {"keys: [ { key: \"\", scopes: [push] } ]", "keys[0]"},
      {"keys: [ { key: \" k\", scopes: [push] } ]", "keys[0].key starts or ends with whitespace"},
      {"keys: [ { key: \"a\\x01b\", scopes: [push] } ]", "keys[0].key contains control characters"},
      {"keys: [ { scopes: [push] } ]", "keys[0]: give exactly one of key and key_file"},
      {"keys: [ { key: k, key_file: ok.key, scopes: [push] } ]", "(both given)"},
      {"keys: [ { key: k } ]", "scopes"},
      {"keys: [ { key: k, scopes: [] } ]", "scopes"},
      {"keys: [ { key: a, scopes: [push] }, { key: a, scopes: [read] } ]",
       "keys[1] is the same key as keys[0]"},
      {"api_keys: [a]\nkeys: [ { key: a, scopes: [read] } ]",
       "keys[0] is the same key as api_keys[0]"},
      {"api_keys: [a, b, a]", "api_keys[2] is the same key as api_keys[0]"},
      {"api_keys: [\"\"]", "api_keys[0] is empty"},
      {"keys: [ { key: a, scopes: [push], name: x }, { key: b, scopes: [push], name: x } ]",
       "keys[1] has the same name \"x\" as keys[0]"},
      {"keys: [ { key: a, scopes: [push], burst: 5 } ]", "keys[0]: burst needs a rate"},
      {"keys: [ { key: a, scopes: [push], rate: 0/s } ]", "rate"},
      {"keys: [ { key: a, scopes: [push], rate: 1/d, burst: 1000000000 } ]", "too large"},
      {"keys: [ { key: a, scopes: [push], apps: [] } ]", "keys[0].apps is empty"},
      {"keys: [ { key: a, scopes: [push], apps: [shop, \"\"] } ]", "apps has an empty name"},
      {"keys: [ { key: a, scopes: [push], colour: red } ]", "colour"},
      {"keys: [ { key_file: missing.key, scopes: [push] } ]", "cannot read key_file"},
      {"keys: [ { key_file: empty.key, scopes: [push] } ]", "empty.key\" is empty"},
      {"keys: [ { key_file: two.key, scopes: [push] } ]", "has several lines"},
      {"keys: [ { key_file: big.key, scopes: [push] } ]", "larger than 4096 bytes"},
      {"keys: [ { key: file-key, scopes: [push] }, { key_file: ok.key, scopes: [read] } ]",
       "keys[1] is the same key as keys[0]"},
      {"keys: []", "api_keys needs at least one key, or keys one entry"},
  };
  for (const auto& c : cases) {
    const std::string message = inDir(c.yaml);
    EXPECT_NE(message.find(c.message_part), std::string::npos)
        << c.yaml << "\n  got: " << (message.empty() ? "(loaded)" : message);
    EXPECT_EQ(message.find("file-key"), std::string::npos) << "a key leaked: " << message;
  }
  EXPECT_EQ(inDir("keys: [ { key_file: ok.key, scopes: [admin] } ]"), "");
  EXPECT_EQ(loadError("keys: [ { key: a, scopes: [push, read, admin], rate: 10/s } ]"), "");
}

TEST(HttpPushKeysConfig, AnonymousWithScopedKeysWarns) {
  FakeLoadContext context;
  auto r = compileYaml("allow_anonymous: true\nkeys: [ { key: a, scopes: [read] } ]", context);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(context.logger.lines.size(), 1u);
  EXPECT_EQ(context.logger.lines[0].first, LogLevel::kWarn);
  EXPECT_NE(context.logger.lines[0].second.find("every scope"), std::string::npos);
}

}  // namespace
}  // namespace imgate::mod::http_push
