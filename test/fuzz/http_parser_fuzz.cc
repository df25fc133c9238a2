// SPDX-License-Identifier: Apache-2.0
// Feeds arbitrary bytes to HttpRequestParser twice, whole and in small pieces, and aborts when
// the two runs disagree, when a consumed count breaks the feed() contract, or when a limit is
// exceeded. The first input byte picks the piece size and whether small limits apply.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "net/http_parser.h"

namespace {

using imgate::HttpRequest;
using imgate::core::net::HttpLimits;
using imgate::core::net::HttpRequestParser;

struct Run {
  std::vector<HttpRequest> requests;
  int error_status = 0;
  std::string leftover;
};

void check(bool ok) {
  if (!ok) {
    abort();
  }
}

Run parse(std::string_view input, size_t piece, const HttpLimits& limits) {
  HttpRequestParser parser(limits);
  Run run;
  std::string buffer;
  size_t from = 0;
  while (from < input.size()) {
    const size_t n = piece == 0 ? input.size() - from : std::min(piece, input.size() - from);
    buffer.append(input.substr(from, n));
    from += n;
    while (!buffer.empty()) {
      auto consumed = parser.feed(buffer);
      if (!consumed) {
        run.error_status = parser.errorStatus();
        check(run.error_status >= 400 && run.error_status <= 505);
        return run;
      }
      check(*consumed <= buffer.size());
      buffer.erase(0, *consumed);
      if (!parser.complete()) {
        check(buffer.empty());
        break;
      }
      HttpRequest req = parser.take();
      check(req.body.size() <= limits.max_body);
      check(req.target.size() <= limits.max_uri);
      check(req.headers.size() <= limits.max_headers);
      check(!req.method.empty() && !req.path.empty());
      run.requests.push_back(std::move(req));
    }
  }
  run.leftover = buffer;
  return run;
}

bool same(const HttpRequest& a, const HttpRequest& b) {
  if (a.method != b.method || a.target != b.target || a.path != b.path || a.query != b.query ||
      a.version_minor != b.version_minor || a.body != b.body || a.keep_alive != b.keep_alive ||
      a.headers.size() != b.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  HttpLimits limits;
  if (control & 0x80) {
    limits.max_header_bytes = 256;
    limits.max_headers = 6;
    limits.max_body = 64;
    limits.max_uri = 48;
  }
  limits.require_host = (control & 0x40) == 0;
  const size_t piece = (control & 0x0f) + 1;

  const Run whole = parse(input, 0, limits);
  const Run pieces = parse(input, piece, limits);
  check(whole.error_status == pieces.error_status);
  check(whole.leftover == pieces.leftover);
  check(whole.requests.size() == pieces.requests.size());
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    check(same(whole.requests[i], pieces.requests[i]));
  }
  return 0;
}
