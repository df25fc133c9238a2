// SPDX-License-Identifier: Apache-2.0
// The codec of a WebSocket connection that takes over a polling session (HttpExchange::attach):
// Engine.IO's upgrade exchange, before the connection becomes the session's.
#pragma once

#include <string_view>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/runtime.h"
#include "modules/proto/websocket/ws_codec.h"

namespace imgate::mod::socketio {

// Client                          server (this codec)
//   text "2probe"          ->      text "3probe", CodecSink::onTransportSwitch(kProbe)
//   text "5"               ->      onTransportSwitch(kCommit); decode() returns right after it
// The client may probe more than once; "5" without a probe commits too (as the reference
// server). WebSocket pings and close frames are handled by the WebSocket layer. Any other frame
// (another Engine.IO packet, binary data) fails with kProtocolError, which closes this
// connection only: the polling session lives on, as with the reference server, which closes a
// failed upgrade's transport and keeps polling.
class SioProbeCodec final : public Codec {
 public:
  // `commits` (may be null) counts the upgrades the client committed to.
  explicit SioProbeCodec(const websocket::WsCodecOptions& ws, Counter* commits = nullptr);

  // After the commit, returns 0: the bytes that follow are the session's (the core hands them
  // to the session's codec).
  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // The connection carries no session messages before the commit: nothing is written.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  void encodePing(OutBuffer& out) override { ws_.encodePing(out); }
  // The WebSocket close frame (there is no Engine.IO session on this connection to close).
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

  // What the handshake negotiated; the session's codec adopts it (SioCodec::attachTransport).
  const websocket::WsCodecOptions& wsOptions() const { return options_; }
  bool committed() const { return committed_; }

 private:
  class FrameSink;

  websocket::WsCodecOptions options_;
  websocket::WsCodec ws_;
  Counter* commits_ = nullptr;
  bool committed_ = false;
};

}  // namespace imgate::mod::socketio
