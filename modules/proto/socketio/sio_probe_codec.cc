// SPDX-License-Identifier: Apache-2.0
#include "sio_probe_codec.h"

#include <optional>
#include <string>
#include <utility>

namespace imgate::mod::socketio {

namespace {

constexpr std::string_view kProbePing = "2probe";
constexpr std::string_view kProbePong = "3probe";
constexpr std::string_view kUpgrade = "5";

}  // namespace

// Receives the WebSocket layer's messages during decode().
class SioProbeCodec::FrameSink final : public CodecSink {
 public:
  FrameSink(SioProbeCodec& codec, CodecSink& sink, OutBuffer& out)
      : codec_(codec), sink_(sink), out_(out) {}
  void onMessage(Message&& frame) override {
    if (error_ || codec_.committed_) {
      return;
    }
    if (frame.type == PayloadType::kText && frame.data() == kProbePing) {
      Message pong;
      pong.type = PayloadType::kText;
      pong.payload = makeBytes(std::string(kProbePong));
      (void)codec_.ws_.encode(pong, out_);
      sink_.onTransportSwitch(TransportStep::kProbe);
      return;
    }
    if (frame.type == PayloadType::kText && frame.data() == kUpgrade) {
      codec_.committed_ = true;
      if (codec_.commits_ != nullptr) {
        codec_.commits_->add();
      }
      codec_.ws_.stopDecoding();
      sink_.onTransportSwitch(TransportStep::kCommit);
      return;
    }
    error_ = Error{Errc::kProtocolError, "unexpected packet during the transport upgrade"};
    codec_.ws_.stopDecoding();
  }
  void onPeerClose(Errc code, std::string_view reason) override { sink_.onPeerClose(code, reason); }
  void onActivity() override { sink_.onActivity(); }
  void onHello(HttpRequest) override {}
  std::optional<Error> error_;

 private:
  SioProbeCodec& codec_;
  CodecSink& sink_;
  OutBuffer& out_;
};

SioProbeCodec::SioProbeCodec(const websocket::WsCodecOptions& ws, Counter* commits)
    : options_(ws), ws_(ws), commits_(commits) {}

Result<size_t> SioProbeCodec::decode(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (committed_) {
    return 0;
  }
  FrameSink frames(*this, sink, out);
  Result<size_t> used = ws_.decode(in, frames, out);
  if (frames.error_) {
    return tl::unexpected(std::move(*frames.error_));
  }
  return used;
}

Status SioProbeCodec::encode(const Message& message, OutBuffer& out) {
  (void)message;
  (void)out;
  return {};
}

void SioProbeCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  ws_.encodeClose(code, reason, out);
}

}  // namespace imgate::mod::socketio
