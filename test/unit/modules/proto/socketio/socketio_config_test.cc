// SPDX-License-Identifier: Apache-2.0
// proto.socketio's schema and request router: configs go through the core's real YAML loader and
// schema checker, then the module's compile(); requests go to a recording HttpExchange, whose
// poll/feed callbacks the tests complete as the core would.
#include "modules/proto/socketio/socketio_config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "modules/proto/socketio/sio_probe_codec.h"
#include "test/unit/modules/proto/socketio/sio_test_support.h"
#include "test/unit/modules/proto/websocket/fakes.h"

const imgate::ModuleFactory& imgate_module_proto_socketio();

namespace imgate::mod::socketio {
namespace {

using websocket::testing::FakeHttpExchange;
using websocket::testing::FakeLoadContext;
using namespace std::chrono_literals;

const ProtocolFactory& factory() {
  return static_cast<const ProtocolFactory&>(imgate_module_proto_socketio());
}

// The compiled config for a YAML section, or the schema / compile error.
struct Compiled {
  std::shared_ptr<const SocketIoConfig> config;
  std::string error;
};

// `context`, when given, must outlive the config.
Compiled compileYaml(const std::string& yaml, FakeLoadContext* context = nullptr) {
  Compiled out;
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    out.error = core::config::formatErrors(doc.error());
    return out;
  }
  core::config::Errors errs;
  auto view = core::config::validate(doc->root, factory().schema(), "sio", errs);
  if (!errs.empty()) {
    out.error = "schema: " + core::config::formatErrors(errs);
    return out;
  }
  // Counters live as long as the process in the core: the config keeps pointers to them.
  static FakeLoadContext shared;
  auto compiled = factory().compile(*view, context != nullptr ? *context : shared);
  if (!compiled) {
    out.error = compiled.error().message;
    return out;
  }
  out.config = std::dynamic_pointer_cast<const SocketIoConfig>(*compiled);
  EXPECT_TRUE(out.config);
  return out;
}

std::shared_ptr<const SocketIoConfig> load(const std::string& yaml = "{}") {
  Compiled c = compileYaml(yaml);
  EXPECT_TRUE(c.config) << c.error;
  return c.config;
}

constexpr std::string_view kSid = "AAAAAAAAAAAAAAAAAAAA";

HttpRequest request(std::string method, std::string query,
                    std::vector<HttpHeader> headers = {}, std::string body = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = "/socket.io/";
  r.query = std::move(query);
  r.target = r.path + "?" + r.query;
  r.headers = {{"host", "gw.test"}};
  r.headers.insert(r.headers.end(), headers.begin(), headers.end());
  r.body = std::move(body);
  r.peer = "127.0.0.1:40000";
  return r;
}

HttpRequest wsRequest(std::string query) {
  return request("GET", std::move(query),
                 {{"upgrade", "websocket"},
                  {"connection", "Upgrade"},
                  {"sec-websocket-version", "13"},
                  {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}});
}

std::optional<std::string> header(const HttpResponse& r, std::string_view name) {
  for (const HttpHeader& h : r.headers) {
    if (http_detail::iequals(h.name, name)) {
      return h.value;
    }
  }
  return std::nullopt;
}

bool hasCorsHeaders(const HttpResponse& r) {
  for (const HttpHeader& h : r.headers) {
    if (h.name.rfind("access-control-", 0) == 0) {
      return true;
    }
  }
  return false;
}

std::shared_ptr<FakeHttpExchange> handle(const SocketIoConfig& config, HttpRequest r) {
  auto exchange = std::make_shared<FakeHttpExchange>(std::move(r));
  config.onHttpRequest(exchange);
  return exchange;
}

// The error an exchange was answered with: "<status> <body>".
std::string answered(const FakeHttpExchange& exchange) {
  if (!exchange.response) {
    return "<no response>";
  }
  return std::to_string(exchange.response->status) + " " + exchange.response->body;
}

const std::string kUnknownSid = R"(400 {"code":1,"message":"Session ID unknown"})";
const std::string kBadRequest = R"(400 {"code":3,"message":"Bad request"})";

// ---- Schema and compile ---------------------------------------------------------------------

TEST(SocketIoConfigSchema, DefaultsMatchTheDocs) {
  core::config::Errors errs;
  core::config::checkSchema(factory().schema(), "sio", errs);
  EXPECT_TRUE(errs.empty()) << core::config::formatErrors(errs);
  auto config = load();
  ASSERT_TRUE(config);
  const SioHttpSettings& http = config->httpSettings();
  EXPECT_TRUE(http.polling);
  EXPECT_TRUE(http.websocket);
  EXPECT_TRUE(http.allow_upgrades);
  EXPECT_TRUE(http.cors_origins.empty());
  EXPECT_FALSE(http.cors_credentials);
  EXPECT_EQ(http.cors_max_age.count(), 0);
  EXPECT_EQ(config->pollWait(), 45s);
  EXPECT_TRUE(config->handshakeInBand());
}

TEST(SocketIoConfigSchema, EveryNewKeyIsRead) {
  auto config = load(R"(
transports: [polling]
allow_upgrades: false
cors_origins: ["https://App.Test", "http://localhost:3000"]
cors_credentials: true
cors_max_age: 24h
ping_interval: 10s
ping_timeout: 5s
)");
  ASSERT_TRUE(config);
  const SioHttpSettings& http = config->httpSettings();
  EXPECT_TRUE(http.polling);
  EXPECT_FALSE(http.websocket);
  EXPECT_FALSE(http.allow_upgrades);
  EXPECT_EQ(http.cors_origins,
            (std::vector<std::string>{"https://app.test", "http://localhost:3000"}));
  EXPECT_TRUE(http.cors_credentials);
  EXPECT_EQ(http.cors_max_age.count(), 86'400);
  EXPECT_EQ(config->pollWait(), 15s);
}

TEST(SocketIoConfigSchema, BadValuesAreRefused) {
  struct Case {
    std::string yaml;
    std::string error_part;
  };
  const std::vector<Case> cases = {
      {"transports: [polling, flash]", "unknown transport \"flash\""},
      {"transports: []", "schema:"},
      {"cors_origins: [\"https://app.test/\"]", "is not \"*\" or an origin"},
      {"cors_origins: [\"app.test\"]", "is not \"*\" or an origin"},
      {"cors_origins: [\"https://\"]", "is not \"*\" or an origin"},
      {"cors_origins: [\"https://a.test, https://b.test\"]", "is not \"*\" or an origin"},
      {"cors_origins: [\"*\"]\ncors_credentials: true", "browsers refuse credentials"},
      {"cors_max_age: 25h", "schema:"},
      {"namespaces: [\"/a\\u001eb\"]", "control characters"},
  };
  for (const Case& c : cases) {
    Compiled compiled = compileYaml(c.yaml);
    EXPECT_FALSE(compiled.config) << c.yaml;
    EXPECT_NE(compiled.error.find(c.error_part), std::string::npos)
        << c.yaml << " -> " << compiled.error;
  }
}

TEST(SocketIoConfigSchema, CorsOriginNormalization) {
  EXPECT_EQ(normalizeCorsOrigin("*").value_or(""), "*");
  EXPECT_EQ(normalizeCorsOrigin("HTTPS://App.Test:8443").value_or(""), "https://app.test:8443");
  EXPECT_EQ(normalizeCorsOrigin("capacitor://localhost").value_or(""), "capacitor://localhost");
  for (std::string_view bad : {"", "null", "https://a.test/path", "https://a.test?x", "://a",
                               "https://a .test", "https://a.test\x7f"}) {
    EXPECT_FALSE(normalizeCorsOrigin(bad)) << bad;
  }
}

// ---- Routing --------------------------------------------------------------------------------

TEST(SocketIoConfigRouting, EngineIoErrors) {
  auto config = load();
  EXPECT_EQ(answered(*handle(*config, request("GET", "transport=polling"))),
            R"(400 {"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(answered(*handle(*config, request("GET", "EIO=3&transport=polling"))),
            R"(400 {"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(answered(*handle(*config, request("GET", "EIO=4&transport=flashsocket"))),
            R"(400 {"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(answered(*handle(*config, request("GET", "EIO=4"))),
            R"(400 {"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(answered(*handle(*config, request("POST", "EIO=4&transport=polling", {}, "40"))),
            R"(400 {"code":2,"message":"Bad handshake method"})");
  EXPECT_EQ(answered(*handle(*config, request("GET", "EIO=4&transport=polling&sid=nope"))),
            kUnknownSid);
  EXPECT_EQ(answered(*handle(*config, wsRequest("EIO=4&transport=websocket&sid=x%2Fy"))),
            kUnknownSid);
  auto response = handle(*config, request("GET", "EIO=4&transport=x"))->response;
  ASSERT_TRUE(response);
  EXPECT_EQ(header(*response, "content-type"), "application/json");
  EXPECT_FALSE(hasCorsHeaders(*response));
}

TEST(SocketIoConfigRouting, TransportsNotConfiguredAreUnknown) {
  auto polling_only = load("transports: [polling]");
  EXPECT_EQ(answered(*handle(*polling_only, wsRequest("EIO=4&transport=websocket"))),
            R"(400 {"code":0,"message":"Transport unknown"})");
  auto ws_only = load("transports: [websocket]");
  EXPECT_EQ(answered(*handle(*ws_only, request("GET", "EIO=4&transport=polling"))),
            R"(400 {"code":0,"message":"Transport unknown"})");
}

TEST(SocketIoConfigRouting, PollingHandshakeDetachesANewSession) {
  FakeLoadContext context;
  Compiled compiled = compileYaml("ping_interval: 10s\nping_timeout: 5s", &context);
  ASSERT_TRUE(compiled.config) << compiled.error;
  auto exchange = handle(*compiled.config, request("GET", "EIO=4&transport=polling&t=abc"));
  ASSERT_TRUE(exchange->detached);
  EXPECT_FALSE(exchange->response);
  EXPECT_TRUE(plausibleSessionId(exchange->key)) << exchange->key;
  EXPECT_EQ(exchange->accept.status, 200);
  EXPECT_EQ(header(exchange->accept, "content-type"), "text/plain; charset=UTF-8");
  EXPECT_EQ(header(exchange->accept, "cache-control"), "no-store");
  EXPECT_FALSE(hasCorsHeaders(exchange->accept));
  EXPECT_EQ(exchange->accept.body,
            R"(0{"sid":")" + exchange->key +
                R"(","upgrades":["websocket"],"pingInterval":10000,"pingTimeout":5000,)"
                R"("maxPayload":1000000})");
  auto* codec = dynamic_cast<SioCodec*>(exchange->codec.get());
  ASSERT_NE(codec, nullptr);
  EXPECT_EQ(codec->transport(), SioTransport::kPolling);
  EXPECT_EQ(context.counters["socketio_handshakes"]->value(), 1u);

  auto second = handle(*compiled.config, request("GET", "EIO=4&transport=polling"));
  EXPECT_NE(second->key, exchange->key) << "every session gets its own sid";
}

TEST(SocketIoConfigRouting, NoUpgradesOffered) {
  for (const std::string yaml : {"allow_upgrades: false", "transports: [polling]"}) {
    auto config = load(yaml);
    auto exchange = handle(*config, request("GET", "EIO=4&transport=polling"));
    ASSERT_TRUE(exchange->detached) << yaml;
    EXPECT_NE(exchange->accept.body.find(R"("upgrades":[])"), std::string::npos) << yaml;
  }
}

TEST(SocketIoConfigRouting, PollingHandshakeInEngineIoMode) {
  auto config = load("mode: engineio");
  EXPECT_FALSE(config->handshakeInBand());
  auto exchange = handle(*config, request("GET", "EIO=4&transport=polling&token=t"));
  ASSERT_TRUE(exchange->detached);
  auto* codec = dynamic_cast<SioCodec*>(exchange->codec.get());
  ASSERT_NE(codec, nullptr);
  EXPECT_EQ(codec->transport(), SioTransport::kPolling);
  EXPECT_FALSE(codec->acksDownlink());
}

TEST(SocketIoConfigRouting, PollGetsTheSessionsPackets) {
  auto config = load();
  const std::string query = "EIO=4&transport=polling&sid=" + std::string(kSid);
  auto exchange = handle(*config, request("GET", query));
  EXPECT_EQ(exchange->polls, 1);
  EXPECT_EQ(exchange->key, kSid);
  EXPECT_EQ(exchange->max_wait, 45s);
  ASSERT_TRUE(exchange->done);
  EXPECT_FALSE(exchange->response) << "answered only when the core calls back";
  exchange->complete(DetachedResult{DetachedResult::Status::kOk, "\x1e" "40{}\x1e" "42[\"a\"]"});
  ASSERT_TRUE(exchange->response);
  EXPECT_EQ(exchange->response->status, 200);
  EXPECT_EQ(exchange->response->body, "40{}\x1e" "42[\"a\"]");
  EXPECT_EQ(header(*exchange->response, "content-type"), "text/plain; charset=UTF-8");
  EXPECT_EQ(header(*exchange->response, "cache-control"), "no-store");

  auto empty = handle(*config, request("GET", query));
  empty->complete(DetachedResult{DetachedResult::Status::kOk, ""});
  ASSERT_TRUE(empty->response);
  EXPECT_EQ(empty->response->body, "6") << "a released poll answers a noop";

  auto unknown = handle(*config, request("GET", query));
  unknown->complete(DetachedResult{DetachedResult::Status::kUnknown, ""});
  EXPECT_EQ(answered(*unknown), kUnknownSid);

  auto overlap = handle(*config, request("GET", query));
  overlap->complete(DetachedResult{DetachedResult::Status::kOverlap, ""});
  EXPECT_EQ(answered(*overlap), kBadRequest);
}

TEST(SocketIoConfigRouting, PostFeedsTheSession) {
  FakeLoadContext context;
  Compiled compiled = compileYaml("max_payload: 2048", &context);
  ASSERT_TRUE(compiled.config);
  const SocketIoConfig& config = *compiled.config;
  const std::string query = "EIO=4&transport=polling&sid=" + std::string(kSid);
  const std::string payload = "40\x1e" "42[\"a\"]";
  auto exchange = handle(config, request("POST", query, {}, payload));
  EXPECT_EQ(exchange->feeds, 1);
  EXPECT_EQ(exchange->key, kSid);
  EXPECT_EQ(exchange->body, payload);
  ASSERT_TRUE(exchange->done);
  EXPECT_FALSE(exchange->response);
  exchange->complete(DetachedResult{DetachedResult::Status::kOk, ""});
  ASSERT_TRUE(exchange->response);
  EXPECT_EQ(exchange->response->status, 200);
  EXPECT_EQ(exchange->response->body, "ok");
  EXPECT_EQ(header(*exchange->response, "content-type"), "text/html");

  auto unknown = handle(config, request("POST", query, {}, "3"));
  unknown->complete(DetachedResult{DetachedResult::Status::kUnknown, ""});
  EXPECT_EQ(answered(*unknown), kUnknownSid);
  auto overlap = handle(config, request("POST", query, {}, "3"));
  overlap->complete(DetachedResult{DetachedResult::Status::kOverlap, ""});
  EXPECT_EQ(answered(*overlap), kBadRequest);

  auto too_big = handle(config, request("POST", query, {}, std::string(2049, '4')));
  EXPECT_EQ(too_big->feeds, 0);
  EXPECT_EQ(answered(*too_big), "413 ");
  auto just_fits = handle(config, request("POST", query, {}, std::string(2048, '4')));
  EXPECT_EQ(just_fits->feeds, 1);
  just_fits->complete(DetachedResult{DetachedResult::Status::kOk, ""});

  auto empty = handle(config, request("POST", query));
  EXPECT_EQ(empty->feeds, 0);
  EXPECT_EQ(answered(*empty), kBadRequest);
  EXPECT_EQ(context.counters["socketio_refused"]->value(), 4u);
}

TEST(SocketIoConfigRouting, OtherMethodsWithASidGet500) {
  auto config = load();
  for (const std::string method : {"PUT", "DELETE", "HEAD", "OPTIONS"}) {
    auto exchange = handle(*config, request(method, "EIO=4&transport=polling&sid=" +
                                                        std::string(kSid)));
    EXPECT_EQ(answered(*exchange), "500 ") << method;
    EXPECT_EQ(exchange->polls + exchange->feeds, 0);
  }
}

TEST(SocketIoConfigRouting, WebSocketWithoutSidIsANewSession) {
  auto config = load();
  auto exchange = handle(*config, wsRequest("EIO=4&transport=websocket"));
  ASSERT_TRUE(exchange->upgraded);
  EXPECT_EQ(exchange->accept.status, 101);
  auto* codec = dynamic_cast<SioCodec*>(exchange->codec.get());
  ASSERT_NE(codec, nullptr);
  EXPECT_EQ(codec->transport(), SioTransport::kWebSocket);
  // The open packet in a text frame: no upgrades from WebSocket.
  const std::string& frame = exchange->accept.body;
  ASSERT_GT(frame.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0x81);
  EXPECT_NE(frame.find(R"(0{"sid":")"), std::string::npos);
  EXPECT_NE(frame.find(R"("upgrades":[])"), std::string::npos);
}

TEST(SocketIoConfigRouting, WebSocketWithSidAttachesAProbe) {
  FakeLoadContext context;
  Compiled compiled = compileYaml("max_payload: 4096", &context);
  ASSERT_TRUE(compiled.config);
  auto exchange =
      handle(*compiled.config, wsRequest("EIO=4&transport=websocket&sid=" + std::string(kSid)));
  ASSERT_TRUE(exchange->attached);
  EXPECT_EQ(exchange->key, kSid);
  EXPECT_EQ(exchange->accept.status, 101);
  EXPECT_TRUE(exchange->accept.body.empty()) << "the open packet went out at the handshake";
  auto* probe = dynamic_cast<SioProbeCodec*>(exchange->codec.get());
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ(probe->wsOptions().max_message, 4096u);
  EXPECT_EQ(std::to_string(exchange->unknown.status) + " " + exchange->unknown.body,
            kUnknownSid);
  // An upgrade counts once the client commits to it ("5" after the probe), not at the request.
  EXPECT_EQ(context.counters["socketio_upgrades"]->value(), 0u);
  testing::SioSink sink;
  websocket::testing::FakeOut out;
  const std::string frames = testing::textFrame("2probe") + testing::textFrame("5");
  auto used = probe->decode(frames, sink, out);
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_EQ(*used, frames.size());
  EXPECT_EQ(sink.steps, (std::vector<TransportStep>{TransportStep::kProbe, TransportStep::kCommit}));
  EXPECT_EQ(context.counters["socketio_upgrades"]->value(), 1u);
}

TEST(SocketIoConfigRouting, UpgradeRefusals) {
  auto no_upgrades = load("allow_upgrades: false");
  auto refused =
      handle(*no_upgrades, wsRequest("EIO=4&transport=websocket&sid=" + std::string(kSid)));
  EXPECT_FALSE(refused->attached);
  EXPECT_EQ(answered(*refused), kBadRequest);
  // Without sid, WebSocket sessions still work.
  EXPECT_TRUE(handle(*no_upgrades, wsRequest("EIO=4&transport=websocket"))->upgraded);

  auto config = load();
  auto not_an_upgrade =
      handle(*config, request("GET", "EIO=4&transport=websocket&sid=" + std::string(kSid)));
  EXPECT_FALSE(not_an_upgrade->attached);
  ASSERT_TRUE(not_an_upgrade->response);
  EXPECT_EQ(not_an_upgrade->response->status, 426);
}

// ---- CORS -----------------------------------------------------------------------------------

TEST(SocketIoConfigCors, OffByDefault) {
  auto config = load();
  // OPTIONS is then an ordinary request: a handshake that is not a GET.
  auto preflight = handle(*config, request("OPTIONS", "EIO=4&transport=polling",
                                           {{"origin", "https://app.test"},
                                            {"access-control-request-method", "POST"}}));
  EXPECT_EQ(answered(*preflight), R"(400 {"code":2,"message":"Bad handshake method"})");
  EXPECT_FALSE(hasCorsHeaders(*preflight->response));
  auto handshake = handle(*config, request("GET", "EIO=4&transport=polling",
                                           {{"origin", "https://app.test"}}));
  EXPECT_FALSE(hasCorsHeaders(handshake->accept));
  EXPECT_FALSE(header(handshake->accept, "vary"));
}

TEST(SocketIoConfigCors, PreflightFromAnAllowedOrigin) {
  auto config = load(R"(
cors_origins: ["https://app.test", "https://other.test"]
cors_credentials: true
cors_max_age: 2h
)");
  // Before any Engine.IO check, as the reference's cors middleware.
  auto exchange = handle(*config, request("OPTIONS", "",
                                          {{"origin", "https://APP.test"},
                                           {"access-control-request-method", "POST"},
                                           {"access-control-request-headers", "x-token, x-app"}}));
  ASSERT_TRUE(exchange->response);
  const HttpResponse& r = *exchange->response;
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(header(r, "access-control-allow-origin"), "https://APP.test");
  EXPECT_EQ(header(r, "access-control-allow-methods"), "GET,POST");
  EXPECT_EQ(header(r, "access-control-allow-headers"), "x-token, x-app");
  EXPECT_EQ(header(r, "access-control-allow-credentials"), "true");
  EXPECT_EQ(header(r, "access-control-max-age"), "7200");
  EXPECT_EQ(header(r, "vary"), "Origin");
}

TEST(SocketIoConfigCors, DisallowedOriginGetsNoCorsHeaders) {
  auto config = load(R"(cors_origins: ["https://app.test"])");
  auto preflight = handle(*config, request("OPTIONS", "EIO=4&transport=polling",
                                           {{"origin", "https://evil.test"},
                                            {"access-control-request-method", "POST"}}));
  ASSERT_TRUE(preflight->response);
  EXPECT_EQ(preflight->response->status, 204);
  EXPECT_FALSE(hasCorsHeaders(*preflight->response));
  EXPECT_EQ(header(*preflight->response, "vary"), "Origin");

  auto handshake = handle(*config, request("GET", "EIO=4&transport=polling",
                                           {{"origin", "https://evil.test"}}));
  ASSERT_TRUE(handshake->detached) << "CORS is for browsers; the request itself is served";
  EXPECT_FALSE(hasCorsHeaders(handshake->accept));

  auto no_origin = handle(*config, request("GET", "EIO=4&transport=polling"));
  EXPECT_FALSE(hasCorsHeaders(no_origin->accept));
}

TEST(SocketIoConfigCors, PollingResponsesCarryTheHeaders) {
  auto config = load(R"(
cors_origins: ["https://app.test"]
cors_credentials: true
)");
  const std::vector<HttpHeader> origin = {{"origin", "https://app.test"}};
  auto handshake = handle(*config, request("GET", "EIO=4&transport=polling", origin));
  ASSERT_TRUE(handshake->detached);
  EXPECT_EQ(header(handshake->accept, "access-control-allow-origin"), "https://app.test");
  EXPECT_EQ(header(handshake->accept, "access-control-allow-credentials"), "true");
  EXPECT_EQ(header(handshake->accept, "vary"), "Origin");
  EXPECT_FALSE(header(handshake->accept, "access-control-allow-methods"))
      << "methods only in preflights";

  const std::string query = "EIO=4&transport=polling&sid=" + std::string(kSid);
  auto poll = handle(*config, request("GET", query, origin));
  poll->complete(DetachedResult{DetachedResult::Status::kOk, ""});
  EXPECT_EQ(header(*poll->response, "access-control-allow-origin"), "https://app.test");
  auto post = handle(*config, request("POST", query, origin, "3"));
  post->complete(DetachedResult{DetachedResult::Status::kOk, ""});
  EXPECT_EQ(header(*post->response, "access-control-allow-origin"), "https://app.test");
  // Errors too, so a page can read them.
  auto gone = handle(*config, request("GET", query, origin));
  gone->complete(DetachedResult{DetachedResult::Status::kUnknown, ""});
  EXPECT_EQ(answered(*gone), kUnknownSid);
  EXPECT_EQ(header(*gone->response, "access-control-allow-origin"), "https://app.test");
  auto bad = handle(*config, request("GET", "EIO=5&transport=polling", origin));
  EXPECT_EQ(header(*bad->response, "access-control-allow-origin"), "https://app.test");
  // Not on a 101: WebSocket is not subject to CORS.
  HttpRequest upgrade = wsRequest("EIO=4&transport=websocket");
  upgrade.headers.push_back({"origin", "https://app.test"});
  auto ws = handle(*config, upgrade);
  ASSERT_TRUE(ws->upgraded);
  EXPECT_FALSE(hasCorsHeaders(ws->accept));
}

TEST(SocketIoConfigCors, AnyOrigin) {
  auto config = load(R"(
cors_origins: ["*"]
cors_max_age: 0
)");
  auto preflight = handle(*config, request("OPTIONS", "EIO=4&transport=polling",
                                           {{"origin", "https://whoever.test"}}));
  ASSERT_TRUE(preflight->response);
  EXPECT_EQ(header(*preflight->response, "access-control-allow-origin"), "*");
  EXPECT_EQ(header(*preflight->response, "access-control-allow-methods"), "GET,POST");
  EXPECT_FALSE(header(*preflight->response, "access-control-allow-headers"));
  EXPECT_FALSE(header(*preflight->response, "access-control-max-age"));
  EXPECT_FALSE(header(*preflight->response, "access-control-allow-credentials"));
  EXPECT_FALSE(header(*preflight->response, "vary"));
  auto handshake = handle(*config, request("GET", "EIO=4&transport=polling"));
  EXPECT_EQ(header(handshake->accept, "access-control-allow-origin"), "*");
}

}  // namespace
}  // namespace imgate::mod::socketio
