// SPDX-License-Identifier: Apache-2.0
#include "content_filter.h"

#include <array>
#include <fstream>
#include <sstream>

namespace imgate::mod::content_filter {

namespace {

constexpr std::array<std::string_view, 2> kActions = {"mask", "reject"};

constexpr std::array<ParamSpec, 2> kAppSchema = {{
    {.key = "app", .type = ParamType::kString, .required = true, .help = "the app (tenant)"},
    {.key = "words_file", .type = ParamType::kString, .required = true,
     .help = "this app's list (replaces the default list for it)"},
}};

constexpr std::array<ParamSpec, 4> kSchema = {{
    {.key = "words_file", .type = ParamType::kString, .default_value = "",
     .help = "default list: one RE2 pattern per line, '#' comments; relative to the config "
             "file; re-read at every reload"},
    {.key = "apps", .type = ParamType::kMapList, .help = "per-app lists", .fields = kAppSchema},
    {.key = "action", .type = ParamType::kEnum, .default_value = "mask", .choices = kActions,
     .help = "mask: replace each matched character with mask_char and pass the message on; "
             "reject: refuse the message with a permission_denied ack (the session stays)"},
    {.key = "mask_char", .type = ParamType::kString, .default_value = "*", .min = 1, .max = 4,
     .help = "one character (UTF-8) used for masking"},
}};

size_t utf8Length(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  }
  return n;
}

std::string encodeUtf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return out;
}

class FilterStage final : public Stage {
 public:
  FilterStage(std::shared_ptr<const FilterConfig> config, StageCallbacks& callbacks)
      : config_(std::move(config)), callbacks_(callbacks) {}

  Verdict onMessage(Message& message) override {
    if (message.kind != MessageKind::kData || message.type != PayloadType::kText) {
      return Verdict::pass();
    }
    const RE2* list = config_->listFor(message.app);
    if (list == nullptr) {
      return Verdict::pass();
    }
    std::string text(message.data());
    const size_t matches = config_->mask(*list, text);
    if (matches == 0) {
      return Verdict::pass();
    }
    if (config_->action() == FilterAction::kReject) {
      config_->rejected().add();
      Message ack;
      ack.kind = MessageKind::kAck;
      ack.app = message.app;
      ack.id = message.id;
      ack.event = message.event;
      ack.ts_ms = callbacks_.dispatcher().wallMs();
      ack.meta = {{"status", std::string(errcName(Errc::kPermissionDenied))},
                  {"reason", "message blocked by the content filter"}};
      ack.payload = makeBytes({});
      callbacks_.reply(std::move(ack));
      return Verdict::drop();
    }
    config_->masked().add(matches);
    message.payload = makeBytes(std::move(text));
    return Verdict::pass();
  }

 private:
  std::shared_ptr<const FilterConfig> config_;
  StageCallbacks& callbacks_;
};

}  // namespace

std::span<const ParamSpec> filterSchema() { return kSchema; }

StagePtr FilterConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<FilterStage>(shared_from_this(), callbacks);
}

const RE2* FilterConfig::listFor(const std::string& app) const {
  auto it = per_app_.find(app);
  if (it != per_app_.end()) {
    return it->second.get();
  }
  return all_apps_.get();
}

size_t FilterConfig::mask(const RE2& list, std::string& text) const {
  const std::string mask = encodeUtf8(mask_);
  std::string out;
  std::string_view rest(text);
  re2::StringPiece found;
  size_t count = 0;
  while (!rest.empty() && RE2::PartialMatch(re2::StringPiece(rest.data(), rest.size()), list, &found) &&
         !found.empty()) {
    const std::string_view match(found.data(), found.size());
    const size_t at = static_cast<size_t>(match.data() - rest.data());
    out.append(rest.substr(0, at));
    for (size_t i = utf8Length(match); i > 0; --i) {
      out.append(mask);
    }
    rest.remove_prefix(at + match.size());
    ++count;
  }
  if (count > 0) {
    out.append(rest);
    text.swap(out);
  }
  return count;
}

Result<std::unique_ptr<RE2>> loadList(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return fail(Errc::kInvalidConfig, "cannot read word list \"" + path + "\"");
  }
  std::string line;
  std::string pattern;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') {
      continue;
    }
    RE2::Options check_options;
    check_options.set_log_errors(false);
    RE2 check(line, check_options);
    if (!check.ok()) {
      return fail(Errc::kInvalidConfig, path + ":" + std::to_string(line_no) + ": bad pattern \"" +
                                            line + "\": " + check.error());
    }
    pattern.append(pattern.empty() ? "(?:" : "|(?:").append(line).append(")");
  }
  if (pattern.empty()) {
    return std::unique_ptr<RE2>();  // an empty list filters nothing
  }
  RE2::Options options;
  options.set_case_sensitive(false);
  options.set_log_errors(false);
  options.set_max_mem(64 << 20);
  auto re = std::make_unique<RE2>("(" + pattern + ")", options);
  if (!re->ok()) {
    return fail(Errc::kInvalidConfig, "word list \"" + path + "\": " + re->error());
  }
  return re;
}

Result<StageConfigPtr> compileFilter(const ConfigView& config, LoadContext& context) {
  auto resolve = [&context](const std::string& p) {
    return p.empty() || p[0] == '/' ? p : std::string(context.configDir()) + "/" + p;
  };
  std::unique_ptr<RE2> all;
  if (!config.getString("words_file").empty()) {
    auto list = loadList(resolve(config.getString("words_file")));
    if (!list) {
      return tl::unexpected(list.error());
    }
    all = std::move(*list);
  }
  std::map<std::string, std::unique_ptr<RE2>> per_app;
  for (const ConfigView* app : config.children("apps")) {
    auto list = loadList(resolve(app->getString("words_file")));
    if (!list) {
      return tl::unexpected(list.error());
    }
    per_app[app->getString("app")] = std::move(*list);
  }
  if (!all && per_app.empty() && config.getString("words_file").empty()) {
    return fail(Errc::kInvalidConfig, "set words_file or apps (nothing to filter)");
  }
  const std::string mask_text = config.getString("mask_char");
  if (mask_text.empty() || utf8Length(mask_text) != 1) {
    return fail(Errc::kInvalidConfig, "mask_char must be exactly one character");
  }
  char32_t mask = static_cast<unsigned char>(mask_text[0]);
  if (mask_text.size() > 1) {  // decode one UTF-8 sequence
    const int extra = static_cast<int>(mask_text.size()) - 1;
    mask &= 0x3F >> extra;
    for (int i = 1; i <= extra; ++i) {
      mask = (mask << 6) | (static_cast<unsigned char>(mask_text[static_cast<size_t>(i)]) & 0x3F);
    }
  }
  return std::make_shared<const FilterConfig>(
      std::move(all), std::move(per_app),
      config.getString("action") == "reject" ? FilterAction::kReject : FilterAction::kMask, mask,
      context.stats().counter("content_filter_masked"),
      context.stats().counter("content_filter_rejected"));
}

}  // namespace imgate::mod::content_filter
