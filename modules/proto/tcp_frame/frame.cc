// SPDX-License-Identifier: Apache-2.0
#include "frame.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace imgate::mod::tcp_frame {

namespace {

constexpr size_t kTlvHeader = 5;
constexpr size_t kInflateChunk = 16 * 1024;

void putBE(char* dst, uint64_t value, size_t width) {
  for (size_t i = 0; i < width; ++i) {
    dst[i] = static_cast<char>(value >> (8 * (width - 1 - i)));
  }
}

uint64_t getBE(const char* src, size_t width) {
  uint64_t value = 0;
  for (size_t i = 0; i < width; ++i) {
    value = (value << 8) | static_cast<uint8_t>(src[i]);
  }
  return value;
}

bool isAssignedTag(uint8_t tag) {
  return tag >= static_cast<uint8_t>(Tag::kToken) &&
         tag <= static_cast<uint8_t>(kLastAssignedTag);
}

}  // namespace

// ---- Tables -----------------------------------------------------------------------------------

uint16_t closeCodeFor(Errc code) {
  switch (code) {
    case Errc::kNone: return 1000;
    case Errc::kShutdown: return 1001;
    case Errc::kProtocolError: return 1002;
    case Errc::kInvalidPayload: return 1007;
    case Errc::kBadRequest: return 1008;
    case Errc::kMessageTooBig: return 1009;
    case Errc::kInternal: return 1011;
    case Errc::kUnavailable: return 1013;
    case Errc::kTimeout: return 4000;
    case Errc::kUnauthenticated: return 4001;
    case Errc::kPermissionDenied: return 4003;
    case Errc::kNotFound: return 4004;
    case Errc::kEvicted: return 4009;
    case Errc::kKicked: return 4010;
    case Errc::kResourceExhausted: return 4029;
    case Errc::kSlowConsumer: return 4008;
    case Errc::kInvalidConfig: break;
  }
  return 1011;
}

Errc errcForCode(uint16_t code) {
  switch (code) {
    case kCodeOk:
    case 1000: return Errc::kNone;
    case 1001: return Errc::kShutdown;
    case 1002: return Errc::kProtocolError;
    case 1007: return Errc::kInvalidPayload;
    case 1008: return Errc::kBadRequest;
    case 1009: return Errc::kMessageTooBig;
    case 1013: return Errc::kUnavailable;
    case 4000: return Errc::kTimeout;
    case 4001: return Errc::kUnauthenticated;
    case 4003: return Errc::kPermissionDenied;
    case 4004: return Errc::kNotFound;
    case 4009: return Errc::kEvicted;
    case 4010: return Errc::kKicked;
    case 4029: return Errc::kResourceExhausted;
    case 4008: return Errc::kSlowConsumer;
    default: return Errc::kInternal;
  }
}

std::string_view frameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kHelloAck: return "HELLO_ACK";
    case FrameType::kPing: return "PING";
    case FrameType::kPong: return "PONG";
    case FrameType::kSend: return "SEND";
    case FrameType::kSendAck: return "SEND_ACK";
    case FrameType::kPush: return "PUSH";
    case FrameType::kPushAck: return "PUSH_ACK";
    case FrameType::kJoin: return "JOIN";
    case FrameType::kLeave: return "LEAVE";
    case FrameType::kError: return "ERROR";
    case FrameType::kGoaway: return "GOAWAY";
    case FrameType::kClose: return "CLOSE";
    case FrameType::kRead: return "READ";
  }
  return "UNKNOWN";
}

bool isKnownFrameType(uint8_t type) {
  return type >= static_cast<uint8_t>(FrameType::kHello) &&
         type <= static_cast<uint8_t>(FrameType::kRead);
}

bool isServerOnly(FrameType type) {
  switch (type) {
    case FrameType::kHelloAck:
    case FrameType::kSendAck:
    case FrameType::kPush:
    case FrameType::kError:
    case FrameType::kGoaway:
      return true;
    default:
      return false;
  }
}

// ---- Header -----------------------------------------------------------------------------------

Result<std::optional<FrameHeader>> parseHeader(std::string_view in, uint32_t max_frame) {
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  if ((n > 0 && p[0] != kMagic0) || (n > 1 && p[1] != kMagic1)) {
    return fail(Errc::kProtocolError, "bad magic");
  }
  if (n > 2 && p[2] != kVersion) {
    return fail(Errc::kProtocolError, "unsupported version " + std::to_string(p[2]));
  }
  if (n > 3 && !isKnownFrameType(p[3])) {
    return fail(Errc::kProtocolError, "unknown frame type " + std::to_string(p[3]));
  }
  if (n > 4 && (p[4] & ~kKnownFlags) != 0) {
    return fail(Errc::kProtocolError, "reserved flag bits set");
  }
  for (size_t i = 5; i < 8 && i < n; ++i) {
    if (p[i] != 0) {
      return fail(Errc::kProtocolError, "reserved header bytes are not zero");
    }
  }
  if (n < kHeaderSize) {
    return std::optional<FrameHeader>();
  }
  FrameHeader header;
  header.type = static_cast<FrameType>(p[3]);
  header.flags = p[4];
  header.id = getBE(in.data() + 8, 8);
  header.length = static_cast<uint32_t>(getBE(in.data() + 16, 4));
  if (header.length > max_frame) {
    return fail(Errc::kMessageTooBig, "frame body of " + std::to_string(header.length) +
                                          " bytes exceeds max_frame");
  }
  return std::optional<FrameHeader>(header);
}

void writeHeader(char* dst, const FrameHeader& header) {
  dst[0] = static_cast<char>(kMagic0);
  dst[1] = static_cast<char>(kMagic1);
  dst[2] = static_cast<char>(kVersion);
  dst[3] = static_cast<char>(header.type);
  dst[4] = static_cast<char>(header.flags);
  dst[5] = dst[6] = dst[7] = 0;
  putBE(dst + 8, header.id, 8);
  putBE(dst + 16, header.length, 4);
}

std::string buildFrame(FrameType type, uint8_t flags, uint64_t id, std::string_view body) {
  std::string frame(kHeaderSize, '\0');
  writeHeader(frame.data(), FrameHeader{type, flags, id, static_cast<uint32_t>(body.size())});
  frame.append(body);
  return frame;
}

// ---- TLV --------------------------------------------------------------------------------------

void TlvWriter::addString(Tag tag, std::string_view value) {
  char head[kTlvHeader];
  head[0] = static_cast<char>(tag);
  putBE(head + 1, value.size(), 4);
  out_.append(head, kTlvHeader);
  out_.append(value);
}

void TlvWriter::addU8(Tag tag, uint8_t value) {
  char v = static_cast<char>(value);
  addString(tag, std::string_view(&v, 1));
}

void TlvWriter::addU16(Tag tag, uint16_t value) {
  char v[2];
  putBE(v, value, 2);
  addString(tag, std::string_view(v, 2));
}

void TlvWriter::addU32(Tag tag, uint32_t value) {
  char v[4];
  putBE(v, value, 4);
  addString(tag, std::string_view(v, 4));
}

void TlvWriter::addU64(Tag tag, uint64_t value) {
  char v[8];
  putBE(v, value, 8);
  addString(tag, std::string_view(v, 8));
}

Result<std::optional<uint64_t>> Fields::uint(Tag tag, size_t width) const {
  const auto& v = values_[index(tag)];
  if (!v) {
    return std::optional<uint64_t>();
  }
  if (v->size() != width) {
    return fail(Errc::kProtocolError, "field " + std::to_string(static_cast<int>(tag)) +
                                          " must be " + std::to_string(width) + " bytes");
  }
  return std::optional<uint64_t>(getBE(v->data(), width));
}

Result<Fields> parseFields(std::string_view body) {
  Fields fields;
  size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < kTlvHeader) {
      return fail(Errc::kProtocolError, "truncated field header");
    }
    const auto tag = static_cast<uint8_t>(body[pos]);
    const uint64_t len = getBE(body.data() + pos + 1, 4);
    pos += kTlvHeader;
    if (len > body.size() - pos) {
      return fail(Errc::kProtocolError, "field " + std::to_string(tag) + " runs past the body");
    }
    const std::string_view value = body.substr(pos, len);
    pos += len;
    if (!isAssignedTag(tag)) {
      continue;
    }
    auto& slot = fields.values_[tag & kMaxTag];
    if (slot) {
      return fail(Errc::kProtocolError, "field " + std::to_string(tag) + " given twice");
    }
    slot = value;
  }
  return fields;
}

// ---- Compression ------------------------------------------------------------------------------

Status inflateBody(std::string_view in, size_t limit, std::string& out) {
  z_stream s;
  std::memset(&s, 0, sizeof(s));
  if (inflateInit(&s) != Z_OK) {
    return fail(Errc::kInternal, "zlib inflateInit failed");
  }
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  const size_t start = out.size();
  int rc = Z_OK;
  Status status;
  while (true) {
    const size_t produced = out.size() - start;
    // One byte past the limit is enough to know the limit is exceeded.
    const size_t room = std::min(kInflateChunk, limit + 1 - produced);
    const size_t old = out.size();
    out.resize(old + room);
    s.next_out = reinterpret_cast<Bytef*>(out.data() + old);
    s.avail_out = static_cast<uInt>(room);
    rc = inflate(&s, Z_NO_FLUSH);
    out.resize(old + room - s.avail_out);
    if (out.size() - start > limit) {
      status = fail(Errc::kMessageTooBig, "inflated body exceeds max_frame");
      break;
    }
    if (rc == Z_STREAM_END) {
      if (s.avail_in != 0) {
        status = fail(Errc::kInvalidPayload, "bytes after the end of the zlib stream");
      }
      break;
    }
    if (rc == Z_MEM_ERROR) {
      status = fail(Errc::kInternal, "zlib out of memory");
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      status = fail(Errc::kInvalidPayload, "corrupt zlib data");
      break;
    }
    if (s.avail_in == 0 && s.avail_out != 0) {
      status = fail(Errc::kInvalidPayload, "truncated zlib stream");
      break;
    }
  }
  inflateEnd(&s);
  if (!status) {
    out.resize(start);
  }
  return status;
}

bool deflateBody(std::string_view in, int level, std::string& out) {
  z_stream s;
  std::memset(&s, 0, sizeof(s));
  if (deflateInit(&s, level) != Z_OK) {
    return false;
  }
  const size_t old = out.size();
  const uLong bound = deflateBound(&s, static_cast<uLong>(in.size()));
  out.resize(old + bound);
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data() + old);
  s.avail_out = static_cast<uInt>(bound);
  const int rc = deflate(&s, Z_FINISH);
  const size_t produced = bound - s.avail_out;
  deflateEnd(&s);
  if (rc != Z_STREAM_END) {
    out.resize(old);
    return false;
  }
  out.resize(old + produced);
  return true;
}

}  // namespace imgate::mod::tcp_frame
