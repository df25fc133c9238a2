// SPDX-License-Identifier: Apache-2.0
// Engine.IO / Socket.IO codec hot paths: a typical chat EVENT parsed (with full JSON
// validation), encoded and split into name/args; a polling body of 10 such packets decoded and
// encoded; JSON string encoding of 1 KiB of text (ASCII chat text, and text with non-ASCII and
// characters that need escaping).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "modules/proto/socketio/eio_packet.h"
#include "modules/proto/socketio/json_string.h"
#include "modules/proto/socketio/sio_packet.h"

namespace imgate::mod::socketio {
namespace {

const std::string kEvent =
    R"(2["chat",{"room":"general","from":"u42","text":"hello there, how are you today?",)"
    R"("ts":1700000000000,"tags":["a","b"],"reply_to":null}])";

void BM_SioParseEvent(benchmark::State& state) {
  for (auto _ : state) {
    auto p = parseSioPacket(kEvent);
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kEvent.size()));
}
BENCHMARK(BM_SioParseEvent);

void BM_SioEncodeEvent(benchmark::State& state) {
  const SioPacket p = *parseSioPacket(kEvent);
  for (auto _ : state) {
    std::string text = encodeSioPacket(p);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_SioEncodeEvent);

void BM_SioSplitEvent(benchmark::State& state) {
  const SioPacket p = *parseSioPacket(kEvent);
  for (auto _ : state) {
    auto view = splitEvent(p.data);
    benchmark::DoNotOptimize(view);
  }
}
BENCHMARK(BM_SioSplitEvent);

void BM_SioEventJson(benchmark::State& state) {
  const EventView view = *splitEvent(parseSioPacket(kEvent)->data);
  for (auto _ : state) {
    auto json = eventJson(view.name, view.args);
    benchmark::DoNotOptimize(json);
  }
}
BENCHMARK(BM_SioEventJson);

std::string tenPacketBody() {
  std::vector<EioPacket> packets;
  for (int i = 0; i < 9; ++i) {
    packets.push_back({EioType::kMessage, false, kEvent});
  }
  packets.push_back({EioType::kMessage, true, std::string(64, '\x05')});
  return encodeEioPayload(packets);
}

void BM_EioPayloadDecode10(benchmark::State& state) {
  const std::string body = tenPacketBody();
  for (auto _ : state) {
    auto packets = decodeEioPayload(body);
    benchmark::DoNotOptimize(packets);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_EioPayloadDecode10);

void BM_EioPayloadEncode10(benchmark::State& state) {
  const std::vector<EioPacket> packets = *decodeEioPayload(tenPacketBody());
  for (auto _ : state) {
    std::string body = encodeEioPayload(packets);
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_EioPayloadEncode10);

std::string text1k(bool mixed) {
  const std::string ascii = "hello there, this is a fairly ordinary chat line number 42. ";
  const std::string rich = "caf\xC3\xA9 \xE2\x82\xAC \"quoted\"\n\ttab \xF0\x9F\x98\x80 ";
  std::string s;
  while (s.size() < 1024) {
    s += mixed ? rich : ascii;
  }
  s.resize(1024);
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) {
    s.pop_back();  // do not end inside a character
  }
  if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) {
    s.pop_back();
  }
  return s;
}

void BM_AppendJsonString1K(benchmark::State& state) {
  const std::string text = text1k(state.range(0) != 0);
  std::string out;
  for (auto _ : state) {
    out.clear();
    appendJsonString(out, text);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_AppendJsonString1K)->Arg(0)->Arg(1);

void BM_ParseJsonString1K(benchmark::State& state) {
  const std::string json = jsonString(text1k(state.range(0) != 0));
  for (auto _ : state) {
    auto s = parseJsonString(json);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
}
BENCHMARK(BM_ParseJsonString1K)->Arg(0)->Arg(1);

}  // namespace
}  // namespace imgate::mod::socketio
