// SPDX-License-Identifier: Apache-2.0
#include "hub/stream_store.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace imgate::core {
namespace {

Message text(std::string s) {
  Message m;
  m.payload = makeBytes(std::move(s));
  return m;
}

std::vector<uint64_t> seqs(const HistoryRead& r) {
  std::vector<uint64_t> out;
  for (const MessagePtr& m : r.messages) {
    out.push_back(m->seq);
  }
  return out;
}

TEST(StreamStoreTest, KeysSeparateAppsUsersAndKinds) {
  EXPECT_EQ(streamKey("a", "user", "u1"), std::string("a\0user\0u1", 9));
  EXPECT_EQ(streamKey("a", "room:x", "u1"), std::string("a\0room:x", 8));
  EXPECT_NE(streamKey("a", "user", "u1"), streamKey("b", "user", "u1"));
  EXPECT_EQ(roomStream("lobby"), "room:lobby");
}

TEST(StreamStoreTest, AppendNumbersFromOneWithOneEpochPerStream) {
  MemoryStreamStore store;
  MessagePtr a = store.append("k1", "user", text("a"), 1000);
  MessagePtr b = store.append("k1", "user", text("b"), 1001);
  MessagePtr c = store.append("k2", "room:r", text("c"), 1002);
  EXPECT_EQ(a->seq, 1u);
  EXPECT_EQ(b->seq, 2u);
  EXPECT_EQ(c->seq, 1u);
  EXPECT_EQ(a->stream, "user");
  EXPECT_EQ(c->stream, "room:r");
  EXPECT_NE(a->epoch, 0u);
  EXPECT_EQ(a->epoch, b->epoch);
  EXPECT_NE(a->epoch, c->epoch);
  EXPECT_EQ(b->data(), "b");
  const StreamHead h = store.head("k1");
  EXPECT_EQ(h.epoch, a->epoch);
  EXPECT_EQ(h.seq, 2u);
  EXPECT_EQ(store.head("nope").epoch, 0u);
  EXPECT_EQ(store.stats().streams, 2u);
  EXPECT_EQ(store.stats().messages, 3u);
}

TEST(StreamStoreTest, ReadReturnsExactlyWhatFollowsAPosition) {
  MemoryStreamStore store;
  uint64_t epoch = 0;
  for (int i = 0; i < 5; ++i) {
    epoch = store.append("k", "user", text(std::to_string(i)), 1000)->epoch;
  }
  EXPECT_EQ(seqs(store.read("k", epoch, 2, 100, 1000)), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(seqs(store.read("k", epoch, 0, 100, 1000)), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(seqs(store.read("k", epoch, 0, 2, 1000)), (std::vector<uint64_t>{1, 2}));
  HistoryRead up_to_date = store.read("k", epoch, 5, 100, 1000);
  EXPECT_EQ(up_to_date.status, HistoryRead::Status::kOk);
  EXPECT_TRUE(up_to_date.messages.empty());
  EXPECT_EQ(up_to_date.head.seq, 5u);
}

TEST(StreamStoreTest, WrongEpochOrFuturePositionIsEpochChanged) {
  MemoryStreamStore store;
  const uint64_t epoch = store.append("k", "user", text("x"), 1000)->epoch;
  EXPECT_EQ(store.read("k", epoch + 1, 0, 10, 1000).status, HistoryRead::Status::kEpochChanged);
  EXPECT_EQ(store.read("k", epoch, 7, 10, 1000).status, HistoryRead::Status::kEpochChanged);
  // A client that never saw the stream (epoch 0, seq 0) gets everything.
  EXPECT_EQ(seqs(store.read("k", 0, 0, 10, 1000)), (std::vector<uint64_t>{1}));
  // A stream that does not exist: only "nothing yet" is a valid position.
  EXPECT_EQ(store.read("none", 0, 0, 10, 1000).status, HistoryRead::Status::kOk);
  EXPECT_EQ(store.read("none", 5, 3, 10, 1000).status, HistoryRead::Status::kEpochChanged);
}

TEST(StreamStoreTest, CountLimitMakesOldPositionsTooOld) {
  StreamLimits limits;
  limits.max_messages = 3;
  MemoryStreamStore store(limits);
  uint64_t epoch = 0;
  for (int i = 0; i < 10; ++i) {
    epoch = store.append("k", "user", text("m"), 1000)->epoch;
  }
  EXPECT_EQ(store.read("k", epoch, 6, 10, 1000).status, HistoryRead::Status::kTooOld);
  EXPECT_EQ(seqs(store.read("k", epoch, 7, 10, 1000)), (std::vector<uint64_t>{8, 9, 10}));
  EXPECT_EQ(store.stats().messages, 3u);
  EXPECT_EQ(store.stats().evicted, 7u);
  EXPECT_EQ(store.head("k").seq, 10u);  // evicting history never renumbers
}

TEST(StreamStoreTest, ByteLimitKeepsTheNewest) {
  StreamLimits limits;
  limits.max_bytes = 2 * (100 + 96 + 4);  // two messages of 100 payload bytes
  MemoryStreamStore store(limits);
  uint64_t epoch = 0;
  for (int i = 0; i < 4; ++i) {
    epoch = store.append("k", "user", text(std::string(100, 'x')), 1000)->epoch;
  }
  EXPECT_EQ(seqs(store.read("k", epoch, 2, 10, 1000)), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(store.read("k", epoch, 1, 10, 1000).status, HistoryRead::Status::kTooOld);
}

TEST(StreamStoreTest, NoHistoryStillNumbers) {
  StreamLimits limits;
  limits.max_messages = 0;
  MemoryStreamStore store(limits);
  const uint64_t epoch = store.append("k", "user", text("a"), 1000)->epoch;
  EXPECT_EQ(store.append("k", "user", text("b"), 1000)->seq, 2u);
  EXPECT_EQ(store.read("k", epoch, 2, 10, 1000).status, HistoryRead::Status::kOk);
  EXPECT_EQ(store.read("k", epoch, 1, 10, 1000).status, HistoryRead::Status::kTooOld);
}

TEST(StreamStoreTest, TtlExpiresMessagesButKeepsTheEpoch) {
  StreamLimits limits;
  limits.ttl = std::chrono::milliseconds(1000);
  MemoryStreamStore store(limits);
  const uint64_t epoch = store.append("k", "user", text("old"), 1000)->epoch;
  store.append("k", "user", text("new"), 1600);
  HistoryRead r = store.read("k", epoch, 0, 10, 2100);  // "old" is 1100 ms old
  EXPECT_EQ(r.status, HistoryRead::Status::kTooOld);
  EXPECT_EQ(seqs(store.read("k", epoch, 1, 10, 2100)), (std::vector<uint64_t>{2}));
  EXPECT_EQ(store.stats().expired, 1u);
  EXPECT_EQ(store.head("k").epoch, epoch);
}

TEST(StreamStoreTest, IdleStreamsAreForgottenAndComeBackWithANewEpoch) {
  StreamLimits limits;
  limits.idle_ttl = std::chrono::milliseconds(5000);
  MemoryStreamStore store(limits);
  const uint64_t epoch = store.append("k", "user", text("a"), 1000)->epoch;
  for (int i = 0; i < 16; ++i) {  // a full pass over every slice
    store.sweep(3000);
  }
  EXPECT_EQ(store.head("k").seq, 1u);
  for (int i = 0; i < 16; ++i) {
    store.sweep(7000);
  }
  EXPECT_EQ(store.head("k").epoch, 0u);
  EXPECT_EQ(store.stats().streams, 0u);
  EXPECT_EQ(store.stats().messages, 0u);
  MessagePtr again = store.append("k", "user", text("b"), 8000);
  EXPECT_EQ(again->seq, 1u);
  EXPECT_NE(again->epoch, epoch);
  EXPECT_EQ(store.read("k", epoch, 1, 10, 8000).status, HistoryRead::Status::kEpochChanged);
}

TEST(StreamStoreTest, MaxStreamsForgetsTheLeastRecentlyUsed) {
  StreamLimits limits;
  limits.max_streams = 64;
  MemoryStreamStore store(limits);
  for (int i = 0; i < 200; ++i) {
    store.append("k" + std::to_string(i), "user", text("a"), 1000 + i);
  }
  for (int i = 0; i < 16; ++i) {
    store.sweep(2000);
  }
  EXPECT_LE(store.stats().streams, 64u);
  EXPECT_EQ(store.head("k199").seq, 1u);
}

TEST(StreamStoreTest, DevicePositionsAreKeptPerEpochAndOnlyMoveForward) {
  MemoryStreamStore store;
  const uint64_t epoch = store.append("k", "user", text("a"), 1000)->epoch;
  store.append("k", "user", text("b"), 1000);
  EXPECT_FALSE(store.devicePosition("k", "phone", epoch));
  store.setDevicePosition("k", "phone", epoch, 2);
  store.setDevicePosition("k", "phone", epoch, 1);  // an old ack arriving late
  EXPECT_EQ(store.devicePosition("k", "phone", epoch), 2u);
  store.setDevicePosition("k", "tablet", epoch, 9);  // beyond the head: ignored
  EXPECT_FALSE(store.devicePosition("k", "tablet", epoch));
  EXPECT_FALSE(store.devicePosition("k", "phone", epoch + 1));
  for (int i = 0; i < 20; ++i) {
    store.setDevicePosition("k", "d" + std::to_string(i), epoch, 1);
  }
  EXPECT_FALSE(store.devicePosition("k", "phone", epoch));  // least recent of > 16 devices
  EXPECT_EQ(store.devicePosition("k", "d19", epoch), 1u);
}

TEST(StreamStoreTest, OfflineMarkKeepsTheEarliestExplicitStart) {
  MemoryStreamStore store;
  const uint64_t epoch = store.append("k", "user", text("a"), 1000)->epoch;
  EXPECT_FALSE(store.offlineSince("k", epoch));
  store.markOffline("k", 0);
  store.append("k", "user", text("b"), 1000);
  store.markOffline("k", 1);  // keeps the earlier mark
  EXPECT_EQ(store.offlineSince("k", epoch), 0u);
  store.markOffline("k");  // the last session closed: from the head
  EXPECT_EQ(store.offlineSince("k", epoch), 2u);
}

TEST(StreamStoreTest, ConcurrentAppendsGiveEverySeqOnce) {
  MemoryStreamStore store;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint64_t>> got(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        got[t].push_back(store.append("k", "user", text("x"), 1000)->seq);
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::set<uint64_t> all;
  for (const auto& v : got) {
    for (size_t i = 1; i < v.size(); ++i) {
      EXPECT_LT(v[i - 1], v[i]);  // each thread sees its own appends in order
    }
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), 4000u);
  EXPECT_EQ(*all.rbegin(), 4000u);
}

}  // namespace
}  // namespace imgate::core
