// SPDX-License-Identifier: Apache-2.0
// Connection state recovery offsets: exact encodings, round trips with room names holding any
// byte, the canonical-only decoder (every accepted text re-encodes to itself, including every
// prefix of a valid offset that decodes), limits, and the resume JSON for the core.
#include "modules/proto/socketio/sio_recovery.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "modules/proto/socketio/json_string.h"

namespace imgate::mod::socketio {
namespace {

using Positions = std::vector<StreamPosition>;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(SioRecoveryOffset, ExactEncodings) {
  EXPECT_EQ(encodeRecoveryOffset({}), "");
  EXPECT_EQ(encodeRecoveryOffset({{"user", 0xab, 3}}), "user~ab~3");
  EXPECT_EQ(encodeRecoveryOffset({{"all", 0, 0}, {"room:lobby", 0x1b, 12}, {"user", 1, kMax}}),
            "all~0~0|room:lobby~1b~12|user~1~18446744073709551615");
  EXPECT_EQ(encodeRecoveryOffset({{"room:a|b~c%d", 1, 2}}), "room:a%7Cb%7Ec%25d~1~2");
  EXPECT_EQ(encodeRecoveryOffset({{"room:two words", 1, 2}}), "room:two%20words~1~2");
  EXPECT_EQ(encodeRecoveryOffset({{"room:\"q\"\\", 1, 2}}), "room:%22q%22%5C~1~2");
  EXPECT_EQ(encodeRecoveryOffset({{std::string("room:\x00\xc3\xa9\xff", 9), 1, 2}}),
            "room:%00%C3%A9%FF~1~2");
  EXPECT_EQ(encodeRecoveryOffset({{"room:-._:/@!$&'()*+,;=Az9", 1, 2}}),
            "room:-._:/@!$&'()*+,;=Az9~1~2")
      << "safe characters stay as they are";
}

TEST(SioRecoveryOffset, RoundTripWithAnyRoomName) {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) {
    every_byte.push_back(static_cast<char>(b));
  }
  const std::vector<Positions> cases = {
      {},
      {{"user", 0, 0}},
      {{"user", 0x9f3a0c11d2e4b5a6, 12}, {"room:lobby", 1, 1}, {"all", kMax, kMax}},
      {{"room:" + every_byte, 7, 8}, {"room:~", 1, 1}, {"room:|", 2, 2}, {"room:%", 3, 3}},
      {{"~~||%%", 1, 0}, {"a~1~2|b~3~4", 5, 6}},
      {{std::string("\x00", 1), 1, 1}, {"\xff", 2, 2}, {"\xe2\x80\xa8", 3, 3}},
  };
  for (const Positions& positions : cases) {
    const std::string offset = encodeRecoveryOffset(positions);
    for (char c : offset) {
      // Printable ASCII without what JSON escapes: the offset crosses JSON unchanged.
      EXPECT_TRUE(c >= 0x21 && c <= 0x7e && c != '"' && c != '\\') << offset;
    }
    EXPECT_EQ(jsonString(offset), "\"" + offset + "\"");
    auto decoded = decodeRecoveryOffset(offset, 100);
    ASSERT_TRUE(decoded) << offset << ": " << decoded.error().message;
    EXPECT_EQ(*decoded, positions) << offset;
    EXPECT_EQ(encodeRecoveryOffset(*decoded), offset);
  }
}

TEST(SioRecoveryOffset, RejectsWhatItWouldNotWrite) {
  const std::vector<std::string> bad = {
      "-",                          // kUnrecoverableOffset
      "user",                       // no epoch, no seq
      "user~ab",                    // no seq
      "~ab~3",                      // no stream
      "user~~3",                    // empty epoch
      "user~ab~",                   // empty seq
      "user~AB~3",                  // upper-case epoch
      "user~0ab~3",                 // leading zero in the epoch
      "user~ab~03",                 // leading zero in the seq
      "user~ab~-3",                 // signed
      "user~ab~+3",
      "user~ab~3 ",                 // trailing space
      "user~ab~3|",                 // empty entry
      "|user~ab~3",
      "user~ab~3||all~1~1",
      "user~10000000000000000~1",   // epoch above 64 bits
      "user~1~18446744073709551616",  // seq above 64 bits
      "user~1~2~3",                 // a raw '~' in the name
      "a b~1~2",                    // a raw space
      "a\"b~1~2",
      "room:%7c~1~2",               // lower-case escape
      "room:%7~1~2",                // truncated escape
      "room:%~1~2",
      "room:%zz~1~2",
      "room:%41~1~2",               // needless escape of 'A'
      "user~ab~3|user~ab~4",        // the same stream twice
      "user~x~3",
      "user~ab~3x",
  };
  for (const std::string& offset : bad) {
    auto decoded = decodeRecoveryOffset(offset, 100);
    EXPECT_FALSE(decoded) << offset;
    if (!decoded) {
      EXPECT_EQ(decoded.error().code, Errc::kBadRequest) << offset;
    }
  }
}

TEST(SioRecoveryOffset, StreamLimit) {
  const std::string three = "a~1~1|b~1~1|c~1~1";
  EXPECT_TRUE(decodeRecoveryOffset(three, 3));
  auto refused = decodeRecoveryOffset(three, 2);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kBadRequest);
  EXPECT_TRUE(decodeRecoveryOffset("", 0)) << "no entries fit any limit";
  EXPECT_FALSE(decodeRecoveryOffset("a~1~1", 0));
}

// The decoder is canonical: whatever it accepts re-encodes byte for byte, so every prefix of a
// valid offset either fails or is itself the encoding of what it decodes to.
TEST(SioRecoveryOffset, EveryPrefixIsRejectedOrCanonical) {
  const std::string offset =
      encodeRecoveryOffset({{"all", 0x9f, 170}, {"room:a|b %", 0x1000, 9}, {"user", 1, 10}});
  size_t accepted = 0;
  for (size_t n = 0; n <= offset.size(); ++n) {
    const std::string prefix = offset.substr(0, n);
    auto decoded = decodeRecoveryOffset(prefix, 100);
    if (decoded) {
      ++accepted;
      EXPECT_EQ(encodeRecoveryOffset(*decoded), prefix);
    }
  }
  // "", "all~9f~1", "all~9f~17", "all~9f~170", ... and the whole offset.
  EXPECT_GE(accepted, 5u);
}

TEST(SioRecoveryResume, JsonForTheCore) {
  EXPECT_EQ(resumeJson({}), "{}");
  EXPECT_EQ(resumeJson({{"user", 0xab, 3}}), R"({"user":{"epoch":"ab","seq":3}})");
  const std::string json =
      resumeJson({{"room:\"a|b\"", 0, 0}, {"user", kMax, kMax}, {"room:\n", 1, 2}});
  EXPECT_EQ(json,
            R"({"room:\"a|b\"":{"epoch":"0","seq":0},)"
            R"("user":{"epoch":"ffffffffffffffff","seq":18446744073709551615},)"
            R"("room:\n":{"epoch":"1","seq":2}})");
  auto shape = scanJson(json);
  ASSERT_TRUE(shape);
  EXPECT_EQ(shape->root, JsonKind::kObject);
}

}  // namespace
}  // namespace imgate::mod::socketio
