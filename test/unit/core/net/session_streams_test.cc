// SPDX-License-Identifier: Apache-2.0
#include "net/session_streams.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace imgate::core {
namespace {

using std::chrono::milliseconds;

MessagePtr msg(std::string stream, uint64_t epoch, uint64_t seq) {
  auto m = std::make_shared<Message>();
  m->stream = std::move(stream);
  m->epoch = epoch;
  m->seq = seq;
  m->payload = makeBytes("x");
  return m;
}

std::vector<uint64_t> seqsOf(const std::vector<MessagePtr>& v) {
  std::vector<uint64_t> out;
  for (const MessagePtr& m : v) {
    out.push_back(m->seq);
  }
  return out;
}

TEST(SessionStreamsTest, OrderDuplicatesAndGaps) {
  SessionStreams s;
  s.setPosition("user", 7, 10);
  EXPECT_EQ(s.check(*msg("user", 7, 11)), SessionStreams::Check::kSend);
  EXPECT_EQ(s.check(*msg("user", 7, 10)), SessionStreams::Check::kDuplicate);
  EXPECT_EQ(s.check(*msg("user", 7, 3)), SessionStreams::Check::kDuplicate);
  EXPECT_EQ(s.check(*msg("user", 7, 13)), SessionStreams::Check::kGap);
  // An unknown stream or a new epoch began after the session subscribed: all of it is due.
  EXPECT_EQ(s.check(*msg("room:a", 1, 1)), SessionStreams::Check::kSend);
  EXPECT_EQ(s.check(*msg("room:a", 1, 40)), SessionStreams::Check::kGap);
  EXPECT_EQ(s.positionIn(*msg("room:a", 1, 40)), 0u);
  EXPECT_EQ(s.check(*msg("user", 8, 1)), SessionStreams::Check::kSend);
  EXPECT_EQ(s.check(*msg("user", 8, 2)), SessionStreams::Check::kGap);
  EXPECT_EQ(s.positionIn(*msg("user", 8, 2)), 0u);
  EXPECT_EQ(s.positionIn(*msg("user", 7, 12)), 10u);
  s.sent(msg("user", 7, 11), false, 0, milliseconds(100));
  EXPECT_EQ(s.position("user")->seq, 11u);
  EXPECT_EQ(s.check(*msg("user", 7, 11)), SessionStreams::Check::kDuplicate);
  EXPECT_EQ(s.unacked(), 0u);
}

TEST(SessionStreamsTest, CumulativeAckPerStream) {
  SessionStreams s;
  for (uint64_t i = 1; i <= 5; ++i) {
    s.sent(msg("user", 1, i), true, 1000, milliseconds(100));
  }
  s.sent(msg("room:a", 2, 1), true, 1000, milliseconds(100));
  EXPECT_EQ(s.unacked(), 6u);
  EXPECT_EQ(s.ack("user", 3), 3u);
  EXPECT_EQ(s.ack("user", 3), 0u);  // acking twice is harmless
  EXPECT_EQ(s.ack("room:b", 9), 0u);
  EXPECT_EQ(s.unacked(), 3u);
  EXPECT_EQ(s.ack("room:a", 1), 1u);
  EXPECT_EQ(s.ack("user", 100), 2u);
  EXPECT_EQ(s.unacked(), 0u);
  EXPECT_FALSE(s.nextDeadline());
}

TEST(SessionStreamsTest, RetransmitsWithBackoffThenGivesUp) {
  SessionStreams s;
  s.sent(msg("user", 1, 1), true, 1000, milliseconds(100));
  s.sent(msg("user", 1, 2), true, 1050, milliseconds(100));
  bool exhausted = false;
  EXPECT_EQ(s.nextDeadline(), 1100);
  EXPECT_TRUE(s.due(1099, milliseconds(100), 2.0, 3, exhausted).empty());
  EXPECT_EQ(seqsOf(s.due(1100, milliseconds(100), 2.0, 3, exhausted)),
            (std::vector<uint64_t>{1}));
  EXPECT_EQ(s.nextDeadline(), 1150);  // seq 2 is next; seq 1 waits 200 ms now
  EXPECT_EQ(seqsOf(s.due(1150, milliseconds(100), 2.0, 3, exhausted)),
            (std::vector<uint64_t>{2}));
  s.ack("user", 2);
  s.sent(msg("user", 1, 3), true, 2000, milliseconds(100));
  // 100, then 200, 400, 800 ms: three retransmissions, and the fourth deadline gives up.
  int64_t now = 2000;
  std::vector<int64_t> waits;
  for (int i = 0; i < 3; ++i) {
    now = *s.nextDeadline();
    waits.push_back(now);
    EXPECT_EQ(seqsOf(s.due(now, milliseconds(100), 2.0, 3, exhausted)),
              (std::vector<uint64_t>{3}));
    EXPECT_FALSE(exhausted);
  }
  EXPECT_EQ(waits, (std::vector<int64_t>{2100, 2300, 2700}));
  now = *s.nextDeadline();
  EXPECT_EQ(now, 3500);
  EXPECT_TRUE(s.due(now, milliseconds(100), 2.0, 3, exhausted).empty());
  EXPECT_TRUE(exhausted);
}

TEST(SessionStreamsTest, NewEpochDropsWhatWaitsInTheOldOne) {
  SessionStreams s;
  s.sent(msg("user", 1, 1), true, 0, milliseconds(100));
  s.sent(msg("room:a", 5, 1), true, 0, milliseconds(100));
  s.setPosition("user", 2, 0);
  EXPECT_EQ(s.unacked(), 1u);
  s.erase("room:a");
  EXPECT_EQ(s.unacked(), 0u);
  EXPECT_EQ(s.position("room:a"), nullptr);
  EXPECT_EQ(s.positions().size(), 1u);
}

}  // namespace
}  // namespace imgate::core
