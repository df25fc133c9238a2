// SPDX-License-Identifier: Apache-2.0
#pragma once

// The client side of each protocol, sans-I/O. One ClientCodec per event-loop thread serves all
// of that thread's connections: a connection's whole protocol state is one byte (ConnState),
// and its unparsed bytes are handed back by the caller on the next call, so an idle connection
// costs no codec memory at all.

#include <cstdint>
#include <string>
#include <string_view>

#include "options.h"

namespace imgate::bench::load {

enum ConnState : uint8_t {
  kStateIdle = 0,    // not started
  kStateConnecting,  // TCP connect in progress
  kStateHttp,        // upgrade request sent, waiting for 101
  kStateSioOpen,     // Socket.IO: waiting for the Engine.IO open packet
  kStateSioConnect,  // Socket.IO: CONNECT sent, waiting for its answer
  kStateWelcome,     // envelope: waiting for {"t":"welcome"}
  kStateHello,       // TCP frames: HELLO sent, waiting for HELLO_ACK
  kStateOpen,        // authenticated; counts as established
  kStateDone,        // closed or failed
};

inline bool isHandshaking(uint8_t s) { return s >= kStateConnecting && s < kStateOpen; }

// What a codec reports while consuming a connection's bytes. Calls happen synchronously inside
// ClientCodec calls, for the connection the caller passed in.
class ClientEvents {
 public:
  virtual ~ClientEvents() = default;
  // Bytes to write to the connection (a pong, an ack, the next handshake step).
  virtual void send(std::string_view bytes) = 0;
  // The session is authenticated and open (state is already kStateOpen).
  virtual void established() = 0;
  // A downlink message carrying a bench payload (publish time, message number).
  virtual void delivery(uint64_t t_ns, uint64_t n) = 0;
  // An answer to an uplink message: an ack (ok or error) or an echo.
  virtual void uplinkReply(bool ok) = 0;
  // The server refused or closed the session, or sent bytes this client cannot parse. Called
  // while the state still says where the connection was; the codec then sets kStateDone.
  virtual void closed(std::string_view reason) = 0;
};

struct CodecConfig {
  Protocol protocol = Protocol::kWs;
  std::string host_header;  // Host: of upgrade requests
  std::string ws_path = "/ws";
  std::string sio_path = "/socket.io/";
  std::string nchan_path = "/sub";
  std::string room = "bench";  // Nchan: the room channel every subscriber also listens on
  std::string jwt_secret;
  std::string users_prefix = "u";
  int64_t jwt_iat_s = 0;
  int64_t jwt_exp_s = 0;
  uint64_t ws_salt = 0;
  uint32_t uplink_bytes = 64;
  // Added to uplink message numbers: the route stage answers an id it saw from the same user
  // within its dedupe window from cache, so ids must not repeat across runs with the same
  // users. Kept below 2^53 (Socket.IO ack ids are JavaScript numbers).
  uint64_t uplink_id_base = 0;
  // Largest frame or message accepted from the server; larger closes the connection.
  uint64_t max_message = 16u << 20;
};

class ClientCodec {
 public:
  explicit ClientCodec(CodecConfig config);

  // The TCP connection is up: sends the upgrade request (WebSocket, Socket.IO, Nchan) or the
  // HELLO (TCP frames) and moves the state on.
  void start(uint8_t& state, uint32_t id, ClientEvents& events);

  // Consumes the complete units (HTTP head, frames, whole fragmented messages) at the start of
  // [data, data+size) and returns how many bytes it used; the caller keeps the rest and passes
  // it again, followed by new bytes, next time. Stops early when the state becomes kStateDone.
  size_t consume(uint8_t& state, uint32_t id, const uint8_t* data, size_t size,
                 ClientEvents& events);

  // Sends uplink message k (k > 0) on an open session: a WebSocket text, an envelope msg with
  // id k, a TCP SEND with ACK_REQUIRED and id k, or a Socket.IO event with ack id k.
  void sendUplink(uint32_t id, uint64_t k, ClientEvents& events);

  // A keepalive: WebSocket ping, envelope {"t":"ping"}, TCP PING. Socket.IO clients never
  // ping (Engine.IO v4: the server does), so nothing is sent there.
  void sendPing(ClientEvents& events);

  std::string user(uint32_t id) const;
  std::string token(uint32_t id) const;

  // Most bytes a connection may hold unparsed (one frame or message plus headers).
  size_t maxBuffered() const { return size_t(config_.max_message) + 64; }

 private:
  size_t consumeWebSocket(uint8_t& state, uint32_t id, const uint8_t* data, size_t size,
                          ClientEvents& events);
  size_t consumeTcp(uint8_t& state, const uint8_t* data, size_t size, ClientEvents& events);
  size_t upgradeResponse(uint8_t& state, uint32_t id, std::string_view buf, ClientEvents& events);
  void onWsMessage(uint8_t& state, uint32_t id, std::string_view msg, bool text,
                   ClientEvents& events);
  void onEnvelope(uint8_t& state, std::string_view msg, ClientEvents& events);
  void onSocketIo(uint8_t& state, uint32_t id, std::string_view msg, ClientEvents& events);
  void sendWs(uint8_t opcode, std::string_view payload, ClientEvents& events);
  void fail(uint8_t& state, std::string_view reason, ClientEvents& events);
  uint32_t nextMask();

  CodecConfig config_;
  std::string out_;        // scratch for outgoing bytes
  std::string assembled_;  // a fragmented WebSocket message being put together
  std::string inflated_;   // a compressed TCP frame body
  std::string pad_;        // uplink padding
  uint64_t rng_;
};

}  // namespace imgate::bench::load
