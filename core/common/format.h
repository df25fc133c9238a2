// SPDX-License-Identifier: Apache-2.0
// Tiny formatting helper (g++ 12 has no <format>): concatenates its arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace imgate::core {

namespace format_detail {
inline void put(std::string& out, std::string_view s) { out.append(s); }
inline void put(std::string& out, const char* s) { out.append(s); }
inline void put(std::string& out, const std::string& s) { out.append(s); }
inline void put(std::string& out, char c) { out.push_back(c); }
inline void put(std::string& out, bool b) { out.append(b ? "true" : "false"); }
template <class T>
  requires std::is_arithmetic_v<T>
inline void put(std::string& out, T v) {
  out.append(std::to_string(v));
}
}  // namespace format_detail

template <class... Args>
std::string format(Args&&... args) {
  std::string out;
  (format_detail::put(out, std::forward<Args>(args)), ...);
  return out;
}

// "name" with quotes, for log values.
inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  out.append(s);
  out.push_back('"');
  return out;
}

}  // namespace imgate::core
