// SPDX-License-Identifier: Apache-2.0
#include "json_string.h"

#include <charconv>
#include <vector>

namespace imgate::mod::socketio {

namespace {

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// Reads the four hex digits of a \u escape starting at s[pos]; -1 when malformed.
int32_t hex4(std::string_view s, size_t pos) {
  if (pos + 4 > s.size()) {
    return -1;
  }
  int32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    const int d = hexValue(s[pos + i]);
    if (d < 0) {
      return -1;
    }
    v = (v << 4) | d;
  }
  return v;
}

std::string offsetReason(std::string_view what, size_t offset) {
  std::string r(what);
  r += " at offset ";
  r += std::to_string(offset);
  return r;
}

// ---- Scanner ----------------------------------------------------------------------------------

enum : uint8_t { kKeyOther, kKeyPlaceholder, kKeyNum };

struct Frame {
  bool object;
  uint8_t key;       // which member the next value belongs to (objects only)
  bool placeholder;  // "_placeholder" is `true` (the last duplicate wins, as in JSON.parse)
  int8_t num;        // "num": 0 absent, 1 a valid index, -1 anything else
};

// The container stack: inline up to the default depth, so a scan normally allocates nothing.
class FrameStack {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  Frame& operator[](size_t i) { return i < kInline ? inline_[i] : heap_[i - kInline]; }
  Frame& back() { return (*this)[size_ - 1]; }
  void push_back(Frame f) {
    if (size_ < kInline) {
      inline_[size_] = f;
    } else {
      heap_.push_back(f);
    }
    ++size_;
  }
  void pop_back() {
    --size_;
    if (size_ >= kInline) {
      heap_.pop_back();
    }
  }

 private:
  static constexpr size_t kInline = kDefaultJsonMaxDepth;
  Frame inline_[kInline];
  std::vector<Frame> heap_;
  size_t size_ = 0;
};

class Scanner {
 public:
  Scanner(std::string_view text, const JsonScanOptions& options)
      : s_(text), n_(text.size()), options_(options) {}

  Result<JsonShape> run();

 private:
  void skipWs() {
    size_t p = pos_;
    while (p < n_ && (s_[p] == ' ' || s_[p] == '\t' || s_[p] == '\n' || s_[p] == '\r')) {
      ++p;
    }
    pos_ = p;
  }
  tl::unexpected<Error> syntax() const {
    return fail(Errc::kProtocolError, offsetReason("bad json", pos_));
  }
  Status string(std::string_view* raw);
  Status number();
  Status literal(std::string_view word);
  Status key();
  void noteValue(JsonKind kind, std::string_view raw);
  Status close();

  std::string_view s_;
  size_t n_;
  size_t pos_ = 0;
  const JsonScanOptions& options_;
  FrameStack stack_;
  JsonShape shape_;
};

Status Scanner::string(std::string_view* raw) {
  const size_t begin = pos_;
  ++pos_;  // opening quote
  const auto* const u = reinterpret_cast<const unsigned char*>(s_.data());
  for (;;) {
    size_t p = pos_;  // a local: stores through pos_ could alias the byte loads
    while (p < n_ && jsonPlainByte(u[p])) {
      ++p;
    }
    pos_ = p;
    if (pos_ >= n_) {
      return fail(Errc::kProtocolError, offsetReason("unterminated json string", begin));
    }
    const unsigned char c = u[pos_];
    if (c == '"') {
      ++pos_;
      *raw = s_.substr(begin, pos_ - begin);
      return {};
    }
    if (c == '\\') {
      if (pos_ + 1 >= n_) {
        return fail(Errc::kProtocolError, offsetReason("bad escape in json string", pos_));
      }
      const char e = s_[pos_ + 1];
      if (e == 'u') {
        if (hex4(s_, pos_ + 2) < 0) {
          return fail(Errc::kProtocolError, offsetReason("bad \\u escape in json string", pos_));
        }
        pos_ += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                 e == 'r' || e == 't') {
        pos_ += 2;
      } else {
        return fail(Errc::kProtocolError, offsetReason("bad escape in json string", pos_));
      }
      continue;
    }
    if (c < 0x20) {
      return fail(Errc::kProtocolError, offsetReason("control character in json string", pos_));
    }
    const Utf8Step step = utf8Step(u + pos_, n_ - pos_);
    if (!step.ok) {
      return fail(Errc::kProtocolError, offsetReason("invalid utf-8 in json string", pos_));
    }
    pos_ += step.len;
  }
}

Status Scanner::number() {
  size_t p = pos_;
  auto digit = [this, &p] { return p < n_ && s_[p] >= '0' && s_[p] <= '9'; };
  auto at = [this, &p](char c) { return p < n_ && s_[p] == c; };
  if (at('-')) {
    ++p;
  }
  if (at('0')) {
    ++p;
  } else if (digit()) {
    while (digit()) {
      ++p;
    }
  } else {
    pos_ = p;
    return syntax();
  }
  if (at('.')) {
    ++p;
    if (!digit()) {
      pos_ = p;
      return syntax();
    }
    while (digit()) {
      ++p;
    }
  }
  if (at('e') || at('E')) {
    ++p;
    if (at('+') || at('-')) {
      ++p;
    }
    if (!digit()) {
      pos_ = p;
      return syntax();
    }
    while (digit()) {
      ++p;
    }
  }
  pos_ = p;
  return {};
}

Status Scanner::literal(std::string_view word) {
  if (s_.substr(pos_, word.size()) != word) {
    return syntax();
  }
  pos_ += word.size();
  return {};
}

// An object member name, the colon and the whitespace up to the value.
Status Scanner::key() {
  if (pos_ >= n_ || s_[pos_] != '"') {
    return syntax();
  }
  std::string_view raw;
  if (auto st = string(&raw); !st) {
    return st;
  }
  if (options_.check_placeholders) {
    std::string_view name = raw.substr(1, raw.size() - 2);
    std::string unescaped;
    if (name.find('\\') != std::string_view::npos) {
      auto parsed = parseJsonString(raw);
      if (parsed) {
        unescaped = std::move(*parsed);
        name = unescaped;
      }
    }
    stack_.back().key = name == "_placeholder" ? kKeyPlaceholder
                        : name == "num"        ? kKeyNum
                                               : kKeyOther;
  }
  skipWs();
  if (pos_ >= n_ || s_[pos_] != ':') {
    return syntax();
  }
  ++pos_;
  skipWs();
  return {};
}

// Records a value for the placeholder rule of the object it belongs to.
void Scanner::noteValue(JsonKind kind, std::string_view raw) {
  if (!options_.check_placeholders || stack_.empty() || !stack_.back().object) {
    return;
  }
  Frame& f = stack_.back();
  if (f.key == kKeyPlaceholder) {
    f.placeholder = kind == JsonKind::kTrue;
  } else if (f.key == kKeyNum) {
    // socket.io-parser: typeof num === "number" && num >= 0 && num < buffers.length, on the
    // double JSON.parse produced (so 0.0 and 1e0 are indices, 1e400 is Infinity, -0 is 0).
    f.num = -1;
    if (kind == JsonKind::kNumber) {
      double v = 0;
      const auto [end, ec] = std::from_chars(raw.data(), raw.data() + raw.size(), v);
      if (ec == std::errc() && end == raw.data() + raw.size() && v >= 0 &&
          v < static_cast<double>(options_.attachments)) {
        f.num = 1;
      }
    }
  }
  f.key = kKeyOther;
}

Status Scanner::close() {
  const Frame f = stack_.back();
  if (f.object && options_.check_placeholders && f.placeholder && f.num != 1) {
    return fail(Errc::kProtocolError, offsetReason("illegal attachments", pos_));
  }
  stack_.pop_back();
  if (stack_.empty() && shape_.root == JsonKind::kArray) {
    shape_.close = pos_;
  }
  ++pos_;
  if (stack_.size() == 1 && !stack_[0].object && shape_.elements == 1) {
    shape_.first_end = pos_;  // element 0 was a container
  }
  return {};
}

Result<JsonShape> Scanner::run() {
  skipWs();
  for (;;) {
    // A value starts at pos_.
    if (pos_ >= n_) {
      return syntax();
    }
    const bool top_element = stack_.size() == 1 && !stack_[0].object;
    if (top_element) {
      if (shape_.elements == 0) {
        shape_.first_begin = pos_;
      } else if (shape_.elements == 1) {
        shape_.second_begin = pos_;
      }
      ++shape_.elements;
    }
    const char c = s_[pos_];
    if (c == '{' || c == '[') {
      const JsonKind kind = c == '{' ? JsonKind::kObject : JsonKind::kArray;
      if (stack_.empty()) {
        shape_.root = kind;
      } else {
        noteValue(kind, {});
      }
      if (top_element && shape_.elements == 1) {
        shape_.first = kind;
      }
      if (stack_.size() >= options_.max_depth) {
        return fail(Errc::kProtocolError,
                    offsetReason("json nested deeper than " + std::to_string(options_.max_depth),
                                 pos_));
      }
      stack_.push_back(Frame{c == '{', kKeyOther, false, 0});
      ++pos_;
      skipWs();
      if (pos_ < n_ && s_[pos_] == (c == '{' ? '}' : ']')) {
        if (auto st = close(); !st) {
          return tl::unexpected(st.error());
        }
      } else {
        if (c == '{') {
          if (auto st = key(); !st) {
            return tl::unexpected(st.error());
          }
        }
        continue;
      }
    } else {
      const size_t begin = pos_;
      JsonKind kind;
      Status st;
      std::string_view raw;
      switch (c) {
        case '"':
          kind = JsonKind::kString;
          st = string(&raw);
          break;
        case 't':
          kind = JsonKind::kTrue;
          st = literal("true");
          break;
        case 'f':
          kind = JsonKind::kFalse;
          st = literal("false");
          break;
        case 'n':
          kind = JsonKind::kNull;
          st = literal("null");
          break;
        default:
          kind = JsonKind::kNumber;
          st = number();
          break;
      }
      if (!st) {
        return tl::unexpected(st.error());
      }
      raw = s_.substr(begin, pos_ - begin);
      if (stack_.empty()) {
        shape_.root = kind;
      } else {
        noteValue(kind, raw);
        if (top_element && shape_.elements == 1) {
          shape_.first = kind;
          shape_.first_end = pos_;
        }
      }
    }
    // After a complete value: a separator, closing brackets, or the end.
    for (;;) {
      skipWs();
      if (stack_.empty()) {
        if (pos_ != n_) {
          return fail(Errc::kProtocolError, offsetReason("bytes after json value", pos_));
        }
        return shape_;
      }
      if (pos_ >= n_) {
        return syntax();
      }
      const bool object = stack_.back().object;
      const char d = s_[pos_];
      if (d == ',') {
        ++pos_;
        skipWs();
        if (object) {
          if (auto st = key(); !st) {
            return tl::unexpected(st.error());
          }
        }
        break;
      }
      if (d != (object ? '}' : ']')) {
        return syntax();
      }
      if (auto st = close(); !st) {
        return tl::unexpected(st.error());
      }
    }
  }
}

}  // namespace

std::string jsonString(std::string_view utf8) {
  std::string out;
  appendJsonString(out, utf8);
  return out;
}

Result<std::string> parseJsonString(std::string_view json) {
  const size_t n = json.size();
  if (n < 2 || json[0] != '"') {
    return fail(Errc::kProtocolError, "not a json string");
  }
  const auto* const u = reinterpret_cast<const unsigned char*>(json.data());
  std::string out;
  out.reserve(n - 2);
  size_t i = 1;
  for (;;) {
    const size_t run = i;
    while (i < n && jsonPlainByte(u[i])) {
      ++i;
    }
    out.append(json.data() + run, i - run);
    if (i >= n) {
      return fail(Errc::kProtocolError, "unterminated json string");
    }
    const unsigned char c = u[i];
    if (c == '"') {
      if (i + 1 != n) {
        return fail(Errc::kProtocolError, offsetReason("bytes after json string", i + 1));
      }
      return out;
    }
    if (c >= 0x80) {
      const Utf8Step step = utf8Step(u + i, n - i);
      if (!step.ok) {
        return fail(Errc::kProtocolError, offsetReason("invalid utf-8 in json string", i));
      }
      out.append(json.data() + i, step.len);
      i += step.len;
      continue;
    }
    if (c < 0x20) {
      return fail(Errc::kProtocolError, offsetReason("control character in json string", i));
    }
    // c == '\\'
    if (i + 1 >= n) {
      return fail(Errc::kProtocolError, offsetReason("bad escape in json string", i));
    }
    const char e = json[i + 1];
    switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        const int32_t cu = hex4(json, i + 2);
        if (cu < 0) {
          return fail(Errc::kProtocolError, offsetReason("bad \\u escape in json string", i));
        }
        i += 6;
        if (cu >= 0xD800 && cu <= 0xDBFF && i + 1 < n && json[i] == '\\' && json[i + 1] == 'u') {
          const int32_t low = hex4(json, i + 2);
          if (low >= 0xDC00 && low <= 0xDFFF) {
            appendUtf8(out, 0x10000 + ((static_cast<uint32_t>(cu) - 0xD800) << 10) +
                                (static_cast<uint32_t>(low) - 0xDC00));
            i += 6;
            continue;
          }
        }
        if (cu >= 0xD800 && cu <= 0xDFFF) {
          out.append(kUtf8Replacement);
        } else {
          appendUtf8(out, static_cast<uint32_t>(cu));
        }
        continue;
      }
      default:
        return fail(Errc::kProtocolError, offsetReason("bad escape in json string", i));
    }
    i += 2;
  }
}

Result<JsonShape> scanJson(std::string_view text, const JsonScanOptions& options) {
  return Scanner(text, options).run();
}

}  // namespace imgate::mod::socketio
