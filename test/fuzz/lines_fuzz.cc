// SPDX-License-Identifier: Apache-2.0
// Fuzzes proto.lines decoding: arbitrary bytes, fed whole and in two pieces, must decode to the
// same lines (the core keeps unconsumed bytes and calls again).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "modules/proto/lines/lines_codec.h"

namespace {

struct Sink final : imgate::CodecSink {
  std::vector<std::string> lines;
  void onMessage(imgate::Message&& m) override { lines.emplace_back(m.data()); }
  void onPeerClose(imgate::Errc, std::string_view) override {}
  void onActivity() override {}
  void onHello(imgate::HttpRequest) override {}
};

struct Out final : imgate::OutBuffer {
  void append(std::string_view) override {}
  void appendShared(imgate::Bytes) override {}
  size_t pending() const override { return 0; }
};

std::vector<std::string> run(std::string_view input, size_t cut, bool& failed) {
  imgate::mod::lines::LinesCodec codec(64);
  Sink sink;
  Out out;
  std::string buf;
  for (std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
    buf.append(piece);
    auto used = codec.decode(buf, sink, out);
    if (!used) {
      failed = true;
      return sink.lines;
    }
    if (*used > buf.size()) {
      abort();
    }
    buf.erase(0, *used);
  }
  return sink.lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  bool failed_whole = false;
  bool failed_split = false;
  const auto whole = run(input, size, failed_whole);
  const auto split = run(input, size / 2, failed_split);
  if (!failed_whole && !failed_split && whole != split) {
    abort();
  }
  return 0;
}
