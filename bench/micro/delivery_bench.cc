// SPDX-License-Identifier: Apache-2.0
// The cost of reliable delivery on the push path (docs/reliability.md): numbering and keeping a
// message in its stream's history (StreamStore::append), reading what a resuming client missed,
// and the per-recipient sequence check plus ack tracking (SessionStreams). Compare
// BM_SessionSequencedSend (check + position, unreliable) and BM_SessionReliableSendAck (also
// tracked until a cumulative ack) with the ~60 ns it takes to append shared bytes to a session.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "hub/stream_store.h"
#include "net/session_streams.h"

namespace imgate::core {
namespace {

Message payload(size_t n) {
  Message m;
  m.payload = makeBytes(std::string(n, 'x'));
  m.event = "chat";
  return m;
}

// One hot stream (a busy room): every push appends to the same history.
void BM_StreamAppendOneStream(benchmark::State& state) {
  MemoryStreamStore store;
  const Message m = payload(static_cast<size_t>(state.range(0)));
  const std::string key = streamKey("app", "room:lobby", "");
  int64_t now = 1'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.append(key, "room:lobby", m, ++now));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamAppendOneStream)->Arg(64)->Arg(1024);

// Pushes to many users: each append finds (or creates) its user's stream.
void BM_StreamAppendManyUsers(benchmark::State& state) {
  MemoryStreamStore store;
  const Message m = payload(64);
  std::vector<std::string> keys;
  for (int i = 0; i < state.range(0); ++i) {
    keys.push_back(streamKey("app", "user", "user" + std::to_string(i)));
  }
  size_t i = 0;
  int64_t now = 1'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.append(keys[i], "user", m, ++now));
    i = (i + 1) % keys.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamAppendManyUsers)->Arg(1000)->Arg(100000);

// A client resuming 100 messages behind.
void BM_StreamReadMissed(benchmark::State& state) {
  MemoryStreamStore store;
  const Message m = payload(64);
  const std::string key = streamKey("app", "user", "alice");
  uint64_t epoch = 0;
  for (int i = 0; i < 1000; ++i) {
    epoch = store.append(key, "user", m, 1'000'000)->epoch;
  }
  for (auto _ : state) {
    HistoryRead r = store.read(key, epoch, 900, 1000, 1'000'000);
    benchmark::DoNotOptimize(r.messages.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_StreamReadMissed);

std::vector<MessagePtr> sequenced(size_t n) {
  std::vector<MessagePtr> out;
  for (size_t i = 1; i <= n; ++i) {
    auto m = std::make_shared<Message>(payload(64));
    m->stream = "room:lobby";
    m->epoch = 42;
    m->seq = i;
    out.push_back(std::move(m));
  }
  return out;
}

// Per recipient, unreliable: the order/duplicate check and the position update.
void BM_SessionSequencedSend(benchmark::State& state) {
  const std::vector<MessagePtr> msgs = sequenced(4096);
  SessionStreams s;
  s.setPosition("user", 7, 0);
  s.setPosition("room:lobby", 42, 0);
  size_t i = 0;
  for (auto _ : state) {
    if (i == msgs.size()) {
      s.setPosition("room:lobby", 42, 0);
      i = 0;
    }
    benchmark::DoNotOptimize(s.check(*msgs[i]));
    s.sent(msgs[i], false, 0, std::chrono::milliseconds(5000));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionSequencedSend);

// Per recipient, reliable: tracked until the client's cumulative ack (one ack per 16 messages).
void BM_SessionReliableSendAck(benchmark::State& state) {
  const std::vector<MessagePtr> msgs = sequenced(4096);
  SessionStreams s;
  s.setPosition("room:lobby", 42, 0);
  size_t i = 0;
  for (auto _ : state) {
    if (i == msgs.size()) {
      s.ack("room:lobby", msgs.back()->seq);
      s.setPosition("room:lobby", 42, 0);
      i = 0;
    }
    benchmark::DoNotOptimize(s.check(*msgs[i]));
    s.sent(msgs[i], true, 1000, std::chrono::milliseconds(5000));
    if (i % 16 == 15) {
      s.ack("room:lobby", msgs[i]->seq);
    }
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionReliableSendAck);

}  // namespace
}  // namespace imgate::core
