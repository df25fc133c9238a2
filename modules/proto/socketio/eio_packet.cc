// SPDX-License-Identifier: Apache-2.0
#include "eio_packet.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "json_string.h"
#include "modules/common/base64.h"

namespace imgate::mod::socketio {

namespace {

constexpr char kSeparator = '\x1e';

// One packet in the shared text form (WebSocket text frame, or one piece of a payload).
Result<EioPacket> parseTextPacket(std::string_view text) {
  if (text.empty()) {
    return fail(Errc::kProtocolError, "empty packet");
  }
  const char t = text[0];
  if (t == 'b') {
    auto bytes = common::base64Decode(text.substr(1), common::Base64Alphabet::kStandard);
    if (!bytes) {
      return fail(Errc::kProtocolError, "invalid base64");
    }
    return EioPacket{EioType::kMessage, true, std::move(*bytes)};
  }
  if (t < '0' || t > '6') {
    return fail(Errc::kProtocolError, "unknown packet type");
  }
  return EioPacket{static_cast<EioType>(t - '0'), false, std::string(text.substr(1))};
}

char typeDigit(EioType type) { return static_cast<char>('0' + static_cast<int>(type)); }

}  // namespace

std::string_view eioTypeName(EioType type) {
  switch (type) {
    case EioType::kOpen: return "open";
    case EioType::kClose: return "close";
    case EioType::kPing: return "ping";
    case EioType::kPong: return "pong";
    case EioType::kMessage: return "message";
    case EioType::kUpgrade: return "upgrade";
    case EioType::kNoop: return "noop";
  }
  return "unknown";
}

Result<EioPacket> parseEioText(std::string_view frame) { return parseTextPacket(frame); }

EioPacket parseEioBinary(std::string_view frame) {
  return EioPacket{EioType::kMessage, true, std::string(frame)};
}

std::string encodeEioFrame(const EioPacket& packet) {
  if (packet.binary) {
    return packet.data;
  }
  std::string out;
  out.reserve(packet.data.size() + 1);
  out.push_back(typeDigit(packet.type));
  out.append(packet.data);
  return out;
}

Result<std::vector<EioPacket>> decodeEioPayload(std::string_view body, const EioLimits& limits) {
  if (body.empty()) {
    return fail(Errc::kProtocolError, "empty payload");
  }
  if (body.size() > limits.max_payload_bytes) {
    return fail(Errc::kMessageTooBig, "payload larger than " +
                                          std::to_string(limits.max_payload_bytes) + " bytes");
  }
  const size_t count = static_cast<size_t>(std::count(body.begin(), body.end(), kSeparator)) + 1;
  if (count > limits.max_packets) {
    return fail(Errc::kMessageTooBig,
                "more than " + std::to_string(limits.max_packets) + " packets in payload");
  }
  std::vector<EioPacket> packets;
  packets.reserve(count);
  size_t start = 0;
  for (;;) {
    const size_t end = body.find(kSeparator, start);
    const std::string_view piece =
        body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    auto packet = parseTextPacket(piece);
    if (!packet) {
      return tl::unexpected(std::move(packet.error()));
    }
    packets.push_back(std::move(*packet));
    if (end == std::string_view::npos) {
      return packets;
    }
    start = end + 1;
  }
}

void appendEioPayloadPacket(std::string& out, const EioPacket& packet) {
  if (packet.binary) {
    out.push_back('b');
    out.append(common::base64Encode(packet.data, common::Base64Alphabet::kStandard, true));
    return;
  }
  out.push_back(typeDigit(packet.type));
  out.append(packet.data);
}

std::string encodeEioPayload(std::span<const EioPacket> packets) {
  size_t size = 0;
  for (const EioPacket& p : packets) {
    size += 2 + (p.binary ? (p.data.size() + 2) / 3 * 4 : p.data.size());
  }
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < packets.size(); ++i) {
    if (i > 0) {
      out.push_back(kSeparator);
    }
    appendEioPayloadPacket(out, packets[i]);
  }
  return out;
}

std::string openPacketJson(std::string_view sid, std::span<const std::string> upgrades,
                           uint32_t ping_interval_ms, uint32_t ping_timeout_ms,
                           uint64_t max_payload) {
  std::string out;
  out.reserve(128);
  out.append("{\"sid\":");
  appendJsonString(out, sid);
  out.append(",\"upgrades\":[");
  for (size_t i = 0; i < upgrades.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    appendJsonString(out, upgrades[i]);
  }
  out.append("],\"pingInterval\":");
  out.append(std::to_string(ping_interval_ms));
  out.append(",\"pingTimeout\":");
  out.append(std::to_string(ping_timeout_ms));
  out.append(",\"maxPayload\":");
  out.append(std::to_string(max_payload));
  out.push_back('}');
  return out;
}

Result<std::string> newSessionId() {
  unsigned char bytes[kSessionIdLength / 4 * 3];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return fail(Errc::kInternal, "RAND_bytes failed");
  }
  return common::base64Encode(
      std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)),
      common::Base64Alphabet::kUrl, false);
}

bool plausibleSessionId(std::string_view sid) {
  if (sid.size() != kSessionIdLength) {
    return false;
  }
  return std::all_of(sid.begin(), sid.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
  });
}

std::string_view eioErrorMessage(EioError error) {
  switch (error) {
    case EioError::kUnknownTransport: return "Transport unknown";
    case EioError::kUnknownSid: return "Session ID unknown";
    case EioError::kBadHandshakeMethod: return "Bad handshake method";
    case EioError::kBadRequest: return "Bad request";
    case EioError::kForbidden: return "Forbidden";
    case EioError::kUnsupportedProtocolVersion: return "Unsupported protocol version";
  }
  return "Bad request";
}

int eioErrorHttpStatus(EioError error) { return error == EioError::kForbidden ? 403 : 400; }

std::string eioErrorBody(EioError error, std::string_view message) {
  std::string out = "{\"code\":";
  out.append(std::to_string(static_cast<int>(error)));
  out.append(",\"message\":");
  appendJsonString(out, message.empty() ? eioErrorMessage(error) : message);
  out.push_back('}');
  return out;
}

}  // namespace imgate::mod::socketio
