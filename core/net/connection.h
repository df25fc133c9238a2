// SPDX-License-Identifier: Apache-2.0
// One client TCP connection on one worker: TLS, the HTTP/1.1 front, and, after an upgrade, a
// long-lived session driven by a protocol codec through its pipeline of stages. Everything here
// runs on the owning worker's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/small_string.h"
#include "event/worker.h"
#include "imgate/sdk/codec.h"
#include "net/session_streams.h"
#include "imgate/sdk/stage.h"
#include "net/http_parser.h"
#include "net/listener.h"
#include "pipeline/stage_runner.h"
#include "reload/generation.h"

struct event;
struct evbuffer;
typedef struct ssl_st SSL;

namespace imgate::core {

class Worker;
class Connection;
struct Delivery;

// The upstream groups as seen by one session's stages: completions are dropped when the session
// closed or its stages were replaced meanwhile (the callback may capture a dead stage).
class SessionUpstreams final : public Upstreams {
 public:
  explicit SessionUpstreams(Connection& connection) : connection_(connection) {}
  bool has(std::string_view group) const override;
  void call(std::string_view group, UpstreamRequest request, UpstreamCallback done) override;

 private:
  Connection& connection_;
};

// Lets objects that may outlive a connection (HTTP exchanges answered later, posted callbacks,
// upstream completions) find it safely: `connection` is nulled when the Connection is destroyed.
// Counted in place (16 bytes, where make_shared's block took 32); copies may live and die on
// any thread, `connection` is only read on the connection's worker.
struct ConnectionHandle {
  Connection* connection = nullptr;
  std::atomic<uint32_t> refs{1};
};

// A counted reference to a ConnectionHandle (what std::shared_ptr did, without its control
// block).
class HandleRef {
 public:
  HandleRef() = default;
  static HandleRef make(Connection* connection) {
    HandleRef ref;
    ref.h_ = new ConnectionHandle{connection};
    return ref;
  }
  HandleRef(const HandleRef& o) : h_(o.h_) {
    if (h_ != nullptr) {
      h_->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  HandleRef(HandleRef&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  HandleRef& operator=(HandleRef o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~HandleRef() { reset(); }
  void reset() {
    if (h_ != nullptr && h_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete h_;
    }
    h_ = nullptr;
  }
  ConnectionHandle* operator->() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }

 private:
  ConnectionHandle* h_ = nullptr;
};

class Connection final : public Session,
                         public StageCallbacks,
                         public StageRunnerHost,
                         public CodecSink,
                         public OutBuffer,
                         public Logger,
                         private EventLoop::TimerNode {  // its one timer (timer_kind_ says which)
 public:
  Connection(Worker& worker, int fd, std::string peer, GenerationPtr generation,
             const ListenerSpec& listener, uint64_t id);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // The worker's EventLoop::IoHandler: `owner` is a Connection with a watched socket.
  static void onIoEvent(void* owner, uint32_t events);

  // ---- Session ----
  uint64_t id() const override { return id_; }
  std::string_view protocol() const override;
  std::string_view listener() const override { return listener_->name; }
  std::string_view peerAddress() const override { return peer_.view(); }
  // The peer's address without the port: what admission counts per IP.
  std::string_view peerIp() const { return core::peerIp(peer_.view()); }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view name) const override;
  std::optional<std::string> handshakeQuery(std::string_view name) const override;
  const std::vector<std::string>& offeredSubprotocols() const override;
  int64_t openedAtMs() const override { return opened_at_ms_; }
  SessionExpiry expiry() const override { return {expiry_at_s_, expiry_notified_}; }

  // ---- StageCallbacks ----
  Session& session() override { return *this; }
  Dispatcher& dispatcher() override;
  void resume() override;
  void reject(Errc code, std::string reason) override;
  void close(Errc code, std::string reason) override;
  void reply(Message message) override;
  void setIdentity(Identity identity, std::vector<std::string> rooms) override;
  void setExpiry(SessionExpiry expiry) override;
  Upstreams& upstreams() override;
  Hub& hub() override;
  Logger& log() override;

  // ---- StageRunnerHost ----
  void openAccepted() override;
  void openRejected(Errc code, const std::string& reason, std::string_view stage) override;
  void messageRejected(Errc code, const std::string& reason, std::string_view stage) override;
  void sendReply(const Message& message) override;
  void pauseChanged(bool paused, bool during_open) override;
  void setReading(bool on) override { enableRead(on); }
  void atMessageBoundary() override { maybeMigrate(); }
  bool alive() const override { return state_ != State::kClosed && !closing_; }
  StageCallbacks& stageCallbacks() override { return *this; }

  // ---- CodecSink ----
  void onMessage(Message&& message) override;
  void onPeerClose(Errc code, std::string_view reason) override;
  void onActivity() override;
  void onHello(HttpRequest hello) override;
  void onTransportSwitch(TransportStep step) override;

  // ---- OutBuffer ----
  void append(std::string_view bytes) override;
  void appendShared(Bytes bytes) override;
  size_t pending() const override;

  // ---- Logger (what log() gives the session's stages): prefixes "session <id>: " ----
  bool enabled(LogLevel level) const override;
  void log(LogLevel level, std::string_view message) override;

  // In its worker's hub (LocalHub::add until remove): an open session pushes can reach.
  bool registered() const { return registered_; }

  // ---- Hub ----
  // Delivers one fanned-out message (encoded once per codec variant via `delivery`).
  void deliver(Delivery& delivery);
  // Closes the session cleanly: the codec's close frame, then a lingering TCP close.
  void closeWith(Errc code, std::string reason);
  // The rooms this session is in (LocalHub keeps them), in Rare: nothing until the first join.
  const std::vector<std::string>& roomKeys() const {
    static const std::vector<std::string> kNone;
    return rare_ ? rare_->room_keys : kNone;
  }
  std::vector<std::string>& mutableRoomKeys() { return rare().room_keys; }
  // The session joined / left a room (LocalHub): its position in the room's stream.
  void roomJoined(const std::string& room_key, std::optional<StreamHead> at);
  void roomLeft(const std::string& room_key);
  bool isSession() const { return state_ == State::kSession; }

  // ---- HTTP exchanges (called through HttpExchangeImpl) ----
  void exchangeRespond(HttpResponse response);
  // The answer to pipelined request `id` of a ProtocolConfig::concurrentRequests() location.
  void exchangeAnswer(uint64_t id, HttpResponse response);
  void exchangeUpgrade(CodecPtr codec, HttpResponse accept, std::vector<std::string> subprotocols,
                       HttpRequest request);
  bool closing() const { return closing_; }
  // HttpExchange::detach: opens a detached session on this worker for the request in flight,
  // which the session answers (through this connection) with `accept` or a refusal.
  void exchangeDetach(std::string key, CodecPtr codec, HttpResponse accept, HttpRequest request);
  // HttpExchange::attach: this connection runs `codec` (the probe) until the client commits,
  // then hands its socket to detached session `key`.
  void exchangeAttach(std::string key, CodecPtr codec, HttpResponse accept);

  // ---- Detached sessions (on the session's worker; codec.h documents the contract) ----
  void detachedPoll(std::chrono::milliseconds max_wait, DetachedCallback reply);
  void detachedFeed(std::string body, DetachedCallback reply);
  // The upgrade connection saw the client's probe (true), or failed before its commit (false).
  void detachedProbe(bool probing);
  // A connection's socket, handed over at TransportStep::kCommit (owns what it holds).
  struct SocketTransfer {
    int fd = -1;
    SSL* ssl = nullptr;
    std::string input;   // read and not yet decoded: the session's codec decodes it
    std::string output;  // not yet written (the probe's last answer): written first
    CodecPtr probe;
    ModuleLibraryRef library;  // the probe's code
    ~SocketTransfer();
  };
  void attachSocket(SocketTransfer& transfer);

 private:
  // kHello: a stream protocol with an in-band handshake is decoding until its hello arrives.
  // kProbe: the connection of a transport upgrade (exchangeAttach) before the client commits;
  // kMoving: committed, the socket goes to the detached session's worker.
  enum class State : uint8_t {
    kTls, kHttp, kHello, kUpgrading, kSession, kProbe, kMoving, kClosed
  };
  enum class Timer : uint8_t { kNone, kHandshake, kHeader, kKeepalive, kIdle, kPause, kLinger };
  struct Handshake;

  // The socket in the worker's epoll set (EventLoop::ioUpdate): watched for reading while
  // read_enabled_, for writing while write_armed_ (from the first write that could not finish
  // until the output drains: one epoll_ctl each way, not two per writable event).
  uint32_t ioMask() const;
  void setIo(bool read, bool write);  // updates the flags and the set
  void applyIo(uint32_t was);         // the set from `was` to ioMask(); closes if refused
  void watchIo();                     // from now on (start, attachSocket)
  void unwatchIo();                   // for good: closing, or the socket goes elsewhere
  void armWrite() { setIo(read_enabled_, true); }

  void handleRead();
  void handleWrite();
  void doTlsHandshake();
  ssize_t readSome(char* buf, size_t size);  // >0 bytes, 0 eof, -1 again, -2 error
  void consume(std::string_view input);
  size_t processBuffered(std::string_view input);
  size_t processHttp(std::string_view input);
  size_t processSession(std::string_view input);
  void dispatchRequest(HttpRequest request);
  void writeResponse(const HttpResponse& response, bool keep_alive, bool head);
  void appendResponse(const HttpResponse& response, bool keep_alive, bool head,
                      std::chrono::steady_clock::time_point start);
  bool startConcurrent(HttpRequest& request, const Location* loc);
  void writeAnswers();
  // An HTTP exchange is under way (one at a time, or pipelined ones not all answered).
  bool httpBusy() const {
    return exchange_in_flight_ || (pipelined() != nullptr && !pipelined()->answers.empty());
  }
  void httpError(int status, std::string_view error, std::string_view reason);
  void pumpInput();

  void acceptSession();
  void startStream();
  void sendOutbound(const Message& message);
  void maybeMigrate();
  // The protocol's own heartbeat interval, else sessions.ping_interval.
  std::chrono::milliseconds pingInterval() const;
 public:
  // After a reload: moves an idle connection to the worker's current generation now instead of
  // at its next message, so nothing keeps the old generation (and the .so files, TLS contexts
  // and upstream pools only it uses) alive for the life of quiet sessions. A session in the
  // middle of a pipeline run, a handshake or an HTTP exchange moves later, as before.
  void adoptCurrentGeneration();
  // Admission::admit() passed for this connection from its peer's address (peerIp()): it holds
  // a connection slot and a handshake slot, released when the handshake completes and when it
  // is destroyed.
  void admitted() {
    admitted_ = handshake_slot_ = true;
  }

 private:

  void flush();
  void enableRead(bool on);
  // Detached sessions.
  void startDetached(std::string key, const Location& location, CodecPtr codec,
                     HttpResponse accept, HttpRequest request,
                     HandleRef handshake);
  void flushDetached();
  std::string takeOutput();
  void answerPoll(DetachedResult result);
  void maybeFinishFeed();
  void handOver();
  struct Detached {
    std::string key;
    HandleRef handshake;  // the handshake's connection, until answered
    DetachedCallback poll;                        // the waiting long poll
    TimerPtr poll_timer;                          // its max_wait
    DetachedCallback feed;                        // a body not yet consumed (paused pipeline)
    bool upgrading = false;                       // probe seen: polls are answered at once
  };
  // Requests of concurrentRequests() locations in flight on this keep-alive connection, oldest
  // first: answers wait here until those before them are written.
  struct Pipelined {
    struct Answer {
      uint64_t id = 0;
      bool ready = false;
      bool head = false;
      std::chrono::steady_clock::time_point start;
      HttpResponse response;
    };
    std::deque<Answer> answers;
    uint64_t next_id = 1;
    std::unique_ptr<HttpRequest> held;  // a one-at-a-time request waiting for answers to drain
    bool flush_posted = false;          // a flush is posted for the end of this loop iteration
  };
  void armTimer(Timer kind, std::chrono::milliseconds delay);
  void onTimer();
  void lingerClose();
  void finalClose(std::string_view why);
  void unregister();
  const SessionSettings& settings() const { return generation_->sessions; }

  friend class SessionUpstreams;
  // sessions.slow_consumer: drop_oldest: shared fan-out encodings waiting for the output buffer
  // to drain below outbound_high_water.
  struct Backlog {
    std::deque<Bytes> queue;
    size_t bytes = 0;
  };
  void refillFromBacklog();
  void releaseHandshakeSlot();  // in-band hello over an HTTP upgrade: the 101 is already out

  // What most sessions never need, held out of line and allocated on first use (rare()), so an
  // idle session carries one pointer for all of it (bench/RESULTS.md, "What an idle connection
  // costs"). Each member keeps its own null-until-used meaning.
  struct Rare {
    std::unique_ptr<Detached> detached;        // null unless this is a detached session
    std::unique_ptr<Pipelined> pipelined;      // null until the first concurrent request
    std::unique_ptr<std::string> attach_key;   // kProbe / kMoving: the session being taken over
    std::unique_ptr<Backlog> backlog;          // null until drop_oldest first holds a message
    std::unique_ptr<SessionUpstreams> upstreams;  // most sessions never call an upstream
    std::unique_ptr<SessionStreams> streams;      // null until the session has a stream
    TimerPtr retransmit_timer;
    int64_t retransmit_at_ms = 0;  // when retransmit_timer fires (0: not armed)
    // A loaded module's codec: its code (may be an older .so after a reload). Built-in codecs
    // have none, so most sessions never allocate this for it.
    ModuleLibraryRef codec_library;
    std::vector<std::string> room_keys;  // "app\0room" of each room the session is in
    SSL* ssl = nullptr;                   // TLS listeners only (its own state is ~tens of KiB)
  };
  Rare& rare() {
    if (!rare_) {
      rare_ = std::make_unique<Rare>();
    }
    return *rare_;
  }
  Detached* detached() const { return rare_ ? rare_->detached.get() : nullptr; }
  SSL* ssl() const { return rare_ ? rare_->ssl : nullptr; }
  void setSsl(SSL* ssl) {
    if (ssl != nullptr || rare_) {
      rare().ssl = ssl;
    }
  }
  Pipelined* pipelined() const { return rare_ ? rare_->pipelined.get() : nullptr; }
  Backlog* backlog() const { return rare_ ? rare_->backlog.get() : nullptr; }
  SessionStreams* streams() const { return rare_ ? rare_->streams.get() : nullptr; }
  SessionStreams& makeStreams();
  const ModuleLibraryRef& codecLibrary() const;
  void setCodecLibrary(const ModuleLibraryRef& library);
  void cancelRetransmit();
  // Input read and not yet consumed (null when there is none: idle sessions keep no buffer).
  bool inputPending() const { return in_buf_ != nullptr && !in_buf_->empty(); }

  // Fields ordered and packed so that an idle session's Connection fits a 512-byte allocator
  // class (static_assert in connection.cc).
  Worker& worker_;
  uint64_t id_;
  int fd_;
  State state_ = State::kHttp;
  Timer timer_kind_ = Timer::kNone;
  Errc close_code_ = Errc::kNone;
  bool probe_sent_ : 1 = false;
  bool http_input_full_ : 1 = false;  // reading paused: kMaxPendingHttpInput bytes wait unparsed
  bool closing_ : 1 = false;
  bool read_enabled_ : 1 = true;
  bool write_armed_ : 1 = false;
  bool exchange_in_flight_ : 1 = false;
  bool continue_sent_ : 1 = false;
  bool registered_ : 1 = false;
  bool shut_wr_ : 1 = false;
  bool accepted_early_ : 1 = false;
  bool admitted_ : 1 = false;
  bool handshake_slot_ : 1 = false;
  bool request_keep_alive_ : 1 = true;
  bool request_head_ : 1 = false;
  bool expiry_notified_ : 1 = false;
  // Session::expiry's seconds, in the 48 bits beside the flags (±4.4 million years): no bytes
  // of its own. setExpiry clamps.
  static constexpr int64_t kMaxExpiryS = (int64_t{1} << 47) - 1;
  int64_t expiry_at_s_ : 48 = 0;
  bool io_watched_ : 1 = false;  // the socket is ours to watch (no socket: a detached session)
  SmallString peer_;  // "address:port": IPv4 peers need no allocation
  GenerationPtr generation_;
  const ListenerSpec* listener_ = nullptr;  // in generation_
  const Location* location_ = nullptr;      // in generation_ (session's location)
  evbuffer* out_ = nullptr;
  std::unique_ptr<std::string> in_buf_;
  std::unique_ptr<net::HttpRequestParser> parser_;
  HandleRef handle_;
  std::unique_ptr<Handshake> handshake_;
  std::unique_ptr<Rare> rare_;  // before codec_: destroyed after it (its codec_library)
  CodecPtr codec_;
  StageRunner runner_;
  Identity identity_;
  // The connection's one timer (handshake, header, keep-alive, idle and ping, pause, linger:
  // timer_kind_ says which) is its TimerNode base: arming and re-arming allocate nothing, and
  // firing finds the Connection by a cast.
  static void onTimerNode(EventLoop::TimerNode& node);
  EventLoop::TimerNode& timerNode() { return *this; }
  std::chrono::steady_clock::time_point last_activity_;
  // One field for two moments a connection never needs at once: before its session opens,
  // when the HTTP request being answered began (access log, pipelined answers); once the
  // session is open (acceptSession sets it), when the last ping went out.
  std::chrono::steady_clock::time_point request_start_or_last_ping_;
  std::chrono::steady_clock::time_point& requestStart() { return request_start_or_last_ping_; }
  std::chrono::steady_clock::time_point& lastPing() { return request_start_or_last_ping_; }
  int64_t opened_at_ms_ = 0;

  // ---- Reliable delivery (docs/reliability.md) ----
  struct ResumePoint {
    std::string stream;
    uint64_t epoch = 0;
    uint64_t seq = 0;
  };
  // The client's resume request from the handshake (x-imgate-resume / resume, epoch+last_seq).
  std::vector<ResumePoint> resumeRequest() const;
  // At open: the session's start in each of its streams; fills opened.streams and the history
  // to send right after the codec's hello answer.
  void openStreams(const std::vector<ResumePoint>& resume, bool first_of_user,
                   SessionOpened& opened, std::vector<MessagePtr>& replay);
  // Writes one sequenced message for this session alone (replay, gap fill).
  void sendSequenced(const MessagePtr& message);
  // Reads and writes the messages between the session's position and `message`.
  void fillGap(const Message& message);
  bool tracks(const Message& message) const;
  void markSent(const MessagePtr& message);
  void onStreamAck(const Message& ack);
  void onReadMark(const Message& mark);
  void armRetransmit();
  void onRetransmitTimer();
  std::string streamStoreKey(std::string_view stream) const;
};

}  // namespace imgate::core
