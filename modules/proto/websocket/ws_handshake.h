// SPDX-License-Identifier: Apache-2.0
// The RFC 6455 §4.2 opening handshake, server side, and the module's ProtocolConfig.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/http.h"
#include "imgate/sdk/runtime.h"
#include "ws_codec.h"
#include "ws_deflate.h"

namespace imgate::mod::websocket {

// The compiled configuration of one location (see ws_module.cc for keys and defaults).
struct WsSettings {
  uint32_t max_message = kDefaultMaxMessage;
  std::vector<std::string> subprotocols;  // server preference is the client's order
  DeflatePolicy deflate;
  uint32_t compress_min_size = kDefaultCompressMinSize;
  int compression_level = kDefaultCompressionLevel;
  bool session_deflater = false;
  // Accept the envelope subprotocols "imgate.v1" and "imgate.v1.bin". False here so that
  // protocols layered on this handshake (Socket.IO) never select them; the module's `envelope`
  // key defaults to true.
  bool envelope = false;
};

// Everything needed to answer a valid upgrade request.
struct WsAccept {
  HttpResponse response;                          // the 101
  WsCodecOptions codec;                           // limits plus negotiated parameters
  std::vector<std::string> offered_subprotocols;  // every offer, in order, for the stages
  std::string subprotocol;                        // the selected one; empty when none
};

// Checks the request in this order and answers the first failure:
//   method other than GET                        -> 405, Allow: GET
//   no Upgrade header                            -> 426, Upgrade: websocket
//   Upgrade without the "websocket" token        -> 400
//   HTTP/1.0                                     -> 400
//   Connection without the "upgrade" token       -> 400
//   Sec-WebSocket-Version missing or not 13      -> 426, Sec-WebSocket-Version: 13
//   Sec-WebSocket-Key missing, repeated, or not
//     the base64 of exactly 16 bytes             -> 400
//   no Host header                               -> 400
// Errors carry a JSON body {"error":"<errc name>","reason":"..."}. On success returns the 101
// with Sec-WebSocket-Accept, the selected subprotocol and the negotiated permessage-deflate
// parameters. The subprotocol is "imgate.v1" or "imgate.v1.bin", whichever the client offers
// first, when `settings.envelope` is set and the client offers either anywhere in its list
// (codec.envelope or codec.binary_envelope is then set), else the first client offer that is
// in `settings.subprotocols`.
tl::expected<WsAccept, HttpResponse> evaluateUpgrade(const HttpRequest& request,
                                                     const WsSettings& settings);

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), RFC 6455 §4.2.2 step 5.4.
std::string computeAcceptKey(std::string_view key);
// True for the base64 encoding (with padding) of exactly 16 bytes.
bool isValidClientKey(std::string_view key);
// Every Sec-WebSocket-Protocol offer, split at commas and trimmed, in header order.
std::vector<std::string> offeredSubprotocols(const HttpRequest& request);

// SHA-1 (FIPS 180-4) and base64 (RFC 4648), kept here so the module needs no crypto library.
std::array<uint8_t, 20> sha1(std::string_view data);
std::string base64Encode(std::string_view data);

// Counters a config bumps; null members are skipped (tests).
struct WsCounters {
  Counter* upgrades = nullptr;         // 101 answered (before the pipeline's onOpen verdict)
  Counter* rejected = nullptr;         // handshake refused with a 4xx
  Counter* deflate_sessions = nullptr; // upgrades that negotiated permessage-deflate
};

class WsProtocolConfig final : public ProtocolConfig {
 public:
  WsProtocolConfig(WsSettings settings, WsCounters counters);
  // Validates the upgrade and either responds with the error or hands a new WsCodec to
  // exchange->upgrade() with the 101 and the client's subprotocol offers.
  void onHttpRequest(const HttpExchangePtr& exchange) const override;
  const WsSettings& settings() const { return settings_; }

 private:
  WsSettings settings_;
  WsCounters counters_;
};

}  // namespace imgate::mod::websocket
