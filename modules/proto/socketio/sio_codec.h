// SPDX-License-Identifier: Apache-2.0
// proto.socketio over the WebSocket transport: Engine.IO v4 packets in WebSocket frames, Socket.IO
// v5 packets in Engine.IO messages, mapped onto the transport-neutral Message (DESIGN.md §3).
//
// Session life, as the core sees it (ProtocolConfig::handshakeInBand() is true):
//   upgrade   -> the 101 carries the Engine.IO open packet as its first frame;
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
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "eio_packet.h"
#include "imgate/sdk/codec.h"
#include "modules/proto/websocket/ws_codec.h"
#include "sio_packet.h"

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

  bool knownNamespace(std::string_view nsp) const;
};

class SioWsCodec final : public Codec {
 public:
  // `upgrade` is the HTTP request that opened the WebSocket: its headers and query become the
  // hello's, so stages see cookies, Origin and query parameters as for any WebSocket session.
  SioWsCodec(std::shared_ptr<const SocketIoSettings> settings, HttpRequest upgrade,
             const websocket::WsCodecOptions& ws);

  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // Shared for data messages to the main namespace; zero otherwise and after close.
  uint64_t sharedEncodingKey(const Message& message) const override;
  Bytes encodeShared(const Message& message) const override;
  // Answers the hello's CONNECT with {"sid": ...}.
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
  // Engine.IO ping ("2"); the client answers "3".
  void encodePing(OutBuffer& out) override;
  // Before the session opened: CONNECT_ERROR {"message": reason}. Kicked, evicted or a normal
  // close: DISCONNECT for every connected namespace ("io server disconnect": the client does not
  // reconnect). Anything else (shutdown, timeouts, errors): Engine.IO close, so the client
  // reconnects. Then the WebSocket close frame.
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

  // The Engine.IO open packet's JSON for a new session, and the 101's body carrying it.
  static std::string openFrame(const SocketIoSettings& settings, std::string_view sid);

 private:
  class FrameSink;
  [[nodiscard]] Status onFrame(Message&& frame, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onSioPacket(SioAssembled&& assembled, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status onConnect(const SioPacket& packet, CodecSink& sink, OutBuffer& out);
  [[nodiscard]] Status encodeEngineIo(const Message& message, OutBuffer& out);
  void sendSio(const SioPacket& packet, OutBuffer& out, const std::vector<std::string>* buffers);
  void sendText(std::string text, OutBuffer& out);
  std::string connectAnswer(std::string_view nsp) const;

  std::shared_ptr<const SocketIoSettings> settings_;
  HttpRequest upgrade_;
  websocket::WsCodec ws_;
  SioBinaryAssembler assembler_;
  std::string sid_;                  // Socket.IO session id, sent in CONNECT answers
  std::string hello_nsp_;            // namespace of the CONNECT that was the hello
  std::set<std::string, std::less<>> connected_;  // namespaces this client joined
  bool hello_sent_ = false;
  bool opened_ = false;
  bool closed_ = false;
};

}  // namespace imgate::mod::socketio
