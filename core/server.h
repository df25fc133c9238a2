// SPDX-License-Identifier: Apache-2.0
// The main thread: owns the generations, the listening sockets and the workers; handles
// signals (SIGHUP reload, SIGQUIT graceful stop, SIGTERM/SIGINT fast stop) and admin reloads.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "admin/admin.h"
#include "event/worker.h"
#include "hub/registry.h"
#include "net/listener.h"
#include "reload/generation.h"
#include "upstream/health_checker.h"

namespace imgate::core {

class Server final : public ServerControl {
 public:
  explicit Server(std::string config_path);
  ~Server();

  // Loads the config, opens listeners, starts workers and runs until stopped. Returns the
  // process exit code.
  int run();

  // ServerControl
  std::string metricsText() override;
  std::string statusJson() override;
  bool draining() const override { return draining_.load(); }
  void requestReload(std::function<void(bool, std::string)> done) override;

 private:
  // Builds and publishes a new generation; returns the formatted errors on failure.
  std::vector<std::string> reload();
  tl::expected<std::vector<std::shared_ptr<ListenSocket>>, std::string> openSockets(
      const Generation& generation);
  // Hands the generation to every worker; `wait_applied` (reloads, not the start, when the
  // workers are not running yet) returns only once they all run it, at most kApplyWait.
  void publish(std::shared_ptr<const Generation> generation,
               std::vector<std::shared_ptr<ListenSocket>> sockets, bool wait_applied);
  static constexpr std::chrono::milliseconds kApplyWait{5000};
  bool configureLog(const Generation& generation, std::string& error);
  void gracefulStop();
  void checkDrained();
  void fastStop();
  void onSignal(int signal);
  static void signalCallback(int fd, short what, void* arg);

  std::string config_path_;
  EventLoop main_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<upstream::HealthChecker> health_;
  // Expires history (delivery.history ttl / idle_ttl) a slice at a time.
  void scheduleHistorySweep();
  TimerPtr sweep_timer_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Generation> current_;
  std::map<std::string, std::shared_ptr<ListenSocket>> sockets_;
  std::atomic<bool> draining_{false};
  int log_fd_ = 2;
  uint64_t next_generation_ = 1;
  std::vector<struct event*> signal_events_;
  std::unique_ptr<Timer> stop_timer_;
  int64_t drain_deadline_ms_ = 0;

  mutable std::mutex status_mu_;
  bool last_reload_ok_ = true;
  int64_t last_reload_at_ms_ = 0;
  std::vector<std::string> last_reload_errors_;
  struct BoundListener {
    std::string name;
    int port = 0;
    std::shared_ptr<ListenSocket> balanced;  // balance: exact only (its per-worker counts)
  };
  std::vector<BoundListener> bound_;
  uint64_t generation_id_ = 0;
};

}  // namespace imgate::core
