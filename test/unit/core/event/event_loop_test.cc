// SPDX-License-Identifier: Apache-2.0
// EventLoop::post: from another thread a post wakes the loop; from the loop's own thread it is
// held until the end of the current iteration and handed over in one batch per target loop.
#include "event/worker.h"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
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

// postNow() from a loop thread reaches the target while the posting callback still runs (it
// may wait for it), after the posts that callback made before it.
TEST(EventLoopTest, PostNowIsHandedOverAtOnceAfterEarlierPosts) {
  EventLoop source;
  EventLoop target;
  std::vector<int> got;  // target thread only
  std::atomic<bool> done{false};
  bool seen_in_time = false;
  {
    LoopThread t(target);
    source.post([&] {
      target.post([&got] { got.push_back(1); });
      target.post([&got] { got.push_back(2); });
      target.postNow([&] {
        got.push_back(3);
        done = true;
      });
      seen_in_time = waitFor(done);  // still inside this callback: a held post would never come
      target.post([&got] { got.push_back(4); });
      source.stop();
    });
    source.run();
    std::atomic<bool> last{false};
    target.post([&] { last = true; });
    ASSERT_TRUE(waitFor(last));
  }
  EXPECT_TRUE(seen_in_time);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4}));
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


// ---- schedule(): the loop's timer heap ------------------------------------------------------

TEST(EventLoopTimerTest, TimersFireInDeadlineOrderAndCancelledOnesNever) {
  EventLoop loop;
  std::vector<int> fired;
  std::vector<TimerPtr> timers;
  // Deadlines 0..39 ms in a scrambled order; every third one cancelled before it is due.
  for (int i = 0; i < 40; ++i) {
    const int ms = (i * 17) % 40;
    timers.push_back(loop.schedule(std::chrono::milliseconds(ms), [&fired, ms] { fired.push_back(ms); }));
  }
  for (int i = 0; i < 40; i += 3) {
    timers[static_cast<size_t>(i)].reset();
  }
  TimerPtr stop = loop.schedule(80ms, [&] { loop.stop(); });
  loop.run();
  std::vector<int> expected;
  for (int ms = 0; ms < 40; ++ms) {
    bool cancelled = false;
    for (int i = 0; i < 40; i += 3) {
      cancelled = cancelled || (i * 17) % 40 == ms;
    }
    if (!cancelled) {
      expected.push_back(ms);
    }
  }
  EXPECT_EQ(fired, expected);
}

TEST(EventLoopTimerTest, EqualDeadlinesFireInScheduleOrder) {
  EventLoop loop;
  std::vector<int> fired;
  std::vector<TimerPtr> timers;
  for (int i = 0; i < 10; ++i) {
    timers.push_back(loop.schedule(0ms, [&fired, i] { fired.push_back(i); }));
  }
  TimerPtr stop = loop.schedule(20ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(EventLoopTimerTest, CallbackMayDestroyItsOwnHandleAndCancelOthersDueNow) {
  EventLoop loop;
  TimerPtr first;
  TimerPtr second;
  bool second_fired = false;
  first = loop.schedule(1ms, [&] {
    first.reset();   // its own handle
    second.reset();  // due at the same time, not run yet: cancelled
  });
  second = loop.schedule(1ms, [&] { second_fired = true; });
  TimerPtr stop = loop.schedule(20ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_FALSE(second_fired);
}

TEST(EventLoopTimerTest, ZeroDelayTimerScheduledByATimerWaitsForTheNextTurn) {
  EventLoop loop;
  std::vector<std::string> order;
  TimerPtr c;
  TimerPtr a = loop.schedule(0ms, [&] {
    order.push_back("a");
    c = loop.schedule(0ms, [&] {
      order.push_back("c");
      loop.stop();
    });
    loop.post([&] { order.push_back("posted"); });  // runs at the end of this turn
  });
  TimerPtr b = loop.schedule(0ms, [&] { order.push_back("b"); });
  TimerPtr guard = loop.schedule(5s, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "posted", "c"}));
}

// Embedded nodes (arm/cancel, what a Connection uses) share the heap with schedule()'s handles:
// one deadline order, schedule order on ties, re-arming moves a node, cancelling removes it,
// and a node re-armed by its own firing waits for the next turn.
struct TestNode : EventLoop::TimerNode {
  std::vector<std::string>* log = nullptr;
  std::string name;
  static void fire(EventLoop::TimerNode& node) {
    auto& n = static_cast<TestNode&>(node);
    n.log->push_back(n.name);
  }
};

TEST(EventLoopTimerTest, EmbeddedNodesShareTheHeapWithHandles) {
  EventLoop loop;
  std::vector<std::string> order;
  TestNode a;
  TestNode b;
  TestNode c;
  TestNode d;
  TestNode never;
  for (auto [node, name] :
       {std::pair{&a, "a"}, {&b, "b"}, {&c, "c"}, {&d, "d"}, {&never, "never"}}) {
    node->log = &order;
    node->name = name;
  }
  loop.arm(a, &TestNode::fire, 0ms);
  TimerPtr h1 = loop.schedule(0ms, [&] { order.push_back("h1"); });
  loop.arm(b, &TestNode::fire, 1ms);
  loop.arm(never, &TestNode::fire, 2ms);
  loop.arm(c, &TestNode::fire, 60s);
  loop.arm(c, &TestNode::fire, 3ms);  // re-armed earlier: moves up, fires once
  loop.arm(d, &TestNode::fire, 0ms);
  loop.arm(d, &TestNode::fire, 4ms);  // re-armed later: moves down
  TimerPtr h2 = loop.schedule(5ms, [&] { order.push_back("h2"); });
  EXPECT_TRUE(never.queued());
  loop.cancel(never);
  EXPECT_FALSE(never.queued());
  loop.cancel(never);  // cancelling twice is harmless
  TimerPtr stop = loop.schedule(40ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"a", "h1", "b", "c", "d", "h2"}));
  EXPECT_FALSE(a.queued());
  EXPECT_FALSE(c.queued());
}

struct RearmingNode : EventLoop::TimerNode {
  EventLoop* loop = nullptr;
  int fired = 0;
  std::vector<std::string>* log = nullptr;
  static void fire(EventLoop::TimerNode& node) {
    auto& n = static_cast<RearmingNode&>(node);
    n.log->push_back("node" + std::to_string(++n.fired));
    if (n.fired == 1) {
      n.loop->arm(n, &RearmingNode::fire, 0ms);  // due now, but waits for the next turn
    } else {
      n.loop->stop();
    }
  }
};

TEST(EventLoopTimerTest, EmbeddedNodeReArmedByItsFiringWaitsForTheNextTurn) {
  EventLoop loop;
  std::vector<std::string> order;
  RearmingNode node;
  node.loop = &loop;
  node.log = &order;
  loop.arm(node, &RearmingNode::fire, 0ms);
  TimerPtr other = loop.schedule(0ms, [&] { order.push_back("other"); });
  TimerPtr guard = loop.schedule(5s, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"node1", "other", "node2"}));
}

// A module's embedded timer (imgate::TimerSlot), as a stage keeps one.
class SlotOwner : private TimerSlot {
 public:
  SlotOwner(EventLoop& loop, std::vector<std::string>& log, std::string name)
      : TimerSlot(&SlotOwner::onFire), loop_(loop), log_(log), name_(std::move(name)) {}
  void arm(std::chrono::milliseconds delay) { TimerSlot::arm(loop_, delay); }
  void cancel() { TimerSlot::cancel(); }
  bool armed() const { return TimerSlot::armed(); }
  int fired = 0;

 private:
  static void onFire(TimerSlot& slot) {
    auto& self = static_cast<SlotOwner&>(slot);
    ++self.fired;
    self.log_.push_back(self.name_);
  }
  EventLoop& loop_;
  std::vector<std::string>& log_;
  std::string name_;
};

TEST(EventLoopTimerTest, SlotsFireInDeadlineOrderAndReArmInPlace) {
  EventLoop loop;
  std::vector<std::string> order;
  SlotOwner late(loop, order, "late");
  SlotOwner early(loop, order, "early");
  SlotOwner gone(loop, order, "gone");
  auto dropped = std::make_unique<SlotOwner>(loop, order, "dropped");
  EXPECT_FALSE(late.armed());
  late.arm(1ms);
  early.arm(30ms);
  early.arm(0ms);  // re-armed: moves up, fires once
  gone.arm(2ms);
  gone.cancel();
  gone.cancel();  // twice: nothing
  EXPECT_FALSE(gone.armed());
  dropped->arm(3ms);
  dropped.reset();  // destroying an armed slot cancels it
  EXPECT_TRUE(late.armed());
  TimerPtr handle = loop.schedule(20ms, [&] { order.push_back("handle"); });
  TimerPtr guard = loop.schedule(60ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"early", "late", "handle"}));
  EXPECT_EQ(early.fired, 1);
  EXPECT_FALSE(late.armed());
}

// ---- Sockets in the loop's own epoll set (ioUpdate) -------------------------------------------

struct IoOwner {
  int fd = -1;
  std::vector<uint32_t> seen;
};

class EventLoopIoTest : public ::testing::Test {
 protected:
  EventLoopIoTest() {
    loop_.setIoHandler([](void* owner, uint32_t events) {
      static_cast<IoOwner*>(owner)->seen.push_back(events);
    });
  }
  ~EventLoopIoTest() override {
    for (int fd : fds_) {
      ::close(fd);
    }
  }
  // A connected pair: [0] watched by the loop, [1] the peer the test writes to.
  std::array<int, 2> pair() {
    std::array<int, 2> sv{};
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv.data()), 0);
    fds_.push_back(sv[0]);
    fds_.push_back(sv[1]);
    return sv;
  }
  // Runs the loop for one short while (its callbacks, then the guard timer stops it).
  void turn() {
    TimerPtr guard = loop_.schedule(30ms, [this] { loop_.stop(); });
    loop_.run();
  }

  EventLoop loop_;
  std::vector<int> fds_;
};

TEST_F(EventLoopIoTest, ReportsWhatTheMaskAsksForUntilRemoved) {
  const auto sv = pair();
  IoOwner owner{sv[0], {}};
  ASSERT_TRUE(loop_.ioUpdate(sv[0], &owner, 0, EPOLLIN));
  turn();
  EXPECT_TRUE(owner.seen.empty());  // nothing to read yet
  ASSERT_EQ(::write(sv[1], "x", 1), 1);
  turn();
  ASSERT_FALSE(owner.seen.empty());  // level-triggered: unread input is reported again
  EXPECT_TRUE(owner.seen.back() & EPOLLIN);

  owner.seen.clear();
  ASSERT_TRUE(loop_.ioUpdate(sv[0], &owner, EPOLLIN, EPOLLOUT));  // now only writability
  turn();
  ASSERT_FALSE(owner.seen.empty());
  EXPECT_EQ(owner.seen.back(), static_cast<uint32_t>(EPOLLOUT));

  owner.seen.clear();
  ASSERT_TRUE(loop_.ioUpdate(sv[0], &owner, EPOLLOUT, 0));  // removed
  turn();
  EXPECT_TRUE(owner.seen.empty());
  EXPECT_TRUE(loop_.ioUpdate(sv[0], &owner, 0, 0));  // no change: no call
}

TEST_F(EventLoopIoTest, HangUpWakesTheWatcher) {
  const auto sv = pair();
  IoOwner owner{sv[0], {}};
  ASSERT_TRUE(loop_.ioUpdate(sv[0], &owner, 0, EPOLLIN));
  ::shutdown(sv[1], SHUT_RDWR);
  turn();
  ASSERT_FALSE(owner.seen.empty());
  EXPECT_TRUE(owner.seen.back() & (EPOLLHUP | EPOLLIN));
}

TEST_F(EventLoopIoTest, MoreReadySocketsThanOneBatchAreAllServed) {
  const int n = EventLoop::kIoBatch + 7;  // two batches, within the default 1,024 descriptors
  std::vector<IoOwner> owners(n);
  for (IoOwner& o : owners) {
    const auto sv = pair();
    o.fd = sv[0];
    ASSERT_TRUE(loop_.ioUpdate(sv[0], &o, 0, EPOLLIN));
    ASSERT_EQ(::write(sv[1], "x", 1), 1);
  }
  turn();
  for (const IoOwner& o : owners) {
    EXPECT_FALSE(o.seen.empty());
  }
}

TEST_F(EventLoopIoTest, AddingAClosedSocketFailsWithTheReason) {
  IoOwner owner;
  errno = 0;
  EXPECT_FALSE(loop_.ioUpdate(123456, &owner, 0, EPOLLIN));
  EXPECT_EQ(errno, EBADF);
  EXPECT_TRUE(loop_.ioUpdate(123456, &owner, EPOLLIN, 0));  // removing one that is gone: fine
}

TEST(EventLoopTimerTest, HandleMayOutliveTheLoop) {
  TimerPtr survivor;
  {
    EventLoop loop;
    survivor = loop.schedule(1h, [] { FAIL() << "must never fire"; });
  }
  survivor.reset();  // no access to the destroyed loop
}

}  // namespace
}  // namespace imgate::core
