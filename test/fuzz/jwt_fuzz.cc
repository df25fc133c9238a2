// SPDX-License-Identifier: Apache-2.0
// Fuzzes JWT verification and JWK Set parsing with every input:
//  1. the input as a raw token, against HMAC, RSA, EC and Ed25519 keys (with and without kid)
//     and every algorithm allowed: segments, base64url, header, key selection, the signature
//     checks (ECDSA R||S conversion included) and, for the seed tokens signed by the private
//     halves of the keys below, the payload parser;
//  2. the input split at its first NUL into header and payload JSON that the harness signs
//     with an HMAC key, so the payload parser behind the signature check is reached too;
//  3. the input as a JWK Set; when it parses, a fixed ES256 token is verified with its keys.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "modules/behavior/auth_jwt/jwt.h"
#include "modules/common/base64.h"

namespace {

using imgate::mod::auth_jwt::Alg;
using imgate::mod::auth_jwt::HmacKey;
using imgate::mod::auth_jwt::PublicKey;
using imgate::mod::auth_jwt::Verifier;
using imgate::mod::auth_jwt::VerificationKey;

constexpr int64_t kNow = 1'800'000'000;

// Public halves of throwaway keys; the seed tokens in corpus/jwt were signed with the private
// halves (not kept).
constexpr const char* kRsaPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArON9jB6vpQexGSydJmc/\n"
    "BdTx0kN0cumCKLzOw0iLTJJcG0OL6Dj69+GEIHFPnYZ7dadA+5WFGH4Aytv1PlUH\n"
    "OeNCv+qqNni2I8md/C/eT5GC+DzBYnhKhcfeDICEwa3KqQ70jKCpma0P6vxKkzMB\n"
    "NQDB9miBtkv+Z/RobM9xHs8QXmTe3qh76oaG7UqlaLCvcRbBoZ4f+sr0IiqnQi3p\n"
    "ygDTL6N3q2/BaBVlcnKJavkqmyWvPl5Pm9TZ5ri3PmBdY8Rx6vzbvrZdS93Pcu8p\n"
    "ILeLLKeScm2USK2ltyQljcJthwlxLaV40xzxZgmzAT5Ea1E4xKc2FXWx0kTFdvPS\n"
    "SQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kEcPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhYLRhUa08glYlDdLtp/U8LWm4dnV\n"
    "koTBB0XTfl1bCXcM+lZ6TaGH+aFBJeXT5MHc4uAUITUekh255FC83XT5UQ==\n"
    "-----END PUBLIC KEY-----\n";
constexpr const char* kEdPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAcDPwRdwo09KER655KacvQY4BxYCuzEWIf07C4+m5H+g=\n"
    "-----END PUBLIC KEY-----\n";
constexpr std::string_view kEsToken =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImUifQ.eyJzdWIiOiJhbGljZSIsImV4cCI6MTkwMDAwMDAwMCwiaWF0IjoxNzk"
    "5OTk5MDAwLCJhdWQiOiJpbWdhdGUiLCJyb29tcyI6WyJhIiwiYiJdLCJhcHAiOiJjaGF0In0.tnLZfOmJ0J-7gDxdY"
    "SF6M9oQKynsRltTxdYL3kgnFFIhQiX6nia97tTEx01DbSge0xn_MoYOKiaKzkF9ZfJrgw";

const std::shared_ptr<HmacKey>& hmacKey() {
  static const auto k = std::make_shared<HmacKey>("fuzz-secret-0123456789abcdef01234567");
  return k;
}

std::shared_ptr<const PublicKey> pem(const char* text) {
  auto k = PublicKey::fromPem(text);
  if (!k) {
    __builtin_trap();  // the harness itself is broken
  }
  return *k;
}

const Verifier& verifier() {
  static const Verifier v = [] {
    Verifier out;
    out.algorithms.assign(imgate::mod::auth_jwt::allAlgs().begin(),
                          imgate::mod::auth_jwt::allAlgs().end());
    out.keys = {
        VerificationKey{"h", std::nullopt, hmacKey()},
        VerificationKey{"r", std::nullopt, pem(kRsaPem)},
        VerificationKey{"r1", Alg::kRs256, pem(kRsaPem)},
        VerificationKey{"r", std::nullopt, hmacKey()},  // same kid, other type
        VerificationKey{"e", std::nullopt, pem(kEcPem)},
        VerificationKey{"", std::nullopt, pem(kEdPem)},
    };
    out.audience = "imgate";
    out.max_rooms = 4;
    out.max_age = std::chrono::seconds(1'000'000);
    return out;
  }();
  return v;
}

// One HMAC key without kid, so harness-signed tokens always reach the payload.
const Verifier& hmacVerifier() {
  static const Verifier v = [] {
    Verifier out;
    out.algorithms = {Alg::kHs256, Alg::kHs512};
    out.key = hmacKey();
    out.audience = "imgate";
    out.max_rooms = 4;
    return out;
  }();
  return v;
}

std::string b64(std::string_view s) {
  return imgate::mod::common::base64Encode(s, imgate::mod::common::Base64Alphabet::kUrl, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)imgate::mod::auth_jwt::verify(input, verifier(), kNow);

  const size_t split = input.find('\0');
  const std::string_view header =
      split == std::string_view::npos ? R"({"alg":"HS256"})" : input.substr(0, split);
  const std::string_view payload =
      split == std::string_view::npos ? input : input.substr(split + 1);
  const std::string signing = b64(header) + "." + b64(payload);
  for (Alg alg : {Alg::kHs256, Alg::kHs512}) {
    const std::string token = signing + "." + b64(hmacKey()->sign(alg, signing));
    (void)imgate::mod::auth_jwt::verify(token, hmacVerifier(), kNow);
  }

  auto jwks = imgate::mod::auth_jwt::parseJwks(input);
  if (jwks) {
    Verifier v;
    v.algorithms = {Alg::kEs256, Alg::kRs256, Alg::kHs256, Alg::kEdDsa};
    v.keys = std::move(jwks->keys);
    (void)imgate::mod::auth_jwt::verify(kEsToken, v, kNow);
  }
  return 0;
}
