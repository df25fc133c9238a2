// SPDX-License-Identifier: Apache-2.0
// EventLoop::post: from another thread a post wakes the loop; from the loop's own thread it is
// held until the end of the current iteration and handed over in one batch per target loop.
#include "event/worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace imgate::core {
namespace {

using namespace std::chrono_literals;

// Runs `loop` on a thread of its own until stop(); joins on destruction.
class LoopThread {
 public:
  explicit LoopThread(EventLoop& loop) : loop_(loop), thread_([this] { loop_.run(); }) {}
  ~LoopThread() {
    loop_.stop();
    thread_.join();
  }

 private:
  EventLoop& loop_;
  std::thread thread_;
};

// Waits (bounded) until `done` is set by another thread.
bool waitFor(const std::atomic<bool>& done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  return done.load();
}

TEST(EventLoopTest, PostFromAnotherThreadRunsOnTheLoop) {
  EventLoop loop;
  std::atomic<bool> done{false};
  std::thread::id ran_on;
  {
    LoopThread t(loop);
    loop.post([&] {
      ran_on = std::this_thread::get_id();
      done = true;
    });
    ASSERT_TRUE(waitFor(done));
  }
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(EventLoopTest, PostToItselfRunsAfterTheCurrentCallbackInOrder) {
  EventLoop loop;
  std::vector<int> order;
  loop.post([&] {
    loop.post([&] { order.push_back(2); });
    loop.post([&] { order.push_back(3); });
    order.push_back(1);  // the posts above have not run yet
    loop.post([&] {
      order.push_back(4);
      loop.stop();
    });
  });
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
}

TEST(EventLoopTest, PostsToAnotherLoopArriveTogetherAndInOrder) {
  EventLoop source;
  EventLoop target;
  std::vector<int> got;  // target thread only
  std::atomic<bool> done{false};
  {
    LoopThread t(target);
    source.post([&] {
      for (int i = 0; i < 1000; ++i) {
        target.post([&got, &done, i] {
          got.push_back(i);
          if (i == 999) {
            done = true;
          }
        });
      }
      source.stop();
    });
    source.run();
    ASSERT_TRUE(waitFor(done));
  }
  ASSERT_EQ(got.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(got[static_cast<size_t>(i)], i);
  }
}

TEST(EventLoopTest, CallbackThatRepostsItselfDoesNotStarveTimers) {
  EventLoop loop;
  int spins = 0;
  bool timer_fired = false;
  std::function<void()> spin = [&] {
    ++spins;
    if (!timer_fired) {
      loop.post(spin);
    }
  };
  TimerPtr timer = loop.schedule(20ms, [&] {
    timer_fired = true;
    loop.stop();
  });
  // A watchdog in case the timer never gets its turn.
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!finished.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    if (!finished.load()) {
      loop.stop();
    }
  });
  loop.post(spin);
  loop.run();
  finished = true;
  watchdog.join();
  EXPECT_TRUE(timer_fired);
  EXPECT_GT(spins, 1);
}

TEST(EventLoopTest, PostsMadeWhileStoppingAreNotLost) {
  EventLoop source;
  EventLoop target;
  std::atomic<bool> done{false};
  {
    LoopThread t(target);
    source.post([&] {
      source.stop();
      // Posted after stop(), during the last iteration: still handed over.
      target.post([&] { done = true; });
    });
    source.run();
    EXPECT_TRUE(waitFor(done));
  }
}

}  // namespace
}  // namespace imgate::core
