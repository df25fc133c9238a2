// SPDX-License-Identifier: Apache-2.0
#include "jwt_stage.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "imgate/sdk/http.h"

namespace imgate::mod::auth_jwt {

namespace {

constexpr std::array<std::string_view, 2> kExpiryChoices = {"close", "ignore"};

constexpr std::array<ParamSpec, 20> kSchema = {{
    {.key = "secret",
     .type = ParamType::kString,
     .help = "HMAC secret, inline; not together with secret_file"},
    {.key = "secret_file",
     .type = ParamType::kString,
     .help = "file holding the HMAC secret (relative to the config file; trailing newlines "
             "are stripped; read at every reload)"},
    {.key = "public_key_file",
     .type = ParamType::kString,
     .help = "PEM public key (SubjectPublicKeyInfo) or X.509 certificate for RS*/PS*/ES*/EdDSA "
             "(relative to the config file; read at every reload)"},
    {.key = "jwks_file",
     .type = ParamType::kString,
     .help = "JSON Web Key Set (RFC 7517); a token's kid picks the key (relative to the config "
             "file; read at every reload, so rotation is: edit the file, reload)"},
    {.key = "algorithms",
     .type = ParamType::kStringList,
     .default_value = "HS256",
     .min = 1,
     .max = 13,
     .help = "accepted JWS algorithms: HS256/384/512, RS256/384/512, PS256/384/512, "
             "ES256/384/512, EdDSA; required with public_key_file or jwks_file; \"none\" is "
             "never accepted"},
    {.key = "leeway",
     .type = ParamType::kDuration,
     .default_value = "30s",
     .min = 0,
     .max = 10 * 60 * 1000,
     .help = "clock skew tolerated on exp/nbf/iat/max_age, also on open sessions (closed at "
             "exp + leeway); 30s absorbs unsynchronised clocks at no real cost"},
    {.key = "query_param",
     .type = ParamType::kString,
     .default_value = "token",
     .help = "handshake query parameter carrying the token (browsers cannot set headers on "
             "WebSocket); empty turns it off"},
    {.key = "subprotocol_prefix",
     .type = ParamType::kString,
     .default_value = "bearer.",
     .help = "offered WebSocket subprotocol \"<prefix><token>\" carrying the token; empty "
             "turns it off"},
    {.key = "user_claim",
     .type = ParamType::kString,
     .default_value = "sub",
     .help = "claim holding the user id (string or integer)"},
    {.key = "app_claim",
     .type = ParamType::kString,
     .default_value = "app",
     .help = "claim holding the app (tenant); empty turns it off"},
    {.key = "device_claim",
     .type = ParamType::kString,
     .default_value = "device",
     .help = "claim holding the device id; the \"device\" query parameter is the fallback"},
    {.key = "default_app",
     .type = ParamType::kString,
     .default_value = "default",
     .help = "app for tokens without the app claim"},
    {.key = "required",
     .type = ParamType::kBool,
     .default_value = "true",
     .help = "false lets sessions without a token in as anonymous (a bad token is still "
             "rejected)"},
    {.key = "issuer", .type = ParamType::kString, .help = "when set, the iss claim must equal it"},
    {.key = "audience",
     .type = ParamType::kString,
     .help = "when set, the aud claim (string or array) must contain it"},
    {.key = "rooms_claim",
     .type = ParamType::kString,
     .default_value = "rooms",
     .help = "claim listing the rooms the token allows (array of strings); empty turns it off"},
    {.key = "max_rooms",
     .type = ParamType::kInt,
     .default_value = "256",
     .min = 0,
     .max = 4096,
     .help = "most entries in the rooms claim; a token with more is refused"},
    {.key = "max_age",
     .type = ParamType::kDuration,
     .min = 1000,
     .max = int64_t{366} * 24 * 3600 * 1000,
     .help = "when set, tokens need iat and are refused once older than this (plus leeway); "
             "off by default"},
    {.key = "expiry",
     .type = ParamType::kEnum,
     .default_value = "close",
     .choices = kExpiryChoices,
     .help = "close: a session whose token has exp gets a token.expiring notice, may send "
             "auth.refresh with a new token, and is closed (unauthenticated) at exp + leeway; "
             "ignore: the token is checked at connect only"},
    {.key = "refresh_window",
     .type = ParamType::kDuration,
     .default_value = "60s",
     .min = 0,
     .max = int64_t{24} * 3600 * 1000,
     .help = "how long before exp the token.expiring notice is sent; a minute gives a client "
             "time to fetch a new token over a slow mobile link"},
}};

// RFC 7518 §3.2: the key must be at least as long as the hash output.
size_t minSecretBytes(Alg alg) {
  if (alg == Alg::kHs512) {
    return 64;
  }
  return alg == Alg::kHs384 ? 48 : 32;
}

std::string sizeText(size_t bytes) {
  constexpr size_t kMiB = 1024 * 1024;
  return bytes % kMiB == 0 ? std::to_string(bytes / kMiB) + " MiB"
                           : std::to_string(bytes / 1024) + " KiB";
}

tl::unexpected<Error> invalid(const ConfigView& config, std::string_view key, std::string message) {
  return fail(Errc::kInvalidConfig, config.location(key) + ": " + std::move(message));
}

struct FileText {
  std::string path;  // as opened, for messages
  std::string text;
};

// Reads the file named by `key`, relative to the config directory, refusing more than `limit`
// bytes without reading them all.
Result<FileText> readConfigFile(const ConfigView& config, std::string_view key,
                                std::string_view dir, size_t limit) {
  const std::string name = config.getString(key);
  FileText out;
  out.path = name;
  if (!name.empty() && name.front() != '/' && !dir.empty()) {
    out.path = std::string(dir) + "/" + name;
  }
  FILE* file = std::fopen(out.path.c_str(), "rb");
  if (file == nullptr) {
    return invalid(config, key, "cannot open \"" + out.path + "\": " + std::strerror(errno));
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0 && out.text.size() <= limit) {
    out.text.append(buf, n);
  }
  const bool read_error = std::ferror(file) != 0;
  std::fclose(file);
  if (read_error) {
    return invalid(config, key, "cannot read \"" + out.path + "\"");
  }
  if (out.text.size() > limit) {
    return invalid(config, key, "\"" + out.path + "\" is larger than " + sizeText(limit));
  }
  return out;
}

std::string describeKey(const VerificationKey& key) {
  std::string out = key.kid.empty() ? "no kid" : "kid \"" + key.kid + "\"";
  if (const auto* pk = dynamic_cast<const PublicKey*>(key.key.get())) {
    out += " " + pk->describe();
  } else {
    out += " HMAC";
  }
  if (key.alg) {
    out += " " + std::string(algName(*key.alg));
  }
  return out;
}

void warnIfShort(LoadContext& context, const HmacKey& key, std::string_view what,
                 const std::vector<Alg>& algorithms) {
  for (Alg alg : algorithms) {
    if (isHmac(alg) && key.secretSize() < minSecretBytes(alg)) {
      context.log().log(LogLevel::kWarn, std::string(what) + " is " +
                                             std::to_string(key.secretSize()) +
                                             " bytes, shorter than the " +
                                             std::to_string(minSecretBytes(alg)) +
                                             " bytes RFC 7518 asks for with " +
                                             std::string(algName(alg)));
      return;
    }
  }
}

std::string algorithmList() {
  std::string out;
  for (Alg alg : allAlgs()) {
    out += out.empty() ? "" : ", ";
    out += algName(alg);
  }
  return out;
}

}  // namespace

std::span<const ParamSpec> jwtStageSchema() { return kSchema; }

FoundToken findToken(const Session& session, const JwtSettings& settings) {
  return common::findToken(session, {.query_param = settings.query_param,
                                     .subprotocol_prefix = settings.subprotocol_prefix});
}

JwtStageConfig::JwtStageConfig(JwtSettings settings, JwtCounters counters)
    : settings_(std::move(settings)), counters_(counters) {}

StagePtr JwtStageConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<JwtStage>(*this, callbacks);
}

static_assert(sizeof(JwtStage) <= 64, "an authenticated session's stage fits the 64-byte class");

JwtStage::JwtStage(const JwtStageConfig& config, StageCallbacks& callbacks)
    : TimerSlot(&JwtStage::onTimerSlot), config_(config), callbacks_(callbacks) {
  // A fresh session has no expiry yet; a session whose stages a reload re-created keeps its.
  if (config_.settings().expiry == ExpiryMode::kClose && callbacks_.session().expiry().at_s != 0) {
    arm();
  }
}

int64_t JwtStage::nowSeconds() const {
  // Floor division: wallMs() is positive in practice, but a negative clock must not round up.
  const int64_t wall_ms = callbacks_.dispatcher().wallMs();
  return wall_ms >= 0 ? wall_ms / 1000 : -((-wall_ms + 999) / 1000);
}

Verdict JwtStage::onOpen() {
  const JwtSettings& settings = config_.settings();
  const Session& session = callbacks_.session();
  const FoundToken found = findToken(session, settings);
  if (found.source == TokenSource::kNone) {
    if (settings.required) {
      config_.rejected().add();
      return Verdict::reject(Errc::kUnauthenticated, "missing token");
    }
    config_.anonymous().add();
    return Verdict::pass();
  }
  auto claims = verify(found.token, settings.verifier, nowSeconds());
  if (!claims) {
    config_.rejected().add();
    return Verdict::reject(Errc::kUnauthenticated, std::move(claims.error().message));
  }
  if (claims->device.empty()) {
    if (auto device = session.handshakeQuery("device")) {
      claims->device = std::move(*device);
    }
  }
  // The rooms claim: joined by the core when the session opens.
  callbacks_.setIdentity(
      Identity{std::move(claims->app), std::move(claims->user), std::move(claims->device)},
      std::move(claims->rooms));
  config_.accepted().add();
  if (settings.expiry == ExpiryMode::kClose && claims->expires_s) {
    track(*claims->expires_s);
  }
  return Verdict::pass();
}

Verdict JwtStage::onMessage(Message& message) {
  if (config_.settings().expiry != ExpiryMode::kClose) {
    return Verdict::pass();
  }
  const RefreshRequest request = parseRefresh(message);
  if (!request.is_refresh) {
    return Verdict::pass();
  }
  return refresh(request);
}

void JwtStage::onClose() { untrack(); }

// ---- Expiry -----------------------------------------------------------------------------------

namespace {
std::chrono::milliseconds delayUntil(int64_t at_ms, int64_t now_ms) {
  return std::chrono::milliseconds(std::max<int64_t>(0, at_ms - now_ms));
}
}  // namespace

void JwtStage::track(int64_t exp_s) {
  callbacks_.setExpiry(SessionExpiry{exp_s, false});
  arm();
}

void JwtStage::untrack() {
  TimerSlot::cancel();
  callbacks_.setExpiry({});
}

void JwtStage::arm() {
  schedule(callbacks_.dispatcher().wallMs(), noticeAtMs(callbacks_.session().expiry()));
}

int64_t JwtStage::noticeAtMs(const SessionExpiry& expiry) const {
  return expiry.notified ? std::numeric_limits<int64_t>::max()
                         : expiry.at_s * 1000 - config_.settings().refresh_window.count();
}

void JwtStage::schedule(int64_t now_ms, int64_t notice_at_ms) {
  // The close: exp plus the verifier's leeway (the stage's config never changes under it).
  const int64_t exp_s = callbacks_.session().expiry().at_s;
  const int64_t close_at_ms = (exp_s + config_.settings().verifier.leeway.count()) * 1000;
  timer_for_close_ = close_at_ms <= notice_at_ms;
  const int64_t at = timer_for_close_ ? close_at_ms : notice_at_ms;
  TimerSlot::arm(callbacks_.dispatcher(), delayUntil(at, now_ms));
}

void JwtStage::onTimerSlot(TimerSlot& slot) { static_cast<JwtStage&>(slot).onTimer(); }

void JwtStage::onTimer() {
  if (timer_for_close_) {
    config_.counters().expired.add();
    callbacks_.close(Errc::kUnauthenticated, "token expired");
    return;
  }
  noticeDue();
}

void JwtStage::noticeDue() {
  const Session& session = callbacks_.session();
  const int64_t now_ms = callbacks_.dispatcher().wallMs();
  if (session.openedAtMs() == 0) {
    schedule(now_ms, now_ms + kNoticeRetry.count());  // replies before the accept are lost
    return;
  }
  // Recorded, and the close armed, before the reply: sending may run other stages' outbound
  // hooks, which may close the session (and run onClose, which forgets the expiry and cancels
  // the timer) before reply() returns.
  const int64_t exp_s = session.expiry().at_s;
  const SessionExpiry notified{exp_s, true};
  callbacks_.setExpiry(notified);
  schedule(now_ms, noticeAtMs(notified));
  config_.counters().notices.add();
  callbacks_.reply(expiringNotice(session.identity().app, exp_s, now_ms));
}

Verdict JwtStage::refresh(const RefreshRequest& request) {
  const Identity& identity = callbacks_.session().identity();
  const int64_t now_ms = callbacks_.dispatcher().wallMs();
  auto refuse = [&](std::string reason) {
    config_.counters().refresh_failed.add();
    callbacks_.reply(refreshError(identity.app, request.id, std::move(reason), now_ms));
    return Verdict::drop();
  };
  if (!request.error.empty()) {
    return refuse(request.error);
  }
  if (identity.user.empty()) {
    return refuse("anonymous session: nothing to refresh");
  }
  auto claims = verify(request.token, config_.settings().verifier, nowSeconds());
  if (!claims) {
    return refuse(std::move(claims.error().message));
  }
  // An empty app (default_app: "") is how the core's default tenant was reached at connect.
  const std::string_view app = claims->app.empty() ? std::string_view("default") : claims->app;
  if (claims->user != identity.user || app != identity.app) {
    return refuse("token is for another user");
  }
  if (claims->expires_s) {
    track(*claims->expires_s);
  } else {
    untrack();  // a token without exp: the session no longer expires
  }
  config_.counters().refreshed.add();
  callbacks_.reply(refreshAck(identity.app, request.id, claims->expires_s, now_ms));
  return Verdict::drop();
}

Result<StageConfigPtr> compileJwtStage(const ConfigView& config, LoadContext& context) {
  const bool has_secret = config.has("secret");
  const bool has_secret_file = config.has("secret_file");
  const bool has_pem = config.has("public_key_file");
  const bool has_jwks = config.has("jwks_file");
  if (has_secret && has_secret_file) {
    return fail(Errc::kInvalidConfig,
                config.location() +
                    ": use exactly one of \"secret\" and \"secret_file\", not both");
  }
  if (!has_secret && !has_secret_file && !has_pem && !has_jwks) {
    return fail(Errc::kInvalidConfig, config.location() +
                                          ": no key configured: set \"public_key_file\", "
                                          "\"jwks_file\", or exactly one of \"secret\" and "
                                          "\"secret_file\"");
  }

  JwtSettings settings;
  std::vector<Alg>& algorithms = settings.verifier.algorithms;
  algorithms.clear();
  // The HS256 default suits a shared secret; for public keys the operator names the
  // algorithms, so a key file never widens what is accepted by itself (RFC 8725 §3.1).
  if ((has_pem || has_jwks) && !config.has("algorithms")) {
    return invalid(config, "algorithms",
                   "\"algorithms\" must be listed when \"public_key_file\" or \"jwks_file\" is "
                   "set (e.g. [RS256] or [ES256]); the HS256 default is for secrets only");
  }
  for (const std::string& name : config.getStringList("algorithms")) {
    if (http_detail::iequals(name, "none")) {
      return invalid(config, "algorithms", "algorithm \"none\" cannot be enabled");
    }
    const std::optional<Alg> alg = algFromName(name);
    if (!alg) {
      return invalid(config, "algorithms",
                     "unknown algorithm \"" + name + "\" (expected one of " + algorithmList() +
                         ")");
    }
    if (std::find(algorithms.begin(), algorithms.end(), *alg) == algorithms.end()) {
      algorithms.push_back(*alg);
    }
  }
  if (algorithms.empty()) {
    return invalid(config, "algorithms", "at least one algorithm is required");
  }

  std::vector<VerificationKey>& keys = settings.verifier.keys;
  if (has_secret || has_secret_file) {
    const std::string_view key = has_secret ? "secret" : "secret_file";
    std::string secret;
    if (has_secret) {
      secret = config.getString("secret");
    } else {
      auto read = readConfigFile(config, key, context.configDir(), kMaxSecretFileBytes);
      if (!read) {
        return tl::unexpected<Error>(std::move(read.error()));
      }
      secret = std::move(read->text);
      // Files written by editors and `echo` end in a newline that is not part of the key.
      while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
      }
    }
    if (secret.empty()) {
      return invalid(config, key, "the secret is empty");
    }
    auto hmac = std::make_shared<HmacKey>(std::move(secret));
    warnIfShort(context, *hmac, "secret", algorithms);
    keys.push_back(VerificationKey{{}, std::nullopt, std::move(hmac)});
  }
  if (has_pem) {
    auto read = readConfigFile(config, "public_key_file", context.configDir(), kMaxKeyFileBytes);
    if (!read) {
      return tl::unexpected<Error>(std::move(read.error()));
    }
    auto key = PublicKey::fromPem(read->text);
    if (!key) {
      return invalid(config, "public_key_file", "\"" + read->path + "\": " + key.error().message);
    }
    context.log().log(LogLevel::kInfo,
                      "public_key_file \"" + read->path + "\": " + (*key)->describe());
    keys.push_back(VerificationKey{{}, std::nullopt, std::move(*key)});
  }
  if (has_jwks) {
    auto read = readConfigFile(config, "jwks_file", context.configDir(), kMaxKeyFileBytes);
    if (!read) {
      return tl::unexpected<Error>(std::move(read.error()));
    }
    auto jwks = parseJwks(read->text);
    if (!jwks) {
      return invalid(config, "jwks_file", "\"" + read->path + "\": " + jwks.error().message);
    }
    std::string summary = "jwks_file \"" + read->path + "\": " +
                          std::to_string(jwks->keys.size()) + " key(s):";
    for (size_t i = 0; i < jwks->keys.size(); ++i) {
      summary += (i == 0 ? " " : ", ") + describeKey(jwks->keys[i]);
      if (const auto* hmac = dynamic_cast<const HmacKey*>(jwks->keys[i].key.get())) {
        const std::vector<Alg> key_algs =
            jwks->keys[i].alg ? std::vector<Alg>{*jwks->keys[i].alg} : algorithms;
        warnIfShort(context, *hmac, "jwks_file key " + describeKey(jwks->keys[i]), key_algs);
      }
    }
    for (const std::string& skipped : jwks->skipped) {
      summary += "; skipped " + skipped;
    }
    context.log().log(LogLevel::kInfo, summary);
    for (VerificationKey& key : jwks->keys) {
      keys.push_back(std::move(key));
    }
  }

  // An algorithm no key can check refuses every such token. A JWK Set may gain the key at the
  // next rotation, so that case only warns; otherwise it is a mistake in this file.
  size_t covered = 0;
  for (Alg alg : algorithms) {
    const bool has_key = std::any_of(keys.begin(), keys.end(), [&](const VerificationKey& k) {
      return k.key->supports(alg) && (!k.alg || *k.alg == alg);
    });
    if (has_key) {
      ++covered;
    } else if (has_jwks) {
      context.log().log(LogLevel::kWarn, "no key verifies algorithm " +
                                             std::string(algName(alg)) +
                                             " yet: such tokens are refused");
    } else {
      return invalid(config, "algorithms",
                     "no configured key verifies \"" + std::string(algName(alg)) +
                         "\" (HS* need a secret; RS*, PS*, ES* and EdDSA need a matching "
                         "public_key_file or jwks_file)");
    }
  }
  if (covered == 0) {
    return invalid(config, "algorithms", "no configured key verifies any of the algorithms");
  }

  settings.verifier.leeway =
      std::chrono::duration_cast<std::chrono::seconds>(config.getDuration("leeway"));
  settings.verifier.user_claim = config.getString("user_claim");
  if (settings.verifier.user_claim.empty()) {
    return invalid(config, "user_claim", "must not be empty");
  }
  settings.verifier.app_claim = config.getString("app_claim");
  settings.verifier.device_claim = config.getString("device_claim");
  settings.verifier.default_app = config.getString("default_app");
  if (config.has("issuer")) {
    settings.verifier.issuer = config.getString("issuer");
  }
  if (config.has("audience")) {
    settings.verifier.audience = config.getString("audience");
  }
  settings.verifier.rooms_claim = config.getString("rooms_claim");
  settings.verifier.max_rooms =
      static_cast<size_t>(std::max<int64_t>(0, config.getInt("max_rooms")));
  if (config.has("max_age")) {
    settings.verifier.max_age =
        std::chrono::duration_cast<std::chrono::seconds>(config.getDuration("max_age"));
  }
  settings.query_param = config.getString("query_param");
  settings.subprotocol_prefix = config.getString("subprotocol_prefix");
  settings.required = config.getBool("required");
  settings.expiry = config.getString("expiry") == "ignore" ? ExpiryMode::kIgnore
                                                            : ExpiryMode::kClose;
  settings.refresh_window = config.getDuration("refresh_window");

  Stats& stats = context.stats();
  return std::make_shared<const JwtStageConfig>(
      std::move(settings),
      JwtCounters{stats.counter("auth_jwt_accepted"), stats.counter("auth_jwt_rejected"),
                  stats.counter("auth_jwt_anonymous"), stats.counter("auth_jwt_expiry_notices"),
                  stats.counter("auth_jwt_refreshed"), stats.counter("auth_jwt_refresh_failed"),
                  stats.counter("auth_jwt_expired")});
}

}  // namespace imgate::mod::auth_jwt
