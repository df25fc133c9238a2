// SPDX-License-Identifier: Apache-2.0
// ValidatedSection: the ConfigView that modules (and the core's own code) read a section
// through once the schema checker has accepted it. It holds typed values only; the YAML text
// is gone, except for kAny keys, which the caller walks itself with raw().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/yaml_loader.h"
#include "imgate/sdk/config.h"

namespace imgate::core::config {

// Built by validate() (schema_check.h); immutable afterwards. Not copyable (it owns its
// nested sections). Lives as long as the generation that validated it; the views handed to
// compile() through child()/children() are owned by it.
class ValidatedSection final : public ConfigView {
 public:
  // One schema key's value. Only the member matching `type` is meaningful.
  struct Entry {
    std::string key;
    ParamType type = ParamType::kString;
    bool written = false;  // has(): written in the file with a non-null value
    bool present = false;  // written, or filled from the schema's default
    Mark mark;             // of the value when written, else of the section
    std::string text;      // scalar types: as written (or the default's text)
    bool bool_value = false;
    int64_t int_value = 0;  // kInt; kSize (bytes)
    std::chrono::milliseconds duration{0};
    Rate rate;
    std::vector<std::string> strings;  // kStringList
    std::unique_ptr<ValidatedSection> section;                 // kMap (never null)
    std::vector<std::unique_ptr<ValidatedSection>> sections;  // kMapList
    RawNode raw;  // the value's node when written (any type); kAny's default otherwise
  };

  // An empty section: every getter returns zero values; location() is "".
  ValidatedSection() = default;
  ValidatedSection(std::string file, Mark mark, std::string path, std::vector<Entry> entries,
                   std::vector<std::string> written_keys);
  ~ValidatedSection() override;

  ValidatedSection(const ValidatedSection&) = delete;
  ValidatedSection& operator=(const ValidatedSection&) = delete;

  // ---- ConfigView -------------------------------------------------------------------------
  // "<file>:<line>:<col> <path>" (parts left out when unknown).
  std::string location() const override;
  // The key's value position and "<path>.<key>"; the section's position when not written.
  std::string location(std::string_view key) const override;
  bool has(std::string_view key) const override;
  bool getBool(std::string_view key) const override;
  int64_t getInt(std::string_view key) const override;
  std::string getString(std::string_view key) const override;  // kString, kEnum
  std::chrono::milliseconds getDuration(std::string_view key) const override;
  int64_t getSize(std::string_view key) const override;
  Rate getRate(std::string_view key) const override;
  std::vector<std::string> getStringList(std::string_view key) const override;
  const ConfigView& child(std::string_view key) const override;
  std::vector<const ConfigView*> children(std::string_view key) const override;

  // ---- For the core -----------------------------------------------------------------------
  // child()/children() with the concrete type, for nested checkNonReloadable() calls.
  // section() returns an empty section for keys that are not kMap.
  const ValidatedSection& section(std::string_view key) const;
  std::vector<const ValidatedSection*> sections(std::string_view key) const;

  // The node written for `key` (any type; for kAny the caller walks it); for an unwritten
  // kAny key with a default, the default parsed as YAML; otherwise invalid.
  RawNode raw(std::string_view key) const;
  // Position of the key's value, or of the section when the key was not written.
  Mark mark(std::string_view key) const;
  Mark mark() const { return mark_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  // `<path>.<key>` (or `key` at the root): the YAML path used in errors.
  std::string pathOf(std::string_view key) const;

  // Canonical text of the key's effective value (defaults included): equal values give equal
  // text whatever the spelling ("60s" and "1m" are equal durations). "~" for a key that is
  // absent with no default, "" for a key that is not in the schema. For kMap this covers the
  // whole nested section; for kAny, RawNode::canonical().
  std::string fingerprint(std::string_view key) const;
  // Canonical text of every key of the section, in schema order.
  std::string fingerprint() const;

  // Keys written in the file, in file order (unknown keys were errors, so these are all in
  // the schema).
  const std::vector<std::string>& keys() const { return written_keys_; }

  // Empty and immutable; returned by child() for keys that have no section.
  static const ValidatedSection& empty();

 private:
  const Entry* find(std::string_view key) const;
  const Entry* find(std::string_view key, ParamType type) const;

  std::string file_;
  Mark mark_;
  std::string path_;
  std::vector<Entry> entries_;  // schema order
  std::vector<std::string> written_keys_;
};

}  // namespace imgate::core::config
