// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the WebSocket codec. The first input byte picks the negotiated options
// and seeds the split pattern; the rest is fed as client bytes the way the core feeds them
// (unconsumed bytes kept, the next piece appended). Every decoded message is encoded back with
// encode() and encodeShared(), parsed and inflated as a client would, and must round-trip.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/common/utf8.h"
#include "modules/proto/websocket/ws_codec.h"
#include "test/fuzz/fuzz_codec_support.h"

namespace {

using imgate::fuzz::check;
using imgate::Bytes;
using imgate::Errc;
using imgate::Message;
using imgate::PayloadType;
using imgate::mod::common::isValidUtf8;
using imgate::mod::websocket::WsCodec;
using imgate::mod::websocket::WsCodecOptions;

using Out = imgate::fuzz::StringOut;

// A client's inflater; `takeover` keeps the window across messages (as a browser does when
// the server did not promise server_no_context_takeover).
class ClientInflater {
 public:
  explicit ClientInflater(bool takeover) : takeover_(takeover) {
    check(inflateInit2(&s_, -15) == Z_OK);
  }
  ~ClientInflater() { inflateEnd(&s_); }
  ClientInflater(const ClientInflater&) = delete;
  ClientInflater& operator=(const ClientInflater&) = delete;

  std::string inflateMessage(std::string payload) {
    if (!takeover_) {
      check(inflateReset(&s_) == Z_OK);
    }
    payload.append("\x00\x00\xff\xff", 4);
    s_.next_in = reinterpret_cast<Bytef*>(payload.data());
    s_.avail_in = static_cast<uInt>(payload.size());
    std::string out;
    char buf[4096];
    int rc;
    do {
      s_.next_out = reinterpret_cast<Bytef*>(buf);
      s_.avail_out = sizeof(buf);
      rc = inflate(&s_, Z_SYNC_FLUSH);
      out.append(buf, sizeof(buf) - s_.avail_out);
    } while (rc == Z_OK && (s_.avail_in != 0 || s_.avail_out == 0));
    check(rc == Z_OK || rc == Z_BUF_ERROR);
    return out;
  }

 private:
  z_stream s_{};
  bool takeover_;
};

// Parses one unmasked server frame and returns its payload as the client sees it.
std::string clientView(std::string_view frame, ClientInflater& inflater) {
  check(frame.size() >= 2);
  const auto b0 = static_cast<uint8_t>(frame[0]);
  const auto b1 = static_cast<uint8_t>(frame[1]);
  check((b0 & 0x80) != 0 && (b0 & 0x30) == 0 && (b1 & 0x80) == 0);
  uint64_t n = b1 & 0x7F;
  size_t h = 2;
  if (n >= 126) {
    const size_t ext = n == 126 ? 2 : 8;
    check(frame.size() >= 2 + ext);
    n = 0;
    for (size_t i = 0; i < ext; ++i) {
      n = (n << 8) | static_cast<uint8_t>(frame[2 + i]);
    }
    h += ext;
  }
  check(frame.size() == h + n);
  std::string payload(frame.substr(h));
  if ((b0 & 0x40) == 0) {
    return payload;
  }
  return inflater.inflateMessage(std::move(payload));
}

class Sink final : public imgate::CodecSink {
 public:
  Sink(WsCodec& codec, const WsCodecOptions& options) : codec_(codec), options_(options) {}
  void onMessage(Message&& message) override {
    check(message.payload != nullptr);
    check(message.data().size() <= options_.max_message);
    if (message.type == PayloadType::kText) {
      check(isValidUtf8(message.data()));
    }
    // Per-session frames go to a client that keeps context; shared ones must also decode for
    // a client that does not.
    Out out;
    check(codec_.encode(message, out).has_value());
    if (!out.data.empty()) {
      check(clientView(out.data, session_client_) == message.data());
    }
    Bytes shared = codec_.encodeShared(message);
    ClientInflater fresh(false);
    check(shared != nullptr && clientView(*shared, fresh) == message.data());
  }
  void onPeerClose(Errc code, std::string_view reason) override {
    check(code == Errc::kNone && isValidUtf8(reason) && reason.size() <= 123);
  }
  void onActivity() override {}
  void onHello(imgate::HttpRequest) override {}

 private:
  WsCodec& codec_;
  const WsCodecOptions& options_;
  ClientInflater session_client_{true};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t config = data[0];
  WsCodecOptions options;
  options.deflate.enabled = (config & 1) != 0;
  options.deflate.client_no_context_takeover = (config & 2) != 0;
  options.session_deflater = (config & 4) != 0;
  options.deflate.server_max_window_bits = static_cast<uint8_t>(9 + (config >> 5) % 7);
  options.max_message = (config & 8) != 0 ? 64 * 1024 : 100;
  options.compress_min_size = (config & 16) != 0 ? 0 : 16;

  WsCodec codec(options);
  Sink sink(codec, options);
  Out out;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string buffer;
  uint32_t rng = 0x9E3779B9u ^ config;
  size_t pos = 0;
  while (pos < input.size()) {
    rng = rng * 1664525u + 1013904223u;
    const size_t piece = (rng >> 24) % 4 == 0 ? input.size() : 1 + (rng >> 16) % 32;
    const size_t take = piece < input.size() - pos ? piece : input.size() - pos;
    buffer.append(input.substr(pos, take));
    pos += take;
    imgate::Result<size_t> r = codec.decode(buffer, sink, out);
    if (!r) {
      codec.encodeClose(r.error().code, r.error().message, out);
      return 0;
    }
    check(*r <= buffer.size());
    buffer.erase(0, *r);
  }
  codec.encodePing(out);
  codec.encodeClose(Errc::kNone, "done", out);
  return 0;
}
