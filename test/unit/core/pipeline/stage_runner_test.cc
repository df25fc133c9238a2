// SPDX-License-Identifier: Apache-2.0
#include "pipeline/stage_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "fake_stages.h"

namespace imgate::core {
namespace {

using pipeline_test::CounterSnapshot;
using pipeline_test::FakeHost;
using pipeline_test::ForwardingCallbacks;
using pipeline_test::opens;
using pipeline_test::PipelineBuilder;
using pipeline_test::returns;
using pipeline_test::ScriptedStageConfig;
using pipeline_test::textMessage;
using pipeline_test::Trace;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class StageRunnerTest : public ::testing::Test {
 protected:
  StageRunnerTest() : host_(trace_), builder_(trace_), runner_(host_) {
    host_.runner = &runner_;
    host_.callbacks = &callbacks_;
    callbacks_.runner = &runner_;
  }

  ScriptedStageConfig& add(const std::string& name) { return builder_.add(name); }

  // Builds the pipeline, creates the stages and forgets what that logged.
  void start() {
    ASSERT_TRUE(runner_.reset(builder_.build()));
    trace_.clear();
  }

  void send(std::string payload) { runner_.inbound(textMessage(std::move(payload))); }

  Trace trace_;
  FakeHost host_;
  ForwardingCallbacks callbacks_;
  PipelineBuilder builder_;
  StageRunner runner_;
};

// ---- Inbound chain --------------------------------------------------------------------------

TEST_F(StageRunnerTest, PassesThroughEveryStageInOrder) {
  add("a");
  add("b");
  add("c");
  start();
  EXPECT_EQ(runner_.stageCount(), 3u);
  const auto before = CounterSnapshot::take();
  send("m1");
  send("m2");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m1", "b.onMessage m1",
                                  "c.onMessage m1", "host.atMessageBoundary", "a.onMessage m2",
                                  "b.onMessage m2", "c.onMessage m2"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.dropped, 0u);
  EXPECT_EQ(d.rejected, 0u);
  EXPECT_EQ(d.paused, 0u);
  EXPECT_EQ(d.bugs, 0u);
  EXPECT_FALSE(runner_.busy());
}

TEST_F(StageRunnerTest, EditsInPlaceAreSeenByLaterStages) {
  add("a").script().on_message = [](StageCallbacks&, Message& m) {
    m.payload = makeBytes(std::string(m.data()) + "+a");
    return Verdict::pass();
  };
  add("b");
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m+a"));
}

TEST_F(StageRunnerTest, EmptyPipelinePassesEverything) {
  start();
  EXPECT_EQ(runner_.stageCount(), 0u);
  send("m");
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "host.openAccepted"));
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
}

TEST_F(StageRunnerTest, DropStopsTheChainSilently) {
  add("a");
  add("b").script().on_message = returns(Verdict::drop());
  add("c");
  start();
  const auto before = CounterSnapshot::take();
  send("m1");
  send("m2");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m1", "b.onMessage m1",
                                  "host.atMessageBoundary", "a.onMessage m2", "b.onMessage m2"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.dropped, 2u);
  EXPECT_EQ(d.rejected, 0u);
  EXPECT_TRUE(host_.alive());
}

TEST_F(StageRunnerTest, RejectTellsTheHostWithCodeReasonAndInstance) {
  add("a");
  add("b").script().on_message =
      returns(Verdict::reject(Errc::kPermissionDenied, "not in this room"));
  add("c");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m",
                                  "host.messageRejected permission_denied 'not in this room' "
                                  "p[1]:b"));
  EXPECT_EQ(CounterSnapshot::take().since(before).rejected, 1u);
}

TEST_F(StageRunnerTest, RejectStopsTheChainEvenIfTheHostStaysAlive) {
  host_.stay_alive_after_reject = true;
  add("a").script().on_message = returns(Verdict::reject(Errc::kResourceExhausted, "slow down"));
  add("b");
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m",
                                  "host.messageRejected resource_exhausted 'slow down' p[0]:a"));
}

TEST_F(StageRunnerTest, StdExceptionBecomesInternal) {
  add("a").script().on_message = [](StageCallbacks&, Message&) -> Verdict {
    throw std::runtime_error("boom");
  };
  add("b");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m",
                                  "host.messageRejected internal 'stage failed' p[0]:a"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.bugs, 1u);
  EXPECT_EQ(d.rejected, 1u);
  EXPECT_FALSE(runner_.inHook());
}

TEST_F(StageRunnerTest, NonStdExceptionBecomesInternal) {
  add("a");
  add("b").script().on_message = [](StageCallbacks&, Message&) -> Verdict { throw 42; };
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m",
                                  "host.messageRejected internal 'stage failed' p[1]:b"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, HostDyingMidChainStopsTheRunner) {
  add("a").script().on_message = [this](StageCallbacks&, Message&) {
    host_.kill();
    return Verdict::pass();
  };
  add("b");
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m"));
}

// ---- Pause / resume / reject ----------------------------------------------------------------

TEST_F(StageRunnerTest, PauseThenResumeContinuesAtTheNextStage) {
  add("a");
  add("b").script().on_message = returns(Verdict::pause());
  add("c");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_TRUE(runner_.paused());
  EXPECT_TRUE(runner_.busy());
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m",
                                  "host.pauseChanged on message"));
  trace_.clear();
  callbacks_.resume();
  EXPECT_FALSE(runner_.paused());
  EXPECT_FALSE(runner_.busy());
  // The paused message itself (not a copy made before b ran) reaches c, and b is not re-run.
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "c.onMessage m",
                                  "host.setReading on"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.paused, 1u);
  EXPECT_EQ(d.bugs, 0u);
}

TEST_F(StageRunnerTest, PausedMessageKeepsEditsMadeBeforeThePause) {
  add("a").script().on_message = [](StageCallbacks&, Message& m) {
    m.event = "stamped";
    return Verdict::pause();
  };
  std::string seen;
  add("b").script().on_message = [&seen](StageCallbacks&, Message& m) {
    seen = m.event;
    return Verdict::pass();
  };
  start();
  send("m");
  callbacks_.resume();
  EXPECT_EQ(seen, "stamped");
}

TEST_F(StageRunnerTest, PauseAtTheLastStageThenResumeEndsTheChain) {
  add("a");
  add("b").script().on_message = returns(Verdict::pause());
  start();
  send("m");
  trace_.clear();
  callbacks_.resume();
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "host.setReading on"));
  EXPECT_FALSE(runner_.busy());
}

TEST_F(StageRunnerTest, PauseThenRejectTellsTheHostAndSkipsTheRest) {
  add("a");
  add("b").script().on_message = returns(Verdict::pause());
  add("c");
  start();
  send("m");
  trace_.clear();
  callbacks_.reject(Errc::kUnauthenticated, "token expired");
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message",
                                  "host.messageRejected unauthenticated 'token expired' p[1]:b"));
}

TEST_F(StageRunnerTest, ResumeInsideTheHookContinuesImmediately) {
  add("a").script().on_message = [](StageCallbacks& cb, Message&) {
    cb.resume();  // the async work finished synchronously
    return Verdict::pause();
  };
  add("b");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_FALSE(runner_.paused());
  EXPECT_FALSE(runner_.busy());
  // No pause timer is armed at all, and b sees the message right away.
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m",
                                  "host.setReading on"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.bugs, 0u);
  send("n");
  EXPECT_FALSE(runner_.paused());
}

TEST_F(StageRunnerTest, RejectInsideTheHookWithPauseRejects) {
  add("a").script().on_message = [](StageCallbacks& cb, Message&) {
    cb.reject(Errc::kPermissionDenied, "denied early");
    return Verdict::pause();
  };
  add("b");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m",
                                  "host.messageRejected permission_denied 'denied early' p[0]:a"));
  const auto d = CounterSnapshot::take().since(before);
  EXPECT_EQ(d.rejected, 1u);
  EXPECT_EQ(d.paused, 0u);
}

TEST_F(StageRunnerTest, PauseTimeoutRejectsWithTimeout) {
  add("a").script().on_message = returns(Verdict::pause());
  add("b");
  start();
  send("m");
  trace_.clear();
  const auto before = CounterSnapshot::take();
  runner_.pauseTimedOut();
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.messageRejected timeout 'stage did not answer in time' "
                                  "p[0]:a"));
  EXPECT_EQ(CounterSnapshot::take().since(before).pause_timeouts, 1u);
  // A late answer from the stage after the timeout is a bug, and is ignored.
  trace_.clear();
  callbacks_.resume();
  EXPECT_THAT(trace_, IsEmpty());
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, PauseTimeoutWithoutPauseDoesNothing) {
  add("a");
  start();
  const auto before = CounterSnapshot::take();
  runner_.pauseTimedOut();
  EXPECT_THAT(trace_, IsEmpty());
  EXPECT_EQ(CounterSnapshot::take().since(before).pause_timeouts, 0u);
}

TEST_F(StageRunnerTest, ResumeOrRejectWithoutPauseIsACountedBug) {
  add("a");
  start();
  const auto before = CounterSnapshot::take();
  callbacks_.resume();
  callbacks_.reject(Errc::kInternal, "nothing paused");
  EXPECT_THAT(trace_, IsEmpty());
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 2u);
}

TEST_F(StageRunnerTest, SecondPauseAfterResumeWaitsAgain) {
  add("a").script().on_message = returns(Verdict::pause());
  add("b").script().on_message = returns(Verdict::pause());
  add("c");
  start();
  send("m");
  trace_.clear();
  callbacks_.resume();
  EXPECT_TRUE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "b.onMessage m",
                                  "host.pauseChanged on message"));
  trace_.clear();
  callbacks_.resume();
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "c.onMessage m",
                                  "host.setReading on"));
}

// ---- Queue behind a pause -------------------------------------------------------------------

TEST_F(StageRunnerTest, MessagesWhilePausedAreQueuedInOrderAndReadingStops) {
  int calls = 0;
  add("a").script().on_message = [&calls](StageCallbacks&, Message&) {
    return ++calls == 1 ? Verdict::pause() : Verdict::pass();
  };
  add("b");
  start();
  send("m1");
  send("m2");
  send("m3");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m1",
                                  "host.pauseChanged on message", "host.setReading off",
                                  "host.setReading off"));
  trace_.clear();
  callbacks_.resume();
  // Each queued message passes a message boundary of its own, in arrival order, and reading
  // restarts only once the queue is empty.
  EXPECT_THAT(trace_,
              ElementsAre("host.pauseChanged off message", "b.onMessage m1",
                          "host.atMessageBoundary", "a.onMessage m2", "b.onMessage m2",
                          "host.atMessageBoundary", "a.onMessage m3", "b.onMessage m3",
                          "host.setReading on"));
  EXPECT_FALSE(runner_.busy());
}

TEST_F(StageRunnerTest, QueuedMessageThatPausesHoldsTheRestOfTheQueue) {
  add("a").script().on_message = [](StageCallbacks&, Message& m) {
    return m.data() == "p1" || m.data() == "p2" ? Verdict::pause() : Verdict::pass();
  };
  start();
  send("p1");
  send("p2");
  send("m3");
  trace_.clear();
  callbacks_.resume();
  EXPECT_TRUE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "host.atMessageBoundary",
                                  "a.onMessage p2", "host.pauseChanged on message"));
  trace_.clear();
  callbacks_.resume();
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "host.atMessageBoundary",
                                  "a.onMessage m3", "host.setReading on"));
  EXPECT_FALSE(runner_.busy());
}

TEST_F(StageRunnerTest, RejectOfAQueuedMessageStopsDraining) {
  add("a").script().on_message = [](StageCallbacks&, Message& m) {
    if (m.data() == "p") {
      return Verdict::pause();
    }
    if (m.data() == "bad") {
      return Verdict::reject(Errc::kInvalidPayload, "bad");
    }
    return Verdict::pass();
  };
  start();
  send("p");
  send("bad");
  send("later");
  trace_.clear();
  callbacks_.resume();
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off message", "host.atMessageBoundary",
                                  "a.onMessage bad",
                                  "host.messageRejected invalid_payload 'bad' p[0]:a"));
}

TEST_F(StageRunnerTest, HostMayResetAtTheMessageBoundary) {
  add("old");
  start();
  PipelineBuilder next(trace_, "q");
  next.add("new");
  auto next_pipeline = next.build();
  host_.on_boundary = [this, next_pipeline] {
    if (runner_.pipeline() != next_pipeline) {
      ASSERT_TRUE(runner_.reset(next_pipeline));
    }
  };
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "new.onMessage m"));
  EXPECT_EQ(runner_.pipeline(), next_pipeline);
}

// ---- Replies --------------------------------------------------------------------------------

TEST_F(StageRunnerTest, RepliesFromAHookAreSentAfterItReturnsInOrder) {
  add("a").script().on_message = [this](StageCallbacks& cb, Message&) {
    cb.reply(textMessage("r1"));
    cb.reply(textMessage("r2"));
    EXPECT_TRUE(runner_.inHook());
    trace_.push_back("a.returns");
    return Verdict::pass();
  };
  add("b");
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "a.returns",
                                  "host.sendReply r1", "host.sendReply r2", "b.onMessage m"));
}

TEST_F(StageRunnerTest, RepliesFromARejectingHookAreStillSentBeforeTheReject) {
  add("a").script().on_message = [](StageCallbacks& cb, Message&) {
    cb.reply(textMessage("error detail"));
    return Verdict::reject(Errc::kBadRequest, "bad");
  };
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m",
                                  "host.sendReply error detail",
                                  "host.messageRejected bad_request 'bad' p[0]:a"));
}

TEST_F(StageRunnerTest, ReplyOutsideAHookIsSentAtOnce) {
  add("a");
  start();
  callbacks_.reply(textMessage("now"));
  EXPECT_THAT(trace_, ElementsAre("host.sendReply now"));
}

TEST_F(StageRunnerTest, RepliesAreNotSentOnceTheHostIsGone) {
  add("a").script().on_message = [this](StageCallbacks& cb, Message&) {
    cb.reply(textMessage("r1"));
    host_.kill();
    return Verdict::pass();
  };
  start();
  send("m");
  callbacks_.reply(textMessage("r2"));
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m"));
}

// ---- onOpen ---------------------------------------------------------------------------------

TEST_F(StageRunnerTest, OpenRunsEveryStageThenAccepts) {
  add("a");
  add("b");
  start();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen", "b.onOpen", "host.openAccepted"));
}

TEST_F(StageRunnerTest, OpenRejectRefusesTheSession) {
  add("a");
  add("b").script().on_open = opens(Verdict::reject(Errc::kUnauthenticated, "no token"));
  add("c");
  start();
  const auto before = CounterSnapshot::take();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen", "b.onOpen",
                                  "host.openRejected unauthenticated 'no token' p[1]:b"));
  EXPECT_EQ(CounterSnapshot::take().since(before).rejected, 1u);
}

TEST_F(StageRunnerTest, OpenDropRefusesAsUnavailable) {
  add("a").script().on_open = opens(Verdict::drop());
  add("b");
  start();
  const auto before = CounterSnapshot::take();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen",
                                  "host.openRejected unavailable 'connection dropped' p[0]:a"));
  EXPECT_EQ(CounterSnapshot::take().since(before).dropped, 1u);
}

TEST_F(StageRunnerTest, OpenThrowRefusesAsInternal) {
  add("a").script().on_open = [](StageCallbacks&) -> Verdict {
    throw std::logic_error("broken");
  };
  start();
  const auto before = CounterSnapshot::take();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen", "host.openRejected internal 'stage failed' p[0]:a"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, OpenPauseThenResumeAccepts) {
  add("a").script().on_open = opens(Verdict::pause());
  add("b");
  start();
  runner_.open();
  EXPECT_TRUE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("a.onOpen", "host.pauseChanged on open"));
  trace_.clear();
  callbacks_.resume();
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off open", "b.onOpen", "host.openAccepted"));
}

TEST_F(StageRunnerTest, OpenPauseThenRejectRefuses) {
  add("a").script().on_open = opens(Verdict::pause());
  add("b");
  start();
  runner_.open();
  trace_.clear();
  callbacks_.reject(Errc::kPermissionDenied, "banned");
  EXPECT_THAT(trace_, ElementsAre("host.pauseChanged off open",
                                  "host.openRejected permission_denied 'banned' p[0]:a"));
}

TEST_F(StageRunnerTest, OpenPauseTimeoutRefusesWithTimeout) {
  add("a").script().on_open = opens(Verdict::pause());
  start();
  runner_.open();
  trace_.clear();
  runner_.pauseTimedOut();
  EXPECT_THAT(trace_, ElementsAre("host.openRejected timeout 'stage did not answer in time' "
                                  "p[0]:a"));
}

TEST_F(StageRunnerTest, OpenResumeInsideTheHookAcceptsImmediately) {
  add("a").script().on_open = [](StageCallbacks& cb) {
    cb.resume();
    return Verdict::pause();
  };
  add("b");
  start();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen", "b.onOpen", "host.openAccepted"));
  EXPECT_FALSE(runner_.paused());
}

TEST_F(StageRunnerTest, OpenRejectInsideTheHookWithPauseRefuses) {
  add("a").script().on_open = [](StageCallbacks& cb) {
    cb.reject(Errc::kResourceExhausted, "too many");
    return Verdict::pause();
  };
  add("b");
  start();
  runner_.open();
  EXPECT_THAT(trace_, ElementsAre("a.onOpen",
                                  "host.openRejected resource_exhausted 'too many' p[0]:a"));
}

// ---- Outbound -------------------------------------------------------------------------------

TEST_F(StageRunnerTest, OutboundSkipsStagesWhenNoneWantsIt) {
  add("a").script().on_outbound = [](StageCallbacks&, const Message&) { return Verdict::drop(); };
  start();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, IsEmpty());
}

TEST_F(StageRunnerTest, OutboundPassesThroughEveryStage) {
  add("a").wants_outbound = true;
  add("b").wants_outbound = true;
  start();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, ElementsAre("a.onOutbound o", "b.onOutbound o"));
}

TEST_F(StageRunnerTest, OutboundDropRefusesTheMessage) {
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_outbound = [](StageCallbacks&, const Message&) { return Verdict::drop(); };
  add("b").wants_outbound = true;
  start();
  const auto before = CounterSnapshot::take();
  EXPECT_FALSE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, ElementsAre("a.onOutbound o"));
  EXPECT_EQ(CounterSnapshot::take().since(before).dropped, 1u);
  EXPECT_TRUE(host_.alive());
}

TEST_F(StageRunnerTest, OutboundRejectRefusesAndTellsTheHost) {
  add("a").wants_outbound = true;
  auto& b = add("b");
  b.wants_outbound = true;
  b.script().on_outbound = [](StageCallbacks&, const Message&) {
    return Verdict::reject(Errc::kResourceExhausted, "quota");
  };
  start();
  EXPECT_FALSE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, ElementsAre("a.onOutbound o", "b.onOutbound o",
                                  "host.messageRejected resource_exhausted 'quota' p[1]:b"));
}

TEST_F(StageRunnerTest, OutboundPauseIsTreatedAsPassAndCountedAsABug) {
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_outbound = [](StageCallbacks&, const Message&) { return Verdict::pause(); };
  add("b").wants_outbound = true;
  start();
  const auto before = CounterSnapshot::take();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("a.onOutbound o", "b.onOutbound o"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, OutboundThrowRefusesAsInternal) {
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_outbound = [](StageCallbacks&, const Message&) -> Verdict {
    throw std::runtime_error("x");
  };
  start();
  EXPECT_FALSE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, ElementsAre("a.onOutbound o",
                                  "host.messageRejected internal 'stage failed' p[0]:a"));
}

TEST_F(StageRunnerTest, OutboundCheckDoesNotDisturbAPausedInbound) {
  add("a").script().on_message = returns(Verdict::pause());
  add("b").wants_outbound = true;
  start();
  send("m");
  trace_.clear();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_TRUE(runner_.paused());
  callbacks_.resume();
  // Only b asked for outbound messages.
  EXPECT_THAT(trace_, ElementsAre("b.onOutbound o", "host.pauseChanged off message",
                                  "b.onMessage m", "host.setReading on"));
}

// Regression, fixed (was a bug in core/pipeline/stage_runner.cc, StageRunner::outboundAllowed, ~line 145): when the
// pipeline's wants_outbound is true (any stage asked), onOutbound is called on EVERY stage,
// including those whose StageConfig::wantsOutbound() is false. stage.h promises onOutbound only
// "when the stage's config asked for it" and "false keeps fan-out free of per-session stage
// calls". Fix: in reset(), record per stage `cs.config->wantsOutbound()` and skip the others in
// outboundAllowed.
TEST_F(StageRunnerTest, OutboundOnlyCallsStagesThatAskedForIt) {
  add("a");  // wants_outbound = false
  add("b").wants_outbound = true;
  start();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("o")));
  EXPECT_THAT(trace_, ElementsAre("b.onOutbound o"));
}

// ---- close / reset --------------------------------------------------------------------------

TEST_F(StageRunnerTest, CloseCallsOnCloseOnceOnEveryStage) {
  add("a");
  add("b");
  add("c");
  start();
  runner_.close();
  runner_.close();
  EXPECT_THAT(trace_, ElementsAre("a.onClose", "b.onClose", "c.onClose"));
}

TEST_F(StageRunnerTest, CloseWhilePausedDropsQueueAndIgnoresLaterInput) {
  add("a").script().on_message = returns(Verdict::pause());
  add("b");
  start();
  send("m1");
  send("m2");
  trace_.clear();
  runner_.close();
  EXPECT_FALSE(runner_.busy());
  send("m3");
  EXPECT_THAT(trace_, ElementsAre("a.onClose", "b.onClose"));
}

TEST_F(StageRunnerTest, OnCloseThrowingIsCountedAndTheRestStillClose) {
  add("a").script().on_close = [] { throw std::runtime_error("close failed"); };
  add("b");
  start();
  const auto before = CounterSnapshot::take();
  runner_.close();
  EXPECT_THAT(trace_, ElementsAre("a.onClose", "b.onClose"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, ResetWithNullStageRejectsAsInternal) {
  add("a");
  auto& b = add("b");
  b.create = ScriptedStageConfig::Create::kNull;
  add("c");
  const auto before = CounterSnapshot::take();
  EXPECT_FALSE(runner_.reset(builder_.build()));
  EXPECT_THAT(trace_, ElementsAre("host.messageRejected internal 'stage could not be created' "
                                  "p[1]:b"));
  EXPECT_EQ(runner_.stageCount(), 0u);
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, ResetWithThrowingCreateRejectsAsInternal) {
  add("a").create = ScriptedStageConfig::Create::kThrow;
  const auto before = CounterSnapshot::take();
  EXPECT_FALSE(runner_.reset(builder_.build()));
  EXPECT_THAT(trace_, ElementsAre("host.messageRejected internal 'stage could not be created' "
                                  "p[0]:a"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

TEST_F(StageRunnerTest, ResetRecreatesStagesWithoutOpenOrClose) {
  auto& a = add("a");
  start();
  EXPECT_EQ(a.created(), 1);
  ASSERT_TRUE(runner_.reset(builder_.build()));
  EXPECT_EQ(a.created(), 2);
  // DESIGN: stages moved to a new generation are destroyed without onClose, and onOpen is not
  // run again.
  EXPECT_THAT(trace_, IsEmpty());
}

// Upstream completions compare the epoch they were started in: a reset (reload) or a close must
// change it, and nothing else may.
TEST_F(StageRunnerTest, EpochChangesWhenTheStagesAreReplacedOrClosed) {
  add("a");
  start();
  const uint32_t first = runner_.epoch();
  send("m");
  EXPECT_EQ(runner_.epoch(), first);
  ASSERT_TRUE(runner_.reset(builder_.build()));
  const uint32_t second = runner_.epoch();
  EXPECT_NE(second, first);
  runner_.close();
  EXPECT_NE(runner_.epoch(), second);
  EXPECT_NE(runner_.epoch(), first);
}

// The SDK promises a stage that its StageConfig outlives it (stages keep plain references to
// their config): the runner's pipeline holds the configs, and a reset or the runner's end
// destroys the stages first, even when nothing else holds the pipeline any more.
class FlagConfig final : public StageConfig {
 public:
  explicit FlagConfig(std::shared_ptr<int> destroyed_while_config_dead)
      : bad_(std::move(destroyed_while_config_dead)) {}
  ~FlagConfig() override { *alive_ = false; }
  StagePtr createStage(StageCallbacks&) const override {
    class FlagStage final : public Stage {
     public:
      FlagStage(std::shared_ptr<bool> alive, std::shared_ptr<int> bad)
          : alive_(std::move(alive)), bad_(std::move(bad)) {}
      ~FlagStage() override {
        if (!*alive_) {
          ++*bad_;
        }
      }
      Verdict onMessage(Message&) override { return Verdict::pass(); }

     private:
      std::shared_ptr<bool> alive_;
      std::shared_ptr<int> bad_;
    };
    return std::make_unique<FlagStage>(alive_, bad_);
  }

 private:
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<int> bad_;
};

std::shared_ptr<const Pipeline> flagPipeline(const std::shared_ptr<int>& bad) {
  auto p = std::make_shared<Pipeline>();
  CompiledStage cs;
  cs.module = "test.flag";
  cs.instance = "p[0]:flag";
  cs.config = std::make_shared<FlagConfig>(bad);
  p->stages.push_back(std::move(cs));
  return p;
}

TEST(StageRunnerLifetimeTest, ConfigsOutliveTheirStages) {
  auto bad = std::make_shared<int>(0);
  Trace trace;
  FakeHost host(trace);
  ForwardingCallbacks callbacks;
  host.callbacks = &callbacks;
  {
    StageRunner runner(host);
    callbacks.runner = &runner;
    ASSERT_TRUE(runner.reset(flagPipeline(bad)));  // the runner holds the only reference
    ASSERT_TRUE(runner.reset(flagPipeline(bad)));  // a reload: the old stages go first
    EXPECT_EQ(*bad, 0);
    runner.close();
  }  // the runner's end: stages before the pipeline
  EXPECT_EQ(*bad, 0);
}

// ---- Regressions (bugs found and fixed) -----------------------------------------------------------------------------

// Regression, fixed (was a bug in core/pipeline/stage_runner.cc, StageRunner::guard, ~line 50-80): resume() called inside a
// hook sets resume_requested_, which only runOpen/runInbound consume, and only when the verdict
// is kPause. If the hook returns anything else (here kPass: a misbehaving stage, which stage.h
// says is "a bug (counted, ignored)"), the flag survives and the NEXT genuine kPause, by any
// stage, is resumed at once: its async work is skipped. Fix: in guard(), after the hook, if
// resume_requested_ is set and v.action != kPause, count a bug and clear it (likewise clear it
// when the hook throws, and when reject_requested_ wins over it).
TEST_F(StageRunnerTest, ResumeInsideAPassingHookDoesNotLeakToTheNextPause) {
  add("a").script().on_message = [](StageCallbacks& cb, Message&) {
    cb.resume();
    return Verdict::pass();
  };
  add("b").script().on_message = returns(Verdict::pause());
  add("c");
  start();
  const auto before = CounterSnapshot::take();
  send("m");
  EXPECT_TRUE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "b.onMessage m",
                                  "host.pauseChanged on message"));
  EXPECT_EQ(CounterSnapshot::take().since(before).bugs, 1u);
}

// Regression, fixed (was a bug in same flag): a stage that paused an inbound message and then calls resume() from its own
// onOutbound hook (e.g. it waits for an outbound ack) has the resume swallowed: guard() sets
// resume_requested_ because in_hook_ is true, and outboundAllowed never looks at it, so the
// message stays paused until pause_timeout. Fix: in outboundAllowed (or guard, for any hook that
// returns while a pause is in progress), apply a pending resume/reject after the hook returns
// (call continueAfterPause / the reject path once the outbound loop is done).
TEST_F(StageRunnerTest, ResumeFromOnOutboundResumesThePausedMessage) {
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_message = returns(Verdict::pause());
  a.script().on_outbound = [](StageCallbacks& cb, const Message&) {
    cb.resume();
    return Verdict::pass();
  };
  add("b");
  start();
  send("m");
  EXPECT_TRUE(runner_.paused());
  trace_.clear();
  EXPECT_TRUE(runner_.outboundAllowed(textMessage("ack")));
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ::testing::Contains("b.onMessage m"));
}

// Regression, fixed (was a bug in core/pipeline/stage_runner.cc, StageRunner::guard, ~line 64-75): replies queued during a
// hook are sent BEFORE the hook's own reject request is applied. The host sends a reply through
// the outbound side of the pipeline (Connection::sendReply -> outboundAllowed), which runs
// guard() again; that nested guard ends with reject_requested_.reset() and so erases the outer
// hook's reject(). A stage doing `reply(error); reject(...); return pause()` is then left paused
// until pause_timeout instead of being rejected. Fix: in guard(), take reject_requested_ (and
// resume_requested_) into locals right after the hook returns, before sending the replies; or
// save/restore them around the reply loop.
TEST_F(StageRunnerTest, RejectInsideHookSurvivesRepliesThroughOutbound) {
  host_.replies_go_outbound = true;
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_message = [](StageCallbacks& cb, Message&) {
    cb.reply(textMessage("error detail"));
    cb.reject(Errc::kPermissionDenied, "denied");
    return Verdict::pause();
  };
  start();
  send("m");
  EXPECT_FALSE(runner_.paused());
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m",
                                  "a.onOutbound error detail", "host.sendReply error detail",
                                  "host.messageRejected permission_denied 'denied' p[0]:a"));
}

// The same path without a reject, which works: replies routed through the outbound check are
// still checked by every stage, in order, after the hook.
TEST_F(StageRunnerTest, RepliesRoutedThroughOutboundAreChecked) {
  host_.replies_go_outbound = true;
  auto& a = add("a");
  a.wants_outbound = true;
  a.script().on_message = [](StageCallbacks& cb, Message&) {
    cb.reply(textMessage("keep"));
    cb.reply(textMessage("drop"));
    return Verdict::pass();
  };
  a.script().on_outbound = [](StageCallbacks&, const Message& m) {
    return m.data() == "drop" ? Verdict::drop() : Verdict::pass();
  };
  start();
  send("m");
  EXPECT_THAT(trace_, ElementsAre("host.atMessageBoundary", "a.onMessage m", "a.onOutbound keep",
                                  "host.sendReply keep", "a.onOutbound drop",
                                  "host.replyRefused drop"));
}

}  // namespace
}  // namespace imgate::core
