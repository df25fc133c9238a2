// SPDX-License-Identifier: Apache-2.0
// Base64 (RFC 4648 §4) and base64url (§5), shared by the modules that need it (WebSocket keys,
// binary pushes, JWTs). Header-only so each module, built in or as a .so, carries its own copy
// and needs no core symbol.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace imgate::mod::common {

enum class Base64Alphabet : uint8_t { kStandard, kUrl };

namespace base64_detail {
inline constexpr std::string_view kStandardChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
inline constexpr std::string_view kUrlChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

inline int value(char c, Base64Alphabet alphabet) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (alphabet == Base64Alphabet::kStandard) {
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  }
  return c == '-' ? 62 : c == '_' ? 63 : -1;
}
}  // namespace base64_detail

inline std::string base64Encode(std::string_view in,
                                Base64Alphabet alphabet = Base64Alphabet::kStandard,
                                bool pad = true) {
  const std::string_view chars = alphabet == Base64Alphabet::kStandard
                                     ? base64_detail::kStandardChars
                                     : base64_detail::kUrlChars;
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out.push_back(chars[(v >> 18) & 63]);
    out.push_back(chars[(v >> 12) & 63]);
    out.push_back(chars[(v >> 6) & 63]);
    out.push_back(chars[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (rest == 2) {
      v |= static_cast<uint8_t>(in[i + 1]) << 8;
    }
    out.push_back(chars[(v >> 18) & 63]);
    out.push_back(chars[(v >> 12) & 63]);
    if (rest == 2) {
      out.push_back(chars[(v >> 6) & 63]);
    }
    if (pad) {
      out.append(rest == 1 ? "==" : "=");
    }
  }
  return out;
}

// Strict decoding: padding is optional, but when present it must be complete; characters outside
// the alphabet (including whitespace), impossible lengths and non-zero unused trailing bits
// (non-canonical encodings) are refused with nullopt.
inline std::optional<std::string> base64Decode(std::string_view in,
                                               Base64Alphabet alphabet = Base64Alphabet::kStandard) {
  size_t len = in.size();
  if (len % 4 == 0 && len >= 4) {
    if (in[len - 1] == '=') {
      --len;
      if (in[len - 1] == '=') {
        --len;
      }
    }
  } else if (in.find('=') != std::string_view::npos) {
    return std::nullopt;  // padding only on complete groups
  }
  if (len % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(len * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; ++i) {
    const int v = base64_detail::value(in[i], alphabet);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace imgate::mod::common
