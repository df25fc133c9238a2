// SPDX-License-Identifier: Apache-2.0
// Feeds arbitrary bytes to HttpResponseParser twice, whole and in small pieces, then signals
// EOF, and aborts when the two runs disagree, when a consumed count breaks the feed() contract,
// or when a limit is exceeded. The first input byte picks the piece size, small limits and
// whether the responses answer HEAD requests.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/http_response_parser.h"

namespace {

using imgate::core::upstream::HttpResponseParser;
using imgate::core::upstream::ParsedResponse;
using imgate::core::upstream::ResponseLimits;

struct Run {
  std::vector<ParsedResponse> responses;
  std::string error;
};

void check(bool ok) {
  if (!ok) {
    abort();
  }
}

Run parse(std::string_view input, size_t piece, const ResponseLimits& limits, bool head) {
  HttpResponseParser parser(limits);
  parser.expectNoBody(head);
  Run run;
  std::string buffer;
  size_t from = 0;
  auto takeOne = [&] {
    ParsedResponse r = parser.take();
    check(r.body.size() <= limits.max_body);
    check(r.headers.size() <= limits.max_headers);
    check(r.status >= 200 && r.status <= 599);
    check(!head || r.body.empty());
    run.responses.push_back(std::move(r));
    parser.expectNoBody(head);
  };
  while (from < input.size()) {
    const size_t n = piece == 0 ? input.size() - from : std::min(piece, input.size() - from);
    buffer.append(input.substr(from, n));
    from += n;
    while (!buffer.empty()) {
      auto consumed = parser.feed(buffer);
      if (!consumed) {
        run.error = consumed.error().message;
        return run;
      }
      check(*consumed <= buffer.size());
      buffer.erase(0, *consumed);
      if (!parser.complete()) {
        check(buffer.empty());
        break;
      }
      takeOne();
    }
  }
  auto st = parser.finish();
  if (!st) {
    run.error = st.error().message;
  } else if (parser.complete()) {
    takeOne();
  }
  return run;
}

bool same(const ParsedResponse& a, const ParsedResponse& b) {
  if (a.status != b.status || a.reason != b.reason || a.body != b.body ||
      a.keep_alive != b.keep_alive || a.headers.size() != b.headers.size()) {
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
  ResponseLimits limits;
  if (control & 0x80) {
    limits.max_header_bytes = 256;
    limits.max_headers = 6;
    limits.max_body = 64;
    limits.max_interim = 2;
  }
  const bool head = (control & 0x40) != 0;
  const size_t piece = (control & 0x0f) + 1;

  const Run whole = parse(input, 0, limits, head);
  const Run pieces = parse(input, piece, limits, head);
  check(whole.error == pieces.error);
  check(whole.responses.size() == pieces.responses.size());
  for (size_t i = 0; i < whole.responses.size(); ++i) {
    check(same(whole.responses[i], pieces.responses[i]));
  }
  return 0;
}
