// SPDX-License-Identifier: Apache-2.0
// Shared fakes of SDK services for stage tests: a recording Upstreams (the test completes the
// calls), a recording Hub, a Dispatcher with simulated time, a Session, recording
// StageCallbacks, and a LoadContext with a recording Logger and private counters.
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

#include "imgate/sdk/http.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/upstream.h"

namespace imgate::mocks {

class FakeUpstreams final : public Upstreams {
 public:
  struct Call {
    std::string group;
    UpstreamRequest request;
    UpstreamCallback done;
  };

  bool has(std::string_view group) const override { return groups.count(std::string(group)) > 0; }
  void call(std::string_view group, UpstreamRequest request, UpstreamCallback done) override {
    calls.push_back(Call{std::string(group), std::move(request), std::move(done)});
  }
  // Completes the oldest pending call.
  void complete(Result<UpstreamResponse> result) {
    Call c = std::move(calls.front());
    calls.erase(calls.begin());
    c.done(std::move(result));
  }

  std::set<std::string> groups;
  std::vector<Call> calls;
};

}  // namespace imgate::mocks

namespace imgate::mocks {

// A Hub that records pushes and reports every user offline; for stage tests.
class NullHub final : public Hub {
 public:
  struct Push {
    std::string app;
    PushTarget target;
    Message message;
  };
  void push(const std::string& app, PushTarget target, Message message,
            std::function<void(PushResult)> done) override {
    pushes.push_back(Push{app, std::move(target), std::move(message)});
    if (done) {
      done(PushResult{});
    }
  }
  std::vector<SessionInfo> userSessions(const std::string&, const std::string&) override { return {}; }
  void kick(const std::string&, const std::string&, uint64_t, std::string,
            std::function<void(uint64_t)> done) override {
    if (done) {
      done(0);
    }
  }
  std::vector<std::string> join(const std::string& app, const std::string& room,
                                const std::vector<std::string>& users) override {
    joins.push_back({app, room, users});
    return {};
  }
  std::vector<std::string> leave(const std::string&, const std::string&,
                                 const std::vector<std::string>& users) override {
    return users;
  }
  std::vector<std::string> roomMembers(const std::string&, const std::string&) override { return {}; }
  HubStats stats(const std::string&) override { return {}; }

  struct Join {
    std::string app;
    std::string room;
    std::vector<std::string> users;
  };
  std::vector<Push> pushes;
  std::vector<Join> joins;
};

}  // namespace imgate::mocks

namespace imgate::mocks {

// Simulated time: wall_ms is the clock (now() follows it); timers run only from advance() and
// advanceTo(), in due order (ties in scheduling order), each seeing the clock at its due time.
// A callback may schedule or cancel timers, its own included. post() fails the test: the
// stages tested with it do not post.
class SimulatedDispatcher final : public Dispatcher {
 public:
  TimerPtr schedule(std::chrono::milliseconds delay, std::function<void()> cb) override {
    auto entry =
        std::make_shared<Entry>(Entry{wall_ms + delay.count(), next_seq_++, std::move(cb)});
    entries_.push_back(entry);
    return std::make_unique<Handle>(entry);
  }
  // A slot is queued as an entry whose callback fires it; its node's index marks it queued.
  void armSlot(TimerSlot& slot, std::chrono::milliseconds delay) override {
    cancelSlot(slot);
    TimerSlot* target = &slot;
    auto entry = std::make_shared<Entry>(Entry{wall_ms + delay.count(), next_seq_++, [target] {
                                                 target->node().index = TimerNode::kNotQueued;
                                                 target->fire();
                                               }});
    entries_.push_back(entry);
    slot.node().index = 0;
    slots_[&slot] = entry;
  }
  void cancelSlot(TimerSlot& slot) override {
    const auto it = slots_.find(&slot);
    if (it != slots_.end()) {
      if (auto e = it->second.lock()) {
        e->cb = nullptr;
      }
      slots_.erase(it);
    }
    slot.node().index = TimerNode::kNotQueued;
  }
  void post(std::function<void()> cb) override {
    (void)cb;
    ADD_FAILURE() << "unexpected Dispatcher::post()";
  }
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(wall_ms));
  }
  int64_t wallMs() const override { return wall_ms; }

  // Moves the clock forward by `ms`, running every timer that falls due on the way.
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
  // Timers scheduled and neither run nor cancelled.
  size_t pending() const {
    return static_cast<size_t>(std::count_if(
        entries_.begin(), entries_.end(), [](const auto& e) { return static_cast<bool>(e->cb); }));
  }
  // Due time of the earliest pending timer, or -1.
  int64_t nextDue() const {
    int64_t due = -1;
    for (const auto& e : entries_) {
      if (e->cb && (due < 0 || e->due_ms < due)) {
        due = e->due_ms;
      }
    }
    return due;
  }

  int64_t wall_ms = 1'700'000'000'000;

 private:
  struct Entry {
    int64_t due_ms;
    uint64_t seq;
    std::function<void()> cb;  // empty once run or cancelled
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
  std::map<const TimerSlot*, std::weak_ptr<Entry>> slots_;
  uint64_t next_seq_ = 0;
};

// A session whose handshake and identity the test sets. Ids are unique in the process, as the
// core's are (process-wide registries keyed by session id rely on it). opened_at_ms is 0, the
// handshake still running, until the test accepts the session.
class FakeSession final : public Session {
 public:
  FakeSession() : session_id(nextId()) {}
  static uint64_t nextId() {
    static uint64_t next = 1000;
    return next++;
  }
  uint64_t id() const override { return session_id; }
  std::string_view protocol() const override { return protocol_name; }
  std::string_view listener() const override { return listener_name; }
  std::string_view peerAddress() const override { return peer; }
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
  SessionExpiry expiry() const override { return expiry_; }

  uint64_t session_id;
  std::string protocol_name = "proto.websocket";
  std::string listener_name = "edge";
  std::string peer = "192.0.2.7:50000";
  std::vector<std::pair<std::string, std::string>> headers;
  std::map<std::string, std::string> query;
  std::vector<std::string> subprotocols;
  Identity identity_;
  int64_t opened_at_ms = 0;
  SessionExpiry expiry_;
};

// Keeps every line; enabled at every level.
class RecordingLogger final : public Logger {
 public:
  bool enabled(LogLevel level) const override {
    (void)level;
    return true;
  }
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(level, std::string(message));
  }
  std::vector<std::pair<LogLevel, std::string>> lines;
};

// Counters private to the test (the core's live as long as the process).
class FakeStats final : public Stats {
 public:
  Counter& counter(std::string_view name) override {
    auto& slot = counters_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }
  // 0 for a counter never asked for.
  uint64_t value(const std::string& name) const {
    const auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second->value();
  }

 private:
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

// A compile() context; upstream groups, config directory and instance name are the test's.
class FakeLoadContext : public LoadContext {
 public:
  virtual ~FakeLoadContext() = default;
  std::string_view instanceName() const override { return instance_name; }
  std::string_view configDir() const override { return config_dir; }
  Logger& log() override { return logger; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view group) const override {
    return groups.count(std::string(group)) > 0;
  }

  std::string instance_name = "test[0]:stage";
  std::string config_dir = ".";
  std::set<std::string> groups;
  RecordingLogger logger;
  FakeStats stats_;
};

// Records what a stage asks of its session: resume/reject/close/reply/setIdentity (the identity
// lands in session_), with a simulated dispatcher, FakeUpstreams and NullHub. log() is silent
// unless `logger` is set. Derive to make a call fail the test instead of being recorded.
class RecordingStageCallbacks : public StageCallbacks {
 public:
  virtual ~RecordingStageCallbacks() = default;
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ++resumed; }
  void reject(Errc code, std::string reason) override {
    rejected.emplace_back(code, std::move(reason));
  }
  void close(Errc code, std::string reason) override {
    closed.emplace_back(code, std::move(reason));
  }
  void reply(Message message) override { replies.push_back(std::move(message)); }
  void setIdentity(Identity identity, std::vector<std::string> rooms) override {
    ++identity_calls;
    session_.identity_ = std::move(identity);
    joined_rooms = std::move(rooms);
  }
  void setExpiry(SessionExpiry expiry) override { session_.expiry_ = expiry; }
  Upstreams& upstreams() override { return upstreams_; }
  Logger& log() override { return logger != nullptr ? *logger : StageCallbacks::log(); }
  Hub& hub() override { return hub_; }

  FakeSession session_;
  SimulatedDispatcher dispatcher_;
  FakeUpstreams upstreams_;
  NullHub hub_;
  Logger* logger = nullptr;
  int resumed = 0;
  int identity_calls = 0;
  std::vector<std::string> joined_rooms;  // the rooms of the last setIdentity
  std::vector<std::pair<Errc, std::string>> rejected;
  std::vector<std::pair<Errc, std::string>> closed;
  std::vector<Message> replies;
};

}  // namespace imgate::mocks
