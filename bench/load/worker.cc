// SPDX-License-Identifier: Apache-2.0
#include "worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

namespace imgate::bench::load {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxPendingWrite = 4u << 20;
constexpr int kMaxEvents = 512;

std::string errnoReason(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connect_refused";
    case ECONNRESET:
      return "reset";
    case ETIMEDOUT:
      return "connect_timeout";
    case EADDRNOTAVAIL:
      return "no_source_port";
    case EADDRINUSE:
      return "address_in_use";
    case EMFILE:
    case ENFILE:
      return "out_of_descriptors";
    case EPIPE:
      return "broken_pipe";
    case ENETUNREACH:
    case EHOSTUNREACH:
      return "unreachable";
    default:
      return "errno_" + std::to_string(err);
  }
}

CodecConfig codecConfig(const RunState& run) {
  const Options& o = run.options;
  CodecConfig c;
  c.protocol = o.protocol;
  c.host_header = o.target.text();
  c.ws_path = o.ws_path;
  c.sio_path = o.sio_path;
  c.nchan_path = o.nchan_path;
  c.room = o.room;
  c.jwt_secret = o.jwt_secret;
  c.users_prefix = o.users_prefix;
  const int64_t now_s = wallNs() / 1'000'000'000;
  c.jwt_iat_s = now_s - 5;
  c.jwt_exp_s = now_s + o.jwt_ttl_s;
  c.ws_salt = run.ws_salt;
  c.uplink_bytes = o.payload_bytes;
  c.uplink_id_base = (run.ws_salt % 1'000'000) * 1'000'000'000;
  c.max_message = std::max<uint64_t>(1u << 20, uint64_t(o.payload_bytes) * 2 + 4096);
  return c;
}

}  // namespace

int64_t monoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t wallNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

RunState::RunState(const Options& o)
    : options(o), start_mono_ns(monoNs()), ws_salt(std::random_device{}() * 0x100000001ULL) {
  if (o.scenario == Scenario::kPush) {
    seen_words = size_t(o.pushes / 64 + 1);
    seen = std::make_unique<std::atomic<uint64_t>[]>(seen_words);
    for (size_t i = 0; i < seen_words; ++i) {
      seen[i].store(0, std::memory_order_relaxed);
    }
  }
}

Worker::Worker(RunState& run, uint32_t index, uint32_t threads, uint64_t uplink_budget)
    : run_(run),
      opt_(run.options),
      index_(index),
      threads_(threads),
      codec_(codecConfig(run)),
      uplink_budget_(uplink_budget) {
  const uint32_t n = opt_.connections;
  const uint32_t mine = n / threads + (index < n % threads ? 1 : 0);
  conns_.resize(mine);
  scratch_.resize(kReadChunk);
  if (opt_.source_first != 0) {
    source_count_ = opt_.source_last - opt_.source_first + 1;
  }
  if (opt_.scenario == Scenario::kFanout) {
    stats.msg_count.assign(size_t(opt_.pushes), 0);
    stats.msg_last_ns.assign(size_t(opt_.pushes), 0);
  }
}

Worker::~Worker() {
  join();
  if (epfd_ >= 0) {
    ::close(epfd_);
  }
}

void Worker::start() {
  thread_ = std::thread([this] { loop(); });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Worker::watch(uint32_t slot, bool want_write) {
  epoll_event ev{};
  ev.events = EPOLLIN | (want_write ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u64 = slot;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, conns_[slot].fd, &ev);
}

// ---- Loop ---------------------------------------------------------------------------------------

void Worker::loop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    stats.fail_reasons["epoll_create"] += conns_.size();
    live.failed.fetch_add(conns_.size());
    return;
  }
  const double rate = opt_.connect_rate == 0 ? 0 : double(opt_.connect_rate) / threads_;
  const double burst = std::max(1.0, rate / 50);  // at most 20 ms worth at once
  int64_t last = monoNs();
  int64_t next_timeout_scan = last;
  epoll_event events[kMaxEvents];
  while (!run_.stop.load(std::memory_order_relaxed)) {
    const int64_t now = monoNs();
    const double dt = double(now - last) / 1e9;
    last = now;
    const bool connecting = next_connect_ < conns_.size();
    if (connecting) {
      connect_tokens_ = rate == 0 ? 1e18 : std::min(burst, connect_tokens_ + rate * dt);
      while (next_connect_ < conns_.size() && in_handshake_ < opt_.max_pending &&
             connect_tokens_ >= 1) {
        startConnect(next_connect_++, now);
        connect_tokens_ -= 1;
      }
    }
    if (in_handshake_ > 0 && now >= next_timeout_scan) {
      checkTimeouts(now);
      next_timeout_scan = now + 250'000'000;
    }
    if (run_.uplink_go.load(std::memory_order_relaxed)) {
      pumpUplink(now);
    }
    if (opt_.ping_interval_s > 0) {
      pumpPings(now);
    }
    const bool paced = connecting || (opt_.scenario == Scenario::kUplink && opt_.push_rate > 0 &&
                                      run_.uplink_go.load(std::memory_order_relaxed));
    const int n = epoll_wait(epfd_, events, kMaxEvents, paced ? 1 : 20);
    for (int i = 0; i < n; ++i) {
      onEvent(uint32_t(events[i].data.u64), events[i].events);
    }
  }
  for (uint32_t slot = 0; slot < conns_.size(); ++slot) {
    if (conns_[slot].fd >= 0) {
      ::close(conns_[slot].fd);
      conns_[slot].fd = -1;
    }
  }
  partial_.clear();
  pending_.clear();
}

void Worker::startConnect(uint32_t slot, int64_t now) {
  Conn& c = conns_[slot];
  const uint32_t id = idOf(slot);
  c.start_us = uint32_t((now - run_.start_mono_ns) / 1000);
  live.attempted.fetch_add(1, std::memory_order_relaxed);
  const auto failNow = [&](int err) {
    if (c.fd >= 0) {
      ::close(c.fd);
      c.fd = -1;
    }
    c.state = kStateDone;
    stats.fail_reasons[errnoReason(err)]++;
    live.failed.fetch_add(1, std::memory_order_relaxed);
  };
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    failNow(errno);
    return;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (source_count_ != 0) {
    // Without IP_BIND_ADDRESS_NO_PORT, bind() would reserve a port for any destination and
    // the ephemeral range would run out long before the 4-tuples do.
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(opt_.source_first + id % source_count_);
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
      failNow(errno);
      return;
    }
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(opt_.target.port);
  inet_pton(AF_INET, opt_.target.host.c_str(), &dst.sin_addr);
  const int rc = ::connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst));
  if (rc != 0 && errno != EINPROGRESS) {
    failNow(errno);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = slot;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    failNow(errno);
    return;
  }
  c.state = kStateConnecting;
  ++in_handshake_;
  if (rc == 0) {
    onConnected(slot);
  }
}

void Worker::onConnected(uint32_t slot) {
  Conn& c = conns_[slot];
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    drop(slot, errnoReason(err));
    return;
  }
  watch(slot, false);
  cur_ = slot;
  codec_.start(c.state, idOf(slot), *this);
  settle(slot);
}

void Worker::onEvent(uint32_t slot, uint32_t events) {
  if (slot >= conns_.size() || conns_[slot].fd < 0) {
    return;  // closed earlier in this batch
  }
  Conn& c = conns_[slot];
  if (c.state == kStateConnecting) {
    onConnected(slot);
    return;
  }
  if ((events & EPOLLOUT) != 0 && (c.flags & kPendingWrite) != 0) {
    flush(slot);
    if (c.fd < 0) {
      return;
    }
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
    onReadable(slot);
  }
}

void Worker::onReadable(uint32_t slot) {
  for (int round = 0; round < 4; ++round) {
    Conn& c = conns_[slot];
    if (c.fd < 0) {
      return;
    }
    const ssize_t r = ::recv(c.fd, scratch_.data(), scratch_.size(), 0);
    if (r > 0) {
      feed(slot, scratch_.data(), size_t(r));
      if (size_t(r) < scratch_.size()) {
        return;
      }
      continue;
    }
    if (r == 0) {
      drop(slot, "eof");
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return;
    }
    drop(slot, errnoReason(errno));
    return;
  }
}

void Worker::feed(uint32_t slot, const uint8_t* data, size_t size) {
  Conn& c = conns_[slot];
  cur_ = slot;
  const uint32_t id = idOf(slot);
  if ((c.flags & kPartial) == 0) {
    const size_t used = codec_.consume(c.state, id, data, size, *this);
    if (c.state != kStateDone && (c.flags & kBroken) == 0 && used < size) {
      partial_[slot].assign(reinterpret_cast<const char*>(data + used), size - used);
      c.flags |= kPartial;
    }
  } else {
    std::string& buf = partial_[slot];
    buf.append(reinterpret_cast<const char*>(data), size);
    const size_t used = codec_.consume(c.state, id, reinterpret_cast<const uint8_t*>(buf.data()),
                                       buf.size(), *this);
    // consume() never closes the connection itself, so buf is still alive here.
    buf.erase(0, used);
    if (buf.empty()) {
      partial_.erase(slot);
      c.flags &= uint8_t(~kPartial);
    }
  }
  if ((c.flags & kPartial) != 0 && c.state != kStateDone) {
    auto it = partial_.find(slot);
    if (it != partial_.end() && it->second.size() > codec_.maxBuffered()) {
      drop(slot, "client_buffer_limit");
      return;
    }
  }
  settle(slot);
}

void Worker::settle(uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.fd < 0) {
    return;
  }
  if ((c.flags & kBroken) != 0 && c.state != kStateDone) {
    recordClose(slot, "write_error");
    c.state = kStateDone;
  }
  if (c.state == kStateDone) {
    finish(slot);
  }
}

void Worker::drop(uint32_t slot, std::string_view reason) {
  Conn& c = conns_[slot];
  if (c.fd < 0) {
    return;
  }
  if (c.state != kStateDone) {
    recordClose(slot, reason);
    c.state = kStateDone;
  }
  finish(slot);
}

void Worker::recordClose(uint32_t slot, std::string_view reason) {
  Conn& c = conns_[slot];
  if (isHandshaking(c.state)) {
    stats.fail_reasons[std::string(reason)]++;
    live.failed.fetch_add(1, std::memory_order_relaxed);
    --in_handshake_;
  } else if (c.state == kStateOpen) {
    stats.close_reasons[std::string(reason)]++;
    live.closed.fetch_add(1, std::memory_order_relaxed);
    if (c.up_sent_ns != 0) {
      ++stats.uplink_lost;
      c.up_sent_ns = 0;
      live.uplink_settled.fetch_add(1, std::memory_order_relaxed);  // no answer can come now
    }
  }
}

void Worker::finish(uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.fd >= 0) {
    ::close(c.fd);  // also removes it from the epoll set
    c.fd = -1;
  }
  if ((c.flags & kPartial) != 0) {
    partial_.erase(slot);
  }
  if ((c.flags & kPendingWrite) != 0) {
    pending_.erase(slot);
  }
  c.flags = 0;
  c.state = kStateDone;
}

void Worker::flush(uint32_t slot) {
  Conn& c = conns_[slot];
  auto it = pending_.find(slot);
  if (it == pending_.end()) {
    c.flags &= uint8_t(~kPendingWrite);
    watch(slot, false);
    return;
  }
  std::string& out = it->second;
  const ssize_t w = ::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      drop(slot, errnoReason(errno));
    }
    return;
  }
  out.erase(0, size_t(w));
  if (out.empty()) {
    pending_.erase(it);
    c.flags &= uint8_t(~kPendingWrite);
    watch(slot, false);
  }
}

void Worker::checkTimeouts(int64_t now) {
  const uint64_t now_us = uint64_t(now - run_.start_mono_ns) / 1000;
  const uint64_t limit_us = uint64_t(opt_.handshake_timeout_s * 1e6);
  for (uint32_t slot = 0; slot < next_connect_; ++slot) {
    const Conn& c = conns_[slot];
    if (c.fd >= 0 && isHandshaking(c.state) && now_us - c.start_us > limit_us) {
      drop(slot, "handshake_timeout");
    }
  }
}

void Worker::pumpPings(int64_t now) {
  if (ping_last_ns_ == 0) {
    ping_last_ns_ = now;
    return;
  }
  // Spread evenly: each connection is visited once per interval, in order.
  ping_due_ += double(conns_.size()) * double(now - ping_last_ns_) / (opt_.ping_interval_s * 1e9);
  ping_last_ns_ = now;
  while (ping_due_ >= 1 && !conns_.empty()) {
    ping_due_ -= 1;
    const uint32_t slot = ping_cursor_;
    ping_cursor_ = (ping_cursor_ + 1) % uint32_t(conns_.size());
    if (conns_[slot].fd >= 0 && conns_[slot].state == kStateOpen) {
      cur_ = slot;
      codec_.sendPing(*this);
      settle(slot);
    }
  }
}

// ---- Uplink -------------------------------------------------------------------------------------

bool Worker::sendUplinkOn(uint32_t slot, int64_t now) {
  Conn& c = conns_[slot];
  if (c.fd < 0 || c.state != kStateOpen || c.up_sent_ns != 0 || uplink_budget_ == 0 ||
      run_.uplink_stop.load(std::memory_order_relaxed)) {
    return false;
  }
  --uplink_budget_;
  if (uplink_budget_ == 0) {
    live.uplink_budget_done.store(true, std::memory_order_relaxed);
  }
  c.up_sent_ns = now;
  live.uplink_sent.fetch_add(1, std::memory_order_relaxed);
  const uint32_t saved = cur_;
  cur_ = slot;
  codec_.sendUplink(idOf(slot), uplink_next_k_++, *this);
  cur_ = saved;
  return true;
}

void Worker::pumpUplink(int64_t now) {
  if (uplink_budget_ == 0 || run_.uplink_stop.load(std::memory_order_relaxed)) {
    live.uplink_budget_done.store(true, std::memory_order_relaxed);
    return;
  }
  if (opt_.push_rate == 0) {
    // Closed loop: one message in flight per connection; each answer sends the next.
    if (!uplink_started_) {
      uplink_started_ = true;
      for (uint32_t slot = 0; slot < conns_.size() && uplink_budget_ > 0; ++slot) {
        sendUplinkOn(slot, now);
        settle(slot);
      }
    }
    return;
  }
  if (!uplink_started_) {
    uplink_started_ = true;
    uplink_tokens_ = 1;
  }
  const double rate = double(opt_.push_rate) / threads_;
  const double dt = uplink_last_ns_ == 0 ? 0 : double(now - uplink_last_ns_) / 1e9;
  uplink_last_ns_ = now;
  uplink_tokens_ = std::min(std::max(1.0, rate / 50), uplink_tokens_ + rate * dt);
  uint32_t scanned = 0;
  while (uplink_tokens_ >= 1 && uplink_budget_ > 0 && scanned < conns_.size()) {
    const uint32_t slot = uplink_cursor_;
    uplink_cursor_ = (uplink_cursor_ + 1) % uint32_t(conns_.size());
    ++scanned;
    if (sendUplinkOn(slot, now)) {
      uplink_tokens_ -= 1;
      settle(slot);
    }
  }
}

// ---- ClientEvents -------------------------------------------------------------------------------

void Worker::send(std::string_view bytes) {
  Conn& c = conns_[cur_];
  if (c.fd < 0 || (c.flags & kBroken) != 0) {
    return;
  }
  if ((c.flags & kPendingWrite) != 0) {
    std::string& out = pending_[cur_];
    if (out.size() + bytes.size() > kMaxPendingWrite) {
      c.flags |= kBroken;
      return;
    }
    out.append(bytes);
    return;
  }
  const ssize_t w = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (w == ssize_t(bytes.size())) {
    return;
  }
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    c.flags |= kBroken;
    return;
  }
  const size_t done = w < 0 ? 0 : size_t(w);
  pending_[cur_].assign(bytes.substr(done));
  c.flags |= kPendingWrite;
  watch(cur_, true);
}

void Worker::established() {
  Conn& c = conns_[cur_];
  const int64_t now_us = (monoNs() - run_.start_mono_ns) / 1000;
  stats.handshake.record(uint64_t(std::max<int64_t>(0, now_us - c.start_us)) * 1000);
  live.established.fetch_add(1, std::memory_order_relaxed);
  --in_handshake_;
  if (run_.uplink_go.load(std::memory_order_relaxed) && opt_.push_rate == 0 && uplink_started_) {
    sendUplinkOn(cur_, monoNs());  // late joiner of a closed-loop uplink run
  }
}

void Worker::delivery(uint64_t t_ns, uint64_t n) {
  Conn& c = conns_[cur_];
  const int64_t now = wallNs();
  const int64_t lat = now - int64_t(t_ns);
  if (lat < 0) {
    ++stats.negative_latency;
  }
  bool unique = true;
  if (opt_.scenario == Scenario::kPush) {
    if (n == 0 || n > opt_.pushes) {
      ++stats.out_of_range;
      return;
    }
    const uint64_t bit = uint64_t(1) << ((n - 1) % 64);
    const uint64_t prev = run_.seen[(n - 1) / 64].fetch_or(bit, std::memory_order_relaxed);
    unique = (prev & bit) == 0;
  } else if (opt_.scenario == Scenario::kFanout) {
    if (n == 0 || n > opt_.pushes) {
      ++stats.out_of_range;
      return;
    }
    // Room and broadcast streams are delivered in order, so a number at or below the last one
    // seen on this connection is a second copy.
    unique = n > c.last_n;
    if (unique) {
      c.last_n = uint32_t(n);
      stats.msg_count[n - 1]++;
      stats.msg_last_ns[n - 1] = std::max(stats.msg_last_ns[n - 1], now);
    }
  }
  if (!unique) {
    ++stats.duplicates;
    return;
  }
  stats.latency.record(uint64_t(std::max<int64_t>(0, lat)));
  if (stats.first_delivery_ns == 0) {
    stats.first_delivery_ns = now;
  }
  stats.last_delivery_ns = now;
  live.deliveries.fetch_add(1, std::memory_order_relaxed);
}

void Worker::uplinkReply(bool ok) {
  Conn& c = conns_[cur_];
  if (c.up_sent_ns == 0) {
    ++stats.unexpected_replies;
    return;
  }
  const int64_t now = monoNs();
  stats.uplink_latency.record(uint64_t(std::max<int64_t>(0, now - c.up_sent_ns)));
  ok ? ++stats.uplink_ok : ++stats.uplink_errors;
  c.up_sent_ns = 0;
  live.uplink_settled.fetch_add(1, std::memory_order_relaxed);
  if (opt_.push_rate == 0) {
    sendUplinkOn(cur_, now);
  }
}

void Worker::closed(std::string_view reason) { recordClose(cur_, reason); }

}  // namespace imgate::bench::load
