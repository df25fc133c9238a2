// SPDX-License-Identifier: Apache-2.0
#pragma once

// A small streaming JSON writer for the results file: commas and escaping handled, no DOM.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace imgate::bench::load {

class JsonWriter {
 public:
  JsonWriter& beginObject() { return open('{'); }
  JsonWriter& endObject() { return close('}'); }
  JsonWriter& beginArray() { return open('['); }
  JsonWriter& endArray() { return close(']'); }

  JsonWriter& key(std::string_view k) {
    comma();
    string(k);
    out_.push_back(':');
    after_key_ = true;
    return *this;
  }

  JsonWriter& value(std::string_view v) {
    comma();
    string(v);
    return *this;
  }
  JsonWriter& value(const char* v) { return value(std::string_view(v)); }
  JsonWriter& value(const std::string& v) { return value(std::string_view(v)); }
  JsonWriter& value(bool v) {
    comma();
    out_.append(v ? "true" : "false");
    return *this;
  }
  JsonWriter& value(uint64_t v) {
    comma();
    out_.append(std::to_string(v));
    return *this;
  }
  JsonWriter& value(int64_t v) {
    comma();
    out_.append(std::to_string(v));
    return *this;
  }
  JsonWriter& value(uint32_t v) { return value(uint64_t(v)); }
  JsonWriter& value(int v) { return value(int64_t(v)); }
  // Finite doubles with up to 3 decimals (ms, rates); non-finite values become null.
  JsonWriter& value(double v) {
    comma();
    if (!std::isfinite(v)) {
      out_.append("null");
      return *this;
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.3f", v);
    std::string s = buf;
    while (s.size() > 1 && s.back() == '0') {
      s.pop_back();
    }
    if (s.back() == '.') {
      s.pop_back();
    }
    out_.append(s == "-0" ? "0" : s);
    return *this;
  }
  JsonWriter& null() {
    comma();
    out_.append("null");
    return *this;
  }

  template <class T>
  JsonWriter& field(std::string_view k, const T& v) {
    key(k);
    return value(v);
  }

  const std::string& str() const { return out_; }

 private:
  JsonWriter& open(char c) {
    comma();
    out_.push_back(c);
    need_comma_.push_back(false);
    return *this;
  }
  JsonWriter& close(char c) {
    if (!need_comma_.empty()) {
      need_comma_.pop_back();
    }
    out_.push_back(c);
    if (!need_comma_.empty()) {
      need_comma_.back() = true;
    }
    return *this;
  }
  void comma() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!need_comma_.empty()) {
      if (need_comma_.back()) {
        out_.push_back(',');
      }
      need_comma_.back() = true;
    }
  }
  void string(std::string_view s) {
    out_.push_back('"');
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == '"' || c == '\\') {
        out_.push_back('\\');
        out_.push_back(ch);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        out_.append(buf);
      } else {
        out_.push_back(ch);
      }
    }
    out_.push_back('"');
  }

  std::string out_;
  std::vector<bool> need_comma_;
  bool after_key_ = false;
};

}  // namespace imgate::bench::load
