// SPDX-License-Identifier: Apache-2.0
#include "upstream/health_checker.h"

#include "common/log.h"
#include "event/worker.h"

namespace imgate::core::upstream {

HealthChecker::HealthChecker(EventLoop& loop)
    : loop_(loop), client_(std::make_unique<UpstreamClient>(loop)) {}

HealthChecker::~HealthChecker() {
  targets_.clear();
  client_.reset();
}

void HealthChecker::setUpstreams(std::shared_ptr<const UpstreamSet> set) {
  targets_.clear();  // pending probe answers find their target gone and are ignored
  if (set == nullptr) {
    return;
  }
  for (const auto& group : set->groups()) {
    for (size_t i = 0; i < group->backends.size(); ++i) {
      if (group->health_check.path.empty()) {
        group->backends[i].state->healthy.store(true, std::memory_order_relaxed);
        continue;
      }
      auto target = std::make_shared<Target>();
      target->group = group;
      target->index = i;
      targets_.push_back(target);
      arm(target, std::chrono::milliseconds(0));
    }
  }
}

void HealthChecker::arm(const std::shared_ptr<Target>& target, std::chrono::milliseconds delay) {
  std::weak_ptr<Target> weak = target;
  target->timer = loop_.schedule(delay, [this, weak] {
    if (auto t = weak.lock()) {
      probe(t);
    }
  });
}

void HealthChecker::probe(const std::shared_ptr<Target>& target) {
  const HealthCheckConfig& hc = target->group->health_check;
  UpstreamRequest req;
  req.method = "GET";
  req.path = hc.path;
  req.headers.push_back(HttpHeader{"user-agent", "imgate-health-check"});
  req.timeout = hc.timeout;
  ++probes_sent_;
  std::weak_ptr<Target> weak = target;
  client_->probe(*target->group, target->index, std::move(req),
                 [this, weak](Result<UpstreamResponse> result) {
                   auto t = weak.lock();
                   if (t == nullptr) {
                     return;
                   }
                   const HealthCheckConfig& c = t->group->health_check;
                   record(*t, result && result->status >= c.expected_min &&
                                  result->status <= c.expected_max);
                   arm(t, c.interval);
                 });
}

void HealthChecker::record(const Target& target, bool passed) {
  const HealthCheckConfig& hc = target.group->health_check;
  BackendState& s = *target.group->backends[target.index].state;
  if (passed) {
    s.check_failures.store(0, std::memory_order_relaxed);
    const uint32_t n = s.check_successes.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!s.healthy.load(std::memory_order_relaxed) && n >= hc.healthy_threshold) {
      s.healthy.store(true, std::memory_order_relaxed);
      LOG_NOTICE("upstream ", s.group, " backend ", s.address, " is up (health check)");
    }
    return;
  }
  s.check_successes.store(0, std::memory_order_relaxed);
  const uint32_t n = s.check_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (s.healthy.load(std::memory_order_relaxed) && n >= hc.unhealthy_threshold) {
    s.healthy.store(false, std::memory_order_relaxed);
    LOG_WARN("upstream ", s.group, " backend ", s.address, " is down (health check)");
  }
}

}  // namespace imgate::core::upstream
