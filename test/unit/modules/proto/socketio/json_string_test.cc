// SPDX-License-Identifier: Apache-2.0
// JSON string encoding must be byte-identical to JavaScript's JSON.stringify and the scanner
// must accept exactly what JSON.parse accepts; the expected values below are what Node 18+
// produces for the same inputs. rapidjson serves as an independent second opinion on
// acceptance, except where it knowingly differs from JSON.parse (huge numbers, lone high
// surrogate escapes).
#include "modules/proto/socketio/json_string.h"

#include "modules/common/utf8.h"

#include <gtest/gtest.h>
#include <rapidjson/reader.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace imgate::mod::socketio {
namespace {

using namespace std::string_literals;

std::string utf8(uint32_t cp) {
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
  return s;
}

const std::string kFffd = "\xEF\xBF\xBD";

// ---- appendJsonString ------------------------------------------------------------------------

TEST(SocketioJsonString, MatchesJsonStringify) {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"", R"("")"},
      {"hello", R"("hello")"},
      {"say \"hi\"", R"("say \"hi\"")"},
      {"back\\slash", R"("back\\slash")"},
      {"a/b</script>", R"("a/b</script>")"},  // '/' is not escaped
      {"\b\f\n\r\t", R"("\b\f\n\r\t")"},
      {"\x01\x1f\x1e\x1b"s, R"("\u0001\u001f\u001e\u001b")"},
      {"nul\0byte"s, R"("nul\u0000byte")"},
      {"\x7f", "\"\x7f\""},  // DEL is not escaped
      {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
       "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\""},
      {"\xE2\x80\xA8\xE2\x80\xA9", "\"\xE2\x80\xA8\xE2\x80\xA9\""},  // U+2028/9 as they are
  };
  for (const Case& c : cases) {
    std::string out = "prefix:";
    appendJsonString(out, c.in);
    EXPECT_EQ(out, "prefix:" + c.out) << c.in;
    EXPECT_EQ(jsonString(c.in), c.out);
  }
}

TEST(SocketioJsonString, EveryControlCharacter) {
  for (int c = 0; c < 0x20; ++c) {
    std::string expected;
    switch (c) {
      case 8: expected = R"("\b")"; break;
      case 9: expected = R"("\t")"; break;
      case 10: expected = R"("\n")"; break;
      case 12: expected = R"("\f")"; break;
      case 13: expected = R"("\r")"; break;
      default: {
        char buf[16];
        std::snprintf(buf, sizeof(buf), "\"\\u%04x\"", c);
        expected = buf;
      }
    }
    EXPECT_EQ(jsonString(std::string(1, static_cast<char>(c))), expected) << c;
  }
  for (int c = 0x20; c < 0x80; ++c) {
    if (c == '"' || c == '\\') {
      continue;
    }
    EXPECT_EQ(jsonString(std::string(1, static_cast<char>(c))),
              "\"" + std::string(1, static_cast<char>(c)) + "\"");
  }
}

// Invalid UTF-8: one U+FFFD per maximal subpart (WHATWG), so the output is valid UTF-8.
TEST(SocketioJsonString, InvalidUtf8BecomesReplacementCharacter) {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"\x80", kFffd},                                    // lone continuation
      {"a\xFF" "b", "a" + kFffd + "b"},                   // never valid
      {"\xC0\xAF", kFffd + kFffd},                        // overlong lead
      {"\xE2\x82", kFffd},                                // truncated at the end
      {"\xE2\x82" "A", kFffd + "A"},                      // truncated, then ASCII
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},            // UTF-8-encoded surrogate
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xF0\x9F\x98", kFffd},                            // 3 of 4 bytes
      {"\xF0\x9F\x98\xF0\x9F\x98\x80", kFffd + "\xF0\x9F\x98\x80"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(jsonString(c.in), "\"" + c.out + "\"");
    EXPECT_TRUE(common::isValidUtf8(jsonString(c.in)));
    EXPECT_FALSE(common::isValidUtf8(c.in));
  }
}

// ---- parseJsonString -------------------------------------------------------------------------

TEST(SocketioJsonString, ParseValid) {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {R"("")", ""},
      {R"("plain")", "plain"},
      {R"("\"\\\/\b\f\n\r\t")", "\"\\/\b\f\n\r\t"},
      {R"("\u0041\u00e9\u20AC")", "A\xC3\xA9\xE2\x82\xAC"},
      {R"("\u0000")", "\0"s},
      {R"("\ud83d\ude00")", "\xF0\x9F\x98\x80"},      // surrogate pair
      {R"("\uD83D\uDE00")", "\xF0\x9F\x98\x80"},      // upper-case hex
      {R"("\ud800")", kFffd},                          // lone high surrogate
      {R"("\udc00")", kFffd},                          // lone low surrogate
      {R"("\ud800\u0041")", kFffd + "A"},              // high, then not a low
      {R"("\ud800\ud800\udc00")", kFffd + "\xF0\x90\x80\x80"},
      {"\"caf\xC3\xA9\"", "caf\xC3\xA9"},
      {"\"\x7f\"", "\x7f"},
  };
  for (const Case& c : cases) {
    auto r = parseJsonString(c.in);
    ASSERT_TRUE(r) << c.in << ": " << r.error().message;
    EXPECT_EQ(*r, c.out) << c.in;
  }
}

TEST(SocketioJsonString, ParseInvalid) {
  struct Case {
    std::string in;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", "not a json string"},
      {"abc", "not a json string"},
      {"\"", "not a json string"},
      {"\"abc", "unterminated"},
      {R"("a\")", "unterminated"},
      {R"("\x41")", "bad escape"},
      {R"("\u12")", "bad \\u escape"},
      {R"("\u12G4")", "bad \\u escape"},
      {"\"a\nb\"", "control character"},
      {"\"\x01\"", "control character"},
      {"\"\xC3\"", "invalid utf-8"},
      {"\"\xED\xA0\x80\"", "invalid utf-8"},
      {R"("a" )", "bytes after json string"},
      {R"("a""b")", "bytes after json string"},
      {R"( "a")", "not a json string"},
  };
  for (const Case& c : cases) {
    auto r = parseJsonString(c.in);
    ASSERT_FALSE(r) << c.in;
    EXPECT_EQ(r.error().code, Errc::kProtocolError);
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos)
        << c.in << " -> " << r.error().message;
  }
}

// parse(stringify(s)) == s for every valid UTF-8 string: all of the BMP and the supplementary
// planes' boundaries, each character alone and inside text.
TEST(SocketioJsonString, RoundTripEveryCodePoint) {
  std::vector<uint32_t> cps;
  for (uint32_t cp = 0; cp < 0x10000; ++cp) {
    if (cp < 0xD800 || cp > 0xDFFF) {
      cps.push_back(cp);
    }
  }
  for (uint32_t cp : {0x10000u, 0x1F600u, 0x10FFFFu, 0xFFFFFu}) {
    cps.push_back(cp);
  }
  std::string all;
  for (uint32_t cp : cps) {
    const std::string s = "x" + utf8(cp) + "y";
    auto r = parseJsonString(jsonString(s));
    ASSERT_TRUE(r) << cp;
    ASSERT_EQ(*r, s) << cp;
    all += utf8(cp);
  }
  auto r = parseJsonString(jsonString(all));
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, all);
  ASSERT_TRUE(scanJson(jsonString(all)));
}

// ---- scanJson --------------------------------------------------------------------------------

bool rapidjsonAccepts(const std::string& json) {
  // Padding: rapidjson 1.1 reads past the NUL after a truncated UTF-8 sequence. In situ: its
  // internal stack, which in-situ parsing of these inputs does not touch, trips UBSan.
  std::string text = json + std::string(4, '\0');
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::InsituStringStream stream(text.data());
  reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag>(stream,
                                                                                      handler);
  return !reader.HasParseError();
}

const std::vector<std::string> kValidJson = {
    "0", "-0", "1", "-1", "123", "1.5", "-0.25", "1e3", "1E+3", "1e-3", "0.5e10", "true",
    "false", "null", R"("")", R"("x")", "[]", "{}", "[1,2,3]", R"({"a":1,"b":[true,null]})",
    " [ 1 , 2 ] ", "\t\n\r{}\r\n\t", R"([[[[]]]])", R"({"":{}})", R"({"a":1,"a":2})",
    R"(["\u0041\ud83d\ude00"])", "[\"caf\xC3\xA9\"]", R"(["\/"])", "[-1.0e-0]",
    R"([{"_placeholder":true,"num":0}])",
};

TEST(SocketioJsonScan, AcceptsWhatJsonParseAccepts) {
  for (const std::string& text : kValidJson) {
    auto r = scanJson(text);
    EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().message);
    EXPECT_TRUE(rapidjsonAccepts(text)) << text;
  }
  // JSON.parse accepts these; rapidjson 1.1 does not (kParseErrorNumberTooBig,
  // kParseErrorStringUnicodeSurrogateInvalid), hence our own scanner.
  for (const std::string text : {"1e400", "[123456789e999]", R"(["\ud800"])", R"(["\udfff"])"}) {
    EXPECT_TRUE(scanJson(text)) << text;
  }
  EXPECT_TRUE(scanJson("[" + std::string(400, '9') + "]"));
}

TEST(SocketioJsonScan, RejectsWhatJsonParseRejects) {
  struct Case {
    std::string text;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", "bad json at offset 0"},
      {"   ", "bad json at offset 3"},
      {"01", "bytes after json value"},
      {"1.", "bad json"},
      {".5", "bad json"},
      {"+1", "bad json"},
      {"-", "bad json"},
      {"1e", "bad json"},
      {"0x10", "bytes after json value"},
      {"NaN", "bad json"},
      {"Infinity", "bad json"},
      {"tru", "bad json"},
      {"nul", "bad json"},
      {"True", "bad json"},
      {"'a'", "bad json"},
      {"[1,]", "bad json"},
      {"[,1]", "bad json"},
      {"[1 2]", "bad json"},
      {"[", "bad json"},
      {"]", "bad json"},
      {"[1}", "bad json"},
      {"{\"a\"}", "bad json"},
      {"{\"a\":}", "bad json"},
      {"{a:1}", "bad json"},
      {"{1:2}", "bad json"},
      {"{\"a\":1,}", "bad json"},
      {"{\"a\" 1}", "bad json"},
      {"[1] [2]", "bytes after json value"},
      {"[1]x", "bytes after json value"},
      {"/*c*/1", "bad json"},
      {"[\"a\nb\"]", "control character"},
      {"[\"\t\"]", "control character"},
      {"[\"\\x\"]", "bad escape"},
      {"[\"\\u00g0\"]", "bad \\u escape"},
      {"[\"abc]", "unterminated json string"},
      {"[\"\xC3\x28\"]", "invalid utf-8"},
      {"[\"\xED\xA0\x80\"]", "invalid utf-8"},
      {"\xEF\xBB\xBF[]", "bad json"},  // JSON.parse does not skip a BOM
      {"[\xC2\xA0]", "bad json"},      // nor non-ASCII whitespace
      {"[1]\0"s, "bytes after json value"},
      {"\0[1]"s, "bad json"},
  };
  for (const Case& c : cases) {
    auto r = scanJson(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().code, Errc::kProtocolError);
    EXPECT_NE(r.error().message.find(c.reason), std::string::npos)
        << c.text << " -> " << r.error().message;
    if (c.text.find('\0') == std::string::npos) {
      EXPECT_FALSE(rapidjsonAccepts(c.text)) << c.text;
    }
  }
}

TEST(SocketioJsonScan, DepthLimit) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(scanJson(nested(32)));
  auto r = scanJson(nested(33));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nested deeper than 32"), std::string::npos);
  JsonScanOptions options;
  options.max_depth = 2;
  EXPECT_TRUE(scanJson(R"({"a":[1]})", options));
  EXPECT_FALSE(scanJson(R"({"a":[{}]})", options));
  EXPECT_TRUE(scanJson("1", JsonScanOptions{0, false, 0}));
  EXPECT_FALSE(scanJson("[]", JsonScanOptions{0, false, 0}));
  // A deep document is refused without recursion and without growing with its size.
  EXPECT_FALSE(scanJson(std::string(1 << 20, '[')));
}

TEST(SocketioJsonScan, Shape) {
  {
    const std::string t = R"(["chat",{"a":1},2])";
    auto r = scanJson(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->root, JsonKind::kArray);
    EXPECT_EQ(r->elements, 3u);
    EXPECT_EQ(r->first, JsonKind::kString);
    EXPECT_EQ(t.substr(r->first_begin, r->first_end - r->first_begin), "\"chat\"");
    EXPECT_EQ(t.substr(r->second_begin), R"({"a":1},2])");
    EXPECT_EQ(r->close, t.size() - 1);
  }
  {
    const std::string t = " [ [1, 2] ,\t3 ] ";
    auto r = scanJson(t);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->elements, 2u);
    EXPECT_EQ(r->first, JsonKind::kArray);
    EXPECT_EQ(t.substr(r->first_begin, r->first_end - r->first_begin), "[1, 2]");
    EXPECT_EQ(t[r->second_begin], '3');
    EXPECT_EQ(r->close, t.size() - 2);
  }
  {
    auto r = scanJson("[]");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->elements, 0u);
    EXPECT_EQ(r->close, 1u);
  }
  {
    auto r = scanJson(R"([{}])");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first, JsonKind::kObject);
    EXPECT_EQ(r->first_begin, 1u);
    EXPECT_EQ(r->first_end, 3u);
  }
  {
    auto r = scanJson(R"({"a":[1,2]})");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->root, JsonKind::kObject);
    EXPECT_EQ(r->elements, 0u);
  }
  const std::vector<std::pair<std::string, JsonKind>> roots = {
      {"null", JsonKind::kNull},   {"false", JsonKind::kFalse}, {"true", JsonKind::kTrue},
      {"-1.5", JsonKind::kNumber}, {"\"s\"", JsonKind::kString}, {"[]", JsonKind::kArray},
      {"{}", JsonKind::kObject},
  };
  for (const auto& [text, kind] : roots) {
    auto r = scanJson(text);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->root, kind) << text;
  }
}

TEST(SocketioJsonScan, Placeholders) {
  JsonScanOptions options;
  options.check_placeholders = true;
  options.attachments = 2;
  const std::vector<std::string> good = {
      R"(["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])",
      R"(["a",{"num":1,"_placeholder":true}])",               // member order is free
      R"(["a",{"b":[{"_placeholder":true,"num":0}]}])",       // nested
      R"(["a",{"_placeholder":false,"num":"x"}])",            // not a placeholder
      R"(["a",{"_placeholder":"true"}])",                     // only `true` counts
      R"(["a",{"_placeholder":true,"num":0.0}])",             // JSON.parse gives 0
      R"(["a",{"_placeholder":true,"num":1e0}])",
      R"(["a",{"_placeholder":true,"num":-0}])",              // -0 >= 0
      R"(["a",{"_placeholder":true,"_placeholder":false}])",  // last duplicate wins
      R"(["a",{"\u005fplaceholder":false,"num":9}])",
  };
  for (const std::string& t : good) {
    auto r = scanJson(t, options);
    EXPECT_TRUE(r) << t << ": " << (r ? "" : r.error().message);
  }
  const std::vector<std::string> bad = {
      R"(["a",{"_placeholder":true,"num":2}])",
      R"(["a",{"_placeholder":true,"num":-1}])",
      R"(["a",{"_placeholder":true,"num":"0"}])",
      R"(["a",{"_placeholder":true,"num":"splice"}])",
      R"(["a",{"_placeholder":true}])",
      R"(["a",{"_placeholder":true,"num":null}])",
      R"(["a",{"_placeholder":true,"num":1e400}])",
      R"(["a",{"_placeholder":true,"num":[0]}])",
      R"(["a",{"_placeholder":true,"num":0,"num":5}])",
      R"(["a",{"\u005fplaceholder":true,"n\u0075m":7}])",  // escaped names are the same names
      R"(["a",{"x":{"_placeholder":true,"num":3}}])",
  };
  for (const std::string& t : bad) {
    auto r = scanJson(t, options);
    ASSERT_FALSE(r) << t;
    EXPECT_NE(r.error().message.find("illegal attachments"), std::string::npos) << t;
    EXPECT_TRUE(scanJson(t)) << t;  // plain JSON without the check
  }
}

}  // namespace
}  // namespace imgate::mod::socketio
