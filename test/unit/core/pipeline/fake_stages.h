// SPDX-License-Identifier: Apache-2.0
// Test-only fakes for StageRunner: a host that records every call as a line of text, callbacks
// that forward to the runner the way the Connection does, and a scripted stage whose every hook
// is a lambda (pass / pause / drop / reject / throw, calling callbacks from inside the hook).
// Everything records into one shared Trace so tests can assert the interleaving of stage hooks
// and host calls.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/stats.h"
#include "imgate/sdk/message.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"
#include "pipeline/stage_runner.h"
#include "reload/generation.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::core::pipeline_test {

// One ordered log shared by the host and the stages.
using Trace = std::vector<std::string>;

inline Message textMessage(std::string payload) {
  Message m;
  m.payload = makeBytes(std::move(payload));
  return m;
}

// ---- Counters -------------------------------------------------------------------------------

// The counters are process-wide: tests compare a snapshot taken before with one taken after.
struct CounterSnapshot {
  uint64_t dropped = 0;
  uint64_t rejected = 0;
  uint64_t paused = 0;
  uint64_t pause_timeouts = 0;
  uint64_t bugs = 0;

  static CounterSnapshot take() {
    const CoreCounters& c = StatsRegistry::instance().core();
    CounterSnapshot s;
    s.dropped = c.stage_dropped.load();
    s.rejected = c.stage_rejected.load();
    s.paused = c.stage_paused.load();
    s.pause_timeouts = c.pause_timeouts.load();
    s.bugs = c.bugs.load();
    return s;
  }
  CounterSnapshot since(const CounterSnapshot& before) const {
    return {dropped - before.dropped, rejected - before.rejected, paused - before.paused,
            pause_timeouts - before.pause_timeouts, bugs - before.bugs};
  }
};

// ---- Host -----------------------------------------------------------------------------------

// Records every call. Like the Connection, a rejection closes the session (alive() turns false)
// unless `stay_alive_after_reject` is set, and a reply can be routed back through the runner's
// outbound check (`replies_go_outbound`), which is what Connection::sendReply does.
class FakeHost final : public StageRunnerHost {
 public:
  explicit FakeHost(Trace& trace) : trace_(trace) {}

  void openAccepted() override { trace_.push_back("host.openAccepted"); }
  StageCallbacks& stageCallbacks() override { return *callbacks; }
  void openRejected(Errc code, const std::string& reason, std::string_view stage) override {
    trace_.push_back("host.openRejected " + std::string(errcName(code)) + " '" + reason + "' " +
                     std::string(stage));
    if (!stay_alive_after_reject) {
      alive_ = false;
    }
  }
  void messageRejected(Errc code, const std::string& reason, std::string_view stage) override {
    trace_.push_back("host.messageRejected " + std::string(errcName(code)) + " '" + reason +
                     "' " + std::string(stage));
    if (!stay_alive_after_reject) {
      alive_ = false;
    }
  }
  void sendReply(const Message& message) override {
    if (replies_go_outbound && runner != nullptr && !runner->outboundAllowed(message)) {
      trace_.push_back("host.replyRefused " + std::string(message.data()));
      return;
    }
    trace_.push_back("host.sendReply " + std::string(message.data()));
  }
  void pauseChanged(bool paused, bool during_open) override {
    trace_.push_back(std::string("host.pauseChanged ") + (paused ? "on" : "off") +
                     (during_open ? " open" : " message"));
  }
  void setReading(bool on) override {
    trace_.push_back(std::string("host.setReading ") + (on ? "on" : "off"));
  }
  void atMessageBoundary() override {
    trace_.push_back("host.atMessageBoundary");
    if (on_boundary) {
      on_boundary();
    }
  }
  bool alive() const override { return alive_; }

  void kill() { alive_ = false; }

  StageRunner* runner = nullptr;
  StageCallbacks* callbacks = nullptr;
  bool stay_alive_after_reject = false;
  bool replies_go_outbound = false;
  std::function<void()> on_boundary;

 private:
  Trace& trace_;
  bool alive_ = true;
};

// ---- Callbacks ------------------------------------------------------------------------------

class FakeSession final : public Session {
 public:
   SessionExpiry expiry() const override { return {}; }
  uint64_t id() const override { return 0x101; }
  std::string_view protocol() const override { return "proto.test"; }
  std::string_view listener() const override { return "test"; }
  std::string_view peerAddress() const override { return "127.0.0.1:1"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view) const override {
    return std::nullopt;
  }
  std::optional<std::string> handshakeQuery(std::string_view) const override {
    return std::nullopt;
  }
  const std::vector<std::string>& offeredSubprotocols() const override { return subprotocols_; }

 private:
  Identity identity_;
  std::vector<std::string> subprotocols_;
};

// Stages in these tests never schedule timers; a call to the dispatcher fails the test.
class UnusedDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    ADD_FAILURE() << "unexpected Dispatcher::schedule";
    return nullptr;
  }
  void post(std::function<void()>) override { ADD_FAILURE() << "unexpected Dispatcher::post"; }
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point{};
  }
  int64_t wallMs() const override { return 0; }
};

// Forwards to the runner exactly as Connection does (resume / reject / reply).
class ForwardingCallbacks final : public StageCallbacks {
 public:
   void setExpiry(SessionExpiry) override {}
  Upstreams& upstreams() override { return fake_upstreams; }
  Hub& hub() override { return fake_hub_; }
  ::imgate::mocks::NullHub fake_hub_;
  ::imgate::mocks::FakeUpstreams fake_upstreams;
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { runner->resume(); }
  void reject(Errc code, std::string reason) override { runner->reject(code, std::move(reason)); }
  void close(Errc code, std::string reason) override { closed.emplace_back(code, std::move(reason)); }
  std::vector<std::pair<Errc, std::string>> closed;
  void reply(Message message) override { runner->reply(std::move(message)); }
  void setIdentity(Identity identity, std::vector<std::string>) override {
    identity_ = std::move(identity);
  }

  StageRunner* runner = nullptr;

 private:
  FakeSession session_;
  UnusedDispatcher dispatcher_;
  Identity identity_;
};

// ---- Scripted stage -------------------------------------------------------------------------

// What each hook of one stage does. Unset hooks pass. The callbacks given to a hook are the
// stage's own StageCallbacks, so a script can call reply / resume / reject "from inside".
struct StageScript {
  std::function<Verdict(StageCallbacks&)> on_open;
  std::function<Verdict(StageCallbacks&, Message&)> on_message;
  std::function<Verdict(StageCallbacks&, const Message&)> on_outbound;
  std::function<void()> on_close;
};

class ScriptedStage final : public Stage {
 public:
  ScriptedStage(std::string name, std::shared_ptr<StageScript> script, Trace& trace,
                StageCallbacks& callbacks)
      : name_(std::move(name)), script_(std::move(script)), trace_(trace),
        callbacks_(callbacks) {}

  Verdict onOpen() override {
    trace_.push_back(name_ + ".onOpen");
    return script_->on_open ? script_->on_open(callbacks_) : Verdict::pass();
  }
  Verdict onMessage(Message& message) override {
    trace_.push_back(name_ + ".onMessage " + std::string(message.data()));
    return script_->on_message ? script_->on_message(callbacks_, message) : Verdict::pass();
  }
  Verdict onOutbound(const Message& message) override {
    trace_.push_back(name_ + ".onOutbound " + std::string(message.data()));
    return script_->on_outbound ? script_->on_outbound(callbacks_, message) : Verdict::pass();
  }
  void onClose() override {
    trace_.push_back(name_ + ".onClose");
    if (script_->on_close) {
      script_->on_close();
    }
  }

 private:
  std::string name_;
  std::shared_ptr<StageScript> script_;
  Trace& trace_;
  StageCallbacks& callbacks_;
};

// The compiled config of one scripted stage. `create` chooses what createStage does.
class ScriptedStageConfig final : public StageConfig {
 public:
  enum class Create : uint8_t { kOk, kNull, kThrow };

  ScriptedStageConfig(std::string name, Trace& trace)
      : name_(std::move(name)), script_(std::make_shared<StageScript>()), trace_(trace) {}

  StagePtr createStage(StageCallbacks& callbacks) const override {
    ++created_;
    switch (create) {
      case Create::kOk: break;
      case Create::kNull: return nullptr;
      case Create::kThrow: throw std::runtime_error("createStage failed on purpose");
    }
    return std::make_unique<ScriptedStage>(name_, script_, trace_, callbacks);
  }
  bool wantsOutbound() const override { return wants_outbound; }

  StageScript& script() { return *script_; }
  int created() const { return created_; }

  Create create = Create::kOk;
  bool wants_outbound = false;

 private:
  std::string name_;
  std::shared_ptr<StageScript> script_;
  Trace& trace_;
  mutable int created_ = 0;
};

// Builds a Pipeline by hand, as buildGeneration would: instance names are "<pipeline>[i]:name".
class PipelineBuilder {
 public:
  explicit PipelineBuilder(Trace& trace, std::string name = "p") : trace_(trace) {
    pipeline_.name = std::move(name);
  }

  ScriptedStageConfig& add(const std::string& name) {
    auto config = std::make_shared<ScriptedStageConfig>(name, trace_);
    configs_.push_back(config);
    CompiledStage cs;
    cs.module = "test." + name;
    cs.instance = pipeline_.name + "[" + std::to_string(pipeline_.stages.size()) + "]:" + name;
    cs.config = config;
    pipeline_.stages.push_back(std::move(cs));
    return *config;
  }

  // Snapshot of the pipeline; each stage's wants_outbound from its config and the pipeline's as
  // their OR, as the loader computes them.
  std::shared_ptr<const Pipeline> build() const {
    auto p = std::make_shared<Pipeline>(pipeline_);
    p->wants_outbound = false;
    for (size_t i = 0; i < configs_.size(); ++i) {
      p->stages[i].wants_outbound = configs_[i]->wants_outbound;
      p->wants_outbound = p->wants_outbound || configs_[i]->wants_outbound;
    }
    return p;
  }

 private:
  Trace& trace_;
  Pipeline pipeline_;
  std::vector<std::shared_ptr<ScriptedStageConfig>> configs_;
};

// ---- Verdict helpers ------------------------------------------------------------------------

inline std::function<Verdict(StageCallbacks&, Message&)> returns(Verdict v) {
  return [v](StageCallbacks&, Message&) { return v; };
}
inline std::function<Verdict(StageCallbacks&)> opens(Verdict v) {
  return [v](StageCallbacks&) { return v; };
}

}  // namespace imgate::core::pipeline_test
