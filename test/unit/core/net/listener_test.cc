// SPDX-License-Identifier: Apache-2.0
// Listening sockets: one SO_REUSEPORT socket per worker, and the worker a `balance: exact`
// listener gives each new connection.
#include "net/listener.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace imgate::core {
namespace {

uint32_t target(const std::vector<int32_t>& open, uint32_t accepting) {
  std::vector<std::atomic<int32_t>> counts(open.size());
  for (size_t i = 0; i < open.size(); ++i) {
    counts[i].store(open[i]);
  }
  return exactBalanceTarget(counts.data(), counts.size(), accepting);
}

TEST(ListenerTest, ExactBalanceGoesToTheWorkerWithTheFewestOpen) {
  EXPECT_EQ(target({0, 0}, 0), 0u);  // a tie keeps the connection where it was accepted
  EXPECT_EQ(target({0, 0}, 1), 1u);
  EXPECT_EQ(target({1, 0}, 0), 1u);
  EXPECT_EQ(target({3, 3, 2, 2}, 0), 2u);  // the first of the least loaded
  EXPECT_EQ(target({3, 3, 2, 2}, 3), 3u);  // ... unless the accepting one is among them
  EXPECT_EQ(target({5}, 0), 0u);
}

// Taking the slot at each accept, as the workers do, spreads any accept pattern evenly: the
// SO_REUSEPORT hash may hand every connection to one worker (a few backends' keep-alive
// connections to the push API often land 3 to 1).
TEST(ListenerTest, ExactBalanceEvensOutAnyAcceptPattern) {
  for (const uint32_t workers : {2u, 3u, 4u}) {
    std::vector<std::atomic<int32_t>> open(workers);
    for (int i = 0; i < 12; ++i) {
      const uint32_t accepting = i % 5 == 0 ? 1 % workers : 0;  // mostly worker 0
      const uint32_t t = exactBalanceTarget(open.data(), workers, accepting);
      open[t].fetch_add(1);
    }
    for (uint32_t w = 0; w < workers; ++w) {
      EXPECT_EQ(open[w].load(), static_cast<int32_t>(12 / workers)) << workers << " " << w;
    }
    // A close on one worker makes it the next target.
    open[workers - 1].fetch_sub(1);
    EXPECT_EQ(exactBalanceTarget(open.data(), workers, 0), workers - 1);
  }
}

TEST(ListenerTest, EachSocketStartsWithZeroOpenPerWorker) {
  auto sock = openListenSocket("127.0.0.1:0", 3);
  ASSERT_TRUE(sock) << sock.error().message;
  ASSERT_EQ((*sock)->fds.size(), 3u);
  EXPECT_GT((*sock)->port, 0);
  for (int w = 0; w < 3; ++w) {
    EXPECT_EQ((*sock)->open[w].load(), 0);
  }
}

}  // namespace
}  // namespace imgate::core
