// SPDX-License-Identifier: Apache-2.0
// What the SioCodec tests share across transports (WebSocket, polling, the upgrade probe): client
// frames, a CodecSink that records everything, the client's request and the settings a codec is
// built with, and the server's WebSocket output as one string per frame.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modules/proto/socketio/sio_codec.h"
#include "test/unit/modules/proto/websocket/ws_test_client.h"

namespace imgate::mod::socketio::testing {

// The WebSocket client side: clientFrame, closePayload, FakeOut, feedInPieces, everyByte...
using namespace websocket::testing;

inline constexpr uint8_t kContinuationOp = 0x0;
inline constexpr uint8_t kTextOp = 0x1;
inline constexpr uint8_t kBinaryOp = 0x2;
inline constexpr uint8_t kCloseOp = 0x8;
inline constexpr uint8_t kPingOp = 0x9;

// The placeholders a binary event's arguments carry for its first two attachments.
inline const std::string kPlaceholder0 = R"({"_placeholder":true,"num":0})";
inline const std::string kPlaceholder1 = R"({"_placeholder":true,"num":1})";

using Frames = std::vector<std::string>;

inline std::string textFrame(std::string_view payload) {
  return clientFrame(kFin | kTextOp, payload);
}

inline std::string binaryFrame(std::string_view payload) {
  return clientFrame(kFin | kBinaryOp, payload);
}

class SioSink final : public CodecSink {
 public:
  void onMessage(Message&& message) override { messages.push_back(std::move(message)); }
  void onPeerClose(Errc code, std::string_view reason) override {
    closes.emplace_back(code, std::string(reason));
  }
  void onActivity() override { ++activity; }
  void onHello(HttpRequest request) override {
    ++hellos;
    hello = std::move(request);
  }
  void onTransportSwitch(TransportStep step) override { steps.push_back(step); }

  std::vector<Message> messages;
  std::vector<std::pair<Errc, std::string>> closes;
  std::vector<TransportStep> steps;
  int activity = 0;
  int hellos = 0;
  std::optional<HttpRequest> hello;
};

// The client's handshake request on `transport` ("polling" or "websocket"): host and origin
// headers, then `extra_headers`.
inline HttpRequest clientRequest(std::string_view transport,
                                 std::vector<HttpHeader> extra_headers = {}) {
  HttpRequest r;
  r.query = "EIO=4&transport=" + std::string(transport) + "&room=lobby";
  r.method = "GET";
  r.path = "/socket.io/";
  r.target = r.path + "?" + r.query;
  r.headers = {{"host", "gw.test"}, {"origin", "https://app.test"}};
  r.headers.insert(r.headers.end(), extra_headers.begin(), extra_headers.end());
  r.peer = "127.0.0.1:50000";
  return r;
}

// Namespaces "/" and "/chat", everything else the defaults.
inline std::shared_ptr<SocketIoSettings> testSettings() {
  auto s = std::make_shared<SocketIoSettings>();
  s->namespaces = {"/", "/chat"};
  return s;
}

inline websocket::WsCodecOptions wsOptions() {
  websocket::WsCodecOptions o;
  o.max_message = 1'000'000;  // the module sets it to max_payload
  return o;
}

inline Message dataMessage(std::string event, std::string payload, std::string nsp = {},
                           PayloadType type = PayloadType::kText) {
  Message m;
  m.kind = MessageKind::kData;
  m.type = type;
  m.event = std::move(event);
  m.payload = makeBytes(std::move(payload));
  if (!nsp.empty()) {
    m.meta.emplace_back("nsp", std::move(nsp));
  }
  return m;
}

// The server's bytes as one string per frame: a text frame is its payload, a binary frame
// "bin:" + payload, a close frame "close:<code>:<reason>", anything else "op<n>:" + payload.
// Every frame must be whole, unmasked, final and uncompressed.
inline Frames serverFrames(std::string_view bytes) {
  bool ok = false;
  const auto parsed = parseServerFrames(bytes, &ok);
  EXPECT_TRUE(ok) << "server output is not a sequence of whole unmasked frames";
  Frames result;
  for (const auto& f : parsed) {
    EXPECT_TRUE(f.fin);
    EXPECT_FALSE(f.rsv1);
    if (f.opcode == kTextOp) {
      result.push_back(f.payload);
    } else if (f.opcode == kBinaryOp) {
      result.push_back("bin:" + f.payload);
    } else if (f.opcode == kCloseOp && f.payload.size() >= 2) {
      const unsigned code = (static_cast<uint8_t>(f.payload[0]) << 8) |
                            static_cast<uint8_t>(f.payload[1]);
      result.push_back("close:" + std::to_string(code) + ":" + f.payload.substr(2));
    } else {
      result.push_back("op" + std::to_string(f.opcode) + ":" + f.payload);
    }
  }
  return result;
}

}  // namespace imgate::mod::socketio::testing
