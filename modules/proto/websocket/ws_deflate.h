// SPDX-License-Identifier: Apache-2.0
// permessage-deflate (RFC 7692): extension negotiation and the zlib streams behind it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

struct z_stream_s;

namespace imgate::mod::websocket {

// zlib's raw deflate refuses an 8-bit window (since zlib 1.2.9 deflateInit2 rejects it), so 9
// is the smallest window this server can promise. An offer that asks for
// server_max_window_bits=8 is declined rather than answered with 9, which the client would
// not be able to inflate (RFC 7692 §7.1.2.1: the server must not exceed the offered value).
inline constexpr int kMinWindowBits = 9;
inline constexpr int kMaxWindowBits = 15;

// What the listener's config allows; fixed at compile() time.
struct DeflatePolicy {
  bool enabled = true;
  // Answer with server_no_context_takeover even when the client did not ask for it.
  bool server_no_context_takeover = false;
  // Answer with client_no_context_takeover even when the client did not offer it, so the
  // server can free its inflate state (~40 KiB) after every message (RFC 7692 §7.1.1.2 lets a
  // server ask for this unilaterally).
  bool client_no_context_takeover = true;
  int server_max_window_bits = kMaxWindowBits;  // kMinWindowBits..kMaxWindowBits
};

// The agreed parameters of one session, as the codec uses them.
struct DeflateParams {
  bool enabled = false;
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  // The largest window the server may compress with. The server always inflates with a
  // 15-bit window, which decodes any client window, so client_max_window_bits is accepted in
  // offers but never constrained in the answer.
  uint8_t server_max_window_bits = kMaxWindowBits;
};

struct DeflateAgreement {
  DeflateParams params;
  std::string response;  // the Sec-WebSocket-Extensions value to send back
};

// Walks every offer in `header_values` (all Sec-WebSocket-Extensions headers, in order) and
// accepts the first permessage-deflate offer that is well-formed and acceptable. Offers with
// unknown, duplicated or malformed parameters, or with server_max_window_bits=8, are declined
// one by one; nullopt means "no extension", never a failed handshake. Other extensions are
// ignored.
std::optional<DeflateAgreement> negotiateDeflate(const std::vector<std::string_view>& header_values,
                                                 const DeflatePolicy& policy);

// Raw inflate for one direction of one session. The zlib state is allocated on the first
// feed() and freed by the destructor; destroy the object between messages when the peer does
// not take over context, so idle sessions hold no zlib memory.
class Inflater {
 public:
  Inflater() = default;
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Decompresses the next piece of one message's payload and appends it to `out`. Fails with
  // kMessageTooBig as soon as `out` would grow past `limit` (inflate-bomb guard: at most
  // limit + 1 bytes are ever produced), kInvalidPayload on corrupt data or data after a final
  // block, kInternal when zlib cannot allocate.
  [[nodiscard]] Status feed(std::string_view data, std::string& out, size_t limit);
  // Ends the message: feeds the 00 00 ff ff tail the sender stripped (RFC 7692 §7.2.2).
  [[nodiscard]] Status finish(std::string& out, size_t limit);
  // After a message that ended with a BFINAL block the next message is a new DEFLATE stream;
  // the old window is dropped, so a peer that kept referring to it fails with kInvalidPayload.
  void endMessage();

 private:
  [[nodiscard]] Status run(const uint8_t* data, size_t len, std::string& out, size_t limit);

  z_stream_s* stream_ = nullptr;
  bool stream_end_ = false;
};

// Raw deflate with Z_SYNC_FLUSH per message. Holds up to 2^(w+2) + 2^(mem_level+9) bytes of
// zlib memory while alive (256 KiB at w=15, mem_level=8).
class Deflater {
 public:
  Deflater(int window_bits, int level, int mem_level);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;

  // Compresses one whole message and appends the payload to `out`, without the trailing
  // 00 00 ff ff (RFC 7692 §7.2.1). An empty result is sent as the single byte 00. Later calls
  // may refer back to earlier messages (context takeover) until reset().
  [[nodiscard]] Status compress(std::string_view in, std::string& out);

 private:
  z_stream_s* stream_ = nullptr;
  int window_bits_;
  int level_;
  int mem_level_;
};

// Compresses one message with a fresh deflate state: no reference to any earlier message.
// The window is the smallest that loses nothing for this payload (at most `max_window_bits`),
// which keeps the transient zlib allocation small for chat-sized messages. Deterministic: the
// same input and parameters always give the same bytes.
[[nodiscard]] Status deflateFresh(std::string_view in, int max_window_bits, int level,
                                  std::string& out);

// Upper bound of compressed bytes accepted for a message whose inflated size may reach
// `max_message`: zlib's worst-case expansion is far below an eighth, and the slack covers the
// 5-byte empty blocks a client may flush at every frame.
inline uint64_t compressedBudget(uint64_t max_message) {
  return max_message + max_message / 8 + 1024;
}

}  // namespace imgate::mod::websocket
