// SPDX-License-Identifier: Apache-2.0
// What codec fuzz targets share: an abort-on-failure check (libFuzzer reports the crash with the
// input), an OutBuffer that keeps every byte, and a CodecSink that records messages and checks
// the hello contract (at most one; a query token mirrors the Authorization header).
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/codec.h"

namespace imgate::fuzz {

inline void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

class StringOut final : public OutBuffer {
 public:
  void append(std::string_view bytes) override { data.append(bytes); }
  void appendShared(Bytes bytes) override {
    check(bytes != nullptr);
    data.append(*bytes);
  }
  size_t pending() const override { return data.size(); }
  std::string data;
};

class RecordingSink final : public CodecSink {
 public:
  void onMessage(Message&& message) override {
    check(message.payload != nullptr);
    messages.push_back(std::move(message));
  }
  void onPeerClose(Errc, std::string_view) override {}
  void onActivity() override {}
  void onHello(HttpRequest hello) override {
    check(!hello_seen);
    hello_seen = true;
    if (auto token = hello.queryParam("token")) {
      check(hello.header("authorization") == "Bearer " + *token);
    }
  }
  std::vector<Message> messages;
  bool hello_seen = false;
};

}  // namespace imgate::fuzz
