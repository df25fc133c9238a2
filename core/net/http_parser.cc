// SPDX-License-Identifier: Apache-2.0
#include "net/http_parser.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace imgate::core::net {

namespace {

// RFC 9110 §5.6.2 tchar.
constexpr std::array<bool, 256> makeTokenTable() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) {
    table[static_cast<size_t>(c)] = true;
  }
  for (int c = 'a'; c <= 'z'; ++c) {
    table[static_cast<size_t>(c)] = true;
    table[static_cast<size_t>(c - 'a' + 'A')] = true;
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    table[static_cast<unsigned char>(c)] = true;
  }
  return table;
}
constexpr std::array<bool, 256> kTokenChar = makeTokenTable();

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!kTokenChar[static_cast<unsigned char>(c)]) {
      return false;
    }
  }
  return true;
}

// Field values and chunk extensions: VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5).
bool isFieldText(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return false;
    }
  }
  return true;
}

std::string lowerCase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = http_detail::lower(c);
  }
  return out;
}

// Large enough to avoid regrowth for typical push bodies, small enough that a Content-Length
// announced but never sent does not pin memory.
constexpr size_t kBodyReserveCap = 64 * 1024;
// Room for the usual few header fields at once, instead of regrowing (and moving every field)
// at 1, 2 and 4.
constexpr size_t kHeadersReserve = 8;
// A keep-alive connection that once carried a huge partial line should not keep the buffer.
constexpr size_t kLineKeepCapacity = 4096;

}  // namespace

HttpRequestParser::HttpRequestParser(HttpLimits limits) : limits_(limits) {}

bool HttpRequestParser::headersComplete() const {
  return state_ == State::kBody || state_ == State::kChunkSize || state_ == State::kChunkData ||
         state_ == State::kChunkDataEnd || state_ == State::kTrailers || state_ == State::kComplete;
}

bool HttpRequestParser::expectsContinue() const {
  return expect_continue_ && headersComplete() && state_ != State::kComplete;
}

bool HttpRequestParser::complete() const { return state_ == State::kComplete; }

int HttpRequestParser::errorStatus() const { return error_status_; }

HttpRequest HttpRequestParser::take() {
  if (state_ != State::kComplete) {
    return {};
  }
  HttpRequest out = std::move(request_);
  reset();
  return out;
}

void HttpRequestParser::reset() {
  state_ = State::kRequestLine;
  request_ = HttpRequest{};
  if (line_.capacity() > kLineKeepCapacity) {
    std::string().swap(line_);
  } else {
    line_.clear();
  }
  head_bytes_ = 0;
  field_count_ = 0;
  host_count_ = 0;
  has_content_length_ = false;
  content_length_ = 0;
  has_transfer_encoding_ = false;
  transfer_encoding_.clear();
  chunked_ = false;
  chunk_cr_ = false;
  expect_continue_ = false;
  remaining_ = 0;
}

tl::unexpected<Error> HttpRequestParser::error(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_ = Error{status == 413 ? Errc::kMessageTooBig : Errc::kProtocolError, std::move(message)};
  return tl::unexpected<Error>(error_);
}

Result<size_t> HttpRequestParser::feed(std::string_view in) {
  if (state_ == State::kError) {
    return tl::unexpected<Error>(error_);
  }
  size_t pos = 0;
  while (pos < in.size() && state_ != State::kComplete) {
    switch (state_) {
      case State::kRequestLine:
      case State::kHeaders:
      case State::kChunkSize:
      case State::kTrailers: {
        std::string_view line;
        auto got = nextLine(in, pos, line);
        if (!got) {
          return tl::unexpected<Error>(std::move(got.error()));
        }
        if (!*got) {
          break;  // the rest is buffered as a partial line
        }
        auto st = onLine(line);
        line_.clear();  // `line` may point into it
        if (!st) {
          return tl::unexpected<Error>(std::move(st.error()));
        }
        break;
      }
      case State::kBody:
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(
            std::min<uint64_t>(remaining_, static_cast<uint64_t>(in.size() - pos)));
        request_.body.append(in.substr(pos, n));
        pos += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          if (state_ == State::kBody) {
            state_ = State::kComplete;
          } else {
            state_ = State::kChunkDataEnd;
            chunk_cr_ = false;
          }
        }
        break;
      }
      case State::kChunkDataEnd: {
        const char c = in[pos++];
        if (c == '\r' && !chunk_cr_) {
          chunk_cr_ = true;
        } else if (c == '\n') {
          state_ = State::kChunkSize;
        } else {
          return error(400, "missing line ending after chunk data");
        }
        break;
      }
      case State::kComplete:
      case State::kError:
        break;  // unreachable: the loop condition and the early return exclude them
    }
  }
  return pos;
}

Result<bool> HttpRequestParser::nextLine(std::string_view in, size_t& pos, std::string_view& line) {
  const bool chunk_line = state_ == State::kChunkSize;
  const size_t budget = chunk_line ? kMaxChunkLineBytes : limits_.max_header_bytes - head_bytes_;
  const std::string_view rest = in.substr(pos);
  const size_t lf = rest.find('\n');
  const size_t len = lf == std::string_view::npos ? rest.size() : lf + 1;
  if (line_.size() + len > budget) {
    // Error path only (the parser dies right after). The status is decided on the first
    // budget + 1 bytes, so it does not depend on how the input was split.
    line_.append(rest.substr(0, len));
    auto st = lineTooLong(std::string_view(line_).substr(0, budget + 1));
    return tl::unexpected<Error>(std::move(st.error()));
  }
  pos += len;
  if (lf == std::string_view::npos) {
    line_.append(rest);
    return false;
  }
  if (!chunk_line) {
    head_bytes_ += line_.size() + len;
  }
  if (line_.empty()) {
    line = rest.substr(0, lf);
  } else {
    line_.append(rest.substr(0, lf));
    line = line_;
  }
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  return true;
}

Status HttpRequestParser::lineTooLong(std::string_view line_so_far) {
  switch (state_) {
    case State::kRequestLine: {
      const size_t sp1 = line_so_far.find(' ');
      if (sp1 != std::string_view::npos) {
        const size_t sp2 = line_so_far.find(' ', sp1 + 1);
        const size_t end = sp2 == std::string_view::npos ? line_so_far.size() : sp2;
        if (end - sp1 - 1 > limits_.max_uri) {
          return error(414, "request target longer than max_uri");
        }
      }
      return error(431, "request line longer than max_header_bytes");
    }
    case State::kChunkSize:
      return error(400, "chunk size line too long");
    case State::kTrailers:
      return error(431, "trailer section larger than max_header_bytes");
    default:
      return error(431, "header section larger than max_header_bytes");
  }
}

Status HttpRequestParser::onLine(std::string_view line) {
  // RFC 9112 §2.2: a CR not followed by LF must not be taken as a line break.
  if (line.find('\r') != std::string_view::npos) {
    return error(400, "bare cr in line");
  }
  switch (state_) {
    case State::kRequestLine:
      if (line.empty()) {
        return {};  // RFC 9112 §2.2: skip empty lines before the request line
      }
      return onRequestLine(line);
    case State::kHeaders:
      if (line.empty()) {
        return onHeadersDone();
      }
      return onFieldLine(line, false);
    case State::kChunkSize:
      return onChunkSizeLine(line);
    case State::kTrailers:
      if (line.empty()) {
        state_ = State::kComplete;
        return {};
      }
      return onFieldLine(line, true);
    default:
      return error(400, "unexpected line");
  }
}

Status HttpRequestParser::onRequestLine(std::string_view line) {
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return error(400, "malformed request line");
  }
  const std::string_view method = line.substr(0, sp1);
  if (!isToken(method)) {
    return error(400, "invalid method");
  }
  const size_t sp2 = line.find(' ', sp1 + 1);
  const size_t target_end = sp2 == std::string_view::npos ? line.size() : sp2;
  const std::string_view target = line.substr(sp1 + 1, target_end - sp1 - 1);
  if (target.size() > limits_.max_uri) {
    return error(414, "request target longer than max_uri");
  }
  if (sp2 == std::string_view::npos) {
    return error(400, "missing http version (http/0.9 is not supported)");
  }
  const std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[5] < '0' ||
      version[5] > '9' || version[6] != '.' || version[7] < '0' || version[7] > '9') {
    return error(400, "malformed http version");
  }
  if (version[5] != '1') {
    return error(505, "http version not supported");
  }
  if (target.empty()) {
    return error(400, "empty request target");
  }
  for (char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return error(400, "invalid character in request target");
    }
  }

  std::string_view path_and_query;
  if (target.front() == '/') {
    path_and_query = target;
  } else if (target == "*") {
    path_and_query = target;
  } else {
    // absolute-form (RFC 9112 §3.2.2): scheme "://" authority [path-abempty] ["?" query]
    const size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0 ||
        !std::all_of(target.begin(), target.begin() + static_cast<ptrdiff_t>(scheme_end),
                     [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
                     })) {
      return error(400, "unsupported request target form");
    }
    const size_t path_start = target.find_first_of("/?", scheme_end + 3);
    path_and_query =
        path_start == std::string_view::npos ? std::string_view() : target.substr(path_start);
  }
  const size_t qmark = path_and_query.find('?');
  std::string_view path = path_and_query.substr(0, qmark);
  if (path.empty()) {
    path = "/";
  }

  request_.method.assign(method);
  request_.target.assign(target);
  request_.path.assign(path);
  if (qmark != std::string_view::npos) {
    request_.query.assign(path_and_query.substr(qmark + 1));
  }
  request_.version_minor = version[7] - '0';
  state_ = State::kHeaders;
  return {};
}

Status HttpRequestParser::onFieldLine(std::string_view line, bool trailer) {
  if (line.front() == ' ' || line.front() == '\t') {
    return error(400, "obsolete line folding");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return error(400, "header line without colon");
  }
  const std::string_view name = line.substr(0, colon);
  if (!isToken(name)) {
    // Also catches whitespace before the colon (RFC 9112 §5.1: must be rejected).
    return error(400, "invalid header name");
  }
  const std::string_view value = http_detail::trim(line.substr(colon + 1));
  if (!isFieldText(value)) {
    return error(400, "invalid character in header value");
  }
  if (++field_count_ > limits_.max_headers) {
    return error(431, trailer ? "more trailer fields than max_headers"
                              : "more header fields than max_headers");
  }
  if (trailer) {
    return {};  // validated and dropped: nothing downstream reads trailers
  }
  std::string lname = lowerCase(name);
  if (lname == "content-length") {
    auto st = onContentLength(value);
    if (!st) {
      return st;
    }
  } else if (lname == "transfer-encoding") {
    if (has_transfer_encoding_) {
      transfer_encoding_.push_back(',');
    }
    has_transfer_encoding_ = true;
    transfer_encoding_.append(value);
  } else if (lname == "host") {
    ++host_count_;
  }
  if (request_.headers.empty()) {
    request_.headers.reserve(kHeadersReserve);
  }
  request_.headers.push_back(HttpHeader{std::move(lname), std::string(value)});
  return {};
}

Status HttpRequestParser::onContentLength(std::string_view value) {
  // RFC 9110 §8.6: a list of identical values ("5, 5") may be taken as one value.
  constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();
  bool first = true;
  uint64_t parsed = 0;
  std::string_view rest = value;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = http_detail::trim(rest.substr(0, comma));
    if (item.empty()) {
      return error(400, "invalid content-length");
    }
    uint64_t v = 0;
    for (char c : item) {
      if (c < '0' || c > '9') {
        return error(400, "invalid content-length");
      }
      const auto digit = static_cast<uint64_t>(c - '0');
      v = v > (kSaturated - digit) / 10 ? kSaturated : v * 10 + digit;
    }
    if (!first && v != parsed) {
      return error(400, "conflicting content-length values");
    }
    parsed = v;
    first = false;
    if (comma == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(comma + 1);
  }
  if (has_content_length_ && parsed != content_length_) {
    return error(400, "conflicting content-length headers");
  }
  has_content_length_ = true;
  content_length_ = parsed;
  if (parsed > limits_.max_body) {
    return error(413, "content-length larger than max_body");
  }
  return {};
}

Status HttpRequestParser::onHeadersDone() {
  if (host_count_ > 1) {
    return error(400, "more than one host header");
  }
  if (limits_.require_host && request_.version_minor >= 1 && host_count_ == 0) {
    return error(400, "missing host header");
  }
  if (has_transfer_encoding_) {
    // Both framings at once is the classic request-smuggling vector (RFC 9112 §6.1).
    if (has_content_length_) {
      return error(400, "both content-length and transfer-encoding");
    }
    if (request_.version_minor == 0) {
      return error(400, "transfer-encoding in an http/1.0 request");
    }
    size_t chunked_count = 0;
    std::string_view rest = transfer_encoding_;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view coding = http_detail::trim(rest.substr(0, comma));
      if (coding.empty()) {
        return error(400, "invalid transfer-encoding");
      }
      if (!http_detail::iequals(coding, "chunked")) {
        return error(501, "unsupported transfer-encoding \"" + std::string(coding) + "\"");
      }
      ++chunked_count;
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
    if (chunked_count != 1) {
      return error(400, "chunked applied more than once");
    }
    chunked_ = true;
  }

  const bool close = request_.headerHasToken("connection", "close");
  const bool keep_alive = request_.headerHasToken("connection", "keep-alive");
  request_.keep_alive = !close && (request_.version_minor >= 1 || keep_alive);

  bool body_pending = false;
  if (chunked_) {
    state_ = State::kChunkSize;
    body_pending = true;
  } else if (content_length_ > 0) {
    state_ = State::kBody;
    remaining_ = content_length_;
    request_.body.reserve(
        static_cast<size_t>(std::min<uint64_t>(content_length_, kBodyReserveCap)));
    body_pending = true;
  } else {
    state_ = State::kComplete;
  }
  if (body_pending && request_.version_minor >= 1) {
    const auto expect = request_.header("expect");
    expect_continue_ = expect && http_detail::iequals(*expect, "100-continue");
  }
  return {};
}

Status HttpRequestParser::onChunkSizeLine(std::string_view line) {
  uint64_t size = 0;
  size_t i = 0;
  for (; i < line.size(); ++i) {
    const int h = http_detail::hexValue(line[i]);
    if (h < 0) {
      break;
    }
    if (size > (std::numeric_limits<uint64_t>::max() >> 4)) {
      return error(400, "chunk size overflow");
    }
    size = size * 16 + static_cast<uint64_t>(h);
  }
  if (i == 0) {
    return error(400, "invalid chunk size");
  }
  const std::string_view ext = http_detail::trim(line.substr(i));
  if (!ext.empty() && (ext.front() != ';' || !isFieldText(ext))) {
    return error(400, "invalid chunk extension");
  }
  if (size == 0) {
    state_ = State::kTrailers;
    head_bytes_ = 0;
    field_count_ = 0;
    return {};
  }
  if (size > limits_.max_body - request_.body.size()) {
    return error(413, "chunked body larger than max_body");
  }
  remaining_ = size;
  state_ = State::kChunkData;
  return {};
}

}  // namespace imgate::core::net
