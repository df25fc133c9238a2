// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for WsCodec in imgate.v1.bin mode. Byte 0: options (bit 0 deflate, bit 1 a
// 256-byte max_message) and whether the rest is raw client bytes (bit 2) or a list of records
// [length u8][first frame byte][payload] turned into masked client frames.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "modules/proto/websocket/ws_codec.h"

namespace {
using namespace imgate;
using namespace imgate::mod::websocket;

class Sink final : public CodecSink {
 public:
  void onMessage(Message&& m) override {
    if (!m.payload) std::abort();
    ++messages;
  }
  void onPeerClose(Errc, std::string_view) override { ++closes; }
  void onActivity() override {}
  void onHello(HttpRequest) override { std::abort(); }
  int messages = 0;
  int closes = 0;
};

class Out final : public OutBuffer {
 public:
  void append(std::string_view b) override { data.append(b); }
  void appendShared(Bytes b) override { data.append(*b); }
  size_t pending() const override { return data.size(); }
  std::string data;
};

std::string frameOf(uint8_t b0, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  const uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  }
  const char mask[4] = {1, 2, 3, 4};
  f.append(mask, 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
  return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  WsCodecOptions options;
  options.binary_envelope = true;
  if (mode & 1) {
    options.deflate.enabled = true;
  }
  if (mode & 2) {
    options.max_message = 256;
  }
  std::string bytes;
  if (mode & 4) {
    bytes = std::string(rest);
  } else {
    while (!rest.empty()) {
      const size_t n = std::min<size_t>(static_cast<uint8_t>(rest[0]), rest.size() - 1);
      if (rest.size() < 2) break;
      const uint8_t b0 = static_cast<uint8_t>(rest[1]);
      const size_t len = std::min(n, rest.size() - 2);
      bytes += frameOf(b0, rest.substr(2, len));
      rest.remove_prefix(2 + len);
    }
  }
  WsCodec codec(options);
  Sink sink;
  Out out;
  std::string buffer;
  size_t pos = 0;
  size_t step = 1 + (mode >> 3);
  bool failed = false;
  while (pos < bytes.size() && !failed) {
    const size_t n = std::min(step, bytes.size() - pos);
    buffer.append(bytes, pos, n);
    pos += n;
    step = step * 3 % 61 + 1;
    Result<size_t> r = codec.decode(buffer, sink, out);
    if (!r) {
      failed = true;
      break;
    }
    if (*r > buffer.size()) std::abort();
    buffer.erase(0, *r);
  }
  Message m;
  m.payload = makeBytes(std::string(bytes.size() % 300, 'x'));
  m.seq = 3;
  m.stream = "user";
  m.epoch = 9;
  (void)codec.encode(m, out);
  if (codec.sharedEncodingKey(m) != 0) {
    Bytes shared = codec.encodeShared(m);
    if (!shared) std::abort();
  }
  codec.encodeClose(failed ? Errc::kProtocolError : Errc::kNone, "r", out);
  if (sink.closes > 1) std::abort();
  return 0;
}
