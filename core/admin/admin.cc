// SPDX-License-Identifier: Apache-2.0
#include "admin/admin.h"

#include <openssl/crypto.h>

#include "common/log.h"

namespace imgate::core {

namespace {

HttpResponse jsonError(int status, std::string_view error, std::string_view reason) {
  return HttpResponse::json(status, format("{\"error\":", jsonQuote(error),
                                           ",\"reason\":", jsonQuote(reason), "}"));
}

bool authorized(const HttpRequest& req, const std::vector<std::string>& keys) {
  if (keys.empty()) {
    return true;
  }
  auto auth = req.header("authorization");
  if (!auth || auth->size() < 7 || !http_detail::iequals(auth->substr(0, 7), "bearer ")) {
    return false;
  }
  const std::string_view token = http_detail::trim(auth->substr(7));
  for (const std::string& key : keys) {
    if (key.size() == token.size() && CRYPTO_memcmp(key.data(), token.data(), key.size()) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

void AdminProtocol::onHttpRequest(const HttpExchangePtr& exchange) const {
  const HttpRequest& req = exchange->request();
  const std::string& path = req.path;
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (path == "/metrics" || path == "/healthz" || path == "/status") {
    if (!get) {
      auto r = jsonError(405, "method_not_allowed", "use GET");
      r.headers.push_back({"allow", "GET, HEAD"});
      exchange->respond(std::move(r));
      return;
    }
    if (path == "/metrics") {
      exchange->respond(HttpResponse{200, {{"content-type", "text/plain; version=0.0.4"}},
                                     control_->metricsText()});
    } else if (path == "/healthz") {
      if (control_->draining()) {
        exchange->respond(HttpResponse::json(503, R"({"status":"draining"})"));
      } else {
        exchange->respond(HttpResponse::json(200, R"({"status":"ok"})"));
      }
    } else {
      exchange->respond(HttpResponse::json(200, control_->statusJson()));
    }
    return;
  }
  if (path == "/reload") {
    if (req.method != "POST") {
      auto r = jsonError(405, "method_not_allowed", "use POST");
      r.headers.push_back({"allow", "POST"});
      exchange->respond(std::move(r));
      return;
    }
    if (!authorized(req, api_keys_)) {
      auto r = jsonError(401, "unauthenticated", "missing or invalid admin API key");
      r.headers.push_back({"www-authenticate", "Bearer realm=\"imgate-admin\""});
      exchange->respond(std::move(r));
      return;
    }
    control_->requestReload([exchange](bool ok, std::string message) {
      if (ok) {
        exchange->respond(HttpResponse::json(200, format("{\"status\":\"reloaded\",\"generation\":",
                                                         message, "}")));
      } else {
        exchange->respond(jsonError(400, "invalid_config", message));
      }
    });
    return;
  }
  exchange->respond(jsonError(404, "not_found",
                              format("no admin endpoint ", quote(path),
                                     "; try /metrics, /healthz, /status, POST /reload")));
}

}  // namespace imgate::core
