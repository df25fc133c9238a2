// SPDX-License-Identifier: Apache-2.0
#include "config/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace imgate::core::config {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

struct DurationCase {
  std::string_view text;
  int64_t ms;
};

TEST(ConfigUnitsTest, DurationAcceptsEveryUnitAndForm) {
  const DurationCase cases[] = {
      {"0", 0},
      {"0s", 0},
      {"0ms", 0},
      {"250ms", 250},
      {"30s", 30'000},
      {"2m", 120'000},
      {"1h", 3'600'000},
      {"1d", 86'400'000},
      {"1.5s", 1'500},
      {"0.25h", 900'000},
      {"1.001s", 1'001},
      {"1h30m", 5'400'000},
      {"2m30s", 150'000},
      {"1d2h3m4s5ms", 93'784'005},
      {"1m1ms", 60'001},
      {"007s", 7'000},
      {"9223372036854775807ms", kInt64Max},
  };
  for (const auto& c : cases) {
    auto parsed = parseDuration(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error();
    EXPECT_EQ(parsed->count(), c.ms) << c.text;
  }
}

struct RejectCase {
  std::string_view text;
  std::string_view message_part;
};

TEST(ConfigUnitsTest, DurationRejectsWithReason) {
  const RejectCase cases[] = {
      {"", "empty"},
      {"30", "has no unit (e.g. 30s)"},
      {"1", "has no unit"},
      {"0.5", "has no unit"},
      {"1h30", "no unit at the end"},
      {"-5s", "negative"},
      {"fast", "is not a duration"},
      {"s", "is not a duration"},
      {"30S", "unknown unit \"S\""},
      {"30sec", "unknown unit \"sec\""},
      {"30 s", "is not a duration"},
      {" 30s", "is not a duration"},
      {"1.5ms", "finer than a millisecond"},
      {"0.0001s", "finer than a millisecond"},
      {"1.1234567s", "more than 6 decimals"},
      {"1.s", "is not a duration"},
      {".5s", "is not a duration"},
      {"30s1m", "largest first"},
      {"1m1m", "largest first"},
      {"9223372036854775808ms", "too large"},
      {"106751991167301d", "too large"},
      {"99999999999999999999999s", "too large"},
      {"9223372036854775s1000ms", "too large"},
  };
  for (const auto& c : cases) {
    auto parsed = parseDuration(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text << " parsed as " << parsed->count();
    EXPECT_NE(parsed.error().find(c.message_part), std::string::npos)
        << c.text << ": " << parsed.error();
  }
}

struct SizeCase {
  std::string_view text;
  int64_t bytes;
};

TEST(ConfigUnitsTest, SizeAcceptsEveryUnit) {
  const SizeCase cases[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"64k", 64 * 1024},
      {"64K", 64 * 1024},
      {"1MiB", 1 << 20},
      {"1m", 1 << 20},
      {"1M", 1 << 20},
      {"1GiB", int64_t{1} << 30},
      {"1g", int64_t{1} << 30},
      {"1G", int64_t{1} << 30},
      {"2TiB", int64_t{2} << 40},
      {"1t", int64_t{1} << 40},
      {"1.5MiB", 3 << 19},
      {"0.5KiB", 512},
      {"8388607TiB", int64_t{8388607} << 40},
      {"9223372036854775807", kInt64Max},
  };
  for (const auto& c : cases) {
    auto parsed = parseSize(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error();
    EXPECT_EQ(*parsed, c.bytes) << c.text;
  }
}

TEST(ConfigUnitsTest, SizeRejectsWithReason) {
  const RejectCase cases[] = {
      {"", "empty"},
      {"-1", "negative"},
      {"big", "is not a size"},
      {"64KB", "ambiguous: write 64KiB (65536 bytes) or 64000"},
      {"64kB", "ambiguous"},
      {"1MB", "1MiB (1048576 bytes) or 1000000"},
      {"1GB", "ambiguous"},
      {"1TB", "ambiguous"},
      {"64kb", "unknown unit \"kb\""},
      {"64 KiB", "is not a size"},
      {"0.5", "not a whole number of bytes"},
      {"1.3KiB", "not a whole number of bytes"},
      {"8388608TiB", "too large"},
      {"9223372036854775808", "too large"},
      {"99999999999999999999", "too large"},
      {"1.1234567KiB", "more than 6 decimals"},
  };
  for (const auto& c : cases) {
    auto parsed = parseSize(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text << " parsed as " << *parsed;
    EXPECT_NE(parsed.error().find(c.message_part), std::string::npos)
        << c.text << ": " << parsed.error();
  }
}

struct RateCase {
  std::string_view text;
  uint32_t count;
  int64_t per_ms;
};

TEST(ConfigUnitsTest, RateAcceptsUnitsAndPeriods) {
  const RateCase cases[] = {
      {"20/s", 20, 1'000},
      {"100/m", 100, 60'000},
      {"5/h", 5, 3'600'000},
      {"1/d", 1, 86'400'000},
      {"10/ms", 10, 1},
      {"0/s", 0, 1'000},
      {"1000/10s", 1000, 10'000},
      {"3/1m30s", 3, 90'000},
      {"4294967295/s", 4294967295u, 1'000},
  };
  for (const auto& c : cases) {
    auto parsed = parseRate(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error();
    EXPECT_EQ(parsed->count, c.count) << c.text;
    EXPECT_EQ(parsed->per.count(), c.per_ms) << c.text;
  }
}

TEST(ConfigUnitsTest, RateRejectsWithReason) {
  const RejectCase cases[] = {
      {"", "is not a rate"},
      {"fast", "\"fast\" is not a rate (like 20/s)"},
      {"20", "is not a rate"},
      {"/s", "count before '/'"},
      {"-1/s", "count before '/'"},
      {"1.5/s", "count before '/'"},
      {"4294967296/s", "count before '/'"},
      {"99999999999/s", "count before '/'"},
      {"20/", "no period"},
      {"20/x", "bad period"},
      {"20/0s", "longer than zero"},
      {"20/10", "bad period"},
      {"20 / s", "count before '/'"},
  };
  for (const auto& c : cases) {
    auto parsed = parseRate(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_NE(parsed.error().find(c.message_part), std::string::npos)
        << c.text << ": " << parsed.error();
  }
}

TEST(ConfigUnitsTest, FormatPicksLargestExactUnit) {
  EXPECT_EQ(formatDuration(milliseconds(0)), "0");
  EXPECT_EQ(formatDuration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(formatDuration(milliseconds(90'000)), "90s");
  EXPECT_EQ(formatDuration(milliseconds(120'000)), "2m");
  EXPECT_EQ(formatDuration(milliseconds(7'200'000)), "2h");
  EXPECT_EQ(formatDuration(milliseconds(86'400'000)), "1d");
  EXPECT_EQ(formatDuration(milliseconds(-5'000)), "-5s");
  EXPECT_EQ(formatDuration(milliseconds(std::numeric_limits<int64_t>::min())),
            "-9223372036854775808ms");

  EXPECT_EQ(formatSize(0), "0");
  EXPECT_EQ(formatSize(512), "512");
  EXPECT_EQ(formatSize(65'536), "64KiB");
  EXPECT_EQ(formatSize(64 << 20), "64MiB");
  EXPECT_EQ(formatSize(int64_t{3} << 30), "3GiB");
  EXPECT_EQ(formatSize(int64_t{1} << 40), "1TiB");
  EXPECT_EQ(formatSize(1'536), "1536");
  EXPECT_EQ(formatSize(-1'024), "-1KiB");

  EXPECT_EQ(formatRate(Rate{20, milliseconds(1'000)}), "20/s");
  EXPECT_EQ(formatRate(Rate{100, milliseconds(60'000)}), "100/m");
  EXPECT_EQ(formatRate(Rate{5, milliseconds(3'600'000)}), "5/h");
  EXPECT_EQ(formatRate(Rate{1000, milliseconds(10'000)}), "1000/10s");
}

TEST(ConfigUnitsTest, FormatRoundTripsThroughParse) {
  for (int64_t ms : {int64_t{1}, int64_t{999}, int64_t{1'000}, int64_t{61'000},
                     int64_t{3'600'000}, int64_t{172'800'000}, kInt64Max}) {
    auto back = parseDuration(formatDuration(milliseconds(ms)));
    ASSERT_TRUE(back.has_value()) << ms;
    EXPECT_EQ(back->count(), ms);
  }
  for (int64_t bytes : {int64_t{0}, int64_t{1}, int64_t{1'024}, int64_t{1'025},
                        int64_t{5} << 30, kInt64Max}) {
    auto back = parseSize(formatSize(bytes));
    ASSERT_TRUE(back.has_value()) << bytes;
    EXPECT_EQ(*back, bytes);
  }
  for (Rate rate : {Rate{20, milliseconds(1'000)}, Rate{7, milliseconds(90'000)},
                    Rate{1, milliseconds(1)}}) {
    auto back = parseRate(formatRate(rate));
    ASSERT_TRUE(back.has_value()) << formatRate(rate);
    EXPECT_EQ(back->count, rate.count);
    EXPECT_EQ(back->per, rate.per);
  }
}

}  // namespace
}  // namespace imgate::core::config
