// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the "imgate.v1" envelope. The first input byte picks what to exercise:
//   mode 0: decodeEnvelope() on the rest; what it accepts must satisfy the decoder's contract
//           (ws_envelope.h), and its fields must survive encodeEnvelope() as valid JSON that an
//           independent parser reads back unchanged.
//   mode 1: the rest split at 0xFF bytes into id, event, stream, meta values and payload (kept
//           when valid UTF-8): every downlink shape is encoded and parsed back; the raw parts
//           as a text push must still give valid UTF-8 JSON.
//   mode 2: the rest is client bytes for an envelope-mode WsCodec, fed in pseudo-random pieces;
//           every delivered message is encoded back with encode() and encodeShared().
#include <rapidjson/reader.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modules/common/base64.h"
#include "modules/common/json_text.h"
#include "modules/common/utf8.h"
#include "modules/proto/websocket/ws_codec.h"
#include "modules/proto/websocket/ws_envelope.h"
#include "test/fuzz/fuzz_codec_support.h"
#include "modules/common/insitu_stream.h"

namespace {

using imgate::Bytes;
using imgate::Errc;
using imgate::makeBytes;
using imgate::Message;
using imgate::MessageKind;
using imgate::PayloadType;
using imgate::TargetKind;
using imgate::fuzz::check;
using imgate::mod::epochHex;
using imgate::mod::websocket::decodeEnvelope;
using imgate::mod::websocket::encodeEnvelope;
using imgate::mod::common::isValidUtf8;
using imgate::mod::websocket::kMaxEnvelopeSeq;
using imgate::mod::websocket::Uplink;
using imgate::mod::websocket::WsCodec;
using imgate::mod::websocket::WsCodecOptions;

// ---- An independent reader for the server's output ------------------------------------------

// Bounded in-situ stream (modules/common/insitu_stream.h says why).
using Stream = imgate::mod::InsituStream;

// Top-level fields of a flat JSON object: strings, unsigned numbers and `true`.
struct Flat {
  std::map<std::string, std::string> strings;
  std::map<std::string, uint64_t> numbers;
  std::map<std::string, bool> bools;
};

class FlatHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, FlatHandler> {
 public:
  explicit FlatHandler(Flat& flat) : flat_(flat) {}
  bool Default() { return false; }
  bool Bool(bool b) {
    flat_.bools[key_] = b;
    return depth_ == 1;
  }
  bool Uint(unsigned u) { return Uint64(u); }
  bool Uint64(uint64_t u) {
    flat_.numbers[key_] = u;
    return depth_ == 1;
  }
  bool Int(int i) { return i >= 0 && Uint64(static_cast<uint64_t>(i)); }
  bool Int64(int64_t i) { return i >= 0 && Uint64(static_cast<uint64_t>(i)); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    flat_.strings[key_] = std::string(s, n);
    return depth_ == 1;
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key_.assign(s, n);
    // Keys are unique in everything the server writes.
    return flat_.strings.count(key_) + flat_.numbers.count(key_) + flat_.bools.count(key_) == 0;
  }
  bool StartObject() { return ++depth_ == 1; }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    return true;
  }

 private:
  Flat& flat_;
  std::string key_;
  int depth_ = 0;
};

Flat parseFlat(std::string json) {
  check(isValidUtf8(json));
  Flat flat;
  FlatHandler handler(flat);
  Stream stream(json);
  rapidjson::Reader reader;
  const auto result = reader.Parse<rapidjson::kParseInsituFlag |
                                   rapidjson::kParseValidateEncodingFlag>(stream, handler);
  check(!result.IsError() && stream.Tell() == json.size());
  return flat;
}

std::string str(const Flat& f, const std::string& key) {
  auto it = f.strings.find(key);
  check(it != f.strings.end());
  return it->second;
}

bool hasControl(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

// Checks one downlink encoding against its message.
void checkDownlink(const Message& m) {
  const Flat f = parseFlat(encodeEnvelope(m));
  if (m.kind == MessageKind::kAck) {
    check(str(f, "t") == "ack");
    check(f.strings.count("id") == (m.id.empty() ? 0u : 1u));
    return;
  }
  if (m.kind == MessageKind::kControl && m.event == "read") {
    check(str(f, "t") == "read" && str(f, "stream") == m.stream && f.numbers.at("seq") == m.seq);
    return;
  }
  check(str(f, "t") == (m.kind == MessageKind::kControl    ? "control"
                        : m.kind == MessageKind::kPresence ? "presence"
                                                           : "push"));
  if (m.seq != 0) {
    check(str(f, "stream") == m.stream && str(f, "epoch") == epochHex(m.epoch) &&
          f.numbers.at("seq") == m.seq);
  } else {
    check(f.strings.count("stream") == 0 && f.numbers.count("seq") == 0);
  }
  check(f.bools.count("ack") == (m.reliable ? 1u : 0u));
  check(m.id.empty() ? f.strings.count("id") == 0 : str(f, "id") == m.id);
  check(m.event.empty() ? f.strings.count("event") == 0 : str(f, "event") == m.event);
  if (m.type == PayloadType::kBinary) {
    check(imgate::mod::common::base64Decode(str(f, "data_base64")) == std::string(m.data()));
  } else {
    check(str(f, "data") == m.data());
  }
}

// ---- Modes ------------------------------------------------------------------------------------

void fuzzDecoder(std::string_view input) {
  imgate::Result<Uplink> r = decodeEnvelope(std::string(input));
  if (!r) {
    check(r.error().code == Errc::kInvalidPayload && !r.error().message.empty());
    return;
  }
  if (r->kind == Uplink::Kind::kPing) {
    return;
  }
  Message& m = r->message;
  check(m.payload != nullptr);
  for (const std::string* s : {&m.id, &m.event, &m.stream, &m.to}) {
    check(isValidUtf8(*s) && !hasControl(*s));
  }
  switch (m.kind) {
    case MessageKind::kData:
      check(m.seq == 0 && m.to_kind == TargetKind::kNone);
      check(m.type == PayloadType::kBinary || isValidUtf8(m.data()));
      check(m.meta.size() == (m.id.empty() ? 0u : 1u));
      break;
    case MessageKind::kAck:
      check(m.seq >= 1 && m.seq <= kMaxEnvelopeSeq && m.data().empty());
      break;
    case MessageKind::kControl:
      if (m.event == "read") {
        check(m.seq >= 1 && m.seq <= kMaxEnvelopeSeq);
      } else {
        check((m.event == "join" || m.event == "leave") && m.to_kind == TargetKind::kRoom &&
              !m.to.empty());
      }
      break;
    default:
      check(false);
  }
  // What came in goes back out intact, as every downlink shape.
  m.epoch = m.seq * 0x9E3779B97F4A7C15u;
  checkDownlink(m);
  for (MessageKind kind : {MessageKind::kData, MessageKind::kPresence, MessageKind::kAck}) {
    Message copy = m;
    copy.kind = kind;
    copy.reliable = (m.seq & 1) != 0;
    checkDownlink(copy);
  }
}

void fuzzEncoder(uint8_t config, std::string_view input) {
  std::vector<std::string> parts(5);
  size_t i = 0;
  for (char c : input) {
    if (static_cast<uint8_t>(c) == 0xFF && i + 1 < parts.size()) {
      ++i;
    } else {
      parts[i].push_back(c);
    }
  }
  Message m;
  m.id = isValidUtf8(parts[0]) ? parts[0] : "";
  m.event = isValidUtf8(parts[1]) ? parts[1] : "";
  m.stream = isValidUtf8(parts[2]) ? parts[2] : "";
  m.meta.emplace_back("device", isValidUtf8(parts[3]) ? parts[3] : "");
  m.meta.emplace_back("status", (config & 0x40) != 0 ? m.event : "ok");
  m.meta.emplace_back("reason", m.id);
  m.type = (config & 2) != 0 || !isValidUtf8(parts[4]) ? PayloadType::kBinary : PayloadType::kText;
  m.payload = makeBytes(parts[4]);
  m.seq = (config & 4) != 0 ? input.size() * 0x10001u : 0;
  m.epoch = static_cast<uint64_t>(input.size()) << (config & 0x3F);
  m.reliable = (config & 8) != 0;
  m.ts_ms = static_cast<int64_t>(input.size());
  for (MessageKind kind : {MessageKind::kData, MessageKind::kControl, MessageKind::kPresence,
                           MessageKind::kAck}) {
    m.kind = kind;
    checkDownlink(m);
  }
  m.kind = MessageKind::kControl;
  m.event = "read";
  checkDownlink(m);
  // Any bytes at all still give valid UTF-8 JSON (invalid sequences become U+FFFD).
  Message raw;
  raw.id = parts[0];
  raw.event = parts[1];
  raw.stream = parts[2];
  raw.seq = 1;
  raw.payload = makeBytes(parts[4]);
  parseFlat(encodeEnvelope(raw));
}

class Sink final : public imgate::CodecSink {
 public:
  explicit Sink(WsCodec& codec) : codec_(codec) {}
  void onMessage(Message&& message) override {
    check(message.payload != nullptr);
    imgate::fuzz::StringOut out;
    check(codec_.encode(message, out).has_value());
    const Bytes shared = codec_.encodeShared(message);
    check(shared != nullptr && *shared == out.data);
  }
  void onPeerClose(Errc, std::string_view) override {}
  void onActivity() override {}
  void onHello(imgate::HttpRequest) override {}

 private:
  WsCodec& codec_;
};

void fuzzCodec(uint8_t config, std::string_view input) {
  WsCodecOptions options;
  options.envelope = true;
  options.deflate.enabled = (config & 4) != 0;
  options.max_message = (config & 8) != 0 ? 64 * 1024 : 100;
  options.compress_min_size = (config & 16) != 0 ? 0 : 16;
  WsCodec codec(options);
  Sink sink(codec);
  imgate::fuzz::StringOut out;
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
      return;
    }
    check(*r <= buffer.size());
    buffer.erase(0, *r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t config = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (config % 3) {
    case 0:
      fuzzDecoder(input);
      break;
    case 1:
      fuzzEncoder(config, input);
      break;
    default:
      fuzzCodec(config, input);
      break;
  }
  return 0;
}
