// SPDX-License-Identifier: Apache-2.0
// The admin listener's handler: /metrics (Prometheus text), /healthz, /status, POST /reload.
// A core-internal ProtocolConfig mounted at "/" of the admin listener.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "imgate/sdk/codec.h"

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

class AdminProtocol final : public ProtocolConfig {
 public:
  AdminProtocol(ServerControl* control, std::vector<std::string> api_keys)
      : control_(control), api_keys_(std::move(api_keys)) {}
  void onHttpRequest(const HttpExchangePtr& exchange) const override;

 private:
  ServerControl* control_;
  std::vector<std::string> api_keys_;
};

}  // namespace imgate::core
