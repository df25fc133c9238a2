// SPDX-License-Identifier: Apache-2.0
// Test-only ConfigView and LoadContext for compile(). The view fills defaults from the module's
// schema, as the core's schema checker does, and takes explicit values as YAML-like scalars.
// Schema checks themselves (types, ranges) are the core's job and not repeated here.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::test::http_push {

class FakeConfigView final : public ConfigView {
 public:
  explicit FakeConfigView(std::span<const ParamSpec> schema) {
    for (const auto& spec : schema) {
      if (!spec.default_value.empty()) {
        scalars_[std::string(spec.key)] = std::string(spec.default_value);
      }
    }
  }

  FakeConfigView& set(const std::string& key, std::string value) {
    scalars_[key] = std::move(value);
    explicit_[key] = true;
    return *this;
  }
  FakeConfigView& setList(const std::string& key, std::vector<std::string> values) {
    lists_[key] = std::move(values);
    explicit_[key] = true;
    return *this;
  }

  std::string location() const override { return "test.yaml:1:1 section"; }
  std::string location(std::string_view key) const override {
    return "test.yaml:2:3 section." + std::string(key);
  }
  bool has(std::string_view key) const override { return explicit_.count(std::string(key)) > 0; }
  bool getBool(std::string_view key) const override { return scalar(key) == "true"; }
  int64_t getInt(std::string_view key) const override {
    const std::string v = scalar(key);
    return v.empty() ? 0 : std::stoll(v);
  }
  std::string getString(std::string_view key) const override { return scalar(key); }
  std::chrono::milliseconds getDuration(std::string_view) const override {
    return std::chrono::milliseconds(0);
  }
  int64_t getSize(std::string_view key) const override { return getInt(key); }
  Rate getRate(std::string_view) const override { return {}; }
  std::vector<std::string> getStringList(std::string_view key) const override {
    const auto it = lists_.find(std::string(key));
    return it == lists_.end() ? std::vector<std::string>() : it->second;
  }
  const ConfigView& child(std::string_view) const override { return *this; }
  std::vector<const ConfigView*> children(std::string_view) const override { return {}; }

 private:
  std::string scalar(std::string_view key) const {
    const auto it = scalars_.find(std::string(key));
    return it == scalars_.end() ? std::string() : it->second;
  }

  std::map<std::string, std::string> scalars_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, bool> explicit_;
};

class FakeLogger final : public Logger {
 public:
  bool enabled(LogLevel) const override { return true; }
  void log(LogLevel level, std::string_view message) override {
    lines.emplace_back(level, std::string(message));
  }
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class FakeStats final : public Stats {
 public:
  Counter& counter(std::string_view name) override { return counters_[std::string(name)]; }
  // 0 for a counter never registered.
  uint64_t value(const std::string& name) const {
    const auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second.value();
  }
  bool registered(const std::string& name) const { return counters_.count(name) > 0; }

 private:
  std::map<std::string, Counter> counters_;
};

class FakeLoadContext final : public LoadContext {
 public:
  bool hasUpstream(std::string_view group) const override {
    return upstream_groups.count(std::string(group)) > 0;
  }
  std::set<std::string> upstream_groups;
  std::string_view instanceName() const override { return instance; }
  std::string_view configDir() const override { return config_dir; }
  std::string instance = "push:/v1/";
  std::string config_dir = ".";
  Logger& log() override { return logger; }
  Stats& stats() override { return stats_; }

  FakeLogger logger;
  FakeStats stats_;
};

}  // namespace imgate::test::http_push
