// SPDX-License-Identifier: Apache-2.0
// Cross-thread posts (EventLoop::post), the hop every push to a user on another worker makes.
// BM_PostUnbatched: 1,000 posts from a thread without a loop, each taking the target's lock and
// writing its eventfd unless a wakeup is already pending: how every post went before posts from
// a loop thread were batched. BM_PostBatched: the same 1,000 posts made from inside another
// loop's callback: held to the end of that iteration and handed over in one batch.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>

#include "event/worker.h"

namespace imgate::core {
namespace {

constexpr int kBurst = 1000;

class Running {
 public:
  Running() : thread_([this] { loop.run(); }) {}
  ~Running() {
    loop.stop();
    thread_.join();
  }
  EventLoop loop;

 private:
  std::thread thread_;
};

void waitFor(const std::atomic<int64_t>& done, int64_t want) {
  while (done.load(std::memory_order_acquire) < want) {
    std::this_thread::yield();
  }
}

// Times `burst(target, done)` (1,000 posts to `target`, each counting itself in `done`) until
// every post ran.
template <typename Burst>
void timeBursts(benchmark::State& state, EventLoop& target, Burst burst) {
  std::atomic<int64_t> done{0};
  int64_t want = 0;
  for (auto _ : state) {
    burst(target, done);
    want += kBurst;
    waitFor(done, want);
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
}

void postBurst(EventLoop& target, std::atomic<int64_t>& done) {
  for (int i = 0; i < kBurst; ++i) {
    target.post([&done] { done.fetch_add(1, std::memory_order_release); });
  }
}

void BM_PostUnbatched(benchmark::State& state) {
  Running target;
  timeBursts(state, target.loop, postBurst);
}
BENCHMARK(BM_PostUnbatched)->UseRealTime();

void BM_PostBatched(benchmark::State& state) {
  Running target;
  Running source;
  timeBursts(state, target.loop, [&](EventLoop& to, std::atomic<int64_t>& done) {
    source.loop.post([&to, &done] { postBurst(to, done); });
  });
}
BENCHMARK(BM_PostBatched)->UseRealTime();

}  // namespace
}  // namespace imgate::core
