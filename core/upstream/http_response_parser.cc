// SPDX-License-Identifier: Apache-2.0
#include "upstream/http_response_parser.h"

#include <algorithm>
#include <utility>

namespace imgate::core::upstream {

namespace {

// Longest chunk-size line (size, extensions, line ending) accepted in a chunked body.
constexpr size_t kMaxChunkLine = 4096;
// 15 hex digits keep a chunk size below 2^60, so adding it to the body size cannot overflow.
constexpr size_t kMaxChunkDigits = 15;
// 18 decimal digits keep a Content-Length below 10^18, far beyond any max_body.
constexpr size_t kMaxLengthDigits = 18;

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Calls fn(token) for each trimmed element of a comma-separated list (empty ones skipped).
template <class Fn>
void forEachToken(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = http_detail::trim(list.substr(0, comma));
    if (!item.empty()) {
      fn(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

HttpResponseParser::HttpResponseParser(ResponseLimits limits) : limits_(limits) {}

bool HttpResponseParser::headersComplete() const {
  return state_ != State::kStatusLine && state_ != State::kHeaders && state_ != State::kError;
}

tl::unexpected<Error> HttpResponseParser::error(Errc code, std::string message) {
  state_ = State::kError;
  error_ = Error{code, std::move(message)};
  return tl::unexpected<Error>(error_);
}

void HttpResponseParser::resetMessage() {
  response_ = ParsedResponse{};
  line_.clear();
  head_bytes_ = 0;
  field_count_ = 0;
  has_content_length_ = false;
  content_length_ = 0;
  has_transfer_encoding_ = false;
  transfer_encoding_.clear();
  connection_close_ = false;
  connection_keep_alive_ = false;
  chunk_cr_ = false;
  remaining_ = 0;
  state_ = State::kStatusLine;
}

ParsedResponse HttpResponseParser::take() {
  if (state_ != State::kComplete) {
    return {};
  }
  ParsedResponse out = std::move(response_);
  resetMessage();
  interim_count_ = 0;
  started_ = false;
  no_body_ = false;
  return out;
}

Result<bool> HttpResponseParser::nextLine(std::string_view in, size_t& pos,
                                          std::string_view& line) {
  const bool chunk_line = state_ == State::kChunkSize;
  const size_t limit = chunk_line ? kMaxChunkLine : limits_.max_header_bytes;
  const size_t used = chunk_line ? 0 : head_bytes_;
  const size_t nl = in.find('\n', pos);
  const size_t piece_len = (nl == std::string_view::npos ? in.size() : nl + 1) - pos;
  if (used + line_.size() + piece_len > limit) {
    if (chunk_line) {
      return error(Errc::kProtocolError, "chunk size line too long");
    }
    return error(Errc::kMessageTooBig, "response header block larger than " +
                                           std::to_string(limits_.max_header_bytes) + " bytes");
  }
  if (nl == std::string_view::npos) {
    line_.append(in.substr(pos));
    pos = in.size();
    if (state_ == State::kStatusLine && !line_.empty() && line_ != "\r") {
      started_ = true;
    }
    return false;
  }
  std::string_view piece = in.substr(pos, nl - pos);
  pos = nl + 1;
  if (!chunk_line) {
    head_bytes_ += line_.size() + piece.size() + 1;
  }
  if (line_.empty()) {
    line = piece;
  } else {
    line_.append(piece);
    line = line_;
  }
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.find('\r') != std::string_view::npos) {
    return error(Errc::kProtocolError, "bare CR in response head");
  }
  return true;
}

Result<size_t> HttpResponseParser::feed(std::string_view in) {
  if (state_ == State::kError) {
    return tl::unexpected<Error>(error_);
  }
  size_t pos = 0;
  while (pos < in.size() && state_ != State::kComplete) {
    switch (state_) {
      case State::kBody:
      case State::kChunkData: {
        const size_t n = static_cast<size_t>(
            std::min<uint64_t>(remaining_, static_cast<uint64_t>(in.size() - pos)));
        response_.body.append(in.substr(pos, n));
        pos += n;
        remaining_ -= n;
        if (remaining_ == 0) {
          state_ = state_ == State::kBody ? State::kComplete : State::kChunkDataEnd;
        }
        break;
      }
      case State::kUntilClose: {
        auto st = appendBody(in.substr(pos));
        if (!st) {
          return tl::unexpected<Error>(st.error());
        }
        pos = in.size();
        break;
      }
      case State::kChunkDataEnd: {
        const char c = in[pos];
        if (c == '\r' && !chunk_cr_) {
          chunk_cr_ = true;
          ++pos;
        } else if (c == '\n') {
          chunk_cr_ = false;
          ++pos;
          state_ = State::kChunkSize;
        } else {
          return error(Errc::kProtocolError, "chunk data not followed by a line ending");
        }
        break;
      }
      default: {
        std::string_view line;
        auto got = nextLine(in, pos, line);
        if (!got) {
          return tl::unexpected<Error>(got.error());
        }
        if (!*got) {
          break;
        }
        auto st = onLine(line);
        line_.clear();
        if (!st) {
          return tl::unexpected<Error>(st.error());
        }
        break;
      }
    }
  }
  return pos;
}

Status HttpResponseParser::onLine(std::string_view line) {
  switch (state_) {
    case State::kStatusLine:
      if (line.empty()) {
        return {};  // RFC 9112 §2.2: tolerate empty lines before the start line
      }
      return onStatusLine(line);
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
      return error(Errc::kInternal, "response parser in a bad state");
  }
}

Status HttpResponseParser::onStatusLine(std::string_view line) {
  started_ = true;
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ') {
    return error(Errc::kProtocolError, "bad status line");
  }
  if (line[7] != '0' && line[7] != '1') {
    return error(Errc::kProtocolError, "unsupported HTTP version in status line");
  }
  if (!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
      (line.size() > 12 && line[12] != ' ')) {
    return error(Errc::kProtocolError, "bad status code");
  }
  const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (status < 100 || status > 599) {
    return error(Errc::kProtocolError, "status code out of range");
  }
  response_.version_minor = line[7] - '0';
  response_.status = status;
  response_.reason = line.size() > 13 ? std::string(line.substr(13)) : std::string();
  state_ = State::kHeaders;
  return {};
}

Status HttpResponseParser::onFieldLine(std::string_view line, bool trailer) {
  if (line.front() == ' ' || line.front() == '\t') {
    return error(Errc::kProtocolError, "obsolete line folding in response header");
  }
  if (++field_count_ > limits_.max_headers) {
    return error(Errc::kMessageTooBig,
                 "more than " + std::to_string(limits_.max_headers) + " response header fields");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return error(Errc::kProtocolError, "bad response header line");
  }
  const std::string_view raw_name = line.substr(0, colon);
  if (!std::all_of(raw_name.begin(), raw_name.end(), isTokenChar)) {
    return error(Errc::kProtocolError, "bad response header name");
  }
  const std::string_view value = http_detail::trim(line.substr(colon + 1));
  if (value.find('\0') != std::string_view::npos) {
    return error(Errc::kProtocolError, "NUL in response header value");
  }
  if (trailer) {
    return {};  // trailers are checked and dropped: nobody downstream reads them
  }
  std::string name(raw_name);
  std::transform(name.begin(), name.end(), name.begin(), http_detail::lower);
  if (name == "content-length") {
    bool bad = false;
    forEachToken(value, [&](std::string_view item) {
      if (item.size() > kMaxLengthDigits || !std::all_of(item.begin(), item.end(), isDigit)) {
        bad = true;
        return;
      }
      uint64_t n = 0;
      for (char c : item) {
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (has_content_length_ && n != content_length_) {
        bad = true;
        return;
      }
      has_content_length_ = true;
      content_length_ = n;
    });
    if (bad || value.empty()) {
      return error(Errc::kProtocolError, "bad or conflicting Content-Length");
    }
  } else if (name == "transfer-encoding") {
    has_transfer_encoding_ = true;
    if (!transfer_encoding_.empty()) {
      transfer_encoding_ += ',';
    }
    transfer_encoding_.append(value);
  } else if (name == "connection") {
    forEachToken(value, [&](std::string_view item) {
      if (http_detail::iequals(item, "close")) {
        connection_close_ = true;
      } else if (http_detail::iequals(item, "keep-alive")) {
        connection_keep_alive_ = true;
      }
    });
  }
  response_.headers.push_back(HttpHeader{std::move(name), std::string(value)});
  return {};
}

Status HttpResponseParser::onHeadersDone() {
  const int status = response_.status;
  if (status >= 100 && status < 200) {
    if (status == 101) {
      return error(Errc::kProtocolError, "unexpected 101 Switching Protocols");
    }
    if (++interim_count_ > limits_.max_interim) {
      return error(Errc::kProtocolError, "too many interim (1xx) responses");
    }
    resetMessage();
    return {};
  }
  response_.keep_alive = response_.version_minor >= 1
                             ? !connection_close_
                             : (connection_keep_alive_ && !connection_close_);
  if (no_body_ || status == 204 || status == 304) {
    state_ = State::kComplete;
    return {};
  }
  if (has_transfer_encoding_) {
    if (response_.version_minor == 0) {
      return error(Errc::kProtocolError, "Transfer-Encoding in an HTTP/1.0 response");
    }
    std::string_view last;
    forEachToken(transfer_encoding_, [&](std::string_view item) { last = item; });
    if (has_content_length_) {
      // RFC 9112 §6.3: Transfer-Encoding wins, but the message smells of smuggling: do not
      // reuse the connection.
      response_.keep_alive = false;
    }
    if (http_detail::iequals(last, "chunked")) {
      field_count_ = 0;
      state_ = State::kChunkSize;
    } else {
      response_.keep_alive = false;
      state_ = State::kUntilClose;
    }
    return {};
  }
  if (has_content_length_) {
    if (content_length_ > limits_.max_body) {
      return error(Errc::kMessageTooBig, "response body of " + std::to_string(content_length_) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(limits_.max_body));
    }
    remaining_ = content_length_;
    state_ = remaining_ == 0 ? State::kComplete : State::kBody;
    return {};
  }
  response_.keep_alive = false;
  state_ = State::kUntilClose;
  return {};
}

Status HttpResponseParser::onChunkSizeLine(std::string_view line) {
  size_t i = 0;
  uint64_t size = 0;
  while (i < line.size() && http_detail::hexValue(line[i]) >= 0) {
    if (i >= kMaxChunkDigits) {
      return error(Errc::kMessageTooBig, "chunk size too large");
    }
    size = size * 16 + static_cast<uint64_t>(http_detail::hexValue(line[i]));
    ++i;
  }
  if (i == 0) {
    return error(Errc::kProtocolError, "bad chunk size");
  }
  const std::string_view rest = http_detail::trim(line.substr(i));
  if (!rest.empty() && rest.front() != ';') {
    return error(Errc::kProtocolError, "bad chunk size");
  }
  if (size == 0) {
    head_bytes_ = 0;
    field_count_ = 0;
    state_ = State::kTrailers;
    return {};
  }
  if (size > limits_.max_body - std::min<size_t>(response_.body.size(), limits_.max_body)) {
    return error(Errc::kMessageTooBig, "response body exceeds the limit of " +
                                           std::to_string(limits_.max_body) + " bytes");
  }
  remaining_ = size;
  state_ = State::kChunkData;
  return {};
}

Status HttpResponseParser::appendBody(std::string_view data) {
  if (data.size() > limits_.max_body - response_.body.size()) {
    return error(Errc::kMessageTooBig, "response body exceeds the limit of " +
                                           std::to_string(limits_.max_body) + " bytes");
  }
  response_.body.append(data);
  return {};
}

Status HttpResponseParser::finish() {
  switch (state_) {
    case State::kComplete:
      return {};
    case State::kUntilClose:
      state_ = State::kComplete;
      return {};
    case State::kError:
      return tl::unexpected<Error>(error_);
    case State::kStatusLine:
      if (!started_) {
        return error(Errc::kProtocolError, "connection closed before the response");
      }
      [[fallthrough]];
    default:
      return error(Errc::kProtocolError, "truncated response (connection closed)");
  }
}

}  // namespace imgate::core::upstream
