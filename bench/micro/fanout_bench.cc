// SPDX-License-Identifier: Apache-2.0
// Fan-out encode-once (DESIGN.md §1, §7): the core asks each recipient's codec for its shared
// encoding key, encodes once per distinct key, and appends the same bytes to every recipient.
// BM_FanoutPerRecipient is the "before": every recipient encodes (and, with permessage-deflate,
// compresses) the message itself. Both loops do what Connection::deliver does per recipient.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "modules/proto/websocket/ws_codec.h"

namespace imgate::mod::websocket {
namespace {

class CountingOut final : public OutBuffer {
 public:
  void append(std::string_view bytes) override { bytes_ += bytes.size(); }
  void appendShared(Bytes bytes) override {
    held_ = std::move(bytes);  // the reference a real output buffer keeps until written
    bytes_ += held_->size();
  }
  size_t pending() const override { return 0; }
  size_t bytes() const { return bytes_; }

 private:
  Bytes held_;
  size_t bytes_ = 0;
};

Message chatMessage(size_t n) {
  std::string s;
  int i = 0;
  while (s.size() < n) {
    s += R"({"type":"message","room":"general","from":"user)" + std::to_string(i % 13) +
         R"(","text":"hello there, message )" + std::to_string(i) + R"("})";
    ++i;
  }
  s.resize(n);
  Message m;
  m.payload = makeBytes(std::move(s));
  return m;
}

// Half the recipients negotiated permessage-deflate, half did not (as in a mixed audience).
std::vector<std::unique_ptr<WsCodec>> recipients(size_t n) {
  std::vector<std::unique_ptr<WsCodec>> codecs;
  for (size_t i = 0; i < n; ++i) {
    WsCodecOptions options;
    options.deflate.enabled = (i % 2) == 0;
    codecs.push_back(std::make_unique<WsCodec>(options));
  }
  return codecs;
}

void BM_FanoutEncodeOnce(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const Message m = chatMessage(static_cast<size_t>(state.range(1)));
  auto codecs = recipients(n);
  std::vector<CountingOut> outs(n);
  for (auto _ : state) {
    std::vector<std::pair<uint64_t, Bytes>> encodings;  // per fan-out, as Delivery::encodings
    for (size_t i = 0; i < n; ++i) {
      const uint64_t key = codecs[i]->sharedEncodingKey(m);
      Bytes bytes;
      for (auto& [k, b] : encodings) {
        if (k == key) {
          bytes = b;
        }
      }
      if (!bytes) {
        bytes = codecs[i]->encodeShared(m);
        encodings.emplace_back(key, bytes);
      }
      outs[i].appendShared(std::move(bytes));
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

void BM_FanoutPerRecipient(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const Message m = chatMessage(static_cast<size_t>(state.range(1)));
  auto codecs = recipients(n);
  std::vector<CountingOut> outs(n);
  for (auto _ : state) {
    for (size_t i = 0; i < n; ++i) {
      outs[i].appendShared(codecs[i]->encodeShared(m));  // each recipient encodes its own copy
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

BENCHMARK(BM_FanoutEncodeOnce)->Args({100, 1024})->Args({10000, 1024})->Args({10000, 64});
BENCHMARK(BM_FanoutPerRecipient)->Args({100, 1024})->Args({10000, 1024})->Args({10000, 64});

}  // namespace
}  // namespace imgate::mod::websocket
