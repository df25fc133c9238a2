// SPDX-License-Identifier: Apache-2.0
// The admin listener's handler: /metrics (Prometheus text), /healthz, /status, POST /reload.
// A core-internal ProtocolConfig mounted at "/" of the admin listener.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/config.h"
#include "imgate/sdk/status.h"

namespace imgate::core {

// What the admin endpoints need from the server; implemented by Server (main thread owner).
class ServerControl {
 public:
  virtual std::string metricsText() = 0;  // thread-safe
  virtual std::string statusJson() = 0;   // thread-safe
  virtual bool draining() const = 0;      // thread-safe
  // Reloads on the main thread; `done(ok, message)` is posted back to the calling worker.
  virtual void requestReload(std::function<void(bool, std::string)> done) = 0;

 protected:
  ~ServerControl() = default;
};

// Fields of one `admin.keys` entry (the admin schema lives in reload/generation.cc).
inline constexpr ParamSpec kAdminKeyFields[] = {
    {.key = "key",
     .type = ParamType::kString,
     .required = true,
     .help = "the secret, sent as Authorization: Bearer <key> or X-API-Key: <key>"},
    {.key = "scopes",
     .type = ParamType::kStringList,
     .required = true,
     .min = 1,
     .help = "read: GET /metrics and /status; admin: POST /reload (and everything read allows)"},
};

// Who may call what on the admin listener. /healthz is always open (load balancers probe it).
//  - No key at all: everything is open (bind the admin listener to loopback).
//  - Old-style `api_keys` only: POST /reload needs one of them; reads stay open, as before
//    `keys` existed (scrapers keep working).
//  - `keys` present: reads need a key with `read` or `admin`, POST /reload one with `admin`.
//    Old-style keys, if any, count as [read, admin].
struct AdminAuth {
  struct Key {
    std::string key;
    bool read = true;   // GET /metrics, /status
    bool admin = true;  // POST /reload; implies read
  };
  std::vector<Key> keys;
  bool protect_reads = false;

  bool open() const { return keys.empty(); }

  // Builds it from the validated `admin` section (keys `api_keys` and `keys`). Errors
  // (kInvalidConfig) name the entry, never the key: an empty key, one with surrounding
  // whitespace, an unknown scope, a key listed twice.
  [[nodiscard]] static Result<AdminAuth> compile(const ConfigView& admin);
};

// True for binds only this host can reach: 127.0.0.0/8, [::1], localhost.
bool isLoopbackBind(std::string_view bind);

// Logs a warning when an admin listener with no keys binds beyond loopback: anyone who can
// reach it can read metrics and status and trigger reloads. Called at every load.
void warnIfAdminExposed(const AdminAuth& auth, std::string_view bind);

class AdminProtocol final : public ProtocolConfig {
 public:
  AdminProtocol(ServerControl* control, AdminAuth auth)
      : control_(control), auth_(std::move(auth)) {}
  void onHttpRequest(const HttpExchangePtr& exchange) const override;

 private:
  ServerControl* control_;
  AdminAuth auth_;
};

}  // namespace imgate::core
