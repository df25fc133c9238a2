// SPDX-License-Identifier: Apache-2.0
#include "hub/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/stats.h"
#include "event/worker.h"

namespace imgate::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr auto kLoopTimeout = std::chrono::seconds(10);

// Session ids carry their worker index in the low byte.
uint64_t sid(uint64_t n, uint32_t worker) { return (n << 8) | worker; }

SessionRef ref(uint64_t id, std::string device = "phone") {
  SessionRef r;
  r.id = id;
  r.device = SmallString(device);
  r.origin = "proto.websocket\0public";
  r.peer = SmallString("10.0.0.1:" + std::to_string(id));
  r.connected_at_ms = static_cast<int64_t>(1000 + id);
  return r;
}

std::vector<uint64_t> idsOf(const std::vector<SessionInfo>& sessions) {
  std::vector<uint64_t> out;
  for (const SessionInfo& s : sessions) {
    out.push_back(s.id);
  }
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Two real workers that are never started: nothing here posts to them unless a test runs a
// worker's loop on the test thread itself.
class HubRegistryTest : public ::testing::Test {
 protected:
  HubRegistryTest() : registry_({}) {
    for (uint32_t i = 0; i < 2; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, registry_));
    }
    registry_.setWorkers({workers_[0].get(), workers_[1].get()});
  }
  ~HubRegistryTest() override { setCurrentDispatcher(nullptr); }

  // Runs `loop` on this thread until a callback stops it; fails instead of hanging.
  static void runUntilStopped(EventLoop& loop, const bool& fired) {
    bool timed_out = false;
    TimerPtr guard = loop.schedule(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       kLoopTimeout),
                                   [&] {
                                     timed_out = true;
                                     loop.stop();
                                   });
    loop.run();
    EXPECT_FALSE(timed_out) << "completion never arrived";
    EXPECT_TRUE(fired);
  }

  Registry registry_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

// ---- add / remove / userSessions ------------------------------------------------------------

TEST_F(HubRegistryTest, AddListsSessionsOldestFirstWithTheirFields) {
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(1, 0), "phone"), 0).evict, IsEmpty());
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(2, 1), "web"), 0).evict, IsEmpty());
  const auto sessions = registry_.userSessions("app", "u1");
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_THAT(idsOf(sessions), ElementsAre(sid(1, 0), sid(2, 1)));
  EXPECT_EQ(sessions[0].user, "u1");
  EXPECT_EQ(sessions[0].device, "phone");
  EXPECT_EQ(sessions[1].device, "web");
  EXPECT_EQ(sessions[0].protocol, "proto.websocket");
  EXPECT_EQ(sessions[0].listener, "public");
  EXPECT_EQ(sessions[1].peer, "10.0.0.1:" + std::to_string(sid(2, 1)));
  EXPECT_EQ(sessions[1].connected_at_ms, static_cast<int64_t>(1000 + sid(2, 1)));
  EXPECT_THAT(sessions[0].rooms, IsEmpty());
  EXPECT_EQ(registry_.totalUsers(), 1u);
}

TEST(SessionRefTest, OriginHoldsBothNamesInternedOnce) {
  const char* a = internOrigin("proto.socketio", "edge-1");
  EXPECT_EQ(a, internOrigin("proto.socketio", "edge-1"));  // one copy however many sessions
  EXPECT_NE(a, internOrigin("proto.socketio", "edge-2"));
  SessionRef r;
  EXPECT_EQ(r.protocol(), "");  // the default literal
  EXPECT_EQ(r.listener(), "");
  r.origin = a;
  EXPECT_EQ(r.protocol(), "proto.socketio");
  EXPECT_EQ(r.listener(), "edge-1");
  r.origin = internOrigin("", "l");
  EXPECT_EQ(r.protocol(), "");
  EXPECT_EQ(r.listener(), "l");
  r.device = SmallString("a-device-name-longer-than-23-bytes");
  r.peer = SmallString("[2001:db8::1234:5678:9abc]:65535");
  EXPECT_EQ(r.device.view(), "a-device-name-longer-than-23-bytes");
  EXPECT_EQ(r.peer.view(), "[2001:db8::1234:5678:9abc]:65535");
}

std::vector<uint64_t> idsIn(const SessionList& list) {
  std::vector<uint64_t> out;
  for (const SessionRef& r : list) {
    out.push_back(r.id);
  }
  return out;
}

TEST(SessionListTest, KeepsOrderInPlaceAndBeyond) {
  SessionList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.size(), 0u);
  EXPECT_TRUE(idsIn(list).empty());
  list.erase(7);  // absent: nothing
  for (uint64_t id : {256u, 512u, 768u, 1024u}) {
    list.push_back(ref(id));
  }
  EXPECT_EQ(list.size(), 4u);
  EXPECT_EQ(idsIn(list), (std::vector<uint64_t>{256, 512, 768, 1024}));
  EXPECT_EQ(list.front().device.view(), "phone");
  list.erase(768);  // from the overflow
  EXPECT_EQ(idsIn(list), (std::vector<uint64_t>{256, 512, 1024}));
  list.erase(256);  // the one in place: the next moves up
  EXPECT_EQ(idsIn(list), (std::vector<uint64_t>{512, 1024}));
  EXPECT_EQ(list.front().peer.view(), "10.0.0.1:512");
  list.erase(0);  // never an id
  list.pop_front();
  EXPECT_EQ(idsIn(list), (std::vector<uint64_t>{1024}));
  list.pop_front();
  EXPECT_TRUE(list.empty());
  list.push_back(ref(2048));  // in place again
  EXPECT_EQ(idsIn(list), (std::vector<uint64_t>{2048}));
}

TEST_F(HubRegistryTest, UnknownUserHasNoSessions) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  EXPECT_THAT(registry_.userSessions("app", "u2"), IsEmpty());
  EXPECT_THAT(registry_.userSessions("other", "u1"), IsEmpty());
}

TEST_F(HubRegistryTest, RemoveDropsOneSessionAndTheUserWithItsLast) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.add("app", "u1", ref(sid(2, 0)), 0);
  registry_.add("app", "u1", ref(sid(3, 1)), 0);
  registry_.remove("app", "u1", sid(2, 0));
  EXPECT_THAT(idsOf(registry_.userSessions("app", "u1")), ElementsAre(sid(1, 0), sid(3, 1)));
  EXPECT_EQ(registry_.totalUsers(), 1u);
  registry_.remove("app", "u1", sid(1, 0));
  registry_.remove("app", "u1", sid(3, 1));
  EXPECT_THAT(registry_.userSessions("app", "u1"), IsEmpty());
  EXPECT_EQ(registry_.totalUsers(), 0u);
  EXPECT_EQ(registry_.stats("app").sessions, 0u);
}

TEST_F(HubRegistryTest, RemoveOfUnknownUserOrSessionIsHarmless) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.remove("app", "nobody", sid(1, 0));
  registry_.remove("app", "u1", sid(99, 0));
  registry_.remove("other", "u1", sid(1, 0));
  EXPECT_THAT(idsOf(registry_.userSessions("app", "u1")), ElementsAre(sid(1, 0)));
}

// ---- per-user cap ---------------------------------------------------------------------------

TEST_F(HubRegistryTest, CapEvictsTheOldestInOrder) {
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(1, 0)), 2).evict, IsEmpty());
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(2, 1)), 2).evict, IsEmpty());
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(3, 0)), 2).evict, ElementsAre(sid(1, 0)));
  EXPECT_THAT(idsOf(registry_.userSessions("app", "u1")), ElementsAre(sid(2, 1), sid(3, 0)));
  // A lower cap (after a reload) evicts as many as needed, oldest first.
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(4, 1)), 1).evict,
              ElementsAre(sid(2, 1), sid(3, 0)));
  EXPECT_THAT(idsOf(registry_.userSessions("app", "u1")), ElementsAre(sid(4, 1)));
  EXPECT_EQ(registry_.stats("app").sessions, 1u);
  // The evicted session's own remove() later finds nothing and changes nothing.
  registry_.remove("app", "u1", sid(1, 0));
  EXPECT_THAT(idsOf(registry_.userSessions("app", "u1")), ElementsAre(sid(4, 1)));
}

TEST_F(HubRegistryTest, CapZeroIsUnlimited) {
  for (uint64_t n = 1; n <= 200; ++n) {
    EXPECT_THAT(registry_.add("app", "u1", ref(sid(n, 0)), 0).evict, IsEmpty());
  }
  EXPECT_EQ(registry_.userSessions("app", "u1").size(), 200u);
}

TEST_F(HubRegistryTest, CapIsPerUserAndPerApp) {
  registry_.add("app", "u1", ref(sid(1, 0)), 1);
  registry_.add("app", "u2", ref(sid(2, 0)), 1);
  registry_.add("other", "u1", ref(sid(3, 0)), 1);
  EXPECT_EQ(registry_.userSessions("app", "u1").size(), 1u);
  EXPECT_EQ(registry_.userSessions("app", "u2").size(), 1u);
  EXPECT_EQ(registry_.userSessions("other", "u1").size(), 1u);
}

// ---- rooms ----------------------------------------------------------------------------------

TEST_F(HubRegistryTest, JoinReturnsOfflineUsersInOrderAndMembersAreSorted) {
  registry_.add("app", "zed", ref(sid(1, 0)), 0);
  registry_.add("app", "amy", ref(sid(2, 1)), 0);
  registry_.add("app", "max", ref(sid(3, 0)), 0);
  EXPECT_THAT(registry_.join("app", "r", {"zed", "ghost2", "amy", "ghost1", "max"}),
              ElementsAre("ghost2", "ghost1"));
  EXPECT_THAT(registry_.roomMembers("app", "r"), ElementsAre("amy", "max", "zed"));
  EXPECT_EQ(registry_.totalRooms(), 1u);
  EXPECT_THAT(registry_.userSessions("app", "amy")[0].rooms, ElementsAre("r"));
}

TEST_F(HubRegistryTest, JoinIsIdempotent) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  EXPECT_THAT(registry_.join("app", "r", {"u1", "u1"}), IsEmpty());
  EXPECT_THAT(registry_.join("app", "r", {"u1"}), IsEmpty());
  EXPECT_THAT(registry_.roomMembers("app", "r"), ElementsAre("u1"));
  EXPECT_THAT(registry_.userSessions("app", "u1")[0].rooms, ElementsAre("r"));
}

TEST_F(HubRegistryTest, JoinOfOnlyOfflineUsersCreatesNoRoom) {
  EXPECT_THAT(registry_.join("app", "r", {"a", "b"}), ElementsAre("a", "b"));
  EXPECT_THAT(registry_.roomMembers("app", "r"), IsEmpty());
  EXPECT_EQ(registry_.totalRooms(), 0u);
  EXPECT_EQ(registry_.stats("app").rooms, 0u);
}

TEST_F(HubRegistryTest, LaterAddReturnsTheUsersRooms) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.join("app", "r2", {"u1"});
  registry_.join("app", "r1", {"u1"});
  const auto added = registry_.add("app", "u1", ref(sid(2, 1)), 0);
  EXPECT_THAT(sorted(added.rooms), ElementsAre("r1", "r2"));
  EXPECT_THAT(added.evict, IsEmpty());
  // Every session reports the user's rooms, sorted.
  for (const SessionInfo& s : registry_.userSessions("app", "u1")) {
    EXPECT_THAT(s.rooms, ElementsAre("r1", "r2"));
  }
  // Another user's add is not affected.
  EXPECT_THAT(registry_.add("app", "u2", ref(sid(3, 0)), 0).rooms, IsEmpty());
}

TEST_F(HubRegistryTest, LeaveReturnsUsersWhoWereNotMembers) {
  registry_.add("app", "in1", ref(sid(1, 0)), 0);
  registry_.add("app", "in2", ref(sid(2, 0)), 0);
  registry_.add("app", "online_not_member", ref(sid(3, 0)), 0);
  registry_.join("app", "r", {"in1", "in2"});
  EXPECT_THAT(registry_.leave("app", "r", {"in1", "online_not_member", "offline"}),
              ElementsAre("online_not_member", "offline"));
  EXPECT_THAT(registry_.roomMembers("app", "r"), ElementsAre("in2"));
  EXPECT_THAT(registry_.userSessions("app", "in1")[0].rooms, IsEmpty());
  EXPECT_THAT(registry_.userSessions("app", "in2")[0].rooms, ElementsAre("r"));
  // Leaving twice: no longer a member.
  EXPECT_THAT(registry_.leave("app", "r", {"in1"}), ElementsAre("in1"));
}

TEST_F(HubRegistryTest, LastLeaveRemovesTheRoom) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.join("app", "r", {"u1"});
  registry_.join("app", "keep", {"u1"});
  EXPECT_EQ(registry_.totalRooms(), 2u);
  EXPECT_THAT(registry_.leave("app", "r", {"u1"}), IsEmpty());
  EXPECT_EQ(registry_.totalRooms(), 1u);
  EXPECT_EQ(registry_.stats("app").rooms, 1u);
  EXPECT_THAT(registry_.roomMembers("app", "r"), IsEmpty());
  EXPECT_THAT(registry_.leave("app", "never", {"u1"}), ElementsAre("u1"));
  EXPECT_EQ(registry_.totalRooms(), 1u);
}

TEST_F(HubRegistryTest, MembershipEndsWithTheUsersLastSession) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.add("app", "u1", ref(sid(2, 1)), 0);
  registry_.add("app", "u2", ref(sid(3, 0)), 0);
  registry_.join("app", "solo", {"u1"});
  registry_.join("app", "shared", {"u1", "u2"});
  registry_.remove("app", "u1", sid(1, 0));
  EXPECT_THAT(registry_.roomMembers("app", "shared"), ElementsAre("u1", "u2"));
  EXPECT_THAT(registry_.roomMembers("app", "solo"), ElementsAre("u1"));
  registry_.remove("app", "u1", sid(2, 1));
  EXPECT_THAT(registry_.roomMembers("app", "shared"), ElementsAre("u2"));
  EXPECT_THAT(registry_.roomMembers("app", "solo"), IsEmpty());
  EXPECT_EQ(registry_.totalRooms(), 1u);
  // Coming back does not restore the old memberships.
  EXPECT_THAT(registry_.add("app", "u1", ref(sid(4, 0)), 0).rooms, IsEmpty());
  EXPECT_THAT(registry_.roomMembers("app", "shared"), ElementsAre("u2"));
}

TEST_F(HubRegistryTest, EvictionDoesNotEndMembership) {
  registry_.add("app", "u1", ref(sid(1, 0)), 1);
  registry_.join("app", "r", {"u1"});
  const auto added = registry_.add("app", "u1", ref(sid(2, 0)), 1);
  EXPECT_THAT(added.evict, ElementsAre(sid(1, 0)));
  EXPECT_THAT(added.rooms, ElementsAre("r"));
  EXPECT_THAT(registry_.roomMembers("app", "r"), ElementsAre("u1"));
}

// ---- apps and stats -------------------------------------------------------------------------

TEST_F(HubRegistryTest, AppsAreIsolated) {
  registry_.add("a", "u", ref(sid(1, 0)), 0);
  registry_.add("a", "u", ref(sid(2, 0)), 0);
  registry_.add("b", "u", ref(sid(3, 1)), 0);
  registry_.add("b", "v", ref(sid(4, 1)), 0);
  registry_.join("a", "r", {"u"});
  EXPECT_THAT(registry_.join("b", "r2", {"u", "v"}), IsEmpty());
  EXPECT_THAT(idsOf(registry_.userSessions("a", "u")), ElementsAre(sid(1, 0), sid(2, 0)));
  EXPECT_THAT(idsOf(registry_.userSessions("b", "u")), ElementsAre(sid(3, 1)));
  EXPECT_THAT(registry_.roomMembers("a", "r"), ElementsAre("u"));
  EXPECT_THAT(registry_.roomMembers("b", "r"), IsEmpty());
  EXPECT_THAT(registry_.roomMembers("a", "r2"), IsEmpty());
  EXPECT_THAT(registry_.userSessions("b", "u")[0].rooms, ElementsAre("r2"));
  // "v" exists only in b: joining it in a reports it offline.
  EXPECT_THAT(registry_.join("a", "r", {"v"}), ElementsAre("v"));

  const HubStats a = registry_.stats("a");
  EXPECT_EQ(a.sessions, 2u);
  EXPECT_EQ(a.users, 1u);
  EXPECT_EQ(a.rooms, 1u);
  const HubStats b = registry_.stats("b");
  EXPECT_EQ(b.sessions, 2u);
  EXPECT_EQ(b.users, 2u);
  EXPECT_EQ(b.rooms, 1u);
  EXPECT_EQ(registry_.totalUsers(), 3u);
  EXPECT_EQ(registry_.totalRooms(), 2u);

  // Removing u's last session in b leaves a untouched.
  registry_.remove("b", "u", sid(3, 1));
  EXPECT_THAT(registry_.roomMembers("b", "r2"), ElementsAre("v"));
  EXPECT_THAT(registry_.roomMembers("a", "r"), ElementsAre("u"));
  EXPECT_EQ(registry_.stats("a").sessions, 2u);
}

TEST_F(HubRegistryTest, StatsDoNotMatchAppNamePrefixes) {
  registry_.add("ab", "u", ref(sid(1, 0)), 0);
  registry_.join("ab", "r", {"u"});
  registry_.add("a", "bu", ref(sid(2, 0)), 0);
  const HubStats a = registry_.stats("a");
  EXPECT_EQ(a.users, 1u);
  EXPECT_EQ(a.sessions, 1u);
  EXPECT_EQ(a.rooms, 0u);
  const HubStats none = registry_.stats("");
  EXPECT_EQ(none.users, 0u);
  EXPECT_EQ(none.sessions, 0u);
  EXPECT_THAT(registry_.userSessions("a", "bu").size(), 1u);
  EXPECT_THAT(registry_.userSessions("ab", "u").size(), 1u);
  EXPECT_THAT(registry_.userSessions("a", "bu")[0].rooms, IsEmpty());
}

TEST_F(HubRegistryTest, EmptyRegistryStats) {
  const HubStats s = registry_.stats("app");
  EXPECT_EQ(s.sessions, 0u);
  EXPECT_EQ(s.users, 0u);
  EXPECT_EQ(s.rooms, 0u);
  EXPECT_EQ(registry_.totalUsers(), 0u);
  EXPECT_EQ(registry_.totalRooms(), 0u);
  EXPECT_EQ(registry_.workerCount(), 2u);
  EXPECT_EQ(&registry_.worker(3), workers_[1].get());
}

// ---- push / kick completions ----------------------------------------------------------------

TEST_F(HubRegistryTest, PushToOfflineUsersCompletesAsynchronously) {
  EventLoop loop;
  setCurrentDispatcher(&loop);
  const uint64_t pushes_before = StatsRegistry::instance().core().pushes.load();
  bool fired = false;
  std::optional<PushResult> result;
  Message m;
  m.payload = makeBytes("hello");
  registry_.push("app", PushTarget{TargetKind::kUser, {"x", "y"}}, std::move(m),
                 [&](PushResult r) {
                   fired = true;
                   result = std::move(r);
                   loop.stop();
                 });
  EXPECT_FALSE(fired) << "completion must not run inside push()";
  runUntilStopped(loop, fired);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->sessions, 0u);
  EXPECT_EQ(result->dropped, 0u);
  EXPECT_THAT(result->offline, ElementsAre("x", "y"));
  EXPECT_EQ(StatsRegistry::instance().core().pushes.load() - pushes_before, 1u);
}

TEST_F(HubRegistryTest, PushOfflineIsPerApp) {
  registry_.add("other", "x", ref(sid(1, 0)), 0);
  EventLoop loop;
  setCurrentDispatcher(&loop);
  bool fired = false;
  std::optional<PushResult> result;
  registry_.push("app", PushTarget{TargetKind::kUser, {"x"}}, Message{}, [&](PushResult r) {
    fired = true;
    result = std::move(r);
    loop.stop();
  });
  runUntilStopped(loop, fired);
  ASSERT_TRUE(result.has_value());
  EXPECT_THAT(result->offline, ElementsAre("x"));
  EXPECT_EQ(result->sessions, 0u);
}

// Regression, fixed: a caller with no event loop (no current dispatcher) used to crash the
// completion (null dispatcher). It now completes on the thread that finished the job.
TEST_F(HubRegistryTest, CallerWithoutEventLoopStillGetsCompletions) {
  setCurrentDispatcher(nullptr);
  bool pushed = false;
  registry_.push("app", PushTarget{TargetKind::kUser, {"ghost"}}, Message{},
                 [&](PushResult r) {
                   pushed = true;
                   EXPECT_EQ(r.offline, std::vector<std::string>{"ghost"});
                 });
  EXPECT_TRUE(pushed);
  bool kicked = false;
  registry_.kick("app", "ghost", 0, "bye", [&](uint64_t n) {
    kicked = true;
    EXPECT_EQ(n, 0u);
  });
  EXPECT_TRUE(kicked);
}

TEST_F(HubRegistryTest, PushWithoutCallbackIsFine) {
  EventLoop loop;
  setCurrentDispatcher(&loop);
  registry_.push("app", PushTarget{TargetKind::kUser, {"x"}}, Message{}, nullptr);
  registry_.kick("app", "x", 0, "bye", nullptr);
  SUCCEED();
}

TEST_F(HubRegistryTest, KickOfUserWithoutSessionsReportsZeroAsynchronously) {
  EventLoop loop;
  setCurrentDispatcher(&loop);
  bool fired = false;
  uint64_t closed = 99;
  registry_.kick("app", "nobody", 0, "bye", [&](uint64_t n) {
    fired = true;
    closed = n;
    loop.stop();
  });
  EXPECT_FALSE(fired) << "completion must not run inside kick()";
  runUntilStopped(loop, fired);
  EXPECT_EQ(closed, 0u);
}

TEST_F(HubRegistryTest, KickOfAnotherSessionIdReportsZero) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  EventLoop loop;
  setCurrentDispatcher(&loop);
  bool fired = false;
  uint64_t closed = 99;
  // Session 7 is not u1's: nothing is posted to any worker.
  registry_.kick("app", "u1", sid(7, 0), "bye", [&](uint64_t n) {
    fired = true;
    closed = n;
    loop.stop();
  });
  runUntilStopped(loop, fired);
  EXPECT_EQ(closed, 0u);
}

TEST_F(HubRegistryTest, CompletionRunsOnTheCallingThreadsDispatcher) {
  EventLoop loop;
  std::thread::id caller;
  std::thread::id ran_on;
  bool fired = false;
  std::thread t([&] {
    caller = std::this_thread::get_id();
    setCurrentDispatcher(&loop);
    registry_.push("app", PushTarget{TargetKind::kUser, {"x"}}, Message{}, [&](PushResult) {
      fired = true;
      ran_on = std::this_thread::get_id();
      loop.stop();
    });
    runUntilStopped(loop, fired);
    setCurrentDispatcher(nullptr);
  });
  t.join();
  EXPECT_TRUE(fired);
  EXPECT_EQ(ran_on, caller);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

// The delivery path through a worker, with the worker's loop run on the test thread (it is also
// the origin dispatcher): the registered user is not offline, and since no Connection exists on
// the worker nothing is written.
TEST_F(HubRegistryTest, PushToRegisteredUserGoesThroughItsWorker) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  registry_.add("app", "u1", ref(sid(2, 0)), 0);
  Worker& w0 = *workers_[0];
  setCurrentDispatcher(&w0);
  bool fired = false;
  std::optional<PushResult> result;
  registry_.push("app", PushTarget{TargetKind::kUser, {"u1", "ghost"}}, Message{},
                 [&](PushResult r) {
                   fired = true;
                   result = std::move(r);
                   w0.stop();
                 });
  EXPECT_FALSE(fired);
  runUntilStopped(w0, fired);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->sessions, 0u);
  EXPECT_THAT(result->offline, ElementsAre("ghost"));
}

TEST_F(HubRegistryTest, PushToSessionIdsReportsUnknownAndMalformedIdsOffline) {
  Worker& w0 = *workers_[0];
  setCurrentDispatcher(&w0);
  bool fired = false;
  std::optional<PushResult> result;
  // "256" is session 1 on worker 0 (no such connection); "2" names worker 2 of 2; the rest are
  // not decimal ids.
  registry_.push("app", PushTarget{TargetKind::kSession, {"256", "2", "abc", "", "12z"}},
                 Message{}, [&](PushResult r) {
                   fired = true;
                   result = std::move(r);
                   w0.stop();
                 });
  runUntilStopped(w0, fired);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->sessions, 0u);
  EXPECT_THAT(result->offline, UnorderedElementsAre("256", "2", "abc", "", "12z"));
}

TEST_F(HubRegistryTest, PushToAllWaitsForEveryWorker) {
  Worker& w0 = *workers_[0];
  Worker& w1 = *workers_[1];
  setCurrentDispatcher(&w0);
  bool fired = false;
  std::optional<PushResult> result;
  registry_.push("app", PushTarget{TargetKind::kAll, {}}, Message{}, [&](PushResult r) {
    fired = true;
    result = std::move(r);
    w0.stop();
  });
  // Worker 1 finishes first; the completion must wait for worker 0 too.
  w1.stop();
  w1.run();
  EXPECT_FALSE(fired);
  runUntilStopped(w0, fired);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->sessions, 0u);
  EXPECT_THAT(result->offline, IsEmpty());
}

TEST_F(HubRegistryTest, KickOfRegisteredSessionWithoutConnectionReportsZero) {
  registry_.add("app", "u1", ref(sid(1, 0)), 0);
  Worker& w0 = *workers_[0];
  setCurrentDispatcher(&w0);
  bool fired = false;
  uint64_t closed = 99;
  registry_.kick("app", "u1", 0, "bye", [&](uint64_t n) {
    fired = true;
    closed = n;
    w0.stop();
  });
  runUntilStopped(w0, fired);
  EXPECT_EQ(closed, 0u);
}

// ---- concurrency ----------------------------------------------------------------------------

TEST_F(HubRegistryTest, ConcurrentAddRemoveKeepsCountsConsistent) {
  constexpr int kThreads = 4;
  constexpr int kUsers = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kUsers; ++i) {
        const std::string user = "t" + std::to_string(t) + "u" + std::to_string(i);
        const uint64_t a = sid(static_cast<uint64_t>(t * 10000 + 2 * i + 1), 0);
        const uint64_t b = sid(static_cast<uint64_t>(t * 10000 + 2 * i + 2), 1);
        registry_.add("app", user, ref(a), 0);
        registry_.add("app", user, ref(b), 0);
        registry_.join("app", "room" + std::to_string(t), {user});
        if (i % 2 == 0) {
          registry_.remove("app", user, a);
          registry_.remove("app", user, b);
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  const HubStats s = registry_.stats("app");
  EXPECT_EQ(s.users, static_cast<uint64_t>(kThreads * kUsers / 2));
  EXPECT_EQ(s.sessions, static_cast<uint64_t>(kThreads * kUsers));
  EXPECT_EQ(s.rooms, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(registry_.roomMembers("app", "room0").size(), static_cast<size_t>(kUsers / 2));
}

// Regression, fixed (was a bug in core/hub/registry.cc, Registry::join, lines ~328-349; same shape in Registry::leave,
// ~361-387): join() checks that the user is online and adds the room to the user's entry under
// the user-shard lock, RELEASES it, and only later adds the user to the room shard. A remove()
// of the user's last session that runs in between erases the entry and cleans the room shard
// before join() writes to it, so the room keeps a member with no session forever: roomMembers()
// lists an offline user, the room is never deleted, stats().rooms / totalRooms() stay high.
// (leave() racing join() leaves the two indexes disagreeing the same way.) Probabilistic: on the
// 2-core test machine it fails about 2 runs in 3 per 20000 rounds; 100000 take about 1 s.
// Fix: update the room shard while still holding the user-shard lock, in join() and leave()
// (lock order user shard -> room shard; remove() never holds both, so no deadlock), e.g. move
// the `rs.rooms[rk].insert(user)` into the per-user loop, under `lock`.
TEST_F(HubRegistryTest, JoinRacingLastRemoveLeavesNoStaleMember) {
  constexpr int kRounds = 100000;
  std::atomic<int> round{-1};
  std::atomic<int> finished{0};
  auto user = [](int i) { return "u" + std::to_string(i); };
  auto id = [](int i) { return sid(static_cast<uint64_t>(i + 1), 0); };
  std::thread joiner([&] {
    for (int i = 0; i < kRounds; ++i) {
      while (round.load() < i) {
        std::this_thread::yield();
      }
      registry_.join("app", "r", {user(i)});
      finished.fetch_add(1);
    }
  });
  std::thread remover([&] {
    for (int i = 0; i < kRounds; ++i) {
      while (round.load() < i) {
        std::this_thread::yield();
      }
      registry_.remove("app", user(i), id(i));
      finished.fetch_add(1);
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    registry_.add("app", user(i), ref(id(i)), 0);
    round.store(i);
    while (finished.load() < 2 * (i + 1)) {
      std::this_thread::yield();
    }
  }
  joiner.join();
  remover.join();
  // Every user's only session is gone, so no room may have members.
  EXPECT_EQ(registry_.totalUsers(), 0u);
  EXPECT_THAT(registry_.roomMembers("app", "r"), IsEmpty());
  EXPECT_EQ(registry_.totalRooms(), 0u);
}

}  // namespace
}  // namespace imgate::core
