// SPDX-License-Identifier: Apache-2.0
#include "upstream/upstream_client.h"

#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <optional>
#include <unordered_map>
#include <utility>

#include "common/log.h"
#include "event/worker.h"
#include "upstream/http_response_parser.h"

namespace imgate::core::upstream {

namespace {

// Retry budget window, and the retries always allowed per window so a quiet group can still
// retry (Finagle's RetryBudget keeps a similar floor).
constexpr std::chrono::milliseconds kBudgetWindow{10'000};
constexpr uint64_t kMinRetriesPerWindow = 3;
constexpr size_t kReadChunk = 16 * 1024;

bool isIdempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS" || method == "TRACE";
}

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool hasCtl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool ownedHeader(std::string_view name) {
  for (std::string_view owned : {"host", "content-length", "connection", "keep-alive",
                                 "transfer-encoding", "te", "upgrade"}) {
    if (http_detail::iequals(name, owned)) {
      return true;
    }
  }
  return false;
}

std::string errnoText(int err) { return std::strerror(err); }

enum class Failure : uint8_t {
  kConnect,     // never reached the backend: always retryable
  kQueued,      // timed out waiting for a connection slot: not the backend's fault
  kTimeout,
  kClosed,      // reset or closed mid-exchange
  kBadResponse,
  kServerError, // 5xx
};

}  // namespace

struct UpstreamClient::Impl : std::enable_shared_from_this<UpstreamClient::Impl> {
  struct Exchange;
  struct Pool;

  struct Conn {
    enum class State : uint8_t { kConnecting, kBusy, kIdle, kClosed };
    Impl* impl = nullptr;
    Pool* pool = nullptr;
    int fd = -1;
    event* rev = nullptr;
    event* wev = nullptr;
    State state = State::kConnecting;
    Exchange* ex = nullptr;
    std::string out;
    size_t out_pos = 0;
    HttpResponseParser parser;
    TimerPtr idle_timer;
  };

  struct Pool {
    std::shared_ptr<BackendState> state;
    // The compiled group that used the pool last: its max_idle and idle_timeout apply to idle
    // connections. A pool serves one (group, backend) pair, so only a reload changes it.
    std::shared_ptr<const GroupConfig> group;
    std::list<Conn*> idle;  // most recently used at the back
    size_t total = 0;       // open connections of any state
    std::deque<Exchange*> waiting;
  };

  struct GroupState {
    size_t pending = 0;
    const GroupConfig* seen = nullptr;  // the rr state belongs to this compiled group
    SmoothRoundRobin rr;
    size_t lif_start = 0;
    std::chrono::steady_clock::time_point window_start{};
    uint64_t window_requests = 0;
    uint64_t window_retries = 0;
  };

  struct Exchange {
    std::shared_ptr<const GroupConfig> group;
    UpstreamRequest req;
    UpstreamCallback done;
    bool probe = false;
    size_t probe_index = 0;
    bool idempotent = false;
    bool counted = false;  // counted in GroupState::pending
    std::vector<bool> tried;
    uint32_t attempts = 0;
    // Current attempt.
    int backend = -1;
    Conn* conn = nullptr;
    bool queued = false;
    bool written = false;
    TimerPtr timer;
    std::chrono::steady_clock::time_point started{};
    // What to return when no further attempt is possible.
    std::optional<Error> last_error;
    std::optional<UpstreamResponse> last_5xx;
  };

  explicit Impl(EventLoop& l) : loop(l) {}

  EventLoop& loop;
  bool closing = false;
  bool sweep_posted = false;
  uint64_t opened = 0;
  std::unordered_map<Exchange*, std::unique_ptr<Exchange>> exchanges;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns;
  std::unordered_map<BackendState*, std::unique_ptr<Pool>> pools;
  std::unordered_map<std::string, GroupState> groups;
  std::vector<std::unique_ptr<Conn>> graveyard;

  // ---- Exchanges ---------------------------------------------------------------------------

  void submit(const GroupConfig& group, UpstreamRequest req, UpstreamCallback done, bool probe,
              size_t index) {
    if (closing) {
      loop.post([done = std::move(done)] {
        done(fail(Errc::kShutdown, "upstream client closed"));
      });
      return;
    }
    std::shared_ptr<const GroupConfig> owner = group.weak_from_this().lock();
    if (owner == nullptr) {
      loop.post([done = std::move(done)] {
        done(fail(Errc::kInternal, "upstream group is not owned by a shared_ptr"));
      });
      return;
    }
    auto ex = std::make_unique<Exchange>();
    ex->group = std::move(owner);
    ex->req = std::move(req);
    ex->done = std::move(done);
    ex->probe = probe;
    ex->probe_index = index;
    ex->idempotent = isIdempotent(ex->req.method);
    ex->tried.assign(group.backends.size(), false);
    Exchange* raw = ex.get();
    exchanges.emplace(raw, std::move(ex));
    std::weak_ptr<Impl> weak = weak_from_this();
    loop.post([weak, raw] {
      if (auto self = weak.lock()) {
        self->start(raw);
      }
    });
  }

  GroupState& groupState(const GroupConfig& group) {
    GroupState& gs = groups[group.name];
    if (gs.seen != &group) {
      gs.seen = &group;
      gs.rr = SmoothRoundRobin();
    }
    return gs;
  }

  void start(Exchange* ex) {
    if (exchanges.count(ex) == 0) {
      return;
    }
    const GroupConfig& g = *ex->group;
    if (ex->probe && ex->probe_index >= g.backends.size()) {
      finish(ex, fail(Errc::kInternal, "probe of a backend index out of range"));
      return;
    }
    if (!isToken(ex->req.method) || ex->req.path.empty() ||
        (ex->req.path.front() != '/' && ex->req.path != "*") ||
        ex->req.path.find_first_of(" \t\r\n") != std::string::npos) {
      finish(ex, fail(Errc::kBadRequest, "bad upstream request method or path"));
      return;
    }
    for (const auto& h : ex->req.headers) {
      if (!isToken(h.name) || hasCtl(h.value)) {
        finish(ex, fail(Errc::kBadRequest, "bad upstream request header \"" + h.name + "\""));
        return;
      }
    }
    if (!ex->probe) {
      GroupState& gs = groupState(g);
      if (gs.pending >= g.max_pending) {
        finish(ex, fail(Errc::kUnavailable,
                        "circuit open: " + std::to_string(gs.pending) + " pending"));
        return;
      }
      ++gs.pending;
      ex->counted = true;
      rollWindow(gs);
      ++gs.window_requests;
    }
    attempt(ex);
  }

  void rollWindow(GroupState& gs) {
    const auto now = loop.now();
    if (now - gs.window_start >= kBudgetWindow) {
      gs.window_start = now;
      gs.window_requests = 0;
      gs.window_retries = 0;
    }
  }

  int choose(Exchange* ex) {
    const GroupConfig& g = *ex->group;
    if (ex->probe) {
      return ex->tried[ex->probe_index] ? -1 : static_cast<int>(ex->probe_index);
    }
    const int64_t now = steadyMs();
    std::vector<bool> eligible(g.backends.size());
    bool any = false;
    for (size_t i = 0; i < g.backends.size(); ++i) {
      eligible[i] = !ex->tried[i] && g.backends[i].state->available(now);
      any = any || eligible[i];
    }
    if (!any) {
      return -1;
    }
    GroupState& gs = groupState(g);
    switch (g.policy) {
      case Policy::kConsistentHash:
        if (!ex->req.hash_key.empty()) {
          return g.ring.pick(ex->req.hash_key, eligible);
        }
        return gs.rr.pick(g.weights, eligible);
      case Policy::kLeastInFlight: {
        std::vector<int64_t> in_flight(g.backends.size());
        for (size_t i = 0; i < g.backends.size(); ++i) {
          in_flight[i] = g.backends[i].state->in_flight.load(std::memory_order_relaxed);
        }
        return pickLeastInFlight(g.weights, in_flight, eligible, gs.lif_start++);
      }
      case Policy::kRoundRobin:
        break;
    }
    return gs.rr.pick(g.weights, eligible);
  }

  void attempt(Exchange* ex) {
    const GroupConfig& g = *ex->group;
    const int index = choose(ex);
    if (index < 0) {
      if (ex->last_5xx) {
        finish(ex, std::move(*ex->last_5xx));
      } else if (ex->last_error) {
        finish(ex, tl::unexpected<Error>(std::move(*ex->last_error)));
      } else {
        finish(ex, fail(Errc::kUnavailable, "no healthy backend in group " + g.name));
      }
      return;
    }
    const BackendConfig& b = g.backends[static_cast<size_t>(index)];
    ex->tried[static_cast<size_t>(index)] = true;
    ++ex->attempts;
    ex->backend = index;
    ex->written = false;
    ex->started = loop.now();
    if (!ex->probe) {
      b.state->requests.fetch_add(1, std::memory_order_relaxed);
      b.state->in_flight.fetch_add(1, std::memory_order_relaxed);
      if (ex->attempts > 1) {
        b.state->retries.fetch_add(1, std::memory_order_relaxed);
      }
    }
    const auto timeout = ex->req.timeout.count() > 0 ? ex->req.timeout : g.timeout;
    ex->timer = loop.schedule(timeout, [this, ex, timeout] { onAttemptTimeout(ex, timeout); });

    Pool& pool = poolFor(b, ex->group);
    if (!pool.idle.empty()) {
      Conn* conn = pool.idle.back();
      pool.idle.pop_back();
      bindAndSend(conn, ex);
      return;
    }
    if (pool.total < g.max_connections) {
      openFor(pool, b, g, ex);
      return;
    }
    ex->queued = true;
    pool.waiting.push_back(ex);
  }

  // The attempt ended without a response the caller should get.
  void attemptFailed(Exchange* ex, Failure kind, Error err) {
    ex->timer.reset();
    const GroupConfig& g = *ex->group;
    const BackendConfig& b = g.backends[static_cast<size_t>(ex->backend)];
    if (!ex->probe) {
      b.state->in_flight.fetch_sub(1, std::memory_order_relaxed);
      if (kind != Failure::kQueued) {
        countFailure(g, b);
      }
    }
    ex->last_error = std::move(err);
    ex->last_5xx.reset();
    if (mayRetry(ex, kind)) {
      attempt(ex);
      return;
    }
    finish(ex, tl::unexpected<Error>(std::move(*ex->last_error)));
  }

  static void countFailure(const GroupConfig& g, const BackendConfig& b) {
    if (b.state->recordFailure(steadyMs(), g.passive.consecutive_failures,
                               g.passive.ejection_time)) {
      LOG_WARN("upstream ", g.name, " backend ", b.address, " ejected for ",
               g.passive.ejection_time.count(), "ms after ", g.passive.consecutive_failures,
               " failures in a row");
    }
  }

  bool mayRetry(Exchange* ex, Failure kind) {
    const GroupConfig& g = *ex->group;
    if (ex->probe || ex->attempts > g.retries) {
      return false;
    }
    const bool safe = kind == Failure::kConnect || kind == Failure::kQueued || !ex->written ||
                      ex->idempotent;
    if (!safe) {
      return false;
    }
    GroupState& gs = groupState(g);
    rollWindow(gs);
    const uint64_t allowed =
        std::max(kMinRetriesPerWindow, gs.window_requests * g.retry_budget / 100);
    if (gs.window_retries >= allowed) {
      return false;
    }
    ++gs.window_retries;
    return true;
  }

  void onResponse(Exchange* ex, ParsedResponse parsed) {
    ex->timer.reset();
    const GroupConfig& g = *ex->group;
    const BackendConfig& b = g.backends[static_cast<size_t>(ex->backend)];
    UpstreamResponse resp{parsed.status, std::move(parsed.headers), std::move(parsed.body),
                          b.address};
    if (ex->probe) {
      finish(ex, std::move(resp));
      return;
    }
    b.state->in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (resp.status >= 500) {
      countFailure(g, b);
      if (mayRetry(ex, Failure::kServerError)) {
        ex->last_error.reset();
        ex->last_5xx = std::move(resp);
        attempt(ex);
        return;
      }
      finish(ex, std::move(resp));
      return;
    }
    b.state->recordSuccess(
        std::chrono::duration_cast<std::chrono::microseconds>(loop.now() - ex->started));
    finish(ex, std::move(resp));
  }

  void onAttemptTimeout(Exchange* ex, std::chrono::milliseconds timeout) {
    const GroupConfig& g = *ex->group;
    const BackendConfig& b = g.backends[static_cast<size_t>(ex->backend)];
    Error err{Errc::kTimeout, "upstream " + g.name + " backend " + b.address + ": no response in " +
                                  std::to_string(timeout.count()) + "ms"};
    Failure kind = Failure::kTimeout;
    if (ex->queued) {
      Pool& pool = poolFor(b);
      pool.waiting.erase(std::find(pool.waiting.begin(), pool.waiting.end(), ex));
      ex->queued = false;
      kind = Failure::kQueued;
    } else if (Conn* conn = ex->conn) {
      unbind(conn);
      if (conn->state == Conn::State::kConnecting) {
        kind = Failure::kConnect;  // the connection goes on and may serve someone else
      } else {
        closeConn(conn);  // its answer would arrive for nobody
      }
    }
    attemptFailed(ex, kind, std::move(err));
  }

  void finish(Exchange* ex, Result<UpstreamResponse> result) {
    auto it = exchanges.find(ex);
    if (it == exchanges.end()) {
      return;
    }
    std::unique_ptr<Exchange> owned = std::move(it->second);
    exchanges.erase(it);
    if (owned->counted) {
      auto gs = groups.find(owned->group->name);
      if (gs != groups.end() && gs->second.pending > 0) {
        --gs->second.pending;
      }
    }
    UpstreamCallback done = std::move(owned->done);
    owned.reset();
    done(std::move(result));
  }

  // ---- Connections -------------------------------------------------------------------------

  Pool& poolFor(const BackendConfig& b) {
    auto& slot = pools[b.state.get()];
    if (!slot) {
      slot = std::make_unique<Pool>();
      slot->state = b.state;
    }
    return *slot;
  }

  Pool& poolFor(const BackendConfig& b, const std::shared_ptr<const GroupConfig>& g) {
    Pool& pool = poolFor(b);
    if (pool.group != g) {
      pool.group = g;
    }
    return pool;
  }

  void openFor(Pool& pool, const BackendConfig& b, const GroupConfig& g, Exchange* ex) {
    const int fd = ::socket(b.sockaddr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      attemptFailed(ex, Failure::kConnect,
                    Error{Errc::kUnavailable, "socket() failed: " + errnoText(errno)});
      return;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&b.sockaddr), b.sockaddr_len);
    if (rc != 0 && errno != EINPROGRESS) {
      const int err = errno;
      ::close(fd);
      attemptFailed(ex, Failure::kConnect,
                    Error{Errc::kUnavailable, "connect to " + b.address + " (group " + g.name +
                                                  ") failed: " + errnoText(err)});
      return;
    }
    auto owned = std::make_unique<Conn>();
    Conn* conn = owned.get();
    conn->impl = this;
    conn->pool = &pool;
    conn->fd = fd;
    conn->rev = event_new(loop.base(), fd, EV_READ | EV_PERSIST, &Impl::onReadable, conn);
    conn->wev = event_new(loop.base(), fd, EV_WRITE, &Impl::onWritable, conn);
    conns.emplace(conn, std::move(owned));
    ++pool.total;
    ++opened;
    conn->ex = ex;
    ex->conn = conn;
    if (rc == 0) {
      connected(conn);
      return;
    }
    timeval tv{static_cast<time_t>(g.connect_timeout.count() / 1000),
               static_cast<suseconds_t>((g.connect_timeout.count() % 1000) * 1000)};
    event_add(conn->wev, &tv);
  }

  void connected(Conn* conn) {
    event_add(conn->rev, nullptr);
    if (conn->ex != nullptr) {
      conn->state = Conn::State::kBusy;
      send(conn);
      return;
    }
    conn->state = Conn::State::kIdle;  // its exchange gave up; serve the queue or idle
    release(conn);
  }

  void bindAndSend(Conn* conn, Exchange* ex) {
    conn->idle_timer.reset();
    conn->state = Conn::State::kBusy;
    conn->ex = ex;
    ex->conn = conn;
    ex->queued = false;
    send(conn);
  }

  void unbind(Conn* conn) {
    if (conn->ex != nullptr) {
      conn->ex->conn = nullptr;
      conn->ex = nullptr;
    }
  }

  void send(Conn* conn) {
    Exchange* ex = conn->ex;
    const GroupConfig& g = *ex->group;
    const BackendConfig& b = g.backends[static_cast<size_t>(ex->backend)];
    const UpstreamRequest& r = ex->req;
    std::string& out = conn->out;
    out.clear();
    out.reserve(256 + r.body.size());
    out.append(r.method).append(" ").append(r.path).append(" HTTP/1.1\r\nHost: ");
    out.append(g.host_header.empty() ? b.address : g.host_header).append("\r\n");
    for (const auto& h : r.headers) {
      if (!ownedHeader(h.name)) {
        out.append(h.name).append(": ").append(h.value).append("\r\n");
      }
    }
    const bool bodyless_method = r.method == "GET" || r.method == "HEAD" || r.method == "DELETE" ||
                                 r.method == "OPTIONS" || r.method == "TRACE";
    if (!r.body.empty() || !bodyless_method) {
      out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
    }
    out.append("Connection: keep-alive\r\n\r\n").append(r.body);
    conn->out_pos = 0;
    ResponseLimits limits;
    limits.max_body = g.max_response;
    conn->parser = HttpResponseParser(limits);
    conn->parser.expectNoBody(r.method == "HEAD");
    flush(conn);
  }

  void flush(Conn* conn) {
    while (conn->out_pos < conn->out.size()) {
      const ssize_t n = ::send(conn->fd, conn->out.data() + conn->out_pos,
                               conn->out.size() - conn->out_pos, MSG_NOSIGNAL);
      if (n > 0) {
        conn->out_pos += static_cast<size_t>(n);
        if (conn->ex != nullptr) {
          conn->ex->written = true;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        event_add(conn->wev, nullptr);
        return;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      connFailed(conn, Failure::kClosed, Errc::kUnavailable, "write failed: " + errnoText(errno));
      return;
    }
    conn->out.clear();
    conn->out_pos = 0;
  }

  static void onWritable(evutil_socket_t, short what, void* arg) {
    auto* conn = static_cast<Conn*>(arg);
    Impl* self = conn->impl;
    if (conn->state == Conn::State::kConnecting) {
      if ((what & EV_TIMEOUT) != 0) {
        self->connFailed(conn, Failure::kConnect, Errc::kUnavailable, "connect timeout");
        return;
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
      if (err != 0) {
        self->connFailed(conn, Failure::kConnect, Errc::kUnavailable,
                         "connect failed: " + errnoText(err));
        return;
      }
      self->connected(conn);
      return;
    }
    if (conn->state == Conn::State::kBusy) {
      self->flush(conn);
    }
  }

  static void onReadable(evutil_socket_t, short, void* arg) {
    auto* conn = static_cast<Conn*>(arg);
    conn->impl->readFrom(conn);
  }

  void readFrom(Conn* conn) {
    char buf[kReadChunk];
    const ssize_t n = ::recv(conn->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    }
    if (conn->state != Conn::State::kBusy || conn->ex == nullptr) {
      // Idle (or abandoned) connection: EOF, an error or unsolicited bytes all end it.
      closeConn(conn);
      return;
    }
    if (n <= 0) {
      const int err = errno;
      auto st = n == 0 ? conn->parser.finish()
                       : Status(fail(Errc::kUnavailable, "read failed: " + errnoText(err)));
      if (st && conn->parser.complete()) {
        deliver(conn, false);
        return;
      }
      const bool nothing = !conn->parser.started();
      connFailed(conn, nothing ? Failure::kClosed : Failure::kBadResponse,
                 nothing ? Errc::kUnavailable : Errc::kInternal,
                 n == 0 && nothing ? "backend closed the connection" : st.error().message);
      return;
    }
    const std::string_view data(buf, static_cast<size_t>(n));
    auto consumed = conn->parser.feed(data);
    if (!consumed) {
      connFailed(conn, Failure::kBadResponse, Errc::kInternal,
                 "bad response: " + consumed.error().message);
      return;
    }
    if (conn->parser.complete()) {
      // Bytes after the response were not asked for: the connection cannot be trusted again.
      deliver(conn, *consumed == data.size());
    }
  }

  void deliver(Conn* conn, bool reusable) {
    ParsedResponse parsed = conn->parser.take();
    Exchange* ex = conn->ex;
    unbind(conn);
    if (reusable && parsed.keep_alive && conn->out_pos == 0 && conn->out.empty()) {
      release(conn);
    } else {
      closeConn(conn);
    }
    onResponse(ex, std::move(parsed));
  }

  // A connection that is free again: hand it to the first queued exchange, keep it idle, or
  // close it when the pool already keeps max_idle idle connections.
  void release(Conn* conn) {
    Pool& pool = *conn->pool;
    if (!pool.waiting.empty()) {
      Exchange* next = pool.waiting.front();
      pool.waiting.pop_front();
      bindAndSend(conn, next);
      return;
    }
    const GroupConfig* g = pool.group.get();
    if (g == nullptr || pool.idle.size() >= g->max_idle || closing) {
      closeConn(conn);
      return;
    }
    conn->state = Conn::State::kIdle;
    pool.idle.push_back(conn);
    const auto idle_timeout = g->idle_timeout;
    conn->idle_timer = loop.schedule(idle_timeout, [this, conn] { closeConn(conn); });
  }

  void connFailed(Conn* conn, Failure kind, Errc code, const std::string& why) {
    Exchange* ex = conn->ex;
    unbind(conn);
    const std::string address = conn->pool->state->address;
    closeConn(conn);
    if (ex != nullptr) {
      attemptFailed(ex, kind, Error{code, "upstream " + ex->group->name + " backend " + address +
                                              ": " + why});
    }
  }

  void closeConn(Conn* conn) {
    if (conn->state == Conn::State::kClosed) {
      return;
    }
    Pool& pool = *conn->pool;
    if (conn->state == Conn::State::kIdle) {
      pool.idle.remove(conn);
    }
    conn->state = Conn::State::kClosed;
    conn->idle_timer.reset();
    event_free(conn->rev);
    event_free(conn->wev);
    conn->rev = nullptr;
    conn->wev = nullptr;
    ::close(conn->fd);
    conn->fd = -1;
    --pool.total;
    auto it = conns.find(conn);
    if (it != conns.end()) {
      graveyard.push_back(std::move(it->second));
      conns.erase(it);
    }
    scheduleSweep();
    // A slot opened: start a connection for the first queued exchange.
    if (!closing && !pool.waiting.empty()) {
      Exchange* next = pool.waiting.front();
      pool.waiting.pop_front();
      next->queued = false;
      const GroupConfig& g = *next->group;
      openFor(pool, g.backends[static_cast<size_t>(next->backend)], g, next);
    }
  }

  void scheduleSweep() {
    if (sweep_posted) {
      return;
    }
    sweep_posted = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    loop.post([weak] {
      if (auto self = weak.lock()) {
        self->sweep_posted = false;
        self->graveyard.clear();
        for (auto it = self->pools.begin(); it != self->pools.end();) {
          const Pool& p = *it->second;
          it = p.total == 0 && p.waiting.empty() ? self->pools.erase(it) : std::next(it);
        }
      }
    });
  }

  void shutdown() {
    closing = true;
    std::vector<Exchange*> pending;
    for (auto& [raw, owned] : exchanges) {
      pending.push_back(raw);
    }
    for (auto& [state, pool] : pools) {
      pool->waiting.clear();
    }
    std::vector<Conn*> open;
    for (auto& [raw, owned] : conns) {
      open.push_back(raw);
    }
    for (Conn* conn : open) {
      unbind(conn);
      closeConn(conn);
    }
    for (Exchange* ex : pending) {
      // An attempt holds its backend's in_flight while its timer is armed.
      if (!ex->probe && ex->timer != nullptr) {
        ex->group->backends[static_cast<size_t>(ex->backend)].state->in_flight.fetch_sub(
            1, std::memory_order_relaxed);
      }
      ex->timer.reset();
      finish(ex, fail(Errc::kShutdown, "upstream client closed"));
    }
    graveyard.clear();
  }
};

UpstreamClient::UpstreamClient(EventLoop& loop) : impl_(std::make_shared<Impl>(loop)) {}

UpstreamClient::~UpstreamClient() { impl_->shutdown(); }

void UpstreamClient::call(const GroupConfig& group, UpstreamRequest req, UpstreamCallback done) {
  impl_->submit(group, std::move(req), std::move(done), false, 0);
}

void UpstreamClient::call(const UpstreamSet* set, std::string_view group, UpstreamRequest req,
                          UpstreamCallback done) {
  std::shared_ptr<const GroupConfig> g = set != nullptr ? set->find(group) : nullptr;
  if (g == nullptr) {
    impl_->loop.post([done = std::move(done), name = std::string(group)] {
      done(fail(Errc::kUnavailable, "no upstream group named \"" + name + "\""));
    });
    return;
  }
  impl_->submit(*g, std::move(req), std::move(done), false, 0);
}

void UpstreamClient::probe(const GroupConfig& group, size_t index, UpstreamRequest req,
                           UpstreamCallback done) {
  impl_->submit(group, std::move(req), std::move(done), true, index);
}

size_t UpstreamClient::openConnections() const { return impl_->conns.size(); }

size_t UpstreamClient::idleConnections() const {
  size_t n = 0;
  for (const auto& [state, pool] : impl_->pools) {
    n += pool->idle.size();
  }
  return n;
}

uint64_t UpstreamClient::connectionsOpened() const { return impl_->opened; }

size_t UpstreamClient::pending(std::string_view group) const {
  auto it = impl_->groups.find(std::string(group));
  return it != impl_->groups.end() ? it->second.pending : 0;
}

}  // namespace imgate::core::upstream
