// SPDX-License-Identifier: Apache-2.0
// Session timers: arming and cancelling N outstanding timers, as sessions do with their idle and
// token-expiry timers. BM_LibeventEventPerTimer is what EventLoop::schedule did before the
// timer heap (one libevent event allocated, added and freed per timer, plus its handle);
// BM_LoopSchedule is the heap behind one libevent timer; BM_LoopArmNode arms nodes embedded in
// their owners (EventLoop::arm, what a Connection's timer is), no allocation per arm. Memory per
// timer is in the labels.
#include <benchmark/benchmark.h>
#include <event2/event.h>
#include <sys/time.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "event/worker.h"

namespace imgate::core {
namespace {

// The pre-heap Timer: a libevent event per schedule (kept here as the baseline).
class LibeventTimer final : public Timer {
 public:
  LibeventTimer(event_base* base, std::chrono::milliseconds delay, std::function<void()> cb)
      : cb_(std::move(cb)) {
    ev_ = evtimer_new(base, &LibeventTimer::fire, this);
    timeval tv{static_cast<time_t>(delay.count() / 1000),
               static_cast<suseconds_t>((delay.count() % 1000) * 1000)};
    evtimer_add(ev_, &tv);
  }
  ~LibeventTimer() override { event_free(ev_); }

 private:
  static void fire(int, short, void* arg) { static_cast<LibeventTimer*>(arg)->cb_(); }
  event* ev_ = nullptr;
  std::function<void()> cb_;
};

// Spread deadlines like sessions' idle timers: minutes ahead, all different.
std::chrono::milliseconds delayOf(int64_t i) { return std::chrono::milliseconds(60000 + i * 7); }

// A timer as EventLoop::schedule made it before the heap (kHeap false) or makes it now.
template <bool kHeap>
TimerPtr arm(EventLoop& loop, std::chrono::milliseconds delay) {
  if constexpr (kHeap) {
    return loop.schedule(delay, [] {});
  } else {
    return std::make_unique<LibeventTimer>(loop.base(), delay, [] {});
  }
}

template <bool kHeap>
void armAndCancel(benchmark::State& state) {
  EventLoop loop;
  const int64_t n = state.range(0);
  std::vector<TimerPtr> timers(static_cast<size_t>(n));
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      timers[static_cast<size_t>(i)] = arm<kHeap>(loop, delayOf(i));
    }
    for (auto& t : timers) {
      t.reset();
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel(kHeap ? "heap bytes/timer: handle 64 + 16 in the heap array"
                       : "heap bytes/timer: handle 48 + event 128 (+ allocator classes)");
}
void BM_LibeventEventPerTimer(benchmark::State& state) { armAndCancel<false>(state); }
void BM_LoopSchedule(benchmark::State& state) { armAndCancel<true>(state); }
BENCHMARK(BM_LibeventEventPerTimer)->Arg(1000)->Arg(100000);
BENCHMARK(BM_LoopSchedule)->Arg(1000)->Arg(100000);

void noop(EventLoop::TimerNode&) {}

void BM_LoopArmNode(benchmark::State& state) {
  EventLoop loop;
  const int64_t n = state.range(0);
  std::vector<EventLoop::TimerNode> nodes(static_cast<size_t>(n));
  for (auto _ : state) {
    for (int64_t i = 0; i < n; ++i) {
      loop.arm(nodes[static_cast<size_t>(i)], &noop, delayOf(i));
    }
    for (auto& node : nodes) {
      loop.cancel(node);
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.SetLabel("heap bytes/timer: 16 in the heap array (the node is in its owner)");
}
BENCHMARK(BM_LoopArmNode)->Arg(1000)->Arg(100000);

// Re-arming one session's timer (the keep-alive / idle timer after each exchange) while 100k
// other sessions' timers are outstanding.
template <bool kHeap>
void rearmWithOthers(benchmark::State& state) {
  EventLoop loop;
  std::vector<TimerPtr> others;
  for (int64_t i = 0; i < 100000; ++i) {
    others.push_back(arm<kHeap>(loop, delayOf(i)));
  }
  TimerPtr mine;
  for (auto _ : state) {
    mine = arm<kHeap>(loop, std::chrono::milliseconds(30000));
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_RearmLibevent(benchmark::State& state) { rearmWithOthers<false>(state); }
void BM_RearmHeap(benchmark::State& state) { rearmWithOthers<true>(state); }
BENCHMARK(BM_RearmLibevent);
BENCHMARK(BM_RearmHeap);

void BM_RearmNode(benchmark::State& state) {
  EventLoop loop;
  std::vector<EventLoop::TimerNode> others(100000);
  for (int64_t i = 0; i < 100000; ++i) {
    loop.arm(others[static_cast<size_t>(i)], &noop, delayOf(i));
  }
  EventLoop::TimerNode mine;
  for (auto _ : state) {
    loop.arm(mine, &noop, std::chrono::milliseconds(30000));
  }
  state.SetItemsProcessed(state.iterations());
  for (auto& node : others) {
    loop.cancel(node);
  }
  loop.cancel(mine);
}
BENCHMARK(BM_RearmNode);

}  // namespace
}  // namespace imgate::core
