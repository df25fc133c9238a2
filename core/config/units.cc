// SPDX-License-Identifier: Apache-2.0
#include "config/units.h"

#include <array>
#include <limits>
#include <optional>

namespace imgate::core::config {
namespace {

constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
// Six decimals keep frac * factor inside 64 bits for every unit (1e6 * 2^40 < 2^63).
constexpr int kMaxDecimals = 6;

std::string quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// value = whole + frac / frac_scale, read from "<digits>[.<digits>]".
struct Decimal {
  uint64_t whole = 0;
  uint64_t frac = 0;
  uint64_t frac_scale = 1;
};

enum class NumberStatus { kOk, kNone, kTooLarge, kTooManyDecimals };

// Reads a decimal number at text[pos...]; on kOk, pos is left after it.
NumberStatus readDecimal(std::string_view text, size_t& pos, Decimal& out) {
  size_t start = pos;
  out = {};
  while (pos < text.size() && isDigit(text[pos])) {
    if (__builtin_mul_overflow(out.whole, uint64_t{10}, &out.whole) ||
        __builtin_add_overflow(out.whole, static_cast<uint64_t>(text[pos] - '0'), &out.whole)) {
      return NumberStatus::kTooLarge;
    }
    ++pos;
  }
  if (pos == start) {
    return NumberStatus::kNone;
  }
  if (pos < text.size() && text[pos] == '.') {
    size_t dot = pos++;
    int decimals = 0;
    while (pos < text.size() && isDigit(text[pos])) {
      if (++decimals > kMaxDecimals) {
        return NumberStatus::kTooManyDecimals;
      }
      out.frac = out.frac * 10 + static_cast<uint64_t>(text[pos] - '0');
      out.frac_scale *= 10;
      ++pos;
    }
    if (pos == dot + 1) {
      return NumberStatus::kNone;  // "1." is not a number
    }
  }
  return NumberStatus::kOk;
}

enum class ScaleStatus { kOk, kTooLarge, kNotWhole };

// number * factor as an exact integer no larger than int64 max.
ScaleStatus scale(const Decimal& number, uint64_t factor, uint64_t& out) {
  uint64_t whole = 0;
  if (__builtin_mul_overflow(number.whole, factor, &whole)) {
    return ScaleStatus::kTooLarge;
  }
  uint64_t frac = number.frac * factor;  // cannot overflow, see kMaxDecimals
  if (frac % number.frac_scale != 0) {
    return ScaleStatus::kNotWhole;
  }
  if (__builtin_add_overflow(whole, frac / number.frac_scale, &out) || out > kInt64Max) {
    return ScaleStatus::kTooLarge;
  }
  return ScaleStatus::kOk;
}

struct Unit {
  std::string_view name;
  uint64_t factor;
};

constexpr std::array<Unit, 5> kDurationUnits = {{
    {"ms", 1},
    {"s", 1000},
    {"m", 60'000},
    {"h", 3'600'000},
    {"d", 86'400'000},
}};

std::optional<uint64_t> durationUnit(std::string_view name) {
  for (const auto& unit : kDurationUnits) {
    if (unit.name == name) {
      return unit.factor;
    }
  }
  return std::nullopt;
}

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;

constexpr std::array<Unit, 14> kSizeUnits = {{
    {"", 1},
    {"B", 1},
    {"KiB", kKiB},
    {"k", kKiB},
    {"K", kKiB},
    {"MiB", kMiB},
    {"m", kMiB},
    {"M", kMiB},
    {"GiB", kGiB},
    {"g", kGiB},
    {"G", kGiB},
    {"TiB", kTiB},
    {"t", kTiB},
    {"T", kTiB},
}};

// Decimal units that would silently mean 1000 to some readers and 1024 to others.
struct AmbiguousUnit {
  std::string_view name;
  std::string_view binary;
  uint64_t binary_factor;
  uint64_t decimal_factor;
};

constexpr std::array<AmbiguousUnit, 5> kAmbiguousSizeUnits = {{
    {"KB", "KiB", kKiB, 1'000},
    {"kB", "KiB", kKiB, 1'000},
    {"MB", "MiB", kMiB, 1'000'000},
    {"GB", "GiB", kGiB, 1'000'000'000},
    {"TB", "TiB", kTiB, 1'000'000'000'000},
}};

std::string formatUnsigned(bool negative, uint64_t value, std::string_view unit) {
  return (negative ? "-" : "") + std::to_string(value) + std::string(unit);
}

// |value| without overflow for int64 min.
uint64_t magnitude(int64_t value) {
  return value < 0 ? uint64_t{0} - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
}

}  // namespace

tl::expected<std::chrono::milliseconds, std::string> parseDuration(std::string_view text) {
  const auto fail = [&](std::string message) {
    return tl::unexpected<std::string>(std::move(message));
  };
  if (text.empty()) {
    return fail("an empty value is not a duration (like 30s)");
  }
  if (text[0] == '-') {
    return fail(quote(text) + " is negative: a duration must be zero or more");
  }
  uint64_t total = 0;
  uint64_t previous_factor = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    Decimal number;
    switch (readDecimal(text, pos, number)) {
      case NumberStatus::kOk:
        break;
      case NumberStatus::kNone:
        return fail(quote(text) + " is not a duration (like 30s)");
      case NumberStatus::kTooLarge:
        return fail(quote(text) + " is too large for a duration");
      case NumberStatus::kTooManyDecimals:
        return fail(quote(text) + " has more than 6 decimals");
    }
    size_t unit_start = pos;
    while (pos < text.size() && isAlpha(text[pos])) {
      ++pos;
    }
    std::string_view unit = text.substr(unit_start, pos - unit_start);
    if (unit.empty()) {
      if (previous_factor == 0 && pos == text.size()) {
        if (number.whole == 0 && number.frac == 0) {
          return std::chrono::milliseconds(0);
        }
        return fail(quote(text) + " has no unit (e.g. 30s)");
      }
      if (pos == text.size()) {
        return fail(quote(text) + " has no unit at the end (e.g. 1h30m)");
      }
      return fail(quote(text) + " is not a duration (like 30s)");
    }
    std::optional<uint64_t> factor = durationUnit(unit);
    if (!factor) {
      return fail(quote(text) + " has an unknown unit " + quote(unit) +
                  " (use ms, s, m, h or d)");
    }
    if (previous_factor != 0 && *factor >= previous_factor) {
      return fail(quote(text) +
                  " must list each unit once, largest first (e.g. 1h30m)");
    }
    previous_factor = *factor;
    uint64_t part = 0;
    switch (scale(number, *factor, part)) {
      case ScaleStatus::kOk:
        break;
      case ScaleStatus::kTooLarge:
        return fail(quote(text) + " is too large for a duration");
      case ScaleStatus::kNotWhole:
        return fail(quote(text) + " is finer than a millisecond");
    }
    if (__builtin_add_overflow(total, part, &total) || total > kInt64Max) {
      return fail(quote(text) + " is too large for a duration");
    }
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

tl::expected<int64_t, std::string> parseSize(std::string_view text) {
  const auto fail = [&](std::string message) {
    return tl::unexpected<std::string>(std::move(message));
  };
  if (text.empty()) {
    return fail("an empty value is not a size (like 64KiB)");
  }
  if (text[0] == '-') {
    return fail(quote(text) + " is negative: a size must be zero or more");
  }
  size_t pos = 0;
  Decimal number;
  switch (readDecimal(text, pos, number)) {
    case NumberStatus::kOk:
      break;
    case NumberStatus::kNone:
      return fail(quote(text) + " is not a size (like 64KiB)");
    case NumberStatus::kTooLarge:
      return fail(quote(text) + " is too large for a size");
    case NumberStatus::kTooManyDecimals:
      return fail(quote(text) + " has more than 6 decimals");
  }
  std::string_view unit = text.substr(pos);
  std::string_view digits = text.substr(0, pos);
  for (const auto& ambiguous : kAmbiguousSizeUnits) {
    if (unit != ambiguous.name) {
      continue;
    }
    uint64_t binary = 0;
    uint64_t decimal = 0;
    if (scale(number, ambiguous.binary_factor, binary) == ScaleStatus::kOk &&
        scale(number, ambiguous.decimal_factor, decimal) == ScaleStatus::kOk) {
      return fail(quote(text) + " is ambiguous: write " + std::string(digits) +
                  std::string(ambiguous.binary) + " (" + std::to_string(binary) +
                  " bytes) or " + std::to_string(decimal));
    }
    return fail(quote(text) + " is ambiguous: write " + std::string(ambiguous.binary) +
                " (powers of 1024) or the number of bytes");
  }
  for (const auto& known : kSizeUnits) {
    if (unit != known.name) {
      continue;
    }
    uint64_t bytes = 0;
    switch (scale(number, known.factor, bytes)) {
      case ScaleStatus::kOk:
        return static_cast<int64_t>(bytes);
      case ScaleStatus::kTooLarge:
        return fail(quote(text) + " is too large for a size");
      case ScaleStatus::kNotWhole:
        return fail(quote(text) + " is not a whole number of bytes");
    }
  }
  bool looks_like_unit = true;
  for (char c : unit) {
    looks_like_unit = looks_like_unit && isAlpha(c);
  }
  if (!looks_like_unit) {
    return fail(quote(text) + " is not a size (like 64KiB)");
  }
  return fail(quote(text) + " has an unknown unit " + quote(unit) +
              " (use B, KiB, MiB, GiB, TiB or k, m, g, t)");
}

tl::expected<Rate, std::string> parseRate(std::string_view text) {
  const auto fail = [&](std::string message) {
    return tl::unexpected<std::string>(std::move(message));
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail((text.empty() ? std::string("an empty value") : quote(text)) +
                " is not a rate (like 20/s)");
  }
  std::string_view count_text = text.substr(0, slash);
  std::string_view period_text = text.substr(slash + 1);
  uint64_t count = 0;
  bool count_ok = !count_text.empty() && count_text.size() <= 10;
  for (char c : count_text) {
    count_ok = count_ok && isDigit(c);
    if (count_ok) {
      count = count * 10 + static_cast<uint64_t>(c - '0');
    }
  }
  if (!count_ok || count > std::numeric_limits<uint32_t>::max()) {
    return fail(quote(text) + ": the count before '/' must be a whole number from 0 to " +
                std::to_string(std::numeric_limits<uint32_t>::max()) + " (like 20/s)");
  }
  Rate rate;
  rate.count = static_cast<uint32_t>(count);
  if (std::optional<uint64_t> factor = durationUnit(period_text)) {
    rate.per = std::chrono::milliseconds(static_cast<int64_t>(*factor));
    return rate;
  }
  if (period_text.empty()) {
    return fail(quote(text) + " has no period after '/' (like 20/s)");
  }
  auto period = parseDuration(period_text);
  if (!period) {
    return fail(quote(text) + " has a bad period: " + period.error());
  }
  if (period->count() == 0) {
    return fail(quote(text) + ": the period must be longer than zero");
  }
  rate.per = *period;
  return rate;
}

std::string formatDuration(std::chrono::milliseconds duration) {
  int64_t ms = duration.count();
  if (ms == 0) {
    return "0";
  }
  uint64_t value = magnitude(ms);
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    if (value % it->factor == 0) {
      return formatUnsigned(ms < 0, value / it->factor, it->name);
    }
  }
  return formatUnsigned(ms < 0, value, "ms");
}

std::string formatSize(int64_t bytes) {
  uint64_t value = magnitude(bytes);
  if (value != 0) {
    for (auto [factor, name] : {std::pair<uint64_t, std::string_view>{kTiB, "TiB"},
                                {kGiB, "GiB"},
                                {kMiB, "MiB"},
                                {kKiB, "KiB"}}) {
      if (value % factor == 0) {
        return formatUnsigned(bytes < 0, value / factor, name);
      }
    }
  }
  return formatUnsigned(bytes < 0, value, "");
}

std::string formatRate(const Rate& rate) {
  std::string period;
  int64_t per = rate.per.count();
  for (const auto& unit : kDurationUnits) {
    if (per > 0 && static_cast<uint64_t>(per) == unit.factor) {
      period = std::string(unit.name);
    }
  }
  if (period.empty()) {
    period = formatDuration(rate.per);
  }
  return std::to_string(rate.count) + "/" + period;
}

}  // namespace imgate::core::config
