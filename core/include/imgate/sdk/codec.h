// SPDX-License-Identifier: Apache-2.0
// Protocol modules: sans-I/O codecs (bytes <-> Messages) and HTTP location handlers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/http.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/message.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"

namespace imgate {

enum class Sniff : uint8_t { kMatch, kNoMatch, kNeedMore };

// A client moving a detached session (HttpExchange::detach) onto a connection of its own, as
// Engine.IO's polling -> WebSocket upgrade does (HttpExchange::attach, CodecSink::onTransportSwitch).
enum class TransportStep : uint8_t {
  kProbe,   // the client tested the new connection ("2probe"): release its waiting poll
  kCommit,  // the client switched ("5"): the session continues on the new connection
};

// The connection's output buffer. Bytes are written in order; the core flushes after the
// current event has been handled.
class OutBuffer {
 public:
  virtual void append(std::string_view bytes) = 0;  // copied
  virtual void appendShared(Bytes bytes) = 0;       // referenced until written, never copied
  // Bytes queued but not yet written to the socket.
  virtual size_t pending() const = 0;

 protected:
  ~OutBuffer() = default;
};

class CodecSink {
 public:
  // A complete inbound message (the codec has already checked it against its limits).
  virtual void onMessage(Message&& message) = 0;
  // The peer closed the session cleanly at the protocol level (e.g. a WebSocket close frame);
  // the codec has already queued its reply. The core flushes and closes the connection.
  virtual void onPeerClose(Errc code, std::string_view reason) = 0;
  // Any frame arrived (data or control): resets the idle timer.
  virtual void onActivity() = 0;
  // Stream protocols with an in-band handshake (ProtocolConfig::handshakeInBand()): the client's
  // hello (token, device, SDK version...) as request-like fields: `headers` are what stages read
  // with Session::handshakeHeader, `query` what they read with handshakeQuery. The core then runs
  // the pipeline's onOpen hooks and calls Codec::onOpened, or encodeClose on refusal. Called at
  // most once; messages decoded before it are ignored. The codec should return from decode()
  // right after the hello: the core keeps later bytes and decodes them once the session is open.
  virtual void onHello(HttpRequest hello) = 0;
  // Only for the codec of a connection taking over a detached session (HttpExchange::attach):
  // the client's steps. On kCommit the codec should return from decode() right after the
  // packet that committed: later bytes are the session's, decoded by its own codec.
  virtual void onTransportSwitch(TransportStep step) { (void)step; }

 protected:
  ~CodecSink() = default;
};

// Where a session starts in one of its streams (reliable delivery, docs/reliability.md). The
// client asks to resume with handshake fields the codec maps from its wire form: header
// `x-imgate-resume` or query `resume`, a JSON object {"<stream>": {"epoch": "<hex>", "seq": N}},
// or, for the user stream alone, `epoch` + `last_seq` (headers x-epoch / x-last-seq).
struct StreamStart {
  enum class Outcome : uint8_t {
    kFresh,       // no resume asked: live messages from `seq` on (plus what was stored offline)
    kRecovered,   // the missed messages after the client's seq follow, before any new one
    kImpossible,  // epoch changed or history too short: the client must resync from its backend
  };
  std::string stream;  // "user", "room:<name>", "all"
  uint64_t epoch = 0;  // the stream's current epoch (0: no history yet)
  uint64_t seq = 0;    // the last seq before what this session gets
  Outcome outcome = Outcome::kFresh;
  uint64_t replayed = 0;  // messages that follow at once (recovered or stored while offline)
};

// What the core tells a codec once its session is open (every onOpen hook passed).
struct SessionOpened {
  uint64_t session_id = 0;
  int64_t server_time_ms = 0;                   // wall clock, for the client's clock offset
  std::chrono::milliseconds idle_timeout{0};    // the server closes after this much silence
  std::chrono::milliseconds ping_interval{0};   // server pings (0: the client must ping)
  Identity identity;                            // as set by the auth stage
  // The session's streams with history (reliable delivery); the replayed messages are encoded
  // right after onOpened, before any live one.
  std::vector<StreamStart> streams;
};

// One per connection. No sockets, no event loop, no clocks: bytes in, messages out, and back.
class Codec {
 public:
  virtual ~Codec() = default;

  // Consumes a prefix of `in` and returns its length; the core keeps the rest and calls again
  // with more bytes appended. Protocol-level replies (pong, close echo) go to `out`. On error
  // the core calls encodeClose(error.code, ...) and closes the connection.
  virtual Result<size_t> decode(std::string_view in, CodecSink& sink, OutBuffer& out) = 0;

  // Encodes one outbound message for this session.
  virtual Status encode(const Message& message, OutBuffer& out) = 0;

  // Fan-out support. Sessions whose codecs (of the same class) return the same non-zero key for
  // a message get byte-identical encodings, so the core calls encodeShared() once per key per fan-out and
  // appends the result to each session with appendShared(). Zero means "encode per session".
  virtual uint64_t sharedEncodingKey(const Message& message) const {
    (void)message;
    return 0;
  }
  virtual Bytes encodeShared(const Message& message) const {
    (void)message;
    return nullptr;
  }

  // The session was accepted: write the protocol's hello answer if it has one (session id,
  // heartbeat, server time). Called once, before any encode().
  virtual void onOpened(const SessionOpened& opened, OutBuffer& out) {
    (void)opened;
    (void)out;
  }

  // True when this session's client acks sequenced pushes (kAck with stream and seq, e.g. TCP
  // PUSH_ACK or the WebSocket envelope's ack): the core then retransmits its unacked reliable
  // messages and counts its acks for the push API's wait_ack. False: sent once.
  virtual bool acksDownlink() const { return false; }

  // A keep-alive probe from the server (WebSocket ping). Optional.
  virtual void encodePing(OutBuffer& out) { (void)out; }

  // The last bytes before the core closes the connection (WebSocket close frame, ...).
  virtual void encodeClose(Errc code, std::string_view reason, OutBuffer& out) = 0;

  // A detached session's codec, when a connection takes the session over (HttpExchange::attach,
  // TransportStep::kCommit): `probe` is the codec that ran the connection until then (of the
  // same module), `queued` the output written for the polling transport and not yet fetched.
  // The codec switches to the connection's framing, writes `queued` re-framed to `out`, and
  // decodes the connection's bytes from now on. An error closes the session.
  virtual Status attachTransport(Codec& probe, std::string queued, OutBuffer& out) {
    (void)probe;
    (void)queued;
    (void)out;
    return fail(Errc::kInternal, "this codec cannot change transports");
  }
};
using CodecPtr = std::unique_ptr<Codec>;

// What became of a request to a detached session (HttpExchange::poll and feed).
struct DetachedResult {
  enum class Status : uint8_t {
    kOk,       // poll: `bytes` are what the session's codec wrote since the last poll (empty
               // when the poll was released without data: max_wait, transport upgrade);
               // feed: the codec consumed the whole body (even if it then closed the session)
    kUnknown,  // no such session (never was, closed, or moved onto a connection)
    kOverlap,  // a second poll while one waits, or a second feed while one is consumed: a
               // client bug Engine.IO servers answer by closing the session, as the core does
  };
  Status status = Status::kOk;
  std::string bytes;
};
using DetachedCallback = std::function<void(DetachedResult)>;

// One HTTP request routed to a module's location. Owned by the core and shared with the module,
// which may answer later (after async work) on the same worker thread.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual const HttpRequest& request() const = 0;
  virtual std::string_view location() const = 0;  // the matched prefix, e.g. "/v1/"
  // Sends the response (once; later calls are ignored, as are calls after the client left).
  virtual void respond(HttpResponse response) = 0;
  // Turns the connection into a long-lived session driven by `codec`. The core first runs the
  // pipeline's onOpen hooks (auth): on reject it answers with the HTTP status for the error; on
  // pass it writes `accept` (e.g. 101 Switching Protocols) and hands all later bytes to the
  // codec. `subprotocols` are the client's offers, visible to stages through Session.
  // When the location's ProtocolConfig::handshakeInBand() is true, the order changes: `accept`
  // is written at once, its body (if any) right after the headers as the protocol's first bytes
  // (e.g. Engine.IO's open packet in a WebSocket frame), and the codec decodes until it calls
  // CodecSink::onHello; onOpen then runs on the hello, and a refusal goes to encodeClose().
  virtual void upgrade(CodecPtr codec, HttpResponse accept, std::vector<std::string> subprotocols) = 0;

  // ---- Detached sessions: transports made of many requests (HTTP long-polling) ----
  //
  // Opens a session that has no connection of its own. It lives on this worker, reached by
  // later requests (on any connection and worker) that name it by `key` through poll() and
  // feed(), until it closes or a connection takes it over (attach()). `key` must be
  // unguessable (it is the only credential of those requests) and unique; the module makes it.
  // As upgrade(): the pipeline's onOpen runs first and `accept` answers this request on pass
  // (an HTTP error on reject), or, when handshakeInBand(), `accept` is sent at once and the
  // codec's hello (decoded from a feed) opens it. The session is admitted like a client
  // connection (config `limits`; over a limit this request is answered 503 instead) and holds
  // that slot until it ends. Everything the codec writes waits in the
  // session's output buffer (bounded by sessions.max_outbound) for the next poll. The session
  // closes like any other (idle timeout, kick, ...); its last bytes wait sessions.close_timeout
  // for a poll to fetch them.
  virtual void detach(std::string key, CodecPtr codec, HttpResponse accept) = 0;
  // A long poll: `done` runs on this exchange's worker with what the session's codec wrote,
  // at once if anything is waiting, else as soon as something is, when the session closes
  // (its last bytes), or after `max_wait` (empty). The core closes the session when this
  // exchange's client has gone by then and there were bytes for it (they would be lost).
  virtual void poll(std::string_view key, std::chrono::milliseconds max_wait,
                    DetachedCallback done) = 0;
  // Hands `body` to the session's codec as input (decode() sees it starting at its beginning,
  // never glued to an earlier body); `done` runs on this worker once it is consumed, later than
  // at once when the session's pipeline is paused (backpressure for the client's sends).
  virtual void feed(std::string_view key, std::string body, DetachedCallback done) = 0;
  // This request is a connection taking over detached session `key`: answered `unknown` when
  // no session has that key. Otherwise `accept` (101) is written at once and `codec` decodes what
  // follows, reporting the client's steps through
  // CodecSink::onTransportSwitch: at kProbe the session's waiting poll is released (empty) and
  // later ones are answered at once; at kCommit the connection becomes the session's (its
  // codec's attachTransport()), on the session's worker. If the session is gone by then, the
  // connection closes with `codec`'s encodeClose(kNotFound). Messages the codec decodes before
  // kCommit are dropped; a decode error closes this connection only.
  virtual void attach(std::string key, CodecPtr codec, HttpResponse accept,
                      HttpResponse unknown) = 0;
  // False once the client has gone away.
  virtual bool alive() const = 0;
  virtual Hub& hub() = 0;
  virtual Dispatcher& dispatcher() = 0;
};
using HttpExchangePtr = std::shared_ptr<HttpExchange>;

// Compiled protocol configuration: immutable and shared by all workers.
class ProtocolConfig {
 public:
  virtual ~ProtocolConfig() = default;
  // Stream listeners: decides from the first bytes whether this protocol takes the connection.
  // Must not consume or allocate.
  virtual Sniff sniff(std::string_view first_bytes) const {
    (void)first_bytes;
    return Sniff::kNoMatch;
  }
  virtual CodecPtr createCodec() const { return nullptr; }
  // True when the codec delivers a hello (CodecSink::onHello) before the session may open; the
  // core then waits for it (sessions.handshake_timeout) instead of running the pipeline's onOpen
  // at accept time. Stream listeners, and HTTP upgrades (see HttpExchange::upgrade).
  virtual bool handshakeInBand() const { return false; }
  // Server pings for this protocol's sessions (Codec::encodePing). `interval` zero: the core's
  // sessions.ping_interval applies (a ping after that much inbound silence). `always`: ping
  // every interval whatever the traffic, for protocols whose clients time out without pings
  // (Engine.IO).
  struct Heartbeat {
    std::chrono::milliseconds interval{0};
    bool always = false;
  };
  virtual Heartbeat heartbeat() const { return {}; }
  // HTTP listeners: handles one request for the module's location.
  virtual void onHttpRequest(const HttpExchangePtr& exchange) const {
    exchange->respond(HttpResponse::json(404, R"({"error":"not_found","reason":"no handler"})"));
  }
  // HTTP listeners: true when every request of this location is answered with respond() alone
  // (never upgrade, detach or attach). The core then starts the next pipelined request of a
  // keep-alive connection before this one is answered (up to 32 in flight per connection,
  // answers written in request order as HTTP/1.1 requires, several per write), so a client
  // that pipelines is not held to one round trip per request. An upgrade, detach or attach on
  // such an exchange is answered 500. Default false: one request at a time.
  virtual bool concurrentRequests() const { return false; }
};
using ProtocolConfigPtr = std::shared_ptr<const ProtocolConfig>;

}  // namespace imgate
