// SPDX-License-Identifier: Apache-2.0
#include "net/admission.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace imgate::core {
namespace {

class AdmissionTest : public ::testing::Test {
 protected:
  void SetUp() override { a_.resetForTest(); }
  void TearDown() override { a_.resetForTest(); }
  Admission& a_ = Admission::instance();
};

constexpr int64_t kSecond = 1'000'000;

TEST_F(AdmissionTest, MaxConnections) {
  AdmissionLimits limits{.max_connections = 2, .max_handshakes = 0};
  EXPECT_EQ(a_.admit(limits, "1.1.1.1", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "1.1.1.2", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "1.1.1.3", 0), AdmissionRefusal::kMaxConnections);
  EXPECT_EQ(a_.connections(), 2u);
  a_.connectionClosed("1.1.1.1");
  EXPECT_EQ(a_.admit(limits, "1.1.1.3", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.refused(AdmissionRefusal::kMaxConnections), 1u);
}

TEST_F(AdmissionTest, PerIpCapCountsOpenConnectionsOfThatAddress) {
  AdmissionLimits limits{.max_connections = 0, .max_connections_per_ip = 2, .max_handshakes = 0};
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kPerIp);
  EXPECT_EQ(a_.admit(limits, "10.0.0.2", 0), AdmissionRefusal::kNone);  // another address
  a_.connectionClosed("10.0.0.1");
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.connections(), 3u);  // refusals gave their slots back
  EXPECT_EQ(a_.refused(AdmissionRefusal::kPerIp), 1u);
}

// Addresses are counted by their bytes: IPv6 (bracketed, as peer names are) per address, an
// IPv4 address and its IPv4-mapped IPv6 spelling as one host, every 2^32 IPv4 apart.
TEST_F(AdmissionTest, PerIpCountsEachAddressByItsBytes) {
  AdmissionLimits limits{.max_connections = 0, .max_connections_per_ip = 1, .max_handshakes = 0};
  EXPECT_EQ(a_.admit(limits, "[2001:db8::1]", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "[2001:db8:0:0::1]", 0), AdmissionRefusal::kPerIp);  // same bytes
  EXPECT_EQ(a_.admit(limits, "[2001:db8::2]", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "[2001:db9::1]", 0), AdmissionRefusal::kNone);  // other high half
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "[::ffff:10.0.0.1]", 0), AdmissionRefusal::kPerIp);
  EXPECT_EQ(a_.admit(limits, "10.0.0.2", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "11.0.0.1", 0), AdmissionRefusal::kNone);
  a_.connectionClosed("[2001:db8::1]");
  EXPECT_EQ(a_.admit(limits, "[2001:db8::1]", 0), AdmissionRefusal::kNone);
  a_.connectionClosed("[::ffff:10.0.0.1]");  // closes the 10.0.0.1 connection
  EXPECT_EQ(a_.admit(limits, "10.0.0.1", 0), AdmissionRefusal::kNone);
  // Names that are no address share one entry.
  EXPECT_EQ(a_.admit(limits, "unix", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "?", 0), AdmissionRefusal::kPerIp);
  EXPECT_EQ(a_.connections(), 7u);
}

TEST_F(AdmissionTest, PerIpCountsAreKeptWithoutACapSoALaterCapApplies) {
  AdmissionLimits open{.max_connections = 0, .max_handshakes = 0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(a_.admit(open, "10.0.0.9", 0), AdmissionRefusal::kNone);
  }
  AdmissionLimits capped = open;
  capped.max_connections_per_ip = 3;  // as after a reload
  EXPECT_EQ(a_.admit(capped, "10.0.0.9", 0), AdmissionRefusal::kPerIp);
}

TEST_F(AdmissionTest, ConnectRateWithBurst) {
  AdmissionLimits limits{.max_connections = 0, .connect_rate = 10, .connect_burst = 3,
                         .max_handshakes = 0};
  int64_t now = 5 * kSecond;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kNone) << i;
  }
  EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kRate);
  now += kSecond / 10 - 1;  // just short of one token
  EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kRate);
  now += 1;
  EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kNone);
  now += 10 * kSecond;  // refills to the burst, not beyond
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kNone) << i;
  }
  EXPECT_EQ(a_.admit(limits, "1.2.3.4", now), AdmissionRefusal::kRate);
  EXPECT_EQ(a_.refused(AdmissionRefusal::kRate), 3u);
}

TEST_F(AdmissionTest, BurstDefaultsToTheRate) {
  AdmissionLimits limits{.max_connections = 0, .connect_rate = 4, .max_handshakes = 0};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a_.admit(limits, "x", 0), AdmissionRefusal::kNone);
  }
  EXPECT_EQ(a_.admit(limits, "x", 0), AdmissionRefusal::kRate);
}

TEST_F(AdmissionTest, ConcurrentHandshakes) {
  AdmissionLimits limits{.max_connections = 0, .max_handshakes = 2};
  EXPECT_EQ(a_.admit(limits, "a", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "b", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.admit(limits, "c", 0), AdmissionRefusal::kHandshakes);
  a_.handshakeDone();  // "a" became a session: it no longer counts as a handshake
  EXPECT_EQ(a_.handshakes(), 1u);
  EXPECT_EQ(a_.admit(limits, "c", 0), AdmissionRefusal::kNone);
  EXPECT_EQ(a_.connections(), 3u);
}

TEST_F(AdmissionTest, RefusalNames) {
  EXPECT_EQ(admissionRefusalName(AdmissionRefusal::kRate), "connect_rate");
  EXPECT_EQ(admissionRefusalName(AdmissionRefusal::kPerIp), "max_connections_per_ip");
}

// Workers admit concurrently: the cap holds exactly.
TEST_F(AdmissionTest, CapHoldsUnderConcurrency) {
  AdmissionLimits limits{.max_connections = 1000, .max_handshakes = 0};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        if (a_.admit(limits, "10.0.0." + std::to_string(t), 0) == AdmissionRefusal::kNone) {
          admitted.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(admitted.load(), 1000);
  EXPECT_EQ(a_.connections(), 1000u);
}

}  // namespace
}  // namespace imgate::core
