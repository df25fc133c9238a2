// SPDX-License-Identifier: Apache-2.0
#include "config/schema_check.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "config/units.h"

namespace imgate::core::config {
namespace {

using Entry = ValidatedSection::Entry;

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
// Up to this many keys, an unknown key with no close match lists them all.
constexpr size_t kListKeysUpTo = 12;

std::string quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string childPath(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string indexPath(const std::string& path, size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::string joined(std::span<const std::string_view> words) {
  std::string out;
  for (auto word : words) {
    if (!out.empty()) {
      out += ", ";
    }
    out += word;
  }
  return out;
}

bool isScalarType(ParamType type) {
  switch (type) {
    case ParamType::kBool:
    case ParamType::kInt:
    case ParamType::kString:
    case ParamType::kDuration:
    case ParamType::kSize:
    case ParamType::kRate:
    case ParamType::kEnum:
      return true;
    case ParamType::kStringList:
    case ParamType::kMap:
    case ParamType::kMapList:
    case ParamType::kAny:
      return false;
  }
  return false;
}

std::string expected(const ParamSpec& spec) {
  switch (spec.type) {
    case ParamType::kBool:
      return "a boolean (true or false)";
    case ParamType::kInt:
      return "an integer";
    case ParamType::kString:
      return "a string";
    case ParamType::kDuration:
      return "a duration (like 30s)";
    case ParamType::kSize:
      return "a size (like 64KiB)";
    case ParamType::kRate:
      return "a rate (like 20/s)";
    case ParamType::kEnum:
      return "one of " + joined(spec.choices);
    case ParamType::kStringList:
      return "a list of strings";
    case ParamType::kMap:
      return "a map";
    case ParamType::kMapList:
      return "a list of maps";
    case ParamType::kAny:
      return "a value";
  }
  return "a value";
}

tl::expected<bool, std::string> parseBool(std::string_view text) {
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  return tl::unexpected(quote(text) + " is not a boolean (use true or false)");
}

tl::expected<int64_t, std::string> parseInt(std::string_view text) {
  size_t pos = 0;
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    pos = 1;
  }
  size_t digits_start = pos;
  uint64_t magnitude = 0;
  bool overflow = false;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
    overflow = overflow || __builtin_mul_overflow(magnitude, uint64_t{10}, &magnitude) ||
               __builtin_add_overflow(magnitude, static_cast<uint64_t>(text[pos] - '0'),
                                      &magnitude);
    ++pos;
  }
  if (pos == digits_start) {
    return tl::unexpected(quote(text) + " is not an integer");
  }
  if (pos != text.size()) {
    if (text[pos] == '.' || text[pos] == 'e' || text[pos] == 'E') {
      return tl::unexpected(quote(text) + " is not an integer (no fractions or exponents)");
    }
    return tl::unexpected(quote(text) + " is not an integer");
  }
  constexpr auto kMaxPositive = static_cast<uint64_t>(kNoMax);
  if (overflow || magnitude > kMaxPositive + (negative ? 1 : 0)) {
    return tl::unexpected(quote(text) + " is out of range for a 64-bit integer");
  }
  if (negative) {
    // Two's complement negation of the magnitude, valid for int64 min too.
    return static_cast<int64_t>(uint64_t{0} - magnitude);
  }
  return static_cast<int64_t>(magnitude);
}

// Checks `value` against [min, max], printing bounds with `format` so that the message speaks
// the key's unit.
template <class Format>
tl::expected<void, std::string> checkRange(const ParamSpec& spec, int64_t value,
                                           std::string_view text, Format format,
                                           std::string_view what = "") {
  if (value < spec.min) {
    return tl::unexpected(std::string(what) + "must be at least " + format(spec.min) +
                          ", got " + quote(text));
  }
  if (value > spec.max) {
    return tl::unexpected(std::string(what) + "must be at most " + format(spec.max) +
                          ", got " + quote(text));
  }
  return {};
}

std::string plainNumber(int64_t value) { return std::to_string(value); }

tl::expected<void, std::string> checkCount(const ParamSpec& spec, size_t count) {
  auto n = static_cast<int64_t>(std::min<size_t>(count, static_cast<size_t>(kNoMax)));
  if (n < spec.min) {
    return tl::unexpected("must have at least " + std::to_string(spec.min) + " item" +
                          (spec.min == 1 ? "" : "s") + ", got " + std::to_string(count));
  }
  if (n > spec.max) {
    return tl::unexpected("must have at most " + std::to_string(spec.max) + " item" +
                          (spec.max == 1 ? "" : "s") + ", got " + std::to_string(count));
  }
  return {};
}

// Parses a scalar-typed value into `entry`, including its range check.
tl::expected<void, std::string> parseScalar(const ParamSpec& spec, const std::string& text,
                                            Entry& entry) {
  entry.text = text;
  switch (spec.type) {
    case ParamType::kBool: {
      auto value = parseBool(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      entry.bool_value = *value;
      return {};
    }
    case ParamType::kInt: {
      auto value = parseInt(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      entry.int_value = *value;
      return checkRange(spec, *value, text, plainNumber);
    }
    case ParamType::kString: {
      auto length = static_cast<int64_t>(text.size());
      if (length < spec.min) {
        return tl::unexpected("must be at least " + std::to_string(spec.min) +
                              " bytes long, got " + std::to_string(length));
      }
      if (length > spec.max) {
        return tl::unexpected("must be at most " + std::to_string(spec.max) +
                              " bytes long, got " + std::to_string(length));
      }
      return {};
    }
    case ParamType::kDuration: {
      auto value = parseDuration(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      entry.duration = *value;
      return checkRange(spec, value->count(), text,
                        [](int64_t ms) { return formatDuration(std::chrono::milliseconds(ms)); });
    }
    case ParamType::kSize: {
      auto value = parseSize(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      entry.int_value = *value;
      return checkRange(spec, *value, text, formatSize);
    }
    case ParamType::kRate: {
      auto value = parseRate(text);
      if (!value) {
        return tl::unexpected(value.error());
      }
      entry.rate = *value;
      return checkRange(spec, value->count, text, plainNumber, "count ");
    }
    case ParamType::kEnum: {
      for (auto choice : spec.choices) {
        if (choice == text) {
          return {};
        }
      }
      std::string message = quote(text) + " must be one of " + joined(spec.choices);
      std::string near = suggest(text, spec.choices);
      if (!near.empty()) {
        message += " (did you mean " + quote(near) + "?)";
      }
      return tl::unexpected(std::move(message));
    }
    case ParamType::kStringList:
    case ParamType::kMap:
    case ParamType::kMapList:
    case ParamType::kAny:
      break;
  }
  return tl::unexpected<std::string>("internal: not a scalar type");
}

class Validator {
 public:
  explicit Validator(Errors& errors) : errors_(errors) {}

  // Stamps every position with (file, mark): used for values parsed from a schema default,
  // whose own positions are in the default's text, not in the config file.
  Validator(Errors& errors, std::string file, Mark mark)
      : errors_(errors), relocate_(true), file_(std::move(file)), mark_(mark) {}

  std::unique_ptr<ValidatedSection> section(const RawNode& node,
                                            std::span<const ParamSpec> schema,
                                            const std::string& path, bool check_required);

  // Reads a written (non-null) value into `entry`. False when an error was reported.
  bool value(const ParamSpec& spec, const RawNode& node, const std::string& path, Entry& entry);

  // Fills `entry` from spec.default_value; reports a bad default at (file, mark).
  void applyDefault(const ParamSpec& spec, const std::string& path, const std::string& file,
                    Mark mark, Entry& entry);

 private:
  std::string fileOf(const RawNode& node) const { return relocate_ ? file_ : node.file(); }
  Mark markOf(const RawNode& node) const { return relocate_ ? mark_ : node.mark(); }

  void error(const RawNode& at, std::string path, std::string message) {
    report({fileOf(at), markOf(at), std::move(path), std::move(message)});
  }

  void report(ConfigError error) {
    if (errors_.size() == kMaxErrors) {
      errors_.push_back({error.file, error.mark, "", "too many errors, stopping here"});
    }
    if (errors_.size() < kMaxErrors) {
      errors_.push_back(std::move(error));
    }
  }

  std::unique_ptr<ValidatedSection> defaultsOnly(std::span<const ParamSpec> schema,
                                                 const std::string& path,
                                                 const std::string& file, Mark mark);

  Errors& errors_;
  bool relocate_ = false;
  std::string file_;
  Mark mark_;
};

std::string unknownKeyMessage(std::string_view key, std::span<const ParamSpec> schema) {
  std::vector<std::string_view> names;
  names.reserve(schema.size());
  for (const auto& spec : schema) {
    names.push_back(spec.key);
  }
  std::string message = "unknown key " + quote(key);
  if (names.empty()) {
    return message + " (this section takes no keys)";
  }
  std::string near = suggest(key, names);
  if (!near.empty()) {
    return message + " (did you mean " + quote(near) + "?)";
  }
  if (names.size() <= kListKeysUpTo) {
    return message + " (valid keys: " + joined(names) + ")";
  }
  return message;
}

std::unique_ptr<ValidatedSection> Validator::section(const RawNode& node,
                                                     std::span<const ParamSpec> schema,
                                                     const std::string& path,
                                                     bool check_required) {
  const std::string file = fileOf(node);
  const Mark mark = markOf(node);
  std::vector<Entry> entries(schema.size());
  for (size_t i = 0; i < schema.size(); ++i) {
    entries[i].key = std::string(schema[i].key);
    entries[i].type = schema[i].type;
    entries[i].mark = mark;
  }
  std::vector<bool> seen(schema.size(), false);
  std::vector<std::string> written_keys;

  if (node.valid() && !node.isNull() && !node.isMap()) {
    error(node, path, "expected a map, got " + node.describe());
  }
  for (const auto& [key_node, value_node] : node.entries()) {
    if (!key_node.isScalar()) {
      error(key_node, path, "a key must be a string, got " + key_node.describe());
      continue;
    }
    const std::string key = key_node.scalar();
    const std::string key_path = childPath(path, key);
    auto it = std::find_if(schema.begin(), schema.end(),
                           [&](const ParamSpec& spec) { return spec.key == key; });
    if (it == schema.end()) {
      error(key_node, key_path, unknownKeyMessage(key, schema));
      continue;
    }
    auto index = static_cast<size_t>(it - schema.begin());
    if (seen[index]) {
      continue;  // a duplicate; the loader reports those
    }
    seen[index] = true;
    Entry& entry = entries[index];
    if (value_node.isNull()) {
      seen[index] = false;  // same as not written: the default applies
      if (it->required) {
        seen[index] = true;
        error(value_node, key_path, "is required but has no value");
      }
      continue;
    }
    entry.mark = markOf(value_node);
    if (value(*it, value_node, key_path, entry)) {
      entry.written = true;
      entry.present = true;
      entry.raw = value_node;
      written_keys.push_back(key);
    }
  }
  for (size_t i = 0; i < schema.size(); ++i) {
    if (seen[i]) {
      continue;
    }
    const ParamSpec& spec = schema[i];
    const std::string key_path = childPath(path, spec.key);
    if (spec.required) {
      if (check_required) {
        report({file, mark, key_path, "required key " + quote(spec.key) + " is missing"});
      }
      if (spec.type == ParamType::kMap) {
        entries[i].section = defaultsOnly(spec.fields, key_path, file, mark);
        entries[i].present = true;
      }
      continue;
    }
    applyDefault(spec, key_path, file, mark, entries[i]);
  }
  return std::make_unique<ValidatedSection>(file, mark, path, std::move(entries),
                                            std::move(written_keys));
}

std::unique_ptr<ValidatedSection> Validator::defaultsOnly(std::span<const ParamSpec> schema,
                                                          const std::string& path,
                                                          const std::string& file, Mark mark) {
  Validator nested(errors_, file, mark);
  return nested.section(RawNode(), schema, path, false);
}

bool Validator::value(const ParamSpec& spec, const RawNode& node, const std::string& path,
                      Entry& entry) {
  if (isScalarType(spec.type)) {
    if (!node.isScalar()) {
      error(node, path, "expected " + expected(spec) + ", got " + node.describe());
      return false;
    }
    auto parsed = parseScalar(spec, node.scalar(), entry);
    if (!parsed) {
      error(node, path, parsed.error());
      return false;
    }
    return true;
  }
  switch (spec.type) {
    case ParamType::kStringList: {
      bool ok = true;
      if (node.isScalar()) {
        entry.strings.push_back(node.scalar());
      } else if (node.isSeq()) {
        std::vector<RawNode> items = node.items();
        for (size_t i = 0; i < items.size(); ++i) {
          if (!items[i].isScalar()) {
            error(items[i], indexPath(path, i), "expected a string, got " + items[i].describe());
            ok = false;
            continue;
          }
          entry.strings.push_back(items[i].scalar());
        }
      } else {
        error(node, path, "expected a list of strings, got " + node.describe());
        return false;
      }
      if (auto count = checkCount(spec, entry.strings.size()); ok && !count) {
        error(node, path, count.error());
        return false;
      }
      return ok;
    }
    case ParamType::kMap:
      if (!node.isMap()) {
        error(node, path, "expected a map, got " + node.describe());
        entry.section = defaultsOnly(spec.fields, path, fileOf(node), markOf(node));
        entry.present = true;
        return false;
      }
      entry.section = section(node, spec.fields, path, true);
      return true;
    case ParamType::kMapList: {
      if (!node.isSeq()) {
        error(node, path, "expected a list of maps, got " + node.describe());
        return false;
      }
      std::vector<RawNode> items = node.items();
      bool ok = true;
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string item_path = indexPath(path, i);
        if (!items[i].isMap() && !items[i].isNull()) {
          error(items[i], item_path, "expected a map, got " + items[i].describe());
          ok = false;
          continue;
        }
        entry.sections.push_back(section(items[i], spec.fields, item_path, true));
      }
      if (auto count = checkCount(spec, items.size()); !count) {
        error(node, path, count.error());
        return false;
      }
      return ok;
    }
    case ParamType::kAny:
      return true;
    default:
      break;
  }
  return false;
}

void Validator::applyDefault(const ParamSpec& spec, const std::string& path,
                             const std::string& file, Mark mark, Entry& entry) {
  entry.mark = mark;
  const auto bad_default = [&](const std::string& why) {
    report({file, mark, path,
            "invalid default " + quote(spec.default_value) + " in the schema: " + why});
  };
  if (spec.default_value.empty()) {
    if (spec.type == ParamType::kMap) {
      entry.section = defaultsOnly(spec.fields, path, file, mark);
      entry.present = true;
    }
    return;
  }
  if (isScalarType(spec.type)) {
    auto parsed = parseScalar(spec, std::string(spec.default_value), entry);
    if (!parsed) {
      bad_default(parsed.error());
      return;
    }
    entry.present = true;
    return;
  }
  auto doc = loadString(std::string(spec.default_value), file);
  if (!doc) {
    bad_default(doc.error().front().message);
    if (spec.type == ParamType::kMap) {
      entry.section = defaultsOnly(spec.fields, path, file, mark);
      entry.present = true;
    }
    return;
  }
  if (doc->root.isNull()) {
    // "~" as a default says "no default" in a roundabout way.
    if (spec.type == ParamType::kMap) {
      entry.section = defaultsOnly(spec.fields, path, file, mark);
      entry.present = true;
    }
    return;
  }
  Errors nested_errors;
  Validator nested(nested_errors, file, mark);
  bool ok = nested.value(spec, doc->root, path, entry);
  if (spec.type == ParamType::kMap && entry.section == nullptr) {
    entry.section = defaultsOnly(spec.fields, path, file, mark);
    entry.present = true;
  }
  if (!nested_errors.empty()) {
    bad_default(nested_errors.front().path + ": " + nested_errors.front().message);
    return;
  }
  if (ok) {
    entry.present = true;
    entry.raw = doc->root;
  }
}

bool isSnakeCase(std::string_view key) {
  if (key.empty() || !(key[0] >= 'a' && key[0] <= 'z')) {
    return false;
  }
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Optimal string alignment distance: Levenshtein plus the swap of two neighbours, the most
// common typo ("tiemout").
size_t editDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  std::vector<size_t> prev2(m + 1);
  std::vector<size_t> prev(m + 1);
  std::vector<size_t> cur(m + 1);
  for (size_t j = 0; j <= m; ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

}  // namespace

std::string suggest(std::string_view word, std::span<const std::string_view> candidates) {
  // Keys are short; this also bounds the work for a pathological unknown key.
  constexpr size_t kMaxCompared = 256;
  if (word.empty() || word.size() > kMaxCompared) {
    return {};
  }
  const size_t allowed = std::clamp<size_t>(word.size() / 3, 1, 3);
  std::string_view best;
  size_t best_distance = allowed + 1;
  for (auto candidate : candidates) {
    if (candidate.size() > kMaxCompared) {
      continue;
    }
    size_t distance = editDistance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return std::string(best);
}

std::unique_ptr<ValidatedSection> validate(const RawNode& node,
                                           std::span<const ParamSpec> schema,
                                           const std::string& path, Errors& errors) {
  Validator validator(errors);
  return validator.section(node, schema, path, true);
}

void checkNonReloadable(const ValidatedSection& old_section,
                        const ValidatedSection& new_section, std::span<const ParamSpec> schema,
                        const std::string& path, Errors& errors) {
  for (const auto& spec : schema) {
    const std::string key_path = childPath(path, spec.key);
    if (!spec.reloadable) {
      if (old_section.fingerprint(spec.key) != new_section.fingerprint(spec.key)) {
        errors.push_back({new_section.file(), new_section.mark(spec.key), key_path,
                          std::string(spec.key) + " cannot change on reload (requires restart)"});
      }
      continue;
    }
    if (spec.type == ParamType::kMap) {
      checkNonReloadable(old_section.section(spec.key), new_section.section(spec.key),
                         spec.fields, key_path, errors);
    }
  }
}

void checkSchema(std::span<const ParamSpec> schema, const std::string& path, Errors& errors) {
  const auto bug = [&](const std::string& key_path, std::string message) {
    errors.push_back({"", {}, key_path, "schema: " + std::move(message)});
  };
  for (size_t i = 0; i < schema.size(); ++i) {
    const ParamSpec& spec = schema[i];
    const std::string key_path = childPath(path, spec.key);
    if (!isSnakeCase(spec.key)) {
      bug(key_path, "key " + quote(spec.key) + " is not snake_case");
    }
    for (size_t j = 0; j < i; ++j) {
      if (schema[j].key == spec.key) {
        bug(key_path, "key " + quote(spec.key) + " is declared twice");
      }
    }
    if (spec.min > spec.max) {
      bug(key_path, "min " + std::to_string(spec.min) + " is greater than max " +
                        std::to_string(spec.max));
    }
    const bool is_enum = spec.type == ParamType::kEnum;
    if (is_enum && spec.choices.empty()) {
      bug(key_path, "an enum needs choices");
    }
    if (!is_enum && !spec.choices.empty()) {
      bug(key_path, "choices are only for enums");
    }
    const bool is_map = spec.type == ParamType::kMap || spec.type == ParamType::kMapList;
    if (is_map && spec.fields.empty()) {
      bug(key_path, "a map needs fields (use kAny for free-form maps)");
    }
    if (!is_map && !spec.fields.empty()) {
      bug(key_path, "fields are only for kMap and kMapList");
    }
    if (spec.required && !spec.default_value.empty()) {
      bug(key_path, "a required key cannot have a default");
    }
    if (!spec.default_value.empty() && spec.min <= spec.max) {
      Errors default_errors;
      Entry entry;
      Validator(default_errors).applyDefault(spec, key_path, "", {}, entry);
      for (auto& e : default_errors) {
        bug(e.path, std::move(e.message));
      }
    }
    if (is_map) {
      checkSchema(spec.fields, key_path, errors);
    }
  }
}

}  // namespace imgate::core::config
