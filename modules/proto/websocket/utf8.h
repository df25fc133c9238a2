// SPDX-License-Identifier: Apache-2.0
// Incremental UTF-8 validation (RFC 3629) for WebSocket text messages and close reasons.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace imgate::mod::websocket {

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

}  // namespace imgate::mod::websocket
