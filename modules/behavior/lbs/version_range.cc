// SPDX-License-Identifier: Apache-2.0
#include "version_range.h"

#include <algorithm>
#include <charconv>

namespace imgate::mod::lbs {
namespace {

constexpr size_t kMaxVersionText = 64;
constexpr size_t kMaxParts = 4;
constexpr uint32_t kMaxPart = 999'999'999;

bool isDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isIdentifierChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

// Semantic Versioning §11.4: numeric identifiers compare numerically and sort before
// alphanumeric ones, which compare as ASCII.
int comparePre(const std::string& a, const std::string& b) {
  const bool an = isDigits(a);
  const bool bn = isDigits(b);
  if (an && bn) {
    if (a.size() != b.size()) {
      return a.size() < b.size() ? -1 : 1;
    }
    return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
  }
  if (an != bn) {
    return an ? -1 : 1;
  }
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

std::vector<std::string_view> splitSpaces(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
      ++i;
    }
    const size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') {
      ++i;
    }
    if (i > start) {
      out.push_back(text.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace

int SdkVersion::compare(const SdkVersion& a, const SdkVersion& b) {
  const size_t n = std::max(a.parts.size(), b.parts.size());
  for (size_t i = 0; i < n; ++i) {
    const uint32_t x = i < a.parts.size() ? a.parts[i] : 0;
    const uint32_t y = i < b.parts.size() ? b.parts[i] : 0;
    if (x != y) {
      return x < y ? -1 : 1;
    }
  }
  if (a.pre.empty() != b.pre.empty()) {
    return a.pre.empty() ? 1 : -1;  // a release is above its pre-releases
  }
  const size_t m = std::min(a.pre.size(), b.pre.size());
  for (size_t i = 0; i < m; ++i) {
    if (const int c = comparePre(a.pre[i], b.pre[i]); c != 0) {
      return c;
    }
  }
  if (a.pre.size() != b.pre.size()) {
    return a.pre.size() < b.pre.size() ? -1 : 1;
  }
  return 0;
}

std::optional<SdkVersion> parseSdkVersion(std::string_view text) {
  if (text.empty() || text.size() > kMaxVersionText) {
    return std::nullopt;
  }
  if (text.front() == 'v' || text.front() == 'V') {
    text.remove_prefix(1);
  }
  if (const size_t plus = text.find('+'); plus != std::string_view::npos) {
    const std::string_view build = text.substr(plus + 1);
    if (build.empty() || !std::all_of(build.begin(), build.end(),
                                      [](char c) { return isIdentifierChar(c) || c == '.'; })) {
      return std::nullopt;
    }
    text = text.substr(0, plus);
  }
  SdkVersion version;
  std::string_view core = text;
  if (const size_t dash = text.find('-'); dash != std::string_view::npos) {
    core = text.substr(0, dash);
    std::string_view pre = text.substr(dash + 1);
    while (true) {
      const size_t dot = pre.find('.');
      const std::string_view id = pre.substr(0, dot);
      if (id.empty() || !std::all_of(id.begin(), id.end(), isIdentifierChar)) {
        return std::nullopt;
      }
      version.pre.emplace_back(id);
      if (dot == std::string_view::npos) {
        break;
      }
      pre.remove_prefix(dot + 1);
    }
  }
  while (true) {
    const size_t dot = core.find('.');
    const std::string_view part = core.substr(0, dot);
    uint32_t value = 0;
    const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (!isDigits(part) || ec != std::errc() || end != part.data() + part.size() ||
        value > kMaxPart || version.parts.size() == kMaxParts) {
      return std::nullopt;
    }
    version.parts.push_back(value);
    if (dot == std::string_view::npos) {
      break;
    }
    core.remove_prefix(dot + 1);
  }
  while (!version.parts.empty() && version.parts.back() == 0) {
    version.parts.pop_back();
  }
  return version;
}

Result<VersionRange> VersionRange::parse(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  VersionRange range;
  std::vector<Comparator> current;
  bool any = false;
  bool star = false;
  const std::vector<std::string_view> tokens = splitSpaces(text);
  if (tokens.empty()) {
    return fail(Errc::kInvalidConfig, "empty version range");
  }
  const auto close = [&]() -> Status {
    if (current.empty() && !star) {
      return fail(Errc::kInvalidConfig,
                  "version range " + quoted + " has an empty alternative around \"||\"");
    }
    range.alternatives_.push_back(std::move(current));
    current.clear();
    star = false;
    return {};
  };
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string_view token = tokens[i];
    if (token == "||") {
      if (Status s = close(); !s) {
        return tl::unexpected(s.error());
      }
      continue;
    }
    if (token == "*") {
      star = true;
      any = true;
      continue;
    }
    Op op = Op::kEq;
    size_t op_len = 0;
    if (token.starts_with(">=")) {
      op = Op::kGe;
      op_len = 2;
    } else if (token.starts_with("<=")) {
      op = Op::kLe;
      op_len = 2;
    } else if (token.starts_with(">")) {
      op = Op::kGt;
      op_len = 1;
    } else if (token.starts_with("<")) {
      op = Op::kLt;
      op_len = 1;
    } else if (token.starts_with("=")) {
      op_len = 1;
    }
    token.remove_prefix(op_len);
    if (token.empty() && op_len > 0 && i + 1 < tokens.size()) {
      token = tokens[++i];
    }
    auto version = parseSdkVersion(token);
    if (!version) {
      return fail(Errc::kInvalidConfig, "version range " + quoted + ": \"" + std::string(token) +
                                            "\" is not a version (expected e.g. >=2.0.0 <3.0.0)");
    }
    current.push_back(Comparator{op, std::move(*version)});
    any = true;
  }
  if (!any) {
    return fail(Errc::kInvalidConfig, "version range " + quoted + " has no comparator");
  }
  if (Status s = close(); !s) {
    return tl::unexpected(s.error());
  }
  return range;
}

bool VersionRange::contains(const SdkVersion& version) const {
  for (const auto& all : alternatives_) {
    bool ok = true;
    for (const Comparator& c : all) {
      const int cmp = SdkVersion::compare(version, c.version);
      switch (c.op) {
        case Op::kEq: ok = cmp == 0; break;
        case Op::kGt: ok = cmp > 0; break;
        case Op::kGe: ok = cmp >= 0; break;
        case Op::kLt: ok = cmp < 0; break;
        case Op::kLe: ok = cmp <= 0; break;
      }
      if (!ok) {
        break;
      }
    }
    if (ok) {
      return true;
    }
  }
  return false;
}

}  // namespace imgate::mod::lbs
