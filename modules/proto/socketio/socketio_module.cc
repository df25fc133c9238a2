// SPDX-License-Identifier: Apache-2.0
// proto.socketio: the official Socket.IO clients (v3/v4: Engine.IO v4, Socket.IO v5) against
// imgate. This file: config schema, the request router (Engine.IO handshake checks, transport
// choice) and the factory. The session itself is SioWsCodec (sio_codec.h).
#include <array>
#include <memory>
#include <string>

#include "imgate/sdk/module.h"
#include "modules/proto/websocket/ws_handshake.h"
#include "sio_codec.h"

namespace imgate::mod::socketio {
namespace {

constexpr std::array<std::string_view, 2> kModes = {"socketio", "engineio"};

constexpr ParamSpec kSchema[] = {
    {.key = "ping_interval", .type = ParamType::kDuration, .default_value = "25s", .min = 1'000,
     .max = 600'000,
     .help = "Engine.IO pingInterval: the server pings every session this often, whatever the "
             "traffic (clients close the connection when a ping is late by more than "
             "ping_timeout); sent to clients in the open packet"},
    {.key = "ping_timeout", .type = ParamType::kDuration, .default_value = "20s", .min = 1'000,
     .max = 600'000,
     .help = "Engine.IO pingTimeout, sent in the open packet: how long clients wait for a ping "
             "beyond ping_interval before they reconnect"},
    {.key = "max_payload", .type = ParamType::kSize, .default_value = "1000000", .min = 1'024,
     .max = 16 << 20,
     .help = "Engine.IO maxPayload: largest message in either direction (a bigger one closes the "
             "session with message_too_big); sent in the open packet"},
    {.key = "namespaces", .type = ParamType::kStringList, .default_value = "[\"/\"]",
     .help = "Socket.IO namespaces clients may connect to (\"/\" is always allowed); a CONNECT "
             "to another one gets CONNECT_ERROR \"Invalid namespace\""},
    {.key = "max_attachments", .type = ParamType::kInt, .default_value = "10", .min = 1,
     .max = 1'000, .help = "most binary attachments in one packet"},
    {.key = "mode", .type = ParamType::kEnum, .default_value = "socketio", .choices = kModes,
     .help = "socketio: Socket.IO over Engine.IO (socket.io-client); engineio: plain Engine.IO "
             "for engine.io-client, each Engine.IO message one message, auth from the "
             "handshake's query or headers (no CONNECT packet)"},
    {.key = "recovery", .type = ParamType::kBool, .default_value = "false",
     .help = "Socket.IO connection state recovery (socket.recovered on the client): CONNECT "
             "answers carry a pid, events without an ack id carry the session's stream "
             "positions as their last argument, and a reconnecting client resumes from them "
             "for as long as the core keeps the streams' history. Off by default because "
             "every event gets an extra argument and is encoded per session (socketio mode)"},
    {.key = "recovery_max_streams", .type = ParamType::kInt, .default_value = "100", .min = 1,
     .max = 10'000,
     .help = "most streams (user, all, rooms) one recovery offset tracks; each costs about 30 "
             "bytes plus its name on every event, and a session in more streams gets a fresh "
             "session instead of a recovery when it reconnects"},
};

class SocketIoConfig final : public ProtocolConfig {
 public:
  SocketIoConfig(std::shared_ptr<const SocketIoSettings> settings, Counter& handshakes,
                 Counter& refused)
      : settings_(std::move(settings)), handshakes_(handshakes), refused_(refused) {
    ws_.max_message = settings_->max_payload;
    ws_.deflate.enabled = false;  // as the reference server (perMessageDeflate: false)
  }

  bool handshakeInBand() const override { return !settings_->engineio_only; }
  Heartbeat heartbeat() const override { return {settings_->ping_interval, true}; }

  void onHttpRequest(const HttpExchangePtr& exchange) const override {
    const HttpRequest& request = exchange->request();
    const auto eio = request.queryParam("EIO");
    if (!eio || *eio != "4") {
      refuse(exchange, EioError::kUnsupportedProtocolVersion);
      return;
    }
    const auto transport = request.queryParam("transport");
    if (!transport || *transport != "websocket") {
      // HTTP long-polling (and so the polling -> websocket upgrade) is not served yet: clients
      // must use transports: ["websocket"]. docs/protocol/socketio.md.
      refuse(exchange, EioError::kUnknownTransport);
      return;
    }
    if (request.queryParam("sid")) {
      refuse(exchange, EioError::kUnknownSid);  // no polling sessions to upgrade
      return;
    }
    auto decision = websocket::evaluateUpgrade(request, ws_);
    if (!decision) {
      refused_.add();
      exchange->respond(std::move(decision.error()));
      return;
    }
    auto sid = newSessionId();
    if (!sid) {
      exchange->respond(
          HttpResponse::json(500, R"({"error":"internal","reason":"no randomness"})"));
      return;
    }
    handshakes_.add();
    HttpResponse accept = std::move(decision->response);
    accept.body = SioWsCodec::openFrame(*settings_, *sid);
    exchange->upgrade(std::make_unique<SioWsCodec>(settings_, request, decision->codec),
                      std::move(accept), std::move(decision->offered_subprotocols));
  }

 private:
  void refuse(const HttpExchangePtr& exchange, EioError error) const {
    refused_.add();
    exchange->respond(HttpResponse::json(eioErrorHttpStatus(error), eioErrorBody(error)));
  }

  std::shared_ptr<const SocketIoSettings> settings_;
  websocket::WsSettings ws_;
  Counter& handshakes_;
  Counter& refused_;
};

class SocketIoFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.socketio"; }
  std::string_view description() const override {
    return "Socket.IO v5 / Engine.IO v4 server for the official socket.io clients (websocket "
           "transport)";
  }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    auto settings = std::make_shared<SocketIoSettings>();
    settings->ping_interval = config.getDuration("ping_interval");
    settings->ping_timeout = config.getDuration("ping_timeout");
    settings->max_payload = static_cast<uint32_t>(config.getSize("max_payload"));
    settings->limits.max_attachments = static_cast<uint32_t>(config.getInt("max_attachments"));
    settings->limits.max_packet_bytes = settings->max_payload;
    settings->namespaces = config.getStringList("namespaces");
    settings->engineio_only = config.getString("mode") == "engineio";
    settings->recovery = config.getBool("recovery");
    settings->recovery_max_streams = static_cast<size_t>(config.getInt("recovery_max_streams"));
    for (const std::string& nsp : settings->namespaces) {
      if (nsp.empty() || nsp[0] != '/' || nsp.size() > settings->limits.max_namespace_bytes) {
        return fail(Errc::kInvalidConfig,
                    "namespaces: \"" + nsp + "\" must start with \"/\" and be at most " +
                        std::to_string(settings->limits.max_namespace_bytes) + " bytes");
      }
    }
    return std::make_shared<const SocketIoConfig>(settings,
                                                  context.stats().counter("socketio_handshakes"),
                                                  context.stats().counter("socketio_refused"));
  }
};

}  // namespace
}  // namespace imgate::mod::socketio

IMGATE_MODULE(proto_socketio, imgate::mod::socketio::SocketIoFactory, "0.1.0")
