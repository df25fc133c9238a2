// SPDX-License-Identifier: Apache-2.0
// Parsers and printers for the unit-carrying config values (durations, sizes, rates). Units are
// written in the value (`120s`, `64KiB`, `20/s`) and parsed here once, for the schema checker
// and for the core's own keys; modules only ever see the typed result.
//
// Every parser takes the text exactly as written (no surrounding spaces, no inner spaces) and
// returns either the value or a complete, lower-case message that quotes the input, e.g.
// `"30" has no unit (e.g. 30s)`. All arithmetic is overflow-checked. No function here throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "imgate/sdk/config.h"

namespace imgate::core::config {

// Duration: one or more <number><unit> parts, largest unit first, no spaces:
//   "250ms", "30s", "2m", "1h", "1d", "1h30m", "2m30s".
// Units: ms, s, m (minute), h, d (24 h). A number may have up to 6 decimals ("1.5s", "0.25h")
// as long as the total is a whole number of milliseconds ("1.5ms" is refused).
// "0" alone is zero; any other number without a unit is refused with "has no unit (e.g. 30s)".
// Negative values, upper-case units and totals beyond int64 milliseconds are refused.
[[nodiscard]] tl::expected<std::chrono::milliseconds, std::string> parseDuration(
    std::string_view text);

// Size in bytes: <number>[<unit>], no space:
//   "512" or "512B" bytes; "64KiB", "1MiB", "1GiB", "1TiB" (powers of 1024);
//   "64k"/"64K", "1m"/"1M", "1g"/"1G", "1t"/"1T" (also powers of 1024, as nginx reads them).
// "64KB", "1MB", "1GB", "1TB" (and "kB") are refused as ambiguous, with a hint naming both
// readings ("write 64KiB (65536 bytes) or 64000"): a silent choice between 1000 and 1024
// would be wrong for half the people who write it.
// Decimals are allowed when the result is a whole number of bytes ("1.5MiB"); negative values
// and results beyond int64 are refused.
[[nodiscard]] tl::expected<int64_t, std::string> parseSize(std::string_view text);

// Rate: <count>/<period>, no spaces. count is a whole number in [0, 2^32-1]; period is a bare
// unit meaning one of it ("20/s", "100/m", "5/h", "1/d", "10/ms") or any positive duration as
// parseDuration() reads it ("1000/10s", "3/1m30s"). The period is kept as written, not
// normalised: "60/m" stays {60, 60000ms}.
[[nodiscard]] tl::expected<Rate, std::string> parseRate(std::string_view text);

// Shortest text that the matching parser reads back to the same value: the largest unit that
// divides the value exactly ("90s", "1500ms", "2h", "0"). Negative values get a leading '-'
// (they only appear as schema bounds).
std::string formatDuration(std::chrono::milliseconds duration);
// "64KiB", "1MiB", "512"; largest of TiB/GiB/MiB/KiB that divides exactly, else bytes.
std::string formatSize(int64_t bytes);
// "20/s", "100/m", "5/h", "1/d", "1000/10s".
std::string formatRate(const Rate& rate);

}  // namespace imgate::core::config
