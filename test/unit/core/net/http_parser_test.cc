// SPDX-License-Identifier: Apache-2.0
#include "net/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace imgate::core::net {
namespace {

using namespace std::string_literals;

// ---- Driver ---------------------------------------------------------------------------------

struct Outcome {
  std::vector<HttpRequest> requests;
  int error_status = 0;
  Errc error_code = Errc::kNone;
  std::string leftover;  // bytes never consumed
};

// Feeds `input` in the pieces given by the ascending offsets `cuts`, the way the core does:
// unconsumed bytes stay in its buffer and are presented again with the next piece appended.
Outcome run(std::string_view input, const std::vector<size_t>& cuts, HttpLimits limits = {}) {
  HttpRequestParser parser(limits);
  Outcome out;
  std::string buffer;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t end : ends) {
    buffer.append(input.substr(from, end - from));
    from = end;
    while (!buffer.empty()) {
      auto consumed = parser.feed(buffer);
      if (!consumed) {
        out.error_status = parser.errorStatus();
        out.error_code = consumed.error().code;
        EXPECT_FALSE(consumed.error().message.empty());
        return out;
      }
      EXPECT_LE(*consumed, buffer.size());
      buffer.erase(0, *consumed);
      if (!parser.complete()) {
        // The documented contract: everything is consumed until a request is complete.
        EXPECT_TRUE(buffer.empty());
        break;
      }
      out.requests.push_back(parser.take());
      EXPECT_FALSE(parser.complete());
    }
  }
  out.leftover = buffer;
  return out;
}

std::vector<size_t> everyByte(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < n; ++i) {
    cuts.push_back(i);
  }
  return cuts;
}

struct Want {
  std::string method;
  std::string target;
  std::string path;
  std::string query;
  int version_minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;
};

void expectRequest(const HttpRequest& got, const Want& want) {
  EXPECT_EQ(got.method, want.method);
  EXPECT_EQ(got.target, want.target);
  EXPECT_EQ(got.path, want.path);
  EXPECT_EQ(got.query, want.query);
  EXPECT_EQ(got.version_minor, want.version_minor);
  ASSERT_EQ(got.headers.size(), want.headers.size());
  for (size_t i = 0; i < want.headers.size(); ++i) {
    EXPECT_EQ(got.headers[i].name, want.headers[i].first) << "header " << i;
    EXPECT_EQ(got.headers[i].value, want.headers[i].second) << "header " << i;
  }
  EXPECT_EQ(got.body, want.body);
  EXPECT_EQ(got.keep_alive, want.keep_alive);
  EXPECT_TRUE(got.peer.empty());
}

// ---- Valid requests -------------------------------------------------------------------------

struct ValidCase {
  const char* name;
  std::string input;
  std::vector<Want> want;
};

// clang-format off
std::vector<ValidCase> validCases() {
  return {
      {"get_with_query",
       "GET /v1/ws?token=abc&x=1 HTTP/1.1\r\nHost: gw.example\r\nUser-Agent: t/1\r\n\r\n",
       {{"GET", "/v1/ws?token=abc&x=1", "/v1/ws", "token=abc&x=1", 1,
         {{"host", "gw.example"}, {"user-agent", "t/1"}}, "", true}}},
      {"post_content_length",
       "POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       "Content-Length: 13\r\n\r\n{\"a\":\"hello\"}",
       {{"POST", "/v1/push", "/v1/push", "", 1,
         {{"host", "x"}, {"content-type", "application/json"}, {"content-length", "13"}},
         "{\"a\":\"hello\"}", true}}},
      {"chunked_with_extension_and_trailer",
       "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n6;name=\"v\" ; x\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
       {{"POST", "/p", "/p", "", 1, {{"host", "x"}, {"transfer-encoding", "chunked"}},
         "hello world", true}}},
      {"chunked_upper_hex_leading_zeros_bare_lf",
       "PUT /q HTTP/1.1\nHost: x\nTransfer-Encoding: Chunked\n\n00A\n0123456789\n000\n\n",
       {{"PUT", "/q", "/q", "", 1, {{"host", "x"}, {"transfer-encoding", "Chunked"}},
         "0123456789", true}}},
      {"pipelined_two_gets",
       "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
       "GET /b?c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
       {{"GET", "/a", "/a", "", 1, {{"host", "x"}}, "", true},
        {"GET", "/b?c", "/b", "c", 1, {{"host", "x"}, {"connection", "close"}}, "", false}}},
      {"pipelined_post_then_get",
       "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
       "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
       {{"POST", "/a", "/a", "", 1, {{"host", "x"}, {"content-length", "3"}}, "abc", true},
        {"GET", "/b", "/b", "", 1, {{"host", "x"}}, "", true}}},
      {"http10_keep_alive",
       "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
       {{"GET", "/", "/", "", 0, {{"connection", "Keep-Alive"}}, "", true}}},
      {"http10_default_close",
       "GET /x HTTP/1.0\r\n\r\n",
       {{"GET", "/x", "/x", "", 0, {}, "", false}}},
      {"http11_connection_close_among_tokens",
       "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, Close\r\n\r\n",
       {{"GET", "/", "/", "", 1, {{"host", "x"}, {"connection", "upgrade, Close"}}, "", false}}},
      {"ows_trimmed_and_empty_value_and_obs_text",
       "GET / HTTP/1.1\r\nHost:   x \t\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\nX-In: a  b\r\n\r\n",
       {{"GET", "/", "/", "", 1,
         {{"host", "x"}, {"x-empty", ""}, {"x-utf8", "caf\xc3\xa9"}, {"x-in", "a  b"}}, "",
         true}}},
      {"leading_empty_lines_skipped",
       "\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
       {{"GET", "/", "/", "", 1, {{"host", "x"}}, "", true}}},
      {"absolute_form_target",
       "GET http://gw.example:8080/a/b?c=d HTTP/1.1\r\nHost: gw.example:8080\r\n\r\n",
       {{"GET", "http://gw.example:8080/a/b?c=d", "/a/b", "c=d", 1,
         {{"host", "gw.example:8080"}}, "", true}}},
      {"absolute_form_without_path",
       "GET https://gw.example?q HTTP/1.1\r\nHost: gw.example\r\n\r\n",
       {{"GET", "https://gw.example?q", "/", "q", 1, {{"host", "gw.example"}}, "", true}}},
      {"options_asterisk",
       "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
       {{"OPTIONS", "*", "*", "", 1, {{"host", "x"}}, "", true}}},
      {"content_length_list_and_duplicates_agree",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\ncontent-length: 3\r\n\r\nxyz",
       {{"POST", "/", "/", "", 1,
         {{"host", "x"}, {"content-length", "3, 3"}, {"content-length", "3"}}, "xyz", true}}},
      {"content_length_zero",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
       {{"POST", "/", "/", "", 1, {{"host", "x"}, {"content-length", "0"}}, "", true}}},
      {"http12_is_treated_as_1x",
       "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
       {{"GET", "/", "/", "", 2, {{"host", "x"}}, "", true}}},
  };
}
// clang-format on

class HttpRequestParserValid : public testing::TestWithParam<ValidCase> {};

void checkValid(const ValidCase& c, const Outcome& out, const std::string& mode) {
  SCOPED_TRACE(std::string(c.name) + " fed " + mode);
  EXPECT_EQ(out.error_status, 0);
  EXPECT_TRUE(out.leftover.empty());
  ASSERT_EQ(out.requests.size(), c.want.size());
  for (size_t i = 0; i < c.want.size(); ++i) {
    expectRequest(out.requests[i], c.want[i]);
  }
}

TEST_P(HttpRequestParserValid, Whole) {
  const ValidCase& c = GetParam();
  checkValid(c, run(c.input, {}), "whole");
}

TEST_P(HttpRequestParserValid, ByteByByte) {
  const ValidCase& c = GetParam();
  checkValid(c, run(c.input, everyByte(c.input.size())), "byte by byte");
}

TEST_P(HttpRequestParserValid, SplitAtEveryOffset) {
  const ValidCase& c = GetParam();
  for (size_t cut = 1; cut < c.input.size(); ++cut) {
    checkValid(c, run(c.input, {cut}), "split at " + std::to_string(cut));
  }
}

TEST_P(HttpRequestParserValid, SplitInThree) {
  const ValidCase& c = GetParam();
  for (size_t a = 1; a < c.input.size(); a += 3) {
    for (size_t b = a + 1; b < c.input.size(); b += 5) {
      checkValid(c, run(c.input, {a, b}),
                 "split at " + std::to_string(a) + "," + std::to_string(b));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, HttpRequestParserValid, testing::ValuesIn(validCases()),
                         [](const testing::TestParamInfo<ValidCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- Errors ---------------------------------------------------------------------------------

HttpLimits smallLimits() {
  HttpLimits l;
  l.max_header_bytes = 128;
  l.max_headers = 4;
  l.max_body = 16;
  l.max_uri = 32;
  return l;
}

struct ErrorCase {
  const char* name;
  std::string input;
  int status;
  HttpLimits limits = {};
};

std::vector<ErrorCase> errorCases() {
  const HttpLimits small = smallLimits();
  const std::string long_uri = "/" + std::string(40, 'a');
  return {
      // Request line.
      {"bad_method_char", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"leading_space", " GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"double_space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"trailing_space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},
      {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"http09", "GET /\r\n\r\n", 400},
      {"no_spaces", "GARBAGE\r\n\r\n", 400},
      {"lower_case_version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
      {"version_two_digit_minor", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400},
      {"version_without_minor", "GET / HTTP/1\r\nHost: x\r\n\r\n", 400},
      {"http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
      {"http20_request", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
      {"http09_version", "GET / HTTP/0.9\r\n\r\n", 505},
      {"control_char_in_target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"del_in_target", "GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"non_ascii_in_target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"space_in_target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"authority_form", "CONNECT gw.example:443 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"bare_cr_in_request_line", "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"uri_too_long", "GET " + long_uri + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, small},
      {"uri_too_long_past_header_budget",
       "GET /" + std::string(300, 'u') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, small},
      {"method_past_header_budget", std::string(300, 'M') + " / HTTP/1.1\r\n\r\n", 431, small},
      // Header fields.
      {"obs_fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n", 400},
      {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tfolded\r\n\r\n", 400},
      {"space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
      {"no_colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400},
      {"empty_name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400},
      {"bad_name_char", "GET / HTTP/1.1\r\nHost: x\r\nX(A): v\r\n\r\n", 400},
      {"bare_cr_in_value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400},
      {"nul_in_value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"s, 400},
      {"missing_host", "GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400},
      {"two_hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"too_many_headers", "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431,
       small},
      {"header_section_too_large",
       "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200, 'v') + "\r\n\r\n", 431, small},
      {"header_section_too_large_many_lines",
       "GET / HTTP/1.1\r\nHost: x\r\nA: " + std::string(50, 'v') +
           "\r\nB: " + std::string(50, 'v') + "\r\n\r\n",
       431, small},
      // Content-Length.
      {"cl_not_digits", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1a\r\n\r\n", 400},
      {"cl_negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
      {"cl_plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400},
      {"cl_empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
      {"cl_hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"cl_list_disagrees", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabc", 400},
      {"cl_list_empty_item", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3,\r\n\r\nabc", 400},
      {"cl_duplicates_disagree",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      {"cl_too_large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n", 413, small},
      {"cl_overflows_u64",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
      // Transfer-Encoding.
      {"cl_and_te",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"te_and_cl",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Content-Length: 5\r\n\r\n0\r\n\r\n",
       400},
      {"te_gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
      {"te_gzip_chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       501},
      {"te_chunked_gzip_two_headers",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: gzip\r\n\r\n",
       501},
      {"te_chunked_twice",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"te_trailing_comma", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r\n",
       400},
      {"te_empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400},
      {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      // Chunked bodies.
      {"chunk_size_not_hex",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"chunk_size_empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
       400},
      {"chunk_size_negative",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 400},
      {"chunk_size_overflow",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n",
       400},
      {"chunk_size_too_large",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n", 413, small},
      {"chunks_sum_too_large",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "8\r\n01234567\r\n9\r\n012345678\r\n0\r\n\r\n",
       413, small},
      {"chunk_bad_extension",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n", 400},
      {"chunk_data_without_crlf",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n", 400},
      {"chunk_data_double_cr",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\r\n", 400},
      {"chunk_line_too_long",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;" +
           std::string(kMaxChunkLineBytes, 'e') + "\r\nhello\r\n0\r\n\r\n",
       400},
      {"trailer_obs_fold",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n b\r\n\r\n",
       400},
      {"too_many_trailers",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
       "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
       431, small},
      {"trailers_too_large",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: " +
           std::string(200, 't') + "\r\n\r\n",
       431, small},
  };
}

class HttpRequestParserError : public testing::TestWithParam<ErrorCase> {};

void checkError(const ErrorCase& c, const Outcome& out, const std::string& mode) {
  SCOPED_TRACE(std::string(c.name) + " fed " + mode);
  EXPECT_TRUE(out.requests.empty());
  EXPECT_EQ(out.error_status, c.status);
  EXPECT_EQ(out.error_code, c.status == 413 ? Errc::kMessageTooBig : Errc::kProtocolError);
}

TEST_P(HttpRequestParserError, Whole) {
  const ErrorCase& c = GetParam();
  checkError(c, run(c.input, {}, c.limits), "whole");
}

TEST_P(HttpRequestParserError, ByteByByte) {
  const ErrorCase& c = GetParam();
  checkError(c, run(c.input, everyByte(c.input.size()), c.limits), "byte by byte");
}

TEST_P(HttpRequestParserError, SplitAtEveryOffset) {
  const ErrorCase& c = GetParam();
  for (size_t cut = 1; cut < c.input.size(); ++cut) {
    checkError(c, run(c.input, {cut}, c.limits), "split at " + std::to_string(cut));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, HttpRequestParserError, testing::ValuesIn(errorCases()),
                         [](const testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

// ---- Behaviour ------------------------------------------------------------------------------

TEST(HttpRequestParser, StopsAfterCompleteRequest) {
  HttpRequestParser parser({});
  const std::string first = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
  const std::string input = first + "\x81\x85rest";
  auto consumed = parser.feed(input);
  ASSERT_TRUE(consumed);
  EXPECT_EQ(*consumed, first.size());
  EXPECT_TRUE(parser.complete());
  // Nothing more is consumed until the request is taken.
  auto again = parser.feed(input.substr(first.size()));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u);
  EXPECT_EQ(parser.take().path, "/ws");
  EXPECT_FALSE(parser.complete());
}

TEST(HttpRequestParser, HeadersCompleteBeforeBodyAndExpectContinue) {
  HttpRequestParser parser({});
  const std::string head =
      "POST /v1/push HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
  auto consumed = parser.feed(head);
  ASSERT_TRUE(consumed);
  EXPECT_EQ(*consumed, head.size());
  EXPECT_TRUE(parser.headersComplete());
  EXPECT_TRUE(parser.expectsContinue());
  EXPECT_FALSE(parser.complete());
  ASSERT_TRUE(parser.feed("ab"));
  EXPECT_TRUE(parser.expectsContinue());
  ASSERT_TRUE(parser.feed("cd"));
  EXPECT_TRUE(parser.complete());
  EXPECT_FALSE(parser.expectsContinue());
  EXPECT_EQ(parser.take().body, "abcd");
  EXPECT_FALSE(parser.headersComplete());
  EXPECT_FALSE(parser.expectsContinue());
}

TEST(HttpRequestParser, ExpectContinueOnlyWithPendingBodyOnHttp11) {
  struct Case {
    std::string input;
    bool expects;
  };
  const std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
       true},
      {"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false},
      {"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n", false},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", false},
  };
  for (const Case& c : cases) {
    HttpRequestParser parser({});
    ASSERT_TRUE(parser.feed(c.input)) << c.input;
    EXPECT_TRUE(parser.headersComplete()) << c.input;
    EXPECT_EQ(parser.expectsContinue(), c.expects) << c.input;
  }
}

TEST(HttpRequestParser, ContentLengthTooLargeFailsBeforeHeaderBlockEnds) {
  HttpLimits limits;
  limits.max_body = 100;
  HttpRequestParser parser(limits);
  auto r = parser.feed("POST / HTTP/1.1\r\nContent-Length: 101\r\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(parser.errorStatus(), 413);
  EXPECT_EQ(r.error().code, Errc::kMessageTooBig);
}

TEST(HttpRequestParser, ErrorIsSticky) {
  HttpRequestParser parser({});
  EXPECT_EQ(parser.errorStatus(), 0);
  auto r = parser.feed("GET / HTTP/3.0\r\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(parser.errorStatus(), 505);
  auto again = parser.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, r.error().message);
  EXPECT_EQ(parser.errorStatus(), 505);
  EXPECT_FALSE(parser.complete());
}

TEST(HttpRequestParser, TakeBeforeCompleteChangesNothing) {
  HttpRequestParser parser({});
  ASSERT_TRUE(parser.feed("GET /a HTTP/1.1\r\nHo"));
  HttpRequest early = parser.take();
  EXPECT_TRUE(early.method.empty());
  ASSERT_TRUE(parser.feed("st: x\r\n\r\n"));
  ASSERT_TRUE(parser.complete());
  HttpRequest req = parser.take();
  EXPECT_EQ(req.path, "/a");
  ASSERT_EQ(req.headers.size(), 1u);
  EXPECT_EQ(req.headers[0].name, "host");
}

TEST(HttpRequestParser, ManyRequestsOnOneConnection) {
  HttpRequestParser parser({});
  for (int i = 0; i < 1000; ++i) {
    const std::string body = std::to_string(i);
    const std::string req = "POST /n?i=" + body + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body;
    auto consumed = parser.feed(req);
    ASSERT_TRUE(consumed);
    ASSERT_EQ(*consumed, req.size());
    ASSERT_TRUE(parser.complete());
    HttpRequest got = parser.take();
    ASSERT_EQ(got.body, body);
    ASSERT_EQ(got.query, "i=" + body);
    ASSERT_EQ(got.headers.size(), 2u);
  }
}

TEST(HttpRequestParser, UnterminatedHeaderIsBounded) {
  HttpLimits limits;
  limits.max_header_bytes = 1024;
  HttpRequestParser parser(limits);
  ASSERT_TRUE(parser.feed("GET / HTTP/1.1\r\nX-Long: "));
  const std::string chunk(100, 'a');
  int status = 0;
  size_t fed = 0;
  for (int i = 0; i < 1000 && status == 0; ++i) {
    auto r = parser.feed(chunk);
    if (!r) {
      status = parser.errorStatus();
    } else {
      fed += *r;
    }
  }
  EXPECT_EQ(status, 431);
  EXPECT_LE(fed, 1024u);
}

// Exactly at each limit is accepted; one byte or field more is not.
TEST(HttpRequestParser, LimitsAreInclusive) {
  const std::string request_line = "GET / HTTP/1.1\r\n";
  const std::string host = "Host: x\r\n";
  {
    // Header bytes: request line + header lines + the empty line.
    const std::string prefix = request_line + host + "X: ";
    HttpLimits limits;
    limits.max_header_bytes = 100;
    const std::string fill(100 - prefix.size() - 4, 'v');
    const std::string exact = prefix + fill + "\r\n\r\n";
    ASSERT_EQ(exact.size(), 100u);
    EXPECT_EQ(run(exact, {}, limits).requests.size(), 1u);
    EXPECT_EQ(run(prefix + fill + "v\r\n\r\n", {}, limits).error_status, 431);
  }
  {
    HttpLimits limits;
    limits.max_headers = 3;
    EXPECT_EQ(run(request_line + host + "A: 1\r\nB: 2\r\n\r\n", {}, limits).requests.size(), 1u);
    EXPECT_EQ(run(request_line + host + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", {}, limits).error_status,
              431);
  }
  {
    HttpLimits limits;
    limits.max_uri = 10;
    EXPECT_EQ(run("GET /123456789 HTTP/1.1\r\n" + host + "\r\n", {}, limits).requests.size(), 1u);
    EXPECT_EQ(run("GET /1234567890 HTTP/1.1\r\n" + host + "\r\n", {}, limits).error_status, 414);
  }
  {
    HttpLimits limits;
    limits.max_body = 5;
    const std::string cl = request_line + host + "Content-Length: ";
    EXPECT_EQ(run(cl + "5\r\n\r\nabcde", {}, limits).requests.size(), 1u);
    EXPECT_EQ(run(cl + "6\r\n\r\nabcdef", {}, limits).error_status, 413);
    const std::string te = request_line + host + "Transfer-Encoding: chunked\r\n\r\n";
    EXPECT_EQ(run(te + "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n", {}, limits).requests.size(), 1u);
    EXPECT_EQ(run(te + "2\r\nab\r\n4\r\ncdef\r\n0\r\n\r\n", {}, limits).error_status, 413);
  }
}

TEST(HttpRequestParser, RequireHostCanBeTurnedOff) {
  HttpLimits limits;
  limits.require_host = false;
  Outcome out = run("GET / HTTP/1.1\r\n\r\n", {}, limits);
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_EQ(out.requests[0].path, "/");
  // Two Host headers stay an error: they make the authority ambiguous.
  EXPECT_EQ(run("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {}, limits).error_status, 400);
}

TEST(HttpRequestParser, ChunkSizeWithManyLeadingZerosIsNotOverflow) {
  const std::string input = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                            std::string(40, '0') + "3\r\nabc\r\n0\r\n\r\n";
  Outcome out = run(input, {});
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_EQ(out.requests[0].body, "abc");
}

TEST(HttpRequestParser, HelpersWorkOnParsedRequest) {
  Outcome out =
      run("GET /ws?token=a%2Eb&device=d+1 HTTP/1.1\r\nHost: x\r\n"
          "Sec-WebSocket-Protocol: chat, bearer.xyz\r\n\r\n",
          {});
  ASSERT_EQ(out.requests.size(), 1u);
  const HttpRequest& req = out.requests[0];
  EXPECT_EQ(req.queryParam("token"), "a.b");
  EXPECT_EQ(req.queryParam("device"), "d 1");
  EXPECT_EQ(req.header("SEC-WEBSOCKET-PROTOCOL"), "chat, bearer.xyz");
  EXPECT_TRUE(req.headerHasToken("sec-websocket-protocol", "bearer.xyz"));
}

}  // namespace
}  // namespace imgate::core::net
