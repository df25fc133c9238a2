// SPDX-License-Identifier: Apache-2.0
// Active health checks: every backend of every group whose health_check.path is set gets a
// GET <path> every `interval` (the next one `interval` after the previous answer, so probes of
// one backend never overlap). `unhealthy_threshold` failures in a row mark it down and
// `healthy_threshold` passes in a row bring it back, through BackendState::healthy, which every
// worker reads. One instance, on one loop (the main thread's).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "imgate/sdk/runtime.h"
#include "upstream/upstream_client.h"
#include "upstream/upstream_config.h"

namespace imgate::core {
class EventLoop;
}

namespace imgate::core::upstream {

class HealthChecker {
 public:
  explicit HealthChecker(EventLoop& loop);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Thread: the loop's (post to it). Replaces what is probed; call at start and after every
  // successful reload. Probes start at once. Backends kept by a reload keep their verdict and
  // streaks (they live in the shared BackendState); backends of groups without a path are
  // marked healthy, since nothing would ever bring them back otherwise. nullptr stops probing.
  void setUpstreams(std::shared_ptr<const UpstreamSet> set);

  uint64_t probesSent() const { return probes_sent_; }

 private:
  struct Target {
    std::shared_ptr<const GroupConfig> group;
    size_t index = 0;
    TimerPtr timer;
  };

  void arm(const std::shared_ptr<Target>& target, std::chrono::milliseconds delay);
  void probe(const std::shared_ptr<Target>& target);
  static void record(const Target& target, bool passed);

  EventLoop& loop_;
  std::vector<std::shared_ptr<Target>> targets_;
  uint64_t probes_sent_ = 0;
  // Last member: destroyed first, while targets_ is already empty, so its shutdown callbacks
  // find no target and change no verdict.
  std::unique_ptr<UpstreamClient> client_;
};

}  // namespace imgate::core::upstream
