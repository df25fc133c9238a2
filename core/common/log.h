// SPDX-License-Identifier: Apache-2.0
// The process log: levels, text or JSON lines, one write(2) per line so lines from several
// threads never interleave.
#pragma once

#include <atomic>
#include <cstdio>
#include <string>
#include <string_view>

#include "imgate/sdk/runtime.h"

namespace imgate::core {

enum class LogFormat : uint8_t { kText, kJson };

class Log {
 public:
  static Log& instance();

  // Not thread-safe with concurrent writes; called by the main thread at start and reload.
  void configure(LogLevel level, LogFormat format, int fd);
  bool enabled(LogLevel level) const {
    return static_cast<int>(level) >= level_.load(std::memory_order_relaxed);
  }
  void write(LogLevel level, std::string_view message);
  void setAccessLog(bool on) { access_.store(on, std::memory_order_relaxed); }
  bool accessLog() const { return access_.load(std::memory_order_relaxed); }
  // Counts lines at warn and above, for /metrics.
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> level_{static_cast<int>(LogLevel::kInfo)};
  std::atomic<int> format_{static_cast<int>(LogFormat::kText)};
  std::atomic<int> fd_{2};
  std::atomic<bool> access_{true};
  std::atomic<uint64_t> errors_{0};
};

std::string_view logLevelName(LogLevel level);
bool parseLogLevel(std::string_view name, LogLevel& out);

// A Logger that prefixes every line (e.g. "auth.jwt im[0]: ").
class PrefixLogger final : public Logger {
 public:
  explicit PrefixLogger(std::string prefix) : prefix_(std::move(prefix)) {}
  bool enabled(LogLevel level) const override { return Log::instance().enabled(level); }
  void log(LogLevel level, std::string_view message) override;

 private:
  std::string prefix_;
};

// Appends `s` to `out` as a JSON string literal body (without quotes).
void jsonEscape(std::string& out, std::string_view s);
std::string jsonQuote(std::string_view s);

}  // namespace imgate::core

#define IMGATE_LOG(level, ...)                                              \
  do {                                                                      \
    if (::imgate::core::Log::instance().enabled(level)) {                   \
      ::imgate::core::Log::instance().write(level, ::imgate::core::format(__VA_ARGS__)); \
    }                                                                       \
  } while (0)
#define LOG_DEBUG(...) IMGATE_LOG(::imgate::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) IMGATE_LOG(::imgate::LogLevel::kInfo, __VA_ARGS__)
#define LOG_NOTICE(...) IMGATE_LOG(::imgate::LogLevel::kNotice, __VA_ARGS__)
#define LOG_WARN(...) IMGATE_LOG(::imgate::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) IMGATE_LOG(::imgate::LogLevel::kError, __VA_ARGS__)
#define LOG_ALERT(...) IMGATE_LOG(::imgate::LogLevel::kAlert, __VA_ARGS__)

#include "common/format.h"
