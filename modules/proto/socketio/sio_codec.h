// SPDX-License-Identifier: Apache-2.0
// proto.socketio sessions: Engine.IO v4 packets over one of its transports (WebSocket frames, or
// HTTP long-polling payloads), Socket.IO v5 packets in Engine.IO messages, mapped onto the
// transport-neutral Message (DESIGN.md §3).
//
// Transports. A session starts on WebSocket (a websocket handshake without sid: HttpExchange::
// upgrade) or on polling (a polling handshake: HttpExchange::detach). Polling output is a
// stream of "\x1e" + packet in payload form (type digit + data; binary messages 'b' + base64):
// the poll handler drops the first byte and answers the rest as the response body. Polling
// input is one POST body per decode() call (never glued to another body). A polling session
// may move onto a WebSocket connection (attachTransport, after SioProbeCodec ran the
// "2probe"/"3probe"/"5" exchange); it never moves back.
//
// Session life, as the core sees it (ProtocolConfig::handshakeInBand() is true):
//   handshake -> the 101 carries the Engine.IO open packet as its first frame (polling: the
//                handshake's 200 carries it as its body);
//   CONNECT   -> the first Socket.IO CONNECT (to a configured namespace) is the hello: its auth
//                payload joins the upgrade request (auth.token -> Authorization: Bearer), the
//                pipeline's onOpen authenticates it, and onOpened answers CONNECT with the sid;
//                a refusal answers CONNECT_ERROR {"message": reason} and closes;
//   EVENT     -> one inbound Message: event = the event name, id = the ack id (decimal) when the
//                client wants an ack ("<id>@<namespace>" outside "/": each namespace counts its
//                own ids), payload = the arguments as a JSON array (exact bytes), or for
//                a BINARY_EVENT whose only argument is one attachment, the attachment's bytes
//                (PayloadType::kBinary); meta "nsp" for namespaces other than "/";
//   out       -> a data Message becomes EVENT [event or "message", payload] (payload embedded when
//                it is JSON, else a JSON string; binary as one attachment); an ack (kAck with the
//                client's id) becomes ACK [payload], or [{"error","reason"}] when meta "status" is
//                an error.
// Further CONNECTs to other configured namespaces share the session (and its identity).
//
// Reliable delivery (docs/reliability.md, docs/protocol/socketio.md):
//   acks      -> a reliable data Message with seq != 0 is sent as EVENT with an ack id the codec
//                allocates (one counter per session, so ids are unique across namespaces); the
//                client's ACK for that id (its handler called the ack callback) becomes
//                Message{kAck, stream, seq}. Unknown ids are ignored, as the reference does.
//                The last kMaxPendingAcks ids are remembered.
//   recovery  -> with SocketIoSettings::recovery, CONNECT answers carry {"sid","pid"}, every
//                EVENT without an ack id gets the session's offset (sio_recovery.h) as its last
//                argument, and a hello CONNECT whose auth holds {pid, offset} asks the core to
//                resume from the offset's positions (hello header x-imgate-resume). The answer
//                echoes the client's pid (socket.recovered == true) only when the core reports
//                kRecovered for every stream the offset names that the session has.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eio_packet.h"
#include "imgate/sdk/codec.h"
#include "modules/proto/websocket/ws_codec.h"
#include "sio_packet.h"
#include "sio_recovery.h"

namespace imgate::mod::socketio {

struct SocketIoSettings {
  std::chrono::milliseconds ping_interval{25'000};
  std::chrono::milliseconds ping_timeout{20'000};
  uint32_t max_payload = 1'000'000;  // Engine.IO maxPayload: largest message, either way
  std::vector<std::string> namespaces = {"/"};
  SioLimits limits;
  // Plain Engine.IO (engine.io-client without Socket.IO): each Engine.IO message is one Message
  // (text or binary payload as is), the session opens at the upgrade (auth from the handshake's
  // query or headers), no namespaces, events or acks.
  bool engineio_only = false;
  // Connection state recovery (module key `recovery`, Socket.IO mode only); see the top of
  // this file. How long a client may stay away and still recover is how long the core keeps
  // the streams' history.
  bool recovery = false;
  // Most streams one session's offset tracks (module key `recovery_max_streams`); a session in
  // more cannot recover (kUnrecoverableOffset).
  size_t recovery_max_streams = kDefaultRecoveryMaxStreams;

  bool knownNamespace(std::string_view nsp) const;
};

// Server -> client ack ids a session remembers: the oldest is forgotten beyond this, and its
// ACK then ignored (the core retransmits what stays unacked). 1024 reliable pushes in flight to
// one client is far beyond what an ack timeout lets pile up.
inline constexpr size_t kMaxPendingAcks = 1024;

enum class SioTransport : uint8_t { kWebSocket, kPolling };

// The record separator between packets of an HTTP long-polling payload.
inline constexpr char kEioRecordSeparator = '\x1e';

class SioCodec final : public Codec {
 public:
  // A session on the WebSocket transport. `handshake` is the HTTP request that opened the
  // session (the WebSocket upgrade, or the polling handshake): its headers and query become the
  // hello's, so stages see cookies, Origin and query parameters as for any WebSocket session.
  SioCodec(std::shared_ptr<const SocketIoSettings> settings, HttpRequest handshake,
           const websocket::WsCodecOptions& ws);
  // A session on the HTTP long-polling transport (HttpExchange::detach).
  SioCodec(std::shared_ptr<const SocketIoSettings> settings, HttpRequest handshake);

  // WebSocket: the client's bytes as frames. Polling: one POST body, whole: packets separated by
  // '\x1e', the last one ending at in.size(), validated as a whole first (decodeEioPayload's
  // errors and limits, max_payload bytes; not UTF-8: kInvalidPayload); returns in.size(), or
  // right after the separator that follows the hello CONNECT (the core gives the rest again
  // once the session opened), or after an Engine.IO close packet (what follows it is ignored).
  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // Polling only: text that is not JSON (plain Engine.IO mode sends it as is) must not hold a
  // '\x1e' (the payload format has no escape for it): such a message fails with
  // kInvalidPayload and is not sent.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // Shared for data messages to the main namespace; zero otherwise, after close, for reliable
  // sequenced messages (per-session ack ids) and for every message when recovery is on (the
  // offset is per session). The key tells the transports apart (their bytes differ).
  uint64_t sharedEncodingKey(const Message& message) const override;
  Bytes encodeShared(const Message& message) const override;
  // Answers the hello's CONNECT with {"sid": ...} (and "pid" with recovery on), and starts
  // tracking the positions in `opened.streams`.
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
  // True in Socket.IO mode: clients ack reliable pushes with the ack callback. Plain
  // Engine.IO has no acks.
  bool acksDownlink() const override { return !settings_->engineio_only; }
  // Engine.IO ping ("2"); the client answers "3". Both transports.
  void encodePing(OutBuffer& out) override;
  // Before the session opened: CONNECT_ERROR {"message": reason} (before any CONNECT: nothing
  // on WebSocket, Engine.IO close on polling). Kicked, evicted or a normal
  // close: DISCONNECT for every connected namespace ("io server disconnect": the client does not
  // reconnect). Anything else (shutdown, timeouts, errors): Engine.IO close, so the client
  // reconnects. Then, on WebSocket, the close frame (polling has no transport-level close).
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;
  // Polling -> WebSocket (TransportStep::kCommit). `probe` must be the SioProbeCodec that ran
  // the upgrade connection: its WebSocket options (negotiated at its handshake) become the
  // session's. `queued` (polling output not fetched by a poll) is written to `out` as frames:
  // text packets as text frames, 'b' + base64 packets as binary frames. Fails (kInternal) for
  // another codec, a session already on WebSocket, or `queued` that is not our polling output.
  [[nodiscard]] Status attachTransport(Codec& probe, std::string queued, OutBuffer& out) override;

  SioTransport transport() const { return ws_ ? SioTransport::kWebSocket : SioTransport::kPolling; }

  // The Engine.IO open packet of a new session ("0{...}", payload form: the polling handshake's
  // body) offering `upgrades`.
  static std::string openPacket(const SocketIoSettings& settings, std::string_view sid,
                                std::span<const std::string> upgrades);
  // The same packet, with no upgrades, in a WebSocket text frame: the 101's body.
  static std::string openFrame(const SocketIoSettings& settings, std::string_view sid);

 private:
  class FrameSink;
  [[nodiscard]] Result<size_t> decodePolling(std::string_view in, CodecSink& sink,
                                             OutBuffer& out);
  [[nodiscard]] Status onFrame(Message&& frame, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onPacket(EioPacket&& packet, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onBinary(std::string data, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onSioPacket(SioAssembled&& assembled, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onConnect(const SioPacket& packet, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status encodeEngineIo(const Message& message, OutBuffer& out);
  void sendSio(const SioPacket& packet, OutBuffer& out, const std::vector<std::string>* buffers);
  void sendText(std::string text, OutBuffer& out);
  void sendBinary(std::string_view data, OutBuffer& out);
  void stopDecoding();
  // No more output: closed, or the WebSocket close frame went out.
  bool silenced() const { return closed_ || (ws_ && ws_->closeSent()); }
  uint64_t transportKeyBits(const Message& message) const;
  std::string connectAnswer(std::string_view nsp) const;
  // Recovery on: `auth` (the hello's CONNECT payload, a JSON object) without pid and offset.
  // When they ask to resume, remembers them and sets `resume` to the x-imgate-resume value.
  std::string recoveryAuth(std::string_view auth, std::string& resume);
  void notePosition(std::string_view stream, uint64_t epoch, uint64_t seq);
  const std::string& offset();

  struct PendingAck {
    std::string nsp;
    std::string stream;
    uint64_t seq = 0;
  };
  struct Position {
    uint64_t epoch = 0;
    uint64_t seq = 0;
  };

  std::shared_ptr<const SocketIoSettings> settings_;
  // The request that opened the session, until the hello is built from it (then freed: a
  // long-lived session does not keep the upgrade's headers).
  std::unique_ptr<HttpRequest> handshake_;
  // WebSocket framing; empty while the session is on the polling transport.
  std::optional<websocket::WsCodec> ws_;
  SioBinaryAssembler assembler_;
  std::string sid_;                  // Socket.IO session id, sent in CONNECT answers
  std::string hello_nsp_;            // namespace of the CONNECT that was the hello
  std::set<std::string, std::less<>> connected_;  // namespaces this client joined
  bool hello_sent_ = false;
  bool opened_ = false;
  bool closed_ = false;
  bool stop_requested_ = false;  // polling: decode() returns after the current packet
  // Reliable pushes awaiting the client's ACK, by ack id (ids only grow, so the first entry is
  // the oldest).
  std::map<uint64_t, PendingAck> pending_acks_;
  uint64_t next_ack_id_ = 0;
  // Connection state recovery (settings_->recovery), made on first use: the pid sent in CONNECT
  // answers and the client's position in each stream.
  struct Recovery {
    std::string pid;
    std::map<std::string, Position, std::less<>> positions;
    bool overflow = false;  // more streams than recovery_max_streams: offsets say so
    std::string offset;     // encodeRecoveryOffset(positions), rebuilt when stale
    bool offset_stale = true;
  };
  std::unique_ptr<Recovery> recovery_;
  Recovery& recovery();
  // What the hello asked to resume: set by the hello when it names a pid and offset, dropped
  // at open.
  struct Resume {
    std::string pid;
    std::set<std::string, std::less<>> streams;
  };
  std::unique_ptr<Resume> resume_;
};

}  // namespace imgate::mod::socketio
