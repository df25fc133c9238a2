// SPDX-License-Identifier: Apache-2.0
// proto.socketio: the official Socket.IO clients (v3/v4: Engine.IO v4, Socket.IO v5) against
// imgate. This file: config schema and the factory. The request router is SocketIoConfig
// (socketio_config.h), the session SioCodec (sio_codec.h).
#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "imgate/sdk/module.h"
#include "socketio_config.h"

namespace imgate::mod::socketio {
namespace {

constexpr std::array<std::string_view, 2> kModes = {"socketio", "engineio"};
constexpr std::string_view kPolling = "polling";
constexpr std::string_view kWebSocket = "websocket";

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
    {.key = "transports", .type = ParamType::kStringList,
     .default_value = "[\"polling\", \"websocket\"]", .min = 1, .max = 2,
     .help = "Engine.IO transports served, \"polling\" (HTTP long-polling) and/or \"websocket\"; "
             "both by default, as the reference server, so clients with default options "
             "connect (they start with polling and upgrade); a request for another one gets "
             "{\"code\":0,\"message\":\"Transport unknown\"}"},
    {.key = "allow_upgrades", .type = ParamType::kBool, .default_value = "true",
     .help = "polling sessions may move to a WebSocket connection (the open packet offers "
             "\"websocket\" when it is in transports); on by default, as the reference server"},
    {.key = "cors_origins", .type = ParamType::kStringList, .default_value = "[]",
     .max = 1'000,
     .help = "origins (\"https://app.example.com\") whose pages may use the polling transport "
             "from another origin (CORS headers and OPTIONS preflights), or \"*\" for any; empty "
             "by default: no CORS headers, as the reference server without its cors option "
             "(WebSocket is not subject to CORS)"},
    {.key = "cors_credentials", .type = ParamType::kBool, .default_value = "false",
     .help = "Access-Control-Allow-Credentials: true, for clients that send cookies "
             "(withCredentials: true); not with cors_origins \"*\", which browsers refuse to "
             "combine with credentials"},
    {.key = "cors_max_age", .type = ParamType::kDuration, .default_value = "0", .min = 0,
     .max = 86'400'000,
     .help = "how long browsers may cache a preflight answer (Access-Control-Max-Age, whole "
             "seconds); 0, the default, sends none (browsers then cache it about 5 s); "
             "browsers cap it (Chromium 2h, Firefox 24h)"},
};

class SocketIoFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.socketio"; }
  std::string_view description() const override {
    return "Socket.IO v5 / Engine.IO v4 server for the official socket.io clients (HTTP "
           "long-polling and websocket transports, upgrades, CORS)";
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
      const bool control = std::any_of(nsp.begin(), nsp.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == '\x7f';
      });
      if (nsp.empty() || nsp[0] != '/' || nsp.size() > settings->limits.max_namespace_bytes ||
          control) {
        return fail(Errc::kInvalidConfig,
                    config.location("namespaces") + ": \"" + nsp +
                        "\" must start with \"/\", be at most " +
                        std::to_string(settings->limits.max_namespace_bytes) +
                        " bytes and hold no control characters");
      }
    }
    SioHttpSettings http;
    http.polling = false;
    http.websocket = false;
    for (const std::string& transport : config.getStringList("transports")) {
      if (transport == kPolling) {
        http.polling = true;
      } else if (transport == kWebSocket) {
        http.websocket = true;
      } else {
        return fail(Errc::kInvalidConfig, config.location("transports") + ": unknown transport \"" +
                                              transport + "\" (polling, websocket)");
      }
    }
    http.allow_upgrades = config.getBool("allow_upgrades");
    for (const std::string& origin : config.getStringList("cors_origins")) {
      auto normalized = normalizeCorsOrigin(origin);
      if (!normalized) {
        return fail(Errc::kInvalidConfig,
                    config.location("cors_origins") + ": " + normalized.error().message);
      }
      http.cors_origins.push_back(std::move(*normalized));
    }
    http.cors_credentials = config.getBool("cors_credentials");
    if (http.cors_credentials &&
        std::find(http.cors_origins.begin(), http.cors_origins.end(), "*") !=
            http.cors_origins.end()) {
      return fail(Errc::kInvalidConfig,
                  config.location("cors_credentials") +
                      ": cors_credentials needs the origins listed: browsers refuse credentials "
                      "with Access-Control-Allow-Origin \"*\"");
    }
    http.cors_max_age =
        std::chrono::duration_cast<std::chrono::seconds>(config.getDuration("cors_max_age"));
    Stats& stats = context.stats();
    return std::make_shared<const SocketIoConfig>(
        settings, std::move(http),
        SioCounters{&stats.counter("socketio_handshakes"), &stats.counter("socketio_upgrades"),
                    &stats.counter("socketio_refused")});
  }
};

}  // namespace
}  // namespace imgate::mod::socketio

IMGATE_MODULE(proto_socketio, imgate::mod::socketio::SocketIoFactory, "0.1.0")
