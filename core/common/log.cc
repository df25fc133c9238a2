// SPDX-License-Identifier: Apache-2.0
#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

namespace imgate::core {

Log& Log::instance() {
  static Log log;
  return log;
}

void Log::configure(LogLevel level, LogFormat format, int fd) {
  level_.store(static_cast<int>(level));
  format_.store(static_cast<int>(format));
  fd_.store(fd);
}

std::string_view logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kNotice: return "notice";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kCrit: return "crit";
    case LogLevel::kAlert: return "alert";
  }
  return "info";
}

bool parseLogLevel(std::string_view name, LogLevel& out) {
  for (int i = 0; i <= static_cast<int>(LogLevel::kAlert); ++i) {
    if (logLevelName(static_cast<LogLevel>(i)) == name) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

void jsonEscape(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        if (c < 0x20) {
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        } else {
          out.push_back(ch);
        }
    }
  }
}

std::string jsonQuote(std::string_view s) {
  std::string out = "\"";
  jsonEscape(out, s);
  out.push_back('"');
  return out;
}

void Log::write(LogLevel level, std::string_view message) {
  if (level >= LogLevel::kWarn) {
    errors_.fetch_add(1, std::memory_order_relaxed);
  }
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  char ts[64];
  snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1,
           t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  std::string line;
  line.reserve(message.size() + 64);
  if (static_cast<LogFormat>(format_.load(std::memory_order_relaxed)) == LogFormat::kJson) {
    line.append("{\"ts\":\"").append(ts).append("\",\"level\":\"").append(logLevelName(level));
    line.append("\",\"pid\":").append(std::to_string(getpid())).append(",\"msg\":\"");
    jsonEscape(line, message);
    line.append("\"}\n");
  } else {
    line.append(ts).append(" [").append(logLevelName(level)).append("] ");
    line.append(std::to_string(getpid())).append(": ");
    line.append(message).push_back('\n');
  }
  const int fd = fd_.load(std::memory_order_relaxed);
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd, line.data() + off, line.size() - off);
    if (n <= 0) {
      break;
    }
    off += static_cast<size_t>(n);
  }
}

void PrefixLogger::log(LogLevel level, std::string_view message) {
  if (Log::instance().enabled(level)) {
    Log::instance().write(level, format(prefix_, message));
  }
}

}  // namespace imgate::core
