// SPDX-License-Identifier: Apache-2.0
// Test-only fakes for the auth.backend tests: a Session, a Dispatcher with simulated time,
// recording StageCallbacks, a LoadContext with private counters, and config compiled from
// inline YAML through the core's real schema checker.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/http.h"
#include "imgate/sdk/stage.h"
#include "modules/behavior/auth_backend/auth_backend_stage.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::auth_backend::test {

// Simulated time: wall_ms is the clock (now() follows it); timers run only from advance(), in
// due order, each seeing the clock at its due time.
class FakeDispatcher final : public Dispatcher {
 public:
  TimerPtr schedule(std::chrono::milliseconds delay, std::function<void()> cb) override {
    auto entry =
        std::make_shared<Entry>(Entry{wall_ms + delay.count(), next_seq_++, std::move(cb)});
    entries_.push_back(entry);
    return std::make_unique<Handle>(entry);
  }
  void post(std::function<void()> cb) override {
    (void)cb;
    ADD_FAILURE() << "auth.backend should not post";
  }
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(wall_ms));
  }
  int64_t wallMs() const override { return wall_ms; }

  void advance(int64_t ms) { advanceTo(wall_ms + ms); }
  void advanceTo(int64_t target_ms) {
    for (;;) {
      std::erase_if(entries_, [](const std::shared_ptr<Entry>& e) { return !e->cb; });
      std::shared_ptr<Entry> next;
      for (const auto& e : entries_) {
        if (e->due_ms <= target_ms &&
            (!next || e->due_ms < next->due_ms ||
             (e->due_ms == next->due_ms && e->seq < next->seq))) {
          next = e;
        }
      }
      if (!next) {
        break;
      }
      wall_ms = std::max(wall_ms, next->due_ms);
      auto cb = std::move(next->cb);  // the callback may destroy its own handle
      next->cb = nullptr;
      cb();
    }
    wall_ms = std::max(wall_ms, target_ms);
  }
  size_t pending() const {
    return static_cast<size_t>(std::count_if(
        entries_.begin(), entries_.end(), [](const auto& e) { return static_cast<bool>(e->cb); }));
  }

  int64_t wall_ms = 1'700'000'000'000;

 private:
  struct Entry {
    int64_t due_ms;
    uint64_t seq;
    std::function<void()> cb;
  };
  class Handle final : public Timer {
   public:
    explicit Handle(std::weak_ptr<Entry> entry) : entry_(std::move(entry)) {}
    ~Handle() override {
      if (auto e = entry_.lock()) {
        e->cb = nullptr;
      }
    }

   private:
    std::weak_ptr<Entry> entry_;
  };
  std::vector<std::shared_ptr<Entry>> entries_;
  uint64_t next_seq_ = 0;
};

class FakeSession final : public Session {
 public:
  FakeSession() : session_id(next()++) {}
  static uint64_t& next() {
    static uint64_t id = 5000;
    return id;
  }
  uint64_t id() const override { return session_id; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "edge"; }
  std::string_view peerAddress() const override { return "192.0.2.7:50000"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view name) const override {
    for (const auto& [k, v] : headers) {
      if (http_detail::iequals(k, name)) {
        return std::string_view(v);
      }
    }
    return std::nullopt;
  }
  std::optional<std::string> handshakeQuery(std::string_view name) const override {
    const auto it = query.find(std::string(name));
    if (it == query.end()) {
      return std::nullopt;
    }
    return it->second;
  }
  const std::vector<std::string>& offeredSubprotocols() const override { return subprotocols; }
  int64_t openedAtMs() const override { return opened_at_ms; }

  uint64_t session_id;
  std::vector<std::pair<std::string, std::string>> headers;
  std::map<std::string, std::string> query;
  std::vector<std::string> subprotocols;
  Identity identity_;
  int64_t opened_at_ms = 0;  // the handshake runs until a test accepts the session
};

class FakeLogger final : public Logger {
 public:
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(level, std::string(message));
  }
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class FakeStageCallbacks final : public StageCallbacks {
 public:
  Logger& log() override { return logger != nullptr ? *logger : StageCallbacks::log(); }
  Logger* logger = nullptr;
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++resumed; }
  void reject(Errc code, std::string reason) override { rejected.emplace_back(code, reason); }
  void close(Errc code, std::string reason) override { closed.emplace_back(code, reason); }
  void reply(Message message) override { replies.push_back(std::move(message)); }
  void setIdentity(Identity identity) override {
    ++identity_calls;
    session_.identity_ = std::move(identity);
  }
  Upstreams& upstreams() override { return upstreams_; }
  Hub& hub() override { return hub_; }

  FakeSession session_;
  FakeDispatcher dispatcher_;
  mocks::FakeUpstreams upstreams_;
  mocks::NullHub hub_;
  int resumed = 0;
  int identity_calls = 0;
  std::vector<std::pair<Errc, std::string>> rejected;
  std::vector<std::pair<Errc, std::string>> closed;
  std::vector<Message> replies;
};

class FakeStats final : public Stats {
 public:
  Counter& counter(std::string_view name) override {
    auto& slot = counters_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }
  uint64_t value(const std::string& name) const {
    const auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second->value();
  }

 private:
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

class FakeLoadContext final : public LoadContext {
 public:
  std::string_view instanceName() const override { return "im[0]:auth.backend"; }
  std::string_view configDir() const override { return "."; }
  Logger& log() override { return logger; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view group) const override {
    return groups.count(std::string(group)) > 0;
  }
  std::set<std::string> groups = {"auth"};
  FakeLogger logger;
  FakeStats stats_;
};

// The section as the core would hand it to compile(): parsed and validated against the real
// schema. Schema errors come back as one kInvalidConfig error.
inline Result<StageConfigPtr> compileYaml(const std::string& yaml, FakeLoadContext& context) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(doc.error()));
  }
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, backendSchema(), "auth.backend", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(errors));
  }
  return compileBackend(*section, context);
}

}  // namespace imgate::mod::auth_backend::test
