// SPDX-License-Identifier: Apache-2.0
#include "lines_codec.h"

#include <string>

namespace imgate::mod::lines {

Result<size_t> LinesCodec::decode(std::string_view in, CodecSink& sink, OutBuffer&) {
  if (closed_) {
    return in.size();
  }
  size_t used = 0;
  while (used < in.size()) {
    const size_t nl = in.find('\n', used);
    if (nl == std::string_view::npos) {
      if (in.size() - used > max_line_) {
        return fail(Errc::kMessageTooBig, "line longer than max_line");
      }
      break;
    }
    std::string_view line = in.substr(used, nl - used);
    used = nl + 1;
    if (line.size() > max_line_) {
      return fail(Errc::kMessageTooBig, "line longer than max_line");
    }
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    sink.onActivity();
    Message m;
    m.type = PayloadType::kText;
    m.payload = makeBytes(std::string(line));
    sink.onMessage(std::move(m));
    if (closed_) {
      break;
    }
  }
  return used;
}

Status LinesCodec::encode(const Message& message, OutBuffer& out) {
  if (closed_) {
    return {};
  }
  out.append(message.data());
  out.append("\n");
  return {};
}

uint64_t LinesCodec::sharedEncodingKey(const Message&) const { return closed_ ? 0 : 1; }

Bytes LinesCodec::encodeShared(const Message& message) const {
  std::string line(message.data());
  line.push_back('\n');
  return makeBytes(std::move(line));
}

void LinesCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  if (closed_) {
    return;
  }
  closed_ = true;
  if (code == Errc::kNone) {
    return;
  }
  std::string line = "error ";
  line.append(errcName(code));
  if (!reason.empty()) {
    line.append(": ");
    for (char c : reason) {
      line.push_back(c == '\n' || c == '\r' ? ' ' : c);
    }
  }
  line.push_back('\n');
  out.append(line);
}

}  // namespace imgate::mod::lines
