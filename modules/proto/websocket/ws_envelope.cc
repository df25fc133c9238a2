// SPDX-License-Identifier: Apache-2.0
#include "ws_envelope.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <array>
#include <optional>
#include <utility>

#include "modules/common/base64.h"
#include "modules/common/json_text.h"
#include "modules/common/utf8.h"
#include "modules/common/insitu_stream.h"
#include "modules/common/message_meta.h"

namespace imgate::mod::websocket {

namespace {

// In situ and recursive: rapidjson then never touches its internal stack, whose first push in
// rapidjson 1.1.0 (Debian 12) is undefined behaviour that clang's UBSan reports (null pointer
// plus offset). Recursion is bounded by the handler's depth check. Strict RFC 8259: no
// comments, trailing commas or NaN.
constexpr unsigned kParseFlags = rapidjson::kParseInsituFlag |
                                 rapidjson::kParseValidateEncodingFlag;
// Unknown "t" values are quoted in close reasons up to this many bytes (a close reason holds
// 123).
constexpr size_t kMaxQuoted = 32;

enum class Field : uint8_t { kOther, kT, kId, kEvent, kData, kDataBase64, kStream, kSeq, kRoom };
constexpr size_t kFieldCount = 9;

struct FieldName {
  std::string_view name;
  Field field;
};
constexpr std::array<FieldName, kFieldCount - 1> kFieldNames = {{
    {"t", Field::kT},
    {"id", Field::kId},
    {"event", Field::kEvent},
    {"data", Field::kData},
    {"data_base64", Field::kDataBase64},
    {"stream", Field::kStream},
    {"seq", Field::kSeq},
    {"room", Field::kRoom},
}};

std::string_view fieldName(Field field) {
  for (const FieldName& f : kFieldNames) {
    if (f.field == field) {
      return f.name;
    }
  }
  return {};
}

// The known top-level fields of one envelope. Strings point into the parsed text.
struct Fields {
  std::array<std::optional<std::string_view>, kFieldCount> strings;
  std::optional<uint64_t> seq;

  std::optional<std::string_view> get(Field field) const {
    return strings[static_cast<size_t>(field)];
  }
};

// rapidjson SAX handler: checks the shape (an object of flat known fields, anything nested
// under unknown keys) and keeps the known values.
class EnvelopeHandler {
 public:
  explicit EnvelopeHandler(Fields& fields) : fields_(fields) {}

  bool Null() { return other(); }
  bool Bool(bool) { return other(); }
  bool Int(int) { return other(); }  // rapidjson reports only negative integers as signed
  bool Int64(int64_t) { return other(); }
  bool Uint(unsigned u) { return integer(u); }
  bool Uint64(uint64_t u) { return integer(u); }
  bool Double(double) { return other(); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return other(); }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (!atField()) {
      return depth_ > 0 || notObject();
    }
    if (field_ == Field::kSeq) {
      return wrongType();
    }
    fields_.strings[static_cast<size_t>(field_)] = std::string_view(s, n);
    return true;
  }
  bool StartObject() {
    if (depth_ == 0) {
      depth_ = 1;
      return true;
    }
    return nest();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (depth_ != 1) {
      return true;
    }
    const std::string_view key(s, n);
    field_ = Field::kOther;
    for (const FieldName& f : kFieldNames) {
      if (f.name == key) {
        field_ = f.field;
      }
    }
    if (field_ != Field::kOther) {
      const uint32_t bit = uint32_t{1} << static_cast<unsigned>(field_);
      if ((seen_ & bit) != 0) {
        return failWith("duplicate \"" + std::string(key) + "\"");
      }
      seen_ |= bit;
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    return true;
  }
  bool StartArray() {
    if (depth_ == 0) {
      return notObject();
    }
    return nest();
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  // A value directly under a known top-level key.
  bool atField() const { return depth_ == 1 && field_ != Field::kOther; }

  bool nest() {
    if (atField()) {
      return wrongType();
    }
    if (++depth_ > kMaxEnvelopeDepth) {
      return failWith("envelope nested too deeply");
    }
    return true;
  }
  bool integer(uint64_t u) {
    if (!atField()) {
      return depth_ > 0 || notObject();
    }
    if (field_ != Field::kSeq) {
      return wrongType();
    }
    if (u == 0 || u > kMaxEnvelopeSeq) {
      return failWith("\"seq\" must be an integer in 1..2^53");
    }
    fields_.seq = u;
    return true;
  }
  bool other() {
    if (!atField()) {
      return depth_ > 0 || notObject();
    }
    return wrongType();
  }
  bool wrongType() {
    if (field_ == Field::kSeq) {
      return failWith("\"seq\" must be an integer in 1..2^53");
    }
    return failWith("\"" + std::string(fieldName(field_)) + "\" must be a string");
  }
  bool notObject() { return failWith("envelope must be a json object"); }
  bool failWith(std::string reason) {
    error_ = std::move(reason);
    return false;
  }

  Fields& fields_;
  std::string error_;
  uint32_t depth_ = 0;
  uint32_t seen_ = 0;
  Field field_ = Field::kOther;
};

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

bool hasControlChars(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

// Every kept string must be UTF-8 once unescaped ("\ud800" alone decodes to a surrogate), and
// names must not carry control characters (they end up in logs, room keys and stream names).
Status checkStrings(const Fields& fields) {
  for (const FieldName& f : kFieldNames) {
    const std::optional<std::string_view> value = fields.get(f.field);
    if (!value || f.field == Field::kDataBase64) {
      continue;
    }
    if (!common::isValidUtf8(*value)) {
      return fail(Errc::kInvalidPayload, "\"" + std::string(f.name) + "\" is not valid utf-8");
    }
    if (f.field != Field::kData && f.field != Field::kT && hasControlChars(*value)) {
      return fail(Errc::kInvalidPayload,
                  "control character in \"" + std::string(f.name) + "\"");
    }
  }
  return {};
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (const char c : s.substr(0, common::validUtf8Prefix(s, kMaxQuoted))) {
    out.push_back(static_cast<unsigned char>(c) < 0x20 || c == '"' ? '?' : c);
  }
  out.push_back('"');
  return out;
}

Result<Uplink> buildUplink(const Fields& fields) {
  const std::optional<std::string_view> t = fields.get(Field::kT);
  if (!t) {
    return fail(Errc::kInvalidPayload, "missing \"t\"");
  }
  Uplink uplink;
  Message& m = uplink.message;
  if (*t == "msg") {
    const std::optional<std::string_view> data = fields.get(Field::kData);
    const std::optional<std::string_view> data_base64 = fields.get(Field::kDataBase64);
    if (data && data_base64) {
      return fail(Errc::kInvalidPayload, "\"data\" and \"data_base64\" together");
    }
    m.kind = MessageKind::kData;
    if (data_base64) {
      std::optional<std::string> bytes = common::base64Decode(*data_base64);
      if (!bytes) {
        return fail(Errc::kInvalidPayload, "\"data_base64\" is not valid base64");
      }
      m.type = PayloadType::kBinary;
      m.payload = makeBytes(std::move(*bytes));
    } else {
      m.type = PayloadType::kText;
      m.payload = makeBytes(std::string(data.value_or("")));
    }
    m.id = std::string(fields.get(Field::kId).value_or(""));
    m.event = std::string(fields.get(Field::kEvent).value_or(""));
    if (!m.id.empty()) {
      m.meta.emplace_back("ack_required", "1");
    }
    return uplink;
  }
  if (*t == "ack" || *t == "read") {
    if (!fields.seq) {
      return fail(Errc::kInvalidPayload, "\"" + std::string(*t) + "\" without \"seq\"");
    }
    m.kind = *t == "ack" ? MessageKind::kAck : MessageKind::kControl;
    if (*t == "read") {
      m.event = "read";
    }
    m.stream = std::string(fields.get(Field::kStream).value_or(""));
    m.seq = *fields.seq;
    m.payload = makeBytes(std::string());
    return uplink;
  }
  if (*t == "join" || *t == "leave") {
    const std::optional<std::string_view> room = fields.get(Field::kRoom);
    if (!room || room->empty()) {
      return fail(Errc::kInvalidPayload, "\"" + std::string(*t) + "\" without \"room\"");
    }
    m.kind = MessageKind::kControl;
    m.event = std::string(*t);
    m.to_kind = TargetKind::kRoom;
    m.to = std::string(*room);
    m.id = std::string(fields.get(Field::kId).value_or(""));
    m.payload = makeBytes(std::string());
    return uplink;
  }
  if (*t == "ping") {
    uplink.kind = Uplink::Kind::kPing;
    return uplink;
  }
  return fail(Errc::kInvalidPayload, "unknown \"t\" " + quoted(*t));
}

// ---- Output ---------------------------------------------------------------------------------

void appendStringField(std::string& out, std::string_view key, std::string_view value) {
  out.append(",\"").append(key).append("\":");
  appendJsonString(out, value);
}

template <typename Int>
void appendNumberField(std::string& out, std::string_view key, Int value) {
  out.append(",\"").append(key).append("\":").append(std::to_string(value));
}

void appendPayload(std::string& out, const Message& message) {
  if (message.type == PayloadType::kBinary) {
    appendStringField(out, "data_base64", common::base64Encode(message.data()));
  } else {
    appendStringField(out, "data", message.data());
  }
}

std::string encodeAck(const Message& message) {
  std::string out = "{\"t\":\"ack\"";
  if (!message.id.empty()) {
    appendStringField(out, "id", message.id);
  }
  const std::string_view status = metaValue(message, "status");
  if (status.empty() || status == "ok") {
    out.append(",\"status\":\"ok\"");
  } else {
    appendStringField(out, "status", status);
    appendStringField(out, "reason", metaValue(message, "reason"));
  }
  appendNumberField(out, "ts", message.ts_ms);
  if (!message.event.empty()) {
    appendStringField(out, "event", message.event);
  }
  if (!message.data().empty()) {
    appendPayload(out, message);
  }
  out.push_back('}');
  return out;
}

std::string encodeRead(const Message& message) {
  std::string out = "{\"t\":\"read\"";
  appendStringField(out, "stream", message.stream);
  appendNumberField(out, "seq", message.seq);
  appendStringField(out, "device", metaValue(message, "device"));
  out.push_back('}');
  return out;
}

}  // namespace

Result<Uplink> decodeEnvelope(std::string text) {
  Fields fields;
  EnvelopeHandler handler(fields);
  InsituStream stream(text);
  rapidjson::Reader reader;
  const rapidjson::ParseResult parsed = reader.Parse<kParseFlags>(stream, handler);
  if (parsed.IsError()) {
    if (!handler.error().empty()) {
      return fail(Errc::kInvalidPayload, handler.error());
    }
    return fail(Errc::kInvalidPayload, "invalid json at offset " +
                                           std::to_string(parsed.Offset()) + ": " +
                                           parseErrorText(parsed.Code()));
  }
  // rapidjson stops at a NUL byte as if the text ended there.
  if (stream.Tell() != text.size()) {
    return fail(Errc::kInvalidPayload,
                "invalid json at offset " + std::to_string(stream.Tell()) + ": trailing bytes");
  }
  Status strings = checkStrings(fields);
  if (!strings) {
    return tl::unexpected(std::move(strings.error()));
  }
  return buildUplink(fields);
}

std::string encodeEnvelope(const Message& message) {
  if (message.kind == MessageKind::kAck) {
    return encodeAck(message);
  }
  if (message.kind == MessageKind::kControl && message.event == "read") {
    return encodeRead(message);
  }
  std::string out;
  out.reserve(96 + message.data().size() + message.data().size() / 3);
  switch (message.kind) {
    case MessageKind::kControl: out.append("{\"t\":\"control\""); break;
    case MessageKind::kPresence: out.append("{\"t\":\"presence\""); break;
    default: out.append("{\"t\":\"push\""); break;
  }
  if (message.seq != 0) {
    appendStringField(out, "stream", message.stream);
    appendStringField(out, "epoch", epochHex(message.epoch));
    appendNumberField(out, "seq", message.seq);
  }
  if (message.reliable) {
    out.append(",\"ack\":true");
  }
  if (!message.id.empty()) {
    appendStringField(out, "id", message.id);
  }
  if (!message.event.empty()) {
    appendStringField(out, "event", message.event);
  }
  appendPayload(out, message);
  out.push_back('}');
  return out;
}

std::string encodeWelcome(const SessionOpened& opened) {
  std::string out = "{\"t\":\"welcome\"";
  appendStringField(out, "session", std::to_string(opened.session_id));
  appendStringField(out, "app", opened.identity.app);
  appendStringField(out, "user", opened.identity.user);
  appendStringField(out, "device", opened.identity.device);
  appendNumberField(out, "server_time", opened.server_time_ms);
  appendNumberField(out, "idle_timeout", opened.idle_timeout.count());
  appendNumberField(out, "ping_interval", opened.ping_interval.count());
  out.append(",\"streams\":");
  appendStreamsJson(out, opened.streams);
  out.push_back('}');
  return out;
}

}  // namespace imgate::mod::websocket
