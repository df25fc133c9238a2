// SPDX-License-Identifier: Apache-2.0
// JSON text written by more than one protocol module: string literals exactly as JavaScript's
// JSON.stringify writes them, epochs as hex, and the per-stream positions of reliable delivery
// (docs/reliability.md). Header-only, like base64.h, so each module, built in or loaded as a
// .so, carries its own copy and needs no core symbol. All functions are pure and thread-safe.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"
#include "modules/common/utf8.h"

namespace imgate::mod {

// ---- UTF-8 ------------------------------------------------------------------------------------

// What each maximal invalid UTF-8 subsequence becomes in JSON output (U+FFFD).
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

// One step of UTF-8 decoding (RFC 3629 table 3-7) at p[0], a byte of 0x80 or above, with
// `avail` >= 1 bytes readable. When `ok`, `len` is the length of the well-formed sequence (no
// overlong forms, surrogates or code points above U+10FFFF). Otherwise `len` is the length of
// the maximal subpart that one U+FFFD replaces (WHATWG "UTF-8 decode", as TextDecoder and
// Node's Buffer#toString do): the bytes before the one that made the sequence impossible, at
// least one.
struct Utf8Step {
  size_t len;
  bool ok;
};

inline Utf8Step utf8Step(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c == 0xE0) {
    need = 2;
    lo = 0xA0;  // no overlong 3-byte forms
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    need = 2;
  } else if (c == 0xED) {
    need = 2;
    hi = 0x9F;  // no UTF-16 surrogates
  } else if (c == 0xF0) {
    need = 3;
    lo = 0x90;  // no overlong 4-byte forms
  } else if (c >= 0xF1 && c <= 0xF3) {
    need = 3;
  } else if (c == 0xF4) {
    need = 3;
    hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {1, false};
  }
  for (size_t i = 1; i <= need; ++i) {
    if (i >= avail || p[i] < lo || p[i] > hi) {
      return {i, false};
    }
    lo = 0x80;
    hi = 0xBF;
  }
  return {need + 1, true};
}

// `s` with each maximal invalid subsequence replaced by one U+FFFD (see utf8Step()), what a
// JavaScript peer would make of the same bytes; `s` itself when it is valid UTF-8. A UTF-16
// surrogate written as three bytes (ED A0..BF 80..BF: what rapidjson makes of a \u escape of a
// lone surrogate) is one U+FFFD, as JSON.parse followed by any UTF-8 encoder gives.
inline std::string toValidUtf8(std::string_view s) {
  if (common::isValidUtf8(s)) {
    return std::string(s);
  }
  const auto* const u = reinterpret_cast<const unsigned char*>(s.data());
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    if (u[i] < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    if (u[i] == 0xED && s.size() - i >= 3 && u[i + 1] >= 0xA0 && u[i + 1] <= 0xBF &&
        u[i + 2] >= 0x80 && u[i + 2] <= 0xBF) {
      out.append(kUtf8Replacement);  // one surrogate, one character
      i += 3;
      continue;
    }
    const Utf8Step step = utf8Step(u + i, s.size() - i);
    if (step.ok) {
      out.append(s.data() + i, step.len);
    } else {
      out.append(kUtf8Replacement);
    }
    i += step.len;
  }
  return out;
}

// Writes `s` as a string through a rapidjson Writer (or anything with the same String()),
// which copies bytes as they are: invalid UTF-8 from a client, a header or a backend's lone
// surrogate escape becomes U+FFFD, so the document written is always valid JSON.
template <typename JsonWriter>
void writeJsonString(JsonWriter& w, std::string_view s) {
  if (common::isValidUtf8(s)) {
    w.String(s.data(), static_cast<unsigned>(s.size()));
    return;
  }
  const std::string clean = toValidUtf8(s);
  w.String(clean.data(), static_cast<unsigned>(clean.size()));
}

// ---- JSON strings -----------------------------------------------------------------------------

namespace json_text_detail {

inline constexpr char kHexDigits[] = "0123456789abcdef";

constexpr std::array<bool, 256> plainBytes() {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) {
    t[static_cast<size_t>(c)] = c != '"' && c != '\\';
  }
  return t;
}

inline constexpr std::array<bool, 256> kPlainBytes = plainBytes();

inline void appendDecimal(std::string& out, uint64_t value) {
  char buf[20];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;  // 20 digits hold any u64
  out.append(buf, end);
}

}  // namespace json_text_detail

// True for the bytes a JSON string holds as they are, with no escape and no UTF-8 check:
// printable ASCII (and DEL) other than '"' and '\'. Scanners skip runs of these.
inline bool jsonPlainByte(unsigned char c) { return json_text_detail::kPlainBytes[c]; }

// Appends `s` as a JSON string literal, quotes included, byte for byte what JSON.stringify
// writes for the same string: `"` `\` \b \f \n \r \t as two-character escapes, every other C0
// control as \u00xx (lower-case hex); '/', DEL and every non-ASCII character (U+2028/U+2029
// included) as they are. A JavaScript string cannot hold invalid UTF-8, so each maximal invalid
// subsequence becomes one U+FFFD (see utf8Step()): the output is always valid UTF-8 and valid
// JSON (RFC 8259 §8.1), whatever the input.
inline void appendJsonString(std::string& out, std::string_view s) {
  const auto* const u = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  out.push_back('"');
  size_t i = 0;
  while (i < n) {
    const size_t run = i;
    while (i < n && jsonPlainByte(u[i])) {
      ++i;
    }
    out.append(s.data() + run, i - run);
    if (i >= n) {
      break;
    }
    const unsigned char c = u[i];
    if (c >= 0x80) {
      const Utf8Step step = utf8Step(u + i, n - i);
      if (step.ok) {
        out.append(s.data() + i, step.len);
      } else {
        out.append(kUtf8Replacement);
      }
      i += step.len;
      continue;
    }
    out.push_back('\\');
    switch (c) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '\b': out.push_back('b'); break;
      case '\f': out.push_back('f'); break;
      case '\n': out.push_back('n'); break;
      case '\r': out.push_back('r'); break;
      case '\t': out.push_back('t'); break;
      default:
        out.append("u00");
        out.push_back(json_text_detail::kHexDigits[c >> 4]);
        out.push_back(json_text_detail::kHexDigits[c & 0xF]);
        break;
    }
    ++i;
  }
  out.push_back('"');
}

// ---- Reliable delivery ------------------------------------------------------------------------

// An epoch as every wire form writes it: lower-case hex without leading zeros, "0" for 0 (no
// history yet).
inline std::string epochHex(uint64_t epoch) {
  char buf[16];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), epoch, 16);
  (void)ec;  // 16 hex digits hold any u64
  return std::string(buf, end);
}

// The wire name of a StreamStart outcome: "fresh", "recovered" or "impossible".
inline std::string_view streamOutcomeName(StreamStart::Outcome outcome) {
  switch (outcome) {
    case StreamStart::Outcome::kFresh: return "fresh";
    case StreamStart::Outcome::kRecovered: return "recovered";
    case StreamStart::Outcome::kImpossible: return "impossible";
  }
  return "fresh";
}

namespace json_text_detail {

// {"<stream>":{"epoch":"<hex>","seq":N<more>},...} for a range of objects with members stream,
// epoch and seq; `more(out, element)` appends the fields after seq.
template <typename Range, typename More>
void appendPositions(std::string& out, const Range& positions, More more) {
  out.push_back('{');
  bool first = true;
  for (const auto& p : positions) {
    if (!first) {
      out.push_back(',');
    }
    first = false;
    appendJsonString(out, p.stream);
    out.append(":{\"epoch\":\"").append(epochHex(p.epoch)).append("\",\"seq\":");
    appendDecimal(out, p.seq);
    more(out, p);
    out.push_back('}');
  }
  out.push_back('}');
}

}  // namespace json_text_detail

// Appends the session's stream starts (SessionOpened::streams) as one JSON object, in the order
// given, "{}" when empty:
//   {"<stream>":{"epoch":"<hex>","seq":N,"recovery":"fresh|recovered|impossible",
//                "replayed":K},...}
// A stream listed twice is written twice (the core lists each once). Used by tcp_frame's
// HELLO_ACK `streams` field and the WebSocket envelope's welcome.
inline void appendStreamsJson(std::string& out, const std::vector<StreamStart>& streams) {
  json_text_detail::appendPositions(out, streams, [](std::string& o, const StreamStart& s) {
    o.append(",\"recovery\":\"").append(streamOutcomeName(s.outcome)).append("\",\"replayed\":");
    json_text_detail::appendDecimal(o, s.replayed);
  });
}

// Appends the resume handshake field the core reads (codec.h, header x-imgate-resume):
//   {"<stream>":{"epoch":"<hex>","seq":N},...}
// in the order given, "{}" when empty. `Positions` is any range of objects with members
// `stream` (convertible to std::string_view), `epoch` and `seq` (uint64_t), such as the
// clients' and Socket.IO recovery's StreamPosition.
template <typename Positions>
void appendResumeJson(std::string& out, const Positions& positions) {
  json_text_detail::appendPositions(out, positions, [](std::string&, const auto&) {});
}

}  // namespace imgate::mod
