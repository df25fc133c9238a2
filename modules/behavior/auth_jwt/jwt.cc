// SPDX-License-Identifier: Apache-2.0
#include "jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <limits>
#include <memory>
#include <utility>
#include <vector>
#include "modules/common/base64.h"

namespace imgate::mod::auth_jwt {

namespace {

const EVP_MD* digestFor(Alg alg) {
  switch (alg) {
    case Alg::kHs256:
      return EVP_sha256();
    case Alg::kHs384:
      return EVP_sha384();
    case Alg::kHs512:
      return EVP_sha512();
  }
  return nullptr;
}

tl::unexpected<Error> unauthenticated(std::string reason) {
  return fail(Errc::kUnauthenticated, std::move(reason));
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out.push_back('"');
  return out;
}

// ---- JSON -----------------------------------------------------------------------------------
// JWT headers and claim sets are flat objects, so the parser keeps the top-level members only
// (with the string elements of top-level arrays, for "aud") and skips nested values. It runs
// rapidjson's SAX reader in situ and recursively: Debian's rapidjson 1.1.0 has pointer
// arithmetic on a null stack in its DOM and iterative paths, which clang's UBSan reports, and
// the in-situ recursive path never touches that stack. Depth is bounded by the handler.

constexpr int kMaxJsonDepth = 32;

enum class JsonKind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

struct JsonMember {
  std::string_view name;
  JsonKind kind = JsonKind::kNull;
  std::string_view string;                // kString
  double number = 0;                      // kNumber
  std::optional<int64_t> integer;         // kNumber that is an integer within int64
  std::optional<uint64_t> large_integer;  // kNumber above INT64_MAX
  std::vector<std::string_view> strings;  // kArray: its string elements
};

// Members point into `text`, which the parser rewrote in place. A heap buffer, not a
// std::string: moving the object must not move the characters (small-string optimisation).
struct JsonObject {
  std::unique_ptr<char[]> text;
  std::vector<JsonMember> members;
};

class FlatObjectHandler
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, FlatObjectHandler> {
 public:
  explicit FlatObjectHandler(std::vector<JsonMember>& members) : members_(members) {}

  bool Null() { return value(JsonKind::kNull); }
  bool Bool(bool) { return value(JsonKind::kBool); }
  bool Int(int i) { return integer(i); }
  bool Int64(int64_t i) { return integer(i); }
  bool Uint(unsigned u) { return integer(static_cast<int64_t>(u)); }
  bool Uint64(uint64_t u) {
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return integer(static_cast<int64_t>(u));
    }
    if (JsonMember* m = member(JsonKind::kNumber)) {
      m->number = static_cast<double>(u);
      m->large_integer = u;
    }
    return true;
  }
  bool Double(double d) {
    if (JsonMember* m = member(JsonKind::kNumber)) {
      m->number = d;
    }
    return true;
  }
  bool String(const char* s, rapidjson::SizeType length, bool) {
    if (depth_ == 2 && in_array_) {
      members_.back().strings.emplace_back(s, length);
    } else if (JsonMember* m = member(JsonKind::kString)) {
      m->string = std::string_view(s, length);
    }
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType length, bool) {
    if (depth_ == 1) {
      key_ = std::string_view(s, length);
    }
    return true;
  }
  bool StartObject() {
    if (depth_ == 0) {
      root_is_object_ = true;
    } else {
      member(JsonKind::kObject);
    }
    return ++depth_ <= kMaxJsonDepth;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    return true;
  }
  bool StartArray() {
    if (member(JsonKind::kArray) != nullptr) {
      in_array_ = true;
    }
    return ++depth_ <= kMaxJsonDepth;
  }
  bool EndArray(rapidjson::SizeType) {
    if (--depth_ == 1) {
      in_array_ = false;
    }
    return true;
  }

  bool rootIsObject() const { return root_is_object_; }

 private:
  // The member for a value at depth 1, or nullptr for values nested deeper (or at the root).
  JsonMember* member(JsonKind kind) {
    if (depth_ != 1) {
      return nullptr;
    }
    JsonMember& m = members_.emplace_back();
    m.name = key_;
    m.kind = kind;
    return &m;
  }
  bool value(JsonKind kind) {
    member(kind);
    return true;
  }
  bool integer(int64_t i) {
    if (JsonMember* m = member(JsonKind::kNumber)) {
      m->number = static_cast<double>(i);
      m->integer = i;
    }
    return true;
  }

  std::vector<JsonMember>& members_;
  std::string_view key_;
  int depth_ = 0;
  bool in_array_ = false;
  bool root_is_object_ = false;
};

Result<JsonObject> parseObject(std::string_view json, std::string_view what) {
  const auto invalid_json = [&] {
    return unauthenticated("malformed token " + std::string(what) + ": invalid json");
  };
  // The in-situ stream stops at NUL; JSON text never contains a raw one (RFC 8259 §7).
  if (json.find('\0') != std::string_view::npos) {
    return invalid_json();
  }
  JsonObject object;
  // Zero-filled, so NUL-terminated. The padding matters: rapidjson's UTF-8 validation reads
  // all continuation bytes a lead byte announces (up to 3) before judging them, even past the
  // terminator.
  constexpr size_t kPadding = 8;
  object.text = std::make_unique<char[]>(json.size() + kPadding);
  std::copy(json.begin(), json.end(), object.text.get());
  FlatObjectHandler handler(object.members);
  rapidjson::InsituStringStream stream(object.text.get());
  rapidjson::Reader reader;
  const rapidjson::ParseResult ok =
      reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag>(stream,
                                                                                        handler);
  if (!ok) {
    return invalid_json();
  }
  if (!handler.rootIsObject()) {
    return unauthenticated("malformed token " + std::string(what) + ": not a json object");
  }
  return object;
}

// The only member named `name`, or nullptr. RFC 7519 §4: duplicate claim names must be
// rejected (or the last one used); we reject, so two parsers can never disagree.
Result<const JsonMember*> uniqueMember(const JsonObject& object, std::string_view name,
                                       std::string_view what) {
  const JsonMember* found = nullptr;
  for (const JsonMember& member : object.members) {
    if (member.name == name) {
      if (found != nullptr) {
        return unauthenticated("duplicate " + std::string(what) + " " + quote(name));
      }
      found = &member;
    }
  }
  return found;
}

// An optional NumericDate claim (RFC 7519 §2): any JSON number, fractions allowed.
Result<std::optional<double>> numericDate(const JsonObject& payload, std::string_view name) {
  auto member = uniqueMember(payload, name, "claim");
  if (!member) {
    return tl::unexpected<Error>(std::move(member.error()));
  }
  if (*member == nullptr) {
    return std::optional<double>();
  }
  if ((*member)->kind != JsonKind::kNumber) {
    return unauthenticated("claim " + quote(name) + " is not a number");
  }
  return std::optional<double>((*member)->number);
}

// An optional string claim; `name` empty means "not configured".
Result<std::optional<std::string>> stringClaim(const JsonObject& payload, std::string_view name) {
  if (name.empty()) {
    return std::optional<std::string>();
  }
  auto member = uniqueMember(payload, name, "claim");
  if (!member) {
    return tl::unexpected<Error>(std::move(member.error()));
  }
  if (*member == nullptr) {
    return std::optional<std::string>();
  }
  if ((*member)->kind != JsonKind::kString) {
    return unauthenticated("claim " + quote(name) + " is not a string");
  }
  return std::optional<std::string>(std::string((*member)->string));
}

}  // namespace

std::optional<Alg> algFromName(std::string_view name) {
  if (name == "HS256") {
    return Alg::kHs256;
  }
  if (name == "HS384") {
    return Alg::kHs384;
  }
  if (name == "HS512") {
    return Alg::kHs512;
  }
  return std::nullopt;
}

std::string_view algName(Alg alg) {
  switch (alg) {
    case Alg::kHs256:
      return "HS256";
    case Alg::kHs384:
      return "HS384";
    case Alg::kHs512:
      return "HS512";
  }
  return "unknown";
}

Result<std::string> base64UrlDecode(std::string_view in) {
  auto out = common::base64Decode(in, common::Base64Alphabet::kUrl);
  if (!out) {
    return fail(Errc::kInvalidPayload, "invalid base64url");
  }
  return std::move(*out);
}

std::string base64UrlEncode(std::string_view in) {
  return common::base64Encode(in, common::Base64Alphabet::kUrl, false);
}

HmacKey::HmacKey(std::string secret) : secret_(std::move(secret)) {}

HmacKey::~HmacKey() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

bool HmacKey::supports(Alg alg) const {
  return alg == Alg::kHs256 || alg == Alg::kHs384 || alg == Alg::kHs512;
}

std::string HmacKey::sign(Alg alg, std::string_view signing_input) const {
  const EVP_MD* md = digestFor(alg);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (md == nullptr || HMAC(md, secret_.data(), static_cast<int>(secret_.size()),
                            reinterpret_cast<const unsigned char*>(signing_input.data()),
                            signing_input.size(), mac, &mac_len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(mac), mac_len);
}

bool HmacKey::verify(Alg alg, std::string_view signing_input, std::string_view signature) const {
  const std::string mac = sign(alg, signing_input);
  // The MAC length is public (it follows from alg), so only the comparison must be constant-time.
  return !mac.empty() && signature.size() == mac.size() &&
         CRYPTO_memcmp(mac.data(), signature.data(), mac.size()) == 0;
}

Result<Claims> verify(std::string_view token, const Verifier& verifier, int64_t now_s) {
  if (token.size() > kMaxTokenBytes) {
    return unauthenticated("token too long");
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return unauthenticated("malformed token: expected three dot-separated segments");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  // ---- Header -------------------------------------------------------------------------------
  auto header_json = base64UrlDecode(header_b64);
  if (!header_json) {
    return unauthenticated("malformed token header: invalid base64url");
  }
  auto header = parseObject(*header_json, "header");
  if (!header) {
    return tl::unexpected<Error>(std::move(header.error()));
  }
  auto alg_member = uniqueMember(*header, "alg", "header");
  if (!alg_member) {
    return tl::unexpected<Error>(std::move(alg_member.error()));
  }
  if (*alg_member == nullptr || (*alg_member)->kind != JsonKind::kString) {
    return unauthenticated("malformed token header: missing \"alg\"");
  }
  const std::string_view alg_text = (*alg_member)->string;
  const std::optional<Alg> alg = algFromName(alg_text);
  if (!alg || std::find(verifier.algorithms.begin(), verifier.algorithms.end(), *alg) ==
                  verifier.algorithms.end()) {
    // Quote at most a short prefix: the reason may reach the client and the log.
    return unauthenticated("algorithm " + quote(alg_text.substr(0, 16)) + " not allowed");
  }
  // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
  if (std::any_of(header->members.begin(), header->members.end(),
                  [](const JsonMember& m) { return m.name == "crit"; })) {
    return unauthenticated("unsupported critical header");
  }

  // ---- Signature ----------------------------------------------------------------------------
  if (!verifier.key || !verifier.key->supports(*alg)) {
    return fail(Errc::kInternal, "no key for algorithm " + quote(algName(*alg)));
  }
  auto signature = base64UrlDecode(signature_b64);
  if (!signature) {
    return unauthenticated("malformed token signature: invalid base64url");
  }
  if (!verifier.key->verify(*alg, token.substr(0, dot2), *signature)) {
    return unauthenticated("signature mismatch");
  }

  // ---- Payload ------------------------------------------------------------------------------
  auto payload_json = base64UrlDecode(payload_b64);
  if (!payload_json) {
    return unauthenticated("malformed token payload: invalid base64url");
  }
  auto payload = parseObject(*payload_json, "payload");
  if (!payload) {
    return tl::unexpected<Error>(std::move(payload.error()));
  }
  const auto now = static_cast<double>(now_s);
  const auto leeway = static_cast<double>(verifier.leeway.count());
  auto exp = numericDate(*payload, "exp");
  if (!exp) {
    return tl::unexpected<Error>(std::move(exp.error()));
  }
  // RFC 7519 §4.1.4: valid only while now < exp.
  if (*exp && now >= **exp + leeway) {
    return unauthenticated("token expired");
  }
  auto nbf = numericDate(*payload, "nbf");
  if (!nbf) {
    return tl::unexpected<Error>(std::move(nbf.error()));
  }
  if (*nbf && now + leeway < **nbf) {
    return unauthenticated("token not yet valid");
  }
  if (verifier.issuer) {
    auto iss = stringClaim(*payload, "iss");
    if (!iss) {
      return tl::unexpected<Error>(std::move(iss.error()));
    }
    if (!*iss || **iss != *verifier.issuer) {
      return unauthenticated("issuer mismatch");
    }
  }
  if (verifier.audience) {
    auto aud = uniqueMember(*payload, "aud", "claim");
    if (!aud) {
      return tl::unexpected<Error>(std::move(aud.error()));
    }
    bool match = false;
    if (*aud != nullptr && (*aud)->kind == JsonKind::kString) {
      match = (*aud)->string == *verifier.audience;
    } else if (*aud != nullptr && (*aud)->kind == JsonKind::kArray) {
      const auto& items = (*aud)->strings;
      match = std::find(items.begin(), items.end(), *verifier.audience) != items.end();
    }
    if (!match) {
      return unauthenticated("audience mismatch");
    }
  }

  Claims claims;
  auto user = uniqueMember(*payload, verifier.user_claim, "claim");
  if (!user) {
    return tl::unexpected<Error>(std::move(user.error()));
  }
  if (*user == nullptr) {
    return unauthenticated("missing claim " + quote(verifier.user_claim));
  }
  // Numeric user ids are common; they become their decimal text.
  if ((*user)->kind == JsonKind::kString) {
    claims.user = (*user)->string;
  } else if ((*user)->integer) {
    claims.user = std::to_string(*(*user)->integer);
  } else if ((*user)->large_integer) {
    claims.user = std::to_string(*(*user)->large_integer);
  } else {
    return unauthenticated("claim " + quote(verifier.user_claim) + " is not a string");
  }
  if (claims.user.empty()) {
    return unauthenticated("claim " + quote(verifier.user_claim) + " is empty");
  }
  auto app = stringClaim(*payload, verifier.app_claim);
  if (!app) {
    return tl::unexpected<Error>(std::move(app.error()));
  }
  claims.app = *app && !(*app)->empty() ? std::move(**app) : verifier.default_app;
  auto device = stringClaim(*payload, verifier.device_claim);
  if (!device) {
    return tl::unexpected<Error>(std::move(device.error()));
  }
  if (*device) {
    claims.device = std::move(**device);
  }
  if (*exp) {
    // Clamped so absurd values cannot overflow the conversion.
    const double e = std::clamp(**exp, -9.0e18, 9.0e18);
    claims.expires_s = static_cast<int64_t>(e);
  }
  return claims;
}

}  // namespace imgate::mod::auth_jwt
