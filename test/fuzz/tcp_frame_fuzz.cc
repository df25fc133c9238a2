// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the tcp_frame codec. The first input byte picks the options, whether the
// HELLO is already done (so every frame type is reachable) and the split pattern; the rest is
// fed as client bytes the way the core feeds them. Every inbound message is pushed back out with
// encode() and encodeShared() (PUSH_ACKs as sequenced reliable PUSHes, READs as READs) and must
// parse back to the same id, stream and data. The streams and events seen also become a
// HELLO_ACK streams answer, whose JSON must be valid UTF-8 and parse back to the same names
// (U+FFFD where a name was not UTF-8).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "modules/common/json_text.h"
#include "modules/proto/tcp_frame/frame.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"
#include "modules/common/utf8.h"
#include "test/fuzz/fuzz_codec_support.h"

namespace {

using imgate::fuzz::check;
using namespace imgate;                  // NOLINT: fuzz target brevity
using namespace imgate::mod::tcp_frame;  // NOLINT
using imgate::mod::appendStreamsJson;
using imgate::mod::epochHex;

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

// `bytes` is exactly one frame encoded from `m`: its id, stream and data must survive.
void checkRoundTrip(std::string_view bytes, const Message& m) {
  auto header = parseHeader(bytes, UINT32_MAX);
  check(header.has_value() && header->has_value());
  const FrameHeader h = **header;
  check(bytes.size() == kHeaderSize + h.length);
  std::string body(bytes.substr(kHeaderSize));
  if ((h.flags & kFlagCompressed) != 0) {
    std::string inflated;
    check(inflateBody(body, UINT32_MAX, inflated).has_value());
    body = std::move(inflated);
  }
  auto fields = parseFields(body);
  check(fields.has_value());
  check(h.id == m.seq);
  const bool read = m.kind == MessageKind::kControl && m.event == "read";
  check(h.type == (read ? FrameType::kRead : FrameType::kPush));
  if (read || m.seq != 0) {
    check(fields->str(Tag::kStream) == m.stream);
  } else {
    check(!fields->has(Tag::kStream) && !fields->has(Tag::kEpoch));
  }
  if (!read) {
    check(fields->str(Tag::kData) == m.data());
    check(((h.flags & kFlagAckRequired) != 0) == m.reliable);
    if (m.seq != 0) {
      auto epoch = fields->uint(Tag::kEpoch, 8);
      check(epoch.has_value() && *epoch == m.epoch);
    }
  }
}

void checkStreamsJson(const std::vector<Message>& messages) {
  std::vector<StreamStart> streams;
  for (const Message& m : messages) {
    streams.push_back({m.stream, m.seq * 7, m.seq, StreamStart::Outcome::kRecovered, m.seq});
    streams.push_back({m.event, 0, 0, StreamStart::Outcome::kImpossible, 0});
  }
  std::string json;
  appendStreamsJson(json, streams);
  // The exact text is pinned by the unit tests; here: valid UTF-8 whatever the names, one
  // object, and every stream's epoch and seq in it. (No rapidjson Document here: 1.1.0's
  // internal stack does pointer arithmetic on null that UBSan reports.)
  check(mod::common::isValidUtf8(json));
  check(json.size() >= 2 && json.front() == '{' && json.back() == '}');
  for (const StreamStart& s : streams) {
    check(json.find("\"epoch\":\"" + epochHex(s.epoch) + "\",\"seq\":" +
                    std::to_string(s.seq)) != std::string::npos);
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
    if (back.kind == MessageKind::kAck) {
      back.kind = MessageKind::kData;
    }
    back.reliable = back.seq != 0;
    back.epoch = back.seq * 0x9E3779B97F4A7C15ull;
    Out once;
    check(codec.encode(back, once).has_value());
    if (!codec.closeSent()) {
      check(codec.sharedEncodingKey(back) != 0);
      check(*codec.encodeShared(back) == once.data);
      checkRoundTrip(once.data, back);
    }
    checkServerBytes(once.data, options.max_frame);
  }
  checkStreamsJson(sink.messages);
  codec.encodePing(out);
  checkServerBytes(out.data, options.max_frame);
  return 0;
}
