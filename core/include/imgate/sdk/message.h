// SPDX-License-Identifier: Apache-2.0
// The transport-neutral envelope that crosses the pipeline (DESIGN.md §3). Protocol modules
// decode into it and encode from it; stages never see wire formats.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imgate {

// Immutable, shared bytes. Built once, then shared by every recipient of a fan-out and by the
// core's output buffers (which keep a reference until the bytes are on the wire).
using Bytes = std::shared_ptr<const std::string>;

namespace sdk_detail {
using MakeBytesFn = Bytes (*)(std::string&&);
// Where makeBytes() builds its bytes. Null in the core and in built-in modules (plain
// make_shared). In a module .so the core sets it at load time (imgate_module_entry::bind_host)
// to a function of the core's, so the shared_ptr control block of every payload a module makes
// lives in the core's code: such payloads may outlive the module (a reload that removes or
// replaces a .so unloads it while its messages can still sit in queues and output buffers).
inline MakeBytesFn& hostMakeBytes() {
  static MakeBytesFn fn = nullptr;
  return fn;
}
}  // namespace sdk_detail

// The only way modules should create Bytes (never std::make_shared directly; see above).
inline Bytes makeBytes(std::string data) {
  if (sdk_detail::MakeBytesFn fn = sdk_detail::hostMakeBytes()) {
    return fn(std::move(data));
  }
  return std::make_shared<const std::string>(std::move(data));
}

enum class MessageKind : uint8_t {
  kData,      // application payload
  kAck,       // acknowledgement of a message id or seq
  kControl,   // join / leave / kick and similar
  kPresence,  // online / offline notices
};

enum class Direction : uint8_t { kInbound, kOutbound };  // from the client / to the client

enum class PayloadType : uint8_t { kText, kBinary };  // WebSocket opcode 1 / 2, and equivalents

enum class TargetKind : uint8_t { kNone, kUser, kSession, kRoom, kAll };

struct Message {
  MessageKind kind = MessageKind::kData;
  PayloadType type = PayloadType::kText;
  TargetKind to_kind = TargetKind::kNone;
  std::string app;    // tenant; isolates users, rooms and limits
  std::string from;   // authenticated sender (user id); set by the core from the session
  std::string to;     // user id, session id or room name, per to_kind
  std::string event;  // what the client or backend calls the message
  std::string id;     // client message id (de-duplication, acks)
  uint64_t seq = 0;   // server sequence per stream
  int64_t ts_ms = 0;  // server timestamp (ms since the epoch), assigned at ingress
  std::vector<std::pair<std::string, std::string>> meta;  // small and flat
  Bytes payload;      // never null once built by a codec or the core
  // Reliable delivery (DESIGN.md §4, docs/reliability.md). Downlink: set by the core when the
  // message belongs to a stream with history: "user" (the target user's own stream),
  // "room:<name>", or "all" (the app's broadcasts); `seq` is its number in that stream and
  // `epoch` the stream's epoch, which changes whenever the stream's history is lost.
  // Uplink acks (kAck with seq != 0) and read marks (kControl, event "read") name the stream
  // they are about; empty means "user".
  std::string stream;
  uint64_t epoch = 0;
  // Downlink: retransmitted until the client acks it, on codecs that carry acks
  // (Codec::acksDownlink()); sent once elsewhere.
  bool reliable = false;

  std::string_view data() const { return payload ? std::string_view(*payload) : std::string_view(); }
};

}  // namespace imgate
