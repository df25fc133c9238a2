// SPDX-License-Identifier: Apache-2.0
#include "modules/common/utf8.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgate::mod::common {
namespace {

struct Utf8Case {
  std::string name;
  std::string bytes;
  bool valid;
};

std::vector<Utf8Case> utf8Cases() {
  return {
      {"empty", "", true},
      {"ascii", "Hello, world! 0123456789 long enough to use the word loop", true},
      {"two_byte", "\xC2\xA9 caf\xC3\xA9", true},
      {"three_byte", "\xE2\x82\xAC \xE4\xBD\xA0\xE5\xA5\xBD", true},
      {"four_byte", "\xF0\x9F\x98\x80", true},
      {"max_code_point", "\xF4\x8F\xBF\xBF", true},
      {"last_before_surrogates", "\xED\x9F\xBF", true},
      {"first_after_surrogates", "\xEE\x80\x80", true},
      {"bom", "\xEF\xBB\xBF", true},
      {"mixed_long", std::string(40, 'a') + "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5" +
                         std::string(17, 'z'), true},
      {"stray_continuation", "a\x80z", false},
      {"overlong_slash_2", "\xC0\xAF", false},
      {"overlong_c1", "\xC1\xBF", false},
      {"overlong_3", "\xE0\x80\xAF", false},
      {"overlong_3_max", "\xE0\x9F\xBF", false},
      {"overlong_4", "\xF0\x80\x80\xAF", false},
      {"overlong_4_max", "\xF0\x8F\xBF\xBF", false},
      {"surrogate_low_end", "\xED\xA0\x80", false},
      {"surrogate_high_end", "\xED\xBF\xBF", false},
      {"above_max", "\xF4\x90\x80\x80", false},
      {"f5_lead", "\xF5\x80\x80\x80", false},
      {"ff_byte", "ab\xFF", false},
      {"fe_byte", "\xFE", false},
      {"truncated_2", "\xC3", false},
      {"truncated_3", "\xE2\x82", false},
      {"truncated_4", "\xF0\x9F\x98", false},
      {"lead_then_ascii", "\xE2x\x82", false},
      {"invalid_after_ascii_run", std::string(64, 'q') + "\xC0\x80", false},
  };
}

TEST(WsUtf8Test, WholeBufferTable) {
  for (const Utf8Case& c : utf8Cases()) {
    EXPECT_EQ(isValidUtf8(c.bytes), c.valid) << c.name;
  }
}

TEST(WsUtf8Test, SplitAtEveryOffsetAgrees) {
  for (const Utf8Case& c : utf8Cases()) {
    for (size_t k = 0; k <= c.bytes.size(); ++k) {
      Utf8Validator v;
      const bool ok = v.feed(std::string_view(c.bytes).substr(0, k)) &&
                      v.feed(std::string_view(c.bytes).substr(k));
      EXPECT_EQ(ok && v.complete(), c.valid) << c.name << " split at " << k;
    }
    Utf8Validator bytewise;
    bool ok = true;
    for (char ch : c.bytes) {
      ok = bytewise.feed(std::string_view(&ch, 1)) && ok;
    }
    EXPECT_EQ(ok && bytewise.complete(), c.valid) << c.name << " byte by byte";
  }
}

TEST(WsUtf8Test, FailsFastAtFirstImpossibleByte) {
  Utf8Validator v;
  // U+110000 would need F4 90: the validator must reject at 0x90, before the sequence ends.
  EXPECT_TRUE(v.feed("ok \xF4"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed("\x90"));
  EXPECT_TRUE(v.failed());
  // Once failed, it stays failed even for valid input.
  EXPECT_FALSE(v.feed("abc"));
  v.reset();
  EXPECT_TRUE(v.feed("abc"));
  EXPECT_TRUE(v.complete());

  Utf8Validator surrogate;
  EXPECT_FALSE(surrogate.feed("\xED\xA0"));  // rejected before the third byte arrives
}

TEST(WsUtf8Test, IncompleteIsNotFailed) {
  Utf8Validator v;
  EXPECT_TRUE(v.feed("\xF0\x9F"));
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.failed());
  EXPECT_TRUE(v.feed("\x98\x80"));
  EXPECT_TRUE(v.complete());
}

TEST(WsUtf8Test, ExhaustiveCodePointsAgreeWithEncoder) {
  // Every scalar value encodes to valid UTF-8; every surrogate encoding is rejected.
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 13)) {
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    EXPECT_EQ(isValidUtf8(s), !surrogate) << std::hex << cp;
  }
}

TEST(WsUtf8Test, ValidPrefixCutsOnCharacterBoundary) {
  const std::string euro3 = "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC";  // 3 x 3 bytes
  EXPECT_EQ(validUtf8Prefix(euro3, 9), 9u);
  EXPECT_EQ(validUtf8Prefix(euro3, 8), 6u);
  EXPECT_EQ(validUtf8Prefix(euro3, 7), 6u);
  EXPECT_EQ(validUtf8Prefix(euro3, 2), 0u);
  EXPECT_EQ(validUtf8Prefix("abc\xFF" "def", 10), 3u);
  EXPECT_EQ(validUtf8Prefix("", 10), 0u);
}

// Strings the push API checks (ids, query parameters, bodies).
TEST(Utf8, PushApiCases) {
  for (const char* good : {"", "ascii", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                           "\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(isValidUtf8(good)) << good;
  }
  for (const char* bad : {"\x80", "\xC3", "\xC3\x28", "\xC0\xAF", "\xE0\x80\xAF",
                          "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF",
                          "ok\xE2\x82"}) {
    EXPECT_FALSE(isValidUtf8(bad)) << bad;
  }
}

}  // namespace
}  // namespace imgate::mod::common
