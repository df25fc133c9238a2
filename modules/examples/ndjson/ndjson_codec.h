// SPDX-License-Identifier: Apache-2.0
// example.ndjson: newline-delimited JSON over raw TCP (a `type: stream` listener), written as a
// third-party protocol module: it uses only the SDK headers and rapidjson, and is built only as a
// .so. One JSON object per line each way; the first client line is a hello carrying the token
// (in-band handshake, so auth stages work). The wire protocol is specified in README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/config.h"

namespace imgate::mod::ndjson {

inline constexpr uint32_t kDefaultMaxLine = 64 * 1024;
inline constexpr uint32_t kDefaultMaxDepth = 32;
// Pongs are skipped while this many bytes wait in the output buffer, so a client that pings
// without reading cannot grow it.
inline constexpr size_t kPongBackpressureLimit = 64 * 1024;
// Close reasons are cut to this many bytes (on a UTF-8 boundary).
inline constexpr size_t kMaxReason = 256;

struct NdjsonOptions {
  // Longest line in bytes, without its "\n" (a "\r" before it counts); also the most bytes
  // buffered without a newline [kMessageTooBig].
  uint32_t max_line = kDefaultMaxLine;
  // Deepest object/array nesting in a line; the line's own object is depth 1 [kProtocolError].
  uint32_t max_depth = kDefaultMaxDepth;
};

// kMatch when the first non-whitespace byte is '{', kNeedMore while there are only JSON
// whitespace bytes (or none), kNoMatch otherwise. Reads only; allocates nothing.
Sniff sniffNdjson(std::string_view first_bytes);

// Appends `s` as a JSON string literal. Invalid UTF-8 becomes U+FFFD, so the output is always
// valid JSON whatever the bytes (ids and events may come from other protocols).
void appendJsonString(std::string& out, std::string_view s);

// True when `text` is one complete JSON value (RFC 8259, as rapidjson reads it: numbers beyond
// double range are refused) in valid UTF-8, without NUL bytes, nested at most 512 deep.
bool isJsonText(std::string_view text);

// The line (with its "\n") that encode() writes for `message`; see README.md, "Server to client".
std::string encodeLine(const Message& message);

// One session's codec.
//
// decode(): every complete line calls onActivity(); blank lines are skipped. Fails the session
// [Errc in brackets] on: a line longer than max_line, or more than max_line bytes without a
// newline [kMessageTooBig]; malformed JSON, a NUL byte, a value that is not an object, nesting
// deeper than max_depth, a duplicated known key, a known key of the wrong type, a missing or
// unknown "type", a line other than hello before the hello, a second hello, an ack without
// "seq", a bad "to" [kProtocolError]; control characters in hello fields [kInvalidPayload].
// The hello calls onHello() and decode() returns right after it. A client close is answered
// with a close line and onPeerClose(kNone, reason); later input is ignored.
//
// decode() remembers how far it has searched the pending partial line for "\n", relying on the
// Codec contract that unconsumed bytes come back at the start of `in`: a line trickled in byte
// by byte is scanned once, not once per read.
class NdjsonCodec final : public Codec {
 public:
  explicit NdjsonCodec(const NdjsonOptions& options) : options_(options) {}

  [[nodiscard]] Result<size_t> decode(std::string_view in, CodecSink& sink,
                                      OutBuffer& out) override;
  // encodeLine(message). Nothing after a close.
  [[nodiscard]] Status encode(const Message& message, OutBuffer& out) override;
  // The encoding depends on the message only, so every message can be shared; 0 after a close.
  uint64_t sharedEncodingKey(const Message& message) const override;
  // Thread-safe: reads nothing but the message.
  Bytes encodeShared(const Message& message) const override;
  // The welcome line.
  void onOpened(const SessionOpened& opened, OutBuffer& out) override;
  void encodePing(OutBuffer& out) override;
  // {"type":"close","code":"<errc name>","reason":".."}; the reason is cut to kMaxReason bytes
  // and omitted for kInternal. Once only.
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

  bool closeSent() const { return closed_; }

 private:
  [[nodiscard]] Status onLine(std::string_view line, CodecSink& sink, OutBuffer& out);

  NdjsonOptions options_;
  size_t scanned_ = 0;  // bytes at the start of the next `in` known to hold no "\n"
  bool hello_seen_ = false;
  bool closed_ = false;
  bool failed_ = false;
};

// Compiled configuration of one listener: immutable, shared by its sessions.
class NdjsonProtocol final : public ProtocolConfig {
 public:
  explicit NdjsonProtocol(const NdjsonOptions& options) : options_(options) {}
  Sniff sniff(std::string_view first_bytes) const override { return sniffNdjson(first_bytes); }
  CodecPtr createCodec() const override;
  bool handshakeInBand() const override { return true; }
  const NdjsonOptions& options() const { return options_; }

 private:
  NdjsonOptions options_;
};

std::span<const ParamSpec> ndjsonSchema();
Result<ProtocolConfigPtr> compileNdjson(const ConfigView& config);

}  // namespace imgate::mod::ndjson
