// SPDX-License-Identifier: Apache-2.0
// Sans-I/O, incremental HTTP/1.1 request parser (RFC 9112) for the core's HTTP front.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "imgate/sdk/http.h"
#include "imgate/sdk/status.h"

namespace imgate::core::net {

// Per-listener limits. Every one is enforced before the bytes are buffered, so a parser holds
// at most max_header_bytes of head (partial line plus parsed headers) + max_body + one chunk
// line; buffer capacity can reach twice the head limit.
struct HttpLimits {
  // Request line + header lines + the empty line ending them, line endings included (and,
  // separately, the trailer section of a chunked body). 16 KiB fits large cookies and JWTs
  // in headers (nginx's default large_client_header_buffers is 4 x 8 KiB).
  size_t max_header_bytes = 16 * 1024;
  // Header fields per request (and, separately, trailer fields of a chunked body).
  size_t max_headers = 100;
  // Decoded body size. The push API carries small JSON documents; 1 MiB is nginx's
  // client_max_body_size default.
  size_t max_body = 1024 * 1024;
  // Request-target length; longer gets 414 (8 KiB matches common proxies).
  size_t max_uri = 8 * 1024;
  // RFC 9112 §3.2: an HTTP/1.1 request without Host gets 400. Only tests or odd clients need
  // this off. Two Host headers get 400 either way.
  bool require_host = true;
};

// Longest chunk-size line (size, extensions, line ending) accepted in a chunked body.
inline constexpr size_t kMaxChunkLineBytes = 4096;

// One per connection, reused for every request on it (keep-alive, pipelining). Not
// thread-safe; lives on the connection's worker.
//
// Input contract: feed() consumes every byte it is given until a request is complete, keeping
// a partial line internally, so the caller never re-presents bytes it already fed. Once a
// request is complete, feed() stops right after its last byte (the rest, e.g. a pipelined
// request or bytes for an upgraded protocol, is left to the caller) and consumes nothing more
// until take() is called.
//
// Accepted syntax: "METHOD SP request-target SP HTTP/1.x" request line; CRLF or bare LF line
// endings (a CR anywhere else is an error); empty lines before the request line are skipped
// (RFC 9112 §2.2). Origin-form ("/p?q"), absolute-form ("http://h/p") and "*" targets only.
// Header names are lower-cased; values are trimmed of spaces and tabs.
class HttpRequestParser {
 public:
  explicit HttpRequestParser(HttpLimits limits);

  // Consumes a prefix of `in` (see above) and returns its length. On error the parser is dead:
  // this and every later call return the same Error (kMessageTooBig for 413, kProtocolError
  // otherwise) and errorStatus() tells the HTTP status to answer with before closing:
  //   400 bad syntax, obs-fold, bad or conflicting Content-Length, Content-Length together
  //       with Transfer-Encoding, Transfer-Encoding on HTTP/1.0, bad chunk, missing Host;
  //   413 body larger than max_body (as soon as Content-Length or a chunk size shows it);
  //   414 request-target longer than max_uri;
  //   431 header block larger than max_header_bytes or more than max_headers fields;
  //   501 a transfer coding other than "chunked";
  //   505 an HTTP version other than 1.x (e.g. the HTTP/2 preface "PRI * HTTP/2.0").
  [[nodiscard]] Result<size_t> feed(std::string_view in);

  // True once the header block is parsed; the body may still be pending.
  bool headersComplete() const;
  // True while an HTTP/1.1 request that sent "Expect: 100-continue" still waits for its body:
  // the caller should write "HTTP/1.1 100 Continue" once (or reject the request right away).
  bool expectsContinue() const;
  // The whole request, body included, has been parsed.
  bool complete() const;
  // Moves the complete request out and resets for the next one on the connection. `peer` is
  // left empty for the caller to fill. Calling it before complete() returns an empty request
  // and changes nothing.
  HttpRequest take();
  // The HTTP status for the error feed() returned; 0 while there is none.
  int errorStatus() const;

 private:
  enum class State : uint8_t {
    kRequestLine,
    kHeaders,
    kBody,          // Content-Length body
    kChunkSize,     // chunk-size [ext] line
    kChunkData,     // chunk bytes
    kChunkDataEnd,  // the CRLF after chunk bytes
    kTrailers,      // trailer fields after the last chunk
    kComplete,
    kError,
  };

  // Finds the next whole line at in[pos...]. Returns true with `line` (without its line
  // ending) and `pos` past it; false when the rest was buffered as a partial line.
  [[nodiscard]] Result<bool> nextLine(std::string_view in, size_t& pos, std::string_view& line);
  [[nodiscard]] Status onLine(std::string_view line);
  [[nodiscard]] Status onRequestLine(std::string_view line);
  [[nodiscard]] Status onFieldLine(std::string_view line, bool trailer);
  [[nodiscard]] Status onContentLength(std::string_view value);
  [[nodiscard]] Status onHeadersDone();
  [[nodiscard]] Status onChunkSizeLine(std::string_view line);
  [[nodiscard]] Status lineTooLong(std::string_view line_so_far);
  tl::unexpected<Error> error(int status, std::string message);
  void reset();

  HttpLimits limits_;
  State state_ = State::kRequestLine;
  HttpRequest request_;
  std::string line_;        // partial line carried between feed() calls
  size_t head_bytes_ = 0;   // bytes of the request line and header block (or trailers) so far
  size_t field_count_ = 0;  // header (or trailer) fields so far
  size_t host_count_ = 0;
  bool has_content_length_ = false;
  uint64_t content_length_ = 0;
  bool has_transfer_encoding_ = false;
  std::string transfer_encoding_;  // all Transfer-Encoding values, comma-joined
  bool chunked_ = false;
  bool chunk_cr_ = false;  // kChunkDataEnd: the CR was seen
  bool expect_continue_ = false;
  uint64_t remaining_ = 0;  // body or chunk bytes still to read
  int error_status_ = 0;
  Error error_;
};

}  // namespace imgate::core::net
