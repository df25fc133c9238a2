// SPDX-License-Identifier: Apache-2.0
// Test-only key material for the auth.jwt tests: keys generated with OpenSSL EVP once per test
// binary, a token signer for every JWS algorithm, and PEM / certificate / JWK writers. None of
// it goes through the code under test (only OpenSSL and auth_jwt_fakes.h's b64url).
#pragma once

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth_jwt_fakes.h"

namespace imgate::mod::auth_jwt::test {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Named test keys, generated on first use and kept for the whole run (RSA generation is slow).
// "rsa", "rsa2": RSA-2048; "rsa1024"; "p256", "p256b", "p384", "p384b", "p521", "p521b";
// "ed25519", "ed25519b", "ed448", "ed448b"; "secp256k1"; "x25519".
inline EVP_PKEY* key(const std::string& name) {
  static std::map<std::string, Pkey> keys;
  auto it = keys.find(name);
  if (it != keys.end()) {
    return it->second.get();
  }
  EVP_PKEY* k = nullptr;
  const std::string base = name.back() == 'b' || name.back() == '2'
                               ? name.substr(0, name.size() - 1)
                               : name;
  if (base == "rsa") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  } else if (base == "rsa1024") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024});
  } else if (base == "p256") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else if (base == "p384") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  } else if (base == "p521") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521");
  } else if (base == "secp256k1") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1");
  } else if (base == "ed25519") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else if (base == "ed448") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448");
  } else if (base == "x25519") {
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  }
  EXPECT_NE(k, nullptr) << "cannot generate test key " << name;
  keys.emplace(name, Pkey(k));
  return k;
}

// Raw JWS signature over `input` with `alg` ("RS256", "PS384", "ES512", "EdDSA", ...).
// ECDSA comes out as R||S, each padded to the coordinate size, as RFC 7518 §3.4 asks.
inline std::string jwsSign(std::string_view alg, EVP_PKEY* pkey, std::string_view input) {
  const EVP_MD* md = nullptr;
  if (alg != "EdDSA") {
    const std::string_view bits = alg.substr(2);
    md = bits == "512" ? EVP_sha512() : bits == "384" ? EVP_sha384() : EVP_sha256();
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestSignInit(ctx, &pctx, md, nullptr, pkey) == 1;
  if (ok && alg.substr(0, 2) == "PS") {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
  }
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  ok = ok && EVP_DigestSign(ctx, nullptr, &len, in, input.size()) == 1;
  std::string sig(len, '\0');
  ok = ok && EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                            input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EXPECT_TRUE(ok) << "signing with " << alg << " failed";
  sig.resize(len);
  if (alg.substr(0, 2) != "ES") {
    return sig;
  }
  const size_t n = alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
  const auto* der = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(sig.size()));
  EXPECT_NE(ecdsa, nullptr);
  std::string raw(2 * n, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()),
               static_cast<int>(n));
  BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + n,
               static_cast<int>(n));
  ECDSA_SIG_free(ecdsa);
  return raw;
}

// A token whose header and payload are used verbatim (header_json empty: {"alg":...,"typ"}).
inline std::string signToken(std::string_view alg, EVP_PKEY* pkey, std::string_view header_json,
                             std::string_view payload_json) {
  const std::string header = header_json.empty()
                                 ? R"({"alg":")" + std::string(alg) + R"(","typ":"JWT"})"
                                 : std::string(header_json);
  const std::string input = b64url(header) + "." + b64url(payload_json);
  return input + "." + b64url(jwsSign(alg, pkey, input));
}

// The header {"alg":alg,"kid":kid}.
inline std::string kidHeader(std::string_view alg, std::string_view kid) {
  return R"({"alg":")" + std::string(alg) + R"(","kid":")" + std::string(kid) + R"("})";
}

inline std::string bioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

inline std::string publicPem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio, pkey), 1);
  return bioText(bio);
}

inline std::string privatePem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return bioText(bio);
}

// A self-signed certificate for `pkey` (already expired: auth.jwt ignores validity dates).
inline std::string certificatePem(EVP_PKEY* pkey) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -2 * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert), -86400);
  X509_set_pubkey(cert, pkey);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("imgate test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  const bool pure = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519 ||
                    EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED448;
  EXPECT_GT(X509_sign(cert, pkey, pure ? nullptr : EVP_sha256()), 0);
  BIO* bio = BIO_new(BIO_s_mem());
  EXPECT_EQ(PEM_write_bio_X509(bio, cert), 1);
  X509_free(cert);
  return bioText(bio);
}

inline std::string bnParam(EVP_PKEY* pkey, const char* param, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, param, &bn), 1) << param;
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)),
                  '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

// The public JWK members of `pkey` (kty and its parameters), without braces, e.g.
// "kty":"EC","crv":"P-256","x":"...","y":"...".
inline std::string jwkMembers(EVP_PKEY* pkey) {
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
      return R"("kty":"RSA","n":")" + b64url(bnParam(pkey, OSSL_PKEY_PARAM_RSA_N)) +
             R"(","e":")" + b64url(bnParam(pkey, OSSL_PKEY_PARAM_RSA_E)) + R"(")";
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len);
      const std::string g(group, len);
      const std::string crv = g == "prime256v1" ? "P-256" : g == "secp384r1" ? "P-384"
                              : g == "secp521r1" ? "P-521" : g;
      const int n = crv == "P-256" ? 32 : crv == "P-384" ? 48 : crv == "P-521" ? 66 : 32;
      return R"("kty":"EC","crv":")" + crv + R"(","x":")" +
             b64url(bnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, n)) + R"(","y":")" +
             b64url(bnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, n)) + R"(")";
    }
    default: {
      const int id = EVP_PKEY_get_base_id(pkey);
      const std::string crv = id == EVP_PKEY_ED25519 ? "Ed25519"
                              : id == EVP_PKEY_ED448 ? "Ed448"
                                                     : "X25519";
      size_t len = 0;
      EVP_PKEY_get_raw_public_key(pkey, nullptr, &len);
      std::string x(len, '\0');
      EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(x.data()), &len);
      return R"("kty":"OKP","crv":")" + crv + R"(","x":")" + b64url(x) + R"(")";
    }
  }
}

// One JWK object; `extra` is appended verbatim (e.g. R"("use":"sig")").
inline std::string jwk(EVP_PKEY* pkey, std::string_view kid = {}, std::string_view alg = {},
                       std::string_view extra = {}) {
  std::string out = "{" + jwkMembers(pkey);
  if (!kid.empty()) {
    out += R"(,"kid":")" + std::string(kid) + R"(")";
  }
  if (!alg.empty()) {
    out += R"(,"alg":")" + std::string(alg) + R"(")";
  }
  if (!extra.empty()) {
    out += ",";
    out += extra;
  }
  return out + "}";
}

inline std::string octJwk(std::string_view secret, std::string_view kid = {},
                          std::string_view alg = {}) {
  std::string out = R"({"kty":"oct","k":")" + b64url(secret) + R"(")";
  if (!kid.empty()) {
    out += R"(,"kid":")" + std::string(kid) + R"(")";
  }
  if (!alg.empty()) {
    out += R"(,"alg":")" + std::string(alg) + R"(")";
  }
  return out + "}";
}

inline std::string jwks(const std::vector<std::string>& entries) {
  std::string out = R"({"keys":[)";
  for (size_t i = 0; i < entries.size(); ++i) {
    out += (i == 0 ? "" : ",") + entries[i];
  }
  return out + "]}";
}

}  // namespace imgate::mod::auth_jwt::test
