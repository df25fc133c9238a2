// SPDX-License-Identifier: Apache-2.0
// Errors from compile() carry only the message: the core adds file, line and YAML path.
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "imgate/sdk/module.h"
#include "push_api.h"

namespace imgate::mod::http_push {
namespace {

// Larger than any sane key; a bigger file is the wrong file (a certificate, a log).
constexpr size_t kMaxKeyFileBytes = 4096;

constexpr ParamSpec kKeyFields[] = {
    {.key = "key",
     .type = ParamType::kString,
     .help = "the secret sent in Authorization: Bearer <key> or X-API-Key; give key or key_file"},
    {.key = "key_file",
     .type = ParamType::kString,
     .help = "file holding the key (relative to the config file's folder), so the secret stays "
             "out of the config; surrounding whitespace is ignored"},
    {.key = "name",
     .type = ParamType::kString,
     .help = "label used in error reasons (default keys[<index>]); the key itself is never "
             "logged or answered"},
    {.key = "scopes",
     .type = ParamType::kStringList,
     .required = true,
     .min = 1,
     .help = "what the key may do: push (push, room membership), read (presence, members, "
             "stats), admin (kick, and everything)"},
    {.key = "rate",
     .type = ParamType::kRate,
     .min = 1,
     .help = "requests per period for this key, shared by all workers (a batch push counts each "
             "message); absent: no limit"},
    {.key = "burst",
     .type = ParamType::kInt,
     .min = 1,
     .max = 1'000'000'000,
     .help = "requests the key may send at once after a quiet time; default: the rate's count "
             "(one period's worth)"},
    {.key = "apps",
     .type = ParamType::kStringList,
     .help = "tenants the key may use (403 otherwise); absent: every app"},
};

constexpr ParamSpec kSchema[] = {
    {.key = "api_keys",
     .type = ParamType::kStringList,
     .help = "old-style keys with every scope and no rate limit, accepted in Authorization: "
             "Bearer <key> or X-API-Key; this or keys is required unless allow_anonymous is true"},
    {.key = "keys",
     .type = ParamType::kMapList,
     .help = "keys with scopes, an optional rate limit and an optional app list",
     .fields = kKeyFields},
    {.key = "allow_anonymous",
     .type = ParamType::kBool,
     .default_value = "false",
     .help = "accept requests without a key (only for a listener no one else can reach); off by "
             "default so a forgotten key list fails the load instead of opening the API"},
    {.key = "default_app",
     .type = ParamType::kString,
     .default_value = "default",
     .help = "tenant used when a request names none (JSON \"app\" or ?app=)"},
    {.key = "max_batch",
     .type = ParamType::kInt,
     .default_value = "1000",
     .min = 1,
     .max = 100000,
     .help = "most messages in one {\"messages\":[...]} push; bounds the work of one request"},
    {.key = "max_targets",
     .type = ParamType::kInt,
     .default_value = "10000",
     .min = 1,
     .max = 10000000,
     .help = "most ids in one target or member list; use a room or \"all\" for larger audiences"},
    {.key = "max_json_depth",
     .type = ParamType::kInt,
     .default_value = "64",
     .min = 1,
     .max = 512,
     .help = "deepest array/object nesting accepted in a body; bounds stack use when \"data\" is "
             "re-serialized"},
};

class HttpPushConfig final : public ProtocolConfig {
 public:
  HttpPushConfig(PushApiOptions options, PushApiCounters counters)
      : api_(std::move(options), counters) {}

  void onHttpRequest(const HttpExchangePtr& exchange) const override { api_.handle(exchange); }
  // Every endpoint answers with respond(): pipelined pushes on one connection run side by side.
  bool concurrentRequests() const override { return true; }

 private:
  PushApi api_;
};

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool hasOuterSpace(const std::string& s) {
  return !s.empty() && (isSpace(s.front()) || isSpace(s.back()));
}

// A header value can carry neither control characters nor DEL: such a key never matches.
bool hasControl(const std::string& s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      if (c != '\t') {
        return true;
      }
    }
  }
  return false;
}

// Checks one key's text; `label` names it ("keys[1]", "api_keys[0]"), never the key itself.
Status checkKeyText(const std::string& key, const std::string& label) {
  if (key.empty()) {
    return fail(Errc::kInvalidConfig, label + " is empty");
  }
  if (hasOuterSpace(key)) {
    return fail(Errc::kInvalidConfig,
                label + " starts or ends with whitespace, which no request can match");
  }
  if (hasControl(key)) {
    return fail(Errc::kInvalidConfig,
                label + " contains control characters, which no request header can carry");
  }
  return {};
}

// The key stored in `path`: the file's text without surrounding whitespace (the newline an
// editor adds). Read at load time on the main thread.
Result<std::string> readKeyFile(const std::string& path, const std::string& label) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(Errc::kInvalidConfig, label + ": cannot read key_file \"" + path + "\"");
  }
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) {
    return fail(Errc::kInvalidConfig, label + ": key_file \"" + path + "\" is larger than " +
                                          std::to_string(kMaxKeyFileBytes) +
                                          " bytes; it should hold one key");
  }
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && isSpace(text[begin])) {
    ++begin;
  }
  while (end > begin && isSpace(text[end - 1])) {
    --end;
  }
  text = text.substr(begin, end - begin);
  if (text.empty()) {
    return fail(Errc::kInvalidConfig, label + ": key_file \"" + path + "\" is empty");
  }
  if (text.find('\n') != std::string::npos || text.find('\r') != std::string::npos) {
    return fail(Errc::kInvalidConfig,
                label + ": key_file \"" + path + "\" has several lines; it should hold one key");
  }
  return text;
}

std::string resolvePath(std::string_view dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || dir.empty()) {
    return path;
  }
  std::string out(dir);
  if (out.back() != '/') {
    out.push_back('/');
  }
  return out + path;
}

// One entry of `keys`, checked; `index` is its position in the list.
Result<ApiKey> compileKey(const ConfigView& view, size_t index, LoadContext& context) {
  const std::string label = "keys[" + std::to_string(index) + "]";
  ApiKey key;
  key.name = view.has("name") ? view.getString("name") : label;
  if (key.name.empty()) {
    return fail(Errc::kInvalidConfig, label + ".name is empty");
  }
  const bool inline_key = view.has("key");
  const bool file_key = view.has("key_file");
  if (inline_key == file_key) {
    return fail(Errc::kInvalidConfig, label + ": give exactly one of key and key_file" +
                                          (inline_key ? " (both given)" : ""));
  }
  if (inline_key) {
    key.key = view.getString("key");
  } else {
    auto text = readKeyFile(resolvePath(context.configDir(), view.getString("key_file")), label);
    if (!text) {
      return tl::unexpected<Error>(std::move(text.error()));
    }
    key.key = std::move(*text);
  }
  if (auto ok = checkKeyText(key.key, inline_key ? label + ".key" : label + ".key_file");
      !ok) {
    return tl::unexpected<Error>(std::move(ok.error()));
  }

  key.scopes = 0;
  for (const auto& name : view.getStringList("scopes")) {
    const auto scope = parseScope(name);
    if (!scope) {
      return fail(Errc::kInvalidConfig, label + ".scopes: unknown scope \"" + name +
                                            "\" (expected push, read or admin)");
    }
    key.scopes |= static_cast<ScopeSet>(*scope);
  }
  if (key.scopes == 0) {
    return fail(Errc::kInvalidConfig, label + ".scopes is empty");
  }

  key.apps = view.getStringList("apps");
  for (const auto& app : key.apps) {
    if (app.empty()) {
      return fail(Errc::kInvalidConfig, label + ".apps has an empty name");
    }
  }
  if (view.has("apps") && key.apps.empty()) {
    return fail(Errc::kInvalidConfig,
                label + ".apps is empty, which would refuse every request (leave it out to "
                        "allow every app)");
  }

  if (view.has("rate")) {
    const Rate rate = view.getRate("rate");
    const int64_t burst = view.has("burst") ? view.getInt("burst") : int64_t{rate.count};
    auto limit = KeyLimit::make(rate, burst);
    if (!limit) {
      return fail(Errc::kInvalidConfig, label + ": " + limit.error().message);
    }
    key.limiter = sharedLimiter(context.instanceName(), key.key, *limit);
  } else if (view.has("burst")) {
    return fail(Errc::kInvalidConfig, label + ": burst needs a rate");
  }
  return key;
}

}  // namespace

class HttpPushFactory final : public ProtocolFactory {
 public:
  std::string_view name() const override { return "proto.http_push"; }
  std::span<const ParamSpec> schema() const override { return kSchema; }
  std::string_view description() const override {
    return "backend HTTP API: push to users, sessions, rooms or all; presence, kick, rooms";
  }

  Result<ProtocolConfigPtr> compile(const ConfigView& config,
                                    LoadContext& context) const override {
    PushApiOptions options;
    options.api_keys = config.getStringList("api_keys");
    const std::vector<const ConfigView*> key_views = config.children("keys");
    for (size_t i = 0; i < key_views.size(); ++i) {
      auto key = compileKey(*key_views[i], i, context);
      if (!key) {
        return tl::unexpected<Error>(std::move(key.error()));
      }
      options.keys.push_back(std::move(*key));
    }
    options.allow_anonymous = config.getBool("allow_anonymous");
    options.default_app = config.getString("default_app");
    options.max_batch = static_cast<size_t>(config.getInt("max_batch"));
    options.max_targets = static_cast<size_t>(config.getInt("max_targets"));
    options.max_json_depth = static_cast<size_t>(config.getInt("max_json_depth"));

    const bool no_keys = options.api_keys.empty() && options.keys.empty();
    if (no_keys && !options.allow_anonymous) {
      return fail(Errc::kInvalidConfig,
                  "api_keys needs at least one key, or keys one entry (or set allow_anonymous: "
                  "true to run the push api without authentication)");
    }
    // Labels by key text, to refuse a key listed twice (its scopes would be ambiguous).
    std::map<std::string, std::string, std::less<>> seen;
    for (size_t i = 0; i < options.api_keys.size(); ++i) {
      const std::string label = "api_keys[" + std::to_string(i) + "]";
      if (auto ok = checkKeyText(options.api_keys[i], label); !ok) {
        return tl::unexpected<Error>(std::move(ok.error()));
      }
      if (const auto [it, added] = seen.emplace(options.api_keys[i], label); !added) {
        return fail(Errc::kInvalidConfig, label + " is the same key as " + it->second);
      }
    }
    std::map<std::string, size_t, std::less<>> names;
    for (size_t i = 0; i < options.keys.size(); ++i) {
      const ApiKey& key = options.keys[i];
      const std::string label = "keys[" + std::to_string(i) + "]";
      if (const auto [it, added] = seen.emplace(key.key, label); !added) {
        return fail(Errc::kInvalidConfig, label + " is the same key as " + it->second);
      }
      if (const auto [it, added] = names.emplace(key.name, i); !added) {
        return fail(Errc::kInvalidConfig, label + " has the same name \"" + key.name +
                                              "\" as keys[" + std::to_string(it->second) + "]");
      }
    }
    if (options.default_app.empty()) {
      return fail(Errc::kInvalidConfig, "default_app must not be empty");
    }
    if (options.allow_anonymous && no_keys) {
      context.log().log(LogLevel::kWarn,
                        "allow_anonymous is true and api_keys is empty: anyone who reaches this "
                        "location can push, kick and read presence");
    } else if (options.allow_anonymous && !options.keys.empty()) {
      context.log().log(LogLevel::kWarn,
                        "allow_anonymous is true: requests without a key get every scope and no "
                        "rate limit, whatever the keys allow");
    }

    Stats& stats = context.stats();
    const PushApiCounters counters{
        .requests = &stats.counter("http_push_requests"),
        .errors = &stats.counter("http_push_errors"),
        .unauthorized = &stats.counter("http_push_unauthorized"),
        .messages = &stats.counter("http_push_messages"),
        .forbidden = &stats.counter("http_push_forbidden"),
        .rate_limited = &stats.counter("http_push_rate_limited"),
    };
    return std::make_shared<const HttpPushConfig>(std::move(options), counters);
  }
};

}  // namespace imgate::mod::http_push

IMGATE_MODULE(proto_http_push, imgate::mod::http_push::HttpPushFactory, "0.1.0")
