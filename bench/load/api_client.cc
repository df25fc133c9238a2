// SPDX-License-Identifier: Apache-2.0
#include "api_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "wire.h"

namespace imgate::bench::load {

namespace {

constexpr size_t kMaxAnswerHead = 16 * 1024;
constexpr size_t kMaxAnswerBody = 16u << 20;
constexpr uint32_t kMaxReconnects = 20;

// Entries of the string array "key":[...] in a JSON answer (ids hold no quotes or escapes).
uint64_t countEntries(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":[";
  size_t pos = body.find(needle);
  if (pos == std::string_view::npos) {
    return 0;
  }
  pos += needle.size();
  const size_t end = body.find(']', pos);
  if (end == std::string_view::npos) {
    return 0;
  }
  const std::string_view list = body.substr(pos, end - pos);
  return uint64_t(std::count(list.begin(), list.end(), '"')) / 2;
}

}  // namespace

ApiClient::ApiClient(RunState& run, uint32_t users)
    : run_(run), opt_(run.options), users_(std::max<uint32_t>(1, users)) {
  // Room and broadcast streams keep their order only when one connection carries the pushes;
  // the fanout duplicate count relies on it.
  const uint32_t n = opt_.scenario == Scenario::kFanout ? 1 : opt_.api_conns;
  conns_.resize(n);
  if (opt_.scenario == Scenario::kFanout) {
    stats.publish_ns.assign(size_t(opt_.pushes), 0);
    stats.recipients.assign(size_t(opt_.pushes), 0);
    // Nchan subscribers name their room in the subscribe URL: there is nothing to join.
    if (!opt_.broadcast && opt_.publisher == Publisher::kImgate) {
      join_batches_ = (users_ + opt_.max_targets - 1) / opt_.max_targets;
    }
  }
}

ApiClient::~ApiClient() {
  join();
  for (Conn& c : conns_) {
    if (c.fd >= 0) {
      ::close(c.fd);
    }
  }
  if (epfd_ >= 0) {
    ::close(epfd_);
  }
}

void ApiClient::start(int64_t send_window_ns) {
  send_deadline_ns_ = send_window_ns;  // relative until the joins are done
  thread_ = std::thread([this] { loop(); });
}

void ApiClient::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool ApiClient::open(Conn& c) {
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    stats.errors["api_socket"]++;
    return false;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(opt_.api.port);
  inet_pton(AF_INET, opt_.api.host.c_str(), &dst.sin_addr);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) != 0 &&
      errno != EINPROGRESS) {
    ::close(c.fd);
    c.fd = -1;
    stats.errors["api_connect_failed"]++;
    return false;
  }
  c.connecting = true;
  c.armed_out = true;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = uint64_t(&c - conns_.data());
  epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
  return true;
}

void ApiClient::closeConn(Conn& c, const std::string& reason) {
  stats.errors[reason]++;
  if (c.fd >= 0) {
    ::close(c.fd);
    c.fd = -1;
  }
  for (const Inflight& f : c.inflight) {
    if (f.kind == Kind::kPush) {
      ++stats.unanswered;
      answered.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++stats.join_failed;
      ++joins_answered_;
    }
  }
  c.inflight.clear();
  c.in.clear();
  c.out.clear();
  c.connecting = false;
}

void ApiClient::appendRequest(std::string& out, std::string_view path, std::string_view body) {
  out.append("POST ");
  out.append(path);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(opt_.api.text());
  out.append("\r\nAuthorization: Bearer ");
  out.append(opt_.api_key);
  out.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\n\r\n");
  out.append(body);
}

void ApiClient::fill(Conn& c, int64_t now) {
  const uint32_t depth = opt_.pipeline;
  while (c.inflight.size() < depth) {
    if (next_join_ < join_batches_) {
      const uint64_t first = next_join_ * opt_.max_targets;
      const uint64_t last = std::min<uint64_t>(users_, first + opt_.max_targets);
      body_ = "{\"users\":[";
      for (uint64_t u = first; u < last; ++u) {
        if (u != first) {
          body_.push_back(',');
        }
        body_.push_back('"');
        body_.append(opt_.users_prefix);
        body_.append(std::to_string(u));
        body_.push_back('"');
      }
      body_.append("]}");
      appendRequest(c.out, "/v1/rooms/" + opt_.room + "/members", body_);
      c.inflight.push_back({Kind::kJoin, next_join_, now});
      ++next_join_;
      ++stats.join_requests;
      continue;
    }
    if (!joins_done.load(std::memory_order_relaxed)) {
      return;
    }
    if (next_push_ > opt_.pushes || now >= send_deadline_ns_) {
      return;
    }
    if (opt_.push_rate != 0) {
      if (tokens_ < 1) {
        return;
      }
      tokens_ -= 1;
    }
    const uint64_t n = next_push_++;
    const int64_t t = wallNs();
    if (opt_.publisher == Publisher::kNchan) {
      std::string channel;
      if (opt_.scenario == Scenario::kPush) {
        channel = nchanUserChannel(opt_.users_prefix + std::to_string((n - 1) % users_));
      } else if (opt_.broadcast) {
        channel = kNchanBroadcastChannel;
      } else {
        channel = nchanRoomChannel(opt_.room);
      }
      appendNchanPublish(c.out, opt_.api.text(), opt_.nchan_pub_path, channel,
                         makePayload(uint64_t(t), n, opt_.payload_bytes));
    } else {
      body_ = "{\"to\":";
      if (opt_.scenario == Scenario::kPush) {
        body_.append("{\"users\":[\"");
        body_.append(opt_.users_prefix);
        body_.append(std::to_string((n - 1) % users_));
        body_.append("\"]}");
      } else if (opt_.broadcast) {
        body_.append("\"all\"");
      } else {
        body_.append("{\"room\":\"");
        body_.append(opt_.room);
        body_.append("\"}");
      }
      body_.append(",\"event\":\"bench\",\"data\":");
      body_.append(makePayload(uint64_t(t), n, opt_.payload_bytes));
      body_.push_back('}');
      appendRequest(c.out, "/v1/push", body_);
    }
    c.inflight.push_back({Kind::kPush, n, now});
    ++stats.sent;
    if (stats.first_send_ns == 0) {
      stats.first_send_ns = now;
    }
    if (!stats.publish_ns.empty()) {
      stats.publish_ns[n - 1] = t;
    }
  }
}

void ApiClient::flush(Conn& c) {
  if (c.fd < 0 || c.connecting) {
    return;
  }
  if (!c.out.empty()) {
    const ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        closeConn(c, "api_write_error");
      }
      return;
    }
    c.out.erase(0, size_t(w));
  }
  const bool want_out = !c.out.empty();
  if (want_out != c.armed_out) {
    epoll_event ev{};
    ev.events = EPOLLIN | (want_out ? uint32_t(EPOLLOUT) : 0u);
    ev.data.u64 = uint64_t(&c - conns_.data());
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
    c.armed_out = want_out;
  }
}

void ApiClient::readable(Conn& c) {
  char buf[65536];
  while (c.fd >= 0) {
    const ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
    if (r == 0) {
      closeConn(c, "api_closed_by_server");
      return;
    }
    if (r < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        closeConn(c, "api_read_error");
      }
      break;
    }
    c.in.append(buf, size_t(r));
    if (size_t(r) < sizeof(buf)) {
      break;
    }
  }
  const int64_t now = monoNs();
  size_t off = 0;
  while (c.fd >= 0) {
    HttpAnswer answer;
    const Parse p =
        parseHttpAnswer(std::string_view(c.in).substr(off), kMaxAnswerHead, kMaxAnswerBody, answer);
    if (p == Parse::kNeedMore) {
      break;
    }
    if (p == Parse::kError) {
      closeConn(c, "api_bad_answer");
      return;
    }
    onAnswer(c, answer.status, answer.body, now);
    off += answer.size;
  }
  if (c.fd >= 0) {
    c.in.erase(0, off);
  }
}

void ApiClient::onAnswer(Conn& c, int status, std::string_view body, int64_t now) {
  if (c.inflight.empty()) {
    stats.errors["api_unexpected_answer"]++;
    return;
  }
  const Inflight f = c.inflight.front();
  c.inflight.pop_front();
  stats.statuses[status]++;
  const bool ok = status >= 200 && status < 300;
  if (!ok && stats.first_error.empty()) {
    stats.first_error = std::to_string(status) + " " + std::string(body.substr(0, 300));
  }
  if (f.kind == Kind::kJoin) {
    if (ok) {
      stats.joined += countEntries(body, "joined");
      stats.join_offline += countEntries(body, "offline");
    } else {
      ++stats.join_failed;
    }
    ++joins_answered_;
    return;
  }
  stats.response_latency.record(uint64_t(std::max<int64_t>(0, now - f.sent_ns)));
  stats.last_answer_ns = now;
  if (ok) {
    ++stats.accepted;
    uint64_t sessions = 0;
    uint64_t dropped = 0;
    if (opt_.publisher == Publisher::kNchan) {
      // 201 (delivered to subscribers) and 202 (only queued) both count as accepted.
      sessions = nchanSubscribers(body).value_or(0);
    } else {
      scanU64(body, "sessions", sessions);
      scanU64(body, "dropped", dropped);
    }
    stats.sessions += sessions;
    stats.dropped += dropped;
    if (!stats.recipients.empty()) {
      stats.recipients[f.n - 1] = uint32_t(sessions);
    }
    expected_deliveries.fetch_add(sessions, std::memory_order_relaxed);
  }
  answered.fetch_add(1, std::memory_order_relaxed);
}

void ApiClient::loop() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  join_start_ns_ = monoNs();
  const int64_t window = send_deadline_ns_;
  if (join_batches_ == 0) {
    joins_done.store(true);
    send_deadline_ns_ = join_start_ns_ + window;
  }
  for (Conn& c : conns_) {
    open(c);
  }
  const double rate = double(opt_.push_rate);
  const double burst = std::max(1.0, rate / 50);
  last_tick_ns_ = monoNs();
  epoll_event events[64];
  while (!run_.stop.load(std::memory_order_relaxed)) {
    const int64_t now = monoNs();
    tokens_ = std::min(burst, tokens_ + rate * double(now - last_tick_ns_) / 1e9);
    last_tick_ns_ = now;
    if (!joins_done.load(std::memory_order_relaxed) && joins_answered_ >= join_batches_) {
      if (joins_answered_at_ == 0) {
        joins_answered_at_ = now;
        stats.join_seconds = double(now - join_start_ns_) / 1e9;
      }
      if (now - joins_answered_at_ >= int64_t(opt_.after_join_s * 1e9)) {
        send_deadline_ns_ = now + window;
        joins_done.store(true);
      }
    }
    const bool more_work = next_join_ < join_batches_ ||
                           !joins_done.load(std::memory_order_relaxed) ||
                           (next_push_ <= opt_.pushes && now < send_deadline_ns_);
    bool any_inflight = false;
    for (Conn& c : conns_) {
      if (c.fd < 0 && more_work && reconnects_ < kMaxReconnects) {
        if (open(c)) {
          ++reconnects_;
        }
      }
      if (c.fd >= 0 && !c.connecting) {
        fill(c, now);
        flush(c);
      }
      any_inflight = any_inflight || !c.inflight.empty();
    }
    const bool can_work =
        std::any_of(conns_.begin(), conns_.end(), [](const Conn& c) { return c.fd >= 0; });
    if ((!more_work || !can_work) && !any_inflight) {
      break;
    }
    const int n = epoll_wait(epfd_, events, 64, 1);
    for (int i = 0; i < n; ++i) {
      Conn& c = conns_[events[i].data.u64];
      if (c.fd < 0) {
        continue;
      }
      if (c.connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          closeConn(c, "api_connect_failed");
          continue;
        }
        c.connecting = false;
        flush(c);
        continue;
      }
      if ((events[i].events & EPOLLOUT) != 0) {
        flush(c);
      }
      if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
        readable(c);
      }
    }
  }
  for (Conn& c : conns_) {
    for (const Inflight& f : c.inflight) {
      if (f.kind == Kind::kPush) {
        ++stats.unanswered;
      }
    }
    c.inflight.clear();
  }
  joins_done.store(true);
  done.store(true);
}

}  // namespace imgate::bench::load
