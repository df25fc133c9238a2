// SPDX-License-Identifier: Apache-2.0
#include "modules/proto/websocket/ws_handshake.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "imgate/sdk/module.h"
#include "test/unit/modules/proto/websocket/fakes.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

// Defined by IMGATE_MODULE in ws_module.cc.
const imgate::ModuleFactory& imgate_module_proto_websocket();

namespace imgate::mod::websocket {
namespace {

using testing::FakeConfigView;
using testing::FakeHttpExchange;
using testing::FakeLoadContext;

std::string hex(const std::array<uint8_t, 20>& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

std::optional<std::string> findHeader(const HttpResponse& r, std::string_view name) {
  for (const HttpHeader& h : r.headers) {
    if (http_detail::iequals(h.name, name)) {
      return h.value;
    }
  }
  return std::nullopt;
}

HttpRequest upgradeRequest() {
  HttpRequest r;
  r.method = "GET";
  r.target = "/ws";
  r.path = "/ws";
  r.version_minor = 1;
  r.headers = {
      {"host", "server.example.com"},
      {"upgrade", "websocket"},
      {"connection", "Upgrade"},
      {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
      {"origin", "http://example.com"},
      {"sec-websocket-version", "13"},
  };
  return r;
}

void setHeader(HttpRequest& r, std::string name, std::optional<std::string> value) {
  std::erase_if(r.headers, [&](const HttpHeader& h) { return h.name == name; });
  if (value) {
    r.headers.push_back({std::move(name), std::move(*value)});
  }
}

// ---- Crypto helpers -------------------------------------------------------------------------

TEST(WsHandshakeTest, Sha1Vectors) {
  EXPECT_EQ(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(hex(sha1(std::string(1000000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // Padding boundaries: 55, 56 and 64 bytes.
  EXPECT_EQ(hex(sha1(std::string(55, 'a'))), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  EXPECT_EQ(hex(sha1(std::string(56, 'a'))), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  EXPECT_EQ(hex(sha1(std::string(64, 'a'))), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

TEST(WsHandshakeTest, Base64Vectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode(std::string("\xFB\xFF", 2)), "+/8=");
}

TEST(WsHandshakeTest, AcceptKeyRfcExample) {
  // RFC 6455 §1.3 (the task brief's "...ZaK+xOo4=" is a typo; Python's hashlib agrees with this).
  EXPECT_EQ(computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshakeTest, ClientKeyValidation) {
  EXPECT_TRUE(isValidClientKey("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(isValidClientKey("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_TRUE(isValidClientKey("+/+/+/+/+/+/+/+/+/+/+w=="));
  EXPECT_FALSE(isValidClientKey(""));
  EXPECT_FALSE(isValidClientKey("dGhlIHNhbXBsZSBub25jZQ="));     // 23 chars
  EXPECT_FALSE(isValidClientKey("dGhlIHNhbXBsZSBub25jZQ==="));   // 25 chars
  EXPECT_FALSE(isValidClientKey("dGhlIHNhbXBsZSBub25jZQAA"));    // 18 bytes, no padding
  EXPECT_FALSE(isValidClientKey("dGhlIHNhbXBsZSBub25jZ*=="));    // bad alphabet
  EXPECT_FALSE(isValidClientKey("dGhlIHNhbXBsZSBub25j===="));    // 15 bytes
  EXPECT_FALSE(isValidClientKey("short"));
}

// ---- evaluateUpgrade ------------------------------------------------------------------------

TEST(WsHandshakeTest, GoodRequestGets101) {
  auto result = evaluateUpgrade(upgradeRequest(), WsSettings{});
  ASSERT_TRUE(result.has_value());
  const HttpResponse& r = result->response;
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(findHeader(r, "upgrade"), "websocket");
  EXPECT_EQ(findHeader(r, "connection"), "Upgrade");
  EXPECT_EQ(findHeader(r, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  EXPECT_FALSE(findHeader(r, "sec-websocket-protocol"));
  EXPECT_FALSE(findHeader(r, "sec-websocket-extensions"));
  EXPECT_FALSE(result->codec.deflate.enabled);
  EXPECT_EQ(result->codec.max_message, kDefaultMaxMessage);
  EXPECT_TRUE(result->offered_subprotocols.empty());
}

TEST(WsHandshakeTest, LenientHeaderForms) {
  HttpRequest r = upgradeRequest();
  setHeader(r, "upgrade", "WebSocket");
  setHeader(r, "connection", "keep-alive, Upgrade");
  setHeader(r, "sec-websocket-key", "  dGhlIHNhbXBsZSBub25jZQ==  ");
  r.version_minor = 2;
  auto result = evaluateUpgrade(r, WsSettings{});
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(findHeader(result->response, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

struct BadCase {
  std::string name;
  std::function<void(HttpRequest&)> mutate;
  int status;
  std::string reason_part;
  std::optional<std::pair<std::string, std::string>> header;
};

TEST(WsHandshakeTest, BadRequestsGetTheirStatus) {
  const std::vector<BadCase> cases = {
      {"post", [](HttpRequest& r) { r.method = "POST"; }, 405, "method",
       std::pair<std::string, std::string>{"allow", "GET"}},
      {"head", [](HttpRequest& r) { r.method = "HEAD"; }, 405, "method", std::nullopt},
      {"plain_get", [](HttpRequest& r) { setHeader(r, "upgrade", std::nullopt); }, 426,
       "upgrade required", std::pair<std::string, std::string>{"upgrade", "websocket"}},
      {"upgrade_h2c", [](HttpRequest& r) { setHeader(r, "upgrade", "h2c"); }, 400, "upgrade",
       std::nullopt},
      {"http10", [](HttpRequest& r) { r.version_minor = 0; }, 400, "http/1.1", std::nullopt},
      {"no_connection", [](HttpRequest& r) { setHeader(r, "connection", std::nullopt); }, 400,
       "connection", std::nullopt},
      {"connection_close", [](HttpRequest& r) { setHeader(r, "connection", "close"); }, 400,
       "connection", std::nullopt},
      {"version_8", [](HttpRequest& r) { setHeader(r, "sec-websocket-version", "8"); }, 426,
       "version", std::pair<std::string, std::string>{"sec-websocket-version", "13"}},
      {"no_version",
       [](HttpRequest& r) { setHeader(r, "sec-websocket-version", std::nullopt); }, 426,
       "version", std::pair<std::string, std::string>{"sec-websocket-version", "13"}},
      {"no_key", [](HttpRequest& r) { setHeader(r, "sec-websocket-key", std::nullopt); }, 400,
       "missing sec-websocket-key", std::nullopt},
      {"short_key", [](HttpRequest& r) { setHeader(r, "sec-websocket-key", "c2hvcnQ="); }, 400,
       "invalid sec-websocket-key", std::nullopt},
      {"two_keys",
       [](HttpRequest& r) {
         r.headers.push_back({"sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA=="});
       },
       400, "invalid sec-websocket-key", std::nullopt},
      {"no_host", [](HttpRequest& r) { setHeader(r, "host", std::nullopt); }, 400, "host",
       std::nullopt},
  };
  for (const BadCase& c : cases) {
    HttpRequest r = upgradeRequest();
    c.mutate(r);
    auto result = evaluateUpgrade(r, WsSettings{});
    ASSERT_FALSE(result.has_value()) << c.name;
    const HttpResponse& resp = result.error();
    EXPECT_EQ(resp.status, c.status) << c.name;
    EXPECT_EQ(findHeader(resp, "content-type"), "application/json") << c.name;
    EXPECT_EQ(resp.body.rfind(R"({"error":"bad_request","reason":")", 0), 0u) << c.name;
    EXPECT_NE(resp.body.find(c.reason_part), std::string::npos) << c.name << ": " << resp.body;
    if (c.header) {
      EXPECT_EQ(findHeader(resp, c.header->first), c.header->second) << c.name;
    }
  }
}

TEST(WsHandshakeTest, SubprotocolSelection) {
  WsSettings settings;
  settings.subprotocols = {"chat.v2", "chat.v1"};
  struct Case {
    std::vector<std::string> headers;
    std::string selected;
    std::vector<std::string> offered;
  };
  const std::vector<Case> cases = {
      {{"chat.v1, chat.v2"}, "chat.v1", {"chat.v1", "chat.v2"}},  // the client's order wins
      {{"bearer.eyJhbGciOi, chat.v2"}, "chat.v2", {"bearer.eyJhbGciOi", "chat.v2"}},
      {{"bearer.eyJhbGciOi"}, "", {"bearer.eyJhbGciOi"}},
      {{"x", " chat.v2 "}, "chat.v2", {"x", "chat.v2"}},  // several headers
      {{"Chat.V1"}, "", {"Chat.V1"}},                     // case-sensitive
      {{" , ,"}, "", {}},
  };
  for (const Case& c : cases) {
    HttpRequest r = upgradeRequest();
    for (const std::string& h : c.headers) {
      r.headers.push_back({"sec-websocket-protocol", h});
    }
    auto result = evaluateUpgrade(r, settings);
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(result->subprotocol, c.selected);
    EXPECT_EQ(result->offered_subprotocols, c.offered);
    const auto echoed = findHeader(result->response, "sec-websocket-protocol");
    if (c.selected.empty()) {
      EXPECT_FALSE(echoed.has_value());
    } else {
      EXPECT_EQ(echoed, c.selected);
    }
  }
  // Nothing configured: offers are passed on, never echoed.
  HttpRequest r = upgradeRequest();
  r.headers.push_back({"sec-websocket-protocol", "bearer.token, chat.v1"});
  auto result = evaluateUpgrade(r, WsSettings{});
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(findHeader(result->response, "sec-websocket-protocol"));
  EXPECT_EQ(result->offered_subprotocols, (std::vector<std::string>{"bearer.token", "chat.v1"}));
}

TEST(WsHandshakeTest, DeflateNegotiatedIntoCodecOptions) {
  WsSettings settings;
  settings.max_message = 1000;
  settings.compress_min_size = 10;
  settings.compression_level = 4;
  settings.deflate.server_max_window_bits = 12;
  HttpRequest r = upgradeRequest();
  r.headers.push_back(
      {"sec-websocket-extensions", "foo, permessage-deflate; server_max_window_bits=8"});
  r.headers.push_back({"sec-websocket-extensions",
                       "permessage-deflate; client_max_window_bits; server_max_window_bits=14"});
  auto result = evaluateUpgrade(r, settings);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(findHeader(result->response, "sec-websocket-extensions"),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
  EXPECT_TRUE(result->codec.deflate.enabled);
  EXPECT_EQ(result->codec.deflate.server_max_window_bits, 12);
  EXPECT_TRUE(result->codec.deflate.client_no_context_takeover);
  EXPECT_EQ(result->codec.max_message, 1000u);
  EXPECT_EQ(result->codec.compress_min_size, 10u);
  EXPECT_EQ(result->codec.compression_level, 4);

  settings.deflate.enabled = false;
  result = evaluateUpgrade(r, settings);
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(findHeader(result->response, "sec-websocket-extensions"));
  EXPECT_FALSE(result->codec.deflate.enabled);
}

// ---- ProtocolConfig and module --------------------------------------------------------------

TEST(WsHandshakeTest, ConfigUpgradesWithAWorkingCodec) {
  WsSettings settings;
  settings.subprotocols = {"chat"};
  Counter upgrades;
  Counter rejected;
  Counter deflate;
  WsProtocolConfig config(settings, WsCounters{&upgrades, &rejected, &deflate});
  HttpRequest r = upgradeRequest();
  r.headers.push_back({"sec-websocket-protocol", "bearer.x, chat"});
  r.headers.push_back({"sec-websocket-extensions", "permessage-deflate"});
  auto exchange = std::make_shared<FakeHttpExchange>(r);
  config.onHttpRequest(exchange);
  ASSERT_TRUE(exchange->upgraded);
  EXPECT_FALSE(exchange->response.has_value());
  EXPECT_EQ(exchange->accept.status, 101);
  EXPECT_EQ(findHeader(exchange->accept, "sec-websocket-protocol"), "chat");
  EXPECT_EQ(exchange->subprotocols, (std::vector<std::string>{"bearer.x", "chat"}));
  ASSERT_TRUE(exchange->codec);
  testing::FakeSink sink;
  testing::FakeOut out;
  Result<size_t> n =
      exchange->codec->decode(testing::clientFrame(testing::kFin | 0x1, "hi"), sink, out);
  ASSERT_TRUE(n.has_value());
  ASSERT_EQ(sink.messages.size(), 1u);
  EXPECT_EQ(sink.messages[0].data(), "hi");
  EXPECT_EQ(upgrades.value(), 1u);
  EXPECT_EQ(deflate.value(), 1u);
  EXPECT_EQ(rejected.value(), 0u);

  HttpRequest bad = upgradeRequest();
  bad.method = "PUT";
  auto refused = std::make_shared<FakeHttpExchange>(bad);
  config.onHttpRequest(refused);
  EXPECT_FALSE(refused->upgraded);
  ASSERT_TRUE(refused->response.has_value());
  EXPECT_EQ(refused->response->status, 405);
  EXPECT_EQ(rejected.value(), 1u);
}

TEST(WsHandshakeTest, ModuleSchemaIsComplete) {
  const ModuleFactory& factory = imgate_module_proto_websocket();
  EXPECT_EQ(factory.name(), "proto.websocket");
  EXPECT_EQ(factory.kind(), ModuleKind::kProtocol);
  std::vector<std::string> keys;
  for (const ParamSpec& spec : factory.schema()) {
    keys.emplace_back(spec.key);
    EXPECT_FALSE(spec.help.empty()) << spec.key;
    if (spec.type == ParamType::kInt) {
      const int64_t v = std::stoll(std::string(spec.default_value));
      EXPECT_GE(v, spec.min) << spec.key;
      EXPECT_LE(v, spec.max) << spec.key;
    }
  }
  for (const char* required :
       {"max_message", "subprotocols", "permessage_deflate", "server_no_context_takeover",
        "client_no_context_takeover", "server_max_window_bits", "compress_min_size",
        "compression_level", "session_deflater"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), required), keys.end()) << required;
  }
}

TEST(WsHandshakeTest, ModuleCompilesDefaultsAndOverrides) {
  const auto& factory = static_cast<const ProtocolFactory&>(imgate_module_proto_websocket());
  FakeLoadContext context;
  {
    FakeConfigView view(factory.schema(), {});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    EXPECT_EQ(config.settings().max_message, 64u * 1024);
    EXPECT_TRUE(config.settings().deflate.enabled);
    EXPECT_FALSE(config.settings().deflate.server_no_context_takeover);
    EXPECT_TRUE(config.settings().deflate.client_no_context_takeover);
    EXPECT_EQ(config.settings().deflate.server_max_window_bits, 15);
    EXPECT_EQ(config.settings().compress_min_size, 64u);
    EXPECT_EQ(config.settings().compression_level, 1);
    EXPECT_FALSE(config.settings().session_deflater);
    EXPECT_TRUE(config.settings().subprotocols.empty());

    auto exchange = std::make_shared<FakeHttpExchange>(upgradeRequest());
    config.onHttpRequest(exchange);
    EXPECT_TRUE(exchange->upgraded);
    EXPECT_EQ(context.counters["websocket_upgrades"]->value(), 1u);
  }
  {
    FakeConfigView view(factory.schema(),
                        {{"max_message", "1MiB"},
                         {"permessage_deflate", "false"},
                         {"server_max_window_bits", "10"},
                         {"compression_level", "6"}},
                        {{"subprotocols", {"mqtt", "chat.v1"}}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_TRUE(compiled.has_value());
    const auto& config = static_cast<const WsProtocolConfig&>(**compiled);
    EXPECT_EQ(config.settings().max_message, 1u << 20);
    EXPECT_FALSE(config.settings().deflate.enabled);
    EXPECT_EQ(config.settings().deflate.server_max_window_bits, 10);
    EXPECT_EQ(config.settings().compression_level, 6);
    EXPECT_EQ(config.settings().subprotocols, (std::vector<std::string>{"mqtt", "chat.v1"}));
  }
  {
    FakeConfigView view(factory.schema(), {}, {{"subprotocols", {"chat v1"}}});
    Result<ProtocolConfigPtr> compiled = factory.compile(view, context);
    ASSERT_FALSE(compiled.has_value());
    EXPECT_EQ(compiled.error().code, Errc::kInvalidConfig);
    EXPECT_NE(compiled.error().message.find("subprotocols"), std::string::npos);
  }
}

}  // namespace
}  // namespace imgate::mod::websocket
