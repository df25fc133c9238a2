// SPDX-License-Identifier: Apache-2.0
#include "hub/stream_store.h"

#include <algorithm>
#include <random>

namespace imgate::core {

std::string streamKey(std::string_view app, std::string_view stream, std::string_view user) {
  std::string k;
  k.reserve(app.size() + stream.size() + user.size() + 2);
  k.append(app).push_back('\0');
  k.append(stream);
  if (stream == "user") {
    k.push_back('\0');
    k.append(user);
  }
  return k;
}

namespace {
size_t entryBytes(const Message& m) {
  return m.data().size() + m.event.size() + m.id.size() + m.stream.size() + 96;
}
}  // namespace

MemoryStreamStore::MemoryStreamStore(StreamLimits limits) : limits_(limits) {
  std::random_device rd;
  epoch_state_ = (uint64_t{rd()} << 32) ^ rd() ^
                 static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
}

// splitmix64 over a random start: distinct, unpredictable enough, never 0.
uint64_t MemoryStreamStore::newEpoch() {
  uint64_t z = epoch_state_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) +
               0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z == 0 ? 1 : z;
}

StreamLimits MemoryStreamStore::limits() const {
  std::lock_guard lock(limits_mu_);
  return limits_;
}

void MemoryStreamStore::setLimits(const StreamLimits& limits) {
  std::lock_guard lock(limits_mu_);
  limits_ = limits;
}

void MemoryStreamStore::dropFront(Shard& sh, Stream& s, bool expired) {
  s.bytes -= s.entries.front().bytes;
  sh.bytes -= s.entries.front().bytes;
  bytes_.fetch_sub(s.entries.front().bytes, std::memory_order_relaxed);
  messages_.fetch_sub(1, std::memory_order_relaxed);
  (expired ? expired_ : evicted_).fetch_add(1, std::memory_order_relaxed);
  s.entries.pop_front();
}

void MemoryStreamStore::trim(Shard& sh, Stream& s, int64_t now_ms, const StreamLimits& limits) {
  while (!s.entries.empty() && s.entries.front().at_ms + limits.ttl.count() <= now_ms) {
    dropFront(sh, s, true);
  }
  while (!s.entries.empty() &&
         (s.entries.size() > limits.max_messages || s.bytes > limits.max_bytes)) {
    dropFront(sh, s, false);
  }
}

MessagePtr MemoryStreamStore::append(const std::string& key, std::string_view stream,
                                     Message message, int64_t now_ms) {
  const StreamLimits lim = limits();
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto [it, created] = sh.streams.try_emplace(key);
  Stream& s = it->second;
  if (created) {
    s.epoch = newEpoch();
    sh.lru.push_back(key);
    s.lru = std::prev(sh.lru.end());
    streams_.fetch_add(1, std::memory_order_relaxed);
  } else {
    sh.lru.splice(sh.lru.end(), sh.lru, s.lru);
  }
  s.last_append_ms = now_ms;
  message.stream = std::string(stream);
  message.epoch = s.epoch;
  message.seq = ++s.seq;
  auto shared = std::make_shared<const Message>(std::move(message));
  if (lim.max_messages > 0 && lim.max_bytes > 0) {
    const size_t bytes = entryBytes(*shared);
    s.entries.push_back(Entry{shared, bytes, now_ms});
    s.bytes += bytes;
    sh.bytes += bytes;
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    messages_.fetch_add(1, std::memory_order_relaxed);
    trim(sh, s, now_ms, lim);
    // Over the total: the least recently appended streams of this shard give up their oldest
    // messages first (each shard enforces its share, so no lock beyond this one is taken).
    const size_t share = lim.max_total_bytes / kShards;
    for (auto lru = sh.lru.begin(); sh.bytes > share && lru != sh.lru.end(); ++lru) {
      Stream& victim = sh.streams[*lru];
      while (!victim.entries.empty() && sh.bytes > share &&
             (&victim != &s || victim.entries.size() > 1)) {
        dropFront(sh, victim, false);
      }
    }
  }
  return shared;
}

StreamHead MemoryStreamStore::head(const std::string& key) {
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end()) {
    return {};
  }
  return {it->second.epoch, it->second.seq};
}

HistoryRead MemoryStreamStore::read(const std::string& key, uint64_t epoch, uint64_t after_seq,
                                    size_t max, int64_t now_ms) {
  const StreamLimits lim = limits();
  HistoryRead r;
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end()) {
    // Never had a message (or forgotten): only "nothing yet" is a valid position.
    r.status = epoch == 0 && after_seq == 0 ? HistoryRead::Status::kOk
                                            : HistoryRead::Status::kEpochChanged;
    return r;
  }
  Stream& s = it->second;
  trim(sh, s, now_ms, lim);
  r.head = {s.epoch, s.seq};
  if (epoch != s.epoch && !(epoch == 0 && after_seq == 0)) {
    r.status = HistoryRead::Status::kEpochChanged;
    return r;
  }
  if (after_seq > s.seq) {
    r.status = HistoryRead::Status::kEpochChanged;  // a position this epoch never had
    return r;
  }
  if (after_seq == s.seq) {
    return r;
  }
  const uint64_t first = s.entries.empty() ? s.seq + 1 : s.entries.front().message->seq;
  if (after_seq + 1 < first) {
    r.status = HistoryRead::Status::kTooOld;
    return r;
  }
  const size_t from = static_cast<size_t>(after_seq + 1 - first);
  for (size_t i = from; i < s.entries.size() && r.messages.size() < max; ++i) {
    r.messages.push_back(s.entries[i].message);
  }
  return r;
}

void MemoryStreamStore::setDevicePosition(const std::string& key, std::string_view device,
                                          uint64_t epoch, uint64_t seq) {
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end() || it->second.epoch != epoch || seq > it->second.seq) {
    return;
  }
  auto& devices = it->second.devices;
  auto d = std::find_if(devices.begin(), devices.end(),
                        [&](const auto& p) { return p.first == device; });
  uint64_t pos = seq;
  if (d != devices.end()) {
    pos = std::max(pos, d->second);
    devices.erase(d);
  } else if (devices.size() >= kMaxDevices) {
    devices.erase(devices.begin());
  }
  devices.emplace_back(std::string(device), pos);
}

std::optional<uint64_t> MemoryStreamStore::devicePosition(const std::string& key,
                                                          std::string_view device,
                                                          uint64_t epoch) {
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end() || it->second.epoch != epoch) {
    return std::nullopt;
  }
  for (const auto& [name, seq] : it->second.devices) {
    if (name == device) {
      return seq;
    }
  }
  return std::nullopt;
}

void MemoryStreamStore::markOffline(const std::string& key, std::optional<uint64_t> at) {
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end()) {
    return;
  }
  Stream& s = it->second;
  if (!at) {
    s.offline_since = s.seq;
  } else if (!s.offline_since) {
    s.offline_since = std::min(*at, s.seq);
  }
}

std::optional<uint64_t> MemoryStreamStore::offlineSince(const std::string& key, uint64_t epoch) {
  Shard& sh = shard(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.streams.find(key);
  if (it == sh.streams.end() || it->second.epoch != epoch) {
    return std::nullopt;
  }
  return it->second.offline_since;
}

void MemoryStreamStore::sweep(int64_t now_ms) {
  const StreamLimits lim = limits();
  // A slice of the shards per call: a full pass every kSweepSlices calls.
  const size_t slice = sweep_cursor_.fetch_add(1, std::memory_order_relaxed) % kSweepSlices;
  for (size_t i = slice; i < kShards; i += kSweepSlices) {
    Shard& sh = shards_[i];
    std::lock_guard lock(sh.mu);
    // Least recently appended first: stop at the first stream still in use.
    while (!sh.lru.empty()) {
      auto it = sh.streams.find(sh.lru.front());
      Stream& s = it->second;
      const bool idle = s.last_append_ms + lim.idle_ttl.count() <= now_ms;
      // Over max_streams: each shard keeps its share, its most recently used streams.
      const bool too_many = streams_.load(std::memory_order_relaxed) > lim.max_streams &&
                            sh.streams.size() > std::max<size_t>(lim.max_streams / kShards, 1);
      if (!idle && !too_many) {
        break;
      }
      while (!s.entries.empty()) {
        dropFront(sh, s, idle);
      }
      sh.lru.pop_front();
      sh.streams.erase(it);
      streams_.fetch_sub(1, std::memory_order_relaxed);
    }
    for (const std::string& k : sh.lru) {
      Stream& s = sh.streams[k];
      if (!s.entries.empty() && s.entries.front().at_ms + lim.ttl.count() <= now_ms) {
        trim(sh, s, now_ms, lim);
      }
    }
  }
}

StreamStoreStats MemoryStreamStore::stats() const {
  return {streams_.load(std::memory_order_relaxed), messages_.load(std::memory_order_relaxed),
          bytes_.load(std::memory_order_relaxed), evicted_.load(std::memory_order_relaxed),
          expired_.load(std::memory_order_relaxed)};
}

}  // namespace imgate::core
