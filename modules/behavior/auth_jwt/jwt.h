// SPDX-License-Identifier: Apache-2.0
// JWT verification (RFC 7519, JWS compact serialization RFC 7515), free of any stage or I/O so
// it can be tested and fuzzed alone.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace imgate::mod::auth_jwt {

// Longest token accepted, before any decoding. Real tokens are a few hundred bytes; the bound
// keeps hostile handshakes from making us decode and parse large documents.
inline constexpr size_t kMaxTokenBytes = 8 * 1024;

// JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1). Append only: a new algorithm is a new value
// plus a SignatureKey that supports it; verify() itself does not change.
enum class Alg : uint8_t {
  kHs256,
  kHs384,
  kHs512,
  kRs256,  // RSASSA-PKCS1-v1_5
  kRs384,
  kRs512,
  kPs256,  // RSASSA-PSS, MGF1 with the same hash, salt as long as the hash
  kPs384,
  kPs512,
  kEs256,  // ECDSA P-256; the JWS signature is R||S, 32 bytes each
  kEs384,  // ECDSA P-384; 48 bytes each
  kEs512,  // ECDSA P-521; 66 bytes each
  kEdDsa,  // Ed25519 or Ed448, as the key says
};

// Every value of Alg, in declaration order.
std::span<const Alg> allAlgs();

// Exact, case-sensitive names as in the JWS "alg" header: "HS256", ..., "ES512", "EdDSA".
std::optional<Alg> algFromName(std::string_view name);
std::string_view algName(Alg alg);
bool isHmac(Alg alg);

// base64url (RFC 4648 §5). Decoding accepts unpadded and correctly padded input and rejects
// anything else: characters outside the url-safe alphabet (including '+', '/' and whitespace),
// a length of 4n+1, misplaced '=' and non-zero unused trailing bits (so every byte string has
// exactly one accepted encoding). Encoding never pads, as JWS requires.
[[nodiscard]] Result<std::string> base64UrlDecode(std::string_view in);
std::string base64UrlEncode(std::string_view in);

// One verification key. Implementations are immutable after construction and are shared by
// every worker thread, so verify() must be thread-safe.
class SignatureKey {
 public:
  virtual ~SignatureKey() = default;
  virtual bool supports(Alg alg) const = 0;
  // True when `signature` (raw bytes, already base64url-decoded) is valid for `signing_input`
  // ("<header>.<payload>" as sent). Must run in time independent of where the bytes differ.
  virtual bool verify(Alg alg, std::string_view signing_input,
                      std::string_view signature) const = 0;
};
using SignatureKeyConstSharedPtr = std::shared_ptr<const SignatureKey>;

// HS256/HS384/HS512 with a shared secret (OpenSSL HMAC, compared with CRYPTO_memcmp).
class HmacKey final : public SignatureKey {
 public:
  explicit HmacKey(std::string secret);
  ~HmacKey() override;  // wipes the secret
  HmacKey(const HmacKey&) = delete;
  HmacKey& operator=(const HmacKey&) = delete;

  bool supports(Alg alg) const override;
  bool verify(Alg alg, std::string_view signing_input, std::string_view signature) const override;
  // The raw MAC; empty if OpenSSL fails or alg is not HS*. For tools and benchmarks.
  std::string sign(Alg alg, std::string_view signing_input) const;
  size_t secretSize() const { return secret_.size(); }

 private:
  std::string secret_;
};

// An RSA, EC or EdDSA public key (OpenSSL EVP_DigestVerify). Which algorithms it verifies
// follows from its type alone: RSA → RS*/PS*, P-256 → ES256, P-384 → ES384, P-521 → ES512,
// Ed25519/Ed448 → EdDSA; never HS*, so a public key can not be abused as an HMAC secret.
class PublicKey final : public SignatureKey {
 public:
  enum class Type : uint8_t { kRsa, kEcP256, kEcP384, kEcP521, kEd25519, kEd448 };

  // One PEM block: a SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or an X.509 certificate
  // ("BEGIN CERTIFICATE", whose validity dates and issuer are not checked: it only carries the
  // key). Anything else (private keys, PKCS#1 "RSA PUBLIC KEY", several blocks, other key
  // types) is refused with a reason. Errors are kInvalidConfig.
  [[nodiscard]] static Result<std::shared_ptr<const PublicKey>> fromPem(std::string_view pem);
  // JWK components (RFC 7518 §6), already base64url-decoded.
  [[nodiscard]] static Result<std::shared_ptr<const PublicKey>> fromRsa(std::string_view n,
                                                                       std::string_view e);
  // `crv` is "P-256", "P-384" or "P-521"; x and y have exactly the coordinate size.
  [[nodiscard]] static Result<std::shared_ptr<const PublicKey>> fromEc(std::string_view crv,
                                                                      std::string_view x,
                                                                      std::string_view y);
  // `crv` is "Ed25519" or "Ed448"; x is the raw public key.
  [[nodiscard]] static Result<std::shared_ptr<const PublicKey>> fromOkp(std::string_view crv,
                                                                       std::string_view x);
  // Takes ownership of `pkey` (also on error). Applies the checks above: RSA of
  // kMinRsaBits..kMaxRsaBits, the curves listed, a valid point.
  [[nodiscard]] static Result<std::shared_ptr<const PublicKey>> fromEvp(evp_pkey_st* pkey);

  ~PublicKey() override;
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;

  Type type() const { return type_; }
  int bits() const { return bits_; }
  // "RSA-2048", "P-256", "Ed25519": for logs.
  std::string describe() const;

  bool supports(Alg alg) const override;
  // ES*: `signature` must be R||S of exactly twice the coordinate size (RFC 7518 §3.4); a DER
  // signature or any other length is refused. The OpenSSL error queue is left empty.
  bool verify(Alg alg, std::string_view signing_input, std::string_view signature) const override;

 private:
  PublicKey(evp_pkey_st* pkey, Type type, int bits);

  evp_pkey_st* pkey_;
  Type type_;
  int bits_;
};

// RSA keys below 2048 bits are refused at load (RFC 7518 §3.3, NIST SP 800-131A); above 16384
// every verification would cost milliseconds, so such a key is taken for a mistake.
inline constexpr int kMinRsaBits = 2048;
inline constexpr int kMaxRsaBits = 16384;

// One entry of a key set. With several keys, a token's "kid" header selects among them.
struct VerificationKey {
  std::string kid;         // empty: the key has no id (see verify() for how it is matched)
  std::optional<Alg> alg;  // the JWK "alg": when set, the only algorithm this key verifies
  SignatureKeyConstSharedPtr key;
};

// Bounds for a JWK Set: keys listed (usable or not). Real sets hold a handful.
inline constexpr size_t kMaxJwksKeys = 100;

struct JwksKeys {
  std::vector<VerificationKey> keys;  // usable signature keys, in file order
  std::vector<std::string> skipped;   // one line per entry left out, with the reason
};

// Parses an RFC 7517 JWK Set: {"keys":[{...}, ...]}. Per entry:
//  - used: kty "RSA" (n, e), "EC" (crv P-256/P-384/P-521, x, y), "OKP" (crv Ed25519/Ed448, x),
//    "oct" (k, an HMAC secret), with optional "kid" and "alg";
//  - skipped (listed in `skipped`): "use" other than "sig", "key_ops" without "verify", another
//    kty, a curve that does not sign (X25519, secp256k1, ...), an "alg" that is not a JWS
//    signature algorithm we know (RSA-OAEP, ES256K, ...);
//  - an error (the whole set is refused, so a typo never silently drops a key): not an object,
//    missing or non-string members, bad base64url, wrong coordinate sizes, a point off the
//    curve, an RSA key outside kMinRsaBits..kMaxRsaBits, private members ("d"), an "alg" that
//    does not fit the key, two usable keys of one kty with the same kid, more than kMaxJwksKeys
//    entries, or no usable key at all.
// Errors are kInvalidConfig and name the entry ("keys[2] (kid \"a\"): ...").
[[nodiscard]] Result<JwksKeys> parseJwks(std::string_view json);

// A rooms claim holds at most this many entries by default (Verifier::max_rooms).
inline constexpr size_t kDefaultMaxRooms = 256;

// Everything verify() checks against. Built once at compile() and shared read-only.
struct Verifier {
  // Accepted "alg" values. "none" can never be listed; an algorithm missing here is refused
  // even when a key could check it (RFC 8725 §3.1).
  std::vector<Alg> algorithms = {Alg::kHs256};
  // A single key without id or alg restriction; checked as if it were the first of `keys`.
  // compile() leaves it empty and fills `keys`; it stays for callers with one key.
  SignatureKeyConstSharedPtr key;
  std::vector<VerificationKey> keys;
  // Tolerated clock skew for "exp", "nbf", "iat" and max_age.
  std::chrono::seconds leeway{30};
  std::string user_claim = "sub";
  std::string app_claim = "app";
  std::string device_claim = "device";
  std::string default_app = "default";  // when the token has no app claim
  std::optional<std::string> issuer;    // "iss" must equal it when set
  std::optional<std::string> audience;  // "aud" (string or array) must contain it when set
  std::string rooms_claim = "rooms";    // empty: not read
  size_t max_rooms = kDefaultMaxRooms;
  // When set, "iat" is required and the token is refused once older than this (plus leeway).
  std::optional<std::chrono::seconds> max_age;
};

struct Claims {
  std::string user;                    // never empty
  std::string app;                     // the app claim or Verifier::default_app
  std::string device;                  // empty when the token has none
  std::optional<int64_t> expires_s;    // "exp", truncated to whole seconds
  std::optional<int64_t> issued_at;    // "iat", truncated to whole seconds
  std::vector<std::string> rooms;      // the rooms claim: non-empty names, duplicates removed
};

// Verifies a compact JWS token at wall-clock time `now_s` (seconds since the epoch).
// Checks, in order: size, three segments, header (base64url, JSON object, "alg" allowed, no
// "crit", "kid" a string if present), key selection, signature, then payload (JSON object, no
// duplicate names among the claims read, exp/nbf/iat with leeway, max_age, iss, aud, rooms)
// and the identity claims. The payload is parsed only after the signature matched.
//
// Key selection among `key` and `keys`, counting only keys that support the token's alg (and
// whose own alg, if set, equals it):
//  - a token with a "kid" uses the key with that kid; when no key has that kid, the keys
//    without kid are tried ("unknown key id" if there is none);
//  - a token without "kid" needs exactly one matching key.
// Errors are Errc::kUnauthenticated with a short reason fit for the client ("token expired",
// "signature mismatch", "unknown key id", "algorithm \"none\" not allowed", ...), except a
// Verifier without any key (kInternal). Never throws; thread-safe.
[[nodiscard]] Result<Claims> verify(std::string_view token, const Verifier& verifier,
                                    int64_t now_s);

}  // namespace imgate::mod::auth_jwt
