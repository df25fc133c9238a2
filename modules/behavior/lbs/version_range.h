// SPDX-License-Identifier: Apache-2.0
// Client SDK versions and version ranges (">=2.0.0 <3.0.0"), for the LBS module's sdk rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::lbs {

// A dotted numeric version with an optional pre-release, ordered as Semantic Versioning 2.0
// §11: "1.4" equals "1.4.0"; "2.0.0-beta.2" < "2.0.0-rc.1" < "2.0.0"; build metadata
// ("+sha.5114f85") is ignored. Up to 4 numeric parts (some SDKs use 1.2.3.4), each below 10^9.
struct SdkVersion {
  std::vector<uint32_t> parts;   // trailing zeros removed, so equal versions compare equal
  std::vector<std::string> pre;  // pre-release identifiers; empty for a release

  // -1, 0 or 1.
  static int compare(const SdkVersion& a, const SdkVersion& b);
};

// Accepts an optional leading 'v' ("v2.1.0"). nullopt for anything else, including text
// longer than 64 bytes: a client sending a version it cannot spell gets no sdk rule, never an
// error, because refusing the LBS answer would keep it from connecting at all.
std::optional<SdkVersion> parseSdkVersion(std::string_view text);

// A range: comparators separated by spaces, all of which must hold (">=2.0.0 <3.0.0"); "||"
// separates alternatives (">=1.0 <1.5 || >=2.0"). Operators: >=, >, <=, <, = (a bare version
// means =); a space may follow the operator (">= 2.0"). "*" matches every parseable version.
class VersionRange {
 public:
  // Error: kInvalidConfig, with a message quoting the offending part.
  [[nodiscard]] static Result<VersionRange> parse(std::string_view text);

  bool contains(const SdkVersion& version) const;

 private:
  enum class Op : uint8_t { kEq, kGt, kGe, kLt, kLe };
  struct Comparator {
    Op op = Op::kEq;
    SdkVersion version;
  };
  std::vector<std::vector<Comparator>> alternatives_;  // empty inner list: "*"
};

}  // namespace imgate::mod::lbs
