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

constexpr std::array<ParamSpec, 13> kSchema = {{
    {.key = "secret",
     .type = ParamType::kString,
     .help = "HMAC secret, inline; exactly one of secret and secret_file is required"},
    {.key = "secret_file",
     .type = ParamType::kString,
     .help = "file holding the HMAC secret (relative to the config file; trailing newlines "
             "are stripped)"},
    {.key = "algorithms",
     .type = ParamType::kStringList,
     .default_value = "HS256",
     .min = 1,
     .max = 3,
     .help = "accepted JWS algorithms, from HS256, HS384, HS512; \"none\" is never accepted"},
    {.key = "leeway",
     .type = ParamType::kDuration,
     .default_value = "30s",
     .min = 0,
     .max = 10 * 60 * 1000,
     .help = "clock skew tolerated on exp/nbf; tokens are checked only at connect, so 30s "
             "absorbs unsynchronised clocks at no real cost"},
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
}};

// RFC 7518 §3.2: the key must be at least as long as the hash output.
size_t minSecretBytes(Alg alg) {
  switch (alg) {
    case Alg::kHs256:
      return 32;
    case Alg::kHs384:
      return 48;
    case Alg::kHs512:
      return 64;
  }
  return 32;
}

tl::unexpected<Error> invalid(const ConfigView& config, std::string_view key, std::string message) {
  return fail(Errc::kInvalidConfig, config.location(key) + ": " + std::move(message));
}

Result<std::string> readSecretFile(const ConfigView& config, std::string_view dir,
                                   const std::string& name) {
  std::string path = name;
  if (!name.empty() && name.front() != '/' && !dir.empty()) {
    path = std::string(dir) + "/" + name;
  }
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return invalid(config, "secret_file", "cannot open \"" + path + "\": " + std::strerror(errno));
  }
  std::string secret;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0 && secret.size() <= kMaxSecretFileBytes) {
    secret.append(buf, n);
  }
  const bool read_error = std::ferror(file) != 0;
  std::fclose(file);
  if (read_error) {
    return invalid(config, "secret_file", "cannot read \"" + path + "\"");
  }
  if (secret.size() > kMaxSecretFileBytes) {
    return invalid(config, "secret_file", "\"" + path + "\" is larger than 64 KiB");
  }
  // Files written by editors and `echo` end in a newline that is not part of the key.
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
    secret.pop_back();
  }
  return secret;
}

}  // namespace

std::span<const ParamSpec> jwtStageSchema() { return kSchema; }

FoundToken findToken(const Session& session, const JwtSettings& settings) {
  if (!settings.query_param.empty()) {
    auto value = session.handshakeQuery(settings.query_param);
    if (value && !value->empty()) {
      return {TokenSource::kQuery, std::move(*value)};
    }
  }
  if (const auto auth = session.handshakeHeader("authorization")) {
    // RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 §11.1).
    constexpr std::string_view kScheme = "bearer ";
    if (auth->size() > kScheme.size() &&
        http_detail::iequals(auth->substr(0, kScheme.size()), kScheme)) {
      const std::string_view token = http_detail::trim(auth->substr(kScheme.size()));
      if (!token.empty()) {
        return {TokenSource::kHeader, std::string(token)};
      }
    }
  }
  if (!settings.subprotocol_prefix.empty()) {
    for (const std::string& offered : session.offeredSubprotocols()) {
      const std::string_view p(offered);
      if (p.size() > settings.subprotocol_prefix.size() &&
          p.substr(0, settings.subprotocol_prefix.size()) == settings.subprotocol_prefix) {
        return {TokenSource::kSubprotocol,
                std::string(p.substr(settings.subprotocol_prefix.size()))};
      }
    }
  }
  return {};
}

JwtStageConfig::JwtStageConfig(JwtSettings settings, Counter& accepted, Counter& rejected,
                               Counter& anonymous)
    : settings_(std::move(settings)),
      accepted_(accepted),
      rejected_(rejected),
      anonymous_(anonymous) {}

StagePtr JwtStageConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<JwtStage>(shared_from_this(), callbacks);
}

JwtStage::JwtStage(std::shared_ptr<const JwtStageConfig> config, StageCallbacks& callbacks)
    : config_(std::move(config)), callbacks_(callbacks) {}

Verdict JwtStage::onOpen() {
  const JwtSettings& settings = config_->settings();
  const Session& session = callbacks_.session();
  const FoundToken found = findToken(session, settings);
  if (found.source == TokenSource::kNone) {
    if (settings.required) {
      config_->rejected().add();
      return Verdict::reject(Errc::kUnauthenticated, "missing token");
    }
    config_->anonymous().add();
    return Verdict::pass();
  }
  // Floor division: wallMs() is positive in practice, but a negative clock must not round up.
  const int64_t wall_ms = callbacks_.dispatcher().wallMs();
  const int64_t now_s = wall_ms >= 0 ? wall_ms / 1000 : -((-wall_ms + 999) / 1000);
  auto claims = verify(found.token, settings.verifier, now_s);
  if (!claims) {
    config_->rejected().add();
    return Verdict::reject(Errc::kUnauthenticated, std::move(claims.error().message));
  }
  if (claims->device.empty()) {
    if (auto device = session.handshakeQuery("device")) {
      claims->device = std::move(*device);
    }
  }
  callbacks_.setIdentity(
      Identity{std::move(claims->app), std::move(claims->user), std::move(claims->device)});
  config_->accepted().add();
  return Verdict::pass();
}

Verdict JwtStage::onMessage(Message& message) {
  (void)message;
  return Verdict::pass();
}

Result<StageConfigPtr> compileJwtStage(const ConfigView& config, LoadContext& context) {
  const bool has_secret = config.has("secret");
  const bool has_file = config.has("secret_file");
  if (has_secret == has_file) {
    return fail(Errc::kInvalidConfig, config.location() +
                                          ": exactly one of \"secret\" and \"secret_file\" is "
                                          "required");
  }
  std::string secret;
  if (has_secret) {
    secret = config.getString("secret");
  } else {
    auto read = readSecretFile(config, context.configDir(), config.getString("secret_file"));
    if (!read) {
      return tl::unexpected<Error>(std::move(read.error()));
    }
    secret = std::move(*read);
  }
  if (secret.empty()) {
    return invalid(config, has_secret ? "secret" : "secret_file", "the secret is empty");
  }

  JwtSettings settings;
  settings.verifier.algorithms.clear();
  for (const std::string& name : config.getStringList("algorithms")) {
    if (http_detail::iequals(name, "none")) {
      return invalid(config, "algorithms", "algorithm \"none\" cannot be enabled");
    }
    const std::optional<Alg> alg = algFromName(name);
    if (!alg) {
      return invalid(config, "algorithms",
                     "unknown algorithm \"" + name + "\" (expected HS256, HS384 or HS512)");
    }
    if (std::find(settings.verifier.algorithms.begin(), settings.verifier.algorithms.end(), *alg) ==
        settings.verifier.algorithms.end()) {
      settings.verifier.algorithms.push_back(*alg);
    }
  }
  if (settings.verifier.algorithms.empty()) {
    return invalid(config, "algorithms", "at least one algorithm is required");
  }
  for (Alg alg : settings.verifier.algorithms) {
    if (secret.size() < minSecretBytes(alg)) {
      context.log().log(LogLevel::kWarn,
                        "secret is " + std::to_string(secret.size()) + " bytes, shorter than the " +
                            std::to_string(minSecretBytes(alg)) + " bytes RFC 7518 asks for " +
                            "with " + std::string(algName(alg)));
      break;
    }
  }
  settings.verifier.key = std::make_shared<HmacKey>(std::move(secret));
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
  settings.query_param = config.getString("query_param");
  settings.subprotocol_prefix = config.getString("subprotocol_prefix");
  settings.required = config.getBool("required");

  Stats& stats = context.stats();
  return std::make_shared<const JwtStageConfig>(
      std::move(settings), stats.counter("auth_jwt_accepted"), stats.counter("auth_jwt_rejected"),
      stats.counter("auth_jwt_anonymous"));
}

}  // namespace imgate::mod::auth_jwt
