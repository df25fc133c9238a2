// SPDX-License-Identifier: Apache-2.0
#include "ws_deflate.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

namespace imgate::mod::websocket {

// ---- Negotiation (RFC 7692 §5, §7.1) ------------------------------------------------------

namespace {

char lowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) {
      return false;
    }
  }
  return true;
}

// RFC 7230 tchar.
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTokenChar);
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits `s` at `sep` outside quoted-strings. Returns false on an unterminated quote.
bool splitOutsideQuotes(std::string_view s, char sep, std::vector<std::string_view>& parts) {
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (quoted) {
    return false;
  }
  parts.push_back(s.substr(start));
  return true;
}

// A parameter value: token or quoted-string (unescaped). nullopt when malformed.
std::optional<std::string> parseValue(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
    std::string out;
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\') {
        ++i;
        if (i + 1 >= v.size()) {
          return std::nullopt;
        }
      } else if (v[i] == '"') {
        return std::nullopt;
      }
      out.push_back(v[i]);
    }
    return out;
  }
  if (!isToken(v)) {
    return std::nullopt;
  }
  return std::string(v);
}

// RFC 7692 §7.1.2: 1*DIGIT in 8..15, without leading zeros.
std::optional<int> parseWindowBits(std::string_view v) {
  if (v.empty() || v.size() > 2 || v.front() == '0') {
    return std::nullopt;
  }
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    n = n * 10 + (c - '0');
  }
  if (n < 8 || n > kMaxWindowBits) {
    return std::nullopt;
  }
  return n;
}

// One permessage-deflate offer's parameters (everything after the extension name).
std::optional<DeflateAgreement> tryOffer(const std::vector<std::string_view>& params,
                                         const DeflatePolicy& policy) {
  bool server_nct = false;
  bool client_nct = false;
  bool has_server_bits = false;
  bool has_client_bits = false;
  int server_bits = kMaxWindowBits;
  for (std::string_view raw : params) {
    const std::string_view param = trimOws(raw);
    const size_t eq = param.find('=');
    const std::string_view name = trimOws(param.substr(0, eq));
    std::optional<std::string> value;
    if (eq != std::string_view::npos) {
      value = parseValue(trimOws(param.substr(eq + 1)));
      if (!value) {
        return std::nullopt;
      }
    }
    if (iequals(name, "server_no_context_takeover")) {
      if (server_nct || value) {
        return std::nullopt;
      }
      server_nct = true;
    } else if (iequals(name, "client_no_context_takeover")) {
      if (client_nct || value) {
        return std::nullopt;
      }
      client_nct = true;
    } else if (iequals(name, "server_max_window_bits")) {
      if (has_server_bits || !value) {
        return std::nullopt;
      }
      const std::optional<int> bits = parseWindowBits(*value);
      if (!bits || *bits < kMinWindowBits) {
        return std::nullopt;
      }
      has_server_bits = true;
      server_bits = *bits;
    } else if (iequals(name, "client_max_window_bits")) {
      if (has_client_bits || (value && !parseWindowBits(*value))) {
        return std::nullopt;
      }
      has_client_bits = true;
    } else {
      return std::nullopt;
    }
  }

  DeflateAgreement agreement;
  DeflateParams& p = agreement.params;
  p.enabled = true;
  p.server_no_context_takeover = server_nct || policy.server_no_context_takeover;
  p.client_no_context_takeover = client_nct || policy.client_no_context_takeover;
  p.server_max_window_bits =
      static_cast<uint8_t>(std::min(server_bits, policy.server_max_window_bits));
  agreement.response = "permessage-deflate";
  if (p.server_no_context_takeover) {
    agreement.response += "; server_no_context_takeover";
  }
  if (p.client_no_context_takeover) {
    agreement.response += "; client_no_context_takeover";
  }
  // Only echoed when offered: a smaller server window needs no announcement (the client can
  // always inflate it), and some clients (Firefox) fail on an unsolicited one.
  if (has_server_bits) {
    agreement.response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
  }
  return agreement;
}

}  // namespace

std::optional<DeflateAgreement> negotiateDeflate(const std::vector<std::string_view>& header_values,
                                                 const DeflatePolicy& policy) {
  if (!policy.enabled) {
    return std::nullopt;
  }
  for (std::string_view value : header_values) {
    std::vector<std::string_view> offers;
    if (!splitOutsideQuotes(value, ',', offers)) {
      continue;  // unterminated quote: no offer in this header can be trusted
    }
    for (std::string_view offer : offers) {
      std::vector<std::string_view> parts;
      if (!splitOutsideQuotes(offer, ';', parts)) {
        continue;
      }
      const std::string_view name = trimOws(parts.front());
      if (!iequals(name, "permessage-deflate")) {
        continue;
      }
      parts.erase(parts.begin());
      if (auto agreement = tryOffer(parts, policy)) {
        return agreement;
      }
    }
  }
  return std::nullopt;
}

// ---- Inflater -------------------------------------------------------------------------------

namespace {
constexpr size_t kChunk = 16 * 1024;
constexpr uint8_t kFlushTail[4] = {0x00, 0x00, 0xff, 0xff};
}  // namespace

Inflater::~Inflater() {
  if (stream_ != nullptr) {
    inflateEnd(stream_);
    delete stream_;
  }
}

Status Inflater::run(const uint8_t* data, size_t len, std::string& out, size_t limit) {
  if (stream_ == nullptr) {
    auto stream = std::make_unique<z_stream>();
    // A 15-bit window inflates anything a client may send, whatever it negotiated.
    if (inflateInit2(stream.get(), -kMaxWindowBits) != Z_OK) {
      return fail(Errc::kInternal, "zlib inflateInit2 failed");
    }
    stream_ = stream.release();
  }
  if (stream_end_) {
    if (len != 0) {
      return fail(Errc::kInvalidPayload, "compressed data after a final deflate block");
    }
    return {};
  }
  uint8_t buf[kChunk];
  stream_->next_in = const_cast<uint8_t*>(data);  // zlib's API is not const-correct
  stream_->avail_in = static_cast<uInt>(len);
  while (true) {
    const size_t room = limit - std::min(limit, out.size());
    const size_t want = std::min(kChunk, room + 1);
    stream_->next_out = buf;
    stream_->avail_out = static_cast<uInt>(want);
    const int rc = inflate(stream_, Z_SYNC_FLUSH);
    const size_t produced = want - stream_->avail_out;
    if (produced > room) {
      return fail(Errc::kMessageTooBig, "inflated message exceeds max_message");
    }
    out.append(reinterpret_cast<const char*>(buf), produced);
    if (rc == Z_STREAM_END) {
      stream_end_ = true;
      if (stream_->avail_in != 0) {
        return fail(Errc::kInvalidPayload, "compressed data after a final deflate block");
      }
      return {};
    }
    if (rc == Z_BUF_ERROR) {
      // No progress possible: all input is consumed and the output is drained.
      return {};
    }
    if (rc != Z_OK) {
      return fail(rc == Z_MEM_ERROR ? Errc::kInternal : Errc::kInvalidPayload,
                  "corrupt deflate data");
    }
    if (stream_->avail_in == 0 && stream_->avail_out != 0) {
      return {};
    }
  }
}

Status Inflater::feed(std::string_view data, std::string& out, size_t limit) {
  if (data.empty()) {
    return {};
  }
  if (data.size() > std::numeric_limits<uInt>::max()) {
    return fail(Errc::kMessageTooBig, "compressed input too large for zlib");
  }
  return run(reinterpret_cast<const uint8_t*>(data.data()), data.size(), out, limit);
}

Status Inflater::finish(std::string& out, size_t limit) {
  if (stream_end_) {
    return {};
  }
  return run(kFlushTail, sizeof(kFlushTail), out, limit);
}

void Inflater::endMessage() {
  if (stream_end_ && stream_ != nullptr) {
    inflateReset(stream_);
  }
  stream_end_ = false;
}

// ---- Deflater -------------------------------------------------------------------------------

Deflater::Deflater(int window_bits, int level, int mem_level)
    : window_bits_(std::clamp(window_bits, kMinWindowBits, kMaxWindowBits)),
      level_(std::clamp(level, 0, 9)),
      mem_level_(std::clamp(mem_level, 1, 9)) {}

Deflater::~Deflater() {
  if (stream_ != nullptr) {
    deflateEnd(stream_);
    delete stream_;
  }
}

Status Deflater::compress(std::string_view in, std::string& out) {
  if (in.size() > std::numeric_limits<uInt>::max() / 2) {
    return fail(Errc::kMessageTooBig, "message too large for zlib");
  }
  if (stream_ == nullptr) {
    auto stream = std::make_unique<z_stream>();
    if (deflateInit2(stream.get(), level_, Z_DEFLATED, -window_bits_, mem_level_,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
      return fail(Errc::kInternal, "zlib deflateInit2 failed");
    }
    stream_ = stream.release();
  }
  const size_t start = out.size();
  stream_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  stream_->avail_in = static_cast<uInt>(in.size());
  // deflateBound() covers a whole stream; the sync-flush block and a few pending bits from
  // earlier messages fit in the extra room, and the loop handles anything beyond.
  size_t chunk = deflateBound(stream_, static_cast<uLong>(in.size())) + 16;
  while (true) {
    const size_t old = out.size();
    out.resize(old + chunk);
    stream_->next_out = reinterpret_cast<Bytef*>(out.data() + old);
    stream_->avail_out = static_cast<uInt>(chunk);
    const int rc = deflate(stream_, Z_SYNC_FLUSH);
    out.resize(old + chunk - stream_->avail_out);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return fail(Errc::kInternal, "zlib deflate failed");
    }
    if (stream_->avail_out != 0) {
      break;
    }
    chunk = 256;
  }
  if (out.size() - start >= 4 &&
      std::memcmp(out.data() + out.size() - 4, kFlushTail, sizeof(kFlushTail)) == 0) {
    out.resize(out.size() - 4);
  }
  if (out.size() == start) {
    out.push_back('\0');
  }
  return {};
}

Status deflateFresh(std::string_view in, int max_window_bits, int level, std::string& out) {
  // zlib can refer back at most 2^w - 262 bytes; beyond the payload length a bigger window
  // only costs memory.
  int bits = kMinWindowBits;
  const int cap = std::clamp(max_window_bits, kMinWindowBits, kMaxWindowBits);
  while (bits < cap && (size_t{1} << bits) < in.size() + 262) {
    ++bits;
  }
  Deflater deflater(bits, level, std::clamp(bits - 6, 1, 8));
  return deflater.compress(in, out);
}

}  // namespace imgate::mod::websocket
