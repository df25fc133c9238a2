// SPDX-License-Identifier: Apache-2.0
// example.content_filter: a behaviour stage that screens what clients send against word lists
// (the seeds' content-moderation hook). Lists are files of RE2 patterns, one per line, read at
// load and at every reload; an app may have its own list. A match is masked in place or the
// message is refused with an error ack; the session stays open either way.
#pragma once

#include <re2/re2.h>

#include <map>
#include <memory>
#include <string>

#include "imgate/sdk/module.h"

namespace imgate::mod::content_filter {

enum class FilterAction : uint8_t { kMask, kReject };

class FilterConfig final : public StageConfig, public std::enable_shared_from_this<FilterConfig> {
 public:
  FilterConfig(std::unique_ptr<RE2> all_apps, std::map<std::string, std::unique_ptr<RE2>> per_app,
               FilterAction action, char32_t mask, Counter& masked, Counter& rejected)
      : all_apps_(std::move(all_apps)), per_app_(std::move(per_app)), action_(action),
        mask_(mask), masked_(masked), rejected_(rejected) {}
  StagePtr createStage(StageCallbacks& callbacks) const override;

  // The list for `app` (its own, else the default one); null when there is none.
  const RE2* listFor(const std::string& app) const;
  // Replaces every match in `text` with the mask character, one per code point matched.
  // Returns the number of matches.
  size_t mask(const RE2& list, std::string& text) const;
  FilterAction action() const { return action_; }
  Counter& masked() const { return masked_; }
  Counter& rejected() const { return rejected_; }

 private:
  std::unique_ptr<RE2> all_apps_;
  std::map<std::string, std::unique_ptr<RE2>> per_app_;
  FilterAction action_;
  char32_t mask_;
  Counter& masked_;
  Counter& rejected_;
};

// Reads a word list: one RE2 pattern per line; blank lines and lines starting with '#' are
// skipped. Returns the patterns joined as one case-insensitive alternation.
Result<std::unique_ptr<RE2>> loadList(const std::string& path);

std::span<const ParamSpec> filterSchema();
Result<StageConfigPtr> compileFilter(const ConfigView& config, LoadContext& context);

}  // namespace imgate::mod::content_filter
