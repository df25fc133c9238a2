// SPDX-License-Identifier: Apache-2.0
#include "net/connection.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <rapidjson/document.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "event/worker.h"
#include "hub/local_hub.h"
#include "hub/registry.h"
#include "module/library_scope.h"
#include "net/admission.h"

namespace imgate::core {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr const char* kDefaultApp = "default";
constexpr int kMaxReadsPerEvent = 16;

CoreCounters& counters() { return StatsRegistry::instance().core(); }

char* scratch() {
  thread_local std::unique_ptr<char[]> buf(new char[kReadChunk]);
  return buf.get();
}

std::string httpDate() {
  thread_local time_t cached_second = 0;
  thread_local char cached[40] = {0};
  const time_t now = time(nullptr);
  if (now != cached_second) {
    tm t;
    gmtime_r(&now, &t);
    strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &t);
    cached_second = now;
  }
  return cached;
}

class HttpExchangeImpl final : public HttpExchange,
                               public std::enable_shared_from_this<HttpExchangeImpl> {
 public:
  HttpExchangeImpl(HandleRef handle, HttpRequest request,
                   std::string location, Worker& worker, uint64_t pipelined_id = 0)
      : handle_(std::move(handle)), request_(std::move(request)), location_(std::move(location)),
        worker_(worker), pipelined_id_(pipelined_id) {}
  const HttpRequest& request() const override { return request_; }
  std::string_view location() const override { return location_; }
  void respond(HttpResponse response) override {
    if (done_) {
      return;
    }
    done_ = true;
    if (handle_->connection == nullptr) {
      return;
    }
    if (pipelined_id_ != 0) {
      handle_->connection->exchangeAnswer(pipelined_id_, std::move(response));
    } else {
      handle_->connection->exchangeRespond(std::move(response));
    }
  }
  void upgrade(CodecPtr codec, HttpResponse accept, std::vector<std::string> subprotocols) override {
    if (done_ || refuseTakeover("upgrade")) {
      return;
    }
    done_ = true;
    if (handle_->connection != nullptr) {
      handle_->connection->exchangeUpgrade(std::move(codec), std::move(accept),
                                           std::move(subprotocols), std::move(request_));
    }
  }
  bool alive() const override {
    return handle_->connection != nullptr && !handle_->connection->closing();
  }
  Hub& hub() override { return worker_.registry(); }
  Dispatcher& dispatcher() override { return worker_; }
  HttpRequest& mutableRequest() { return request_; }

  void detach(std::string key, CodecPtr codec, HttpResponse accept) override {
    if (done_ || refuseTakeover("detach")) {
      return;
    }
    done_ = true;
    if (handle_->connection != nullptr) {
      handle_->connection->exchangeDetach(std::move(key), std::move(codec), std::move(accept),
                                          std::move(request_));
    }
  }

  void poll(std::string_view key, std::chrono::milliseconds max_wait,
            DetachedCallback done) override {
    std::shared_ptr<HttpExchangeImpl> self = shared_from_this();
    Worker& here = worker_;
    std::string k(key);
    // Runs on the session's worker: back to this exchange's worker. Bytes for a client that has
    // gone would be lost: the session closes, as Engine.IO servers close it when a poll aborts.
    DetachedCallback reply = [self, &here, k, done = module::pinned(std::move(done))](
                                 DetachedResult result) {
      here.post([self, k, done, result = std::move(result)]() mutable {
        if (!self->alive() && result.status == DetachedResult::Status::kOk &&
            !result.bytes.empty()) {
          routeDetached(self->worker_, k, nullptr, [](Connection* c) {
            c->closeWith(Errc::kProtocolError, "poll connection closed before its answer");
          });
        }
        done(std::move(result));
      });
    };
    routeDetached(worker_, k, reply, [max_wait, reply](Connection* c) {
      c->detachedPoll(max_wait, reply);
    });
  }

  void feed(std::string_view key, std::string body, DetachedCallback done) override {
    Worker& here = worker_;
    DetachedCallback reply = [&here, done = module::pinned(std::move(done))](
                                 DetachedResult result) {
      here.post([done, result = std::move(result)]() mutable { done(std::move(result)); });
    };
    auto shared_body = std::make_shared<std::string>(std::move(body));
    routeDetached(worker_, std::string(key), reply, [shared_body, reply](Connection* c) {
      c->detachedFeed(std::move(*shared_body), reply);
    });
  }

  void attach(std::string key, CodecPtr codec, HttpResponse accept,
              HttpResponse unknown) override {
    if (done_ || refuseTakeover("attach")) {
      return;
    }
    if (!worker_.registry().detachedWorker(key)) {
      respond(std::move(unknown));
      return;
    }
    done_ = true;
    if (handle_->connection != nullptr) {
      handle_->connection->exchangeAttach(std::move(key), std::move(codec), std::move(accept));
    }
  }

  // A concurrentRequests() location promised respond() only: its connection may be carrying
  // later requests already, so it cannot become a session. A module bug, answered 500.
  bool refuseTakeover(const char* what) {
    if (pipelined_id_ == 0) {
      return false;
    }
    LOG_ERROR(location_, ": ", what, " on a location that declares concurrentRequests()");
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    respond(HttpResponse::json(
        500, R"({"error":"internal","reason":"this location cannot take over its connection"})"));
    return true;
  }

  // Runs `fn` on the worker that holds detached session `key`, or `missing` (kUnknown) there or
  // here when there is none.
  static void routeDetached(Worker& here, const std::string& key, DetachedCallback missing,
                            std::function<void(Connection*)> fn) {
    const std::optional<uint32_t> index = here.registry().detachedWorker(key);
    if (!index) {
      if (missing) {
        missing(DetachedResult{DetachedResult::Status::kUnknown, {}});
      }
      return;
    }
    Worker& owner = here.registry().worker(*index);
    owner.post([&owner, key, missing = std::move(missing), fn = std::move(fn)] {
      Connection* c = owner.findDetached(key);
      if (c == nullptr) {
        if (missing) {
          missing(DetachedResult{DetachedResult::Status::kUnknown, {}});
        }
        return;
      }
      fn(c);
    });
  }

 private:
  HandleRef handle_;
  HttpRequest request_;
  std::string location_;
  Worker& worker_;
  uint64_t pipelined_id_;
  bool done_ = false;
};

void freeBytesRef(const void*, size_t, void* extra) { delete static_cast<Bytes*>(extra); }

// Hands a request to its location's module; a handler that throws gets the client a 500.
void runHandler(const Location& loc, const std::shared_ptr<HttpExchangeImpl>& exchange) {
  try {
    module::LibraryScope scope(loc.library);
    loc.protocol->onHttpRequest(exchange);
  } catch (const std::exception& e) {
    LOG_ERROR(loc.module, ": request handler threw: ", e.what());
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    exchange->respond(HttpResponse::json(500, R"({"error":"internal","reason":"handler failed"})"));
  }
}

}  // namespace

struct Connection::Handshake {
  HttpRequest request;
  std::vector<std::string> subprotocols;
  // The upgrade's answer (the 101), written when every onOpen passed; null when it went out
  // already (a hello over an upgrade).
  std::unique_ptr<HttpResponse> accept;
  std::vector<std::string> rooms;  // setIdentity's, joined at open
};

Connection::Connection(Worker& worker, int fd, std::string peer, GenerationPtr generation,
                       const ListenerSpec& listener, uint64_t id)
    : worker_(worker), id_(id), fd_(fd), peer_(peer),
      generation_(std::move(generation)), listener_(&listener),
      handle_(HandleRef::make(this)), runner_(*this) {
  counters().connections_accepted.fetch_add(1, std::memory_order_relaxed);
  counters().connections_active.fetch_add(1, std::memory_order_relaxed);
}

Connection::~Connection() {
  handle_->connection = nullptr;
  worker_.cancel(timerNode());
  unwatchIo();
  if (out_ != nullptr) {
    evbuffer_free(out_);
  }
  if (ssl() != nullptr) {
    SSL_free(ssl());
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
  releaseHandshakeSlot();
  if (admitted_) {
    Admission::instance().connectionClosed(peerIp());
  }
  counters().connections_active.fetch_sub(1, std::memory_order_relaxed);
}

// An idle session's Connection fits the 512-byte allocator class (jemalloc and glibc both
// have one): bench/RESULTS.md, "What an idle connection costs".
static_assert(sizeof(Connection) <= 384,
              "keep rarely used state in Connection::Rare (384 is a jemalloc size class)");

SessionStreams& Connection::makeStreams() {
  std::unique_ptr<SessionStreams>& streams = rare().streams;
  if (!streams) {
    streams = std::make_unique<SessionStreams>();
  }
  return *streams;
}

const ModuleLibraryRef& Connection::codecLibrary() const {
  static const ModuleLibraryRef kBuiltIn;
  return rare_ ? rare_->codec_library : kBuiltIn;
}

void Connection::setCodecLibrary(const ModuleLibraryRef& library) {
  if (library || rare_) {
    rare().codec_library = library;
  }
}

void Connection::cancelRetransmit() {
  if (rare_) {
    rare_->retransmit_timer.reset();
    rare_->retransmit_at_ms = 0;
  }
}

void Connection::releaseHandshakeSlot() {
  if (handshake_slot_) {
    handshake_slot_ = false;
    Admission::instance().handshakeDone();
  }
}

void Connection::start() {
  watchIo();
  last_activity_ = std::chrono::steady_clock::now();
  if (listener_->tls) {
    setSsl(SSL_new(listener_->tls->ctx));
    SSL_set_fd(ssl(), fd_);
    SSL_set_accept_state(ssl());
    state_ = State::kTls;
    armTimer(Timer::kHandshake, settings().handshake_timeout);
  } else {
    armTimer(Timer::kKeepalive, listener_->header_timeout);
  }
  if (listener_->stream) {
    location_ = &listener_->locations.front();
    setCodecLibrary(location_->library);
    module::LibraryScope scope(codecLibrary());
    codec_ = location_->protocol->createCodec();
    if (state_ != State::kTls) {
      startStream();
    }
  }
}

// Raw TCP: the connection is a session from the first byte. Protocols with an in-band hello
// decode until it arrives (onHello); the others run the pipeline's onOpen right away.
void Connection::startStream() {
  if (location_->protocol->handshakeInBand()) {
    state_ = State::kHello;
    armTimer(Timer::kHandshake, settings().handshake_timeout);
    return;
  }
  HttpRequest none;
  none.peer = peer_.view();
  exchangeUpgrade(std::move(codec_), HttpResponse{0, {}, {}}, {}, std::move(none));
}

void Connection::onHello(HttpRequest hello) {
  if (state_ != State::kHello) {
    return;
  }
  // We are inside codec_->decode(): stop decoding (later bytes wait in the input buffer) and
  // run the pipeline's onOpen on the next loop turn, outside the codec.
  state_ = State::kUpgrading;
  hello.peer = peer_.view();
  worker_.post([handle = handle_, hello = std::move(hello)]() mutable {
    Connection* self = handle->connection;
    if (self != nullptr && self->state_ == State::kUpgrading && !self->closing_) {
      self->exchangeUpgrade(std::move(self->codec_), HttpResponse{0, {}, {}}, {}, std::move(hello));
    }
  });
}

// ---- Upstreams -----------------------------------------------------------------------------

bool SessionUpstreams::has(std::string_view group) const {
  return connection_.generation_->hasUpstream(group);
}

void SessionUpstreams::call(std::string_view group, UpstreamRequest request, UpstreamCallback done) {
  Connection& c = connection_;
  UpstreamCallback guarded = [handle = c.handle_, epoch = c.runner_.epoch(),
                              done = module::pinned(std::move(done))](
                                 Result<UpstreamResponse> result) {
    if (handle->connection == nullptr || handle->connection->runner_.epoch() != epoch) {
      return;  // the session or the stage that asked is gone
    }
    done(std::move(result));
    if (handle->connection != nullptr) {
      handle->connection->flush();
    }
  };
  c.worker_.callUpstream(c.generation_, group, std::move(request), std::move(guarded));
}

// ---- Session -------------------------------------------------------------------------------

std::string_view Connection::protocol() const {
  return location_ != nullptr ? std::string_view(location_->module) : std::string_view("http");
}

std::optional<std::string_view> Connection::handshakeHeader(std::string_view name) const {
  if (!handshake_) {
    return std::nullopt;
  }
  return handshake_->request.header(name);
}

std::optional<std::string> Connection::handshakeQuery(std::string_view name) const {
  if (!handshake_) {
    return std::nullopt;
  }
  return handshake_->request.queryParam(name);
}

const std::vector<std::string>& Connection::offeredSubprotocols() const {
  static const std::vector<std::string> kNone;
  return handshake_ ? handshake_->subprotocols : kNone;
}

Dispatcher& Connection::dispatcher() { return worker_; }

Hub& Connection::hub() { return worker_.registry(); }

Upstreams& Connection::upstreams() {
  std::unique_ptr<SessionUpstreams>& upstreams = rare().upstreams;
  if (!upstreams) {
    upstreams = std::make_unique<SessionUpstreams>(*this);
  }
  return *upstreams;
}

Logger& Connection::log() { return *this; }

bool Connection::enabled(LogLevel level) const { return Log::instance().enabled(level); }

void Connection::log(LogLevel level, std::string_view message) {
  if (Log::instance().enabled(level)) {
    Log::instance().write(level, format("session ", id_, ": ", message));
  }
}

// ---- I/O -----------------------------------------------------------------------------------

uint32_t Connection::ioMask() const {
  if (!io_watched_) {
    return 0;
  }
  return (read_enabled_ ? EPOLLIN : 0u) | (write_armed_ ? EPOLLOUT : 0u);
}

void Connection::setIo(bool read, bool write) {
  const uint32_t was = ioMask();
  read_enabled_ = read;
  write_armed_ = write;
  applyIo(was);
}

void Connection::applyIo(uint32_t was) {
  if (!worker_.ioUpdate(fd_, this, was, ioMask())) {
    const int err = errno;
    LOG_ERROR("session ", id_, ": cannot watch its socket: ", std::strerror(err));
    io_watched_ = false;  // not in the set: nothing would ever wake it
    if (state_ != State::kClosed) {
      finalClose("socket not watched");
    }
  }
}

void Connection::watchIo() {
  io_watched_ = true;
  applyIo(0);  // not in the set yet
}

void Connection::unwatchIo() {
  if (io_watched_) {
    worker_.ioUpdate(fd_, this, ioMask(), 0);
    io_watched_ = false;
  }
}

void Connection::onIoEvent(void* owner, uint32_t events) {
  auto* c = static_cast<Connection*>(owner);
  // Errors and hang-ups wake whichever side waits (libevent's mapping); the handlers find out.
  const bool broken = (events & (EPOLLERR | EPOLLHUP)) != 0;
  if (c->io_watched_ && c->read_enabled_ && (broken || (events & EPOLLIN) != 0)) {
    c->handleRead();
  }
  if (c->io_watched_ && c->write_armed_ && (broken || (events & EPOLLOUT) != 0)) {
    c->handleWrite();
  }
}

ssize_t Connection::readSome(char* buf, size_t size) {
  if (ssl() != nullptr) {
    const int n = SSL_read(ssl(), buf, static_cast<int>(size));
    if (n > 0) {
      return n;
    }
    const int err = SSL_get_error(ssl(), n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      return 0;
    }
    ERR_clear_error();
    return -2;
  }
  const ssize_t n = ::read(fd_, buf, size);
  if (n >= 0) {
    return n;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
    return -1;
  }
  return -2;
}

void Connection::handleRead() {
  if (state_ == State::kClosed) {
    return;
  }
  if (state_ == State::kTls) {
    doTlsHandshake();
    return;
  }
  char* buf = scratch();
  for (int i = 0; ssl() != nullptr || i < kMaxReadsPerEvent; ++i) {
    if (state_ == State::kClosed || !read_enabled_) {
      break;
    }
    const ssize_t n = readSome(buf, kReadChunk);
    if (n > 0) {
      counters().bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      if (shut_wr_) {
        continue;  // lingering close: discard until the peer closes
      }
      consume(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == -1) {
      break;
    }
    finalClose(n == 0 ? "closed by peer" : "read error");
    return;
  }
  if (state_ != State::kClosed) {
    flush();
  }
}

void Connection::doTlsHandshake() {
  const int r = SSL_do_handshake(ssl());
  if (r == 1) {
    state_ = State::kHttp;
    if (listener_->stream) {
      startStream();
    } else {
      armTimer(Timer::kKeepalive, listener_->header_timeout);
    }
    handleRead();  // application data may already be buffered inside OpenSSL
    return;
  }
  const int err = SSL_get_error(ssl(), r);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    if (err == SSL_ERROR_WANT_WRITE) {
      armWrite();
    }
    return;
  }
  counters().tls_handshake_errors.fetch_add(1, std::memory_order_relaxed);
  char reason[256] = "handshake failed";
  if (const unsigned long e = ERR_get_error(); e != 0) {
    ERR_error_string_n(e, reason, sizeof(reason));
  }
  ERR_clear_error();
  LOG_DEBUG("tls handshake with ", peer_.view(), " failed: ", reason);
  SSL_free(ssl());
  setSsl(nullptr);
  finalClose("tls handshake failed");
}

size_t Connection::processBuffered(std::string_view input) {
  switch (state_) {
    case State::kSession:
    case State::kHello:
    case State::kProbe:
      return processSession(input);
    case State::kHttp:
      return exchange_in_flight_ ? 0 : processHttp(input);
    default:
      return 0;  // TLS handshake, upgrade in progress, closed: keep the bytes
  }
}

// Unparsed HTTP input held while requests are in flight (pipelined behind a slow answer).
constexpr size_t kMaxPendingHttpInput = 64 * 1024;

void Connection::consume(std::string_view data) {
  if (!inputPending()) {
    const size_t used = processBuffered(data);
    if (state_ == State::kClosed || used == data.size()) {
      return;
    }
    if (!in_buf_) {
      in_buf_ = std::make_unique<std::string>();
    }
    in_buf_->assign(data.substr(used));
  } else {
    in_buf_->append(data);
  }
  pumpInput();
}

// Runs buffered input through the current state until no more progress is made (after a
// response, an upgrade, the hello, or the end of a pause). Re-entrant calls find the buffer
// taken and return; the outer loop continues with the new state.
void Connection::pumpInput() {
  while (inputPending() && state_ != State::kClosed && !closing_) {
    std::string input;
    input.swap(*in_buf_);
    const size_t used = processBuffered(input);
    if (state_ == State::kClosed) {
      return;
    }
    std::string rest = input.substr(used);
    if (in_buf_) {
      rest.append(*in_buf_);  // what a re-entrant call left
    } else {
      in_buf_ = std::make_unique<std::string>();
    }
    in_buf_->swap(rest);
    if (used == 0) {
      break;
    }
  }
  if (in_buf_ && in_buf_->empty()) {
    in_buf_.reset();  // idle sessions keep no input buffer
  }
  // HTTP input waiting behind unanswered requests is bounded: past kMaxPendingHttpInput the
  // socket is not read (TCP flow control holds the client) until answers drain the buffer.
  const bool full =
      state_ == State::kHttp && in_buf_ && in_buf_->size() >= kMaxPendingHttpInput;
  if (full != http_input_full_ && (full || state_ == State::kHttp || !runner_.busy())) {
    http_input_full_ = full;
    enableRead(!full);
  }
  maybeFinishFeed();
}

size_t Connection::processHttp(std::string_view input) {
  size_t used = 0;
  while (used < input.size() && state_ == State::kHttp && !exchange_in_flight_ && !closing_) {
    if (!parser_) {
      parser_ = std::make_unique<net::HttpRequestParser>(listener_->http_limits);
      requestStart() = std::chrono::steady_clock::now();
      armTimer(Timer::kHeader, listener_->header_timeout);
    }
    auto r = parser_->feed(input.substr(used));
    if (!r) {
      const int status = parser_->errorStatus();
      httpError(status == 0 ? 400 : status, status == 413 ? "message_too_big" : "bad_request",
                r.error().message);
      return input.size();
    }
    used += *r;
    if (parser_->expectsContinue() && !continue_sent_) {
      append("HTTP/1.1 100 Continue\r\n\r\n");
      continue_sent_ = true;
    }
    if (parser_->complete()) {
      HttpRequest request = parser_->take();
      parser_.reset();
      continue_sent_ = false;
      dispatchRequest(std::move(request));
    } else if (*r == 0) {
      break;
    }
  }
  return used;
}

void Connection::dispatchRequest(HttpRequest request) {
  counters().http_requests.fetch_add(1, std::memory_order_relaxed);
  request.peer = peer_.view();
  // Each request runs on the newest generation (reload applies to keep-alive connections).
  if (generation_ != worker_.generation()) {
    const ListenerSpec* spec = worker_.generation()->listener(listener_->name);
    if (spec != nullptr) {
      generation_ = worker_.generation();
      listener_ = spec;
    }
  }
  const Location* loc = listener_->match(request.path);
  if (pipelined() && !pipelined()->answers.empty()) {
    // Pipelined requests are still unanswered: this one joins them when its location allows,
    // else it waits until they are all written (its answer must come after theirs).
    if (startConcurrent(request, loc)) {
      return;
    }
    pipelined()->held = std::make_unique<HttpRequest>(std::move(request));
    exchange_in_flight_ = true;  // parse nothing more until the held request is dispatched
    return;
  }
  if (startConcurrent(request, loc)) {
    return;
  }
  if (loc == nullptr) {
    const bool keep = request.keep_alive;
    writeResponse(HttpResponse::json(404, format("{\"error\":\"not_found\",\"reason\":",
                                                 jsonQuote(format("no location for ", request.path)),
                                                 "}")),
                  keep, request.method == "HEAD");
    return;
  }
  location_ = loc;
  exchange_in_flight_ = true;
  request_keep_alive_ = request.keep_alive;
  request_head_ = request.method == "HEAD";
  auto exchange = std::make_shared<HttpExchangeImpl>(handle_, std::move(request), loc->path, worker_);
  runHandler(*loc, exchange);
}

// Up to this many requests of a concurrentRequests() location in flight per connection.
constexpr size_t kMaxPipelined = 32;

bool Connection::startConcurrent(HttpRequest& request, const Location* loc) {
  if (loc == nullptr || !loc->protocol->concurrentRequests() || !request.keep_alive ||
      worker_.draining()) {
    return false;
  }
  if (!pipelined()) {
    rare().pipelined = std::make_unique<Pipelined>();
  }
  location_ = loc;
  const uint64_t id = pipelined()->next_id++;
  Pipelined::Answer& slot = pipelined()->answers.emplace_back();
  slot.id = id;
  slot.head = request.method == "HEAD";
  slot.start = requestStart();
  if (pipelined()->answers.size() >= kMaxPipelined) {
    exchange_in_flight_ = true;  // read on once the oldest is answered
  }
  auto exchange =
      std::make_shared<HttpExchangeImpl>(handle_, std::move(request), loc->path, worker_, id);
  runHandler(*loc, exchange);
  return true;
}

void Connection::exchangeAnswer(uint64_t id, HttpResponse response) {
  if (state_ == State::kClosed || !pipelined() || pipelined()->answers.empty()) {
    return;
  }
  const uint64_t first = pipelined()->answers.front().id;
  if (id < first || id - first >= pipelined()->answers.size()) {
    return;
  }
  Pipelined::Answer& slot = pipelined()->answers[id - first];
  slot.ready = true;
  slot.response = std::move(response);
  if (id == first) {
    writeAnswers();
  }
}

// Writes the answers that are next in request order, then reads on: more pipelined requests,
// or the one-at-a-time request that waited for them. One flush per loop iteration, so answers
// completed together leave in one write.
void Connection::writeAnswers() {
  auto& answers = pipelined()->answers;
  bool wrote = false;
  while (!answers.empty() && answers.front().ready && state_ != State::kClosed) {
    Pipelined::Answer slot = std::move(answers.front());
    answers.pop_front();
    releaseHandshakeSlot();  // as writeResponse: an answered exchange ends the handshake
    appendResponse(slot.response, true, slot.head, slot.start);
    wrote = true;
  }
  if (state_ == State::kClosed) {
    return;
  }
  if (wrote && !pipelined()->flush_posted) {
    pipelined()->flush_posted = true;
    worker_.post([handle = handle_] {
      if (Connection* c = handle->connection; c != nullptr && c->pipelined()) {
        c->pipelined()->flush_posted = false;
        c->flush();
      }
    });
  }
  if (!answers.empty()) {
    if (exchange_in_flight_ && !pipelined()->held && answers.size() < kMaxPipelined) {
      exchange_in_flight_ = false;
      pumpInput();
    }
    return;
  }
  exchange_in_flight_ = false;
  if (std::unique_ptr<HttpRequest> held = std::move(pipelined()->held)) {
    dispatchRequest(std::move(*held));
  } else if (worker_.draining()) {
    closing_ = true;  // as writeResponse does for a keep-alive request answered while draining
    flush();
    lingerClose();
    return;
  } else if (!parser_) {
    armTimer(Timer::kKeepalive, listener_->keepalive_timeout);
  }
  if (!closing_ && state_ != State::kClosed) {
    pumpInput();
  }
}

void Connection::exchangeRespond(HttpResponse response) {
  if (state_ == State::kClosed || !exchange_in_flight_) {
    return;
  }
  exchange_in_flight_ = false;
  writeResponse(response, request_keep_alive_ && !worker_.draining(), request_head_);
  if (!closing_) {
    pumpInput();
    flush();
  }
}

void Connection::httpError(int status, std::string_view error, std::string_view reason) {
  writeResponse(HttpResponse::json(status, format("{\"error\":", jsonQuote(error), ",\"reason\":",
                                                  jsonQuote(reason), "}")),
                false, false);
}

void Connection::writeResponse(const HttpResponse& response, bool keep_alive, bool head) {
  if (detached()) {
    // A detached session's only response is the answer to its handshake request, written by
    // the connection that carried it.
    if (HandleRef h = std::move(detached()->handshake)) {
      if (h->connection != nullptr) {
        h->connection->exchangeRespond(response);
      }
    }
    if (!keep_alive) {
      closing_ = true;
      finalClose("handshake refused");
    }
    return;
  }
  if (response.status != 101) {
    releaseHandshakeSlot();  // a plain HTTP exchange is done: its handshake was the request
  }
  appendResponse(response, keep_alive, head, requestStart());
  flush();
  if (!keep_alive) {
    closing_ = true;
    lingerClose();
  } else if (state_ == State::kHttp) {
    armTimer(Timer::kKeepalive, listener_->keepalive_timeout);
  }
}

void Connection::appendResponse(const HttpResponse& response, bool keep_alive, bool head,
                                std::chrono::steady_clock::time_point start) {
  std::string out;
  out.reserve(256 + response.body.size());
  out.append("HTTP/1.1 ").append(std::to_string(response.status)).append(" ");
  out.append(httpReason(response.status)).append("\r\nServer: imgate\r\nDate: ");
  out.append(httpDate()).append("\r\n");
  for (const HttpHeader& h : response.headers) {
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  if (response.status != 101 && response.status != 204 && response.status >= 200) {
    out.append("Content-Length: ").append(std::to_string(response.body.size())).append("\r\n");
  }
  if (!keep_alive) {
    out.append("Connection: close\r\n");
  }
  out.append("\r\n");
  if (!head) {
    out.append(response.body);
  }
  append(out);
  if (Log::instance().accessLog()) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    LOG_INFO("access ", peer_.view(), " ", listener_->name, " ", response.status, " ",
             response.body.size(), "B ", us, "us");
  }
}

// ---- Upgrade and sessions ------------------------------------------------------------------

void Connection::exchangeUpgrade(CodecPtr codec, HttpResponse accept,
                                 std::vector<std::string> subprotocols, HttpRequest request) {
  if (state_ == State::kClosed || closing_) {
    return;
  }
  exchange_in_flight_ = false;
  setCodecLibrary(location_ != nullptr ? location_->library : nullptr);
  codec_ = std::move(codec);
  if (accept.status != 0 && !listener_->stream && location_->protocol->handshakeInBand()) {
    // An HTTP upgrade whose credentials come in-band (Socket.IO's CONNECT): switch protocols
    // now, with the protocol's greeting as the body, and wait for the codec's hello as a stream
    // session does. The hello then runs this function again, with no response to write.
    handshake_ = std::make_unique<Handshake>();
    handshake_->subprotocols = std::move(subprotocols);
    handshake_->request = std::move(request);
    writeResponse(accept, true, false);
    parser_.reset();
    accepted_early_ = true;
    state_ = State::kHello;
    armTimer(Timer::kHandshake, settings().handshake_timeout);
    pumpInput();
    return;
  }
  std::vector<std::string> offered = std::move(subprotocols);
  if (accepted_early_ && handshake_ && offered.empty()) {
    offered = std::move(handshake_->subprotocols);  // the hello carries none; keep the upgrade's
  }
  handshake_ = std::make_unique<Handshake>();
  handshake_->accept = std::make_unique<HttpResponse>(std::move(accept));
  handshake_->subprotocols = std::move(offered);
  handshake_->request = std::move(request);
  state_ = State::kUpgrading;
  armTimer(Timer::kHandshake, settings().handshake_timeout);
  if (runner_.reset(location_->pipeline)) {
    runner_.open();
  }
}

void Connection::openAccepted() { acceptSession(); }

void Connection::openRejected(Errc code, const std::string& reason, std::string_view stage) {
  counters().handshakes_rejected.fetch_add(1, std::memory_order_relaxed);
  LOG_INFO("handshake from ", peer_.view(), " rejected by ", stage, ": ", reason);
  if (listener_->stream || accepted_early_) {
    codec_->encodeClose(code, reason, *this);
    closing_ = true;
    flush();
    lingerClose();
  } else {
    state_ = State::kHttp;
    httpError(httpStatusFor(code), errcName(code), reason);
  }
}

void Connection::messageRejected(Errc code, const std::string& reason, std::string_view stage) {
  LOG_DEBUG("session ", id_, ": rejected by ", stage, ": ", reason);
  if (state_ == State::kUpgrading) {
    openRejected(code, reason, stage);
    return;
  }
  closeWith(code, reason);
}

void Connection::sendReply(const Message& message) {
  sendOutbound(message);
}

void Connection::pauseChanged(bool paused, bool during_open) {
  if (during_open) {
    // The handshake timer keeps running through a pause at open; nothing to arm.
    return;
  }
  if (paused) {
    armTimer(Timer::kPause, settings().pause_timeout);
  } else if (state_ == State::kSession) {
    armTimer(Timer::kIdle, settings().idle_timeout);
  }
}

void Connection::acceptSession() {
  if (handshake_ && handshake_->accept && handshake_->accept->status != 0) {
    writeResponse(*handshake_->accept, true, false);
  }
  const std::vector<ResumePoint> resume = resumeRequest();  // before the handshake is dropped
  const std::vector<std::string> rooms =
      handshake_ ? std::move(handshake_->rooms) : std::vector<std::string>();
  handshake_.reset();
  parser_.reset();
  releaseHandshakeSlot();
  state_ = State::kSession;
  if (identity_.app.empty()) {
    identity_.app = kDefaultApp;  // sessions without an auth stage belong to the default tenant
  }
  opened_at_ms_ = worker_.wallMs();
  last_activity_ = lastPing() = std::chrono::steady_clock::now();
  counters().sessions_active.fetch_add(1, std::memory_order_relaxed);
  counters().sessions_opened.fetch_add(1, std::memory_order_relaxed);
  worker_.hub().add(*this);
  registered_ = true;
  bool first_of_user = false;
  if (!identity_.user.empty()) {
    SessionRef ref{id_, SmallString(identity_.device),
                   internOrigin(location_->module, listener_->name), peer_, opened_at_ms_};
    auto added = worker_.registry().add(identity_.app, identity_.user, ref,
                                        settings().max_conns_per_user);
    first_of_user = added.first;
    for (const std::string& room : added.rooms) {
      std::string rk = identity_.app;
      rk.push_back('\0');
      rk.append(room);
      worker_.hub().joinRoom(*this, rk);
    }
    for (uint64_t victim : added.evict) {
      Worker& owner = worker_.registry().worker(workerOf(victim));
      owner.post([&owner, victim] {
        owner.hub().close({victim}, Errc::kEvicted, "replaced by a newer session of this user");
      });
    }
    // Rooms the auth stage found (token claim, backend answer): the user joins them; this
    // session at once, so a push right after open reaches it; the user's others through the hub.
    for (const std::string& room : rooms) {
      worker_.registry().join(identity_.app, room, {identity_.user});
      std::string rk = identity_.app;
      rk.push_back('\0');
      rk.append(room);
      worker_.hub().joinRoom(*this, rk);
    }
  }
  SessionOpened opened;
  opened.session_id = id_;
  opened.server_time_ms = opened_at_ms_;
  opened.idle_timeout = settings().idle_timeout;
  opened.ping_interval = pingInterval();
  opened.identity = identity_;
  std::vector<MessagePtr> replay;
  openStreams(resume, first_of_user, opened, replay);
  codec_->onOpened(opened, *this);
  for (const MessagePtr& m : replay) {
    sendSequenced(m);
  }
  if (Log::instance().accessLog()) {
    LOG_INFO("session ", id_, " open ", location_->module, " ", listener_->name, " peer ",
             peer_.view(), " app ", quote(identity_.app), " user ", quote(identity_.user));
  }
  armTimer(Timer::kIdle, pingInterval().count() > 0
                             ? std::min(pingInterval(), settings().idle_timeout)
                             : settings().idle_timeout);
  pumpInput();
  flush();
}

size_t Connection::processSession(std::string_view input) {
  auto r = codec_->decode(input, *this, *this);
  if (!r) {
    LOG_DEBUG("session ", id_, ": ", errcName(r.error().code), ": ", r.error().message);
    closeWith(r.error().code, r.error().message);
    return input.size();
  }
  return *r;
}

void Connection::onMessage(Message&& message) {
  if (closing_ || state_ != State::kSession) {
    return;
  }
  counters().messages_in.fetch_add(1, std::memory_order_relaxed);
  if (message.kind == MessageKind::kAck && message.seq != 0) {
    onStreamAck(message);  // the core's business: stages never see downlink acks
    return;
  }
  if (message.kind == MessageKind::kControl && message.event == "read") {
    onReadMark(message);
    return;
  }
  message.app = identity_.app;
  message.from = identity_.user;
  message.ts_ms = worker_.wallMs();
  runner_.inbound(std::move(message));
}

void Connection::resume() { runner_.resume(); }

void Connection::reject(Errc code, std::string reason) { runner_.reject(code, std::move(reason)); }

// A stage closes the session (token expired, ...): never from inside the stage's own hook, so
// the runner is not torn down under it; the next loop turn does it.
void Connection::close(Errc code, std::string reason) {
  worker_.post([handle = handle_, code, reason = std::move(reason)]() mutable {
    if (Connection* self = handle->connection) {
      self->closeWith(code, std::move(reason));
    }
  });
}

void Connection::reply(Message message) {
  runner_.reply(std::move(message));
  if (!runner_.inHook()) {
    flush();
  }
}

void Connection::setExpiry(SessionExpiry expiry) {
  expiry_at_s_ = std::clamp(expiry.at_s, -kMaxExpiryS, kMaxExpiryS);
  expiry_notified_ = expiry.notified;
}

void Connection::setIdentity(Identity identity, std::vector<std::string> rooms) {
  if (state_ == State::kSession || !handshake_) {
    counters().bugs.fetch_add(1, std::memory_order_relaxed);  // identity is fixed once open
    return;
  }
  identity_ = std::move(identity);
  handshake_->rooms = std::move(rooms);  // joined at open, then gone with the handshake
}

void Connection::sendOutbound(const Message& message) {
  if (state_ != State::kSession || closing_ || !runner_.outboundAllowed(message)) {
    return;
  }
  auto s = codec_->encode(message, *this);
  if (!s) {
    LOG_DEBUG("session ", id_, ": encode failed: ", s.error().message);
    return;
  }
  counters().messages_out.fetch_add(1, std::memory_order_relaxed);
}

void Connection::deliver(Delivery& delivery) {
  if (state_ != State::kSession || closing_) {
    ++delivery.dropped;
    return;
  }
  if (!runner_.busy()) {
    maybeMigrate();
  }
  const Message& message = *delivery.message;
  using Policy = SessionSettings::SlowConsumer;
  const Policy policy = settings().slow_consumer;
  const bool backed_up = pending() > settings().outbound_high_water ||
                         (backlog() != nullptr && !backlog()->queue.empty());
  if (policy == Policy::kDropNew && backed_up) {
    counters().outbound_dropped.fetch_add(1, std::memory_order_relaxed);
    ++delivery.dropped;
    return;
  }
  // Control notices (read marks) may carry a seq too: they are about a stream, not in it.
  const bool sequenced = message.seq != 0 && message.kind == MessageKind::kData;
  if (message.kind == MessageKind::kControl && message.event == "read" &&
      !codec_->acksDownlink()) {
    return;  // read sync is for clients that speak seqs; a plain client would see noise
  }
  if (sequenced) {
    makeStreams();
    switch (streams()->check(message)) {
      case SessionStreams::Check::kDuplicate:
        // A replay from history already carried it (resume, gap fill): the live copy is late.
        StatsRegistry::instance().delivery().duplicates.fetch_add(1, std::memory_order_relaxed);
        ++delivery.delivered;
        return;
      case SessionStreams::Check::kGap:
        fillGap(message);
        if (closing_) {
          ++delivery.dropped;
          return;
        }
        break;
      case SessionStreams::Check::kSend:
        break;
    }
  }
  if (!runner_.outboundAllowed(message)) {
    if (sequenced) {
      streams()->sent(delivery.message, false, 0, {});  // filtered for this session: never sent
    }
    ++delivery.dropped;
    return;
  }
  const uint64_t key = codec_->sharedEncodingKey(message);
  if (key != 0) {
    const Codec& codec = *codec_;
    const std::type_info* type = &typeid(codec);
    Bytes bytes;
    for (const Delivery::Encoding& e : delivery.encodings) {
      if (e.key == key && e.codec == type) {
        bytes = e.bytes;
        break;
      }
    }
    if (!bytes) {
      bytes = codec_->encodeShared(message);
      delivery.encodings.push_back(Delivery::Encoding{type, key, bytes});
    }
    if (bytes && policy == Policy::kDropOldest && backed_up) {
      // Shared encodings are stateless: any of them can be dropped without corrupting the
      // stream. The newest waits; the oldest waiting go when the backlog is over its budget.
      if (!backlog()) {
        rare().backlog = std::make_unique<Backlog>();
      }
      const size_t budget = settings().max_outbound > settings().outbound_high_water
                                ? settings().max_outbound - settings().outbound_high_water
                                : settings().outbound_high_water;
      backlog()->bytes += bytes->size();
      backlog()->queue.push_back(std::move(bytes));
      while (backlog()->bytes > budget && backlog()->queue.size() > 1) {
        backlog()->bytes -= backlog()->queue.front()->size();
        backlog()->queue.pop_front();
        counters().outbound_dropped.fetch_add(1, std::memory_order_relaxed);
        ++delivery.dropped;
      }
      counters().messages_out.fetch_add(1, std::memory_order_relaxed);
      ++delivery.delivered;
      if (sequenced) {
        markSent(delivery.message);
      }
      flush();
      return;
    }
    if (bytes) {
      appendShared(std::move(bytes));
    }
  } else if (!codec_->encode(message, *this)) {
    ++delivery.dropped;
    return;
  }
  counters().messages_out.fetch_add(1, std::memory_order_relaxed);
  ++delivery.delivered;
  if (sequenced) {
    markSent(delivery.message);
    if (closing_) {
      return;
    }
  }
  if (pending() > settings().max_outbound) {
    counters().outbound_overflows.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO("session ", id_, ": outbound buffer over ", settings().max_outbound,
             " bytes, closing slow consumer");
    closeWith(Errc::kSlowConsumer, "slow consumer");
    return;
  }
  flush();
  if (delivery.start_us != 0) {
    StatsRegistry::instance().pushLatency().observeUs(
        static_cast<uint64_t>(std::max<int64_t>(0, steadyUs() - delivery.start_us)));
  }
}

std::chrono::milliseconds Connection::pingInterval() const {
  if (location_ != nullptr) {
    const auto own = location_->protocol->heartbeat().interval;
    if (own.count() > 0) {
      return own;
    }
  }
  return settings().ping_interval;
}

void Connection::adoptCurrentGeneration() {
  if (closing_) {
    return;
  }
  if (state_ == State::kSession && !runner_.busy()) {
    maybeMigrate();
  } else if (state_ == State::kHttp && !httpBusy() && generation_ != worker_.generation()) {
    const ListenerSpec* spec = worker_.generation()->listener(listener_->name);
    if (spec != nullptr) {
      generation_ = worker_.generation();
      listener_ = spec;
      location_ = nullptr;  // chosen again for the next request
    }
  }
}

// Moves the session to the worker's current generation at a message boundary (DESIGN.md §5):
// the codec and identity stay; stages are re-created from the new pipeline.
void Connection::maybeMigrate() {
  const GenerationPtr& current = worker_.generation();
  if (current == generation_ || runner_.busy()) {
    return;
  }
  const ListenerSpec* spec = current->listener(listener_->name);
  if (spec == nullptr) {
    return;  // listener removed: stay on the old generation until closed
  }
  const Location* loc = nullptr;
  for (const Location& l : spec->locations) {
    if (l.path == location_->path && l.module == location_->module) {
      loc = &l;
    }
  }
  if (loc == nullptr) {
    return;
  }
  generation_ = current;
  listener_ = spec;
  location_ = loc;
  runner_.reset(loc->pipeline);
}

void Connection::onPeerClose(Errc code, std::string_view reason) {
  (void)reason;
  close_code_ = code;
  closing_ = true;
  unregister();
  flush();
  lingerClose();
}

void Connection::onActivity() { last_activity_ = std::chrono::steady_clock::now(); }

// ---- Output --------------------------------------------------------------------------------

void Connection::append(std::string_view bytes) {
  if (state_ == State::kClosed || bytes.empty()) {
    return;
  }
  if (out_ == nullptr) {
    out_ = evbuffer_new();
  }
  evbuffer_add(out_, bytes.data(), bytes.size());
}

void Connection::appendShared(Bytes bytes) {
  if (state_ == State::kClosed || !bytes || bytes->empty()) {
    return;
  }
  size_t offset = 0;
  if (ssl() == nullptr && fd_ >= 0 && pending() == 0) {
    // Nothing queued: write straight from the shared bytes, buffer only what the kernel refused.
    const ssize_t n = ::send(fd_, bytes->data(), bytes->size(), MSG_NOSIGNAL);
    if (n > 0) {
      counters().bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      offset = static_cast<size_t>(n);
      if (offset == bytes->size()) {
        return;
      }
    }
  }
  if (out_ == nullptr) {
    out_ = evbuffer_new();
  }
  const char* data = bytes->data() + offset;
  const size_t size = bytes->size() - offset;
  evbuffer_add_reference(out_, data, size, &freeBytesRef, new Bytes(std::move(bytes)));
  flush();
}

size_t Connection::pending() const { return out_ == nullptr ? 0 : evbuffer_get_length(out_); }

void Connection::refillFromBacklog() {
  while (backlog() != nullptr && !backlog()->queue.empty() &&
         pending() <= settings().outbound_high_water) {
    Bytes bytes = std::move(backlog()->queue.front());
    backlog()->queue.pop_front();
    backlog()->bytes -= bytes->size();
    if (out_ == nullptr) {
      out_ = evbuffer_new();
    }
    // Straight into the buffer (not appendShared, which flushes and would recurse here).
    const char* data = bytes->data();
    const size_t size = bytes->size();
    evbuffer_add_reference(out_, data, size, &freeBytesRef, new Bytes(std::move(bytes)));
  }
}

void Connection::flush() {
  if (fd_ < 0) {
    if (state_ != State::kClosed && detached()) {
      flushDetached();
    }
    return;
  }
  refillFromBacklog();
  while (out_ != nullptr && evbuffer_get_length(out_) > 0) {
    ssize_t n;
    if (ssl() != nullptr) {
      evbuffer_iovec vec;
      evbuffer_peek(out_, -1, nullptr, &vec, 1);
      const int r = SSL_write(ssl(), vec.iov_base, static_cast<int>(std::min<size_t>(vec.iov_len, 16384)));
      if (r <= 0) {
        const int err = SSL_get_error(ssl(), r);
        ERR_clear_error();
        n = (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) ? -1 : -2;
      } else {
        n = r;
        evbuffer_drain(out_, static_cast<size_t>(r));
      }
    } else {
      n = evbuffer_write(out_, fd_);
      if (n < 0) {
        n = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? -1 : -2;
      }
    }
    if (n == -2) {
      finalClose("write error");
      return;
    }
    if (n == -1 || n == 0) {
      break;
    }
    counters().bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    refillFromBacklog();  // room below the high-water mark: the backlog moves up
  }
  if (pending() > 0) {
    if (!write_armed_) {
      armWrite();  // stays armed while output waits: no epoll_ctl per writable event
    }
    return;
  }
  if (write_armed_) {
    setIo(read_enabled_, false);  // drained: stop waiting for room
    if (state_ == State::kClosed) {
      return;  // the kernel refused the change: closed
    }
  }
  if (out_ != nullptr) {
    evbuffer_free(out_);  // idle sessions keep no output buffer
    out_ = nullptr;
  }
  if (closing_ && !shut_wr_ && timer_kind_ == Timer::kLinger) {
    lingerClose();
  }
}

void Connection::handleWrite() {
  if (state_ == State::kTls) {
    setIo(read_enabled_, false);  // the handshake arms it again if it still wants to write
    doTlsHandshake();
    return;
  }
  flush();  // keeps the write side armed while output waits, disarms it once drained
}

void Connection::enableRead(bool on) {
  if (on == read_enabled_) {
    return;
  }
  if (!io_watched_) {
    read_enabled_ = on;
    if (on) {
      maybeFinishFeed();  // a detached session takes the next body
    }
    return;
  }
  setIo(on, write_armed_);
}

// ---- Timers and closing --------------------------------------------------------------------

void Connection::armTimer(Timer kind, std::chrono::milliseconds delay) {
  timer_kind_ = kind;
  if (delay.count() <= 0 && kind != Timer::kLinger) {
    worker_.cancel(timerNode());
    return;
  }
  worker_.arm(timerNode(), &Connection::onTimerNode, delay);
}

void Connection::onTimerNode(EventLoop::TimerNode& node) {
  static_cast<Connection&>(node).onTimer();
}

void Connection::onTimer() {
  const Timer kind = timer_kind_;
  timer_kind_ = Timer::kNone;
  switch (kind) {
    case Timer::kNone:
      return;
    case Timer::kHandshake:
      LOG_INFO("connection ", peer_.view(), ": handshake timed out");
      finalClose("handshake timeout");
      return;
    case Timer::kHeader:
      if (parser_ && state_ == State::kHttp && !httpBusy()) {
        httpError(408, "timeout", "request not received in time");
      } else {
        armTimer(Timer::kHeader, listener_->header_timeout);
      }
      return;
    case Timer::kKeepalive:
      if (state_ == State::kHttp && !httpBusy() && !parser_) {
        finalClose("keep-alive timeout");
      } else if (state_ == State::kHttp) {
        armTimer(Timer::kKeepalive, listener_->keepalive_timeout);
      }
      return;
    case Timer::kPause:
      runner_.pauseTimedOut();
      return;
    case Timer::kIdle: {
      const auto now = std::chrono::steady_clock::now();
      const auto idle = settings().idle_timeout;
      const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - last_activity_);
      if (since >= idle) {
        LOG_INFO("session ", id_, ": idle for ", since.count(), "ms, closing");
        closeWith(Errc::kTimeout, "idle timeout");
        return;
      }
      auto next = idle - since;
      const auto ping = pingInterval();
      if (ping.count() > 0) {
        // Pings after `ping` of silence, or every `ping` for protocols that ask for it.
        const bool always = location_ != nullptr && location_->protocol->heartbeat().always;
        const auto quiet = std::chrono::duration_cast<std::chrono::milliseconds>(
            now - (always ? lastPing() : std::max(last_activity_, lastPing())));
        if (quiet >= ping) {
          codec_->encodePing(*this);
          lastPing() = now;
          flush();
          next = std::min(next, ping);
        } else {
          next = std::min(next, ping - quiet);
        }
      }
      armTimer(Timer::kIdle, std::max(next, std::chrono::milliseconds(10)));
      return;
    }
    case Timer::kLinger:
      finalClose("close timeout");
      return;
  }
}

void Connection::closeWith(Errc code, std::string reason) {
  if (state_ == State::kClosed || closing_) {
    return;
  }
  close_code_ = code;
  closing_ = true;
  if ((state_ == State::kSession || state_ == State::kHello || state_ == State::kProbe) &&
      codec_) {
    codec_->encodeClose(code, reason, *this);
  }
  LOG_DEBUG("session ", id_, " closing: ", errcName(code), ": ", reason);
  unregister();
  flush();
  if (state_ != State::kClosed) {
    lingerClose();
  }
}

// Half-close after the last bytes are out, then wait (bounded) for the peer's FIN, so the peer
// reads our close frame instead of a reset caused by unread input.
void Connection::lingerClose() {
  if (state_ == State::kClosed) {
    return;
  }
  if (fd_ < 0) {
    // Detached: the last bytes wait (close_timeout at most) for a poll to fetch them.
    if (pending() == 0 || !detached()) {
      finalClose("closed");
    } else if (timer_kind_ != Timer::kLinger) {
      armTimer(Timer::kLinger, settings().close_timeout);
    }
    return;
  }
  if (timer_kind_ != Timer::kLinger) {
    armTimer(Timer::kLinger, settings().close_timeout);
  }
  if (pending() > 0 || shut_wr_) {
    return;
  }
  shut_wr_ = true;
  if (ssl() != nullptr) {
    SSL_shutdown(ssl());
    ERR_clear_error();
  }
  ::shutdown(fd_, SHUT_WR);
  enableRead(true);
}

void Connection::unregister() {
  if (!registered_) {
    return;
  }
  registered_ = false;
  worker_.hub().remove(*this);
  if (!identity_.user.empty()) {
    worker_.registry().remove(identity_.app, identity_.user, id_);
  }
  counters().sessions_active.fetch_sub(1, std::memory_order_relaxed);
  StatsRegistry::instance().countClose(close_code_);
  runner_.close();
  if (Log::instance().accessLog()) {
    LOG_INFO("session ", id_, " closed ", errcName(close_code_), " app ", quote(identity_.app),
             " user ", quote(identity_.user), " after ", worker_.wallMs() - opened_at_ms_, "ms");
  }
}

void Connection::finalClose(std::string_view why) {
  if (state_ == State::kClosed) {
    return;
  }
  if (registered_ && close_code_ == Errc::kNone && !closing_) {
    LOG_DEBUG("session ", id_, ": ", why);
  }
  unregister();
  if (state_ == State::kProbe && probe_sent_) {
    // The upgrade failed after its probe: the session's polls wait again.
    HttpExchangeImpl::routeDetached(worker_, *rare_->attach_key, nullptr,
                                    [](Connection* c) { c->detachedProbe(false); });
  }
  state_ = State::kClosed;
  worker_.cancel(timerNode());
  if (detached()) {
    worker_.registry().removeDetached(detached()->key);
    worker_.removeDetached(detached()->key);
    if (detached()->poll) {
      answerPoll(DetachedResult{DetachedResult::Status::kUnknown, {}});
    }
    if (DetachedCallback feed = std::move(detached()->feed)) {
      feed(DetachedResult{});
    }
    detached()->handshake.reset();
  }
  unwatchIo();
  worker_.retire(this);
}

// ---- Detached sessions ---------------------------------------------------------------------

void Connection::exchangeDetach(std::string key, CodecPtr codec, HttpResponse accept,
                                HttpRequest request) {
  if (state_ == State::kClosed || closing_ || location_ == nullptr) {
    return;
  }
  // A detached session stands for a client connection: it is admitted as one (connections,
  // per-IP, rate, handshakes in flight), so handshake requests on one keep-alive connection
  // cannot pile up sessions beyond the listener's limits.
  const bool admission = listener_->admission && !listener_->admin;
  const std::string_view ip = peerIp();
  if (admission) {
    const AdmissionRefusal refusal = Admission::instance().admit(
        generation_->admission, ip,
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now().time_since_epoch())
            .count());
    if (refusal != AdmissionRefusal::kNone) {
      exchangeRespond(HttpResponse::json(
          503, format("{\"error\":\"unavailable\",\"reason\":",
                      jsonQuote(format("admission limit: ", admissionRefusalName(refusal))), "}")));
      return;
    }
  }
  if (!worker_.registry().addDetached(key, worker_.index())) {
    if (admission) {
      Admission::instance().handshakeDone();
      Admission::instance().connectionClosed(ip);
    }
    counters().bugs.fetch_add(1, std::memory_order_relaxed);  // keys are random: a module bug
    exchangeRespond(HttpResponse::json(500, R"({"error":"internal","reason":"session key taken"})"));
    return;
  }
  Connection* session = worker_.newDetached(peer_.str(), generation_, *listener_);
  if (admission) {
    session->admitted();  // released at open (handshake) and when the session ends
  }
  session->startDetached(std::move(key), *location_, std::move(codec), std::move(accept),
                         std::move(request), handle_);
}

void Connection::startDetached(std::string key, const Location& location, CodecPtr codec,
                               HttpResponse accept, HttpRequest request,
                               HandleRef handshake) {
  Detached& d = *(rare().detached = std::make_unique<Detached>());
  d.key = std::move(key);
  d.handshake = std::move(handshake);
  worker_.addDetached(d.key, this);
  location_ = &location;
  setCodecLibrary(location.library);
  codec_ = std::move(codec);
  last_activity_ = std::chrono::steady_clock::now();
  request.peer = peer_.view();
  handshake_ = std::make_unique<Handshake>();
  handshake_->request = std::move(request);
  armTimer(Timer::kHandshake, settings().handshake_timeout);
  if (location.protocol->handshakeInBand()) {
    // The handshake answer goes now; a feed brings the hello (see exchangeUpgrade).
    accepted_early_ = true;
    state_ = State::kHello;
    writeResponse(accept, true, false);
    return;
  }
  handshake_->accept = std::make_unique<HttpResponse>(std::move(accept));
  state_ = State::kUpgrading;
  if (runner_.reset(location.pipeline)) {
    runner_.open();
  }
}

std::string Connection::takeOutput() {
  std::string bytes;
  if (out_ != nullptr) {
    bytes.resize(evbuffer_get_length(out_));
    evbuffer_remove(out_, bytes.data(), bytes.size());
    evbuffer_free(out_);
    out_ = nullptr;
    counters().bytes_out.fetch_add(bytes.size(), std::memory_order_relaxed);
  }
  return bytes;
}

void Connection::answerPoll(DetachedResult result) {
  DetachedCallback poll = std::move(detached()->poll);
  detached()->poll = nullptr;
  detached()->poll_timer.reset();
  poll(std::move(result));  // posts to the poll's worker: never re-enters here
}

void Connection::flushDetached() {
  refillFromBacklog();
  if (detached()->poll && pending() > 0) {
    answerPoll(DetachedResult{DetachedResult::Status::kOk, takeOutput()});
  }
  if (closing_ && pending() == 0 && timer_kind_ == Timer::kLinger) {
    finalClose("closed");
  }
}

void Connection::detachedPoll(std::chrono::milliseconds max_wait, DetachedCallback reply) {
  if (!detached() || state_ == State::kClosed) {
    reply(DetachedResult{DetachedResult::Status::kUnknown, {}});
    return;
  }
  if (detached()->poll) {
    reply(DetachedResult{DetachedResult::Status::kOverlap, {}});
    closeWith(Errc::kProtocolError, "overlapping polls");
    return;
  }
  onActivity();
  detached()->poll = std::move(reply);
  refillFromBacklog();
  if (pending() > 0 || detached()->upgrading) {
    answerPoll(DetachedResult{DetachedResult::Status::kOk, takeOutput()});
    if (closing_ && timer_kind_ == Timer::kLinger) {
      finalClose("closed");
    }
    return;
  }
  detached()->poll_timer = worker_.schedule(max_wait, [this] {
    if (detached() && detached()->poll) {
      answerPoll(DetachedResult{DetachedResult::Status::kOk, {}});
    }
  });
}

void Connection::detachedFeed(std::string body, DetachedCallback reply) {
  if (!detached() || state_ == State::kClosed) {
    reply(DetachedResult{DetachedResult::Status::kUnknown, {}});
    return;
  }
  if (detached()->feed || inputPending()) {
    reply(DetachedResult{DetachedResult::Status::kOverlap, {}});
    closeWith(Errc::kProtocolError, "overlapping sends");
    return;
  }
  onActivity();
  detached()->feed = std::move(reply);
  if (closing_) {
    maybeFinishFeed();  // a closing session takes nothing more; the client learns at its poll
    return;
  }
  consume(body);
  if (state_ != State::kClosed) {
    maybeFinishFeed();
    flush();
  }
}

// A feed is done when its bytes are decoded and the pipeline reads again: the client's next send
// waits for this answer, which is the polling transport's backpressure.
void Connection::maybeFinishFeed() {
  if (!detached() || !detached()->feed) {
    return;
  }
  if (state_ != State::kClosed && !closing_ && (inputPending() || !read_enabled_)) {
    return;
  }
  DetachedCallback feed = std::move(detached()->feed);
  detached()->feed = nullptr;
  feed(DetachedResult{});
}

void Connection::detachedProbe(bool probing) {
  if (!detached() || state_ == State::kClosed) {
    return;
  }
  detached()->upgrading = probing;
  if (probing && detached()->poll) {
    answerPoll(DetachedResult{DetachedResult::Status::kOk, takeOutput()});
  }
}

void Connection::exchangeAttach(std::string key, CodecPtr codec, HttpResponse accept) {
  if (state_ == State::kClosed || closing_ || location_ == nullptr) {
    return;
  }
  exchange_in_flight_ = false;
  setCodecLibrary(location_->library);
  codec_ = std::move(codec);
  rare().attach_key = std::make_unique<std::string>(std::move(key));
  writeResponse(accept, true, false);
  parser_.reset();
  state_ = State::kProbe;
  armTimer(Timer::kHandshake, settings().handshake_timeout);
  pumpInput();
}

void Connection::onTransportSwitch(TransportStep step) {
  if (state_ != State::kProbe || closing_) {
    return;
  }
  if (step == TransportStep::kProbe) {
    if (!probe_sent_) {
      probe_sent_ = true;
      HttpExchangeImpl::routeDetached(worker_, *rare_->attach_key, nullptr,
                                      [](Connection* c) { c->detachedProbe(true); });
    }
    return;
  }
  // Inside codec_->decode(): stop here; the rest of the input goes with the socket.
  state_ = State::kMoving;
  enableRead(false);
  worker_.post([handle = handle_] {
    if (Connection* self = handle->connection; self != nullptr && self->state_ == State::kMoving) {
      self->handOver();
    }
  });
}

Connection::SocketTransfer::~SocketTransfer() {
  if (ssl != nullptr) {
    SSL_free(ssl);
  }
  if (fd >= 0) {
    ::close(fd);
  }
}

// kCommit: the socket, what was read past the commit and what could not be written yet go to
// the session's worker, which adopts them (attachSocket); this connection ends without closing.
void Connection::handOver() {
  flush();
  if (state_ != State::kMoving) {
    return;  // the write failed: closed
  }
  auto transfer = std::make_shared<SocketTransfer>();
  transfer->fd = fd_;
  transfer->ssl = ssl();
  transfer->input = in_buf_ ? std::move(*in_buf_) : std::string();
  transfer->output = takeOutput();
  transfer->probe = std::move(codec_);
  transfer->library = codecLibrary();
  unwatchIo();  // out of this worker's set before the session's worker adds it to its own
  fd_ = -1;
  setSsl(nullptr);
  in_buf_.reset();
  releaseHandshakeSlot();
  const std::string key = *rare_->attach_key;
  probe_sent_ = false;  // not a failure: finalClose must not release the session's polls
  finalClose("moved to its session");
  Worker& here = worker_;
  HttpExchangeImpl::routeDetached(
      here, key,
      [transfer](DetachedResult) {
        // The session is gone: the socket closes (its destructor) and the client reconnects.
      },
      [transfer](Connection* c) {
        if (c->closing()) {
          return;
        }
        c->attachSocket(*transfer);
      });
}

void Connection::attachSocket(SocketTransfer& transfer) {
  if (!detached() || state_ == State::kClosed || closing_) {
    return;
  }
  if (inputPending()) {
    // Polling input still waiting for a paused pipeline cannot be decoded once the codec
    // switched framing: the client retries on a new session (and recovers from history).
    closeWith(Errc::kProtocolError, "transport upgrade while polling input was pending");
    return;
  }
  fd_ = transfer.fd;
  setSsl(transfer.ssl);
  transfer.fd = -1;
  transfer.ssl = nullptr;
  std::unique_ptr<Detached> detached = std::move(rare_->detached);
  worker_.registry().removeDetached(detached->key);
  worker_.removeDetached(detached->key);
  if (detached->poll) {
    detached->poll_timer.reset();
    detached->poll(DetachedResult{DetachedResult::Status::kOk, {}});
  }
  if (detached->feed) {
    detached->feed(DetachedResult{});
  }
  watchIo();
  std::string queued = takeOutput();
  append(transfer.output);
  Status switched;
  {
    module::LibraryScope scope(codecLibrary());
    switched = codec_->attachTransport(*transfer.probe, std::move(queued), *this);
  }
  if (!switched) {
    LOG_INFO("session ", id_, ": transport upgrade failed: ", switched.error().message);
    closeWith(switched.error().code, switched.error().message);
    return;
  }
  if (!transfer.input.empty()) {
    consume(transfer.input);
  }
  if (state_ == State::kClosed) {
    return;
  }
  if (ssl() != nullptr && SSL_pending(ssl()) > 0) {
    handleRead();  // records OpenSSL decrypted before the move: no socket event will say so
  } else {
    flush();
  }
}

// ---- Reliable delivery --------------------------------------------------------------------

namespace {

std::optional<uint64_t> parseHex(std::string_view s) {
  if (s.empty() || s.size() > 16) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

std::optional<uint64_t> parseDecimal(std::string_view s) {
  if (s.empty() || s.size() > 19) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

DeliveryCounters& deliveryCounters() { return StatsRegistry::instance().delivery(); }

}  // namespace

std::vector<Connection::ResumePoint> Connection::resumeRequest() const {
  std::vector<ResumePoint> out;
  std::optional<std::string> json;
  if (auto h = handshakeHeader("x-imgate-resume")) {
    json = std::string(*h);
  } else if (auto q = handshakeQuery("resume")) {
    json = std::move(*q);
  }
  if (json && !json->empty()) {
    rapidjson::Document doc;
    doc.Parse(json->data(), json->size());
    if (doc.HasParseError() || !doc.IsObject()) {
      LOG_DEBUG("session ", id_, ": resume is not a JSON object: ignored");
    } else {
      // Through a const view: clang's C++20 rewritten operator== makes rapidjson's non-const
      // member iterators ambiguous.
      const rapidjson::Value& root = doc;
      for (const auto& m : root.GetObject()) {
        if (!m.value.IsObject() || out.size() >= 64) {
          continue;
        }
        const auto epoch = m.value.FindMember("epoch");
        const auto seq = m.value.FindMember("seq");
        if (epoch == m.value.MemberEnd() || seq == m.value.MemberEnd() ||
            !epoch->value.IsString() || !seq->value.IsUint64()) {
          continue;
        }
        auto e = parseHex(std::string_view(epoch->value.GetString(),
                                           epoch->value.GetStringLength()));
        if (!e) {
          continue;
        }
        out.push_back(ResumePoint{std::string(m.name.GetString(), m.name.GetStringLength()), *e,
                                  seq->value.GetUint64()});
      }
    }
  }
  std::optional<std::string> epoch;
  std::optional<std::string> last;
  if (auto h = handshakeHeader("x-epoch")) {
    epoch = std::string(*h);
  } else {
    epoch = handshakeQuery("epoch");
  }
  if (auto h = handshakeHeader("x-last-seq")) {
    last = std::string(*h);
  } else {
    last = handshakeQuery("last_seq");
  }
  if (epoch && last) {
    auto e = parseHex(*epoch);
    auto q = parseDecimal(*last);
    const bool listed = std::any_of(out.begin(), out.end(),
                                    [](const ResumePoint& p) { return p.stream == "user"; });
    if (e && q && !listed) {
      out.push_back(ResumePoint{"user", *e, *q});
    }
  }
  return out;
}

std::string Connection::streamStoreKey(std::string_view stream) const {
  return streamKey(identity_.app, stream, identity_.user);
}

void Connection::openStreams(const std::vector<ResumePoint>& resume, bool first_of_user,
                             SessionOpened& opened, std::vector<MessagePtr>& replay) {
  const DeliverySettings& d = generation_->delivery;
  if (!d.enabled) {
    return;
  }
  std::vector<std::string> names;
  if (!identity_.user.empty()) {
    names.push_back("user");
  }
  for (const std::string& rk : roomKeys()) {
    names.push_back(roomStream(std::string_view(rk).substr(identity_.app.size() + 1)));
  }
  if (d.broadcast_stream) {
    names.push_back("all");
  }
  if (names.empty()) {
    return;
  }
  StreamStore& store = worker_.registry().streams();
  const int64_t now = worker_.wallMs();
  for (const std::string& name : names) {
    const std::string key = streamStoreKey(name);
    const StreamHead head = store.head(key);
    StreamStart start;
    start.stream = name;
    start.epoch = head.epoch;
    start.seq = head.seq;
    auto asked = std::find_if(resume.begin(), resume.end(),
                              [&](const ResumePoint& p) { return p.stream == name; });
    if (asked != resume.end()) {
      HistoryRead r = store.read(key, asked->epoch, asked->seq, size_t{d.max_replay} + 1, now);
      if (r.status == HistoryRead::Status::kOk && r.messages.size() <= d.max_replay) {
        start.outcome = StreamStart::Outcome::kRecovered;
        start.seq = asked->seq;
        if (r.head.epoch != 0) {
          start.epoch = r.head.epoch;
        }
        start.replayed = r.messages.size();
        replay.insert(replay.end(), r.messages.begin(), r.messages.end());
        deliveryCounters().resumes_recovered.fetch_add(1, std::memory_order_relaxed);
      } else {
        start.outcome = StreamStart::Outcome::kImpossible;
        deliveryCounters().resumes_impossible.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (name == "user" && d.offline && head.epoch != 0) {
      // No position from the client: the device's last ack, else (for the user's first live
      // session) what was pushed while the user was offline.
      std::optional<uint64_t> from = store.devicePosition(key, identity_.device, head.epoch);
      if (!from && first_of_user) {
        from = store.offlineSince(key, head.epoch);
      }
      if (from && *from < head.seq) {
        HistoryRead r = store.read(key, head.epoch, *from, size_t{d.max_replay} + 1, now);
        if (r.status == HistoryRead::Status::kOk && r.messages.size() <= d.max_replay) {
          start.seq = *from;
          start.replayed = r.messages.size();
          replay.insert(replay.end(), r.messages.begin(), r.messages.end());
          deliveryCounters().offline_delivered.fetch_add(r.messages.size(),
                                                         std::memory_order_relaxed);
        }
      }
    }
    // A stream with no message yet needs no state: its first epoch is all due (check()).
    if (start.epoch != 0) {
      makeStreams().setPosition(name, start.epoch, start.seq);
    }
    opened.streams.push_back(std::move(start));
  }
  deliveryCounters().replayed.fetch_add(replay.size(), std::memory_order_relaxed);
}

bool Connection::tracks(const Message& message) const {
  return (message.reliable || generation_->delivery.reliable) && codec_->acksDownlink();
}

void Connection::markSent(const MessagePtr& message) {
  const bool track = tracks(*message);
  streams()->sent(message, track, worker_.wallMs(), generation_->delivery.ack_timeout);
  if (!track) {
    return;
  }
  if (streams()->unacked() > generation_->delivery.max_unacked) {
    LOG_INFO("session ", id_, ": more than ", generation_->delivery.max_unacked,
             " reliable messages unacked, closing");
    closeWith(Errc::kSlowConsumer, "too many unacked messages");
    return;
  }
  armRetransmit();
}

void Connection::sendSequenced(const MessagePtr& message) {
  if (state_ != State::kSession || closing_) {
    return;
  }
  makeStreams();
  if (!runner_.outboundAllowed(*message)) {
    streams()->sent(message, false, 0, {});
    return;
  }
  if (!codec_->encode(*message, *this)) {
    return;
  }
  counters().messages_out.fetch_add(1, std::memory_order_relaxed);
  markSent(message);
}

void Connection::fillGap(const Message& message) {
  const uint64_t from = streams()->positionIn(message);
  HistoryRead r = worker_.registry().streams().read(
      streamKey(message.app, message.stream, identity_.user), message.epoch, from,
      static_cast<size_t>(message.seq - from - 1), worker_.wallMs());
  if (r.status != HistoryRead::Status::kOk) {
    // Gone from history: the client sees the jump in seq and resyncs (docs/reliability.md).
    deliveryCounters().gaps_lost.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  deliveryCounters().gaps_filled.fetch_add(1, std::memory_order_relaxed);
  for (const MessagePtr& m : r.messages) {
    if (m->seq >= message.seq) {
      break;
    }
    sendSequenced(m);
  }
}

void Connection::onStreamAck(const Message& ack) {
  deliveryCounters().acks.fetch_add(1, std::memory_order_relaxed);
  if (!streams()) {
    return;
  }
  const std::string_view stream = ack.stream.empty() ? std::string_view("user") : ack.stream;
  const SessionStreams::Position* p = streams()->position(stream);
  if (p == nullptr || ack.seq > p->seq) {
    LOG_DEBUG("session ", id_, ": ack of ", stream, " seq ", ack.seq, " never sent: ignored");
    return;
  }
  const uint64_t epoch = p->epoch;
  streams()->ack(stream, ack.seq);
  if (stream == "user" && !identity_.user.empty()) {
    worker_.registry().streams().setDevicePosition(streamStoreKey("user"), identity_.device,
                                                    epoch, ack.seq);
    worker_.registry().streamAcked(identity_.app, identity_.user, epoch, ack.seq);
  }
  if (streams()->unacked() == 0) {
    cancelRetransmit();
  }
}

// A device read up to a seq: the user's other sessions are told (multi-device read sync), and
// for the user stream it counts as an ack.
void Connection::onReadMark(const Message& mark) {
  if (identity_.user.empty() || mark.seq == 0) {
    return;
  }
  Message ack = mark;
  ack.kind = MessageKind::kAck;
  onStreamAck(ack);
  Message notice;
  notice.kind = MessageKind::kControl;
  notice.event = "read";
  notice.stream = mark.stream.empty() ? "user" : mark.stream;
  notice.seq = mark.seq;  // the read position (a notice about the stream, not in it)
  notice.meta.emplace_back("device", identity_.device);
  notice.payload = makeBytes(std::string());
  PushTarget target;
  target.kind = TargetKind::kSession;
  for (const SessionInfo& s : worker_.registry().userSessions(identity_.app, identity_.user)) {
    if (s.id != id_) {
      target.ids.push_back(std::to_string(s.id));
    }
  }
  if (target.ids.empty()) {
    return;
  }
  deliveryCounters().read_marks.fetch_add(1, std::memory_order_relaxed);
  worker_.registry().push(identity_.app, std::move(target), std::move(notice), nullptr);
}

void Connection::armRetransmit() {
  const std::optional<int64_t> next = streams() ? streams()->nextDeadline() : std::nullopt;
  if (!next) {
    cancelRetransmit();
    return;
  }
  Rare& r = rare();
  if (r.retransmit_at_ms != 0 && r.retransmit_at_ms <= *next) {
    return;  // already due earlier
  }
  r.retransmit_at_ms = *next;
  const int64_t delay = std::max<int64_t>(*next - worker_.wallMs(), 1);
  r.retransmit_timer =
      worker_.schedule(std::chrono::milliseconds(delay), [this] { onRetransmitTimer(); });
}

void Connection::onRetransmitTimer() {
  rare_->retransmit_at_ms = 0;  // the timer lives in rare_
  if (state_ != State::kSession || closing_ || !streams()) {
    return;
  }
  const DeliverySettings& d = generation_->delivery;
  bool exhausted = false;
  const std::vector<MessagePtr> again =
      streams()->due(worker_.wallMs(), d.ack_timeout, d.ack_backoff, d.max_retransmits, exhausted);
  if (exhausted) {
    deliveryCounters().ack_timeouts.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO("session ", id_, ": reliable message not acked after ", d.max_retransmits,
             " retransmissions, closing");
    closeWith(Errc::kTimeout, "ack timeout");
    return;
  }
  for (const MessagePtr& m : again) {
    if (codec_->encode(*m, *this)) {
      deliveryCounters().retransmits.fetch_add(1, std::memory_order_relaxed);
    }
  }
  flush();
  armRetransmit();
}

void Connection::roomJoined(const std::string& room_key, std::optional<StreamHead> at) {
  if (state_ != State::kSession || !generation_->delivery.enabled) {
    return;
  }
  const std::string stream =
      roomStream(std::string_view(room_key).substr(identity_.app.size() + 1));
  const std::string key = streamStoreKey(stream);
  const StreamHead head = at ? *at : worker_.registry().streams().head(key);
  if (head.epoch != 0 || streams()) {
    // (A stream with no message needs no state: all that follows is due, see check().)
    makeStreams().setPosition(stream, head.epoch, head.seq);
  }
  if (!at) {
    return;
  }
  // Pushes made after the join was decided may have reached this worker before this update:
  // send them now from history (their live copies, if still to come, are then duplicates).
  HistoryRead r = worker_.registry().streams().read(key, head.epoch, head.seq,
                                                    generation_->delivery.max_replay,
                                                    worker_.wallMs());
  for (const MessagePtr& m : r.messages) {
    sendSequenced(m);
  }
  if (!r.messages.empty()) {
    flush();
  }
}

void Connection::roomLeft(const std::string& room_key) {
  if (streams()) {
    streams()->erase(roomStream(std::string_view(room_key).substr(identity_.app.size() + 1)));
  }
}

}  // namespace imgate::core
