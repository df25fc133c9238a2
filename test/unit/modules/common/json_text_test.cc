// SPDX-License-Identifier: Apache-2.0
// The shared JSON text helpers: string literals byte-identical to JSON.stringify (values from
// Node 18), every 1- and 2-byte input read back by rapidjson as a second opinion, the UTF-8
// step at each boundary of RFC 3629 table 3-7, epochs, and the exact streams and resume
// objects the tcp_frame and WebSocket wire forms carry.
#include "modules/common/json_text.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgate::mod {
namespace {

using namespace std::string_literals;

const std::string kFffd = "\xEF\xBF\xBD";

std::string literalOf(std::string_view s) {
  std::string out;
  appendJsonString(out, s);
  return out;
}

// The string rapidjson reads back from `literal`, or nullopt when it is not valid JSON (UTF-8
// validated).
std::optional<std::string> readBack(const std::string& literal) {
  const std::string array = "[" + literal + "]";
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(array.data(), array.size());
  if (doc.HasParseError() || !doc.IsArray() || doc.Size() != 1 || !doc[0].IsString()) {
    return std::nullopt;
  }
  return std::string(doc[0].GetString(), doc[0].GetStringLength());
}

// ---- appendJsonString ------------------------------------------------------------------------

TEST(CommonJsonTextTest, StringsAreWrittenAsJsonStringifyWritesThem) {
  const std::pair<std::string, std::string> cases[] = {
      {"", R"("")"},
      {"plain text", R"("plain text")"},
      {"a\"b\\c", R"("a\"b\\c")"},
      {"\b\f\n\r\t", R"("\b\f\n\r\t")"},
      {"nul\0\x01\x1f"s, R"("nul\u0000\u0001\u001f")"},
      {"a/b</script>\x7f", "\"a/b</script>\x7f\""},  // '/' and DEL as they are
      {"\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "\"\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      {"\xE2\x80\xA8\xE2\x80\xA9", "\"\xE2\x80\xA8\xE2\x80\xA9\""},  // U+2028/9 as they are
      // Invalid UTF-8: one U+FFFD per maximal subpart (WHATWG), as Node's Buffer#toString.
      {"a\xFF" "b", "\"a" + kFffd + "b\""},
      {"\xC0\xAF", "\"" + kFffd + kFffd + "\""},
      {"\xE2\x82", "\"" + kFffd + "\""},
      {"\xE2\x82\n", "\"" + kFffd + "\\n\""},
      {"\xED\xA0\x80", "\"" + kFffd + kFffd + kFffd + "\""},
      {"\xF0\x9F\x98\xF0\x9F\x98\x80", "\"" + kFffd + "\xF0\x9F\x98\x80\""},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(literalOf(in), want) << in;
  }
}

TEST(CommonJsonTextTest, StringsAppendToWhatIsThere) {
  std::string out = "{\"k\":";
  appendJsonString(out, "v\n");
  appendJsonString(out, "");
  EXPECT_EQ(out, "{\"k\":\"v\\n\"\"\"");
}

TEST(CommonJsonTextTest, EveryControlCharacterHasItsEscape) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string got = literalOf(std::string(1, static_cast<char>(c)));
    static constexpr char kShort[] = {'b', 't', 'n', 0, 'f', 'r'};
    if (c >= 8 && c <= 13 && c != 11) {
      EXPECT_EQ(got, std::string("\"\\") + kShort[c - 8] + "\"") << c;
    } else {
      char want[9];
      std::snprintf(want, sizeof(want), "\"\\u%04x\"", c);
      EXPECT_EQ(got, want) << c;
    }
  }
}

TEST(CommonJsonTextTest, EveryOneAndTwoByteInputIsValidJsonThatReadsBack) {
  auto valid = [](const std::string& s) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    if (s.size() == 1) {
      return b0 < 0x80;
    }
    const auto b1 = static_cast<unsigned char>(s[1]);
    return (b0 < 0x80 && b1 < 0x80) || (b0 >= 0xC2 && b0 <= 0xDF && b1 >= 0x80 && b1 <= 0xBF);
  };
  for (int a = 0; a < 256; ++a) {
    for (int b = -1; b < 256; ++b) {
      std::string in(1, static_cast<char>(a));
      if (b >= 0) {
        in.push_back(static_cast<char>(b));
      }
      const std::string literal = literalOf(in);
      const std::optional<std::string> back = readBack(literal);
      ASSERT_TRUE(back.has_value()) << a << " " << b << ": " << literal;
      if (valid(in)) {
        EXPECT_EQ(*back, in) << a << " " << b;
      } else {
        EXPECT_NE(back->find(kFffd), std::string::npos) << a << " " << b;
      }
    }
  }
}

TEST(CommonJsonTextTest, PlainBytesAreExactlyPrintableAsciiButQuoteAndBackslash) {
  for (int c = 0; c < 256; ++c) {
    const bool want = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
    EXPECT_EQ(jsonPlainByte(static_cast<unsigned char>(c)), want) << c;
  }
}

// ---- utf8Step -------------------------------------------------------------------------------

TEST(CommonJsonTextTest, Utf8StepAtEachBoundary) {
  struct Case {
    std::string bytes;
    size_t len;
    bool ok;
  };
  const Case cases[] = {
      {"\x80", 1, false},               // stray continuation
      {"\xC1\xBF", 1, false},           // overlong 2-byte lead
      {"\xC2\x80", 2, true},            // U+0080
      {"\xDF\xBF", 2, true},            // U+07FF
      {"\xDF", 1, false},               // truncated
      {"\xDF\x41", 1, false},           // not a continuation
      {"\xE0\x9F\xBF", 1, false},       // overlong 3-byte
      {"\xE0\xA0\x80", 3, true},        // U+0800
      {"\xED\x9F\xBF", 3, true},        // U+D7FF
      {"\xED\xA0\x80", 1, false},       // surrogate
      {"\xEF\xBF\xBF", 3, true},        // U+FFFF
      {"\xEF\xBF", 2, false},           // truncated after two
      {"\xF0\x8F\xBF\xBF", 1, false},   // overlong 4-byte
      {"\xF0\x90\x80\x80", 4, true},    // U+10000
      {"\xF4\x8F\xBF\xBF", 4, true},    // U+10FFFF
      {"\xF4\x90\x80\x80", 1, false},   // above U+10FFFF
      {"\xF0\x9F\x98", 3, false},       // truncated after three
      {"\xF5\x80\x80\x80", 1, false},   // never a lead
      {"\xFF", 1, false},
  };
  for (const Case& c : cases) {
    const Utf8Step step =
        utf8Step(reinterpret_cast<const unsigned char*>(c.bytes.data()), c.bytes.size());
    EXPECT_EQ(step.len, c.len) << c.bytes;
    EXPECT_EQ(step.ok, c.ok) << c.bytes;
  }
}

// ---- toValidUtf8 / writeJsonString ----------------------------------------------------------

TEST(CommonJsonTextTest, ToValidUtf8ReplacesEachMaximalInvalidSubpart) {
  EXPECT_EQ(toValidUtf8(""), "");
  EXPECT_EQ(toValidUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"), "h\xC3\xA9llo \xF0\x9F\x98\x80");
  EXPECT_EQ(toValidUtf8("a\xF0\x9F\x98"), "a" + kFffd);          // one truncated sequence
  EXPECT_EQ(toValidUtf8("\xC0\xAF"), kFffd + kFffd);              // overlong: two bytes, two
  // A surrogate written as three bytes is one character to JavaScript, so one U+FFFD; cut
  // short, it is bytes again.
  EXPECT_EQ(toValidUtf8("\xED\xA0\x80x"), kFffd + "x");
  EXPECT_EQ(toValidUtf8("\xED\xB0\x80\xED\xBF\xBF"), kFffd + kFffd);
  EXPECT_EQ(toValidUtf8("\xED\xA0x"), kFffd + kFffd + "x");
  EXPECT_EQ(toValidUtf8("\xED\x9F\xBF"), "\xED\x9F\xBF");  // U+D7FF is a character
  EXPECT_EQ(toValidUtf8("\xFF\xFEok"), kFffd + kFffd + "ok");
  // The same rule as appendJsonString: for every 1- and 2-byte input the literal holds exactly
  // the cleaned text.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0x20; b < 256; b += 7) {
      const std::string in{static_cast<char>(a), static_cast<char>(b)};
      const std::string clean = toValidUtf8(in);
      EXPECT_TRUE(common::isValidUtf8(clean)) << a << " " << b;
      EXPECT_EQ(readBack(literalOf(in)), readBack(literalOf(clean))) << a << " " << b;
    }
  }
}

// Collects what a rapidjson Writer would be given.
struct StringSink {
  std::vector<std::string> strings;
  bool String(const char* s, unsigned n) {
    strings.emplace_back(s, n);
    return true;
  }
};

TEST(CommonJsonTextTest, WriteJsonStringAlwaysHandsOverValidUtf8) {
  StringSink sink;
  writeJsonString(sink, "plain");
  writeJsonString(sink, "bad \xC3(");
  writeJsonString(sink, std::string_view("nul\0in", 6));
  ASSERT_EQ(sink.strings.size(), 3u);
  EXPECT_EQ(sink.strings[0], "plain");
  EXPECT_EQ(sink.strings[1], "bad " + kFffd + "(");
  EXPECT_EQ(sink.strings[2], std::string("nul\0in", 6));
}

// ---- Reliable delivery ----------------------------------------------------------------------

TEST(CommonJsonTextTest, EpochsAreLowerCaseHexWithoutLeadingZeros) {
  EXPECT_EQ(epochHex(0), "0");
  EXPECT_EQ(epochHex(1), "1");
  EXPECT_EQ(epochHex(0xABC), "abc");
  EXPECT_EQ(epochHex(0x100), "100");
  EXPECT_EQ(epochHex(0x00000000deadbeef), "deadbeef");
  EXPECT_EQ(epochHex(0x9f3a0c11d2e4b5a6), "9f3a0c11d2e4b5a6");
  EXPECT_EQ(epochHex(UINT64_MAX), "ffffffffffffffff");
}

TEST(CommonJsonTextTest, StreamsObjectIsExact) {
  const std::vector<StreamStart> streams = {
      {"user", 0x9f3a0c11d2e4b5a6, 7, StreamStart::Outcome::kRecovered, 3},
      {std::string("room:a\"b\n\x01", 10), 0, 0, StreamStart::Outcome::kImpossible, 0},
      {"all", 1, UINT64_MAX, StreamStart::Outcome::kFresh, UINT64_MAX},
  };
  std::string out;
  appendStreamsJson(out, {});
  EXPECT_EQ(out, "{}");
  // Appended after other text, as the WebSocket welcome does: commas only between entries.
  out = "x:";
  appendStreamsJson(out, streams);
  EXPECT_EQ(out,
            R"(x:{"user":{"epoch":"9f3a0c11d2e4b5a6","seq":7,"recovery":"recovered","replayed":3},)"
            R"("room:a\"b\n\u0001":{"epoch":"0","seq":0,"recovery":"impossible","replayed":0},)"
            R"("all":{"epoch":"1","seq":18446744073709551615,"recovery":"fresh",)"
            R"("replayed":18446744073709551615}})");
}

TEST(CommonJsonTextTest, ResumeObjectIsExactForAnyPositionType) {
  struct Position {
    std::string stream;
    uint64_t epoch;
    uint64_t seq;
  };
  std::string out;
  appendResumeJson(out, std::vector<Position>{});
  EXPECT_EQ(out, "{}");
  out = "[";
  appendResumeJson(out, std::vector<Position>{{"user", 0xab, 3}, {"room:\"q\"\t", 0, UINT64_MAX}});
  EXPECT_EQ(out, R"([{"user":{"epoch":"ab","seq":3},)"
                 R"("room:\"q\"\t":{"epoch":"0","seq":18446744073709551615}})");
  rapidjson::Document doc;
  const std::string json = out.substr(1);
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(json.data(), json.size());
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(doc["room:\"q\"\t"]["seq"].GetUint64(), UINT64_MAX);
}

}  // namespace
}  // namespace imgate::mod
