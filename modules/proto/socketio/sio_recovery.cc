// SPDX-License-Identifier: Apache-2.0
#include "sio_recovery.h"

#include <limits>
#include <set>

#include "modules/common/json_text.h"

namespace imgate::mod::socketio {

namespace {

constexpr char kHexUpper[] = "0123456789ABCDEF";

bool isSafe(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("-._:/@!$&'()*+,;=").find(c) != std::string_view::npos;
}

int upperHexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

Result<std::string> unescapeStream(std::string_view text) {
  if (text.empty()) {
    return fail(Errc::kBadRequest, "empty stream name");
  }
  std::string name;
  name.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '%') {
      if (!isSafe(c)) {
        return fail(Errc::kBadRequest, "unescaped character in stream name");
      }
      name.push_back(c);
      continue;
    }
    const int hi = i + 2 < text.size() ? upperHexValue(text[i + 1]) : -1;
    const int lo = hi >= 0 ? upperHexValue(text[i + 2]) : -1;
    if (lo < 0) {
      return fail(Errc::kBadRequest, "bad escape in stream name");
    }
    const char decoded = static_cast<char>(hi * 16 + lo);
    if (isSafe(decoded)) {
      return fail(Errc::kBadRequest, "needless escape in stream name");
    }
    name.push_back(decoded);
    i += 2;
  }
  return name;
}

// Canonical unsigned numbers: no sign, no leading zeros, within 64 bits.
bool parseDecimal(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) {
    return false;
  }
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return false;
    }
    value = value * 10 + digit;
  }
  return true;
}

bool parseLowerHex(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 16 || (text.size() > 1 && text[0] == '0')) {
    return false;
  }
  value = 0;
  for (char c : text) {
    uint64_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    value = (value << 4) | digit;
  }
  return true;
}

}  // namespace

std::string encodeRecoveryOffset(const std::vector<StreamPosition>& positions) {
  std::string offset;
  for (const StreamPosition& p : positions) {
    if (!offset.empty()) {
      offset.push_back('|');
    }
    for (char c : p.stream) {
      if (isSafe(c)) {
        offset.push_back(c);
      } else {
        const auto byte = static_cast<unsigned char>(c);
        offset.push_back('%');
        offset.push_back(kHexUpper[byte >> 4]);
        offset.push_back(kHexUpper[byte & 0xF]);
      }
    }
    offset.push_back('~');
    offset.append(epochHex(p.epoch));
    offset.push_back('~');
    offset.append(std::to_string(p.seq));
  }
  return offset;
}

Result<std::vector<StreamPosition>> decodeRecoveryOffset(std::string_view offset,
                                                         size_t max_streams) {
  std::vector<StreamPosition> positions;
  if (offset.empty()) {
    return positions;
  }
  std::set<std::string, std::less<>> seen;
  while (true) {
    const size_t bar = offset.find('|');
    const std::string_view entry = offset.substr(0, bar);
    if (positions.size() >= max_streams) {
      return fail(Errc::kBadRequest, "more than " + std::to_string(max_streams) + " streams");
    }
    const size_t seq_tilde = entry.rfind('~');
    if (seq_tilde == std::string_view::npos || seq_tilde == 0) {
      return fail(Errc::kBadRequest, "entry without epoch and seq");
    }
    const size_t epoch_tilde = entry.rfind('~', seq_tilde - 1);
    if (epoch_tilde == std::string_view::npos) {
      return fail(Errc::kBadRequest, "entry without epoch and seq");
    }
    StreamPosition p;
    auto name = unescapeStream(entry.substr(0, epoch_tilde));
    if (!name) {
      return tl::unexpected(std::move(name.error()));
    }
    p.stream = std::move(*name);
    if (!parseLowerHex(entry.substr(epoch_tilde + 1, seq_tilde - epoch_tilde - 1), p.epoch)) {
      return fail(Errc::kBadRequest, "bad epoch");
    }
    if (!parseDecimal(entry.substr(seq_tilde + 1), p.seq)) {
      return fail(Errc::kBadRequest, "bad seq");
    }
    if (!seen.insert(p.stream).second) {
      return fail(Errc::kBadRequest, "stream named twice");
    }
    positions.push_back(std::move(p));
    if (bar == std::string_view::npos) {
      return positions;
    }
    offset.remove_prefix(bar + 1);
  }
}

std::string resumeJson(const std::vector<StreamPosition>& positions) {
  std::string json;
  appendResumeJson(json, positions);
  return json;
}

}  // namespace imgate::mod::socketio
