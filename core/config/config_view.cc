// SPDX-License-Identifier: Apache-2.0
#include "config/config_view.h"

#include <utility>

namespace imgate::core::config {
namespace {

std::string positionText(const std::string& file, Mark mark) {
  std::string out = file;
  if (mark.line > 0) {
    out += ":" + std::to_string(mark.line) + ":" + std::to_string(mark.col);
  }
  return out;
}

std::string joinLocation(const std::string& position, const std::string& path) {
  if (position.empty()) {
    return path;
  }
  if (path.empty()) {
    return position;
  }
  return position + " " + path;
}

// Quotes with escapes so that no string can imitate the separators around it.
void appendQuoted(std::string& out, const std::string& text) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
}

}  // namespace

ValidatedSection::ValidatedSection(std::string file, Mark mark, std::string path,
                                   std::vector<Entry> entries,
                                   std::vector<std::string> written_keys)
    : file_(std::move(file)),
      mark_(mark),
      path_(std::move(path)),
      entries_(std::move(entries)),
      written_keys_(std::move(written_keys)) {}

ValidatedSection::~ValidatedSection() = default;

const ValidatedSection& ValidatedSection::empty() {
  static const ValidatedSection kEmpty;
  return kEmpty;
}

const ValidatedSection::Entry* ValidatedSection::find(std::string_view key) const {
  for (const auto& entry : entries_) {
    if (entry.key == key) {
      return &entry;
    }
  }
  return nullptr;
}

// A getter asked for the wrong type gets the zero value, like a key outside the schema: both
// are bugs in the caller, and a zero is safer than another key's bits.
const ValidatedSection::Entry* ValidatedSection::find(std::string_view key,
                                                      ParamType type) const {
  const Entry* entry = find(key);
  return entry != nullptr && entry->type == type && entry->present ? entry : nullptr;
}

std::string ValidatedSection::pathOf(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

std::string ValidatedSection::location() const {
  return joinLocation(positionText(file_, mark_), path_);
}

std::string ValidatedSection::location(std::string_view key) const {
  return joinLocation(positionText(file_, mark(key)), pathOf(key));
}

Mark ValidatedSection::mark(std::string_view key) const {
  const Entry* entry = find(key);
  return entry != nullptr && entry->written ? entry->mark : mark_;
}

bool ValidatedSection::has(std::string_view key) const {
  const Entry* entry = find(key);
  return entry != nullptr && entry->written;
}

bool ValidatedSection::getBool(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kBool);
  return entry != nullptr && entry->bool_value;
}

int64_t ValidatedSection::getInt(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kInt);
  return entry != nullptr ? entry->int_value : 0;
}

std::string ValidatedSection::getString(std::string_view key) const {
  const Entry* entry = find(key);
  if (entry == nullptr || !entry->present ||
      (entry->type != ParamType::kString && entry->type != ParamType::kEnum)) {
    return {};
  }
  return entry->text;
}

std::chrono::milliseconds ValidatedSection::getDuration(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kDuration);
  return entry != nullptr ? entry->duration : std::chrono::milliseconds(0);
}

int64_t ValidatedSection::getSize(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kSize);
  return entry != nullptr ? entry->int_value : 0;
}

Rate ValidatedSection::getRate(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kRate);
  return entry != nullptr ? entry->rate : Rate{};
}

std::vector<std::string> ValidatedSection::getStringList(std::string_view key) const {
  const Entry* entry = find(key, ParamType::kStringList);
  return entry != nullptr ? entry->strings : std::vector<std::string>{};
}

const ConfigView& ValidatedSection::child(std::string_view key) const { return section(key); }

std::vector<const ConfigView*> ValidatedSection::children(std::string_view key) const {
  std::vector<const ConfigView*> out;
  for (const ValidatedSection* s : sections(key)) {
    out.push_back(s);
  }
  return out;
}

const ValidatedSection& ValidatedSection::section(std::string_view key) const {
  const Entry* entry = find(key);
  if (entry == nullptr || entry->type != ParamType::kMap || entry->section == nullptr) {
    return empty();
  }
  return *entry->section;
}

std::vector<const ValidatedSection*> ValidatedSection::sections(std::string_view key) const {
  std::vector<const ValidatedSection*> out;
  const Entry* entry = find(key, ParamType::kMapList);
  if (entry != nullptr) {
    for (const auto& s : entry->sections) {
      out.push_back(s.get());
    }
  }
  return out;
}

RawNode ValidatedSection::raw(std::string_view key) const {
  const Entry* entry = find(key);
  return entry != nullptr ? entry->raw : RawNode();
}

std::string ValidatedSection::fingerprint(std::string_view key) const {
  const Entry* entry = find(key);
  if (entry == nullptr) {
    return {};
  }
  if (!entry->present) {
    return "~";
  }
  std::string out;
  switch (entry->type) {
    case ParamType::kBool:
      return entry->bool_value ? "true" : "false";
    case ParamType::kInt:
      return std::to_string(entry->int_value);
    case ParamType::kString:
    case ParamType::kEnum:
      appendQuoted(out, entry->text);
      return out;
    case ParamType::kDuration:
      return std::to_string(entry->duration.count()) + "ms";
    case ParamType::kSize:
      return std::to_string(entry->int_value) + "B";
    case ParamType::kRate:
      return std::to_string(entry->rate.count) + "/" + std::to_string(entry->rate.per.count()) +
             "ms";
    case ParamType::kStringList:
      out += '[';
      for (size_t i = 0; i < entry->strings.size(); ++i) {
        if (i > 0) {
          out += ',';
        }
        appendQuoted(out, entry->strings[i]);
      }
      out += ']';
      return out;
    case ParamType::kMap:
      return entry->section != nullptr ? entry->section->fingerprint() : "{}";
    case ParamType::kMapList:
      out += '[';
      for (size_t i = 0; i < entry->sections.size(); ++i) {
        if (i > 0) {
          out += ',';
        }
        out += entry->sections[i]->fingerprint();
      }
      out += ']';
      return out;
    case ParamType::kAny:
      return entry->raw.canonical();
  }
  return out;
}

std::string ValidatedSection::fingerprint() const {
  std::string out = "{";
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += entries_[i].key + "=" + fingerprint(entries_[i].key);
  }
  out += '}';
  return out;
}

}  // namespace imgate::core::config
