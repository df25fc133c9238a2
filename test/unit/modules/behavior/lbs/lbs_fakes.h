// SPDX-License-Identifier: Apache-2.0
// Test fakes for the lbs module: a Hub with a settable node load, an HttpExchange that records
// the answer, and a LoadContext; plus loading a YAML section through the core's real schema
// checker, as the core does before compile().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/codec.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/module.h"
#include "imgate/sdk/runtime.h"
#include "modules/behavior/lbs/lbs.h"
#include "modules/behavior/lbs/lbs_config.h"

const imgate::ModuleFactory& imgate_module_lbs();

namespace imgate::mod::lbs::testing {

class FakeHub final : public Hub {
 public:
  void push(const std::string&, PushTarget, Message,
            std::function<void(PushResult)> done) override {
    if (done) {
      done(PushResult{});
    }
  }
  std::vector<SessionInfo> userSessions(const std::string&, const std::string&) override {
    return {};
  }
  void kick(const std::string&, const std::string&, uint64_t, std::string,
            std::function<void(uint64_t)> done) override {
    if (done) {
      done(0);
    }
  }
  std::vector<std::string> join(const std::string&, const std::string&,
                                const std::vector<std::string>& users) override {
    return users;
  }
  std::vector<std::string> leave(const std::string&, const std::string&,
                                 const std::vector<std::string>& users) override {
    return users;
  }
  std::vector<std::string> roomMembers(const std::string&, const std::string&) override {
    return {};
  }
  HubStats stats(const std::string&) override { return {}; }
  NodeLoad nodeLoad() override {
    ++load_calls;
    return load;
  }

  NodeLoad load;
  int load_calls = 0;
};

class FakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    return std::make_unique<Timer>();
  }
  void post(std::function<void()> cb) override { cb(); }
  std::chrono::steady_clock::time_point now() const override { return {}; }
  int64_t wallMs() const override { return 0; }
};

class FakeExchange final : public HttpExchange {
 public:
  FakeExchange(HttpRequest request, FakeHub& hub, std::string location = "/v1/lbs")
      : request_(std::move(request)), location_(std::move(location)), hub_(hub) {}

  const HttpRequest& request() const override { return request_; }
  std::string_view location() const override { return location_; }
  void respond(HttpResponse response) override {
    ++responses;
    response_ = std::move(response);
  }
  void upgrade(CodecPtr, HttpResponse, std::vector<std::string>) override { ++upgrades; }
  void detach(std::string, CodecPtr, HttpResponse) override {}
  void poll(std::string_view, std::chrono::milliseconds, DetachedCallback) override {}
  void feed(std::string_view, std::string, DetachedCallback) override {}
  void attach(std::string, CodecPtr, HttpResponse, HttpResponse) override {}
  bool alive() const override { return true; }
  Hub& hub() override { return hub_; }
  Dispatcher& dispatcher() override { return dispatcher_; }

  const HttpResponse& response() const { return response_; }
  std::string header(std::string_view name) const {
    for (const auto& h : response_.headers) {
      if (h.name == name) {
        return h.value;
      }
    }
    return "";
  }

  int responses = 0;
  int upgrades = 0;

 private:
  HttpRequest request_;
  std::string location_;
  FakeHub& hub_;
  FakeDispatcher dispatcher_;
  HttpResponse response_;
};

class FakeContext final : public LoadContext, public Logger, public Stats {
 public:
  std::string_view instanceName() const override { return "edge:/v1/lbs"; }
  std::string_view configDir() const override { return config_dir; }
  Logger& log() override { return *this; }
  Stats& stats() override { return *this; }
  bool hasUpstream(std::string_view) const override { return false; }
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(level, std::string(message));
  }
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
  bool logged(std::string_view part) const {
    for (const auto& line : lines) {
      if (line.second.find(part) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  std::string config_dir = ".";
  std::vector<std::pair<LogLevel, std::string>> lines;

 private:
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

inline const ProtocolFactory& factory() {
  return static_cast<const ProtocolFactory&>(imgate_module_lbs());
}

// A YAML section validated against the module's schema, kept alive with its document.
struct Section {
  std::unique_ptr<core::config::ValidatedSection> view;
  std::string errors;  // schema errors, formatted; empty when valid
};

inline Section validate(const std::string& yaml) {
  Section out;
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    out.errors = core::config::formatErrors(doc.error());
    out.view = std::make_unique<core::config::ValidatedSection>();
    return out;
  }
  core::config::Errors errs;
  out.view = core::config::validate(doc->root, lbsSchema(), "lbs", errs);
  out.errors = core::config::formatErrors(errs);
  return out;
}

// The options for `yaml`, or the schema / compile error as a message.
inline Result<LbsOptions> options(const std::string& yaml, FakeContext* context = nullptr) {
  Section section = validate(yaml);
  if (!section.errors.empty()) {
    return fail(Errc::kInvalidConfig, "schema: " + section.errors);
  }
  FakeContext local;
  return buildOptions(*section.view, context != nullptr ? *context : local);
}

// The error message for a config that must fail (schema or compile); "" when it loads.
inline std::string loadError(const std::string& yaml) {
  auto r = options(yaml);
  return r ? std::string() : r.error().message;
}

inline HttpRequest get(std::string query, std::string peer = "203.0.113.9:40000") {
  HttpRequest r;
  r.method = "GET";
  r.path = "/v1/lbs";
  r.query = std::move(query);
  r.target = r.path + (r.query.empty() ? "" : "?" + r.query);
  r.peer = std::move(peer);
  return r;
}

}  // namespace imgate::mod::lbs::testing
