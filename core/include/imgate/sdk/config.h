// SPDX-License-Identifier: Apache-2.0
// A module's configuration schema and the validated view it is compiled from.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace imgate {

enum class ParamType : uint8_t {
  kBool,        // true | false
  kInt,         // integer; min/max bound the value
  kString,      // any scalar, kept as written
  kDuration,    // "250ms", "30s", "2m", "1h", "1d"; "0" alone means zero. min/max in ms
  kSize,        // "512", "64KiB", "1MiB", "1GiB" (also "64k", "1m", "1g"); min/max in bytes
  kRate,        // "20/s", "100/m", "1000/h"; min/max bound the count
  kEnum,        // one of `choices`
  kStringList,  // a YAML sequence of scalars (a lone scalar is a one-element list); min/max
                // bound the element count
  kMap,         // a nested mapping checked against `fields`
  kMapList,     // a sequence of mappings, each checked against `fields`
  kAny,         // not checked here; read by the core itself (e.g. a module's own section)
};

struct ParamSpec;

// One configuration key a module accepts. Declared by the module (usually as a constexpr
// array), enforced by the core before compile() runs: unknown keys, types, ranges, enum
// choices, required keys, and reloadable=false keys changed by a reload are all reported with
// file:line:col and the YAML path, and compile() is never called with a bad section.
struct ParamSpec {
  std::string_view key;                   // snake_case, e.g. "max_message"
  ParamType type = ParamType::kString;
  bool required = false;
  std::string_view default_value = {};    // YAML scalar syntax; empty = no default
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();
  std::span<const std::string_view> choices = {};  // kEnum only
  bool reloadable = true;                 // false: a change is refused with "requires restart"
  std::string_view help = {};             // one line; printed by `imgate --describe`
  std::span<const ParamSpec> fields = {}; // kMap / kMapList: the nested schema
};

struct Rate {
  uint32_t count = 0;
  std::chrono::milliseconds per{1000};
};

// Read-only view of one section, already validated against its schema. Owned by the core and
// valid only during compile(): copy what you need. The getters cannot fail for keys in the
// schema (presence, type and range were checked; defaults are filled in). Asking for a key
// that is not in the schema is a bug: it returns the type's zero value.
class ConfigView {
 public:
  virtual ~ConfigView() = default;

  // "conf/imgate.yaml:14:7 pipelines.im[2].auth.jwt", for messages of the module's own checks.
  virtual std::string location() const = 0;
  // Location of one key's value (or of the section when the key is absent).
  virtual std::string location(std::string_view key) const = 0;

  // True when the key was written in the file (not filled from a default).
  virtual bool has(std::string_view key) const = 0;
  virtual bool getBool(std::string_view key) const = 0;
  virtual int64_t getInt(std::string_view key) const = 0;
  virtual std::string getString(std::string_view key) const = 0;  // also kEnum
  virtual std::chrono::milliseconds getDuration(std::string_view key) const = 0;
  virtual int64_t getSize(std::string_view key) const = 0;  // bytes
  virtual Rate getRate(std::string_view key) const = 0;
  virtual std::vector<std::string> getStringList(std::string_view key) const = 0;
  // kMap: the nested view (an empty view when absent and not required).
  virtual const ConfigView& child(std::string_view key) const = 0;
  // kMapList: one view per element, in file order.
  virtual std::vector<const ConfigView*> children(std::string_view key) const = 0;
};

}  // namespace imgate
