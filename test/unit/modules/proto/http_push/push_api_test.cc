// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/http_push/push_api.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "imgate/sdk/module.h"
#include "test/unit/modules/proto/http_push/fake_config_view.h"
#include "test/unit/modules/proto/http_push/push_api_fakes.h"

// Defined by IMGATE_MODULE in http_push_module.cc.
const imgate::ModuleFactory& imgate_module_proto_http_push();

namespace imgate::mod::http_push {
namespace {

using test::http_push::FakeConfigView;
using test::http_push::FakeLoadContext;
using test::http_push::FakeDispatcher;
using test::http_push::FakeExchange;
using test::http_push::FakeHub;
using test::http_push::headerOf;
using test::http_push::kNowMs;

std::vector<std::string> stringArray(const rapidjson::Value& v) {
  std::vector<std::string> out;
  for (const auto& e : v.GetArray()) {
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return out;
}

using Strings = std::vector<std::string>;
using Headers = std::vector<HttpHeader>;

// ---- Fixture -------------------------------------------------------------------------------

class HttpPushApiTest : public ::testing::Test {
 protected:
  PushApiOptions opts() const {
    PushApiOptions o;
    o.api_keys = {"key-one", "key-two"};
    return o;
  }

  PushApiCounters counters() {
    return PushApiCounters{&requests_, &errors_, &unauthorized_, &messages_};
  }

  static HttpRequest makeRequest(std::string method, std::string target, std::string body,
                                 Headers headers) {
    HttpRequest r;
    r.method = std::move(method);
    r.target = target;
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string::npos ? std::string() : target.substr(q + 1);
    r.headers = std::move(headers);
    r.body = std::move(body);
    r.peer = "127.0.0.1:40000";
    return r;
  }

  // Sends one request through a PushApi built from `options`; returns the exchange so tests can
  // look at the response (absent while hub callbacks are deferred).
  std::shared_ptr<FakeExchange> send(const PushApiOptions& options, HttpRequest request) {
    PushApi api(options, counters());
    auto exchange = std::make_shared<FakeExchange>(std::move(request), hub_, dispatcher_);
    api.handle(exchange);
    return exchange;
  }

  std::shared_ptr<FakeExchange> send(std::string method, std::string target,
                                     std::string body = "", Headers extra = {}) {
    Headers headers = {{"authorization", "Bearer key-one"}};
    if (!body.empty()) {
      headers.push_back({"content-type", "application/json"});
    }
    for (auto& h : extra) {
      headers.push_back(std::move(h));
    }
    return send(opts(), makeRequest(std::move(method), std::move(target), std::move(body),
                                    std::move(headers)));
  }

  // Runs `method target` and returns the response, asserting one was sent exactly once.
  HttpResponse call(std::string method, std::string target, std::string body = "",
                    Headers extra = {}) {
    auto ex = send(std::move(method), std::move(target), std::move(body), std::move(extra));
    EXPECT_EQ(ex->responses, 1);
    return ex->response.value_or(HttpResponse{0, {}, {}});
  }

  // Parses the body (asserting JSON and content-type on every answer).
  static rapidjson::Document json(const HttpResponse& r) {
    EXPECT_EQ(headerOf(r, "content-type").value_or(""), "application/json");
    rapidjson::Document doc;
    doc.Parse(r.body.data(), r.body.size());
    EXPECT_FALSE(doc.HasParseError()) << r.body;
    return doc;
  }

  // Asserts an error answer: status, {"error": name, "reason": contains `reason_part`}.
  static void expectError(const HttpResponse& r, int status, std::string_view error,
                          std::string_view reason_part) {
    EXPECT_EQ(r.status, status) << r.body;
    const auto doc = json(r);
    ASSERT_TRUE(doc.IsObject()) << r.body;
    ASSERT_TRUE(doc.HasMember("error") && doc["error"].IsString()) << r.body;
    ASSERT_TRUE(doc.HasMember("reason") && doc["reason"].IsString()) << r.body;
    EXPECT_EQ(doc["error"].GetString(), std::string(error)) << r.body;
    EXPECT_NE(std::string(doc["reason"].GetString()).find(reason_part), std::string::npos)
        << "reason: " << doc["reason"].GetString();
  }

  FakeHub hub_;
  FakeDispatcher dispatcher_;
  Counter requests_, errors_, unauthorized_, messages_;
};

// ---- Auth ----------------------------------------------------------------------------------

TEST_F(HttpPushApiTest, MissingKeyIs401WithChallenge) {
  auto ex = send(opts(), makeRequest("GET", "/v1/stats", "", {}));
  ASSERT_TRUE(ex->response);
  expectError(*ex->response, 401, "unauthenticated", "missing api key");
  EXPECT_EQ(headerOf(*ex->response, "www-authenticate").value_or(""), R"(Bearer realm="imgate")");
  EXPECT_EQ(unauthorized_.value(), 1u);
  EXPECT_EQ(errors_.value(), 1u);
  EXPECT_EQ(requests_.value(), 1u);
  EXPECT_TRUE(hub_.apps.empty());
}

TEST_F(HttpPushApiTest, BearerAndApiKeyHeadersAreAccepted) {
  const std::vector<Headers> good = {
      {{"authorization", "Bearer key-one"}},
      {{"authorization", "bearer key-two"}},
      {{"authorization", "  BEARER    key-one  "}},
      {{"x-api-key", "key-two"}},
      {{"x-api-key", " key-one "}},
      // One good credential is enough, even next to a bad one.
      {{"authorization", "Bearer wrong"}, {"x-api-key", "key-one"}},
  };
  for (const auto& headers : good) {
    auto ex = send(opts(), makeRequest("GET", "/v1/stats", "", headers));
    ASSERT_TRUE(ex->response);
    EXPECT_EQ(ex->response->status, 200) << headers.front().value << " " << ex->response->body;
  }
  EXPECT_EQ(unauthorized_.value(), 0u);
}

TEST_F(HttpPushApiTest, BadKeysAre401) {
  const std::vector<std::pair<Headers, std::string>> bad = {
      {{{"authorization", "Bearer key-on"}}, "invalid api key"},
      {{{"authorization", "Bearer key-one1"}}, "invalid api key"},
      {{{"authorization", "Bearer KEY-ONE"}}, "invalid api key"},
      {{{"authorization", "Bearer "}}, "invalid api key"},
      {{{"x-api-key", ""}}, "invalid api key"},
      {{{"authorization", "Basic a2V5LW9uZQ=="}}, "scheme must be Bearer"},
      {{{"authorization", "key-one"}}, "scheme must be Bearer"},
  };
  for (const auto& [headers, reason] : bad) {
    auto ex = send(opts(), makeRequest("GET", "/v1/stats", "", headers));
    ASSERT_TRUE(ex->response);
    expectError(*ex->response, 401, "unauthenticated", reason);
    EXPECT_EQ(headerOf(*ex->response, "www-authenticate").value_or(""),
              R"(Bearer realm="imgate")");
  }
  EXPECT_EQ(unauthorized_.value(), bad.size());
}

TEST_F(HttpPushApiTest, AuthIsCheckedBeforeRouting) {
  auto ex = send(opts(), makeRequest("GET", "/v1/nowhere", "", {}));
  expectError(*ex->response, 401, "unauthenticated", "missing api key");
}

TEST_F(HttpPushApiTest, AnonymousMode) {
  PushApiOptions anon;
  anon.allow_anonymous = true;
  // No keys configured: anything goes, with or without credentials.
  EXPECT_EQ(send(anon, makeRequest("GET", "/v1/stats", "", {}))->response->status, 200);
  EXPECT_EQ(send(anon, makeRequest("GET", "/v1/stats", "", {{"x-api-key", "x"}}))
                ->response->status,
            200);
  // Keys configured too: no key passes, a wrong key is still refused.
  PushApiOptions mixed = opts();
  mixed.allow_anonymous = true;
  EXPECT_EQ(send(mixed, makeRequest("GET", "/v1/stats", "", {}))->response->status, 200);
  EXPECT_EQ(send(mixed, makeRequest("GET", "/v1/stats", "", {{"x-api-key", "key-two"}}))
                ->response->status,
            200);
  expectError(*send(mixed, makeRequest("GET", "/v1/stats", "", {{"x-api-key", "nope"}}))->response,
              401, "unauthenticated", "invalid api key");
}

TEST(HttpPushHelpers, ConstantTimeEquals) {
  EXPECT_TRUE(constantTimeEquals("", ""));
  EXPECT_TRUE(constantTimeEquals("secret", "secret"));
  EXPECT_FALSE(constantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(constantTimeEquals("secre", "secret"));
  EXPECT_FALSE(constantTimeEquals("secrets", "secret"));
  EXPECT_FALSE(constantTimeEquals("", "secret"));
  EXPECT_FALSE(constantTimeEquals("secret", ""));
  EXPECT_FALSE(constantTimeEquals(std::string("a\0b", 3), "a"));
}

// ---- Routing, methods, content types -------------------------------------------------------

TEST_F(HttpPushApiTest, UnknownRoutesAre404) {
  for (const char* target : {"/", "/v1", "/v1/", "/v2/push", "/v1/push/", "/v1/pushx",
                             "/v1/users", "/v1/users/", "/v1/users/a/b", "/v1/users//sessions",
                             "/v1/rooms/r", "/v1/rooms/r/members/x", "/v1/rooms//members",
                             "/v1/stats/", "v1/stats", "/V1/stats"}) {
    expectError(call("GET", target), 404, "not_found", "no route");
  }
  EXPECT_TRUE(hub_.apps.empty());
}

TEST_F(HttpPushApiTest, WrongMethodIs405WithAllow) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"GET", "/v1/push", "POST"},
      {"PUT", "/v1/push", "POST"},
      {"POST", "/v1/users/u1", "GET"},
      {"GET", "/v1/users/u1/sessions", "DELETE"},
      {"PUT", "/v1/rooms/r1/members", "GET, POST, DELETE"},
      {"PATCH", "/v1/rooms/r1/members", "GET, POST, DELETE"},
      {"DELETE", "/v1/stats", "GET"},
      {"get", "/v1/stats", "GET"},  // methods are case-sensitive (RFC 9110 §9.1)
  };
  for (const auto& [method, target, allow] : cases) {
    const auto r = call(method, target);
    expectError(r, 405, "bad_request", "not allowed");
    EXPECT_EQ(headerOf(r, "allow").value_or(""), allow) << method << " " << target;
  }
}

TEST_F(HttpPushApiTest, PostBodiesMustBeJson) {
  const std::string body = R"({"to":"all","data":"x"})";
  const auto no_type = send(opts(), makeRequest("POST", "/v1/push", body,
                                                {{"authorization", "Bearer key-one"}}));
  expectError(*no_type->response, 415, "bad_request", "missing content-type");
  for (const char* type : {"text/plain", "application/jsonx", "application/x-www-form-urlencoded",
                           "application/json; charset=latin1", "application/json;charset=utf-16"}) {
    const auto r = send(opts(), makeRequest("POST", "/v1/push", body,
                                            {{"authorization", "Bearer key-one"},
                                             {"content-type", type}}));
    expectError(*r->response, 415, "bad_request", "");
  }
  for (const char* type : {"application/json", "Application/JSON",
                           "application/json; charset=utf-8",
                           "application/json;charset=\"UTF-8\"", "application/json; foo=bar"}) {
    const auto r = send(opts(), makeRequest("POST", "/v1/push", body,
                                            {{"authorization", "Bearer key-one"},
                                             {"content-type", type}}));
    EXPECT_EQ(r->response->status, 200) << type << " " << r->response->body;
  }
  EXPECT_EQ(hub_.pushes.size(), 5u);
}

TEST_F(HttpPushApiTest, BadJsonIs400WithOffset) {
  const auto r = call("POST", "/v1/push", R"({"to":"all" "data":"x"})");
  expectError(r, 400, "bad_request", "invalid json at offset 12: ");
  expectError(call("POST", "/v1/push", R"({"to":"all","data":"x"} [])"), 400, "bad_request",
              "invalid json");
  expectError(call("POST", "/v1/push", "{\"to\":\"all\",\"data\":\"\xC3\x28\"}"), 400,
              "bad_request", "invalid json");
  expectError(call("POST", "/v1/push", R"(["to","all"])"), 400, "bad_request",
              "must be a json object");
  expectError(call("POST", "/v1/push", "\"all\""), 400, "bad_request", "must be a json object");
  // Empty body with a JSON content type: the parser's own message.
  const auto empty = send(opts(), makeRequest("POST", "/v1/push", "",
                                              {{"authorization", "Bearer key-one"},
                                               {"content-type", "application/json"}}));
  expectError(*empty->response, 400, "bad_request", "invalid json at offset 0");
  EXPECT_TRUE(hub_.pushes.empty());
}

// Well-formed bodies take a fast parse (encoding checked up front, nesting counted before
// parsing); everything else the strict parse. Both must accept and refuse the same bodies.
TEST_F(HttpPushApiTest, FastAndStrictParsesAgree) {
  // Brackets inside strings, escaped quotes among them, are not nesting.
  const std::string brackets = std::string(70, '[') + "\\\"{{{" + std::string(70, '{');
  EXPECT_EQ(call("POST", "/v1/push", R"({"to":"all","data":")" + brackets + "\"}").status, 200);
  ASSERT_EQ(hub_.pushes.size(), 1u);
  EXPECT_EQ(hub_.pushes[0].message.data(), std::string(70, '[') + "\"{{{" + std::string(70, '{'));
  // Multi-byte UTF-8 passes through unchanged.
  EXPECT_EQ(call("POST", "/v1/push", "{\"to\":\"all\",\"data\":\"h\xC3\xA9 \xF0\x9F\x98\x80\"}")
                .status,
            200);
  ASSERT_EQ(hub_.pushes.size(), 2u);
  EXPECT_EQ(hub_.pushes[1].message.data(), "h\xC3\xA9 \xF0\x9F\x98\x80");
  // Valid UTF-8, shallow, but not JSON: refused with the strict parser's offset and message.
  struct Bad {
    std::string body;
    std::string reason;
  };
  const std::vector<Bad> bad = {
      {std::string("{\"to\":\"all\",\"data\":\"a\x01z\"}"), "invalid json at offset 21: "},
      {R"({"to":"all","data":"\ud800"})", "invalid json at offset 20: "},
      {R"({"to":"all","data":"\q"})", "invalid json at offset 20: "},
      {R"({"to":"all","data":[1,]})", "invalid json at offset 22: "},
      {R"({"to":"all","data":"x"}})", "invalid json at offset 23: "},
      {R"({"to":"all","data":"x)", "invalid json at offset 21: "},
      // Invalid UTF-8 inside and outside strings, and cut inside a sequence.
      {"{\"to\":\"all\",\"data\":\"\xE2\x82\"}", "invalid json at offset 20: "},
      {"{\"to\":\"all\",\"data\":1}\xFF", "invalid json at offset 21: "},
      // Too deep and malformed: the parse error comes first, as before.
      {R"({"to":"all","data":)" + std::string(100, '[') + "x", "invalid json at offset 119: "},
  };
  for (const Bad& b : bad) {
    expectError(call("POST", "/v1/push", b.body), 400, "bad_request", b.reason);
  }
  EXPECT_EQ(hub_.pushes.size(), 2u);
}

// rapidjson 1.1 decodes a lone low surrogate escape (\udc00..\udfff) into invalid UTF-8
// instead of refusing it; such a string must never reach a client (a WebSocket client fails
// the connection on invalid UTF-8 in a text frame). Found by push_api_fuzz.
TEST_F(HttpPushApiTest, LoneSurrogateEscapesAreRefused) {
  for (const std::string body : {
           R"({"to":"all","data":"\udc00"})",
           R"({"to":"all","data":{"text":"a\udfffb"}})",
           R"({"to":"all","data":["\u00e9","\ude00"]})",
           R"({"to":"all","data":{"k\udc00":1}})",
           R"({"to":"all","event":"\udc01","data":"x"})",
           R"({"to":{"users":["\udc02"]},"data":"x"})",
       }) {
    expectError(call("POST", "/v1/push", body), 400, "bad_request", "lone UTF-16 surrogate");
  }
  // Invalid UTF-8 in the same body: the strict parse names the bad byte.
  expectError(call("POST", "/v1/push", "{\"to\":\"all\",\"data\":\"\\udc00\",\"x\":\"\xff\"}"),
              400, "bad_request", "invalid json at offset 33");
  // Valid non-ASCII text beside it changes nothing.
  expectError(call("POST", "/v1/push", "{\"to\":\"all\",\"x\":\"\xC3\xA9\",\"data\":\"\\udc00\"}"),
              400, "bad_request", "lone UTF-16 surrogate");
  EXPECT_TRUE(hub_.pushes.empty());
  // A proper pair, and escapes of ordinary characters, pass.
  ASSERT_EQ(call("POST", "/v1/push", R"({"to":"all","data":"\ud83d\ude00 \u00e9"})").status, 200);
  ASSERT_EQ(hub_.pushes.size(), 1u);
  EXPECT_EQ(hub_.pushes[0].message.data(), "\xF0\x9F\x98\x80 \xC3\xA9");
}

TEST_F(HttpPushApiTest, DeepJsonIsRefusedWithoutRecursion) {
  const std::string deep = R"({"to":"all","data":)" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  expectError(call("POST", "/v1/push", deep), 400, "bad_request", "nesting deeper than 64");
  // Exactly at the limit passes: the object itself is level 1.
  const std::string ok = R"({"to":"all","data":)" + std::string(63, '[') + std::string(63, ']') +
                         "}";
  EXPECT_EQ(call("POST", "/v1/push", ok).status, 200);
  ASSERT_EQ(hub_.pushes.size(), 1u);
  EXPECT_EQ(hub_.pushes[0].message.data(), std::string(63, '[') + std::string(63, ']'));
}

// ---- POST /v1/push -------------------------------------------------------------------------

// Ids named twice are sent once, first occurrence first, for short lists (compared pairwise)
// and long ones (a hash set) alike.
TEST_F(HttpPushApiTest, DuplicateIdsAreDroppedInOrder) {
  for (const size_t n : {2u, 8u, 9u, 40u}) {
    std::string users;
    Strings expected;
    for (size_t i = 0; i < n; ++i) {
      const std::string id = "u" + std::to_string(i);
      users += "\"" + id + "\",\"" + id + "\",";  // each twice in a row
      expected.push_back(id);
    }
    users += "\"u0\"";  // and the first once more at the end
    hub_.pushes.clear();
    ASSERT_EQ(call("POST", "/v1/push", R"({"to":{"users":[)" + users + R"(]},"data":"x"})").status,
              200);
    ASSERT_EQ(hub_.pushes.size(), 1u);
    EXPECT_EQ(hub_.pushes[0].target.ids, expected) << n;
  }
}

TEST_F(HttpPushApiTest, PushToUsers) {
  hub_.addSession("u1", {.id = 11});
  hub_.addSession("u1", {.id = 12});
  const auto r = call("POST", "/v1/push",
                      R"({"to":{"users":["u1","u2","u1"]},"data":"hello","event":"chat",)"
                      R"("id":"m-1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto doc = json(r);
  EXPECT_EQ(doc["sessions"].GetUint64(), 2u);
  EXPECT_EQ(stringArray(doc["offline"]), Strings{"u2"});
  EXPECT_EQ(doc["dropped"].GetUint64(), 0u);

  ASSERT_EQ(hub_.pushes.size(), 1u);
  const auto& call = hub_.pushes[0];
  EXPECT_EQ(call.app, "default");
  EXPECT_EQ(call.target.kind, TargetKind::kUser);
  EXPECT_EQ(call.target.ids, (Strings{"u1", "u2"}));  // duplicates removed, order kept
  const Message& m = call.message;
  EXPECT_EQ(m.kind, MessageKind::kData);
  EXPECT_EQ(m.type, PayloadType::kText);
  EXPECT_EQ(m.data(), "hello");
  EXPECT_EQ(m.event, "chat");
  EXPECT_EQ(m.id, "m-1");
  EXPECT_EQ(m.app, "default");
  EXPECT_EQ(m.to_kind, TargetKind::kUser);
  EXPECT_EQ(m.to, "");  // several ids: the target list is authoritative
  EXPECT_EQ(m.ts_ms, kNowMs);
  EXPECT_EQ(messages_.value(), 1u);
  EXPECT_EQ(errors_.value(), 0u);
}

TEST_F(HttpPushApiTest, PushTargetKinds) {
  hub_.addSession("u1", {.id = 18446744073709551615ull});
  hub_.rooms["r1"] = {"u1"};
  struct Case {
    std::string to;
    TargetKind kind;
    Strings ids;
    std::string message_to;
    uint64_t sessions;
  };
  const std::vector<Case> cases = {
      {R"({"users":["u1"]})", TargetKind::kUser, {"u1"}, "u1", 1},
      {R"({"sessions":["18446744073709551615","5"]})", TargetKind::kSession,
       {"18446744073709551615", "5"}, "", 1},
      {R"({"sessions":[18446744073709551615]})", TargetKind::kSession,
       {"18446744073709551615"}, "18446744073709551615", 1},
      {R"({"room":"r1"})", TargetKind::kRoom, {"r1"}, "r1", 1},
      {R"({"rooms":["r1","r2","r1"]})", TargetKind::kRoom, {"r1", "r2"}, "", 1},
      {R"("all")", TargetKind::kAll, {}, "", 1},
  };
  for (const auto& c : cases) {
    hub_.pushes.clear();
    const auto r = call("POST", "/v1/push", R"({"data":"x","to":)" + c.to + "}");
    ASSERT_EQ(r.status, 200) << c.to << " " << r.body;
    EXPECT_EQ(json(r)["sessions"].GetUint64(), c.sessions) << c.to;
    ASSERT_EQ(hub_.pushes.size(), 1u);
    EXPECT_EQ(hub_.pushes[0].target.kind, c.kind) << c.to;
    EXPECT_EQ(hub_.pushes[0].target.ids, c.ids) << c.to;
    EXPECT_EQ(hub_.pushes[0].message.to_kind, c.kind) << c.to;
    EXPECT_EQ(hub_.pushes[0].message.to, c.message_to) << c.to;
  }
}

TEST_F(HttpPushApiTest, NonStringDataIsSentAsCompactJsonText) {
  const auto r = call("POST", "/v1/push",
                      "{\"to\":\"all\",\"data\": {\"a\" : [1, 2.5, true, null],\n"
                      " \"b\":\"\\u00e9\"}}");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(hub_.pushes.size(), 1u);
  EXPECT_EQ(hub_.pushes[0].message.type, PayloadType::kText);
  EXPECT_EQ(hub_.pushes[0].message.data(), "{\"a\":[1,2.5,true,null],\"b\":\"\xC3\xA9\"}");
  for (const auto& [data, text] : std::vector<std::pair<std::string, std::string>>{
           {"42", "42"}, {"null", "null"}, {"false", "false"}, {"\"\"", ""},
           {"\"a\\u0000b\"", std::string("a\0b", 3)}}) {
    hub_.pushes.clear();
    ASSERT_EQ(call("POST", "/v1/push", R"({"to":"all","data":)" + data + "}").status, 200);
    EXPECT_EQ(hub_.pushes.at(0).message.data(), text) << data;
  }
}

TEST_F(HttpPushApiTest, BinaryViaBase64) {
  const auto r = call("POST", "/v1/push", R"({"to":"all","data_base64":"AAEC/w=="})");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(hub_.pushes.size(), 1u);
  EXPECT_EQ(hub_.pushes[0].message.type, PayloadType::kBinary);
  EXPECT_EQ(hub_.pushes[0].message.data(), std::string("\x00\x01\x02\xFF", 4));

  for (const char* bad : {"AAEC/w=", "A", "AA?C", "AAEC\\n/w==", "AA-_", "=AAA"}) {
    expectError(call("POST", "/v1/push",
                     std::string(R"({"to":"all","data_base64":")") + bad + "\"}"),
                400, "bad_request", "\"data_base64\" is not valid base64");
  }
  expectError(call("POST", "/v1/push", R"({"to":"all","data_base64":5})"), 400, "bad_request",
              "\"data_base64\" must be a string");
  EXPECT_EQ(hub_.pushes.size(), 1u);
}

TEST_F(HttpPushApiTest, PushValidationErrors) {
  hub_.pushes.clear();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"data":"x"})", "missing field \"to\""},
      {R"({"to":"everyone","data":"x"})", "unknown target kind \"everyone\""},
      {R"({"to":{"groups":["g"]},"data":"x"})", "unknown target kind \"groups\""},
      {R"({"to":{},"data":"x"})", "exactly one of"},
      {R"({"to":{"users":["a"],"room":"r"},"data":"x"})", "exactly one of"},
      {R"({"to":5,"data":"x"})", "must be \"all\" or an object"},
      {R"({"to":{"users":"u1"},"data":"x"})", "\"to.users\" must be an array of strings"},
      {R"({"to":{"users":[]},"data":"x"})", "\"to.users\" is empty"},
      {R"({"to":{"users":["a",7]},"data":"x"})", "\"to.users\"[1] must be a string"},
      {R"({"to":{"users":[""]},"data":"x"})", "\"to.users\"[0] is empty"},
      {R"({"to":{"sessions":["12a"]},"data":"x"})", "is not a session id"},
      {R"({"to":{"sessions":["0"]},"data":"x"})", "is not a session id"},
      {R"({"to":{"sessions":[0]},"data":"x"})", "is not a session id"},
      {R"({"to":{"sessions":[-3]},"data":"x"})", "must be a string"},
      {R"({"to":{"sessions":["18446744073709551616"]},"data":"x"})", "is not a session id"},
      {R"({"to":{"room":["r"]},"data":"x"})", "\"to.room\" must be a string"},
      {R"({"to":{"room":""},"data":"x"})", "\"to.room\" is empty"},
      {R"({"to":"all"})", "missing field \"data\""},
      {R"({"to":"all","data":"x","data_base64":"eA=="})", "not both"},
      {R"({"to":"all","data":"x","event":1})", "\"event\" must be a string"},
      {R"({"to":"all","data":"x","id":{}})", "\"id\" must be a string"},
      {R"({"to":"all","data":"x","app":true})", "\"app\" must be a string"},
      {R"({"to":"all","data":"x","app":""})", "\"app\" is empty"},
      {R"({"to":"all","data":"x","evnet":"typo"})", "unknown field \"evnet\""},
      {R"({"to":"all","data":"x","namespace":"chat"})", "\"namespace\" must start with \"/\""},
      {R"({"to":"all","data":"x","namespace":""})", "\"namespace\" must start with \"/\""},
      {R"({"to":"all","data":"x","namespace":7})", "\"namespace\" must be a string"},
  };
  for (const auto& [body, reason] : cases) {
    expectError(call("POST", "/v1/push", body), 400, "bad_request", reason);
  }
  EXPECT_TRUE(hub_.pushes.empty());
  EXPECT_EQ(messages_.value(), 0u);
  EXPECT_EQ(errors_.value(), cases.size());
}

TEST_F(HttpPushApiTest, NamespaceBecomesMeta) {
  ASSERT_EQ(call("POST", "/v1/push", R"({"to":"all","data":"x","namespace":"/chat"})").status, 200);
  ASSERT_EQ(call("POST", "/v1/push", R"({"to":"all","data":"x","namespace":"/"})").status, 200);
  ASSERT_EQ(hub_.pushes.size(), 2u);
  using Meta = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(hub_.pushes[0].message.meta, (Meta{{"nsp", "/chat"}}));
  EXPECT_TRUE(hub_.pushes[1].message.meta.empty());  // "/" is the default: nothing to carry
}

TEST_F(HttpPushApiTest, TargetListLimit) {
  PushApiOptions small = opts();
  small.max_targets = 2;
  const auto body = [](const std::string& ids) {
    return R"({"to":{"users":[)" + ids + R"(]},"data":"x"})";
  };
  const Headers headers = {{"authorization", "Bearer key-one"},
                           {"content-type", "application/json"}};
  // Counted before de-duplication: the request's size is what is bounded.
  expectError(*send(small, makeRequest("POST", "/v1/push", body(R"("a","b","a")"), headers))
                   ->response,
              413, "message_too_big", "more than max_targets 2");
  EXPECT_EQ(send(small, makeRequest("POST", "/v1/push", body(R"("a","b")"), headers))
                ->response->status,
            200);
}

TEST_F(HttpPushApiTest, AppComesFromJsonThenQueryThenDefault) {
  PushApiOptions o = opts();
  o.default_app = "main";
  const Headers headers = {{"authorization", "Bearer key-one"},
                           {"content-type", "application/json"}};
  send(o, makeRequest("POST", "/v1/push", R"({"to":"all","data":"x"})", headers));
  send(o, makeRequest("POST", "/v1/push?app=q%20app", R"({"to":"all","data":"x"})", headers));
  send(o, makeRequest("POST", "/v1/push?app=q", R"({"to":"all","data":"x","app":"j"})", headers));
  ASSERT_EQ(hub_.pushes.size(), 3u);
  EXPECT_EQ(hub_.pushes[0].app, "main");
  EXPECT_EQ(hub_.pushes[1].app, "q app");
  EXPECT_EQ(hub_.pushes[1].message.app, "q app");
  EXPECT_EQ(hub_.pushes[2].app, "j");
  EXPECT_EQ(hub_.pushes[2].message.app, "j");
  expectError(call("GET", "/v1/stats?app="), 400, "bad_request", "app is empty");
  expectError(call("GET", "/v1/stats?app=%FF"), 400, "bad_request", "not valid utf-8");
}

TEST_F(HttpPushApiTest, PushAnswersOnlyWhenHubCompletes) {
  hub_.defer = true;
  hub_.addSession("u1", {.id = 1});
  auto ex = send("POST", "/v1/push", R"({"to":{"users":["u1"]},"data":"x"})");
  EXPECT_FALSE(ex->response);
  ASSERT_EQ(hub_.deferred.size(), 1u);
  hub_.runDeferred(0);
  ASSERT_TRUE(ex->response);
  EXPECT_EQ(ex->responses, 1);
  EXPECT_EQ(ex->response->status, 200);
  EXPECT_EQ(json(*ex->response)["sessions"].GetUint64(), 1u);
}

// ---- Batches -------------------------------------------------------------------------------

TEST_F(HttpPushApiTest, BatchGathersEveryResultInOrder) {
  hub_.defer = true;
  hub_.addSession("u1", {.id = 1});
  hub_.addSession("u1", {.id = 2});
  hub_.addSession("u3", {.id = 3});
  auto ex = send("POST", "/v1/push?app=qa",
                 R"({"messages":[{"to":{"users":["u1"]},"data":"a"},)"
                 R"({"to":{"users":["u2"]},"data":"b","app":"other"},)"
                 R"({"to":"all","data_base64":"Yw=="}]})");
  ASSERT_EQ(hub_.deferred.size(), 3u);
  // Completions arrive in any order; the answer waits for the last and keeps request order.
  hub_.runDeferred(2);
  hub_.runDeferred(0);
  EXPECT_FALSE(ex->response);
  hub_.runDeferred(1);
  ASSERT_TRUE(ex->response);
  EXPECT_EQ(ex->responses, 1);
  ASSERT_EQ(ex->response->status, 200) << ex->response->body;
  const auto doc = json(*ex->response);
  const auto& results = doc["results"];
  ASSERT_EQ(results.Size(), 3u);
  EXPECT_EQ(results[0]["sessions"].GetUint64(), 2u);
  EXPECT_EQ(stringArray(results[0]["offline"]), Strings{});
  EXPECT_EQ(results[1]["sessions"].GetUint64(), 0u);
  EXPECT_EQ(stringArray(results[1]["offline"]), Strings{"u2"});
  EXPECT_EQ(results[2]["sessions"].GetUint64(), 3u);
  EXPECT_EQ(doc["sessions"].GetUint64(), 5u);

  ASSERT_EQ(hub_.pushes.size(), 3u);
  EXPECT_EQ(hub_.pushes[0].app, "qa");
  EXPECT_EQ(hub_.pushes[1].app, "other");
  EXPECT_EQ(hub_.pushes[2].message.type, PayloadType::kBinary);
  EXPECT_EQ(hub_.pushes[2].message.data(), "c");
  EXPECT_EQ(messages_.value(), 3u);
}

TEST_F(HttpPushApiTest, BatchSynchronousHubAndBatchApp) {
  const auto r = call("POST", "/v1/push?app=q",
                      R"({"app":"b","messages":[{"to":"all","data":"a"},)"
                      R"({"to":"all","data":"b","app":"c"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json(r)["results"].Size(), 2u);
  ASSERT_EQ(hub_.pushes.size(), 2u);
  EXPECT_EQ(hub_.pushes[0].app, "b");
  EXPECT_EQ(hub_.pushes[1].app, "c");
}

TEST_F(HttpPushApiTest, BatchErrorsPushNothing) {
  expectError(call("POST", "/v1/push",
                   R"({"messages":[{"to":"all","data":"a"},{"to":"all"}]})"),
              400, "bad_request", "messages[1]: missing field \"data\"");
  expectError(call("POST", "/v1/push", R"({"messages":[]})"), 400, "bad_request",
              "\"messages\" is empty");
  expectError(call("POST", "/v1/push", R"({"messages":{}})"), 400, "bad_request",
              "\"messages\" must be an array");
  expectError(call("POST", "/v1/push", R"({"messages":["x"]})"), 400, "bad_request",
              "messages[0]: a push must be a json object");
  expectError(call("POST", "/v1/push", R"({"messages":[{"to":"all","data":"a"}],"to":"all"})"),
              400, "bad_request", "unknown field \"to\"");
  expectError(call("POST", "/v1/push", R"({"messages":[{"to":"all","data":"a"}],"app":""})"),
              400, "bad_request", "\"app\" is empty");
  EXPECT_TRUE(hub_.pushes.empty());

  PushApiOptions small = opts();
  small.max_batch = 2;
  const auto r = send(small, makeRequest("POST", "/v1/push",
                                         R"({"messages":[{"to":"all","data":"a"},)"
                                         R"({"to":"all","data":"a"},{"to":"all","data":"a"}]})",
                                         {{"x-api-key", "key-one"},
                                          {"content-type", "application/json"}}));
  expectError(*r->response, 413, "message_too_big", "more than max_batch 2");
  EXPECT_TRUE(hub_.pushes.empty());
}

// ---- Users ---------------------------------------------------------------------------------

TEST_F(HttpPushApiTest, GetOnlineUser) {
  hub_.addSession("u1", {.id = 18446744073709551615ull,
                         .device = "ios",
                         .protocol = "proto.websocket",
                         .listener = "public",
                         .peer = "10.0.0.1:5000",
                         .connected_at_ms = 1700000000000,
                         .rooms = {"r1", "r2"}});
  hub_.addSession("u1", {.id = 2, .protocol = "proto.tcp_frame"});
  const auto r = call("GET", "/v1/users/u1?app=a1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"user":"u1","online":true,"sessions":[{"id":"18446744073709551615",)"
            R"("device":"ios","protocol":"proto.websocket","listener":"public",)"
            R"("peer":"10.0.0.1:5000","connected_at":1700000000000,"rooms":["r1","r2"]},)"
            R"({"id":"2","device":"","protocol":"proto.tcp_frame","listener":"","peer":"",)"
            R"("connected_at":0,"rooms":[]}]})");
  EXPECT_EQ(hub_.apps, Strings{"a1"});
}

TEST_F(HttpPushApiTest, GetOfflineUserIs200) {
  const auto r = call("GET", "/v1/users/ghost");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"user":"ghost","online":false,"sessions":[]})");
}

TEST_F(HttpPushApiTest, PathSegmentsArePercentDecoded) {
  call("GET", "/v1/users/a%2Fb%20c+d%E2%82%AC");
  call("GET", "/v1/users/100%25");
  call("GET", "/v1/users/bad%zz");  // invalid escapes are kept as they are
  EXPECT_EQ(hub_.queried_users, (Strings{"a/b c+d\xE2\x82\xAC", "100%", "bad%zz"}));
  const auto r = call("GET", "/v1/users/a%2Fb");
  EXPECT_EQ(json(r)["user"].GetString(), std::string("a/b"));

  call("GET", "/v1/rooms/room%201/members");
  EXPECT_EQ(hub_.rooms_called, Strings{"room 1"});
  expectError(call("GET", "/v1/users/%FF"), 400, "bad_request", "not valid utf-8");
  expectError(call("GET", "/v1/users/%C0%AF"), 400, "bad_request", "not valid utf-8");
}

TEST_F(HttpPushApiTest, InvalidUtf8InPathStaysValidJsonInErrors) {
  const auto r = call("GET", "/v1/nope\xFF\xFE");
  expectError(r, 404, "not_found", "no route for GET \"/v1/nope\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST_F(HttpPushApiTest, KickAllSessions) {
  hub_.addSession("u 1", {.id = 1});
  hub_.addSession("u 1", {.id = 2});
  const auto r = call("DELETE", "/v1/users/u%201/sessions?reason=bye+now&app=a2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"kicked":2})");
  ASSERT_EQ(hub_.kicks.size(), 1u);
  EXPECT_EQ(hub_.kicks[0].app, "a2");
  EXPECT_EQ(hub_.kicks[0].user, "u 1");
  EXPECT_EQ(hub_.kicks[0].session_id, 0u);
  EXPECT_EQ(hub_.kicks[0].reason, "bye now");
  // Nothing left to kick: still 200, so a retried DELETE is harmless.
  EXPECT_EQ(call("DELETE", "/v1/users/u%201/sessions").body, R"({"kicked":0})");
  EXPECT_EQ(hub_.kicks[1].reason, "");
}

TEST_F(HttpPushApiTest, KickOneSession) {
  hub_.addSession("u1", {.id = 1});
  hub_.addSession("u1", {.id = 18446744073709551615ull});
  hub_.defer = true;
  auto ex = send("DELETE", "/v1/users/u1/sessions?session=18446744073709551615");
  EXPECT_FALSE(ex->response);
  hub_.runDeferred(0);
  ASSERT_TRUE(ex->response);
  EXPECT_EQ(ex->response->body, R"({"kicked":1})");
  EXPECT_EQ(hub_.kicks[0].session_id, 18446744073709551615ull);
  hub_.defer = false;
  // The named session is gone now: 404.
  expectError(call("DELETE", "/v1/users/u1/sessions?session=18446744073709551615"), 404,
              "not_found", "no session 18446744073709551615 for user \"u1\"");
  for (const char* bad : {"0", "abc", "-1", "18446744073709551616", "", "1.5"}) {
    expectError(call("DELETE", std::string("/v1/users/u1/sessions?session=") + bad), 400,
                "bad_request", "session is not a session id");
  }
  EXPECT_EQ(hub_.kicks.size(), 2u);
}

// ---- Rooms ---------------------------------------------------------------------------------

TEST_F(HttpPushApiTest, JoinLeaveAndListMembers) {
  hub_.addSession("a", {.id = 1});
  hub_.addSession("b", {.id = 2});
  auto r = call("POST", "/v1/rooms/r1/members", R"({"users":["a","b","c","a"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"joined":["a","b"],"offline":["c"]})");

  r = call("GET", "/v1/rooms/r1/members");
  EXPECT_EQ(r.body, R"({"room":"r1","users":["a","b"]})");

  r = call("DELETE", "/v1/rooms/r1/members", R"({"users":["a","z"]})");
  EXPECT_EQ(r.body, R"({"left":["a"],"not_members":["z"]})");

  r = call("DELETE", "/v1/rooms/r1/members?user=b&user=y&user=b");
  EXPECT_EQ(r.body, R"({"left":["b"],"not_members":["y"]})");

  r = call("GET", "/v1/rooms/empty/members");
  EXPECT_EQ(r.body, R"({"room":"empty","users":[]})");
  EXPECT_EQ(hub_.apps, (Strings{"default", "default", "default", "default", "default"}));
}

TEST_F(HttpPushApiTest, MemberAppFromBodyOrQuery) {
  call("POST", "/v1/rooms/r/members?app=q", R"({"users":["a"]})");
  call("POST", "/v1/rooms/r/members?app=q", R"({"users":["a"],"app":"j"})");
  call("DELETE", "/v1/rooms/r/members?app=q&user=a");
  EXPECT_EQ(hub_.apps, (Strings{"q", "j", "q"}));
}

TEST_F(HttpPushApiTest, MemberErrors) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"POST", R"({})", "missing field \"users\""},
      {"POST", R"({"users":"a"})", "must be an array of strings"},
      {"POST", R"({"users":[]})", "\"users\" is empty"},
      {"POST", R"({"users":[1]})", "\"users\"[0] must be a string"},
      {"POST", R"({"users":["a"],"room":"x"})", "unknown field \"room\""},
      {"POST", R"({"users":["a"],"app":""})", "\"app\" is empty"},
      {"POST", R"({"users":["a"]})" " x", "invalid json"},
      {"DELETE", R"({"users":[]})", "\"users\" is empty"},
  };
  for (const auto& [method, body, reason] : cases) {
    expectError(call(method, "/v1/rooms/r/members", body), 400, "bad_request", reason);
  }
  // POST with no body at all is still a JSON body (empty): 415 first, as for any POST.
  expectError(call("POST", "/v1/rooms/r/members"), 415, "bad_request", "missing content-type");
  expectError(call("DELETE", "/v1/rooms/r/members"), 400, "bad_request", "missing users");
  expectError(call("DELETE", "/v1/rooms/r/members?user="), 400, "bad_request",
              "user is empty");
  expectError(call("DELETE", "/v1/rooms/r/members?user=%FF"), 400, "bad_request",
              "not valid utf-8");
  expectError(call("DELETE", "/v1/rooms/r/members?user=a", R"({"users":["b"]})"), 400,
              "bad_request", "not both");
  const auto no_type = send(opts(), makeRequest("DELETE", "/v1/rooms/r/members",
                                                R"({"users":["a"]})",
                                                {{"authorization", "Bearer key-one"}}));
  expectError(*no_type->response, 415, "bad_request", "missing content-type");

  PushApiOptions small = opts();
  small.max_targets = 1;
  const auto many = send(small, makeRequest("DELETE", "/v1/rooms/r/members?user=a&user=b", "",
                                            {{"authorization", "Bearer key-one"}}));
  expectError(*many->response, 413, "message_too_big", "max_targets 1");
  EXPECT_TRUE(hub_.rooms_called.empty());
}

// ---- Stats ---------------------------------------------------------------------------------

TEST_F(HttpPushApiTest, Stats) {
  const auto r = call("GET", "/v1/stats?app=tenant");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"sessions":7,"users":5,"rooms":3})");
  EXPECT_EQ(hub_.apps, Strings{"tenant"});
  EXPECT_EQ(requests_.value(), 1u);
  EXPECT_EQ(errors_.value(), 0u);
}

// ---- Helpers -------------------------------------------------------------------------------

TEST(HttpPushHelpers, Base64Table) {
  const std::vector<std::pair<std::string, std::string>> good = {
      {"", ""},        {"Zg==", "f"},     {"Zg", "f"},         {"Zm8=", "fo"},
      {"Zm8", "fo"},   {"Zm9v", "foo"},   {"Zm9vYg==", "foob"}, {"Zm9vYmE=", "fooba"},
      {"Zm9vYmFy", "foobar"}, {"+/+/", "\xFB\xFF\xBF"},
  };
  for (const auto& [in, out] : good) {
    const auto r = decodeBase64(in);
    ASSERT_TRUE(r) << in << ": " << r.error().message;
    EXPECT_EQ(*r, out) << in;
  }
  for (const char* bad : {"Z", "Zg=", "Z===", "Zm9vY", "Zm 9v", "Zm9v\n", "Zm-_", "Zg==Zg==",
                          "=", "==", "Zm9v====", "\xC3\xA9"}) {
    const auto r = decodeBase64(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::kBadRequest);
    }
  }
}

TEST(HttpPushHelpers, Base64EveryByteValue) {
  // Encode all 256 byte values (and every prefix length, so each padding case is seen).
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string raw;
  for (int i = 0; i < 256; ++i) {
    raw.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= raw.size(); len += 1) {
    const std::string_view in(raw.data(), len);
    std::string enc;
    for (size_t i = 0; i < in.size(); i += 3) {
      uint32_t v = static_cast<uint8_t>(in[i]) << 16;
      if (i + 1 < in.size()) {
        v |= static_cast<uint8_t>(in[i + 1]) << 8;
      }
      if (i + 2 < in.size()) {
        v |= static_cast<uint8_t>(in[i + 2]);
      }
      enc.push_back(kAlphabet[(v >> 18) & 63]);
      enc.push_back(kAlphabet[(v >> 12) & 63]);
      enc.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
      enc.push_back(i + 2 < in.size() ? kAlphabet[v & 63] : '=');
    }
    const auto r = decodeBase64(enc);
    ASSERT_TRUE(r) << enc;
    EXPECT_EQ(*r, in) << len;
  }
}

// ---- Factory and compile() -----------------------------------------------------------------

const ProtocolFactory& factory() {
  return dynamic_cast<const ProtocolFactory&>(imgate_module_proto_http_push());
}

TEST(HttpPushModule, FactoryAndSchema) {
  const auto& f = factory();
  EXPECT_EQ(f.name(), "proto.http_push");
  EXPECT_EQ(f.kind(), ModuleKind::kProtocol);
  std::map<std::string_view, std::string_view> defaults;
  for (const auto& spec : f.schema()) {
    defaults[spec.key] = spec.default_value;
    EXPECT_FALSE(spec.help.empty()) << spec.key;
  }
  EXPECT_EQ(defaults, (std::map<std::string_view, std::string_view>{
                          {"api_keys", ""},
                          {"keys", ""},
                          {"allow_anonymous", "false"},
                          {"default_app", "default"},
                          {"max_batch", "1000"},
                          {"max_targets", "10000"},
                          {"max_json_depth", "64"},
                      }));
}

TEST(HttpPushModule, CompileRequiresKeysUnlessAnonymous) {
  FakeLoadContext context;
  FakeConfigView none(factory().schema());
  const auto r = factory().compile(none, context);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
  EXPECT_EQ(r.error().message.rfind("api_keys needs at least one key, or keys one entry", 0), 0u);
  EXPECT_NE(r.error().message.find("allow_anonymous: true"), std::string::npos);

  FakeConfigView anon(factory().schema());
  anon.set("allow_anonymous", "true");
  EXPECT_TRUE(factory().compile(anon, context));
  ASSERT_EQ(context.logger.lines.size(), 1u);
  EXPECT_EQ(context.logger.lines[0].first, LogLevel::kWarn);

  FakeConfigView empty_key(factory().schema());
  empty_key.setList("api_keys", {"good", ""});
  const auto e = factory().compile(empty_key, context);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("api_keys[1] is empty"), std::string::npos);

  FakeConfigView spaced(factory().schema());
  spaced.setList("api_keys", {"key "});
  const auto s = factory().compile(spaced, context);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("whitespace"), std::string::npos);

  FakeConfigView no_app(factory().schema());
  no_app.setList("api_keys", {"k"}).set("default_app", "");
  EXPECT_FALSE(factory().compile(no_app, context));
}

TEST(HttpPushModule, CompiledConfigServesRequestsAndCounts) {
  FakeLoadContext context;
  FakeConfigView view(factory().schema());
  view.setList("api_keys", {"s3cret"}).set("default_app", "shop").set("max_batch", "1");
  const auto compiled = factory().compile(view, context);
  ASSERT_TRUE(compiled) << compiled.error().message;
  FakeHub hub;
  FakeDispatcher dispatcher;
  const auto run = [&](Headers headers, std::string body) {
    HttpRequest request;
    request.method = "POST";
    request.target = request.path = "/v1/push";
    request.headers = std::move(headers);
    request.body = std::move(body);
    auto ex = std::make_shared<FakeExchange>(std::move(request), hub, dispatcher);
    (*compiled)->onHttpRequest(ex);
    return ex->response.value_or(HttpResponse{0, {}, {}});
  };
  const Headers auth = {{"x-api-key", "s3cret"}, {"content-type", "application/json"}};
  EXPECT_EQ(run(auth, R"({"to":"all","data":"x"})").status, 200);
  ASSERT_EQ(hub.pushes.size(), 1u);
  EXPECT_EQ(hub.pushes[0].app, "shop");
  EXPECT_EQ(run({}, "{}").status, 401);
  EXPECT_EQ(run(auth, R"({"messages":[{"to":"all","data":"x"},{"to":"all","data":"x"}]})").status,
            413);
  EXPECT_EQ(context.stats_.value("http_push_requests"), 3u);
  EXPECT_EQ(context.stats_.value("http_push_errors"), 2u);
  EXPECT_EQ(context.stats_.value("http_push_unauthorized"), 1u);
  EXPECT_EQ(context.stats_.value("http_push_messages"), 1u);
}

}  // namespace
}  // namespace imgate::mod::http_push
