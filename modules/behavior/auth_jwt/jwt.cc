// SPDX-License-Identifier: Apache-2.0
#include "jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <climits>
#include <limits>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "modules/common/base64.h"

namespace imgate::mod::auth_jwt {

namespace {

constexpr std::array<Alg, 13> kAllAlgs = {
    Alg::kHs256, Alg::kHs384, Alg::kHs512, Alg::kRs256, Alg::kRs384,
    Alg::kRs512, Alg::kPs256, Alg::kPs384, Alg::kPs512, Alg::kEs256,
    Alg::kEs384, Alg::kEs512, Alg::kEdDsa,
};

// nullptr for EdDSA, which hashes internally.
const EVP_MD* digestFor(Alg alg) {
  switch (alg) {
    case Alg::kHs256:
    case Alg::kRs256:
    case Alg::kPs256:
    case Alg::kEs256:
      return EVP_sha256();
    case Alg::kHs384:
    case Alg::kRs384:
    case Alg::kPs384:
    case Alg::kEs384:
      return EVP_sha384();
    case Alg::kHs512:
    case Alg::kRs512:
    case Alg::kPs512:
    case Alg::kEs512:
      return EVP_sha512();
    case Alg::kEdDsa:
      return nullptr;
  }
  return nullptr;
}

template <class T, auto Free>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Key loading leaves the reason in our message; OpenSSL's queue would otherwise linger on the
// main thread and confuse the next caller that reads it (SSL_get_error does).
tl::unexpected<Error> invalidKey(std::string message) {
  ERR_clear_error();
  return fail(Errc::kInvalidConfig, std::move(message));
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
  size_t elements = 0;                    // kArray: all its elements, strings or not
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
    element();
    if (JsonMember* m = member(JsonKind::kNumber)) {
      m->number = static_cast<double>(u);
      m->large_integer = u;
    }
    return true;
  }
  bool Double(double d) {
    element();
    if (JsonMember* m = member(JsonKind::kNumber)) {
      m->number = d;
    }
    return true;
  }
  bool String(const char* s, rapidjson::SizeType length, bool) {
    element();
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
    element();
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
    element();
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
  // Counts a direct element of a top-level array.
  void element() {
    if (depth_ == 2 && in_array_) {
      ++members_.back().elements;
    }
  }
  bool value(JsonKind kind) {
    element();
    member(kind);
    return true;
  }
  bool integer(int64_t i) {
    element();
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

// Parses `json` into `text` (allocated here; the handler's string_views point into it).
template <class Handler>
bool parseInSitu(std::string_view json, std::unique_ptr<char[]>& text, Handler& handler) {
  // The in-situ stream stops at NUL; JSON text never contains a raw one (RFC 8259 §7).
  if (json.find('\0') != std::string_view::npos) {
    return false;
  }
  // Zero-filled, so NUL-terminated. The padding matters: rapidjson's UTF-8 validation reads
  // all continuation bytes a lead byte announces (up to 3) before judging them, even past the
  // terminator.
  constexpr size_t kPadding = 8;
  text = std::make_unique<char[]>(json.size() + kPadding);
  std::copy(json.begin(), json.end(), text.get());
  rapidjson::InsituStringStream stream(text.get());
  rapidjson::Reader reader;
  return !reader
              .Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag>(
                  stream, handler)
              .IsError();
}

Result<JsonObject> parseObject(std::string_view json, std::string_view what) {
  JsonObject object;
  FlatObjectHandler handler(object.members);
  if (!parseInSitu(json, object.text, handler)) {
    return unauthenticated("malformed token " + std::string(what) + ": invalid json");
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

// The rooms claim: absent is no rooms; otherwise an array of at most `max` non-empty strings.
// Duplicates are dropped (first kept) so the core never joins a room twice.
Result<std::vector<std::string>> roomsClaim(const JsonObject& payload, std::string_view name,
                                            size_t max) {
  std::vector<std::string> rooms;
  if (name.empty()) {
    return rooms;
  }
  auto member = uniqueMember(payload, name, "claim");
  if (!member) {
    return tl::unexpected<Error>(std::move(member.error()));
  }
  if (*member == nullptr) {
    return rooms;
  }
  const JsonMember& m = **member;
  if (m.kind != JsonKind::kArray || m.elements != m.strings.size()) {
    return unauthenticated("claim " + quote(name) + " is not an array of strings");
  }
  if (m.strings.size() > max) {
    return unauthenticated("claim " + quote(name) + " has more than " + std::to_string(max) +
                           " entries");
  }
  std::set<std::string_view> seen;
  for (std::string_view room : m.strings) {
    if (room.empty()) {
      return unauthenticated("claim " + quote(name) + " holds an empty name");
    }
    if (seen.insert(room).second) {
      rooms.emplace_back(room);
    }
  }
  return rooms;
}

// ---- JWK Set ---------------------------------------------------------------------------------
// {"keys":[{...},...]}: the members of each entry object are kept as JsonMembers (with the
// strings of their arrays, for key_ops); everything else is skipped. Same in-situ recursive
// reader as above, with the same depth bound, plus bounds on entries and members so a large
// file cannot build large vectors.

constexpr size_t kMaxJwkMembers = 100;

struct JwkEntry {
  bool is_object = false;
  std::vector<JsonMember> members;
};

struct JwksDocument {
  std::unique_ptr<char[]> text;
  bool root_is_object = false;
  int keys_members = 0;  // top-level "keys" members seen
  bool keys_is_array = false;
  std::vector<JwkEntry> entries;
  bool too_many_entries = false;
  bool too_many_members = false;
};

// Depths count the containers open when an event arrives: 1 inside the root object, 2 inside
// the keys array, 3 inside an entry, 4 inside an array member of an entry.
class JwksHandler : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, JwksHandler> {
 public:
  explicit JwksHandler(JwksDocument& doc) : doc_(doc) {}

  bool Null() { return scalar(JsonKind::kNull, {}); }
  bool Bool(bool) { return scalar(JsonKind::kBool, {}); }
  bool Int(int) { return scalar(JsonKind::kNumber, {}); }
  bool Int64(int64_t) { return scalar(JsonKind::kNumber, {}); }
  bool Uint(unsigned) { return scalar(JsonKind::kNumber, {}); }
  bool Uint64(uint64_t) { return scalar(JsonKind::kNumber, {}); }
  bool Double(double) { return scalar(JsonKind::kNumber, {}); }
  bool String(const char* s, rapidjson::SizeType length, bool) {
    return scalar(JsonKind::kString, std::string_view(s, length));
  }
  bool Key(const char* s, rapidjson::SizeType length, bool) {
    if (depth_ == 1) {
      key_ = std::string_view(s, length);
    } else if (depth_ == 3 && in_entry_) {
      entry_key_ = std::string_view(s, length);
    }
    return true;
  }
  bool StartObject() {
    if (depth_ == 0) {
      doc_.root_is_object = true;
    } else if (!container(JsonKind::kObject)) {
      return false;
    }
    return ++depth_ <= kMaxJsonDepth;
  }
  bool EndObject(rapidjson::SizeType) {
    if (--depth_ == 2) {
      in_entry_ = false;
    }
    return true;
  }
  bool StartArray() {
    if (depth_ == 1 && key_ == "keys") {
      ++doc_.keys_members;
      doc_.keys_is_array = true;
      in_keys_ = true;
    } else if (!container(JsonKind::kArray)) {
      return false;
    }
    return ++depth_ <= kMaxJsonDepth;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 1) {
      in_keys_ = false;
    } else if (depth_ == 3) {
      in_entry_array_ = false;
    }
    return true;
  }

 private:
  bool scalar(JsonKind kind, std::string_view string) {
    if (depth_ == 1 && key_ == "keys") {
      ++doc_.keys_members;
    } else if (depth_ == 2 && in_keys_) {
      return addEntry(false);
    } else if (depth_ == 3 && in_entry_) {
      JsonMember* m = addMember(kind);
      if (m == nullptr) {
        return false;
      }
      m->string = string;
    } else if (depth_ == 4 && in_entry_array_) {
      JsonMember& m = doc_.entries.back().members.back();
      ++m.elements;
      if (kind == JsonKind::kString) {
        m.strings.push_back(string);
      }
    }
    return true;
  }
  // An object or array starting at the current depth (not the root, not the keys array).
  bool container(JsonKind kind) {
    if (depth_ == 1 && key_ == "keys") {
      ++doc_.keys_members;
    } else if (depth_ == 2 && in_keys_) {
      if (!addEntry(kind == JsonKind::kObject)) {
        return false;
      }
      in_entry_ = kind == JsonKind::kObject;
    } else if (depth_ == 3 && in_entry_) {
      if (addMember(kind) == nullptr) {
        return false;
      }
      in_entry_array_ = kind == JsonKind::kArray;
    } else if (depth_ == 4 && in_entry_array_) {
      ++doc_.entries.back().members.back().elements;
    }
    return true;
  }
  bool addEntry(bool is_object) {
    if (doc_.entries.size() >= kMaxJwksKeys) {
      doc_.too_many_entries = true;
      return false;
    }
    doc_.entries.push_back(JwkEntry{is_object, {}});
    return true;
  }
  JsonMember* addMember(JsonKind kind) {
    std::vector<JsonMember>& members = doc_.entries.back().members;
    if (members.size() >= kMaxJwkMembers) {
      doc_.too_many_members = true;
      return nullptr;
    }
    JsonMember& m = members.emplace_back();
    m.name = entry_key_;
    m.kind = kind;
    return &m;
  }

  JwksDocument& doc_;
  std::string_view key_;
  std::string_view entry_key_;
  int depth_ = 0;
  bool in_keys_ = false;
  bool in_entry_ = false;
  bool in_entry_array_ = false;
};

// Reads the members of one JWK; errors are kInvalidConfig prefixed with the entry's name.
class JwkReader {
 public:
  JwkReader(const std::vector<JsonMember>& members, std::string where)
      : members_(members), where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  void setWhere(std::string where) { where_ = std::move(where); }

  tl::unexpected<Error> error(std::string message) const {
    return invalidKey(where_ + ": " + std::move(message));
  }
  const JsonMember* find(std::string_view name) const {
    for (const JsonMember& m : members_) {
      if (m.name == name) {
        return &m;
      }
    }
    return nullptr;
  }
  // An optional string member.
  Result<std::optional<std::string_view>> string(std::string_view name) const {
    const JsonMember* m = find(name);
    if (m == nullptr) {
      return std::optional<std::string_view>();
    }
    if (m->kind != JsonKind::kString) {
      return error(quote(name) + " is not a string");
    }
    return std::optional<std::string_view>(m->string);
  }
  // A required base64url member, decoded.
  Result<std::string> bytes(std::string_view name) const {
    auto value = string(name);
    if (!value) {
      return tl::unexpected<Error>(std::move(value.error()));
    }
    if (!*value) {
      return error("missing " + quote(name));
    }
    auto decoded = base64UrlDecode(**value);
    if (!decoded) {
      return error(quote(name) + " is not valid base64url");
    }
    return std::move(*decoded);
  }

 private:
  const std::vector<JsonMember>& members_;
  std::string where_;
};

// Text from a file, shortened for a message.
std::string shortText(std::string_view s) {
  constexpr size_t kMax = 64;
  return s.size() <= kMax ? std::string(s) : std::string(s.substr(0, kMax)) + "...";
}

}  // namespace

std::span<const Alg> allAlgs() { return kAllAlgs; }

std::optional<Alg> algFromName(std::string_view name) {
  for (Alg alg : kAllAlgs) {
    if (algName(alg) == name) {
      return alg;
    }
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
    case Alg::kRs256:
      return "RS256";
    case Alg::kRs384:
      return "RS384";
    case Alg::kRs512:
      return "RS512";
    case Alg::kPs256:
      return "PS256";
    case Alg::kPs384:
      return "PS384";
    case Alg::kPs512:
      return "PS512";
    case Alg::kEs256:
      return "ES256";
    case Alg::kEs384:
      return "ES384";
    case Alg::kEs512:
      return "ES512";
    case Alg::kEdDsa:
      return "EdDSA";
  }
  return "unknown";
}

bool isHmac(Alg alg) { return alg == Alg::kHs256 || alg == Alg::kHs384 || alg == Alg::kHs512; }

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

// ---- HMAC -----------------------------------------------------------------------------------

HmacKey::HmacKey(std::string secret) : secret_(std::move(secret)) {}

HmacKey::~HmacKey() { OPENSSL_cleanse(secret_.data(), secret_.size()); }

bool HmacKey::supports(Alg alg) const { return isHmac(alg); }

std::string HmacKey::sign(Alg alg, std::string_view signing_input) const {
  const EVP_MD* md = supports(alg) ? digestFor(alg) : nullptr;
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

// ---- Public keys ----------------------------------------------------------------------------

namespace {

struct CurveInfo {
  std::string_view jwk_name;      // "P-256"
  std::string_view openssl_name;  // "prime256v1"
  PublicKey::Type type;
  size_t coordinate_bytes;
};

constexpr std::array<CurveInfo, 3> kCurves = {{
    {"P-256", "prime256v1", PublicKey::Type::kEcP256, 32},
    {"P-384", "secp384r1", PublicKey::Type::kEcP384, 48},
    {"P-521", "secp521r1", PublicKey::Type::kEcP521, 66},
}};

size_t coordinateBytes(PublicKey::Type type) {
  for (const CurveInfo& c : kCurves) {
    if (c.type == type) {
      return c.coordinate_bytes;
    }
  }
  return 0;
}

bool isRsaPss(Alg alg) { return alg == Alg::kPs256 || alg == Alg::kPs384 || alg == Alg::kPs512; }

// JWS carries ECDSA signatures as fixed-size R||S; OpenSSL wants the DER SEQUENCE. Empty on
// failure.
std::string ecdsaRawToDer(std::string_view raw) {
  const size_t half = raw.size() / 2;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(bytes(raw), static_cast<int>(half), nullptr));
  BnPtr s(BN_bin2bn(bytes(raw) + half, static_cast<int>(half), nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return {};
  }
  (void)r.release();  // owned by sig now
  (void)s.release();
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0 || der == nullptr) {
    return {};
  }
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

Result<std::shared_ptr<const PublicKey>> fromParams(const char* type, OSSL_PARAM* params) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return invalidKey(std::string("invalid ") + type + " public key");
  }
  return PublicKey::fromEvp(pkey);
}

}  // namespace

PublicKey::PublicKey(evp_pkey_st* pkey, Type type, int bits)
    : pkey_(pkey), type_(type), bits_(bits) {}

PublicKey::~PublicKey() { EVP_PKEY_free(pkey_); }

Result<std::shared_ptr<const PublicKey>> PublicKey::fromEvp(evp_pkey_st* raw) {
  PkeyPtr pkey(raw);
  if (!pkey) {
    return invalidKey("no key");
  }
  const int bits = EVP_PKEY_get_bits(pkey.get());
  Type type = Type::kRsa;
  switch (EVP_PKEY_get_base_id(pkey.get())) {
    case EVP_PKEY_RSA:
      if (bits < kMinRsaBits) {
        return invalidKey("RSA key of " + std::to_string(bits) + " bits is too short: at least " +
                          std::to_string(kMinRsaBits) + " bits are required");
      }
      if (bits > kMaxRsaBits) {
        return invalidKey("RSA key of " + std::to_string(bits) + " bits is too long: at most " +
                          std::to_string(kMaxRsaBits) + " bits are supported");
      }
      break;
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(pkey.get(), group, sizeof(group), &len) != 1) {
        return invalidKey("EC key without a named curve");
      }
      const std::string_view name(group, len);
      const auto* curve = std::find_if(kCurves.begin(), kCurves.end(), [&](const CurveInfo& c) {
        return c.openssl_name == name;
      });
      if (curve == kCurves.end()) {
        return invalidKey("EC curve \"" + shortText(name) +
                          "\" is not supported (P-256, P-384 or P-521)");
      }
      type = curve->type;
      break;
    }
    case EVP_PKEY_ED25519:
      type = Type::kEd25519;
      break;
    case EVP_PKEY_ED448:
      type = Type::kEd448;
      break;
    default:
      return invalidKey("unsupported key type \"" +
                        shortText(EVP_PKEY_get0_type_name(pkey.get()) == nullptr
                                      ? "?"
                                      : EVP_PKEY_get0_type_name(pkey.get())) +
                        "\" (RSA, EC P-256/P-384/P-521, Ed25519 or Ed448)");
  }
  if (type != Type::kEd25519 && type != Type::kEd448) {
    // Rejects RSA moduli that are even or have a bad exponent, EC points off the curve.
    PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) {
      return invalidKey("invalid public key (failed the public key check)");
    }
  }
  ERR_clear_error();
  return std::shared_ptr<const PublicKey>(new PublicKey(pkey.release(), type, bits));
}

Result<std::shared_ptr<const PublicKey>> PublicKey::fromPem(std::string_view pem) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  std::vector<std::string_view> labels;
  for (size_t at = pem.find(kBegin); at != std::string_view::npos;
       at = pem.find(kBegin, at + 1)) {
    const size_t start = at + kBegin.size();
    const size_t end = pem.find("-----", start);
    if (end == std::string_view::npos) {
      break;
    }
    const std::string_view label = pem.substr(start, end - start);
    if (label != "EC PARAMETERS") {  // `openssl ecparam` output: not a key
      labels.push_back(label);
    }
  }
  if (labels.empty()) {
    return invalidKey(
        "no PEM block (expected \"-----BEGIN PUBLIC KEY-----\" or "
        "\"-----BEGIN CERTIFICATE-----\")");
  }
  for (std::string_view label : labels) {
    if (label.find("PRIVATE KEY") != std::string_view::npos) {
      return invalidKey("holds a private key; give the public key only (openssl pkey -pubout)");
    }
  }
  if (labels.size() > 1) {
    return invalidKey("holds " + std::to_string(labels.size()) +
                      " PEM blocks; one key per file (use jwks_file for several keys)");
  }
  if (pem.size() > static_cast<size_t>(INT_MAX)) {
    return invalidKey("too large");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    return invalidKey("out of memory");
  }
  if (labels.front() == "PUBLIC KEY") {
    EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    if (pkey == nullptr) {
      return invalidKey("malformed PUBLIC KEY block");
    }
    return fromEvp(pkey);
  }
  if (labels.front() == "CERTIFICATE") {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      return invalidKey("malformed CERTIFICATE block");
    }
    EVP_PKEY* pkey = X509_get_pubkey(cert.get());  // a new reference
    if (pkey == nullptr) {
      return invalidKey("certificate with an unsupported public key");
    }
    return fromEvp(pkey);
  }
  if (labels.front() == "RSA PUBLIC KEY") {
    return invalidKey(
        "PKCS#1 \"RSA PUBLIC KEY\" is not supported; convert it to SubjectPublicKeyInfo with "
        "`openssl rsa -RSAPublicKey_in -pubout`");
  }
  return invalidKey("unsupported PEM block \"" + shortText(labels.front()) +
                    "\" (expected PUBLIC KEY or CERTIFICATE)");
}

Result<std::shared_ptr<const PublicKey>> PublicKey::fromRsa(std::string_view n,
                                                            std::string_view e) {
  if (n.empty() || e.empty()) {
    return invalidKey("empty RSA modulus or exponent");
  }
  if (n.size() > static_cast<size_t>(kMaxRsaBits / 8 + 1) || e.size() > 64) {
    return invalidKey("RSA modulus or exponent too long");
  }
  BnPtr bn_n(BN_bin2bn(bytes(n), static_cast<int>(n.size()), nullptr));
  BnPtr bn_e(BN_bin2bn(bytes(e), static_cast<int>(e.size()), nullptr));
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return invalidKey("out of memory");
  }
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) {
    return invalidKey("out of memory");
  }
  return fromParams("RSA", params.get());
}

Result<std::shared_ptr<const PublicKey>> PublicKey::fromEc(std::string_view crv,
                                                           std::string_view x,
                                                           std::string_view y) {
  const auto* curve = std::find_if(kCurves.begin(), kCurves.end(),
                                   [&](const CurveInfo& c) { return c.jwk_name == crv; });
  if (curve == kCurves.end()) {
    return invalidKey("EC curve \"" + shortText(crv) + "\" is not supported");
  }
  // RFC 7518 §6.2.1.2: each coordinate is the full size, leading zeros kept.
  if (x.size() != curve->coordinate_bytes || y.size() != curve->coordinate_bytes) {
    return invalidKey("\"x\" and \"y\" must be " + std::to_string(curve->coordinate_bytes) +
                      " bytes each for " + std::string(crv));
  }
  std::string point = "\x04";  // uncompressed
  point.append(x);
  point.append(y);
  std::string group(curve->openssl_name);
  std::array<OSSL_PARAM, 3> params = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group.data(), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end(),
  };
  return fromParams("EC", params.data());
}

Result<std::shared_ptr<const PublicKey>> PublicKey::fromOkp(std::string_view crv,
                                                            std::string_view x) {
  int id = 0;
  size_t size = 0;
  if (crv == "Ed25519") {
    id = EVP_PKEY_ED25519;
    size = 32;
  } else if (crv == "Ed448") {
    id = EVP_PKEY_ED448;
    size = 57;
  } else {
    return invalidKey("OKP curve \"" + shortText(crv) + "\" is not supported");
  }
  if (x.size() != size) {
    return invalidKey("\"x\" must be " + std::to_string(size) + " bytes for " + std::string(crv));
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(id, nullptr, bytes(x), x.size());
  if (pkey == nullptr) {
    return invalidKey("invalid " + std::string(crv) + " public key");
  }
  return fromEvp(pkey);
}

std::string PublicKey::describe() const {
  switch (type_) {
    case Type::kRsa:
      return "RSA-" + std::to_string(bits_);
    case Type::kEcP256:
      return "P-256";
    case Type::kEcP384:
      return "P-384";
    case Type::kEcP521:
      return "P-521";
    case Type::kEd25519:
      return "Ed25519";
    case Type::kEd448:
      return "Ed448";
  }
  return "?";
}

bool PublicKey::supports(Alg alg) const {
  switch (type_) {
    case Type::kRsa:
      return alg == Alg::kRs256 || alg == Alg::kRs384 || alg == Alg::kRs512 || isRsaPss(alg);
    case Type::kEcP256:
      return alg == Alg::kEs256;
    case Type::kEcP384:
      return alg == Alg::kEs384;
    case Type::kEcP521:
      return alg == Alg::kEs512;
    case Type::kEd25519:
    case Type::kEd448:
      return alg == Alg::kEdDsa;
  }
  return false;
}

bool PublicKey::verify(Alg alg, std::string_view signing_input,
                       std::string_view signature) const {
  if (!supports(alg)) {
    return false;
  }
  std::string der;
  if (const size_t n = coordinateBytes(type_); n != 0) {
    if (signature.size() != 2 * n) {
      return false;
    }
    der = ecdsaRawToDer(signature);
    if (der.empty()) {
      ERR_clear_error();
      return false;
    }
    signature = der;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  const EVP_MD* md = digestFor(alg);
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey_) == 1;
  if (ok && isRsaPss(alg)) {
    // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
  }
  ok = ok && EVP_DigestVerify(ctx.get(), bytes(signature), signature.size(), bytes(signing_input),
                              signing_input.size()) == 1;
  // A failed check queues errors on this worker thread; TLS code on the same thread reads that
  // queue (SSL_get_error), so it must not keep them.
  ERR_clear_error();
  return ok;
}

// ---- JWK Set --------------------------------------------------------------------------------

Result<JwksKeys> parseJwks(std::string_view json) {
  JwksDocument doc;
  JwksHandler handler(doc);
  const bool parsed = parseInSitu(json, doc.text, handler);
  if (doc.too_many_entries) {
    return invalidKey("more than " + std::to_string(kMaxJwksKeys) + " keys");
  }
  if (doc.too_many_members) {
    return invalidKey("a key has more than " + std::to_string(kMaxJwkMembers) + " members");
  }
  if (!parsed) {
    return invalidKey("invalid json");
  }
  if (!doc.root_is_object) {
    return invalidKey("not a json object (expected {\"keys\": [...]})");
  }
  if (doc.keys_members == 0) {
    return invalidKey("missing \"keys\"");
  }
  if (doc.keys_members > 1) {
    return invalidKey("duplicate \"keys\"");
  }
  if (!doc.keys_is_array) {
    return invalidKey("\"keys\" is not an array");
  }

  JwksKeys out;
  std::vector<std::string_view> kty_of;  // per out.keys entry, for the duplicate kid check
  for (size_t i = 0; i < doc.entries.size(); ++i) {
    const JwkEntry& entry = doc.entries[i];
    JwkReader jwk(entry.members, "keys[" + std::to_string(i) + "]");
    if (!entry.is_object) {
      return jwk.error("not an object");
    }
    std::set<std::string_view> names;
    for (const JsonMember& m : entry.members) {
      if (!names.insert(m.name).second) {
        return jwk.error("duplicate member " + quote(shortText(m.name)));
      }
    }
    auto kid = jwk.string("kid");
    if (!kid) {
      return tl::unexpected<Error>(std::move(kid.error()));
    }
    if (*kid && !(*kid)->empty()) {
      jwk.setWhere(jwk.where() + " (kid " + quote(shortText(**kid)) + ")");
    }
    auto kty = jwk.string("kty");
    auto use = jwk.string("use");
    auto alg_name = jwk.string("alg");
    for (const auto* r : {&kty, &use, &alg_name}) {
      if (!*r) {
        return tl::unexpected<Error>(r->error());
      }
    }
    if (!*kty) {
      return jwk.error("missing \"kty\"");
    }
    const auto skip = [&](std::string reason) {
      out.skipped.push_back(jwk.where() + ": " + std::move(reason));
    };
    if (*use && **use != "sig") {
      skip("use " + quote(shortText(**use)));
      continue;
    }
    if (const JsonMember* ops = jwk.find("key_ops")) {
      if (ops->kind != JsonKind::kArray || ops->elements != ops->strings.size()) {
        return jwk.error("\"key_ops\" is not an array of strings");
      }
      if (std::find(ops->strings.begin(), ops->strings.end(), "verify") == ops->strings.end()) {
        skip("key_ops without \"verify\"");
        continue;
      }
    }
    std::optional<Alg> alg;
    if (*alg_name) {
      alg = algFromName(**alg_name);
      if (!alg) {
        skip("alg " + quote(shortText(**alg_name)) + " is not a supported signature algorithm");
        continue;
      }
    }
    const std::string_view type = **kty;
    if (type != "oct" && jwk.find("d") != nullptr) {
      return jwk.error("holds a private key (\"d\"); publish only the public members");
    }
    SignatureKeyConstSharedPtr key;
    std::string description;
    if (type == "RSA") {
      auto n = jwk.bytes("n");
      if (!n) {
        return tl::unexpected<Error>(std::move(n.error()));
      }
      auto e = jwk.bytes("e");
      if (!e) {
        return tl::unexpected<Error>(std::move(e.error()));
      }
      auto pk = PublicKey::fromRsa(*n, *e);
      if (!pk) {
        return jwk.error(pk.error().message);
      }
      description = (*pk)->describe();
      key = std::move(*pk);
    } else if (type == "EC" || type == "OKP") {
      auto crv = jwk.string("crv");
      if (!crv) {
        return tl::unexpected<Error>(std::move(crv.error()));
      }
      if (!*crv) {
        return jwk.error("missing \"crv\"");
      }
      const bool known = type == "EC" ? (**crv == "P-256" || **crv == "P-384" || **crv == "P-521")
                                      : (**crv == "Ed25519" || **crv == "Ed448");
      if (!known) {
        skip(std::string(type) + " curve " + quote(shortText(**crv)) + " does not sign JWS");
        continue;
      }
      auto x = jwk.bytes("x");
      if (!x) {
        return tl::unexpected<Error>(std::move(x.error()));
      }
      Result<std::shared_ptr<const PublicKey>> pk;
      if (type == "EC") {
        auto y = jwk.bytes("y");
        if (!y) {
          return tl::unexpected<Error>(std::move(y.error()));
        }
        pk = PublicKey::fromEc(**crv, *x, *y);
      } else {
        pk = PublicKey::fromOkp(**crv, *x);
      }
      if (!pk) {
        return jwk.error(pk.error().message);
      }
      description = (*pk)->describe();
      key = std::move(*pk);
    } else if (type == "oct") {
      auto k = jwk.bytes("k");
      if (!k) {
        return tl::unexpected<Error>(std::move(k.error()));
      }
      if (k->empty()) {
        return jwk.error("empty \"k\"");
      }
      description = "HMAC secret";
      key = std::make_shared<HmacKey>(std::move(*k));
    } else {
      skip("kty " + quote(shortText(type)) + " is not supported");
      continue;
    }
    if (alg && !key->supports(*alg)) {
      return jwk.error("alg " + quote(algName(*alg)) + " does not fit the key (" + description +
                       ")");
    }
    const std::string kid_text = *kid ? std::string(**kid) : std::string();
    if (!kid_text.empty()) {
      for (size_t j = 0; j < out.keys.size(); ++j) {
        if (out.keys[j].kid == kid_text && kty_of[j] == type) {
          return jwk.error("another " + std::string(type) + " key has the same kid");
        }
      }
    }
    out.keys.push_back(VerificationKey{kid_text, alg, std::move(key)});
    kty_of.push_back(type);
  }
  if (out.keys.empty()) {
    return invalidKey("no usable signature key" +
                      (out.skipped.empty() ? std::string()
                                           : " (skipped: " + out.skipped.front() + ", ...)"));
  }
  return out;
}

namespace {

// See verify() in jwt.h for the rules. The kid is attacker-controlled, so it is never echoed.
Result<const SignatureKey*> selectKey(const Verifier& verifier, Alg alg, std::string_view kid) {
  if (!verifier.key && verifier.keys.empty()) {
    return fail(Errc::kInternal, "no verification key configured");
  }
  const auto fits = [&](const SignatureKey* key, const std::optional<Alg>& key_alg) {
    return key != nullptr && key->supports(alg) && (!key_alg || *key_alg == alg);
  };
  const SignatureKey* found = nullptr;
  size_t matches = 0;
  const auto consider = [&](const SignatureKey* key, const std::optional<Alg>& key_alg) {
    if (fits(key, key_alg)) {
      found = key;
      ++matches;
    }
  };
  if (!kid.empty()) {
    bool kid_known = false;
    for (const VerificationKey& k : verifier.keys) {
      if (k.kid == kid) {
        kid_known = true;
        consider(k.key.get(), k.alg);
      }
    }
    if (kid_known) {
      if (matches == 0) {
        return unauthenticated("key id does not match algorithm " + quote(algName(alg)));
      }
      // parseJwks() allows one kid only on keys of different types, which never share an alg;
      // a hand-built Verifier could still repeat one.
      if (matches > 1) {
        return unauthenticated("ambiguous key id");
      }
      return found;
    }
    // Keys without an id stand for any id: a single configured key verifies tokens whose
    // issuer happens to set a kid.
    consider(verifier.key.get(), std::nullopt);
    for (const VerificationKey& k : verifier.keys) {
      if (k.kid.empty()) {
        consider(k.key.get(), k.alg);
      }
    }
    // Several id-less keys for one alg: picking one by an unknown id would be a guess.
    if (matches != 1) {
      return unauthenticated("unknown key id");
    }
  } else {
    consider(verifier.key.get(), std::nullopt);
    for (const VerificationKey& k : verifier.keys) {
      consider(k.key.get(), k.alg);
    }
    if (matches == 0) {
      return unauthenticated("no key for algorithm " + quote(algName(alg)));
    }
  }
  if (matches > 1) {
    return unauthenticated("missing key id: several keys match algorithm " +
                           quote(algName(alg)));
  }
  return found;
}

}  // namespace

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

  auto kid_member = uniqueMember(*header, "kid", "header");
  if (!kid_member) {
    return tl::unexpected<Error>(std::move(kid_member.error()));
  }
  if (*kid_member != nullptr && (*kid_member)->kind != JsonKind::kString) {
    return unauthenticated("malformed token header: \"kid\" is not a string");
  }
  const std::string_view kid = *kid_member == nullptr ? std::string_view() : (*kid_member)->string;

  // ---- Key ----------------------------------------------------------------------------------
  auto key = selectKey(verifier, *alg, kid);
  if (!key) {
    return tl::unexpected<Error>(std::move(key.error()));
  }

  // ---- Signature ----------------------------------------------------------------------------
  auto signature = base64UrlDecode(signature_b64);
  if (!signature) {
    return unauthenticated("malformed token signature: invalid base64url");
  }
  if (!(*key)->verify(*alg, token.substr(0, dot2), *signature)) {
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
  auto iat = numericDate(*payload, "iat");
  if (!iat) {
    return tl::unexpected<Error>(std::move(iat.error()));
  }
  if (*iat && now + leeway < **iat) {
    return unauthenticated("token issued in the future");
  }
  if (verifier.max_age) {
    if (!*iat) {
      return unauthenticated("missing claim \"iat\"");
    }
    if (now > **iat + static_cast<double>(verifier.max_age->count()) + leeway) {
      return unauthenticated("token too old");
    }
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
  auto rooms = roomsClaim(*payload, verifier.rooms_claim, verifier.max_rooms);
  if (!rooms) {
    return tl::unexpected<Error>(std::move(rooms.error()));
  }
  claims.rooms = std::move(*rooms);
  // Clamped so absurd values cannot overflow the conversion.
  if (*exp) {
    claims.expires_s = static_cast<int64_t>(std::clamp(**exp, -9.0e18, 9.0e18));
  }
  if (*iat) {
    claims.issued_at = static_cast<int64_t>(std::clamp(**iat, -9.0e18, 9.0e18));
  }
  return claims;
}

}  // namespace imgate::mod::auth_jwt
