// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for example.ndjson. The first input byte picks the limits, whether a hello is
// prepended (so every line type is reachable) and the feeding step; the rest is client bytes,
// fed whole and in steps the way the core feeds them, which must decode alike. Every data
// message's payload must be the exact JSON text of "data", every message must encode to one
// valid JSON line (shared and per-session encodings equal), and everything the server wrote
// (welcome, pongs, close) must be valid JSON lines.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "modules/examples/ndjson/ndjson_codec.h"
#include "test/fuzz/fuzz_codec_support.h"

namespace {

using imgate::fuzz::check;
using namespace imgate;                // NOLINT: fuzz target brevity
using namespace imgate::mod::ndjson;  // NOLINT

using Out = imgate::fuzz::StringOut;
using Sink = imgate::fuzz::RecordingSink;

// Every "\n"-terminated line of `bytes` is one JSON object.
void checkLines(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t nl = bytes.find('\n', pos);
    check(nl != std::string_view::npos);
    const std::string_view line = bytes.substr(pos, nl - pos);
    check(!line.empty() && line.front() == '{' && isJsonText(line));
    pos = nl + 1;
  }
}

struct Outcome {
  std::vector<Message> messages;
  std::string out;
  bool failed = false;
};

Outcome run(std::string_view all, size_t step, const NdjsonOptions& options) {
  NdjsonCodec codec(options);
  Sink sink;
  Outcome outcome;
  Out out;
  std::string buffered;
  bool opened = false;
  for (size_t from = 0; from < all.size() && !outcome.failed; from += step) {
    buffered.append(all.substr(from, step));
    while (true) {
      auto used = codec.decode(buffered, sink, out);
      if (!used) {
        check(!used.error().message.empty());
        codec.encodeClose(used.error().code, used.error().message, out);
        outcome.failed = true;
        break;
      }
      check(*used <= buffered.size());
      buffered.erase(0, *used);
      if (sink.hello_seen && !opened) {
        opened = true;
        codec.onOpened(SessionOpened{}, out);
        continue;
      }
      break;
    }
  }
  check(outcome.failed || buffered.size() <= options.max_line);
  for (const Message& m : sink.messages) {
    if (m.kind == MessageKind::kData && !m.data().empty()) {
      check(isJsonText(m.data()));
    }
    Out once;
    check(codec.encode(m, once).has_value());
    if (!codec.closeSent()) {
      check(codec.sharedEncodingKey(m) != 0);
      check(*codec.encodeShared(m) == once.data);
      check(once.data == encodeLine(m));
    }
    checkLines(once.data);
  }
  codec.encodePing(out);
  checkLines(out.data);
  outcome.messages = std::move(sink.messages);
  outcome.out = std::move(out.data);
  return outcome;
}

bool sameMessages(const std::vector<Message>& a, const std::vector<Message>& b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].event != b[i].event || a[i].id != b[i].id ||
        a[i].to_kind != b[i].to_kind || a[i].to != b[i].to || a[i].seq != b[i].seq ||
        a[i].data() != b[i].data()) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t mode = data[0];
  NdjsonOptions options;
  options.max_line = (mode & 1) != 0 ? 64 : 4096;
  options.max_depth = (mode & 2) != 0 ? 4 : 32;
  std::string all = (mode & 4) != 0 ? "{\"type\":\"hello\",\"token\":\"t\"}\n" : "";
  all.append(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t step = (mode >> 3) == 0 ? 1 : (mode >> 3);
  const Outcome whole = run(all, all.size() + 1, options);
  const Outcome split = run(all, step, options);
  check(whole.failed == split.failed);
  check(sameMessages(whole.messages, split.messages));
  check(whole.out == split.out);
  return 0;
}
