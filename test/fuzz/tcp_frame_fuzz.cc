// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the tcp_frame codec. The first input byte picks the options, whether the
// HELLO is already done (so every frame type is reachable) and the split pattern; the rest is
// fed as client bytes the way the core feeds them. Every inbound message is pushed back out with
// encode() and encodeShared() and must parse with the client library to the same data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modules/proto/tcp_frame/frame.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "test/fuzz/fuzz_codec_support.h"

namespace {

using imgate::fuzz::check;
using namespace imgate;                  // NOLINT: fuzz target brevity
using namespace imgate::mod::tcp_frame;  // NOLINT

using Out = imgate::fuzz::StringOut;
using Sink = imgate::fuzz::RecordingSink;

// Parses every frame in `bytes` (server output) with frame.h and checks the headers.
void checkServerBytes(std::string_view bytes, uint32_t max_frame) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto header = parseHeader(bytes.substr(pos), UINT32_MAX);
    check(header.has_value() && header->has_value());
    const FrameHeader h = **header;
    check(bytes.size() - pos - kHeaderSize >= h.length);
    std::string body(bytes.substr(pos + kHeaderSize, h.length));
    if ((h.flags & kFlagCompressed) != 0) {
      std::string inflated;
      check(inflateBody(body, UINT32_MAX, inflated).has_value());
      body = std::move(inflated);
    }
    if (h.type != FrameType::kPing && h.type != FrameType::kPong) {
      check(parseFields(body).has_value());
    }
    (void)max_frame;
    pos += kHeaderSize + h.length;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t mode = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  TcpFrameOptions options;
  options.max_frame = (mode & 1) != 0 ? 256 : 4096;
  options.compression = (mode & 2) != 0;
  options.compress_min_size = 16;
  TcpFrameCodec codec(options);
  Sink sink;
  Out out;
  std::string prefix;
  if ((mode & 4) != 0) {
    std::string body;
    TlvWriter(body).addString(Tag::kToken, "t");
    prefix = buildFrame(FrameType::kHello, 0, 1, body);
  }
  const size_t step = (mode >> 3) == 0 ? input.size() + prefix.size() : (mode >> 3);
  std::string all = prefix + std::string(input);
  std::string buffered;
  bool opened = false;
  bool failed = false;
  for (size_t from = 0; from < all.size() && !failed; from += step) {
    buffered.append(all, from, step);
    while (true) {
      auto used = codec.decode(buffered, sink, out);
      if (!used) {
        codec.encodeClose(used.error().code, used.error().message, out);
        failed = true;
        break;
      }
      check(*used <= buffered.size());
      buffered.erase(0, *used);
      if (sink.hello_seen && !opened) {
        opened = true;
        codec.onOpened(SessionOpened{}, out);
        continue;
      }
      break;
    }
  }
  for (const Message& m : sink.messages) {
    check(m.data().size() <= options.max_frame);
    Message back = m;
    back.seq = 0;
    if (back.kind == MessageKind::kAck) {
      back.kind = MessageKind::kData;
    }
    Out once;
    check(codec.encode(back, once).has_value());
    if (!codec.closeSent()) {
      check(codec.sharedEncodingKey(back) != 0);
      check(*codec.encodeShared(back) == once.data);
    }
    checkServerBytes(once.data, options.max_frame);
  }
  codec.encodePing(out);
  checkServerBytes(out.data, options.max_frame);
  return 0;
}
