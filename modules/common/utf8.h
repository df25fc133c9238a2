// SPDX-License-Identifier: Apache-2.0
// UTF-8 validation (RFC 3629): WebSocket text messages and close reasons, push API bodies and
// ids. Header-only, like base64.h, so each module, built in or as a .so, carries its own copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace imgate::mod::common {

// Validates a byte stream that may arrive in arbitrary pieces (frames, partial frames, inflate
// output chunks). Rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF) and code points
// above U+10FFFF, and does so at the first byte that makes the sequence impossible, so a caller
// can fail a message before it is complete (RFC 6455 §8.1, Autobahn 6.x "fail fast").
// One byte of state; cheap to copy. Not thread-safe (per session, like the codec).
class Utf8Validator {
 public:
  // Feeds the next piece. Returns false once the stream is invalid; after that every call
  // returns false until reset().
  bool feed(std::string_view bytes);
  // True when everything fed so far is valid and no multi-byte sequence is left open, i.e. the
  // stream could end here.
  bool complete() const { return state_ == kAccept; }
  bool failed() const { return state_ == kReject; }
  void reset() { state_ = kAccept; }

 private:
  // The states name what the next byte must be (RFC 3629 §4 table).
  enum State : uint8_t {
    kAccept,  // between characters
    kCont1,   // one more 80..BF
    kCont2,   // two more 80..BF
    kCont3,   // three more 80..BF
    kE0,      // after E0: A0..BF, then one more (no overlong 3-byte forms)
    kED,      // after ED: 80..9F, then one more (no surrogates)
    kF0,      // after F0: 90..BF, then two more (no overlong 4-byte forms)
    kF4,      // after F4: 80..8F, then two more (nothing above U+10FFFF)
    kReject,
  };
  uint8_t state_ = kAccept;
};

// Whole-buffer check: valid and complete.
bool isValidUtf8(std::string_view bytes);

// Length of the longest prefix of `bytes` that is valid, complete UTF-8 and at most `max_len`
// bytes long. Used to cut close reasons to 123 bytes without splitting a character.
size_t validUtf8Prefix(std::string_view bytes, size_t max_len);


namespace utf8_detail {

// Continuation range check for each state; kAccept and kReject never reach it.
struct ContRange {
  uint8_t lo;
  uint8_t hi;
  uint8_t next;
};

}  // namespace utf8_detail

inline bool Utf8Validator::feed(std::string_view bytes) {
  static constexpr utf8_detail::ContRange kRanges[] = {
      {0, 0, kReject},           // kAccept (unused)
      {0x80, 0xBF, kAccept},     // kCont1
      {0x80, 0xBF, kCont1},      // kCont2
      {0x80, 0xBF, kCont2},      // kCont3
      {0xA0, 0xBF, kCont1},      // kE0
      {0x80, 0x9F, kCont1},      // kED
      {0x90, 0xBF, kCont2},      // kF0
      {0x80, 0x8F, kCont2},      // kF4
  };
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* const end = p + bytes.size();
  uint8_t state = state_;
  while (p < end) {
    if (state == kReject) {
      break;
    }
    if (state == kAccept) {
      // ASCII dominates chat traffic: skip it eight bytes at a time.
      while (end - p >= 8) {
        uint64_t word;
        std::memcpy(&word, p, sizeof(word));
        if ((word & 0x8080808080808080ULL) != 0) {
          break;
        }
        p += 8;
      }
      if (p == end) {
        break;
      }
      const uint8_t c = *p++;
      if (c < 0x80) {
        continue;
      }
      if (c >= 0xC2 && c <= 0xDF) {
        state = kCont1;
      } else if (c == 0xE0) {
        state = kE0;
      } else if (c == 0xED) {
        state = kED;
      } else if (c >= 0xE1 && c <= 0xEF) {
        state = kCont2;
      } else if (c == 0xF0) {
        state = kF0;
      } else if (c >= 0xF1 && c <= 0xF3) {
        state = kCont3;
      } else if (c == 0xF4) {
        state = kF4;
      } else {
        state = kReject;  // 80..C1 (stray continuation, overlong 2-byte), F5..FF
      }
      continue;
    }
    const uint8_t c = *p++;
    const utf8_detail::ContRange& r = kRanges[state];
    state = (c >= r.lo && c <= r.hi) ? r.next : static_cast<uint8_t>(kReject);
  }
  state_ = state;
  return state != kReject;
}

inline bool isValidUtf8(std::string_view bytes) {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

inline size_t validUtf8Prefix(std::string_view bytes, size_t max_len) {
  Utf8Validator v;
  size_t good = 0;
  const size_t n = bytes.size() < max_len ? bytes.size() : max_len;
  for (size_t i = 0; i < n; ++i) {
    if (!v.feed(bytes.substr(i, 1))) {
      break;
    }
    if (v.complete()) {
      good = i + 1;
    }
  }
  return good;
}

}  // namespace imgate::mod::common
