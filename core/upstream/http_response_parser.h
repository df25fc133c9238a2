// SPDX-License-Identifier: Apache-2.0
// Sans-I/O, incremental HTTP/1.1 response parser (RFC 9112) for the upstream client and the
// health checker. It never touches a socket or a clock: bytes in, one response out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/http.h"
#include "imgate/sdk/status.h"

namespace imgate::core::upstream {

// Limits applied to one response. Every one is enforced before the bytes are buffered, so a
// parser holds at most max_header_bytes of head + max_body + one chunk line.
struct ResponseLimits {
  // Status line + header lines + the empty line ending them (and, separately, the trailer
  // section of a chunked body), line endings included. 16 KiB matches the request side.
  size_t max_header_bytes = 16 * 1024;
  // Header fields per response (and, separately, trailer fields).
  size_t max_headers = 100;
  // Decoded body size (the group's max_response, default 1 MiB).
  size_t max_body = 1024 * 1024;
  // Interim (1xx) responses skipped before the final one; more is an error, so a backend
  // cannot keep a connection busy with an endless stream of 100 Continue.
  size_t max_interim = 8;
};

struct ParsedResponse {
  int status = 0;
  int version_minor = 1;  // HTTP/1.<minor>
  std::string reason;
  std::vector<HttpHeader> headers;  // names lower-cased, values trimmed; trailers dropped
  std::string body;
  // The connection may carry another request: HTTP/1.1 without "Connection: close", or
  // HTTP/1.0 with "Connection: keep-alive", and a body whose end was framed (not read until
  // close).
  bool keep_alive = true;
};

// One per upstream connection, reused for every response on it (reset by take()). Not
// thread-safe.
//
// Input contract (as net::HttpRequestParser): feed() consumes every byte it is given until a
// response is complete, keeping partial lines internally, so the caller never re-presents bytes.
// Once a response is complete, feed() consumes nothing more until take() is called; bytes
// left over are not part of this response (on an upstream connection they are a protocol
// violation: the caller should not reuse the connection).
//
// Accepted syntax: "HTTP/1.x SP 3DIGIT [SP reason]" status line; CRLF or bare LF line endings
// (a CR anywhere else is an error); empty lines before the status line are skipped. Bodies
// framed by Transfer-Encoding (last coding "chunked"; any other coding means read until close),
// Content-Length (equal repeated values allowed), or, with neither, read until the connection
// closes (finish()). 1xx responses are skipped (101 is an error: we never ask to upgrade);
// 204, 304 and responses to HEAD (expectNoBody) have no body whatever their headers say.
class HttpResponseParser {
 public:
  explicit HttpResponseParser(ResponseLimits limits = {});

  // The next response answers a HEAD request: no body whatever the headers say. Set before
  // feeding that response; take() clears it.
  void expectNoBody(bool no_body) { no_body_ = no_body; }

  // Consumes a prefix of `in` (see above) and returns its length. On error the parser is dead:
  // this and every later call return the same Error: kMessageTooBig when a limit is exceeded
  // (header block, header count, body), kProtocolError for anything malformed.
  [[nodiscard]] Result<size_t> feed(std::string_view in);

  // The peer closed the connection (EOF). Completes a body read until close; otherwise returns
  // kProtocolError ("connection closed before the response" when no byte of a response was
  // seen, "truncated response" in the middle of one). Returns ok when already complete.
  [[nodiscard]] Status finish();

  bool complete() const { return state_ == State::kComplete; }
  bool headersComplete() const;
  // True once any byte of the current response (after skipped empty lines) was consumed.
  bool started() const { return started_; }
  // Moves the complete response out and resets for the next one. Returns an empty response
  // and changes nothing when not complete.
  ParsedResponse take();

 private:
  enum class State : uint8_t {
    kStatusLine,
    kHeaders,
    kBody,          // Content-Length body
    kChunkSize,
    kChunkData,
    kChunkDataEnd,  // the line ending after chunk data
    kTrailers,
    kUntilClose,    // body read until EOF
    kComplete,
    kError,
  };

  [[nodiscard]] Result<bool> nextLine(std::string_view in, size_t& pos, std::string_view& line);
  [[nodiscard]] Status onLine(std::string_view line);
  [[nodiscard]] Status onStatusLine(std::string_view line);
  [[nodiscard]] Status onFieldLine(std::string_view line, bool trailer);
  [[nodiscard]] Status onHeadersDone();
  [[nodiscard]] Status onChunkSizeLine(std::string_view line);
  [[nodiscard]] Status appendBody(std::string_view data);
  tl::unexpected<Error> error(Errc code, std::string message);
  void resetMessage();

  ResponseLimits limits_;
  State state_ = State::kStatusLine;
  ParsedResponse response_;
  std::string line_;         // partial line carried between feed() calls
  size_t head_bytes_ = 0;    // bytes of the head (or trailers) so far
  size_t field_count_ = 0;
  size_t interim_count_ = 0;
  bool no_body_ = false;
  bool started_ = false;
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;
  bool has_transfer_encoding_ = false;
  std::string transfer_encoding_;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool chunk_cr_ = false;
  uint64_t remaining_ = 0;
  Error error_;
};

}  // namespace imgate::core::upstream
