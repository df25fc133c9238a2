// SPDX-License-Identifier: Apache-2.0
#include "ndjson_codec.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <memory>
#include <utility>

namespace imgate::mod::ndjson {

namespace {

// Keeps ndjson fan-out keys apart from other codecs' keys ("NDJ1").
constexpr uint64_t kSharedKeyTag = uint64_t{0x4E444A31} << 32;

// In situ and recursive, on a copy of the text: this way rapidjson never uses its internal
// stack, whose first push in rapidjson 1.1.0 (Debian 12) is undefined behaviour that clang's
// UBSan reports (null pointer plus offset). Recursion is bounded by the handlers' depth checks.
// No comments, trailing commas or NaN: strict RFC 8259.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag |
                                 rapidjson::kParseValidateEncodingFlag;
// Outbound payloads nested deeper than this are sent as JSON strings (bounds the recursion).
constexpr uint32_t kMaxPayloadDepth = 512;

// Unknown "type" values are quoted in reasons up to this many bytes.
constexpr size_t kMaxQuoted = 32;

constexpr std::string_view kPongLine = "{\"type\":\"pong\"}\n";
constexpr std::string_view kPingLine = "{\"type\":\"ping\"}\n";
constexpr std::string_view kBadTo = R"("to" must be {"user":"<id>"} or {"room":"<name>"})";

bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
size_t utf8SequenceLength(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    return 1;
  }
  size_t n = 0;
  uint8_t lo = 0x80;
  uint8_t hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (s.size() - i < n) {
    return 0;
  }
  const auto b1 = static_cast<uint8_t>(s[i + 1]);
  if (b1 < lo || b1 > hi) {
    return 0;
  }
  for (size_t k = 2; k < n; ++k) {
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) {
      return 0;
    }
  }
  return n;
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8SequenceLength(s, i);
    if (n == 0) {
      return false;
    }
    i += n;
  }
  return true;
}

// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence.
std::string_view cutUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) {
    return s;
  }
  size_t end = max;
  while (end > 0 && (static_cast<uint8_t>(s[end]) & 0xC0) == 0x80) {
    --end;
  }
  return s.substr(0, end);
}

void appendBase64(std::string& out, std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                       (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    const bool two = i + 1 < in.size();
    if (two) {
      v |= uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    }
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(two ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

std::string percentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    const auto u = static_cast<uint8_t>(c);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

bool hasControlChars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<uint8_t>(c);
    return u < 0x20 || u == 0x7F;
  });
}

std::string_view metaValue(const Message& message, std::string_view key) {
  for (const auto& [k, v] : message.meta) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

std::string quoted(std::string_view s) {
  std::string out;
  appendJsonString(out, cutUtf8(s, kMaxQuoted));
  return out;
}

// rapidjson's English messages ("Invalid value.") in the project's style ("invalid value").
std::string parseErrorText(rapidjson::ParseErrorCode code) {
  std::string text = rapidjson::GetParseError_En(code);
  if (!text.empty() && text.back() == '.') {
    text.pop_back();
  }
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') {
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  }
  return text;
}

// rapidjson's in-situ stream, bounded: rapidjson::InsituStringStream trusts the NUL at the end,
// but its UTF-8 validator reads a lead byte's continuation bytes without looking for it (a line
// ending in "\xEF" reads past the buffer). Here reads past the end return NUL and writes past it
// are dropped (writes trail reads except on such error paths). Also without the StreamTraits
// copy optimisation, so handlers see the parser's real position in Tell() during callbacks.
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

// Validates a whole JSON value, counting nesting only.
class DepthHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthHandler> {
 public:
  explicit DepthHandler(uint32_t max_depth) : max_depth_(max_depth) {}
  bool StartObject() { return ++depth_ <= max_depth_; }
  bool StartArray() { return ++depth_ <= max_depth_; }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    return true;
  }

 private:
  uint32_t max_depth_;
  uint32_t depth_ = 0;
};

// ---- Decoding one line ------------------------------------------------------------------------

// Top-level keys the protocol knows. Each may appear once and has a fixed JSON type wherever it
// appears; other keys are ignored (so clients may send fields newer servers will understand).
enum class Field : uint8_t { kOther, kType, kToken, kDevice, kSdk, kEvent, kId, kSeq, kTo, kData,
                             kReason };

struct FieldName {
  std::string_view name;
  Field field;
};
constexpr std::array<FieldName, 10> kFields = {{
    {"type", Field::kType}, {"token", Field::kToken}, {"device", Field::kDevice},
    {"sdk", Field::kSdk}, {"event", Field::kEvent}, {"id", Field::kId}, {"seq", Field::kSeq},
    {"to", Field::kTo}, {"data", Field::kData}, {"reason", Field::kReason},
}};

std::string_view fieldName(Field field) {
  for (const FieldName& f : kFields) {
    if (f.field == field) {
      return f.name;
    }
  }
  return {};
}

struct ParsedLine {
  std::string type;
  std::string token;
  std::string device;
  std::string sdk;
  std::string event;
  std::string id;
  std::string reason;
  std::string to;
  TargetKind to_kind = TargetKind::kNone;
  uint64_t seq = 0;
  bool has_type = false;
  bool has_seq = false;
  size_t data_key_end = std::string_view::npos;  // just past the "data" key's closing quote
};

enum class ValueKind : uint8_t { kString, kUnsigned, kObject, kArray, kOther };

// rapidjson SAX handler: checks the shape of one line and copies out the fields it knows. The
// "data" value is not copied here: its raw text is cut from the line once the parse succeeded.
class LineHandler {
 public:
  LineHandler(ParsedLine& line, const InsituStream& stream, uint32_t max_depth)
      : line_(line), stream_(stream), max_depth_(max_depth) {}

  bool Null() { return value(ValueKind::kOther); }
  bool Bool(bool) { return value(ValueKind::kOther); }
  bool Int(int) { return value(ValueKind::kOther); }  // rapidjson reports only negatives as Int
  bool Uint(unsigned u) { return value(ValueKind::kUnsigned, {}, u); }
  bool Int64(int64_t) { return value(ValueKind::kOther); }
  bool Uint64(uint64_t u) { return value(ValueKind::kUnsigned, {}, u); }
  bool Double(double) { return value(ValueKind::kOther); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return value(ValueKind::kOther); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    return value(ValueKind::kString, std::string_view(s, n));
  }

  bool StartObject() {
    if (depth_ > 0 && !value(ValueKind::kObject)) {
      return false;
    }
    return enter();
  }
  bool StartArray() {
    if (!value(ValueKind::kArray)) {
      return false;
    }
    return enter();
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 1 && in_to_) {
      in_to_ = false;
      if (line_.to_kind == TargetKind::kNone) {
        return failWith(std::string(kBadTo));
      }
    }
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    return true;
  }

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    const std::string_view key(s, n);
    if (depth_ == 1) {
      field_ = Field::kOther;
      for (const FieldName& f : kFields) {
        if (f.name == key) {
          field_ = f.field;
        }
      }
      if (field_ != Field::kOther) {
        const uint32_t bit = uint32_t{1} << static_cast<unsigned>(field_);
        if ((seen_ & bit) != 0) {
          return failWith("duplicate key " + quoted(key));
        }
        seen_ |= bit;
      }
      if (field_ == Field::kData) {
        line_.data_key_end = stream_.Tell();
      }
      return true;
    }
    if (depth_ == 2 && in_to_) {
      if (line_.to_kind != TargetKind::kNone) {
        return failWith(std::string(kBadTo));
      }
      if (key == "user") {
        to_key_ = TargetKind::kUser;
      } else if (key == "room") {
        to_key_ = TargetKind::kRoom;
      } else {
        return failWith(std::string(kBadTo));
      }
    }
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  bool failWith(std::string reason) {
    error_ = std::move(reason);
    return false;
  }

  bool enter() {
    if (++depth_ > max_depth_) {
      return failWith("JSON nested deeper than max_depth (" + std::to_string(max_depth_) + ")");
    }
    return true;
  }

  // A value (or the start of a container) at the current depth.
  bool value(ValueKind kind, std::string_view s = {}, uint64_t u = 0) {
    if (depth_ == 0) {
      return failWith("a line must be one JSON object");
    }
    if (depth_ == 2 && in_to_) {
      if (kind != ValueKind::kString || s.empty()) {
        return failWith(std::string(kBadTo));
      }
      line_.to_kind = to_key_;
      line_.to.assign(s);
      return true;
    }
    if (depth_ != 1) {
      return true;  // inside "data" or an unknown key's value
    }
    std::string* target = nullptr;
    switch (field_) {
      case Field::kOther:
      case Field::kData:
        return true;
      case Field::kSeq:
        if (kind != ValueKind::kUnsigned) {
          return failWith("\"seq\" must be a non-negative integer");
        }
        line_.seq = u;
        line_.has_seq = true;
        return true;
      case Field::kTo:
        if (kind != ValueKind::kObject) {
          return failWith(std::string(kBadTo));
        }
        in_to_ = true;
        return true;
      case Field::kType:
        target = &line_.type;
        line_.has_type = kind == ValueKind::kString;
        break;
      case Field::kToken: target = &line_.token; break;
      case Field::kDevice: target = &line_.device; break;
      case Field::kSdk: target = &line_.sdk; break;
      case Field::kEvent: target = &line_.event; break;
      case Field::kId: target = &line_.id; break;
      case Field::kReason: target = &line_.reason; break;
    }
    if (kind != ValueKind::kString) {
      return failWith("\"" + std::string(fieldName(field_)) + "\" must be a string");
    }
    target->assign(s);
    return true;
  }

  ParsedLine& line_;
  const InsituStream& stream_;
  uint32_t max_depth_;
  uint32_t depth_ = 0;
  uint32_t seen_ = 0;  // bit per Field already seen at the top level
  Field field_ = Field::kOther;
  TargetKind to_key_ = TargetKind::kNone;
  bool in_to_ = false;  // inside the "to" object
  std::string error_;
};

// End of the JSON value that starts at s[i]; `s` is known to be valid JSON, so brackets only
// need counting outside strings.
size_t skipJsonValue(std::string_view s, size_t i) {
  size_t depth = 0;
  bool in_string = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) {
          return i + 1;
        }
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (depth == 0) {
          return i;  // a scalar ended by its parent's closing bracket
        }
        if (--depth == 0) {
          return i + 1;
        }
        break;
      case ',':
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        if (depth == 0) {
          return i;
        }
        break;
      default:
        break;
    }
  }
  return s.size();
}

// The raw text of the value after a key that ends at `key_end` (skips whitespace, ':' and
// whitespace): exactly the bytes the client sent.
std::string_view rawValueAfterKey(std::string_view line, size_t key_end) {
  size_t i = key_end;
  while (i < line.size() && isJsonSpace(line[i])) {
    ++i;
  }
  ++i;  // ':'
  while (i < line.size() && isJsonSpace(line[i])) {
    ++i;
  }
  if (i >= line.size()) {
    return {};
  }
  return line.substr(i, skipJsonValue(line, i) - i);
}

// ---- Encoding ---------------------------------------------------------------------------------

void appendKey(std::string& out, std::string_view key) {
  out.append(",\"").append(key).append("\":");
}

void appendStringField(std::string& out, std::string_view key, std::string_view value) {
  appendKey(out, key);
  appendJsonString(out, value);
}

void appendNumberField(std::string& out, std::string_view key, uint64_t value) {
  appendKey(out, key);
  out.append(std::to_string(value));
}

void appendSignedField(std::string& out, std::string_view key, int64_t value) {
  appendKey(out, key);
  out.append(std::to_string(value));
}

// "data": the payload as JSON when it is JSON text, else as a JSON string when it is UTF-8 text;
// binary payloads and invalid UTF-8 go base64-encoded in "data_b64". Nothing when empty.
void appendData(std::string& out, const Message& message) {
  const std::string_view payload = message.data();
  if (payload.empty()) {
    return;
  }
  if (message.type == PayloadType::kText) {
    if (isJsonText(payload)) {
      appendKey(out, "data");
      const size_t at = out.size();
      out.append(payload);
      // Valid JSON holds CR and LF only as whitespace between tokens (never raw inside a
      // string), so blanking them keeps the value and the one-line framing.
      std::replace_if(out.begin() + static_cast<std::ptrdiff_t>(at), out.end(),
                      [](char c) { return c == '\n' || c == '\r'; }, ' ');
      return;
    }
    if (isValidUtf8(payload)) {
      appendStringField(out, "data", payload);
      return;
    }
  }
  appendKey(out, "data_b64");
  out.push_back('"');
  appendBase64(out, payload);
  out.push_back('"');
}

void appendTarget(std::string& out, const Message& message) {
  if (message.to_kind != TargetKind::kUser && message.to_kind != TargetKind::kRoom) {
    return;
  }
  appendKey(out, "to");
  out.append(message.to_kind == TargetKind::kUser ? "{\"user\":" : "{\"room\":");
  appendJsonString(out, message.to);
  out.push_back('}');
}

}  // namespace

Sniff sniffNdjson(std::string_view first_bytes) {
  for (char c : first_bytes) {
    if (!isJsonSpace(c)) {
      return c == '{' ? Sniff::kMatch : Sniff::kNoMatch;
    }
  }
  return Sniff::kNeedMore;
}

void appendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c >= 0x80) {
      const size_t n = utf8SequenceLength(s, i);
      if (n == 0) {
        out.append("\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

bool isJsonText(std::string_view text) {
  // rapidjson reads NUL as the end of the input: "{}\0junk" would pass.
  if (text.find('\0') != std::string_view::npos) {
    return false;
  }
  std::string copy(text);
  InsituStream stream(copy);
  DepthHandler handler(kMaxPayloadDepth);
  rapidjson::Reader reader;
  return !reader.Parse<kParseFlags>(stream, handler).IsError();
}

std::string encodeLine(const Message& message) {
  std::string out;
  out.reserve(96 + message.event.size() + message.id.size() + message.from.size() +
              message.to.size() + message.data().size());
  if (message.kind == MessageKind::kAck) {
    const std::string_view status = metaValue(message, "status");
    if (status.empty() || status == "ok") {
      out.append("{\"type\":\"ack\"");
      appendStringField(out, "id", message.id);
      if (!message.event.empty()) {
        appendStringField(out, "event", message.event);
      }
    } else {
      // The same shape as proto.websocket's error replies, so clients share one handler.
      out.append("{\"type\":\"error\"");
      appendStringField(out, "id", message.id);
      appendStringField(out, "event", message.event);
      appendStringField(out, "error", status);
      appendStringField(out, "reason", metaValue(message, "reason"));
    }
  } else {
    out.append("{\"type\":\"message\"");
    if (message.kind == MessageKind::kControl) {
      appendStringField(out, "kind", "control");
    } else if (message.kind == MessageKind::kPresence) {
      appendStringField(out, "kind", "presence");
    }
    if (!message.event.empty()) {
      appendStringField(out, "event", message.event);
    }
    if (!message.id.empty()) {
      appendStringField(out, "id", message.id);
    }
    if (message.seq != 0) {
      appendNumberField(out, "seq", message.seq);
    }
    if (!message.from.empty()) {
      appendStringField(out, "from", message.from);
    }
    appendTarget(out, message);
  }
  if (message.ts_ms != 0) {
    appendSignedField(out, "ts", message.ts_ms);
  }
  appendData(out, message);
  out.append("}\n");
  return out;
}

// ---- NdjsonCodec ------------------------------------------------------------------------------

Result<size_t> NdjsonCodec::decode(std::string_view in, CodecSink& sink, OutBuffer& out) {
  if (closed_ || failed_) {
    return in.size();
  }
  size_t used = 0;
  while (used < in.size()) {
    const size_t nl = in.find('\n', used + std::min(scanned_, in.size() - used));
    if (nl == std::string_view::npos) {
      scanned_ = in.size() - used;
      if (scanned_ > options_.max_line) {
        failed_ = true;
        return fail(Errc::kMessageTooBig,
                    "line longer than max_line (" + std::to_string(options_.max_line) + " bytes)");
      }
      break;
    }
    scanned_ = 0;
    std::string_view line = in.substr(used, nl - used);
    used = nl + 1;
    if (line.size() > options_.max_line) {
      failed_ = true;
      return fail(Errc::kMessageTooBig,
                  "line longer than max_line (" + std::to_string(options_.max_line) + " bytes)");
    }
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    sink.onActivity();
    const bool had_hello = hello_seen_;
    Status status = onLine(line, sink, out);
    if (!status) {
      failed_ = true;
      return tl::unexpected(std::move(status.error()));
    }
    if (closed_) {
      return in.size();
    }
    if (!had_hello && hello_seen_) {
      return used;  // the core opens the session before decoding further (codec.h)
    }
  }
  return used;
}

Status NdjsonCodec::onLine(std::string_view line, CodecSink& sink, OutBuffer& out) {
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
    return {};  // blank lines are allowed (and count as activity)
  }
  if (line.find('\0') != std::string_view::npos) {
    return fail(Errc::kProtocolError, "NUL byte in a line");
  }
  ParsedLine parsed;
  std::string copy(line);  // parsed in situ; `line` keeps the raw bytes of "data"
  InsituStream stream(copy);
  LineHandler handler(parsed, stream, options_.max_depth);
  rapidjson::Reader reader;
  const rapidjson::ParseResult result = reader.Parse<kParseFlags>(stream, handler);
  if (result.IsError()) {
    if (!handler.error().empty()) {
      return fail(Errc::kProtocolError, handler.error());
    }
    return fail(Errc::kProtocolError, "malformed JSON at byte " + std::to_string(result.Offset()) +
                                          ": " + parseErrorText(result.Code()));
  }
  if (!parsed.has_type) {
    return fail(Errc::kProtocolError, "missing \"type\"");
  }
  const std::string_view type = parsed.type;
  if (type != "hello" && type != "message" && type != "ping" && type != "pong" && type != "ack" &&
      type != "close") {
    return fail(Errc::kProtocolError, "unknown type " + quoted(type));
  }
  if (!hello_seen_ && type != "hello") {
    return fail(Errc::kProtocolError, quoted(type) + " before hello");
  }
  if (type == "hello") {
    if (hello_seen_) {
      return fail(Errc::kProtocolError, "second hello");
    }
    if (hasControlChars(parsed.token) || hasControlChars(parsed.device) ||
        hasControlChars(parsed.sdk)) {
      return fail(Errc::kInvalidPayload, "control characters in a hello field");
    }
    // The same request-like fields as proto.tcp_frame's HELLO, so auth stages read both alike.
    HttpRequest hello;
    hello.method = "HELLO";
    hello.path = "/";
    std::string query;
    auto param = [&query](std::string_view key, std::string_view value) {
      if (!query.empty()) {
        query.push_back('&');
      }
      query.append(key).append("=").append(percentEncode(value));
    };
    if (!parsed.token.empty()) {
      param("token", parsed.token);
      hello.headers.push_back({"authorization", "Bearer " + parsed.token});
    }
    if (!parsed.device.empty()) {
      param("device", parsed.device);
      hello.headers.push_back({"x-device", parsed.device});
    }
    if (!parsed.sdk.empty()) {
      param("sdk_version", parsed.sdk);
      hello.headers.push_back({"x-sdk-version", parsed.sdk});
    }
    hello.query = std::move(query);
    hello.target = hello.query.empty() ? "/" : "/?" + hello.query;
    hello_seen_ = true;
    sink.onHello(std::move(hello));
    return {};
  }
  if (type == "message") {
    Message m;
    m.kind = MessageKind::kData;
    m.type = PayloadType::kText;
    m.event = std::move(parsed.event);
    m.id = std::move(parsed.id);
    m.to_kind = parsed.to_kind;
    m.to = std::move(parsed.to);
    m.payload = makeBytes(parsed.data_key_end == std::string_view::npos
                              ? std::string()
                              : std::string(rawValueAfterKey(line, parsed.data_key_end)));
    sink.onMessage(std::move(m));
    return {};
  }
  if (type == "ping") {
    if (out.pending() <= kPongBackpressureLimit) {
      out.append(kPongLine);
    }
    return {};
  }
  if (type == "ack") {
    if (!parsed.has_seq) {
      return fail(Errc::kProtocolError, "ack without \"seq\"");
    }
    Message m;
    m.kind = MessageKind::kAck;
    m.seq = parsed.seq;
    m.id = std::move(parsed.id);
    m.payload = makeBytes(std::string());
    sink.onMessage(std::move(m));
    return {};
  }
  if (type == "close") {
    encodeClose(Errc::kNone, {}, out);
    sink.onPeerClose(Errc::kNone, parsed.reason);
    return {};
  }
  return {};  // "pong": activity only
}

Status NdjsonCodec::encode(const Message& message, OutBuffer& out) {
  if (closed_) {
    return {};
  }
  std::string line = encodeLine(message);
  // Big lines are handed over by reference rather than copied into the buffer.
  if (line.size() > 1024) {
    out.appendShared(makeBytes(std::move(line)));
  } else {
    out.append(line);
  }
  return {};
}

uint64_t NdjsonCodec::sharedEncodingKey(const Message&) const {
  return closed_ || failed_ ? 0 : kSharedKeyTag | 1;
}

Bytes NdjsonCodec::encodeShared(const Message& message) const {
  return makeBytes(encodeLine(message));
}

void NdjsonCodec::onOpened(const SessionOpened& opened, OutBuffer& out) {
  if (closed_) {
    return;
  }
  std::string line = "{\"type\":\"welcome\"";
  // A string: session ids are u64 and JavaScript numbers are exact only up to 2^53.
  appendStringField(line, "session", std::to_string(opened.session_id));
  appendStringField(line, "user", opened.identity.user);
  appendStringField(line, "app", opened.identity.app);
  if (!opened.identity.device.empty()) {
    appendStringField(line, "device", opened.identity.device);
  }
  appendSignedField(line, "server_time", opened.server_time_ms);
  appendSignedField(line, "ping_interval", opened.ping_interval.count());
  appendSignedField(line, "idle_timeout", opened.idle_timeout.count());
  line.append("}\n");
  out.append(line);
}

void NdjsonCodec::encodePing(OutBuffer& out) {
  if (closed_) {
    return;
  }
  out.append(kPingLine);
}

void NdjsonCodec::encodeClose(Errc code, std::string_view reason, OutBuffer& out) {
  if (closed_) {
    return;
  }
  closed_ = true;
  std::string line = "{\"type\":\"close\"";
  appendStringField(line, "code", errcName(code));
  // kInternal reasons may describe internals.
  if (code != Errc::kInternal && !reason.empty()) {
    appendStringField(line, "reason", cutUtf8(reason, kMaxReason));
  }
  line.append("}\n");
  out.append(line);
}

// ---- Configuration ----------------------------------------------------------------------------

namespace {

constexpr std::array<ParamSpec, 2> kSchema = {{
    {.key = "max_line", .type = ParamType::kSize, .default_value = "64KiB", .min = 64,
     .max = 16 << 20,
     .help = "longest line accepted, and most bytes buffered without a newline; above it the "
             "session is closed with message_too_big"},
    {.key = "max_depth", .type = ParamType::kInt, .default_value = "32", .min = 2, .max = 512,
     .help = "deepest JSON nesting in a line (the line's own object is 1); deeper closes the "
             "session with protocol_error"},
}};

}  // namespace

CodecPtr NdjsonProtocol::createCodec() const { return std::make_unique<NdjsonCodec>(options_); }

std::span<const ParamSpec> ndjsonSchema() { return kSchema; }

Result<ProtocolConfigPtr> compileNdjson(const ConfigView& config) {
  NdjsonOptions options;
  options.max_line = static_cast<uint32_t>(config.getSize("max_line"));
  options.max_depth = static_cast<uint32_t>(config.getInt("max_depth"));
  return std::make_shared<const NdjsonProtocol>(options);
}

}  // namespace imgate::mod::ndjson
