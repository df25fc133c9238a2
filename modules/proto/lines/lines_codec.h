// SPDX-License-Identifier: Apache-2.0
// proto.lines: newline-delimited text messages over raw TCP (a `type: stream` listener). One
// line in is one inbound message; one outbound message is written as its bytes plus "\n". For
// diagnostics with nc/telnet, scripting, and as the smallest example of a stream protocol.
#pragma once

#include <cstdint>
#include <string_view>

#include "imgate/sdk/codec.h"

namespace imgate::mod::lines {

inline constexpr uint32_t kDefaultMaxLine = 64 * 1024;

class LinesCodec final : public Codec {
 public:
  explicit LinesCodec(uint32_t max_line) : max_line_(max_line) {}

  // Consumes every complete line ("\n", an optional preceding "\r" is dropped). A line longer
  // than max_line (or that many bytes without a newline) fails with kMessageTooBig.
  Result<size_t> decode(std::string_view in, CodecSink& sink, OutBuffer& out) override;
  Status encode(const Message& message, OutBuffer& out) override;
  uint64_t sharedEncodingKey(const Message& message) const override;
  Bytes encodeShared(const Message& message) const override;
  // Errors are written as one line "error <errc name>: <reason>"; a normal close writes nothing.
  void encodeClose(Errc code, std::string_view reason, OutBuffer& out) override;

 private:
  uint32_t max_line_;
  bool closed_ = false;
};

}  // namespace imgate::mod::lines
