// SPDX-License-Identifier: Apache-2.0
// A bounded in-situ stream for rapidjson's SAX Reader (kParseInsituFlag). rapidjson's own
// InsituStringStream trusts a NUL at the end, but its UTF-8 validator reads a lead byte's
// continuation bytes without looking for it. Here reads past the end return NUL and writes past
// it are dropped (unescaped strings never grow, so writes trail reads). In-situ SAX parsing also
// keeps rapidjson 1.1.0's internal stack unused (its first push is undefined behaviour).
#pragma once

#include <cstddef>
#include <string>

namespace imgate::mod {

class InsituStream {
 public:
  using Ch = char;
  explicit InsituStream(std::string& text)
      : src_(text.data()), head_(text.data()), end_(text.data() + text.size()) {}
  Ch Peek() const { return src_ == end_ ? '\0' : *src_; }
  Ch Take() { return src_ == end_ ? '\0' : *src_++; }
  size_t Tell() const { return static_cast<size_t>(src_ - head_); }
  Ch* PutBegin() { return dst_ = src_; }
  void Put(Ch c) {
    if (dst_ < end_) {
      *dst_++ = c;
    }
  }
  size_t PutEnd(Ch* begin) { return static_cast<size_t>(dst_ - begin); }
  void Flush() {}

 private:
  Ch* src_;
  Ch* dst_ = nullptr;
  Ch* head_;
  Ch* end_;
};

}  // namespace imgate::mod
