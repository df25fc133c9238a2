// SPDX-License-Identifier: Apache-2.0
// proto.websocket: the factory, its config schema and the registration line.
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "imgate/sdk/module.h"
#include "ws_envelope.h"
#include "ws_handshake.h"

namespace imgate::mod::websocket {

namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;

constexpr ParamSpec kSchema[] = {
    {.key = "max_message",
     .type = ParamType::kSize,
     .default_value = "64KiB",
     .min = 1,
     .max = 64 * kMiB,
     .help = "largest inbound message after reassembly and decompression (close 1009 above it); "
             "64KiB fits chat and signalling traffic and bounds per-session buffering"},
    {.key = "subprotocols",
     .type = ParamType::kStringList,
     .min = 0,
     .max = 64,
     .help = "Sec-WebSocket-Protocol values the server accepts; the first client offer in this "
             "list is selected. Default none: offers such as bearer.<jwt> are never echoed"},
    {.key = "envelope",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "accept the imgate.v1 (JSON envelope with ids, stream seqs, acks and resume) and "
             "imgate.v1.bin (TCP frames in binary messages) subprotocols (docs/websocket.md) "
             "when the client offers one, ahead of `subprotocols`; on by default because only "
             "clients that ask for them get them"},
    {.key = "permessage_deflate",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "negotiate RFC 7692 compression when the client offers it; on by default because "
             "JSON chat payloads shrink 3-5x and zlib state is only held while needed"},
    {.key = "server_no_context_takeover",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "always answer with server_no_context_takeover; off by default so clients that "
             "did not ask keep their usual settings (fan-out frames never use context anyway)"},
    {.key = "client_no_context_takeover",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "ask clients not to keep compression context, so the server frees its ~40KiB "
             "inflate state after every message; on by default for the per-session memory budget"},
    {.key = "server_max_window_bits",
     .type = ParamType::kInt,
     .default_value = "15",
     .min = 9,
     .max = 15,
     .help = "largest LZ77 window (log2) the server compresses with; 15 gives the best ratio, "
             "9 is zlib's minimum (offers asking for 8 are declined)"},
    {.key = "compress_min_size",
     .type = ParamType::kSize,
     .default_value = "64",
     .min = 0,
     .max = 64 * kMiB,
     .help = "outbound messages shorter than this are sent uncompressed; below ~64 bytes deflate "
             "rarely saves more than the CPU it costs"},
    {.key = "compression_level",
     .type = ParamType::kInt,
     .default_value = "1",
     .min = 1,
     .max = 9,
     .help = "zlib level for outbound messages; 1 is several times faster than 6 and loses "
             "little on short messages"},
    {.key = "session_deflater",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "keep a per-session deflate stream for messages encoded for one session when the "
             "client allows context takeover: better ratio for 1:1 traffic but up to ~256KiB per "
             "session; off by default for the per-session memory budget"},
};

bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

class WebSocketFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.websocket"; }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  std::string_view description() const override {
    return "RFC 6455 WebSocket server with RFC 7692 permessage-deflate";
  }

  Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext& context) const override {
    WsSettings settings;
    settings.max_message = static_cast<uint32_t>(config.getSize("max_message"));
    settings.subprotocols = config.getStringList("subprotocols");
    for (const std::string& name : settings.subprotocols) {
      if (name.empty() || !std::all_of(name.begin(), name.end(), isTokenChar)) {
        return fail(Errc::kInvalidConfig, config.location("subprotocols") + ": subprotocol \"" +
                                              name + "\" is not an http token");
      }
    }
    settings.envelope = config.getBool("envelope");
    for (std::string_view envelope : {kEnvelopeSubprotocol, kBinaryEnvelopeSubprotocol}) {
      if (!settings.envelope &&
          std::find(settings.subprotocols.begin(), settings.subprotocols.end(), envelope) !=
              settings.subprotocols.end()) {
        return fail(Errc::kInvalidConfig,
                    config.location("subprotocols") + ": \"" + std::string(envelope) +
                        "\" is an envelope subprotocol, selected by `envelope` (false here)");
      }
    }
    settings.deflate.enabled = config.getBool("permessage_deflate");
    settings.deflate.server_no_context_takeover = config.getBool("server_no_context_takeover");
    settings.deflate.client_no_context_takeover = config.getBool("client_no_context_takeover");
    settings.deflate.server_max_window_bits =
        static_cast<int>(config.getInt("server_max_window_bits"));
    settings.compress_min_size = static_cast<uint32_t>(config.getSize("compress_min_size"));
    settings.compression_level = static_cast<int>(config.getInt("compression_level"));
    settings.session_deflater = config.getBool("session_deflater");

    WsCounters counters;
    counters.upgrades = &context.stats().counter("websocket_upgrades");
    counters.rejected = &context.stats().counter("websocket_upgrade_rejected");
    counters.deflate_sessions = &context.stats().counter("websocket_deflate_sessions");
    return std::make_shared<const WsProtocolConfig>(std::move(settings), counters);
  }
};

}  // namespace

}  // namespace imgate::mod::websocket

IMGATE_MODULE(proto_websocket, imgate::mod::websocket::WebSocketFactory, "0.1.0")
