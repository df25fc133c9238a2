// SPDX-License-Identifier: Apache-2.0
// Test doubles for the tcp_frame tests, and a driver that feeds a codec the way the core does
// (unconsumed bytes kept; after onHello the session is opened, then decoding goes on).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/codec.h"
#include "modules/proto/tcp_frame/tcp_frame_codec.h"

namespace imgate::mod::tcp_frame::testing {

class FakeSink final : public CodecSink {
 public:
  void onMessage(Message&& message) override { messages.push_back(std::move(message)); }
  void onPeerClose(Errc code, std::string_view reason) override {
    peer_closed = true;
    close_code = code;
    close_reason = std::string(reason);
  }
  void onActivity() override { ++activity; }
  void onHello(HttpRequest hello_request) override {
    ++hellos;
    hello = std::move(hello_request);
  }

  std::vector<Message> messages;
  std::optional<HttpRequest> hello;
  int hellos = 0;
  bool peer_closed = false;
  Errc close_code = Errc::kInternal;
  std::string close_reason;
  int activity = 0;
};

class FakeOut final : public OutBuffer {
 public:
  void append(std::string_view bytes) override { data.append(bytes); }
  void appendShared(Bytes bytes) override {
    if (bytes) {
      data.append(*bytes);
    }
  }
  size_t pending() const override { return data.size() + extra_pending; }

  std::string data;
  size_t extra_pending = 0;
};

inline SessionOpened testOpened() {
  SessionOpened opened;
  opened.session_id = 77;
  opened.server_time_ms = 1700000000123;
  opened.idle_timeout = std::chrono::milliseconds(120000);
  opened.ping_interval = std::chrono::milliseconds(0);
  opened.identity = Identity{"app1", "u1", "phone"};
  return opened;
}

// What one run of a byte stream produced.
struct Outcome {
  std::vector<std::string> messages;  // described, for comparison
  std::string out;
  std::optional<HttpRequest> hello;
  std::optional<Errc> error;
  bool peer_closed = false;
  int activity = 0;
  int hellos = 0;
};

inline std::string describe(const Message& m) {
  std::string s = std::to_string(static_cast<int>(m.kind)) + "|" +
                  std::to_string(static_cast<int>(m.type)) + "|" +
                  std::to_string(static_cast<int>(m.to_kind)) + "|" + m.to + "|" + m.event +
                  "|" + m.id + "|" + std::to_string(m.seq) + "|" + m.stream + "|";
  for (const auto& [k, v] : m.meta) {
    s += k + "=" + v + ";";
  }
  s += "|";
  s += m.data();
  return s;
}

// Feeds `input` cut at `cuts` (sorted offsets); opens the session after the hello as the core
// does (onOpened, then decoding of the kept bytes resumes).
inline Outcome run(const std::string& input, const std::vector<size_t>& cuts,
                   const TcpFrameOptions& options = {}) {
  TcpFrameCodec codec(options);
  FakeSink sink;
  FakeOut out;
  Outcome outcome;
  std::string buffered;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  bool opened = false;
  for (size_t end : ends) {
    buffered.append(input, from, end - from);
    from = end;
    while (!outcome.error) {
      auto used = codec.decode(buffered, sink, out);
      if (!used) {
        outcome.error = used.error().code;
        codec.encodeClose(used.error().code, used.error().message, out);
        break;
      }
      buffered.erase(0, *used);
      if (sink.hellos > 0 && !opened) {
        opened = true;
        codec.onOpened(testOpened(), out);
        continue;
      }
      break;
    }
    if (outcome.error) {
      break;
    }
  }
  for (const Message& m : sink.messages) {
    outcome.messages.push_back(describe(m));
  }
  outcome.out = std::move(out.data);
  outcome.hello = std::move(sink.hello);
  outcome.peer_closed = sink.peer_closed;
  outcome.activity = sink.activity;
  outcome.hellos = sink.hellos;
  return outcome;
}

inline bool sameOutcome(const Outcome& a, const Outcome& b) {
  return a.messages == b.messages && a.out == b.out && a.error == b.error &&
         a.peer_closed == b.peer_closed && a.activity == b.activity && a.hellos == b.hellos &&
         a.hello.has_value() == b.hello.has_value() &&
         (!a.hello || (a.hello->query == b.hello->query && a.hello->target == b.hello->target));
}

}  // namespace imgate::mod::tcp_frame::testing
