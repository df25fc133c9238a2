// SPDX-License-Identifier: Apache-2.0
#include "socketio_config.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "sio_probe_codec.h"

namespace imgate::mod::socketio {

namespace {

constexpr std::string_view kPollingType = "text/plain; charset=UTF-8";

void bump(Counter* counter) {
  if (counter != nullptr) {
    counter->add();
  }
}

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

HttpResponse errorResponse(EioError error) {
  return HttpResponse::json(eioErrorHttpStatus(error), eioErrorBody(error));
}

std::vector<HttpHeader> pollingHeaders(std::string_view content_type) {
  return {{"content-type", std::string(content_type)}, {"cache-control", "no-store"}};
}

// A poll's answer: the session's output without the separator that starts it, or a noop.
// (Out of line: GCC 12 inlines it into the callback and warns maybe-uninitialized on SSO bytes.)
[[gnu::noinline]] std::string pollBody(std::string_view bytes) {
  if (bytes.empty()) {
    return "6";
  }
  if (bytes.starts_with(kEioRecordSeparator)) {
    bytes.remove_prefix(1);
  }
  return std::string(bytes);
}

}  // namespace

Result<std::string> normalizeCorsOrigin(std::string_view origin) {
  if (origin == "*") {
    return std::string(origin);
  }
  auto invalid = [&] {
    return fail(Errc::kInvalidConfig, "cors_origins: \"" + std::string(origin) +
                                          "\" is not \"*\" or an origin like "
                                          "\"https://app.example.com\" (scheme://host[:port])");
  };
  const size_t scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0 ||
      scheme_end + 3 == origin.size()) {
    return invalid();
  }
  std::string normalized;
  normalized.reserve(origin.size());
  for (size_t i = 0; i < origin.size(); ++i) {
    const char c = origin[i];
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ',' || (i >= scheme_end + 3 && (c == '/' || c == '?'))) {
      return invalid();
    }
    normalized.push_back(lowerAscii(c));
  }
  return normalized;
}

SocketIoConfig::SocketIoConfig(std::shared_ptr<const SocketIoSettings> settings,
                               SioHttpSettings http, SioCounters counters)
    : settings_(std::move(settings)), http_(std::move(http)), counters_(counters) {
  ws_.max_message = settings_->max_payload;
  ws_.deflate.enabled = false;  // as the reference server (perMessageDeflate: false)
  cors_any_ = std::find(http_.cors_origins.begin(), http_.cors_origins.end(), "*") !=
              http_.cors_origins.end();
}

bool SocketIoConfig::originAllowed(const HttpRequest& request) const {
  const auto origin = request.header("origin");
  if (!origin) {
    return false;
  }
  for (const std::string& allowed : http_.cors_origins) {
    if (http_detail::iequals(allowed, *origin)) {
      return true;
    }
  }
  return false;
}

void SocketIoConfig::addCorsHeaders(const HttpRequest& request,
                                    std::vector<HttpHeader>& headers) const {
  if (http_.cors_origins.empty()) {
    return;
  }
  if (cors_any_) {
    headers.push_back({"access-control-allow-origin", "*"});
  } else {
    // The answer depends on Origin: caches must not serve one origin's answer to another.
    headers.push_back({"vary", "Origin"});
    if (!originAllowed(request)) {
      return;
    }
    headers.push_back({"access-control-allow-origin", std::string(*request.header("origin"))});
  }
  if (http_.cors_credentials) {
    headers.push_back({"access-control-allow-credentials", "true"});
  }
}

void SocketIoConfig::refuse(const HttpExchangePtr& exchange, EioError error) const {
  bump(counters_.refused);
  HttpResponse response = errorResponse(error);
  addCorsHeaders(exchange->request(), response.headers);
  exchange->respond(std::move(response));
}

void SocketIoConfig::onPreflight(const HttpExchangePtr& exchange) const {
  const HttpRequest& request = exchange->request();
  HttpResponse response{204, {}, {}};
  addCorsHeaders(request, response.headers);
  if (cors_any_ || originAllowed(request)) {
    response.headers.push_back({"access-control-allow-methods", "GET,POST"});
    if (auto asked = request.header("access-control-request-headers")) {
      response.headers.push_back({"access-control-allow-headers", std::string(*asked)});
      response.headers.push_back({"vary", "Access-Control-Request-Headers"});
    }
    if (http_.cors_max_age.count() > 0) {
      response.headers.push_back(
          {"access-control-max-age", std::to_string(http_.cors_max_age.count())});
    }
  }
  exchange->respond(std::move(response));
}

void SocketIoConfig::onHttpRequest(const HttpExchangePtr& exchange) const {
  const HttpRequest& request = exchange->request();
  if (request.method == "OPTIONS" && !http_.cors_origins.empty()) {
    onPreflight(exchange);
    return;
  }
  const auto eio = request.queryParam("EIO");
  if (!eio || *eio != "4") {
    refuse(exchange, EioError::kUnsupportedProtocolVersion);
    return;
  }
  const auto transport = request.queryParam("transport");
  const bool polling = transport && *transport == "polling" && http_.polling;
  const bool websocket = transport && *transport == "websocket" && http_.websocket;
  if (!polling && !websocket) {
    refuse(exchange, EioError::kUnknownTransport);
    return;
  }
  // As the reference, an empty sid is no sid.
  const std::string sid = request.queryParam("sid").value_or(std::string());
  if (!sid.empty() && !plausibleSessionId(sid)) {
    refuse(exchange, EioError::kUnknownSid);
    return;
  }
  if (polling) {
    onPolling(exchange, sid);
  } else {
    onWebSocket(exchange, sid);
  }
}

void SocketIoConfig::onPolling(const HttpExchangePtr& exchange, const std::string& sid) const {
  const HttpRequest& request = exchange->request();
  if (sid.empty()) {
    if (request.method != "GET") {
      refuse(exchange, EioError::kBadHandshakeMethod);
      return;
    }
    auto new_sid = newSessionId();
    if (!new_sid) {
      exchange->respond(
          HttpResponse::json(500, R"({"error":"internal","reason":"no randomness"})"));
      return;
    }
    std::vector<std::string> upgrades;
    if (http_.websocket && http_.allow_upgrades) {
      upgrades.emplace_back("websocket");
    }
    HttpResponse accept{200, pollingHeaders(kPollingType),
                        SioCodec::openPacket(*settings_, *new_sid, upgrades)};
    addCorsHeaders(request, accept.headers);
    bump(counters_.handshakes);
    exchange->detach(*new_sid, std::make_unique<SioCodec>(settings_, request), std::move(accept));
    return;
  }

  // The answers are built from the request alone, so the callbacks hold no config.
  std::vector<HttpHeader> cors;
  addCorsHeaders(request, cors);
  auto answer = [exchange, cors, refused = counters_.refused](
                    DetachedResult::Status status, std::string_view content_type,
                    std::string body) {
    if (status == DetachedResult::Status::kOk) {
      HttpResponse response{200, pollingHeaders(content_type), std::move(body)};
      response.headers.insert(response.headers.end(), cors.begin(), cors.end());
      exchange->respond(std::move(response));
      return;
    }
    bump(refused);
    HttpResponse response = errorResponse(status == DetachedResult::Status::kUnknown
                                              ? EioError::kUnknownSid
                                              : EioError::kBadRequest);
    response.headers.insert(response.headers.end(), cors.begin(), cors.end());
    exchange->respond(std::move(response));
  };

  if (request.method == "GET") {
    exchange->poll(sid, pollWait(), [answer](DetachedResult result) {
      answer(result.status, kPollingType, pollBody(result.bytes));
    });
    return;
  }
  if (request.method == "POST") {
    if (request.body.size() > settings_->max_payload) {
      bump(counters_.refused);
      HttpResponse response{413, std::move(cors), {}};
      exchange->respond(std::move(response));
      return;
    }
    if (request.body.empty()) {
      refuse(exchange, EioError::kBadRequest);
      return;
    }
    // text/html, as the reference: text/plain made some browsers offer a download (GH-43).
    exchange->feed(sid, request.body, [answer](DetachedResult result) {
      answer(result.status, "text/html", "ok");
    });
    return;
  }
  bump(counters_.refused);
  exchange->respond(HttpResponse{500, std::move(cors), {}});
}

void SocketIoConfig::onWebSocket(const HttpExchangePtr& exchange, const std::string& sid) const {
  const HttpRequest& request = exchange->request();
  if (!sid.empty() && !http_.allow_upgrades) {
    refuse(exchange, EioError::kBadRequest);
    return;
  }
  auto decision = websocket::evaluateUpgrade(request, ws_);
  if (!decision) {
    bump(counters_.refused);
    HttpResponse response = std::move(decision.error());
    addCorsHeaders(request, response.headers);
    exchange->respond(std::move(response));
    return;
  }
  HttpResponse accept = std::move(decision->response);
  if (!sid.empty()) {
    HttpResponse unknown = errorResponse(EioError::kUnknownSid);
    addCorsHeaders(request, unknown.headers);
    exchange->attach(sid, std::make_unique<SioProbeCodec>(decision->codec, counters_.upgrades),
                     std::move(accept),
                     std::move(unknown));
    return;
  }
  auto new_sid = newSessionId();
  if (!new_sid) {
    exchange->respond(HttpResponse::json(500, R"({"error":"internal","reason":"no randomness"})"));
    return;
  }
  bump(counters_.handshakes);
  accept.body = SioCodec::openFrame(*settings_, *new_sid);
  exchange->upgrade(std::make_unique<SioCodec>(settings_, request, decision->codec),
                    std::move(accept), std::move(decision->offered_subprotocols));
}

}  // namespace imgate::mod::socketio
