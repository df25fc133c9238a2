// SPDX-License-Identifier: Apache-2.0
#include "upstream/http_response_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace imgate::core::upstream {
namespace {

struct Outcome {
  std::vector<ParsedResponse> responses;
  bool failed = false;
  Errc code = Errc::kNone;
  std::string message;
};

// Feeds `pieces` in order (keeping unconsumed bytes, as a connection would), taking every
// complete response; `eof` calls finish() at the end.
Outcome run(const std::vector<std::string>& pieces, bool eof, ResponseLimits limits = {},
            bool head = false) {
  HttpResponseParser parser(limits);
  parser.expectNoBody(head);
  Outcome out;
  std::string buffer;
  for (const auto& piece : pieces) {
    buffer += piece;
    while (!buffer.empty()) {
      auto consumed = parser.feed(buffer);
      if (!consumed) {
        out.failed = true;
        out.code = consumed.error().code;
        out.message = consumed.error().message;
        return out;
      }
      buffer.erase(0, *consumed);
      if (!parser.complete()) {
        EXPECT_TRUE(buffer.empty());
        break;
      }
      out.responses.push_back(parser.take());
      parser.expectNoBody(head);
    }
  }
  if (eof) {
    auto st = parser.finish();
    if (!st) {
      out.failed = true;
      out.code = st.error().code;
      out.message = st.error().message;
    } else if (parser.complete()) {
      out.responses.push_back(parser.take());
    }
  }
  return out;
}

// Whole, one byte at a time, and split in two at every offset: all must agree.
std::vector<Outcome> allSplits(const std::string& input, bool eof, ResponseLimits limits = {},
                               bool head = false) {
  std::vector<Outcome> outs;
  outs.push_back(run({input}, eof, limits, head));
  std::vector<std::string> bytes;
  for (char c : input) {
    bytes.emplace_back(1, c);
  }
  outs.push_back(run(bytes, eof, limits, head));
  for (size_t i = 1; i < input.size(); ++i) {
    outs.push_back(run({input.substr(0, i), input.substr(i)}, eof, limits, head));
  }
  return outs;
}

void expectSame(const std::vector<Outcome>& outs) {
  for (size_t k = 1; k < outs.size(); ++k) {
    ASSERT_EQ(outs[k].failed, outs[0].failed) << "split " << k;
    ASSERT_EQ(outs[k].message, outs[0].message) << "split " << k;
    ASSERT_EQ(outs[k].responses.size(), outs[0].responses.size()) << "split " << k;
    for (size_t i = 0; i < outs[0].responses.size(); ++i) {
      const auto& a = outs[0].responses[i];
      const auto& b = outs[k].responses[i];
      EXPECT_EQ(a.status, b.status);
      EXPECT_EQ(a.body, b.body);
      EXPECT_EQ(a.keep_alive, b.keep_alive);
      ASSERT_EQ(a.headers.size(), b.headers.size());
      for (size_t h = 0; h < a.headers.size(); ++h) {
        EXPECT_EQ(a.headers[h].name, b.headers[h].name);
        EXPECT_EQ(a.headers[h].value, b.headers[h].value);
      }
    }
  }
}

struct Case {
  const char* name;
  std::string input;
  bool eof;
  std::vector<int> statuses;
  std::vector<std::string> bodies;
  std::vector<bool> keep_alive;
};

TEST(UpstreamResponseParser, ValidResponsesAgreeAtEverySplit) {
  const std::vector<Case> cases = {
      {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\nhello", false,
       {200}, {"hello"}, {true}},
      {"bare LF", "HTTP/1.1 201 Created\nContent-Length: 2\n\nhi", false, {201}, {"hi"}, {true}},
      {"no reason", "HTTP/1.1 204\r\n\r\n", false, {204}, {""}, {true}},
      {"chunked with ext and trailer",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n"
       "0\r\nX-Trailer: 1\r\n\r\n",
       false, {200}, {"hello world"}, {true}},
      {"until close", "HTTP/1.1 200 OK\r\n\r\nstream of bytes", true, {200}, {"stream of bytes"},
       {false}},
      {"interim skipped",
       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
       false, {200}, {"z"}, {true}},
      {"304 ignores length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false,
       {304}, {""}, {true}},
      {"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
       false, {200}, {""}, {false}},
      {"http/1.0 keep-alive",
       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\na", false, {200},
       {"a"}, {true}},
      {"http/1.0 default close", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\na", false, {200},
       {"a"}, {false}},
      {"two in a row",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 503 U\r\nContent-Length: 2\r\n\r\nbc",
       false, {200, 503}, {"a", "bc"}, {true, true}},
      {"repeated equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc", false,
       {200}, {"abc"}, {true}},
      {"te and cl: te wins, no reuse",
       "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nq\r\n0\r\n"
       "\r\n",
       false, {200}, {"q"}, {false}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto outs = allSplits(c.input, c.eof);
    expectSame(outs);
    ASSERT_FALSE(outs[0].failed) << outs[0].message;
    ASSERT_EQ(outs[0].responses.size(), c.statuses.size());
    for (size_t i = 0; i < c.statuses.size(); ++i) {
      EXPECT_EQ(outs[0].responses[i].status, c.statuses[i]);
      EXPECT_EQ(outs[0].responses[i].body, c.bodies[i]);
      EXPECT_EQ(outs[0].responses[i].keep_alive, c.keep_alive[i]);
    }
  }
}

TEST(UpstreamResponseParser, HeadersLowerCasedAndTrimmed) {
  auto out = run({"HTTP/1.1 200 OK\r\nX-Custom-Thing:\t value \t\r\nContent-Length: 0\r\n\r\n"},
                 false);
  ASSERT_EQ(out.responses.size(), 1u);
  ASSERT_EQ(out.responses[0].headers.size(), 2u);
  EXPECT_EQ(out.responses[0].headers[0].name, "x-custom-thing");
  EXPECT_EQ(out.responses[0].headers[0].value, "value");
  EXPECT_EQ(out.responses[0].reason, "OK");
}

TEST(UpstreamResponseParser, HeadResponseHasNoBody) {
  auto outs = allSplits("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", false, {}, true);
  expectSame(outs);
  ASSERT_EQ(outs[0].responses.size(), 1u);
  EXPECT_EQ(outs[0].responses[0].body, "");
  EXPECT_TRUE(outs[0].responses[0].keep_alive);
}

TEST(UpstreamResponseParser, StopsAfterCompleteResponse) {
  HttpResponseParser parser;
  const std::string two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA";
  auto consumed = parser.feed(two);
  ASSERT_TRUE(consumed);
  EXPECT_EQ(*consumed, two.size() - 5);
  EXPECT_TRUE(parser.complete());
  auto again = parser.feed("EXTRA");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ(parser.take().body, "a");
  EXPECT_FALSE(parser.complete());
  EXPECT_EQ(parser.take().status, 0);  // nothing to take
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += s;
  }
  return out;
}

struct BadCase {
  const char* name;
  std::string input;
  bool eof;
  Errc code;
  std::string message_part;
};

TEST(UpstreamResponseParser, ErrorsAgreeAtEverySplit) {
  ResponseLimits small;
  small.max_header_bytes = 64;
  small.max_headers = 2;
  small.max_body = 8;
  const std::vector<BadCase> cases = {
      {"not http", "SSH-2.0-OpenSSH\r\n", false, Errc::kProtocolError, "bad status line"},
      {"http/2", "HTTP/2.0 200 OK\r\n", false, Errc::kProtocolError, "bad status line"},
      {"version 1.2", "HTTP/1.2 200 OK\r\n", false, Errc::kProtocolError, "unsupported"},
      {"bad code", "HTTP/1.1 2x0 OK\r\n", false, Errc::kProtocolError, "bad status code"},
      {"code 600", "HTTP/1.1 600 OK\r\n", false, Errc::kProtocolError, "out of range"},
      {"101", "HTTP/1.1 101 Switching\r\n\r\n", false, Errc::kProtocolError, "101"},
      {"obs-fold", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", false, Errc::kProtocolError,
       "folding"},
      {"space before colon", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", false, Errc::kProtocolError,
       "header name"},
      {"no colon", "HTTP/1.1 200 OK\r\nAb\r\n\r\n", false, Errc::kProtocolError, "header line"},
      {"bare CR", "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", false, Errc::kProtocolError, "bare CR"},
      {"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       false, Errc::kProtocolError, "Content-Length"},
      {"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false,
       Errc::kProtocolError, "Content-Length"},
      {"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
       Errc::kProtocolError, "chunk size"},
      {"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab", false,
       Errc::kProtocolError, "line ending"},
      {"huge chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
       false, Errc::kMessageTooBig, "chunk size"},
      {"te on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false,
       Errc::kProtocolError, "HTTP/1.0"},
      {"closed early", "", true, Errc::kProtocolError, "before the response"},
      {"truncated head", "HTTP/1.1 200 OK\r\nContent-", true, Errc::kProtocolError, "truncated"},
      {"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true,
       Errc::kProtocolError, "truncated"},
      {"too many interim", repeat("HTTP/1.1 100 Continue\r\n\r\n", 9),
       false, Errc::kProtocolError, "interim"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto outs = allSplits(c.input, c.eof);
    expectSame(outs);
    ASSERT_TRUE(outs[0].failed);
    EXPECT_EQ(outs[0].code, c.code);
    EXPECT_NE(outs[0].message.find(c.message_part), std::string::npos) << outs[0].message;
  }
  const std::vector<BadCase> limited = {
      {"head too big", "HTTP/1.1 200 OK\r\nX-Long: " + std::string(60, 'a') + "\r\n\r\n", false,
       Errc::kMessageTooBig, "header block"},
      {"too many headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false,
       Errc::kMessageTooBig, "header fields"},
      {"length over limit", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", false,
       Errc::kMessageTooBig, "exceeds"},
      {"chunks over limit",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n4\r\n", false,
       Errc::kMessageTooBig, "exceeds"},
      {"until close over limit", "HTTP/1.1 200 OK\r\n\r\n123456789", true, Errc::kMessageTooBig,
       "exceeds"},
  };
  for (const auto& c : limited) {
    SCOPED_TRACE(c.name);
    auto outs = allSplits(c.input, c.eof, small);
    expectSame(outs);
    ASSERT_TRUE(outs[0].failed);
    EXPECT_EQ(outs[0].code, c.code);
    EXPECT_NE(outs[0].message.find(c.message_part), std::string::npos) << outs[0].message;
  }
}

TEST(UpstreamResponseParser, ErrorIsSticky) {
  HttpResponseParser parser;
  ASSERT_FALSE(parser.feed("garbage\r\n"));
  auto again = parser.feed("HTTP/1.1 200 OK\r\n\r\n");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, "bad status line");
}

}  // namespace
}  // namespace imgate::core::upstream
