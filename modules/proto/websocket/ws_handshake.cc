// SPDX-License-Identifier: Apache-2.0
#include "ws_handshake.h"

#include "modules/common/base64.h"
#include "modules/common/json_text.h"
#include "ws_envelope.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

namespace imgate::mod::websocket {

namespace {

constexpr std::string_view kAcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

void sha1Block(uint32_t h[5], const uint8_t* block) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t{block[4 * i]} << 24) | (uint32_t{block[4 * i + 1]} << 16) |
           (uint32_t{block[4 * i + 2]} << 8) | uint32_t{block[4 * i + 3]};
  }
  for (int i = 16; i < 80; ++i) {
    w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  }
  uint32_t a = h[0];
  uint32_t b = h[1];
  uint32_t c = h[2];
  uint32_t d = h[3];
  uint32_t e = h[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f;
    uint32_t k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    const uint32_t t = rotl(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

HttpResponse errorResponse(int status, Errc code, std::string_view reason) {
  std::string body = "{\"error\":\"";
  body += errcName(code);
  body += "\",\"reason\":";
  appendJsonString(body, reason);
  body += "}";
  return HttpResponse::json(status, std::move(body));
}

HttpResponse badRequest(std::string_view reason) {
  return errorResponse(400, Errc::kBadRequest, reason);
}

void bump(Counter* counter) {
  if (counter != nullptr) {
    counter->add();
  }
}

}  // namespace

std::array<uint8_t, 20> sha1(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  while (n >= 64) {
    sha1Block(h, p);
    p += 64;
    n -= 64;
  }
  uint8_t tail[128] = {};
  std::memcpy(tail, p, n);
  tail[n] = 0x80;
  const size_t tail_len = n + 9 <= 64 ? 64 : 128;
  const uint64_t bits = uint64_t{data.size()} * 8;
  for (int i = 0; i < 8; ++i) {
    tail[tail_len - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  }
  sha1Block(h, tail);
  if (tail_len == 128) {
    sha1Block(h, tail + 64);
  }
  std::array<uint8_t, 20> digest;
  for (int i = 0; i < 5; ++i) {
    digest[4 * i] = static_cast<uint8_t>(h[i] >> 24);
    digest[4 * i + 1] = static_cast<uint8_t>(h[i] >> 16);
    digest[4 * i + 2] = static_cast<uint8_t>(h[i] >> 8);
    digest[4 * i + 3] = static_cast<uint8_t>(h[i]);
  }
  return digest;
}

std::string base64Encode(std::string_view data) { return common::base64Encode(data); }

std::string computeAcceptKey(std::string_view key) {
  std::string input(key);
  input += kAcceptGuid;
  const std::array<uint8_t, 20> digest = sha1(input);
  return base64Encode(std::string_view(reinterpret_cast<const char*>(digest.data()),
                                       digest.size()));
}

bool isValidClientKey(std::string_view key) {
  // 16 bytes encode to 22 significant characters and "==".
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
    return false;
  }
  const auto decoded = common::base64Decode(key);
  return decoded && decoded->size() == 16;
}

std::vector<std::string> offeredSubprotocols(const HttpRequest& request) {
  std::vector<std::string> offers;
  for (const HttpHeader& header : request.headers) {
    if (!http_detail::iequals(header.name, "sec-websocket-protocol")) {
      continue;
    }
    std::string_view v = header.value;
    while (true) {
      const size_t comma = v.find(',');
      const std::string_view item = http_detail::trim(v.substr(0, comma));
      if (!item.empty()) {
        offers.emplace_back(item);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      v.remove_prefix(comma + 1);
    }
  }
  return offers;
}

tl::expected<WsAccept, HttpResponse> evaluateUpgrade(const HttpRequest& request,
                                                     const WsSettings& settings) {
  if (request.method != "GET") {
    HttpResponse response = errorResponse(405, Errc::kBadRequest, "method must be GET");
    response.headers.push_back({"Allow", "GET"});
    return tl::unexpected(std::move(response));
  }
  if (!request.headerHasToken("upgrade", "websocket")) {
    if (!request.header("upgrade")) {
      HttpResponse response =
          errorResponse(426, Errc::kBadRequest, "websocket upgrade required");
      response.headers.push_back({"Upgrade", "websocket"});
      return tl::unexpected(std::move(response));
    }
    return tl::unexpected(badRequest("upgrade header must name websocket"));
  }
  if (request.version_minor < 1) {
    return tl::unexpected(badRequest("websocket requires http/1.1"));
  }
  if (!request.headerHasToken("connection", "upgrade")) {
    return tl::unexpected(badRequest("connection header must contain upgrade"));
  }
  const std::optional<std::string_view> version = request.header("sec-websocket-version");
  if (!version || http_detail::trim(*version) != "13") {
    HttpResponse response = errorResponse(426, Errc::kBadRequest,
                                          version ? "unsupported sec-websocket-version"
                                                  : "missing sec-websocket-version");
    response.headers.push_back({"Sec-WebSocket-Version", "13"});
    return tl::unexpected(std::move(response));
  }
  std::string_view key;
  size_t key_count = 0;
  std::vector<std::string_view> extensions;
  for (const HttpHeader& header : request.headers) {
    if (http_detail::iequals(header.name, "sec-websocket-key")) {
      key = http_detail::trim(header.value);
      ++key_count;
    } else if (http_detail::iequals(header.name, "sec-websocket-extensions")) {
      extensions.push_back(header.value);
    }
  }
  if (key_count != 1 || !isValidClientKey(key)) {
    return tl::unexpected(badRequest(key_count == 0 ? "missing sec-websocket-key"
                                                    : "invalid sec-websocket-key"));
  }
  if (!request.header("host")) {
    return tl::unexpected(badRequest("missing host header"));
  }

  WsAccept accept;
  accept.response.status = 101;
  accept.response.headers = {
      {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},
      {"Sec-WebSocket-Accept", computeAcceptKey(key)},
  };
  accept.offered_subprotocols = offeredSubprotocols(request);
  const std::vector<std::string>& offers = accept.offered_subprotocols;
  const auto envelope = std::find_if(offers.begin(), offers.end(), [](const std::string& offer) {
    return offer == kEnvelopeSubprotocol || offer == kBinaryEnvelopeSubprotocol;
  });
  if (settings.envelope && envelope != offers.end()) {
    // The envelope wins over the client's order: a client that offers it can speak it, and
    // it carries what the configured (application) subprotocols cannot: acks and resume.
    // Between its two forms, the client's first offer wins.
    accept.subprotocol = *envelope;
    accept.codec.envelope = *envelope == kEnvelopeSubprotocol;
    accept.codec.binary_envelope = !accept.codec.envelope;
  } else {
    for (const std::string& offer : offers) {
      if (std::find(settings.subprotocols.begin(), settings.subprotocols.end(), offer) !=
          settings.subprotocols.end()) {
        accept.subprotocol = offer;
        break;
      }
    }
  }
  if (!accept.subprotocol.empty()) {
    accept.response.headers.push_back({"Sec-WebSocket-Protocol", accept.subprotocol});
  }
  accept.codec.max_message = settings.max_message;
  accept.codec.compress_min_size = settings.compress_min_size;
  accept.codec.compression_level = static_cast<uint8_t>(settings.compression_level);
  accept.codec.session_deflater = settings.session_deflater;
  if (std::optional<DeflateAgreement> agreement = negotiateDeflate(extensions, settings.deflate)) {
    accept.codec.deflate = agreement->params;
    accept.response.headers.push_back({"Sec-WebSocket-Extensions", std::move(agreement->response)});
  }
  return accept;
}

// ---- ProtocolConfig -------------------------------------------------------------------------

WsProtocolConfig::WsProtocolConfig(WsSettings settings, WsCounters counters)
    : settings_(std::move(settings)), counters_(counters) {}

void WsProtocolConfig::onHttpRequest(const HttpExchangePtr& exchange) const {
  tl::expected<WsAccept, HttpResponse> decision = evaluateUpgrade(exchange->request(), settings_);
  if (!decision) {
    bump(counters_.rejected);
    exchange->respond(std::move(decision.error()));
    return;
  }
  bump(counters_.upgrades);
  if (decision->codec.deflate.enabled) {
    bump(counters_.deflate_sessions);
  }
  exchange->upgrade(std::make_unique<WsCodec>(decision->codec), std::move(decision->response),
                    std::move(decision->offered_subprotocols));
}

}  // namespace imgate::mod::websocket
