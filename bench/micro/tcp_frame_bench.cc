// SPDX-License-Identifier: Apache-2.0
// tcp_frame codec hot paths: decoding SEND frames (plain and compressed) and encoding PUSH
// frames per session and once per fan-out.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "modules/proto/tcp_frame/frame.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"

namespace imgate::mod::tcp_frame {
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

std::string chatPayload(size_t n) {
  std::string s;
  int i = 0;
  while (s.size() < n) {
    s += R"({"type":"message","room":"general","text":"hello there, message )" +
         std::to_string(i++) + R"("})";
  }
  s.resize(n);
  return s;
}

std::string sendFrame(size_t n, bool compressed) {
  std::string body;
  TlvWriter w(body);
  w.addString(Tag::kEvent, "chat");
  w.addString(Tag::kData, chatPayload(n));
  if (compressed) {
    std::string packed;
    deflateBody(body, 1, packed);
    return buildFrame(FrameType::kSend, kFlagCompressed, 1, packed);
  }
  return buildFrame(FrameType::kSend, 0, 1, body);
}

// A codec past its HELLO, as every established session is.
TcpFrameCodec openCodec(const TcpFrameOptions& options) {
  TcpFrameCodec codec(options);
  NullSink sink;
  NullOut out;
  std::string body;
  TlvWriter(body).addString(Tag::kToken, "t");
  (void)codec.decode(buildFrame(FrameType::kHello, 0, 1, body), sink, out);
  return codec;
}

void BM_TcpFrameDecodeSend(benchmark::State& state) {
  const bool compressed = state.range(1) != 0;
  // 64 frames per batch: a read of several sticky frames, as a busy client sends.
  std::string batch;
  for (int i = 0; i < 64; ++i) {
    batch += sendFrame(static_cast<size_t>(state.range(0)), compressed);
  }
  TcpFrameCodec codec = openCodec({});
  NullSink sink;
  NullOut out;
  for (auto _ : state) {
    auto used = codec.decode(batch, sink, out);
    if (!used || *used != batch.size()) {
      state.SkipWithError("decode failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_TcpFrameDecodeSend)->Args({64, 0})->Args({1024, 0})->Args({16384, 0})->Args({1024, 1});

void BM_TcpFrameEncodePush(benchmark::State& state) {
  TcpFrameOptions options;
  options.compression = state.range(1) != 0;
  TcpFrameCodec codec(options);
  NullOut out;
  Message m;
  m.event = "news";
  m.payload = makeBytes(chatPayload(static_cast<size_t>(state.range(0))));
  for (auto _ : state) {
    auto s = codec.encode(m, out);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TcpFrameEncodePush)->Args({64, 0})->Args({1024, 0})->Args({1024, 1})->Args({16384, 1});

void BM_TcpFrameEncodeShared(benchmark::State& state) {
  TcpFrameCodec codec(TcpFrameOptions{});
  Message m;
  m.event = "news";
  m.payload = makeBytes(chatPayload(static_cast<size_t>(state.range(0))));
  for (auto _ : state) {
    benchmark::DoNotOptimize(codec.sharedEncodingKey(m));
    benchmark::DoNotOptimize(codec.encodeShared(m));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TcpFrameEncodeShared)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace imgate::mod::tcp_frame
