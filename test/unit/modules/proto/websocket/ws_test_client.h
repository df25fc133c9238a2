// SPDX-License-Identifier: Apache-2.0
// The client side of the wire, for tests: masked frame builder, server frame parser, zlib
// streams as a browser would run them, and a driver that feeds a codec the way the core does.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "modules/proto/websocket/ws_codec.h"
#include "test/unit/modules/proto/websocket/fakes.h"

namespace imgate::mod::websocket::testing {

inline constexpr uint8_t kFin = 0x80;
inline constexpr uint8_t kRsv1 = 0x40;
inline constexpr uint8_t kRsv2 = 0x20;
inline constexpr uint8_t kRsv3 = 0x10;
inline constexpr std::array<uint8_t, 4> kMask = {0x37, 0xfa, 0x21, 0x3d};

// A client frame. `b0` is the first byte (FIN, RSV, opcode). `length_form` forces the length
// encoding: 0 minimal, 2 the 16-bit form, 8 the 64-bit form.
inline std::string clientFrame(uint8_t b0, std::string_view payload, int length_form = 0,
                               bool masked = true) {
  std::string f;
  f.push_back(static_cast<char>(b0));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  const uint64_t n = payload.size();
  if (length_form == 0 && n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if ((length_form == 0 && n <= 0xFFFF) || length_form == 2) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) {
      f.push_back(static_cast<char>(n >> (8 * i)));
    }
  }
  if (masked) {
    f.append(reinterpret_cast<const char*>(kMask.data()), kMask.size());
  }
  for (size_t i = 0; i < payload.size(); ++i) {
    f.push_back(static_cast<char>(payload[i] ^ (masked ? kMask[i & 3] : 0)));
  }
  return f;
}

inline std::string closePayload(uint16_t code, std::string_view reason = {}) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code));
  p.append(reason);
  return p;
}

struct ServerFrame {
  bool fin = false;
  bool rsv1 = false;
  uint8_t opcode = 0;
  std::string payload;
};

// Parses unmasked server frames. Sets `ok` false on a masked or truncated frame.
inline std::vector<ServerFrame> parseServerFrames(std::string_view b, bool* ok = nullptr) {
  std::vector<ServerFrame> frames;
  bool good = true;
  size_t pos = 0;
  while (pos < b.size()) {
    if (b.size() - pos < 2) {
      good = false;
      break;
    }
    const auto b0 = static_cast<uint8_t>(b[pos]);
    const auto b1 = static_cast<uint8_t>(b[pos + 1]);
    if ((b1 & 0x80) != 0) {
      good = false;
      break;
    }
    uint64_t n = b1 & 0x7F;
    size_t h = 2;
    if (n == 126 || n == 127) {
      const size_t ext = n == 126 ? 2 : 8;
      if (b.size() - pos < 2 + ext) {
        good = false;
        break;
      }
      n = 0;
      for (size_t i = 0; i < ext; ++i) {
        n = (n << 8) | static_cast<uint8_t>(b[pos + 2 + i]);
      }
      h += ext;
    }
    if (b.size() - pos - h < n) {
      good = false;
      break;
    }
    frames.push_back({(b0 & 0x80) != 0, (b0 & 0x40) != 0, static_cast<uint8_t>(b0 & 0x0F),
                      std::string(b.substr(pos + h, n))});
    pos += h + n;
  }
  if (ok != nullptr) {
    *ok = good;
  }
  return frames;
}

// A browser's inflater for server messages (RFC 7692 §7.2.2).
class ClientInflater {
 public:
  explicit ClientInflater(bool context_takeover, int window_bits = 15)
      : takeover_(context_takeover), window_bits_(window_bits) {
    init();
  }
  ~ClientInflater() { inflateEnd(&s_); }
  ClientInflater(const ClientInflater&) = delete;
  ClientInflater& operator=(const ClientInflater&) = delete;

  std::optional<std::string> inflateMessage(std::string_view payload) {
    if (!takeover_) {
      inflateEnd(&s_);
      init();
    }
    std::string in(payload);
    in.append("\x00\x00\xff\xff", 4);
    s_.next_in = reinterpret_cast<Bytef*>(in.data());
    s_.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char buf[4096];
    while (true) {
      s_.next_out = reinterpret_cast<Bytef*>(buf);
      s_.avail_out = sizeof(buf);
      const int rc = inflate(&s_, Z_SYNC_FLUSH);
      out.append(buf, sizeof(buf) - s_.avail_out);
      if (rc == Z_BUF_ERROR || (rc == Z_OK && s_.avail_in == 0 && s_.avail_out != 0)) {
        return out;
      }
      if (rc != Z_OK) {
        return std::nullopt;
      }
    }
  }

 private:
  void init() {
    s_ = z_stream{};
    inflateInit2(&s_, -window_bits_);
  }
  z_stream s_{};
  bool takeover_;
  int window_bits_;
};

// A browser's deflater for client messages; strips the sync-flush tail.
class ClientDeflater {
 public:
  explicit ClientDeflater(bool context_takeover, int window_bits = 15)
      : takeover_(context_takeover), window_bits_(window_bits) {
    init();
  }
  ~ClientDeflater() { deflateEnd(&s_); }
  ClientDeflater(const ClientDeflater&) = delete;
  ClientDeflater& operator=(const ClientDeflater&) = delete;

  std::string deflateMessage(std::string_view payload, int flush = Z_SYNC_FLUSH) {
    if (!takeover_) {
      deflateEnd(&s_);
      init();
    }
    std::string in(payload);
    s_.next_in = reinterpret_cast<Bytef*>(in.data());
    s_.avail_in = static_cast<uInt>(in.size());
    std::string out;
    char buf[4096];
    do {
      s_.next_out = reinterpret_cast<Bytef*>(buf);
      s_.avail_out = sizeof(buf);
      deflate(&s_, flush);
      out.append(buf, sizeof(buf) - s_.avail_out);
    } while (s_.avail_out == 0);
    if (flush == Z_SYNC_FLUSH && out.size() >= 4 &&
        out.compare(out.size() - 4, 4, "\x00\x00\xff\xff", 4) == 0) {
      out.resize(out.size() - 4);
    }
    return out;
  }

 private:
  void init() {
    s_ = z_stream{};
    deflateInit2(&s_, 6, Z_DEFLATED, -window_bits_, 8, Z_DEFAULT_STRATEGY);
  }
  z_stream s_{};
  bool takeover_;
  int window_bits_;
};

// What one decode session produced.
struct DecodeRun {
  std::vector<std::pair<PayloadType, std::string>> messages;
  std::string out;
  bool peer_closed = false;
  std::string close_reason;
  int activity = 0;
  std::optional<Errc> error;
  size_t leftover = 0;  // bytes the codec had not consumed at the end

  bool operator==(const DecodeRun&) const = default;
};

inline void PrintTo(const DecodeRun& run, std::ostream* os) {
  *os << "{messages=" << run.messages.size() << " [";
  for (const auto& m : run.messages) {
    *os << (m.first == PayloadType::kText ? "text:" : "binary:") << m.second.size() << " ";
  }
  *os << "] out=" << run.out.size() << "B closed=" << run.peer_closed << " reason=\""
      << run.close_reason << "\" activity=" << run.activity << " error="
      << (run.error ? std::string(errcName(*run.error)) : std::string("none"))
      << " leftover=" << run.leftover << "}";
}

// How far feedInPieces got.
struct FedPieces {
  size_t consumed = 0;        // bytes the decoder took, over all its calls
  size_t leftover = 0;        // bytes it had not taken when the feed stopped
  std::optional<Errc> error;  // its first error; kInternal if it claimed more than it was given
};

struct NeverStop {
  bool operator()() const { return false; }
};

// Feeds `bytes` in pieces ending at each of `cuts` (then the rest) as the core does: the bytes
// `decode` did not consume are kept and the next piece appended to them. `decode` takes the kept
// bytes as a std::string_view and returns Result<size_t>, how many it consumed. The feed stops at
// the first error, or once `stop()` holds after a successful call.
template <typename Decode, typename Stop = NeverStop>
FedPieces feedInPieces(std::string_view bytes, const std::vector<size_t>& cuts, Decode decode,
                       Stop stop = {}) {
  FedPieces fed;
  std::string buffer;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(bytes.size());
  for (size_t end : ends) {
    buffer.append(bytes.substr(start, end - start));
    start = end;
    Result<size_t> r = decode(std::string_view(buffer));
    if (!r) {
      fed.error = r.error().code;
      break;
    }
    if (*r > buffer.size()) {
      fed.error = Errc::kInternal;  // a codec must never claim more than it was given
      break;
    }
    fed.consumed += *r;
    buffer.erase(0, *r);
    if (stop()) {
      break;
    }
  }
  fed.leftover = buffer.size();
  return fed;
}

// What a fresh WsCodec delivered and wrote for `bytes` fed as feedInPieces feeds them.
struct WsFeed {
  FakeSink sink;
  FakeOut out;
  FedPieces fed;
};

inline WsFeed feedFreshCodec(const WsCodecOptions& options, std::string_view bytes,
                             const std::vector<size_t>& cuts) {
  WsCodec codec(options);
  WsFeed feed;
  feed.fed = feedInPieces(
      bytes, cuts, [&](std::string_view in) { return codec.decode(in, feed.sink, feed.out); });
  return feed;
}

// Feeds `bytes` to a fresh codec in pieces ending at each of `cuts` (then the rest), keeping
// unconsumed bytes and appending the next piece, as the core does.
inline DecodeRun runDecode(const WsCodecOptions& options, std::string_view bytes,
                           const std::vector<size_t>& cuts = {}) {
  const WsFeed feed = feedFreshCodec(options, bytes, cuts);
  DecodeRun run;
  run.error = feed.fed.error;
  for (const Message& m : feed.sink.messages) {
    run.messages.emplace_back(m.type, std::string(m.data()));
  }
  run.out = feed.out.data;
  run.peer_closed = feed.sink.peer_closed;
  run.close_reason = feed.sink.close_reason;
  run.activity = feed.sink.activity;
  run.leftover = feed.fed.leftover;
  if (run.error) {
    // A failing session may stop on a partial frame (UTF-8 fail-fast) or a whole one; how far
    // it got is irrelevant, only what it delivered and why it failed.
    run.activity = 0;
    run.leftover = 0;
  }
  return run;
}

inline std::vector<size_t> everyByte(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < n; ++i) {
    cuts.push_back(i);
  }
  return cuts;
}

// Decodes `bytes` whole, one byte at a time and split at every offset, and checks that all
// runs agree; returns the whole-input run.
inline DecodeRun decodeAllWays(const WsCodecOptions& options, std::string_view bytes) {
  const DecodeRun whole = runDecode(options, bytes);
  const DecodeRun bytewise = runDecode(options, bytes, everyByte(bytes.size()));
  EXPECT_EQ(whole, bytewise) << "byte-by-byte feed differs";
  // Inputs above 4 KiB are split near both ends and at a stride in between, which keeps the
  // test quadratic only in the small cases.
  const size_t n = bytes.size();
  for (size_t k = 1; k < n; ++k) {
    if (n > 4096 && k > 64 && k + 64 < n && k % 509 != 0) {
      continue;
    }
    const DecodeRun split = runDecode(options, bytes, {k});
    EXPECT_EQ(whole, split) << "split at offset " << k << " differs";
    if (!(whole == split)) {
      break;
    }
  }
  return whole;
}

inline WsCodecOptions deflateOptions(bool client_no_context_takeover = true) {
  WsCodecOptions o;
  o.deflate.enabled = true;
  o.deflate.client_no_context_takeover = client_no_context_takeover;
  return o;
}

}  // namespace imgate::mod::websocket::testing
