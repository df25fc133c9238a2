// SPDX-License-Identifier: Apache-2.0
#include "utf8.h"

#include <cstring>

namespace imgate::mod::websocket {

namespace {

// Continuation range check for each state; kAccept and kReject never reach it.
struct ContRange {
  uint8_t lo;
  uint8_t hi;
  uint8_t next;
};

}  // namespace

bool Utf8Validator::feed(std::string_view bytes) {
  static constexpr ContRange kRanges[] = {
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
    const ContRange& r = kRanges[state];
    state = (c >= r.lo && c <= r.hi) ? r.next : static_cast<uint8_t>(kReject);
  }
  state_ = state;
  return state != kReject;
}

bool isValidUtf8(std::string_view bytes) {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

size_t validUtf8Prefix(std::string_view bytes, size_t max_len) {
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

}  // namespace imgate::mod::websocket
