// SPDX-License-Identifier: Apache-2.0
#include "wire.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace imgate::bench::load {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode64(std::string_view in, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(alphabet[(v >> 6) & 63]);
    out.push_back(alphabet[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2) {
      v |= uint32_t(uint8_t(in[i + 1])) << 8;
    }
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    if (rest == 2) {
      out.push_back(alphabet[(v >> 6) & 63]);
    }
    if (pad) {
      out.append(rest == 1 ? "==" : "=");
    }
  }
  return out;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool parseDecimal(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + uint64_t(c - '0');
  }
  out = v;
  return true;
}

// Finds the end of a head ("\r\n\r\n"); 0 when not there yet.
size_t headEnd(std::string_view buf) {
  const size_t pos = buf.find("\r\n\r\n");
  return pos == std::string_view::npos ? 0 : pos + 4;
}

void appendBe(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out.push_back(char((v >> (8 * i)) & 0xFF));
  }
}

}  // namespace

std::string base64(std::string_view in) { return encode64(in, kB64, true); }

std::string base64Url(std::string_view in) { return encode64(in, kB64Url, false); }

std::string makeJwt(std::string_view secret, std::string_view user, int64_t iat_s, int64_t exp_s) {
  // User ids are checked by the option parser to need no JSON escaping.
  std::string claims = "{\"sub\":\"";
  claims.append(user);
  claims.append("\",\"iat\":");
  claims.append(std::to_string(iat_s));
  claims.append(",\"exp\":");
  claims.append(std::to_string(exp_s));
  claims.push_back('}');
  std::string token = base64Url(R"({"alg":"HS256","typ":"JWT"})");
  token.push_back('.');
  token.append(base64Url(claims));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), int(secret.size()),
       reinterpret_cast<const unsigned char*>(token.data()), token.size(), mac, &mac_len);
  token.push_back('.');
  token.append(base64Url(std::string_view(reinterpret_cast<const char*>(mac), mac_len)));
  return token;
}

std::string wsKey(uint64_t salt, uint32_t id) {
  char raw[16];
  uint64_t hi = salt ^ (uint64_t(id) * 0x9E3779B97F4A7C15ULL);
  uint64_t lo = ~salt + id;
  std::memcpy(raw, &hi, 8);
  std::memcpy(raw + 8, &lo, 8);
  return base64(std::string_view(raw, 16));
}

std::string wsAccept(std::string_view key) {
  std::string in(key);
  in.append("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_Digest(in.data(), in.size(), md, &md_len, EVP_sha1(), nullptr);
  return base64(std::string_view(reinterpret_cast<const char*>(md), md_len));
}

// ---- HTTP ---------------------------------------------------------------------------------------

Parse parseHttpHead(std::string_view buf, size_t max_head, HttpHead& out) {
  const size_t end = headEnd(buf);
  if (end == 0) {
    return buf.size() > max_head ? Parse::kError : Parse::kNeedMore;
  }
  if (end > max_head) {
    return Parse::kError;
  }
  const std::string_view head = buf.substr(0, end);
  // "HTTP/1.1 200 ..."
  if (head.size() < 12 || head.substr(0, 7) != "HTTP/1." || head[8] != ' ') {
    return Parse::kError;
  }
  uint64_t status = 0;
  if (!parseDecimal(head.substr(9, 3), status) || status < 100 || status > 599) {
    return Parse::kError;
  }
  out = HttpHead{};
  out.status = int(status);
  out.head_len = end;
  if (auto len = headerValue(head, "content-length")) {
    if (!parseDecimal(*len, out.content_length)) {
      return Parse::kError;
    }
    out.has_length = true;
  }
  if (auto te = headerValue(head, "transfer-encoding")) {
    out.chunked = te->find("chunked") != std::string_view::npos;
  }
  return Parse::kOk;
}

std::optional<std::string_view> headerValue(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const size_t start = pos + 2;
    const size_t eol = head.find("\r\n", start);
    if (eol == std::string_view::npos || eol == start) {
      break;
    }
    const std::string_view line = head.substr(start, eol - start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && equalsIgnoreCase(line.substr(0, colon), name)) {
      return trim(line.substr(colon + 1));
    }
    pos = eol;
  }
  return std::nullopt;
}

Parse parseHttpRequestHead(std::string_view buf, size_t max_head, HttpRequestHead& out) {
  const size_t end = headEnd(buf);
  if (end == 0) {
    return buf.size() > max_head ? Parse::kError : Parse::kNeedMore;
  }
  if (end > max_head) {
    return Parse::kError;
  }
  const std::string_view head = buf.substr(0, end);
  const size_t sp = head.find(' ');
  if (sp == 0 || sp == std::string_view::npos || head.find(" HTTP/1.") == std::string_view::npos) {
    return Parse::kError;
  }
  out = HttpRequestHead{};
  out.head_len = end;
  if (auto len = headerValue(head, "content-length")) {
    if (!parseDecimal(*len, out.content_length)) {
      return Parse::kError;
    }
  }
  if (headerValue(head, "transfer-encoding")) {
    return Parse::kError;  // imgate's upstream client sends Content-Length; chunked is not needed
  }
  if (auto conn = headerValue(head, "connection")) {
    out.close = equalsIgnoreCase(*conn, "close");
  }
  return Parse::kOk;
}

Parse parseHttpAnswer(std::string_view buf, size_t max_head, uint64_t max_body, HttpAnswer& out) {
  HttpHead head;
  const Parse p = parseHttpHead(buf, max_head, head);
  if (p != Parse::kOk) {
    return p;
  }
  if (!head.has_length || head.chunked || head.content_length > max_body) {
    return Parse::kError;
  }
  if (buf.size() - head.head_len < head.content_length) {
    return Parse::kNeedMore;
  }
  out.status = head.status;
  out.body = buf.substr(head.head_len, size_t(head.content_length));
  out.size = head.head_len + size_t(head.content_length);
  return Parse::kOk;
}

// ---- WebSocket ----------------------------------------------------------------------------------

Parse parseWsFrame(const uint8_t* p, size_t n, uint64_t max_payload, WsFrame& out) {
  if (n < 2) {
    return Parse::kNeedMore;
  }
  const uint8_t b0 = p[0];
  const uint8_t b1 = p[1];
  if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0) {
    return Parse::kError;  // RSV bits without an extension, or a masked server frame
  }
  const uint8_t opcode = b0 & 0x0F;
  const bool control = (opcode & 0x08) != 0;
  if (!(opcode <= kWsBinary || opcode == kWsClose || opcode == kWsPing || opcode == kWsPong)) {
    return Parse::kError;
  }
  uint64_t len = b1 & 0x7F;
  size_t header = 2;
  if (control && (len > 125 || (b0 & 0x80) == 0)) {
    return Parse::kError;
  }
  if (len == 126) {
    if (n < 4) {
      return Parse::kNeedMore;
    }
    len = (uint64_t(p[2]) << 8) | p[3];
    header = 4;
    if (len < 126) {
      return Parse::kError;
    }
  } else if (len == 127) {
    if (n < 10) {
      return Parse::kNeedMore;
    }
    len = 0;
    for (int i = 0; i < 8; ++i) {
      len = (len << 8) | p[2 + i];
    }
    header = 10;
    if (len <= 0xFFFF || (len >> 63) != 0) {
      return Parse::kError;
    }
  }
  if (len > max_payload) {
    return Parse::kError;
  }
  out.opcode = opcode;
  out.fin = (b0 & 0x80) != 0;
  out.header_len = header;
  out.payload_len = len;
  return n >= header + len ? Parse::kOk : Parse::kNeedMore;
}

void appendWsFrame(std::string& out, uint8_t opcode, std::string_view payload, uint32_t mask) {
  out.push_back(char(0x80 | opcode));
  const size_t len = payload.size();
  if (len < 126) {
    out.push_back(char(0x80 | len));
  } else if (len <= 0xFFFF) {
    out.push_back(char(0x80 | 126));
    appendBe(out, len, 2);
  } else {
    out.push_back(char(0x80 | 127));
    appendBe(out, len, 8);
  }
  uint8_t key[4] = {uint8_t(mask >> 24), uint8_t(mask >> 16), uint8_t(mask >> 8), uint8_t(mask)};
  out.append(reinterpret_cast<const char*>(key), 4);
  const size_t base = out.size();
  out.append(payload);
  for (size_t i = 0; i < len; ++i) {
    out[base + i] = char(uint8_t(out[base + i]) ^ key[i & 3]);
  }
}

// ---- TCP frames ---------------------------------------------------------------------------------

Parse parseTcpHeader(const uint8_t* p, size_t n, uint32_t max_length, TcpFrame& out) {
  // Check what has arrived byte by byte, as the server does, so garbage fails early.
  if (n >= 1 && p[0] != 0xB7) {
    return Parse::kError;
  }
  if (n >= 2 && p[1] != 0x46) {
    return Parse::kError;
  }
  if (n >= 3 && p[2] != 1) {
    return Parse::kError;
  }
  if (n >= 5 && (p[4] & ~uint8_t(kTcpCompressed | kTcpAckRequired | kTcpBinary)) != 0) {
    return Parse::kError;
  }
  for (size_t i = 5; i < 8 && i < n; ++i) {
    if (p[i] != 0) {
      return Parse::kError;
    }
  }
  if (n < kTcpHeaderSize) {
    return Parse::kNeedMore;
  }
  out.type = p[3];
  out.flags = p[4];
  out.id = 0;
  for (int i = 0; i < 8; ++i) {
    out.id = (out.id << 8) | p[8 + i];
  }
  out.length = (uint32_t(p[16]) << 24) | (uint32_t(p[17]) << 16) | (uint32_t(p[18]) << 8) | p[19];
  if (out.length > max_length) {
    return Parse::kError;
  }
  return n >= out.size() ? Parse::kOk : Parse::kNeedMore;
}

void appendTcpRawFrame(std::string& out, uint8_t type, uint8_t flags, uint64_t id,
                       std::string_view body) {
  out.append("\xB7\x46\x01", 3);
  out.push_back(char(type));
  out.push_back(char(flags));
  out.append(3, '\0');
  appendBe(out, id, 8);
  appendBe(out, body.size(), 4);
  out.append(body);
}

void appendTcpFrame(std::string& out, uint8_t type, uint8_t flags, uint64_t id,
                    std::initializer_list<Tlv> fields) {
  size_t length = 0;
  for (const Tlv& f : fields) {
    length += 5 + f.value.size();
  }
  out.append("\xB7\x46\x01", 3);
  out.push_back(char(type));
  out.push_back(char(flags));
  out.append(3, '\0');
  appendBe(out, id, 8);
  appendBe(out, length, 4);
  for (const Tlv& f : fields) {
    out.push_back(char(f.tag));
    appendBe(out, f.value.size(), 4);
    out.append(f.value);
  }
}

Parse findTlv(std::string_view body, uint8_t tag, std::string_view& value) {
  size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < 5) {
      return Parse::kError;
    }
    const uint8_t t = uint8_t(body[pos]);
    const uint64_t len = readBe(body.substr(pos + 1, 4));
    if (len > body.size() - pos - 5) {
      return Parse::kError;
    }
    if (t == tag) {
      value = body.substr(pos + 5, len);
      return Parse::kOk;
    }
    pos += 5 + len;
  }
  return Parse::kNeedMore;
}

uint64_t readBe(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    v = (v << 8) | uint8_t(bytes[i]);
  }
  return v;
}

bool inflateZlib(std::string_view in, size_t max_out, std::string& out) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit(&zs) != Z_OK) {
    return false;
  }
  out.clear();
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  char chunk[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      break;
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (out.size() > max_out) {
      rc = Z_MEM_ERROR;
      break;
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      rc = Z_BUF_ERROR;  // truncated
    }
  }
  const bool ok = rc == Z_STREAM_END && zs.avail_in == 0;
  inflateEnd(&zs);
  return ok;
}

// ---- Nchan -------------------------------------------------------------------------------------

std::string nchanUserChannel(std::string_view user) { return "user_" + std::string(user); }

std::string nchanRoomChannel(std::string_view room) { return "room_" + std::string(room); }

std::string nchanSubscribeTarget(std::string_view path, std::string_view user,
                                 std::string_view room) {
  std::string out(path);
  out.append("?user=");
  out.append(user);
  out.append("&room=");
  out.append(room);
  return out;
}

void appendNchanPublish(std::string& out, std::string_view host, std::string_view prefix,
                        std::string_view channel, std::string_view body) {
  out.append("POST ");
  out.append(prefix);
  out.append(channel);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(host);
  // text/plain: Nchan keeps the type with the message; WebSocket subscribers get text frames.
  out.append("\r\nAccept: application/json\r\nContent-Type: text/plain\r\nContent-Length: ");
  out.append(std::to_string(body.size()));
  out.append("\r\n\r\n");
  out.append(body);
}

std::optional<uint64_t> nchanSubscribers(std::string_view body) {
  constexpr std::string_view kKey = "subscribers";
  const size_t pos = body.find(kKey);
  if (pos == std::string_view::npos) {
    return std::nullopt;
  }
  size_t i = pos + kKey.size();
  while (i < body.size() && (body[i] == '"' || body[i] == ':' || body[i] == ' ')) {
    ++i;
  }
  uint64_t v = 0;
  size_t digits = 0;
  while (i < body.size() && body[i] >= '0' && body[i] <= '9' && digits < 19) {
    v = v * 10 + uint64_t(body[i] - '0');
    ++i;
    ++digits;
  }
  if (digits == 0 || (i < body.size() && body[i] >= '0' && body[i] <= '9')) {
    return std::nullopt;
  }
  return v;
}

// ---- Payloads -----------------------------------------------------------------------------------

std::string makePayload(uint64_t t_ns, uint64_t n, size_t pad_to) {
  std::string out = "{\"lg_t\":";
  out.append(std::to_string(t_ns));
  out.append(",\"lg_n\":");
  out.append(std::to_string(n));
  if (out.size() + 1 < pad_to) {
    out.append(",\"p\":\"");
    const size_t used = out.size() + 2;  // the closing quote and brace
    if (pad_to > used) {
      out.append(pad_to - used, 'x');
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

bool scanU64(std::string_view text, std::string_view key, uint64_t& out) {
  size_t pos = 0;
  while (true) {
    pos = text.find(key, pos);
    if (pos == std::string_view::npos) {
      return false;
    }
    size_t i = pos + key.size();
    // The key must be a whole JSON key: a quote (possibly escaped) follows it.
    if (i < text.size() && (text[i] == '"' || text[i] == '\\')) {
      while (i < text.size() &&
             (text[i] == '"' || text[i] == '\\' || text[i] == ':' || text[i] == ' ')) {
        ++i;
      }
      uint64_t v = 0;
      size_t digits = 0;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 20) {
        v = v * 10 + uint64_t(text[i] - '0');
        ++i;
        ++digits;
      }
      if (digits > 0 && digits < 20) {
        out = v;
        return true;
      }
    }
    pos += key.size();
  }
}

bool scanPayload(std::string_view text, uint64_t& t_ns, uint64_t& n) {
  return scanU64(text, "lg_t", t_ns) && scanU64(text, "lg_n", n);
}

}  // namespace imgate::bench::load
