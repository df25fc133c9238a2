// SPDX-License-Identifier: Apache-2.0
#include "sio_packet.h"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "modules/common/base64.h"
#include "modules/common/utf8.h"

namespace imgate::mod::socketio {

namespace {

// Event names socket.io-parser refuses (RESERVED_EVENTS): they have a meaning of their own in
// the client or server API or in Node's EventEmitter.
constexpr std::array<std::string_view, 6> kReservedEvents = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool isJsonWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Reads the digit run at text[*pos]; `cap` bounds the value (the result is cap + 1 once
// exceeded, so arbitrarily long runs cannot overflow).
uint64_t readDigits(std::string_view text, size_t* pos, uint64_t cap) {
  uint64_t v = 0;
  while (*pos < text.size() && isDigit(text[*pos])) {
    if (v <= cap) {
      v = v * 10 + static_cast<uint64_t>(text[*pos] - '0');
    }
    ++*pos;
  }
  return v > cap ? cap + 1 : v;
}

Status checkNamespace(std::string_view nsp, const SioLimits& limits) {
  if (nsp.size() > limits.max_namespace_bytes) {
    return fail(Errc::kProtocolError, "namespace too long");
  }
  // Control characters have no business in a namespace, and '\x1e' would split a polling
  // payload when the server echoes the namespace back.
  const bool control = std::any_of(nsp.begin(), nsp.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == '\x7f';
  });
  if (control || !common::isValidUtf8(nsp)) {
    return fail(Errc::kProtocolError, "invalid namespace");
  }
  return {};
}

std::string_view typeName(SioType type) {
  switch (type) {
    case SioType::kConnect: return "CONNECT";
    case SioType::kDisconnect: return "DISCONNECT";
    case SioType::kEvent: return "EVENT";
    case SioType::kAck: return "ACK";
    case SioType::kConnectError: return "CONNECT_ERROR";
    case SioType::kBinaryEvent: return "BINARY_EVENT";
    case SioType::kBinaryAck: return "BINARY_ACK";
  }
  return "?";
}

tl::unexpected<Error> invalidPayload(std::string_view why) {
  std::string reason = "invalid payload: ";
  reason += why;
  return fail(Errc::kProtocolError, std::move(reason));
}

// The name of a string element (raw JSON text, quotes included), unescaped only if needed.
Result<std::string> stringValue(std::string_view raw) {
  if (raw.find('\\') == std::string_view::npos) {
    return std::string(raw.substr(1, raw.size() - 2));
  }
  return parseJsonString(raw);
}

Status checkData(SioType type, std::string_view data, uint32_t attachments,
                 const SioLimits& limits) {
  if (data.empty()) {
    if (type == SioType::kConnect || type == SioType::kDisconnect) {
      return {};
    }
    return invalidPayload(std::string(typeName(type)) + " without data");
  }
  if (type == SioType::kDisconnect) {
    return invalidPayload("DISCONNECT with data");
  }
  JsonScanOptions options;
  options.max_depth = limits.max_depth;
  options.check_placeholders = isBinaryType(type);
  options.attachments = attachments;
  auto shape = scanJson(data, options);
  if (!shape) {
    if (shape.error().message.starts_with("illegal attachments")) {
      return tl::unexpected(std::move(shape.error()));
    }
    return invalidPayload(shape.error().message);
  }
  switch (type) {
    case SioType::kConnect:
      if (shape->root != JsonKind::kObject) {
        return invalidPayload("CONNECT data is not an object");
      }
      return {};
    case SioType::kConnectError:
      if (shape->root != JsonKind::kObject && shape->root != JsonKind::kString) {
        return invalidPayload("CONNECT_ERROR data is neither an object nor a string");
      }
      return {};
    case SioType::kEvent:
    case SioType::kBinaryEvent: {
      if (shape->root != JsonKind::kArray || shape->elements == 0) {
        return invalidPayload("event data is not a non-empty array");
      }
      if (shape->first == JsonKind::kNumber) {
        return {};
      }
      if (shape->first != JsonKind::kString) {
        return invalidPayload("event name is not a string");
      }
      const std::string_view raw =
          data.substr(shape->first_begin, shape->first_end - shape->first_begin);
      std::string unescaped;
      std::string_view name = raw.substr(1, raw.size() - 2);
      if (name.find('\\') != std::string_view::npos) {
        auto parsed = parseJsonString(raw);
        if (!parsed) {
          return invalidPayload(parsed.error().message);
        }
        unescaped = std::move(*parsed);
        name = unescaped;
      }
      if (std::find(kReservedEvents.begin(), kReservedEvents.end(), name) !=
          kReservedEvents.end()) {
        return invalidPayload("reserved event name \"" + std::string(name) + "\"");
      }
      return {};
    }
    case SioType::kAck:
    case SioType::kBinaryAck:
      if (shape->root != JsonKind::kArray) {
        return invalidPayload("ack data is not an array");
      }
      return {};
    case SioType::kDisconnect:
      break;
  }
  return invalidPayload("unexpected data");
}

std::string_view trimJsonWsRight(std::string_view s) {
  while (!s.empty() && isJsonWs(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

Result<SioPacket> parseSioPacket(std::string_view text, const SioLimits& limits) {
  if (text.empty()) {
    return fail(Errc::kProtocolError, "empty packet");
  }
  if (text.size() > limits.max_packet_bytes) {
    return fail(Errc::kMessageTooBig,
                "packet larger than " + std::to_string(limits.max_packet_bytes) + " bytes");
  }
  if (text[0] < '0' || text[0] > '6') {
    return fail(Errc::kProtocolError, "unknown packet type");
  }
  SioPacket p;
  p.type = static_cast<SioType>(text[0] - '0');
  size_t i = 1;
  if (isBinaryType(p.type)) {
    const size_t start = i;
    const uint64_t n = readDigits(text, &i, limits.max_attachments);
    if (i == start || i >= text.size() || text[i] != '-' || n == 0) {
      return fail(Errc::kProtocolError, "illegal attachments");
    }
    if (n > limits.max_attachments) {
      return fail(Errc::kProtocolError, "too many attachments");
    }
    p.attachments = static_cast<uint32_t>(n);
    ++i;  // '-'
  }
  if (i < text.size() && text[i] == '/') {
    const size_t comma = text.find(',', i);
    const size_t end = comma == std::string_view::npos ? text.size() : comma;
    const std::string_view nsp = text.substr(i, end - i);
    if (auto st = checkNamespace(nsp, limits); !st) {
      return tl::unexpected(std::move(st.error()));
    }
    p.nsp.assign(nsp);
    i = comma == std::string_view::npos ? text.size() : comma + 1;
  }
  if (i < text.size() && isDigit(text[i])) {
    const uint64_t id = readDigits(text, &i, kMaxAckId);
    if (id > kMaxAckId) {
      return fail(Errc::kProtocolError, "ack id too large");
    }
    p.id = id;
  }
  const std::string_view data = text.substr(i);
  if (auto st = checkData(p.type, data, p.attachments, limits); !st) {
    return tl::unexpected(std::move(st.error()));
  }
  p.data.assign(data);
  return p;
}

Status validateSioPacket(const SioPacket& packet, const SioLimits& limits) {
  if (static_cast<uint8_t>(packet.type) > static_cast<uint8_t>(SioType::kBinaryAck)) {
    return fail(Errc::kProtocolError, "unknown packet type");
  }
  if (packet.nsp.empty() || packet.nsp[0] != '/' || packet.nsp.find(',') != std::string::npos) {
    return fail(Errc::kProtocolError, "invalid namespace");
  }
  if (auto st = checkNamespace(packet.nsp, limits); !st) {
    return st;
  }
  if (packet.id && *packet.id > kMaxAckId) {
    return fail(Errc::kProtocolError, "ack id too large");
  }
  if (isBinaryType(packet.type)) {
    if (packet.attachments == 0) {
      return fail(Errc::kProtocolError, "illegal attachments");
    }
    if (packet.attachments > limits.max_attachments) {
      return fail(Errc::kProtocolError, "too many attachments");
    }
  } else if (packet.attachments != 0) {
    return fail(Errc::kProtocolError, "illegal attachments");
  }
  if (auto st = checkData(packet.type, packet.data, packet.attachments, limits); !st) {
    return st;
  }
  const size_t size = encodeSioPacket(packet).size();
  if (size > limits.max_packet_bytes) {
    return fail(Errc::kMessageTooBig,
                "packet larger than " + std::to_string(limits.max_packet_bytes) + " bytes");
  }
  return {};
}

std::string encodeSioPacket(const SioPacket& packet) {
  std::string out;
  out.reserve(packet.data.size() + packet.nsp.size() + 24);
  out.push_back(static_cast<char>('0' + static_cast<int>(packet.type)));
  if (isBinaryType(packet.type)) {
    out.append(std::to_string(packet.attachments));
    out.push_back('-');
  }
  if (!packet.nsp.empty() && packet.nsp != "/") {
    out.append(packet.nsp);
    out.push_back(',');
  }
  if (packet.id) {
    out.append(std::to_string(*packet.id));
  }
  out.append(packet.data);
  return out;
}

// ---- SioBinaryAssembler -----------------------------------------------------------------------

Result<std::optional<SioAssembled>> SioBinaryAssembler::onText(std::string_view text) {
  if (pending_) {
    reset();
    return fail(Errc::kProtocolError, "got plaintext data when reconstructing a packet");
  }
  auto packet = parseSioPacket(text, limits_);
  if (!packet) {
    return tl::unexpected(std::move(packet.error()));
  }
  return onPacket(std::move(*packet));
}

Result<std::optional<SioAssembled>> SioBinaryAssembler::onPacket(SioPacket packet) {
  if (pending_) {
    reset();
    return fail(Errc::kProtocolError, "got plaintext data when reconstructing a packet");
  }
  if (isBinaryType(packet.type) && packet.attachments > 0) {
    pending_ = std::make_unique<SioAssembled>();
    pending_->buffers.reserve(packet.attachments);
    pending_->packet = std::move(packet);
    return std::optional<SioAssembled>();
  }
  return std::optional<SioAssembled>(SioAssembled{std::move(packet), {}});
}

Result<std::optional<SioAssembled>> SioBinaryAssembler::onBinary(std::string data) {
  if (!pending_) {
    return fail(Errc::kProtocolError, "got binary data when not reconstructing a packet");
  }
  if (data.size() > limits_.max_binary_bytes - buffered_bytes_) {
    reset();
    return fail(Errc::kMessageTooBig, "binary attachments larger than " +
                                          std::to_string(limits_.max_binary_bytes) + " bytes");
  }
  buffered_bytes_ += data.size();
  pending_->buffers.push_back(std::move(data));
  if (pending_->buffers.size() < pending_->packet.attachments) {
    return std::optional<SioAssembled>();
  }
  std::optional<SioAssembled> done = std::move(*pending_);
  reset();
  return done;
}

void SioBinaryAssembler::reset() {
  pending_.reset();
  buffered_bytes_ = 0;
}

// ---- Event helpers ----------------------------------------------------------------------------

Result<EventView> splitEvent(std::string_view data_json, uint32_t max_depth) {
  JsonScanOptions options;
  options.max_depth = max_depth;
  auto shape = scanJson(data_json, options);
  if (!shape) {
    return tl::unexpected(std::move(shape.error()));
  }
  if (shape->root != JsonKind::kArray || shape->elements == 0) {
    return fail(Errc::kProtocolError, "event data is not a non-empty array");
  }
  EventView view;
  const std::string_view first =
      data_json.substr(shape->first_begin, shape->first_end - shape->first_begin);
  if (shape->first == JsonKind::kString) {
    auto name = stringValue(first);
    if (!name) {
      return tl::unexpected(std::move(name.error()));
    }
    view.name = std::move(*name);
  } else if (shape->first == JsonKind::kNumber) {
    view.name.assign(first);
    view.numeric_name = true;
  } else {
    return fail(Errc::kProtocolError, "event name is not a string");
  }
  if (shape->elements == 1) {
    view.args = "[]";
  } else {
    const std::string_view rest = trimJsonWsRight(
        data_json.substr(shape->second_begin, shape->close - shape->second_begin));
    view.args.reserve(rest.size() + 2);
    view.args.push_back('[');
    view.args.append(rest);
    view.args.push_back(']');
  }
  return view;
}

Result<std::string> eventJson(std::string_view event, std::string_view args_array_json,
                              uint32_t max_depth) {
  JsonScanOptions options;
  options.max_depth = max_depth;
  auto shape = scanJson(args_array_json, options);
  if (!shape) {
    return tl::unexpected(std::move(shape.error()));
  }
  if (shape->root != JsonKind::kArray) {
    return fail(Errc::kProtocolError, "event arguments are not an array");
  }
  std::string out;
  out.reserve(event.size() + args_array_json.size() + 4);
  out.push_back('[');
  appendJsonString(out, event);
  if (shape->elements > 0) {
    out.push_back(',');
    out.append(trimJsonWsRight(
        args_array_json.substr(shape->first_begin, shape->close - shape->first_begin)));
  }
  out.push_back(']');
  return out;
}

std::string binaryEventJson(std::string_view event, size_t n_attachments) {
  std::string out;
  out.reserve(event.size() + 4 + n_attachments * 32);
  out.push_back('[');
  appendJsonString(out, event);
  for (size_t i = 0; i < n_attachments; ++i) {
    out.append(",{\"_placeholder\":true,\"num\":");
    out.append(std::to_string(i));
    out.push_back('}');
  }
  out.push_back(']');
  return out;
}

namespace {

void skipSpace(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
    ++i;
  }
}

bool consumeLiteral(std::string_view s, size_t& i, std::string_view literal) {
  if (s.substr(i, literal.size()) != literal) {
    return false;
  }
  i += literal.size();
  return true;
}

// At s[i] == '{': when the object is exactly a placeholder, its num and the index just past its
// '}'. Anything else (other keys, escapes in the keys, a non-integer num): nullopt.
std::optional<std::pair<uint64_t, size_t>> matchPlaceholder(std::string_view s, size_t i) {
  ++i;  // '{'
  bool seen_flag = false;
  std::optional<uint64_t> num;
  for (int member = 0; member < 2; ++member) {
    skipSpace(s, i);
    if (consumeLiteral(s, i, "\"_placeholder\"")) {
      skipSpace(s, i);
      if (seen_flag || !consumeLiteral(s, i, ":")) {
        return std::nullopt;
      }
      skipSpace(s, i);
      if (!consumeLiteral(s, i, "true")) {
        return std::nullopt;
      }
      seen_flag = true;
    } else if (consumeLiteral(s, i, "\"num\"")) {
      skipSpace(s, i);
      if (num || !consumeLiteral(s, i, ":")) {
        return std::nullopt;
      }
      skipSpace(s, i);
      const size_t start = i;
      uint64_t value = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 18) {
        value = value * 10 + static_cast<uint64_t>(s[i] - '0');
        ++i;
      }
      if (i == start || (i < s.size() && (s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
                                          (s[i] >= '0' && s[i] <= '9')))) {
        return std::nullopt;
      }
      num = value;
    } else {
      return std::nullopt;
    }
    skipSpace(s, i);
    if (member == 0 && !consumeLiteral(s, i, ",")) {
      return std::nullopt;
    }
  }
  if (!seen_flag || !num || !consumeLiteral(s, i, "}")) {
    return std::nullopt;
  }
  return std::make_pair(*num, i);
}

}  // namespace

bool isSingleAttachment(std::string_view args) {
  size_t i = 0;
  skipSpace(args, i);
  if (!consumeLiteral(args, i, "[")) {
    return false;
  }
  skipSpace(args, i);
  if (i >= args.size() || args[i] != '{') {
    return false;
  }
  const auto match = matchPlaceholder(args, i);
  if (!match || match->first != 0) {
    return false;
  }
  i = match->second;
  skipSpace(args, i);
  if (!consumeLiteral(args, i, "]")) {
    return false;
  }
  skipSpace(args, i);
  return i == args.size();
}

Result<std::string> inlineAttachments(std::string_view json,
                                      const std::vector<std::string>& buffers) {
  std::string out;
  out.reserve(json.size() + 16 * buffers.size());
  size_t i = 0;
  size_t copied = 0;
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {  // skip a string (escapes included): its text is data, never a placeholder
      for (++i; i < json.size() && json[i] != '"'; ++i) {
        if (json[i] == '\\') {
          ++i;
        }
      }
      ++i;
      continue;
    }
    if (c == '{') {
      if (auto match = matchPlaceholder(json, i)) {
        if (match->first >= buffers.size()) {
          return fail(Errc::kProtocolError, "illegal attachments");
        }
        out.append(json.substr(copied, i - copied));
        out.append("{\"_binary\":\"");
        out.append(common::base64Encode(buffers[match->first]));
        out.append("\"}");
        i = copied = match->second;
        continue;
      }
    }
    ++i;
  }
  out.append(json.substr(copied));
  return out;
}

}  // namespace imgate::mod::socketio
