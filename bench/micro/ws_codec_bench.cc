// SPDX-License-Identifier: Apache-2.0
// WebSocket codec hot paths: decoding masked client frames, encoding per session, and the
// once-per-fan-out shared encoding with and without permessage-deflate.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "modules/proto/websocket/ws_codec.h"

namespace imgate::mod::websocket {
namespace {

class NullSink final : public CodecSink {
 public:
  void onMessage(Message&& message) override { benchmark::DoNotOptimize(message.payload); }
  void onPeerClose(Errc, std::string_view) override {}
  void onActivity() override {}
  void onHello(HttpRequest) override {}
};

class NullOut final : public OutBuffer {
 public:
  void append(std::string_view bytes) override { bytes_ += bytes.size(); }
  void appendShared(Bytes bytes) override { bytes_ += bytes ? bytes->size() : 0; }
  size_t pending() const override { return 0; }

 private:
  size_t bytes_ = 0;
};

// Chat-like JSON text of `n` bytes (compressible, ASCII).
std::string chatPayload(size_t n) {
  std::string s;
  int i = 0;
  while (s.size() < n) {
    s += R"({"type":"message","room":"general","from":"user)" + std::to_string(i % 13) +
         R"(","text":"hello there, message )" + std::to_string(i) + R"("})";
    ++i;
  }
  s.resize(n);
  return s;
}

std::string maskedFrame(std::string_view payload, uint8_t opcode) {
  static constexpr uint8_t kMaskKey[4] = {0x12, 0x34, 0x56, 0x78};
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) {
      f.push_back(static_cast<char>(n >> (8 * i)));
    }
  }
  f.append(reinterpret_cast<const char*>(kMaskKey), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ kMaskKey[i & 3]));
  }
  return f;
}

void decodeMasked(benchmark::State& state, uint8_t opcode) {
  const std::string frame = maskedFrame(chatPayload(static_cast<size_t>(state.range(0))), opcode);
  WsCodecOptions options;
  options.max_message = 1 << 20;
  WsCodec codec(options);
  NullSink sink;
  NullOut out;
  for (auto _ : state) {
    Result<size_t> n = codec.decode(frame, sink, out);
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frame.size()));
}

void BM_WsDecodeMaskedText(benchmark::State& state) { decodeMasked(state, 0x1); }
void BM_WsDecodeMaskedBinary(benchmark::State& state) { decodeMasked(state, 0x2); }
BENCHMARK(BM_WsDecodeMaskedText)->Arg(16)->Arg(1024)->Arg(64 * 1024);
BENCHMARK(BM_WsDecodeMaskedBinary)->Arg(16)->Arg(1024)->Arg(64 * 1024);

Message textMessage(size_t n) {
  Message m;
  m.type = PayloadType::kText;
  m.payload = makeBytes(chatPayload(n));
  return m;
}

void BM_WsEncode(benchmark::State& state) {
  const Message m = textMessage(static_cast<size_t>(state.range(0)));
  WsCodec codec(WsCodecOptions{});
  NullOut out;
  for (auto _ : state) {
    Status s = codec.encode(m, out);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * m.data().size()));
}
BENCHMARK(BM_WsEncode)->Arg(16)->Arg(1024)->Arg(64 * 1024);

void encodeShared(benchmark::State& state, bool deflate) {
  const Message m = textMessage(static_cast<size_t>(state.range(0)));
  WsCodecOptions options;
  options.deflate.enabled = deflate;
  WsCodec codec(options);
  size_t wire = 0;
  for (auto _ : state) {
    Bytes b = codec.encodeShared(m);
    wire = b->size();
    benchmark::DoNotOptimize(b);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * m.data().size()));
  state.counters["wire_bytes"] = static_cast<double>(wire);
}

void BM_WsEncodeSharedPlain(benchmark::State& state) { encodeShared(state, false); }
void BM_WsEncodeSharedDeflate(benchmark::State& state) { encodeShared(state, true); }
BENCHMARK(BM_WsEncodeSharedPlain)->Arg(128)->Arg(1024)->Arg(64 * 1024);
BENCHMARK(BM_WsEncodeSharedDeflate)->Arg(128)->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace imgate::mod::websocket
