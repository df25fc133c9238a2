// SPDX-License-Identifier: Apache-2.0
// JWT verification (RFC 7519, JWS compact serialization RFC 7515), free of any stage or I/O so
// it can be tested and fuzzed alone.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::auth_jwt {

// Longest token accepted, before any decoding. Real tokens are a few hundred bytes; the bound
// keeps hostile handshakes from making us decode and parse large documents.
inline constexpr size_t kMaxTokenBytes = 8 * 1024;

// JWS algorithms (RFC 7518 §3.1). Append only: RS256/ES256/EdDSA come with issue 5, each as a
// new value plus a SignatureKey implementation; verify() itself does not change.
enum class Alg : uint8_t { kHs256, kHs384, kHs512 };

// Exact, case-sensitive names as in the JWS "alg" header: "HS256", "HS384", "HS512".
std::optional<Alg> algFromName(std::string_view name);
std::string_view algName(Alg alg);

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
  // The raw MAC; empty if OpenSSL fails. For tools and benchmarks.
  std::string sign(Alg alg, std::string_view signing_input) const;

 private:
  std::string secret_;
};

// Everything verify() checks against. Built once at compile() and shared read-only.
struct Verifier {
  // Accepted "alg" values. "none" can never be listed; an algorithm missing here is refused
  // even when the key could check it (RFC 8725 §3.1).
  std::vector<Alg> algorithms = {Alg::kHs256};
  SignatureKeyConstSharedPtr key;
  // Tolerated clock skew for "exp" and "nbf".
  std::chrono::seconds leeway{30};
  std::string user_claim = "sub";
  std::string app_claim = "app";
  std::string device_claim = "device";
  std::string default_app = "default";  // when the token has no app claim
  std::optional<std::string> issuer;    // "iss" must equal it when set
  std::optional<std::string> audience;  // "aud" (string or array) must contain it when set
};

struct Claims {
  std::string user;                  // never empty
  std::string app;                   // the app claim or Verifier::default_app
  std::string device;                // empty when the token has none
  std::optional<int64_t> expires_s;  // "exp", truncated to whole seconds
};

// Verifies a compact JWS token at wall-clock time `now_s` (seconds since the epoch).
// Checks, in order: size, three segments, header (base64url, JSON object, "alg" allowed, no
// "crit"), signature, then payload (JSON object, no duplicate names among the claims read,
// exp/nbf with leeway, iss, aud) and the identity claims. The payload is parsed only after the
// signature matched. Errors are Errc::kUnauthenticated with a short reason fit for the client
// ("token expired", "signature mismatch", "algorithm \"none\" not allowed", ...), except a
// Verifier without a key (kInternal). Never throws; thread-safe.
[[nodiscard]] Result<Claims> verify(std::string_view token, const Verifier& verifier,
                                    int64_t now_s);

}  // namespace imgate::mod::auth_jwt
