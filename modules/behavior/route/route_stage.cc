// SPDX-License-Identifier: Apache-2.0
#include "route_stage.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <random>

#include "modules/common/base64.h"
#include "modules/common/json_text.h"
#include "modules/common/message_meta.h"

namespace imgate::mod::route {

namespace {

constexpr std::array<std::string_view, 2> kNoMatch = {"reject", "drop"};

constexpr std::array<ParamSpec, 10> kRuleSchema = {{
    {.key = "app", .type = ParamType::kString, .default_value = "",
     .help = "RE2 pattern the whole app must match; empty matches any"},
    {.key = "event", .type = ParamType::kString, .default_value = "",
     .help = "RE2 pattern the whole event name must match; empty matches any"},
    {.key = "user", .type = ParamType::kString, .default_value = "",
     .help = "RE2 pattern the whole user id must match; empty matches any"},
    {.key = "listener", .type = ParamType::kString, .default_value = "",
     .help = "RE2 pattern the whole listener name must match; empty matches any"},
    {.key = "meta", .type = ParamType::kStringList,
     .help = "\"key=pattern\" entries: the message's metadata value for key must fully match "
             "the RE2 pattern (all entries must match)"},
    {.key = "upstream", .type = ParamType::kString, .required = true,
     .help = "upstream group (from `upstreams`) the message is POSTed to"},
    {.key = "path", .type = ParamType::kString, .default_value = "/imgate/messages",
     .help = "request path; {app} {user} {device} {event} {session} are replaced "
             "(percent-encoded)"},
    {.key = "gray_upstream", .type = ParamType::kString, .default_value = "",
     .help = "gray release: gray_users and a gray_percent share of users go here instead"},
    {.key = "gray_users", .type = ParamType::kStringList, .help = "users always sent to gray_upstream"},
    {.key = "gray_percent", .type = ParamType::kInt, .default_value = "0", .min = 0, .max = 100,
     .help = "stable share of users (by hash of app and user) sent to gray_upstream"},
}};

constexpr std::array<ParamSpec, 5> kSchema = {{
    {.key = "rules", .type = ParamType::kMapList, .required = true, .min = 1,
     .help = "evaluated in order; the first match routes the message", .fields = kRuleSchema},
    {.key = "no_match", .type = ParamType::kEnum, .default_value = "reject", .choices = kNoMatch,
     .help = "a message no rule matches: reject (error ack \"not_found\" to the sender) or drop "
             "(silently)"},
    {.key = "timeout", .type = ParamType::kDuration, .default_value = "0", .min = 0,
     .max = 300'000, .help = "backend answer timeout; 0 uses the upstream group's timeout"},
    {.key = "dedupe_window", .type = ParamType::kDuration, .default_value = "60s", .min = 0,
     .max = 3'600'000,
     .help = "a message id seen again from the same user within this window is answered with "
             "the first answer and not forwarded again (clients retry after a lost ack); 0 "
             "disables"},
    {.key = "dedupe_max", .type = ParamType::kInt, .default_value = "100000", .min = 16,
     .max = 10'000'000,
     .help = "message ids remembered at most (oldest forgotten first), bounding the memory"},
}};

std::string percentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool fullMatch(const std::unique_ptr<RE2>& re, std::string_view value) {
  return !re || RE2::FullMatch(value, *re);
}

std::string traceId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  uint64_t v = rng();
  for (char& c : id) {
    c = kHex[v & 15];
    v >>= 4;
  }
  return id;
}

// The error categories an ack may carry, from the backend's HTTP status.
Errc errcForStatus(int status) {
  if (status == 401) return Errc::kUnauthenticated;
  if (status == 403) return Errc::kPermissionDenied;
  if (status == 404) return Errc::kNotFound;
  if (status == 413) return Errc::kMessageTooBig;
  if (status == 429) return Errc::kResourceExhausted;
  if (status >= 400 && status < 500) return Errc::kBadRequest;
  return Errc::kUnavailable;
}

class RouteStage final : public Stage {
 public:
  RouteStage(std::shared_ptr<const RouteConfig> config, StageCallbacks& callbacks)
      : config_(std::move(config)), callbacks_(callbacks) {}

  Verdict onMessage(Message& message) override {
    if (message.kind != MessageKind::kData) {
      return Verdict::pass();
    }
    if (DedupeTable* dedupe = config_->dedupe(); dedupe != nullptr && !message.id.empty()) {
      std::string key = message.app;
      key.append(1, '\0').append(message.from).append(1, '\0').append(message.id);
      if (metaValue(message, "id_scope") == "session") {
        // The protocol's ids are per connection (Socket.IO ack ids): a retry can only come on
        // the same session, and another session's equal id is another message.
        key.append(1, '\0').append(std::to_string(callbacks_.session().id()));
      }
      AckRecord known;
      switch (dedupe->begin(key, callbacks_.dispatcher().wallMs(), known)) {
        case DedupeTable::Seen::kDone:
          config_->duplicates().add();
          ack(message, known.code, known.reason, known.body);
          return Verdict::drop();
        case DedupeTable::Seen::kInFlight:
          config_->duplicates().add();
          ack(message, Errc::kUnavailable, "duplicate of a message still in flight; retry", {});
          return Verdict::drop();
        case DedupeTable::Seen::kNew:
          pending_key_ = std::move(key);
          break;
      }
    }
    const Rule* rule = config_->match(message, callbacks_.session());
    if (rule == nullptr) {
      config_->unrouted().add();
      if (config_->noMatch() == NoMatch::kDrop) {
        remember(AckRecord{Errc::kNotFound, "dropped", {}});
        return Verdict::drop();
      }
      ack(message, Errc::kNotFound, "no route for event \"" + message.event + "\"", {});
      return Verdict::drop();
    }
    UpstreamRequest request;
    request.path = expandPath(rule->path, message, callbacks_.session());
    const std::string trace = traceId();
    request.headers = {{"content-type", "application/json"}, {"x-imgate-trace-id", trace}};
    request.body = envelope(message, callbacks_.session(), trace);
    request.hash_key = message.app + "/" + message.from;
    request.timeout = config_->timeout();
    auto pending = std::make_shared<Message>(message);
    callbacks_.upstreams().call(
        config_->upstreamFor(*rule, message), std::move(request),
        [this, pending](Result<UpstreamResponse> result) { answered(*pending, std::move(result)); });
    return Verdict::pause();
  }

 private:
  void answered(const Message& message, Result<UpstreamResponse> result) {
    if (!result) {
      config_->failed().add();
      ack(message, Errc::kUnavailable, "backend unavailable: " + result.error().message, {});
    } else if (result->status >= 200 && result->status < 300) {
      config_->routed().add();
      BackendAnswer answer = parseAnswer(result->body);
      for (BackendAnswer::Push& p : answer.pushes) {
        callbacks_.hub().push(p.message.app.empty() ? message.app : p.message.app,
                              std::move(p.target), std::move(p.message), {});
      }
      if (!answer.error.empty()) {
        if (callbacks_.log().enabled(LogLevel::kWarn)) {
          callbacks_.log().log(LogLevel::kWarn, "backend answer to message \"" +
                                                    toValidUtf8(message.id) +
                                                    "\": " + answer.error);
        }
      }
      ack(message, Errc::kNone, {}, std::move(answer.reply), answer.reply_type);
    } else {
      config_->failed().add();
      const Errc code = errcForStatus(result->status);
      std::string body = result->status < 500 ? std::move(result->body) : std::string();
      const PayloadType type =
          common::isValidUtf8(body) ? PayloadType::kText : PayloadType::kBinary;
      ack(message, code,
          result->status >= 500 ? "backend unavailable"
                                : "rejected by backend (" + std::to_string(result->status) + ")",
          std::move(body), type);
    }
    callbacks_.resume();
  }

  // The answer to the sender: kAck with the client's message id, status "ok" or an error name
  // (meta "status"/"reason"), and the backend's reply body, if any.
  void ack(const Message& message, Errc code, std::string reason, std::string body,
           PayloadType type = PayloadType::kText) {
    Message ack;
    ack.kind = MessageKind::kAck;
    ack.type = type;
    ack.app = message.app;
    ack.id = message.id;
    ack.event = message.event;
    ack.ts_ms = callbacks_.dispatcher().wallMs();
    remember(AckRecord{code, reason, body});
    ack.meta.emplace_back("status", code == Errc::kNone ? "ok" : std::string(errcName(code)));
    if (!reason.empty()) {
      ack.meta.emplace_back("reason", std::move(reason));
    }
    ack.payload = makeBytes(std::move(body));
    callbacks_.reply(std::move(ack));
  }

  // Records the answer for de-duplication (once per forwarded message).
  void remember(const AckRecord& record) {
    if (!pending_key_.empty()) {
      config_->dedupe()->finish(pending_key_, callbacks_.dispatcher().wallMs(), record);
      pending_key_.clear();
    }
  }

 public:
  ~RouteStage() override {
    if (!pending_key_.empty()) {
      config_->dedupe()->abandon(pending_key_);  // the answer will never come: allow a retry
    }
  }

 private:
  std::shared_ptr<const RouteConfig> config_;
  StageCallbacks& callbacks_;
  std::string pending_key_;  // dedupe key of the message being forwarded
};

}  // namespace

std::span<const ParamSpec> routeSchema() { return kSchema; }

void DedupeTable::expire(Shard& s, int64_t now_ms) {
  while (!s.order.empty() &&
         (s.order.front().first <= now_ms || s.entries.size() > max_per_shard_)) {
    auto it = s.entries.find(s.order.front().second);
    if (it != s.entries.end() && it->second.expires_ms == s.order.front().first) {
      s.entries.erase(it);
    }
    s.order.pop_front();
  }
}

DedupeTable::Seen DedupeTable::begin(const std::string& key, int64_t now_ms, AckRecord& record) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  expire(s, now_ms);
  auto [it, inserted] = s.entries.try_emplace(key);
  if (!inserted) {
    if (it->second.done) {
      record = it->second.record;
      return Seen::kDone;
    }
    return Seen::kInFlight;
  }
  it->second.expires_ms = now_ms + window_.count();
  s.order.emplace_back(it->second.expires_ms, key);
  return Seen::kNew;
}

void DedupeTable::finish(const std::string& key, int64_t now_ms, const AckRecord& record) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(key);
  if (it == s.entries.end()) {
    return;
  }
  it->second.done = true;
  it->second.record = record;
  it->second.expires_ms = now_ms + window_.count();
  s.order.emplace_back(it->second.expires_ms, key);
}

void DedupeTable::abandon(const std::string& key) {
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.entries.find(key);
  if (it != s.entries.end() && !it->second.done) {
    s.entries.erase(it);
  }
}

namespace {

// The answer is parsed with encoding validation, but rapidjson decodes a \u escape of a lone
// surrogate into bytes that are not UTF-8: such a string (or the strings inside a compacted
// value, the only place the writer puts them) gets U+FFFD instead, as JSON.parse followed by
// any UTF-8 encoder would give.
std::string text(const rapidjson::Value& v) {
  return toValidUtf8(std::string_view(v.GetString(), v.GetStringLength()));
}

std::string compact(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return toValidUtf8(std::string_view(buf.GetString(), buf.GetSize()));
}

bool stringList(const rapidjson::Value& v, std::vector<std::string>& out) {
  if (!v.IsArray()) {
    return false;
  }
  for (const auto& item : v.GetArray()) {
    if (!item.IsString()) {
      return false;
    }
    out.push_back(text(item));
  }
  return true;
}

bool parseTarget(const rapidjson::Value& to, PushTarget& target) {
  if (to.IsString() && std::string_view(to.GetString()) == "all") {
    target.kind = TargetKind::kAll;
    return true;
  }
  if (!to.IsObject() || to.MemberCount() != 1) {
    return false;
  }
  const auto& m = *to.MemberBegin();
  const std::string_view kind(m.name.GetString(), m.name.GetStringLength());
  if (kind == "room" && m.value.IsString()) {
    target.kind = TargetKind::kRoom;
    target.ids.push_back(text(m.value));
    return true;
  }
  if (kind == "users" || kind == "rooms" || kind == "sessions") {
    target.kind = kind == "users" ? TargetKind::kUser
                  : kind == "rooms" ? TargetKind::kRoom
                                    : TargetKind::kSession;
    return stringList(m.value, target.ids);
  }
  return false;
}

}  // namespace

BackendAnswer parseAnswer(std::string_view body) {
  BackendAnswer answer;
  auto verbatim = [&answer, body] {
    answer.reply = std::string(body);
    answer.reply_type = common::isValidUtf8(body) ? PayloadType::kText : PayloadType::kBinary;
    return answer;
  };
  if (body.empty() || body.front() != '{' || body.find("\"imgate\"") == std::string_view::npos) {
    return verbatim();
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("imgate") ||
      !doc["imgate"].IsObject()) {
    return verbatim();
  }
  const auto& ins = doc["imgate"];
  if (ins.HasMember("reply")) {
    const auto& r = ins["reply"];
    answer.reply = r.IsString() ? text(r) : compact(r);
  }
  if (ins.HasMember("push")) {
    if (!ins["push"].IsArray()) {
      answer.error = "imgate.push must be a list";
      return answer;
    }
    for (const auto& p : ins["push"].GetArray()) {
      BackendAnswer::Push push;
      if (!p.IsObject() || !p.HasMember("to") || !parseTarget(p["to"], push.target)) {
        answer.error = "imgate.push entries need \"to\": {\"users\"|\"rooms\"|\"sessions\": [...]} "
                       "or {\"room\": ...} or \"all\"";
        continue;
      }
      Message& m = push.message;
      if (p.HasMember("data_base64") && p["data_base64"].IsString()) {
        auto bytes = common::base64Decode(
            std::string_view(p["data_base64"].GetString(), p["data_base64"].GetStringLength()));
        if (!bytes) {
          answer.error = "imgate.push data_base64 is not base64";
          continue;
        }
        m.type = PayloadType::kBinary;
        m.payload = makeBytes(std::move(*bytes));
      } else if (p.HasMember("data")) {
        const auto& d = p["data"];
        m.payload = makeBytes(d.IsString() ? text(d) : compact(d));
      } else {
        answer.error = "imgate.push entries need data or data_base64";
        continue;
      }
      if (p.HasMember("event") && p["event"].IsString()) {
        m.event = text(p["event"]);
      }
      if (p.HasMember("app") && p["app"].IsString()) {
        m.app = text(p["app"]);
      }
      answer.pushes.push_back(std::move(push));
    }
  }
  return answer;
}

StagePtr RouteConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<RouteStage>(shared_from_this(), callbacks);
}

const Rule* RouteConfig::match(const Message& message, const Session& session) const {
  for (const Rule& rule : rules_) {
    if (!fullMatch(rule.app, message.app) || !fullMatch(rule.event, message.event) ||
        !fullMatch(rule.user, message.from) || !fullMatch(rule.listener, session.listener())) {
      continue;
    }
    bool meta_ok = true;
    for (const auto& [key, re] : rule.meta) {
      std::string_view value;
      bool found = false;
      for (const auto& [k, v] : message.meta) {
        if (k == key) {
          value = v;
          found = true;
          break;
        }
      }
      if (!found || !RE2::FullMatch(value, *re)) {
        meta_ok = false;
        break;
      }
    }
    if (meta_ok) {
      return &rule;
    }
  }
  return nullptr;
}

const std::string& RouteConfig::upstreamFor(const Rule& rule, const Message& message) const {
  if (rule.gray_upstream.empty()) {
    return rule.upstream;
  }
  if (rule.gray_users.count(message.from) > 0 ||
      grayBucket(message.app, message.from) < rule.gray_percent) {
    return rule.gray_upstream;
  }
  return rule.upstream;
}

uint32_t grayBucket(std::string_view app, std::string_view user) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a: stable across runs, builds and nodes
  auto mix = [&h](std::string_view s) {
    for (char c : s) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ull;
    }
  };
  mix(app);
  mix("/");
  mix(user);
  return static_cast<uint32_t>(h % 100);
}

std::string expandPath(const std::string& path, const Message& message, const Session& session) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '{') {
      const size_t end = path.find('}', i);
      if (end != std::string::npos) {
        const std::string_view name(path.data() + i + 1, end - i - 1);
        std::string value;
        if (name == "app") {
          value = message.app;
        } else if (name == "user") {
          value = message.from;
        } else if (name == "device") {
          value = session.identity().device;
        } else if (name == "event") {
          value = message.event;
        } else if (name == "session") {
          value = std::to_string(session.id());
        } else {
          out.append(path, i, end - i + 1);
          i = end;
          continue;
        }
        out.append(percentEncode(value));
        i = end;
        continue;
      }
    }
    out.push_back(path[i]);
  }
  return out;
}

std::string envelope(const Message& message, const Session& session, std::string_view trace_id) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  // Ids, the event and a text body from codecs that do not check UTF-8 (TCP frames, lines) are
  // written as valid UTF-8 so that the backend always gets valid JSON.
  auto str = [&w](const char* key, std::string_view value) {
    w.Key(key);
    writeJsonString(w, value);
  };
  w.StartObject();
  str("app", message.app);
  str("user", message.from);
  str("device", session.identity().device);
  str("session", std::to_string(session.id()));
  str("listener", session.listener());
  str("protocol", session.protocol());
  str("id", message.id);
  str("event", message.event);
  w.Key("ts");
  w.Int64(message.ts_ms);
  str("trace_id", trace_id);
  // Text that is not UTF-8 (TCP frames and lines do not check) goes as binary: a JSON string
  // could carry it only with its bytes replaced.
  if (message.type == PayloadType::kBinary || !common::isValidUtf8(message.data())) {
    str("type", "binary");
    str("body_base64", common::base64Encode(message.data()));
  } else {
    str("type", "text");
    str("body", message.data());
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<StageConfigPtr> compileRoute(const ConfigView& config, LoadContext& context) {
  std::vector<Rule> rules;
  const auto views = config.children("rules");
  for (size_t i = 0; i < views.size(); ++i) {
    const ConfigView& v = *views[i];
    Rule rule;
    const std::string where = "rules[" + std::to_string(i) + "]";
    for (const auto& [key, slot] : {std::pair{"app", &rule.app}, std::pair{"event", &rule.event},
                                    std::pair{"user", &rule.user},
                                    std::pair{"listener", &rule.listener}}) {
      const std::string pattern = v.getString(key);
      if (pattern.empty()) {
        continue;
      }
      RE2::Options options;
      options.set_log_errors(false);
      *slot = std::make_unique<RE2>(pattern, options);
      if (!(*slot)->ok()) {
        return fail(Errc::kInvalidConfig, where + "." + key + ": bad pattern \"" + pattern +
                                              "\": " + (*slot)->error());
      }
    }
    for (const std::string& entry : v.getStringList("meta")) {
      const size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0) {
        return fail(Errc::kInvalidConfig, where + ".meta: \"" + entry + "\" is not key=pattern");
      }
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_unique<RE2>(entry.substr(eq + 1), options);
      if (!re->ok()) {
        return fail(Errc::kInvalidConfig, where + ".meta: bad pattern \"" + entry + "\": " + re->error());
      }
      rule.meta.emplace_back(entry.substr(0, eq), std::move(re));
    }
    rule.upstream = v.getString("upstream");
    rule.path = v.getString("path");
    if (rule.path.empty() || rule.path[0] != '/') {
      return fail(Errc::kInvalidConfig, where + ".path: must start with /");
    }
    rule.gray_upstream = v.getString("gray_upstream");
    for (const std::string& u : v.getStringList("gray_users")) {
      rule.gray_users.insert(u);
    }
    rule.gray_percent = static_cast<uint32_t>(v.getInt("gray_percent"));
    if (rule.gray_upstream.empty() && (rule.gray_percent > 0 || !rule.gray_users.empty())) {
      return fail(Errc::kInvalidConfig, where + ": gray_users/gray_percent need gray_upstream");
    }
    for (const std::string* group : {&rule.upstream, &rule.gray_upstream}) {
      if (!group->empty() && !context.hasUpstream(*group)) {
        return fail(Errc::kInvalidConfig, where + ": no upstream group named \"" + *group + "\"");
      }
    }
    rules.push_back(std::move(rule));
  }
  const NoMatch no_match = config.getString("no_match") == "drop" ? NoMatch::kDrop : NoMatch::kReject;
  std::unique_ptr<DedupeTable> dedupe;
  if (config.getDuration("dedupe_window").count() > 0) {
    dedupe = std::make_unique<DedupeTable>(config.getDuration("dedupe_window"),
                                           static_cast<size_t>(config.getInt("dedupe_max")));
  }
  return std::make_shared<const RouteConfig>(
      std::move(rules), no_match, config.getDuration("timeout"), std::move(dedupe),
      context.stats().counter("route_forwarded"), context.stats().counter("route_failed"),
      context.stats().counter("route_unrouted"), context.stats().counter("route_duplicates"));
}

}  // namespace imgate::mod::route
