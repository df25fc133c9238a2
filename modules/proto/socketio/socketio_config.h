// SPDX-License-Identifier: Apache-2.0
// proto.socketio's compiled configuration: the HTTP request router of one location (Engine.IO
// handshake checks, transports, HTTP long-polling, the polling -> WebSocket upgrade, CORS), as
// the reference server does it (socket.io packages/engine.io: server.ts, transports/polling.ts).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/runtime.h"
#include "modules/proto/websocket/ws_handshake.h"
#include "sio_codec.h"

namespace imgate::mod::socketio {

// The HTTP side of one location (module keys of the same names).
struct SioHttpSettings {
  bool polling = true;    // `transports` holds "polling"
  bool websocket = true;  // `transports` holds "websocket"
  // Polling sessions may move to WebSocket: their open packet offers "websocket" (when enabled)
  // and a websocket request with a sid takes the session over.
  bool allow_upgrades = true;
  // Origins allowed to read polling responses from a browser page of another origin (CORS),
  // as normalizeCorsOrigin() returns them; "*" allows any. Empty: no CORS headers at all.
  std::vector<std::string> cors_origins;
  bool cors_credentials = false;             // Access-Control-Allow-Credentials: true
  std::chrono::seconds cors_max_age{0};      // preflight cache; 0: no Access-Control-Max-Age
};

// Counters bumped by the router; null members are skipped (tests).
struct SioCounters {
  Counter* handshakes = nullptr;  // new sessions handed to the core (either transport)
  Counter* upgrades = nullptr;    // polling sessions whose client committed to a WebSocket
  Counter* refused = nullptr;     // requests answered with an Engine.IO error or HTTP error
};

// A `cors_origins` entry as compared with Origin headers: "*", or scheme "://" host [":" port]
// in lower case (browsers send Origin so). Fails (kInvalidConfig) for anything else: a path or
// trailing '/', spaces, control characters, an empty host.
[[nodiscard]] Result<std::string> normalizeCorsOrigin(std::string_view origin);

// Requests, in the order they are checked (codes are the reference's Engine.IO errors, answered
// 400 {"code":N,"message":"..."} as application/json):
//   OPTIONS, when cors_origins is set         -> 204 preflight (whatever the query, as the
//                                                reference's cors middleware runs first)
//   EIO other than 4                          -> code 5 "Unsupported protocol version"
//   transport not "polling"/"websocket", or
//     not in `transports`                     -> code 0 "Transport unknown"
//   polling, no sid: method other than GET    -> code 2 "Bad handshake method"
//   polling, no sid: GET                      -> HttpExchange::detach(new sid, SioCodec on
//                                                polling, 200 with the open packet)
//   polling/websocket, sid not one we issue   -> code 1 "Session ID unknown"
//   polling, sid: GET                         -> HttpExchange::poll (waiting at most
//                                                ping_interval + ping_timeout): 200 with the
//                                                packets ("6", a noop, when there are none)
//   polling, sid: POST                        -> body above max_payload: 413 (empty body, as the
//                                                reference); empty body: code 3; else
//                                                HttpExchange::feed: 200 "ok" (text/html, as the
//                                                reference)
//   polling, sid: any other method            -> 500, empty body (the reference's answer)
//   poll/feed: no such session                -> code 1; kOverlap -> code 3 (the core closes
//                                                the session, as the reference does)
//   websocket: the WebSocket handshake's own errors (400/405/426, ws_handshake.h)
//   websocket, no sid                         -> HttpExchange::upgrade(SioCodec on WebSocket,
//                                                101 with the open packet, no upgrades)
//   websocket, sid, allow_upgrades off        -> code 3 "Bad request"
//   websocket, sid                            -> HttpExchange::attach(sid, SioProbeCodec, 101),
//                                                code 1 when the core has no such session
// Polling responses carry Content-Type text/plain; charset=UTF-8 and Cache-Control: no-store.
// With cors_origins set, every response but a 101 carries the CORS headers for an allowed
// Origin (Access-Control-Allow-Origin, and -Credentials when cors_credentials), and Vary:
// Origin unless cors_origins is "*"; a request from another origin simply gets none.
class SocketIoConfig final : public ProtocolConfig {
 public:
  SocketIoConfig(std::shared_ptr<const SocketIoSettings> settings, SioHttpSettings http,
                 SioCounters counters);

  bool handshakeInBand() const override { return !settings_->engineio_only; }
  Heartbeat heartbeat() const override { return {settings_->ping_interval, true}; }
  void onHttpRequest(const HttpExchangePtr& exchange) const override;

  // The longest a poll waits for data: a ping is due every ping_interval, so a poll normally
  // returns within it; ping_timeout on top covers a late one.
  std::chrono::milliseconds pollWait() const {
    return settings_->ping_interval + settings_->ping_timeout;
  }
  const SioHttpSettings& httpSettings() const { return http_; }

 private:
  void onPolling(const HttpExchangePtr& exchange, const std::string& sid) const;
  void onWebSocket(const HttpExchangePtr& exchange, const std::string& sid) const;
  void onPreflight(const HttpExchangePtr& exchange) const;
  void refuse(const HttpExchangePtr& exchange, EioError error) const;
  // The CORS headers for `request` (see above), appended to `headers`.
  void addCorsHeaders(const HttpRequest& request, std::vector<HttpHeader>& headers) const;
  bool originAllowed(const HttpRequest& request) const;

  std::shared_ptr<const SocketIoSettings> settings_;
  SioHttpSettings http_;
  websocket::WsSettings ws_;
  SioCounters counters_;
  bool cors_any_ = false;  // cors_origins holds "*"
};

}  // namespace imgate::mod::socketio
