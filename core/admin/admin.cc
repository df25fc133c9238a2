// SPDX-License-Identifier: Apache-2.0
#include "admin/admin.h"

#include <openssl/crypto.h>

#include <map>

#include "common/log.h"

namespace imgate::core {

namespace {

HttpResponse jsonError(int status, std::string_view error, std::string_view reason) {
  return HttpResponse::json(status, format("{\"error\":", jsonQuote(error),
                                           ",\"reason\":", jsonQuote(reason), "}"));
}

// Every configured key is compared, so timing does not tell which one came close.
const AdminAuth::Key* findKey(const HttpRequest& req, const std::vector<AdminAuth::Key>& keys) {
  std::vector<std::string_view> presented;
  if (auto auth = req.header("authorization")) {
    const std::string_view value = http_detail::trim(*auth);
    const size_t space = value.find(' ');
    if (space != std::string_view::npos &&
        http_detail::iequals(value.substr(0, space), "bearer")) {
      presented.push_back(http_detail::trim(value.substr(space + 1)));
    }
  }
  if (auto key = req.header("x-api-key")) {
    presented.push_back(http_detail::trim(*key));
  }
  const AdminAuth::Key* found = nullptr;
  for (const std::string_view token : presented) {
    for (const auto& key : keys) {
      const bool equal = key.key.size() == token.size() &&
                         CRYPTO_memcmp(key.key.data(), token.data(), key.key.size()) == 0;
      if (equal && found == nullptr) {
        found = &key;
      }
    }
  }
  return found;
}

// nullopt when the request may go on; else the refusal.
std::optional<HttpResponse> refuse(const HttpRequest& req, const AdminAuth& auth, bool admin) {
  if (auth.open() || (!admin && !auth.protect_reads)) {
    return std::nullopt;
  }
  const AdminAuth::Key* key = findKey(req, auth.keys);
  if (key == nullptr) {
    auto r = jsonError(401, "unauthenticated", "missing or invalid admin API key");
    r.headers.push_back({"www-authenticate", "Bearer realm=\"imgate-admin\""});
    return r;
  }
  if (admin ? key->admin : (key->read || key->admin)) {
    return std::nullopt;
  }
  return jsonError(403, "permission_denied",
                   admin ? "this key lacks scope \"admin\" (POST /reload needs admin)"
                         : "this key lacks scope \"read\"");
}

bool hasOuterSpace(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  return !s.empty() && (space(s.front()) || space(s.back()));
}

}  // namespace

Result<AdminAuth> AdminAuth::compile(const ConfigView& admin) {
  AdminAuth auth;
  std::map<std::string, std::string, std::less<>> seen;  // key -> label, for duplicates
  const auto add = [&](Key key, const std::string& label) -> Status {
    if (key.key.empty()) {
      return fail(Errc::kInvalidConfig, label + " is empty");
    }
    if (hasOuterSpace(key.key)) {
      return fail(Errc::kInvalidConfig,
                  label + " starts or ends with whitespace, which no request can match");
    }
    if (const auto [it, added] = seen.emplace(key.key, label); !added) {
      return fail(Errc::kInvalidConfig, label + " is the same key as " + it->second);
    }
    auth.keys.push_back(std::move(key));
    return {};
  };
  const std::vector<std::string> old_keys = admin.getStringList("api_keys");
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (auto ok = add(Key{old_keys[i], true, true}, format("api_keys[", i, "]")); !ok) {
      return tl::unexpected(ok.error());
    }
  }
  const std::vector<const ConfigView*> entries = admin.children("keys");
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string label = format("keys[", i, "]");
    Key key{entries[i]->getString("key"), false, false};
    for (const std::string& scope : entries[i]->getStringList("scopes")) {
      if (scope == "read") {
        key.read = true;
      } else if (scope == "admin") {
        key.admin = true;
      } else {
        return fail(Errc::kInvalidConfig,
                    format(label, ".scopes: unknown scope ", quote(scope),
                           " (expected read or admin)"));
      }
    }
    if (!key.read && !key.admin) {
      return fail(Errc::kInvalidConfig, label + ".scopes is empty");
    }
    if (auto ok = add(std::move(key), label + ".key"); !ok) {
      return tl::unexpected(ok.error());
    }
  }
  auth.protect_reads = !entries.empty();
  return auth;
}

bool isLoopbackBind(std::string_view bind) {
  const size_t colon = bind.rfind(':');
  std::string_view host = colon == std::string_view::npos ? bind : bind.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host.starts_with("127.") || host == "::1" || host == "localhost";
}

void warnIfAdminExposed(const AdminAuth& auth, std::string_view bind) {
  if (auth.open() && !isLoopbackBind(bind)) {
    LOG_WARN("admin listener ", quote(bind),
             " is not on loopback and has no keys: anyone who reaches it can read /metrics and "
             "/status and POST /reload (set admin.keys, or bind it to 127.0.0.1)");
  }
}

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
    if (path == "/healthz") {
      // Always open: load balancers probe it without credentials.
      if (control_->draining()) {
        exchange->respond(HttpResponse::json(503, R"({"status":"draining"})"));
      } else {
        exchange->respond(HttpResponse::json(200, R"({"status":"ok"})"));
      }
      return;
    }
    if (auto refusal = refuse(req, auth_, false)) {
      exchange->respond(std::move(*refusal));
      return;
    }
    if (path == "/metrics") {
      exchange->respond(HttpResponse{200, {{"content-type", "text/plain; version=0.0.4"}},
                                     control_->metricsText()});
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
    if (auto refusal = refuse(req, auth_, true)) {
      exchange->respond(std::move(*refusal));
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
