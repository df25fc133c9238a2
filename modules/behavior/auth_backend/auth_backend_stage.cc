// SPDX-License-Identifier: Apache-2.0
#include "auth_backend_stage.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "imgate/sdk/http.h"
#include "modules/common/bearer_token.h"
#include "modules/common/json_text.h"
#include "modules/common/utf8.h"

namespace imgate::mod::auth_backend {

namespace {

constexpr int64_t kMaxDurationMs = int64_t{24} * 3600 * 1000;

constexpr std::array<ParamSpec, 14> kSchema = {{
    {.key = "upstream", .type = ParamType::kString, .required = true,
     .help = "upstream group (from `upstreams`) the credentials are POSTed to"},
    {.key = "path", .type = ParamType::kString, .default_value = "/auth",
     .help = "request path on the auth backend"},
    {.key = "timeout", .type = ParamType::kDuration, .default_value = "2s", .min = 1,
     .max = 60'000,
     .help = "answer timeout; the handshake waits this long at most, then is refused with 503 "
             "(a login check slower than 2s is an outage, not a slow answer)"},
    {.key = "forward_headers", .type = ParamType::kStringList,
     .default_value = "[origin, user-agent, x-forwarded-for]", .min = 0, .max = 32,
     .help = "handshake headers copied into the request's \"headers\" (e.g. add cookie for "
             "cookie sessions)"},
    {.key = "forward_query", .type = ParamType::kStringList, .default_value = "[device]",
     .min = 0, .max = 32, .help = "handshake query parameters copied into the request's \"query\""},
    {.key = "query_param", .type = ParamType::kString, .default_value = "token",
     .help = "handshake query parameter carrying the token; empty turns it off"},
    {.key = "subprotocol_prefix", .type = ParamType::kString, .default_value = "bearer.",
     .help = "offered WebSocket subprotocol \"<prefix><token>\" carrying the token; empty turns "
             "it off"},
    {.key = "require_token", .type = ParamType::kBool, .default_value = "true",
     .help = "refuse handshakes without a token here (401) instead of asking the backend; false "
             "sends them with \"token\": null (e.g. cookie sessions), never cached"},
    {.key = "default_app", .type = ParamType::kString, .default_value = "default",
     .help = "app for answers without \"app\""},
    {.key = "cache_ttl", .type = ParamType::kDuration, .default_value = "60s", .min = 0,
     .max = kMaxDurationMs,
     .help = "how long an allowed answer is reused for the same token (never past its "
             "expire_at); 0 asks the backend at every connect"},
    {.key = "negative_ttl", .type = ParamType::kDuration, .default_value = "5s", .min = 0,
     .max = kMaxDurationMs,
     .help = "how long a 401/403 answer is reused; short, so a fixed account works soon, long "
             "enough to absorb a reconnect storm with a revoked token"},
    {.key = "cache_size", .type = ParamType::kInt, .default_value = "100000", .min = 0,
     .max = 10'000'000,
     .help = "most cached answers (about 500 bytes each plus rooms); least recently used go "
             "first; 0 turns the cache off"},
    {.key = "max_answer", .type = ParamType::kSize, .default_value = "64KiB", .min = 64,
     .max = 16 << 20, .help = "largest backend answer read; a larger one counts as a failure"},
    {.key = "max_rooms", .type = ParamType::kInt, .default_value = "256", .min = 0, .max = 4096,
     .help = "most rooms one answer may join; more makes the answer invalid"},
}};

// Through a const object, so iterator comparisons stay unambiguous under C++20 (clang).
const rapidjson::Value* member(const rapidjson::Value& object, const char* key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string_view text(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

tl::unexpected<Error> bad(std::string message) {
  return fail(Errc::kUnavailable, std::move(message));
}

// Control characters become spaces and the text is cut to kMaxReasonBytes at a UTF-8 boundary
// (the parser validated the encoding).
std::string cleanReason(std::string_view in) {
  std::string out(in.substr(0, std::min(in.size(), kMaxReasonBytes + 1)));
  if (out.size() > kMaxReasonBytes) {
    size_t cut = kMaxReasonBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    out.resize(cut);
  }
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      c = ' ';
    }
  }
  return out;
}

Result<AuthAnswer> refusal(const UpstreamResponse& response, Errc code,
                           std::string_view fallback) {
  AuthAnswer answer;
  answer.code = code;
  answer.reason = std::string(fallback);
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
      response.body.data(), response.body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    const rapidjson::Value* reason = member(doc, "reason");
    if (reason != nullptr && reason->IsString() && reason->GetStringLength() > 0) {
      answer.reason = cleanReason(text(*reason));
    }
  }
  return answer;
}

Result<AuthAnswer> allowed(const UpstreamResponse& response, const BackendSettings& settings) {
  rapidjson::Document doc;
  // Iterative: a deeply nested answer must not exhaust the worker's stack.
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
      response.body.data(), response.body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return bad("answer " + std::to_string(response.status) + " is not a JSON object");
  }
  AuthAnswer answer;
  answer.allowed = true;
  const rapidjson::Value* uid = member(doc, "uid");
  if (uid != nullptr && uid->IsString()) {
    answer.user = std::string(text(*uid));
  } else if (uid != nullptr && uid->IsInt64()) {
    answer.user = std::to_string(uid->GetInt64());
  } else if (uid != nullptr && uid->IsUint64()) {
    answer.user = std::to_string(uid->GetUint64());
  }
  if (answer.user.empty()) {
    return bad("answer has no \"uid\" (a non-empty string or an integer)");
  }
  auto optionalString = [&](const char* key, std::string& out) -> Status {
    const rapidjson::Value* v = member(doc, key);
    if (v == nullptr || v->IsNull()) {
      return {};
    }
    if (!v->IsString()) {
      return bad(std::string("answer's \"") + key + "\" is not a string");
    }
    out = std::string(text(*v));
    return {};
  };
  if (Status s = optionalString("app", answer.app); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  if (answer.app.empty()) {
    answer.app = settings.default_app;
  }
  if (Status s = optionalString("device", answer.device); !s) {
    return tl::unexpected(std::move(s.error()));
  }
  if (const rapidjson::Value* rooms = member(doc, "rooms"); rooms != nullptr && !rooms->IsNull()) {
    if (!rooms->IsArray()) {
      return bad("answer's \"rooms\" is not an array");
    }
    if (rooms->Size() > settings.max_rooms) {
      return bad("answer has more than " + std::to_string(settings.max_rooms) + " rooms");
    }
    for (const rapidjson::Value& room : rooms->GetArray()) {
      if (!room.IsString() || room.GetStringLength() == 0) {
        return bad("answer's \"rooms\" has an entry that is not a non-empty string");
      }
      std::string name(text(room));
      if (std::find(answer.rooms.begin(), answer.rooms.end(), name) == answer.rooms.end()) {
        answer.rooms.push_back(std::move(name));
      }
    }
  }
  // rapidjson 1.1 decodes a \u escape of a lone low surrogate into invalid UTF-8 rather than
  // refusing it: such an id must not become a session's identity.
  bool unicode = common::isValidUtf8(answer.user) && common::isValidUtf8(answer.app) &&
                 common::isValidUtf8(answer.device);
  for (const std::string& room : answer.rooms) {
    unicode = unicode && common::isValidUtf8(room);
  }
  if (!unicode) {
    return bad("answer has a string that is not Unicode text (a lone UTF-16 surrogate)");
  }
  if (const rapidjson::Value* exp = member(doc, "expire_at"); exp != nullptr && !exp->IsNull()) {
    if (exp->IsInt64()) {
      answer.expire_at_s = exp->GetInt64();
    } else if (exp->IsNumber() && std::isfinite(exp->GetDouble()) &&
               std::fabs(exp->GetDouble()) < 1e15) {
      answer.expire_at_s = static_cast<int64_t>(std::floor(exp->GetDouble()));
    } else {
      return bad("answer's \"expire_at\" is not a number of seconds");
    }
  }
  return answer;
}

std::chrono::milliseconds delayUntil(int64_t at_ms, int64_t now_ms) {
  return std::chrono::milliseconds(std::max<int64_t>(0, at_ms - now_ms));
}

// ---- Stage ------------------------------------------------------------------------------------

class BackendStage final : public Stage, private TimerSlot {
 public:
  BackendStage(std::shared_ptr<const BackendConfig> config, StageCallbacks& callbacks)
      : TimerSlot(&BackendStage::onCloseDue), config_(std::move(config)), callbacks_(callbacks) {
    // A reload re-creates the stages of open sessions without onOpen: re-arm their close from
    // the expiry recorded with the session.
    if (const SessionExpiry expiry = callbacks_.session().expiry(); expiry.at_s != 0) {
      armClose(expiry.at_s);
    }
  }

  BackendStage(const BackendStage&) = delete;
  BackendStage& operator=(const BackendStage&) = delete;

  Verdict onOpen() override {
    const BackendSettings& settings = config_->settings();
    const Session& session = callbacks_.session();
    std::optional<std::string> token = findToken(session, settings);
    if (!token && settings.require_token) {
      config_->counters().rejected.add();
      return Verdict::reject(Errc::kUnauthenticated, "missing token");
    }
    // The handshake is gone once the session is accepted; keep what the answer may need.
    device_query_ = session.handshakeQuery("device").value_or("");
    const int64_t now_ms = callbacks_.dispatcher().wallMs();
    AuthCache* cache = config_->cache();
    if (token && cache != nullptr) {
      cache_key_ = AuthCache::keyOf(*token);
      if (AuthAnswerConstSharedPtr hit = cache->find(cache_key_, now_ms)) {
        config_->counters().cache_hits.add();
        return decide(*hit);
      }
      config_->counters().cache_misses.add();
    }
    UpstreamRequest request;
    request.method = "POST";
    request.path = settings.path;
    request.headers = {{"content-type", "application/json"}};
    request.body = requestBody(session, token, settings);
    request.timeout = settings.timeout;
    // The core drops this completion if the handshake dies first, so it may capture `this`.
    callbacks_.upstreams().call(settings.upstream, std::move(request),
                                [this](Result<UpstreamResponse> result) {
                                  answered(std::move(result));
                                });
    return Verdict::pause();
  }

  Verdict onMessage(Message& message) override {
    (void)message;
    return Verdict::pass();
  }

  void onClose() override {
    TimerSlot::cancel();
    callbacks_.setExpiry({});
  }

 private:
  void answered(Result<UpstreamResponse> result) {
    const int64_t now_ms = callbacks_.dispatcher().wallMs();
    Result<AuthAnswer> answer = interpretAnswer(result, config_->settings());
    if (!answer) {
      config_->counters().unavailable.add();
      if (config_->shouldWarn(now_ms) && callbacks_.log().enabled(LogLevel::kWarn)) {
        callbacks_.log().log(LogLevel::kWarn, "auth backend \"" + config_->settings().upstream +
                                                  "\" unavailable: " + answer.error().message);
      }
      callbacks_.reject(Errc::kUnavailable, "auth backend unavailable");
      return;
    }
    auto shared = std::make_shared<const AuthAnswer>(std::move(*answer));
    remember(shared, now_ms);
    Verdict v = decide(*shared);
    if (v.action == Action::kReject) {
      callbacks_.reject(v.code, std::move(v.reason));
      return;
    }
    // Nothing of this stage may be touched after resume(): the rest of the open runs inside it,
    // and may end the session or replace its stages.
    callbacks_.resume();
  }

  void remember(const AuthAnswerConstSharedPtr& answer, int64_t now_ms) {
    AuthCache* cache = config_->cache();
    if (cache == nullptr || cache_key_.empty()) {
      return;
    }
    const BackendSettings& settings = config_->settings();
    const std::chrono::milliseconds ttl =
        answer->allowed ? settings.cache_ttl : settings.negative_ttl;
    int64_t until_ms = now_ms + ttl.count();
    if (answer->allowed && answer->expire_at_s) {
      until_ms = std::min(until_ms, *answer->expire_at_s * 1000);
    }
    cache->insert(cache_key_, answer, until_ms, now_ms);
  }

  // Applies a decisive answer: the identity (with the rooms the core joins at open), the close
  // at expire_at, or the refusal.
  Verdict decide(const AuthAnswer& answer) {
    if (!answer.allowed) {
      config_->counters().rejected.add();
      return Verdict::reject(answer.code, answer.reason);
    }
    const int64_t now_ms = callbacks_.dispatcher().wallMs();
    if (answer.expire_at_s && *answer.expire_at_s * 1000 <= now_ms) {
      config_->counters().rejected.add();
      return Verdict::reject(Errc::kUnauthenticated, "credentials expired");
    }
    callbacks_.setIdentity(
        Identity{answer.app, answer.user, answer.device.empty() ? device_query_ : answer.device},
        answer.rooms);
    config_->counters().accepted.add();
    if (answer.expire_at_s) {
      callbacks_.setExpiry(SessionExpiry{*answer.expire_at_s, false});
      armClose(*answer.expire_at_s);
    }
    return Verdict::pass();
  }

  void armClose(int64_t expire_at_s) {
    TimerSlot::arm(callbacks_.dispatcher(),
                   delayUntil(expire_at_s * 1000, callbacks_.dispatcher().wallMs()));
  }

  static void onCloseDue(TimerSlot& slot) {
    auto& self = static_cast<BackendStage&>(slot);
    self.config_->counters().expired.add();
    self.callbacks_.close(Errc::kUnauthenticated, "credentials expired");
  }

  std::shared_ptr<const BackendConfig> config_;
  StageCallbacks& callbacks_;
  std::string cache_key_;     // empty: the answer is not cached (no token, or no cache)
  std::string device_query_;  // the handshake's "device" query parameter
};

}  // namespace

// ---- Pieces -----------------------------------------------------------------------------------

std::span<const ParamSpec> backendSchema() { return kSchema; }

std::optional<std::string> findToken(const Session& session, const BackendSettings& settings) {
  common::FoundToken found = common::findToken(
      session, {.query_param = settings.query_param,
                .subprotocol_prefix = settings.subprotocol_prefix});
  if (found.source == common::TokenSource::kNone) {
    return std::nullopt;
  }
  return std::move(found.token);
}

std::string requestBody(const Session& session, const std::optional<std::string>& token,
                        const BackendSettings& settings) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  // Header values may hold any obs-text byte and a token may be percent-decoded into anything:
  // what is not UTF-8 becomes U+FFFD so that the backend always gets valid JSON.
  auto str = [&w](std::string_view s) { writeJsonString(w, s); };
  w.StartObject();
  w.Key("token");
  if (token) {
    str(*token);
  } else {
    w.Null();
  }
  w.Key("headers");
  w.StartObject();
  for (const std::string& name : settings.forward_headers) {
    if (auto value = session.handshakeHeader(name)) {
      str(name);
      str(*value);
    }
  }
  w.EndObject();
  w.Key("query");
  w.StartObject();
  for (const std::string& name : settings.forward_query) {
    if (auto value = session.handshakeQuery(name)) {
      str(name);
      str(*value);
    }
  }
  w.EndObject();
  w.Key("peer");
  str(session.peerAddress());
  w.Key("protocol");
  str(session.protocol());
  w.Key("listener");
  str(session.listener());
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

Result<AuthAnswer> interpretAnswer(const Result<UpstreamResponse>& result,
                                   const BackendSettings& settings) {
  if (!result) {
    return bad(std::string(errcName(result.error().code)) + ": " + result.error().message);
  }
  const UpstreamResponse& response = *result;
  if (response.body.size() > settings.max_answer) {
    return bad("answer of " + std::to_string(response.body.size()) + " bytes is over max_answer");
  }
  if (response.status == 401) {
    return refusal(response, Errc::kUnauthenticated, "rejected by the auth backend");
  }
  if (response.status == 403) {
    return refusal(response, Errc::kPermissionDenied, "forbidden by the auth backend");
  }
  if (response.status < 200 || response.status > 299) {
    return bad("status " + std::to_string(response.status) +
               (response.backend.empty() ? "" : " from " + response.backend));
  }
  return allowed(response, settings);
}

// ---- Config -----------------------------------------------------------------------------------

BackendConfig::BackendConfig(BackendSettings settings, BackendCounters counters)
    : settings_(std::move(settings)), counters_(counters) {
  if (settings_.cache_size > 0 &&
      (settings_.cache_ttl.count() > 0 || settings_.negative_ttl.count() > 0)) {
    cache_ = std::make_unique<AuthCache>(settings_.cache_size);
  }
}

StagePtr BackendConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<BackendStage>(shared_from_this(), callbacks);
}

bool BackendConfig::shouldWarn(int64_t now_ms) const {
  int64_t last = last_warn_ms_.load(std::memory_order_relaxed);
  return now_ms - last >= 1000 &&
         last_warn_ms_.compare_exchange_strong(last, now_ms, std::memory_order_relaxed);
}

Result<StageConfigPtr> compileBackend(const ConfigView& config, LoadContext& context) {
  BackendSettings s;
  s.upstream = config.getString("upstream");
  if (!context.hasUpstream(s.upstream)) {
    return fail(Errc::kInvalidConfig, config.location("upstream") +
                                          ": no upstream group named \"" + s.upstream + "\"");
  }
  s.path = config.getString("path");
  if (s.path.empty() || s.path[0] != '/') {
    return fail(Errc::kInvalidConfig, config.location("path") + ": must start with /");
  }
  s.timeout = config.getDuration("timeout");
  s.forward_headers.clear();
  for (std::string name : config.getStringList("forward_headers")) {
    if (name.empty()) {
      return fail(Errc::kInvalidConfig, config.location("forward_headers") +
                                            ": header names must not be empty");
    }
    std::transform(name.begin(), name.end(), name.begin(), http_detail::lower);
    if (std::find(s.forward_headers.begin(), s.forward_headers.end(), name) ==
        s.forward_headers.end()) {
      s.forward_headers.push_back(std::move(name));
    }
  }
  s.forward_query = config.getStringList("forward_query");
  s.query_param = config.getString("query_param");
  s.subprotocol_prefix = config.getString("subprotocol_prefix");
  s.require_token = config.getBool("require_token");
  s.default_app = config.getString("default_app");
  if (s.default_app.empty()) {
    return fail(Errc::kInvalidConfig, config.location("default_app") + ": must not be empty");
  }
  s.cache_ttl = config.getDuration("cache_ttl");
  s.negative_ttl = config.getDuration("negative_ttl");
  s.cache_size = static_cast<size_t>(config.getInt("cache_size"));
  s.max_answer = static_cast<size_t>(config.getSize("max_answer"));
  s.max_rooms = static_cast<size_t>(config.getInt("max_rooms"));
  Stats& stats = context.stats();
  return std::make_shared<const BackendConfig>(
      std::move(s),
      BackendCounters{stats.counter("auth_backend_accepted"),
                      stats.counter("auth_backend_rejected"),
                      stats.counter("auth_backend_unavailable"),
                      stats.counter("auth_backend_cache_hits"),
                      stats.counter("auth_backend_cache_misses"),
                      stats.counter("auth_backend_expired")});
}

}  // namespace imgate::mod::auth_backend
