// SPDX-License-Identifier: Apache-2.0
// Test doubles for the SDK interfaces the websocket module touches. Local to these tests (in
// their own namespace) so they cannot clash with other units' fakes in the shared test binary.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/config.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/module.h"
#include "imgate/sdk/runtime.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::websocket::testing {

class FakeSink final : public CodecSink {
 public:
  void onMessage(Message&& message) override { messages.push_back(std::move(message)); }
  void onPeerClose(Errc code, std::string_view reason) override {
    peer_closed = true;
    close_code = code;
    close_reason = std::string(reason);
  }
  void onActivity() override { ++activity; }
  void onHello(HttpRequest) override {}

  std::vector<Message> messages;
  bool peer_closed = false;
  Errc close_code = Errc::kInternal;
  std::string close_reason;
  int activity = 0;
};

class FakeOut final : public OutBuffer {
 public:
  void append(std::string_view bytes) override { data.append(bytes); }
  void appendShared(Bytes bytes) override {
    ++shared_appends;
    if (bytes) {
      data.append(*bytes);
    }
  }
  size_t pending() const override { return data.size() + extra_pending; }

  std::string data;
  int shared_appends = 0;
  size_t extra_pending = 0;  // simulates a client that does not read
};

class FakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override { return nullptr; }
  void post(std::function<void()> cb) override { posted.push_back(std::move(cb)); }
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
  std::vector<std::function<void()>> posted;
};

class FakeHub final : public Hub {
 public:
  void push(const std::string&, PushTarget, Message, std::function<void(PushResult)>) override {}
  std::vector<SessionInfo> userSessions(const std::string&, const std::string&) override {
    return {};
  }
  void kick(const std::string&, const std::string&, uint64_t, std::string,
            std::function<void(uint64_t)>) override {}
  std::vector<std::string> join(const std::string&, const std::string&,
                                const std::vector<std::string>&) override {
    return {};
  }
  std::vector<std::string> leave(const std::string&, const std::string&,
                                 const std::vector<std::string>&) override {
    return {};
  }
  std::vector<std::string> roomMembers(const std::string&, const std::string&) override {
    return {};
  }
  HubStats stats(const std::string&) override { return {}; }
};

class FakeHttpExchange final : public HttpExchange {
 public:
  explicit FakeHttpExchange(HttpRequest request) : request_(std::move(request)) {}
  const HttpRequest& request() const override { return request_; }
  std::string_view location() const override { return "/ws"; }
  void respond(HttpResponse r) override {
    if (!response && !upgraded) {
      response = std::move(r);
    }
  }
  void upgrade(CodecPtr c, HttpResponse a, std::vector<std::string> offers) override {
    upgraded = true;
    codec = std::move(c);
    accept = std::move(a);
    subprotocols = std::move(offers);
  }
  // Detached sessions: recorded; a test completes a poll or feed by calling its `done`.
  void detach(std::string k, CodecPtr c, HttpResponse a) override {
    detached = true;
    key = std::move(k);
    codec = std::move(c);
    accept = std::move(a);
  }
  void poll(std::string_view k, std::chrono::milliseconds wait, DetachedCallback cb) override {
    ++polls;
    key = std::string(k);
    max_wait = wait;
    done = std::move(cb);
  }
  void feed(std::string_view k, std::string b, DetachedCallback cb) override {
    ++feeds;
    key = std::string(k);
    body = std::move(b);
    done = std::move(cb);
  }
  void attach(std::string k, CodecPtr c, HttpResponse a, HttpResponse u) override {
    attached = true;
    key = std::move(k);
    codec = std::move(c);
    accept = std::move(a);
    unknown = std::move(u);
  }
  // Runs the recorded poll or feed callback once, as the core does, and drops it (it holds the
  // exchange: kept, it would be a reference cycle).
  void complete(DetachedResult result) {
    DetachedCallback cb = std::move(done);
    done = nullptr;
    cb(std::move(result));
  }
  bool alive() const override { return true; }
  Hub& hub() override { return hub_; }
  Dispatcher& dispatcher() override { return dispatcher_; }

  std::optional<HttpResponse> response;
  bool upgraded = false;
  CodecPtr codec;
  HttpResponse accept;
  std::vector<std::string> subprotocols;
  bool detached = false;
  bool attached = false;
  int polls = 0;
  int feeds = 0;
  std::string key;
  std::chrono::milliseconds max_wait{0};
  std::string body;
  DetachedCallback done;
  HttpResponse unknown;

 private:
  HttpRequest request_;
  FakeHub hub_;
  FakeDispatcher dispatcher_;
};

// A ConfigView over scalar strings, with the schema's defaults filled in the way the core does.
class FakeConfigView final : public ConfigView {
 public:
  FakeConfigView(std::span<const ParamSpec> schema, std::map<std::string, std::string> values,
                 std::map<std::string, std::vector<std::string>> lists = {})
      : values_(std::move(values)), lists_(std::move(lists)) {
    for (const ParamSpec& spec : schema) {
      written_[std::string(spec.key)] = values_.count(std::string(spec.key)) != 0 ||
                                        lists_.count(std::string(spec.key)) != 0;
      if (values_.count(std::string(spec.key)) == 0 && !spec.default_value.empty()) {
        values_[std::string(spec.key)] = std::string(spec.default_value);
      }
    }
  }
  std::string location() const override { return "test.yaml:1:1 ws"; }
  std::string location(std::string_view key) const override {
    return "test.yaml:2:3 ws." + std::string(key);
  }
  bool has(std::string_view key) const override {
    auto it = written_.find(std::string(key));
    return it != written_.end() && it->second;
  }
  bool getBool(std::string_view key) const override { return value(key) == "true"; }
  int64_t getInt(std::string_view key) const override { return std::stoll(value(key)); }
  std::string getString(std::string_view key) const override { return value(key); }
  std::chrono::milliseconds getDuration(std::string_view) const override { return {}; }
  int64_t getSize(std::string_view key) const override {
    const std::string v = value(key);
    size_t used = 0;
    const int64_t n = std::stoll(v, &used);
    const std::string unit = v.substr(used);
    if (unit == "KiB" || unit == "k") {
      return n * 1024;
    }
    if (unit == "MiB" || unit == "m") {
      return n * 1024 * 1024;
    }
    return n;
  }
  Rate getRate(std::string_view) const override { return {}; }
  std::vector<std::string> getStringList(std::string_view key) const override {
    auto it = lists_.find(std::string(key));
    return it == lists_.end() ? std::vector<std::string>{} : it->second;
  }
  const ConfigView& child(std::string_view) const override { return *this; }
  std::vector<const ConfigView*> children(std::string_view) const override { return {}; }

 private:
  std::string value(std::string_view key) const {
    auto it = values_.find(std::string(key));
    return it == values_.end() ? std::string("0") : it->second;
  }
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, bool> written_;
};

class FakeLoadContext final : public LoadContext, public Logger, public Stats {
 public:
  bool hasUpstream(std::string_view group) const override { return upstream_groups.count(std::string(group)) > 0; }
  std::set<std::string> upstream_groups;
  std::string_view instanceName() const override { return "ws_test"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return *this; }
  Stats& stats() override { return *this; }
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel, std::string_view message) override { lines.emplace_back(message); }
  Counter& counter(std::string_view name) override {
    auto& slot = counters[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }

  std::vector<std::string> lines;
  std::map<std::string, std::unique_ptr<Counter>> counters;
};

}  // namespace imgate::mod::websocket::testing
