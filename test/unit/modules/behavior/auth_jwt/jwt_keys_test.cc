// SPDX-License-Identifier: Apache-2.0
// Asymmetric algorithms, key loading (PEM, JWK Set) and key selection by kid.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "auth_jwt_fakes.h"
#include "auth_jwt_keys.h"
#include "modules/behavior/auth_jwt/jwt.h"

namespace imgate::mod::auth_jwt {
namespace {

using test::b64url;
using test::jwk;
using test::jwks;
using test::key;
using test::kidHeader;
using test::octJwk;

constexpr int64_t kNow = 1'700'000'000;
// 64 bytes each: long enough for HS512.
constexpr std::string_view kSecretA =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr std::string_view kSecretB =
    "another secret, long enough for every HMAC algorithm here!!!!!!!";

void expectRejected(const Result<Claims>& r, std::string_view reason) {
  ASSERT_FALSE(r) << "expected rejection: " << reason;
  EXPECT_EQ(r.error().code, Errc::kUnauthenticated);
  EXPECT_EQ(r.error().message, reason);
}

std::shared_ptr<const PublicKey> pemKey(const std::string& name) {
  auto k = PublicKey::fromPem(test::publicPem(key(name)));
  EXPECT_TRUE(k) << name << ": " << k.error().message;
  return k ? *k : nullptr;
}

std::string claims(std::string_view extra = {}) {
  std::string p = R"({"sub":"alice","iss":"https://auth.example","aud":"imgate","exp":)" +
                  std::to_string(kNow + 3600);
  if (!extra.empty()) {
    p += ",";
    p += extra;
  }
  return p + "}";
}

// Swaps one segment (0 header, 1 payload, 2 signature) of a compact token.
std::string withSegment(const std::string& token, int index, const std::string& value) {
  const size_t d1 = token.find('.');
  const size_t d2 = token.rfind('.');
  const std::string parts[3] = {token.substr(0, d1), token.substr(d1 + 1, d2 - d1 - 1),
                                token.substr(d2 + 1)};
  std::string out;
  for (int i = 0; i < 3; ++i) {
    out += (i == 0 ? "" : ".") + (i == index ? value : parts[i]);
  }
  return out;
}

std::string signatureOf(const std::string& token) {
  auto sig = base64UrlDecode(token.substr(token.rfind('.') + 1));
  EXPECT_TRUE(sig);
  return sig ? *sig : std::string();
}

// ---- Every algorithm ------------------------------------------------------------------------

struct AlgCase {
  const char* alg;
  const char* key;    // test key name; "" for HMAC (kSecretA)
  const char* other;  // another key of the same type; "" for HMAC (kSecretB)
};

std::ostream& operator<<(std::ostream& os, const AlgCase& c) {
  return os << c.alg << "/" << (c.key[0] == '\0' ? "hmac" : c.key);
}

class AuthJwtAlgTest : public testing::TestWithParam<AlgCase> {
 protected:
  bool hmac() const { return GetParam().key[0] == '\0'; }
  Alg alg() const { return *algFromName(GetParam().alg); }

  SignatureKeyConstSharedPtr verifyingKey() const {
    if (hmac()) {
      return std::make_shared<HmacKey>(std::string(kSecretA));
    }
    return pemKey(GetParam().key);
  }
  // Every algorithm allowed, so that key selection (not the allow-list) has to refuse.
  Verifier verifier() const {
    Verifier v;
    v.algorithms.assign(allAlgs().begin(), allAlgs().end());
    v.keys.push_back(VerificationKey{{}, std::nullopt, verifyingKey()});
    v.issuer = "https://auth.example";
    v.audience = "imgate";
    return v;
  }
  std::string rawSign(std::string_view alg, bool other, std::string_view input) const {
    if (hmac()) {
      return test::hmac(alg, other ? kSecretB : kSecretA, input);
    }
    return test::jwsSign(alg, key(other ? GetParam().other : GetParam().key), input);
  }
  // header_json empty: {"alg":<alg>,"typ":"JWT"}; the signature uses `sign_alg` (default alg).
  std::string token(std::string_view payload, bool other = false,
                    std::string_view header_json = {}, std::string_view sign_alg = {}) const {
    const std::string header =
        header_json.empty() ? R"({"alg":")" + std::string(GetParam().alg) + R"(","typ":"JWT"})"
                            : std::string(header_json);
    const std::string input = b64url(header) + "." + b64url(payload);
    return input + "." +
           b64url(rawSign(sign_alg.empty() ? GetParam().alg : sign_alg, other, input));
  }
};

TEST_P(AuthJwtAlgTest, Valid) {
  auto c = verify(token(claims(R"("app":"chat","iat":1699999000,"rooms":["r1","r2"])")),
                  verifier(), kNow);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->app, "chat");
  EXPECT_EQ(c->expires_s, kNow + 3600);
  EXPECT_EQ(c->issued_at, 1699999000);
  EXPECT_EQ(c->rooms, (std::vector<std::string>{"r1", "r2"}));
}

TEST_P(AuthJwtAlgTest, Expired) {
  expectRejected(verify(token(R"({"sub":"a","iss":"https://auth.example","aud":"imgate","exp":)" +
                              std::to_string(kNow - 60) + "}"),
                        verifier(), kNow),
                 "token expired");
}

TEST_P(AuthJwtAlgTest, NotBeforeInTheFuture) {
  expectRejected(verify(token(claims(R"("nbf":)" + std::to_string(kNow + 600))), verifier(), kNow),
                 "token not yet valid");
}

TEST_P(AuthJwtAlgTest, WrongKey) {
  expectRejected(verify(token(claims(), true), verifier(), kNow), "signature mismatch");
}

TEST_P(AuthJwtAlgTest, HeaderAlgDiffersFromKey) {
  // The signature is made with the case's algorithm, the header names another one: either the
  // key cannot do that algorithm at all, or its check fails.
  const SignatureKeyConstSharedPtr k = verifyingKey();
  for (Alg other : allAlgs()) {
    if (other == alg()) {
      continue;
    }
    const std::string header = R"({"alg":")" + std::string(algName(other)) + R"("})";
    const auto r = verify(token(claims(), false, header), verifier(), kNow);
    expectRejected(r, k->supports(other)
                          ? std::string("signature mismatch")
                          : "no key for algorithm \"" + std::string(algName(other)) + "\"");
  }
  // Classic confusion (RFC 8725 §2.1): HS256 keyed with the public key's PEM text.
  if (!hmac()) {
    const std::string pem = test::publicPem(key(GetParam().key));
    const std::string forged = test::signToken(pem, claims(), "HS256");
    expectRejected(verify(forged, verifier(), kNow), "no key for algorithm \"HS256\"");
  }
}

TEST_P(AuthJwtAlgTest, AlgorithmNotAllowed) {
  Verifier v = verifier();
  v.algorithms.erase(std::find(v.algorithms.begin(), v.algorithms.end(), alg()));
  expectRejected(verify(token(claims()), v, kNow),
                 "algorithm \"" + std::string(GetParam().alg) + "\" not allowed");
}

TEST_P(AuthJwtAlgTest, NoneIsRefused) {
  const std::string good = token(claims());
  const std::string none_header = b64url(R"({"alg":"none"})");
  expectRejected(verify(withSegment(withSegment(good, 0, none_header), 2, ""), verifier(), kNow),
                 "algorithm \"none\" not allowed");
  // With the genuine signature still attached.
  expectRejected(verify(withSegment(good, 0, none_header), verifier(), kNow),
                 "algorithm \"none\" not allowed");
}

TEST_P(AuthJwtAlgTest, FlippedSignatureBit) {
  const std::string good = token(claims());
  ASSERT_TRUE(verify(good, verifier(), kNow));
  const std::string sig = signatureOf(good);
  ASSERT_FALSE(sig.empty());
  for (size_t byte : {size_t{0}, sig.size() / 2, sig.size() - 1}) {
    for (int bit : {0, 7}) {
      std::string bad = sig;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      expectRejected(verify(withSegment(good, 2, b64url(bad)), verifier(), kNow),
                     "signature mismatch");
    }
  }
}

TEST_P(AuthJwtAlgTest, WrongAudience) {
  expectRejected(verify(token(R"({"sub":"a","iss":"https://auth.example","aud":"other"})"),
                        verifier(), kNow),
                 "audience mismatch");
}

TEST_P(AuthJwtAlgTest, WrongIssuer) {
  expectRejected(verify(token(R"({"sub":"a","iss":"https://evil.example","aud":"imgate"})"),
                        verifier(), kNow),
                 "issuer mismatch");
}

TEST_P(AuthJwtAlgTest, TamperedPayload) {
  const std::string good = token(claims());
  expectRejected(verify(withSegment(good, 1, b64url(claims(R"("admin":true)"))), verifier(), kNow),
                 "signature mismatch");
  // Same claims, re-encoded differently (padding): the signature covers the bytes as sent.
  std::string padded = b64url(claims());
  while (padded.size() % 4 != 0) {
    padded.push_back('=');
  }
  if (padded != b64url(claims())) {
    expectRejected(verify(withSegment(good, 1, padded), verifier(), kNow), "signature mismatch");
  }
}

TEST_P(AuthJwtAlgTest, VerifiesThroughJwksWithKid) {
  std::string entry;
  if (hmac()) {
    entry = octJwk(kSecretA, "k1", GetParam().alg);
  } else {
    entry = jwk(key(GetParam().key), "k1", GetParam().alg);
  }
  auto set = parseJwks(jwks({entry}));
  ASSERT_TRUE(set) << set.error().message;
  Verifier v = verifier();
  v.keys = set->keys;
  const std::string header = kidHeader(GetParam().alg, "k1");
  EXPECT_TRUE(verify(token(claims(), false, header), v, kNow));
  expectRejected(verify(token(claims(), true, header), v, kNow), "signature mismatch");
  expectRejected(verify(token(claims(), false, kidHeader(GetParam().alg, "k2")), v, kNow),
                 "unknown key id");
}

INSTANTIATE_TEST_SUITE_P(
    Every, AuthJwtAlgTest,
    testing::Values(AlgCase{"HS256", "", ""}, AlgCase{"HS384", "", ""}, AlgCase{"HS512", "", ""},
                    AlgCase{"RS256", "rsa", "rsa2"}, AlgCase{"RS384", "rsa", "rsa2"},
                    AlgCase{"RS512", "rsa", "rsa2"}, AlgCase{"PS256", "rsa", "rsa2"},
                    AlgCase{"PS384", "rsa", "rsa2"}, AlgCase{"PS512", "rsa", "rsa2"},
                    AlgCase{"ES256", "p256", "p256b"}, AlgCase{"ES384", "p384", "p384b"},
                    AlgCase{"ES512", "p521", "p521b"}, AlgCase{"EdDSA", "ed25519", "ed25519b"},
                    AlgCase{"EdDSA", "ed448", "ed448b"}),
    [](const testing::TestParamInfo<AlgCase>& info) {
      return std::string(info.param.alg) + "_" +
             (info.param.key[0] == '\0' ? std::string("hmac") : std::string(info.param.key));
    });

// ---- ECDSA and RSA signature shapes ---------------------------------------------------------

TEST(AuthJwtEcdsa, SignatureMustBeRawOfExactLength) {
  Verifier v;
  v.algorithms = {Alg::kEs256, Alg::kEs384};
  v.keys = {{"", std::nullopt, pemKey("p256")}, {"", std::nullopt, pemKey("p384")}};
  const std::string good = test::signToken("ES256", key("p256"), {}, claims());
  ASSERT_TRUE(verify(good, v, kNow));
  const std::string raw = signatureOf(good);
  ASSERT_EQ(raw.size(), 64u);
  expectRejected(verify(withSegment(good, 2, b64url(raw.substr(0, 63))), v, kNow),
                 "signature mismatch");
  expectRejected(verify(withSegment(good, 2, b64url(raw + "\x01")), v, kNow),
                 "signature mismatch");
  expectRejected(verify(withSegment(good, 2, b64url(raw + std::string(32, '\0'))), v, kNow),
                 "signature mismatch");
  expectRejected(verify(withSegment(good, 2, ""), v, kNow), "signature mismatch");
  expectRejected(verify(withSegment(good, 2, b64url(std::string(64, '\0'))), v, kNow),
                 "signature mismatch");
  expectRejected(verify(withSegment(good, 2, b64url(std::string(64, '\xff'))), v, kNow),
                 "signature mismatch");

  // The same signature in DER (what OpenSSL produces, a common signer bug) is refused.
  const std::string input = good.substr(0, good.rfind('.'));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  ASSERT_EQ(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key("p256")), 1);
  ASSERT_EQ(EVP_DigestSign(ctx, nullptr, &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  std::string der(len, '\0');
  ASSERT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(der.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  EVP_MD_CTX_free(ctx);
  der.resize(len);
  expectRejected(verify(input + "." + b64url(der), v, kNow), "signature mismatch");

  // An ES384 signature (96 bytes) under an ES256 header.
  const std::string es384 = test::signToken("ES384", key("p384"), R"({"alg":"ES256"})", claims());
  expectRejected(verify(es384, v, kNow), "signature mismatch");
}

TEST(AuthJwtRsa, SignatureOfWrongLengthOrOtherPadding) {
  Verifier v;
  v.algorithms = {Alg::kRs256, Alg::kPs256};
  v.keys = {{"", std::nullopt, pemKey("rsa")}};
  const std::string good = test::signToken("RS256", key("rsa"), {}, claims());
  ASSERT_TRUE(verify(good, v, kNow));
  const std::string sig = signatureOf(good);
  EXPECT_EQ(sig.size(), 256u);
  expectRejected(verify(withSegment(good, 2, b64url(sig.substr(1))), v, kNow),
                 "signature mismatch");
  expectRejected(verify(withSegment(good, 2, b64url(std::string(1, '\0') + sig)), v, kNow),
                 "signature mismatch");
  // PKCS#1 v1.5 signature presented as PSS and the reverse.
  expectRejected(
      verify(test::signToken("PS256", key("rsa"), R"({"alg":"RS256"})", claims()), v, kNow),
      "signature mismatch");
  expectRejected(
      verify(test::signToken("RS256", key("rsa"), R"({"alg":"PS256"})", claims()), v, kNow),
      "signature mismatch");
}

TEST(AuthJwtPublicKey, VerifyLeavesNoOpenSslErrors) {
  const auto k = pemKey("p256");
  ERR_clear_error();
  EXPECT_FALSE(k->verify(Alg::kEs256, "x.y", std::string(64, '\x01')));
  EXPECT_EQ(ERR_peek_error(), 0u);
  const auto r = pemKey("rsa");
  EXPECT_FALSE(r->verify(Alg::kRs256, "x.y", std::string(256, '\x01')));
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_FALSE(PublicKey::fromPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// ---- PEM ------------------------------------------------------------------------------------

TEST(AuthJwtPublicKey, FromPemAndCertificate) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rsa", "RSA-2048"}, {"p256", "P-256"},     {"p384", "P-384"},
      {"p521", "P-521"},   {"ed25519", "Ed25519"}, {"ed448", "Ed448"}};
  for (const auto& [name, described] : cases) {
    for (const std::string& pem : {test::publicPem(key(name)), test::certificatePem(key(name))}) {
      auto k = PublicKey::fromPem(pem);
      ASSERT_TRUE(k) << name << ": " << k.error().message;
      EXPECT_EQ((*k)->describe(), described);
      EXPECT_FALSE((*k)->supports(Alg::kHs256)) << name;
    }
  }
  auto rsa = pemKey("rsa");
  EXPECT_EQ(rsa->type(), PublicKey::Type::kRsa);
  EXPECT_EQ(rsa->bits(), 2048);
  for (Alg a : {Alg::kRs256, Alg::kRs384, Alg::kRs512, Alg::kPs256, Alg::kPs384, Alg::kPs512}) {
    EXPECT_TRUE(rsa->supports(a));
  }
  EXPECT_FALSE(rsa->supports(Alg::kEs256));
  EXPECT_TRUE(pemKey("p256")->supports(Alg::kEs256));
  EXPECT_FALSE(pemKey("p256")->supports(Alg::kEs384));
  EXPECT_TRUE(pemKey("ed448")->supports(Alg::kEdDsa));
  // Extra text around the block and `openssl ecparam` parameters are fine.
  std::string ec = "# key for tests\n-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
                   "-----END EC PARAMETERS-----\n" +
                   test::publicPem(key("p256"));
  EXPECT_TRUE(PublicKey::fromPem(ec));
}

TEST(AuthJwtPublicKey, RefusedPem) {
  const auto refused = [](const std::string& pem, std::string_view reason) {
    auto k = PublicKey::fromPem(pem);
    ASSERT_FALSE(k) << "expected: " << reason;
    EXPECT_EQ(k.error().code, Errc::kInvalidConfig);
    EXPECT_NE(k.error().message.find(reason), std::string::npos) << k.error().message;
  };
  refused(test::publicPem(key("rsa1024")), "RSA key of 1024 bits is too short");
  refused(test::certificatePem(key("rsa1024")), "at least 2048 bits");
  refused(test::privatePem(key("p256")), "private key");
  refused(test::publicPem(key("p256")) + test::privatePem(key("p256")), "private key");
  refused(test::publicPem(key("p256")) + test::publicPem(key("p384")), "holds 2 PEM blocks");
  refused("", "no PEM block");
  refused("not a key at all", "no PEM block");
  refused("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
          "malformed PUBLIC KEY block");
  refused("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
          "malformed CERTIFICATE block");
  refused("-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n", "PKCS#1");
  refused("-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "unsupported PEM block \"FOO\"");
  refused(test::publicPem(key("secp256k1")), "EC curve \"secp256k1\" is not supported");
  refused(test::publicPem(key("x25519")), "unsupported key type");
}

// ---- JWK components -------------------------------------------------------------------------

TEST(AuthJwtPublicKey, FromComponents) {
  const std::string n = test::bnParam(key("rsa"), OSSL_PKEY_PARAM_RSA_N);
  const std::string e = test::bnParam(key("rsa"), OSSL_PKEY_PARAM_RSA_E);
  auto rsa = PublicKey::fromRsa(n, e);
  ASSERT_TRUE(rsa) << rsa.error().message;
  EXPECT_EQ((*rsa)->bits(), 2048);
  // A leading zero byte does not change the number.
  EXPECT_TRUE(PublicKey::fromRsa(std::string(1, '\0') + n, e));
  std::string even = n;
  even.back() = static_cast<char>(even.back() & ~1);
  EXPECT_FALSE(PublicKey::fromRsa(even, e));
  EXPECT_FALSE(PublicKey::fromRsa(n, ""));
  EXPECT_FALSE(PublicKey::fromRsa("", e));
  auto short_rsa = PublicKey::fromRsa(test::bnParam(key("rsa1024"), OSSL_PKEY_PARAM_RSA_N), e);
  ASSERT_FALSE(short_rsa);
  EXPECT_NE(short_rsa.error().message.find("too short"), std::string::npos);

  const std::string x = test::bnParam(key("p256"), OSSL_PKEY_PARAM_EC_PUB_X, 32);
  const std::string y = test::bnParam(key("p256"), OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  EXPECT_TRUE(PublicKey::fromEc("P-256", x, y));
  std::string off_curve = y;
  off_curve.back() = static_cast<char>(off_curve.back() ^ 1);
  EXPECT_FALSE(PublicKey::fromEc("P-256", x, off_curve));
  auto short_x = PublicKey::fromEc("P-256", x.substr(1), y);
  ASSERT_FALSE(short_x);
  EXPECT_NE(short_x.error().message.find("must be 32 bytes"), std::string::npos);
  EXPECT_FALSE(PublicKey::fromEc("P-384", x, y));
  EXPECT_FALSE(PublicKey::fromEc("secp256k1", x, y));
  EXPECT_FALSE(PublicKey::fromEc("P-256", std::string(32, '\0'), std::string(32, '\0')));

  EXPECT_FALSE(PublicKey::fromOkp("Ed25519", std::string(31, 'x')));
  EXPECT_FALSE(PublicKey::fromOkp("X25519", std::string(32, 'x')));
  EXPECT_FALSE(ERR_peek_error());
}

// ---- JWK Set --------------------------------------------------------------------------------

TEST(AuthJwtJwks, ParsesEveryKeyType) {
  auto set = parseJwks(jwks({
      jwk(key("rsa"), "r", "RS256", R"("use":"sig","x5t":"ignored")"),
      jwk(key("rsa2"), "r2"),
      jwk(key("p256"), "e256", "ES256", R"("key_ops":["verify"])"),
      jwk(key("p384"), "e384"),
      jwk(key("p521"), "e521", "ES512"),
      jwk(key("ed25519"), "ed", "EdDSA"),
      jwk(key("ed448"), "ed448"),
      octJwk(kSecretA, "h", "HS512"),
      jwk(key("p256b")),  // no kid
  }));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_TRUE(set->skipped.empty());
  ASSERT_EQ(set->keys.size(), 9u);
  EXPECT_EQ(set->keys[0].kid, "r");
  EXPECT_EQ(set->keys[0].alg, Alg::kRs256);
  EXPECT_FALSE(set->keys[1].alg);
  EXPECT_EQ(set->keys[7].alg, Alg::kHs512);
  EXPECT_TRUE(set->keys[7].key->supports(Alg::kHs512));
  EXPECT_EQ(set->keys[8].kid, "");

  Verifier v;
  v.algorithms.assign(allAlgs().begin(), allAlgs().end());
  v.keys = set->keys;
  const std::vector<std::tuple<const char*, const char*, const char*>> tokens = {
      {"RS256", "rsa", "r"},     {"PS256", "rsa2", "r2"},  {"ES256", "p256", "e256"},
      {"ES384", "p384", "e384"}, {"ES512", "p521", "e521"}, {"EdDSA", "ed25519", "ed"},
      {"EdDSA", "ed448", "ed448"}};
  for (const auto& [alg, name, kid] : tokens) {
    auto c = verify(test::signToken(alg, key(name), kidHeader(alg, kid), claims()), v, kNow);
    EXPECT_TRUE(c) << alg << " " << kid << ": " << (c ? "" : c.error().message);
  }
  EXPECT_TRUE(verify(test::signToken(kSecretA, claims(), "HS512", kidHeader("HS512", "h")), v,
                     kNow));
}

TEST(AuthJwtJwks, SkipsEntriesThatAreNotSignatureKeys) {
  auto set = parseJwks(jwks({
      jwk(key("rsa"), "enc-key", "", R"("use":"enc")"),
      jwk(key("rsa"), "wrap", "", R"("key_ops":["wrapKey","encrypt"])"),
      jwk(key("rsa"), "oaep", "RSA-OAEP"),
      jwk(key("secp256k1"), "k1", "ES256K"),
      jwk(key("secp256k1"), "k1b"),
      jwk(key("x25519"), "x"),
      R"({"kty":"EC-future","kid":"f"})",
      jwk(key("p256"), "good"),
  }));
  ASSERT_TRUE(set) << set.error().message;
  ASSERT_EQ(set->keys.size(), 1u);
  EXPECT_EQ(set->keys[0].kid, "good");
  const std::vector<std::string> want = {
      R"(keys[0] (kid "enc-key"): use "enc")",
      R"(keys[1] (kid "wrap"): key_ops without "verify")",
      R"(keys[2] (kid "oaep"): alg "RSA-OAEP" is not a supported signature algorithm)",
      R"(keys[3] (kid "k1"): alg "ES256K" is not a supported signature algorithm)",
      R"(keys[4] (kid "k1b"): EC curve "secp256k1" does not sign JWS)",
      R"(keys[5] (kid "x"): OKP curve "X25519" does not sign JWS)",
      R"(keys[6] (kid "f"): kty "EC-future" is not supported)",
  };
  EXPECT_EQ(set->skipped, want);
}

TEST(AuthJwtJwks, MalformedSetsAreErrors) {
  const std::string rsa = test::jwkMembers(key("rsa"));
  const std::string p256 = test::jwkMembers(key("p256"));
  const std::string x = b64url(test::bnParam(key("p256"), OSSL_PKEY_PARAM_EC_PUB_X, 32));
  std::string off_curve_y = test::bnParam(key("p256"), OSSL_PKEY_PARAM_EC_PUB_Y, 32);
  off_curve_y.back() = static_cast<char>(off_curve_y.back() ^ 1);
  std::string many_keys;
  for (int i = 0; i <= 100; ++i) {
    many_keys += (i == 0 ? "" : ",") + std::string("{}");
  }
  std::string many_members = R"({"keys":[{"kty":"oct","k":"AAAA")";
  for (int i = 0; i < 100; ++i) {
    many_members += ",\"m" + std::to_string(i) + "\":1";
  }
  many_members += "}]}";

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "invalid json"},
      {"", "invalid json"},
      {R"({"keys":[]} trailing)", "invalid json"},
      {std::string("{\"keys\":[]}\0", 12), "invalid json"},
      {R"({"keys":[)" + std::string(40, '[') + std::string(40, ']') + "]}", "invalid json"},
      {"[]", "not a json object"},
      {"{}", "missing \"keys\""},
      {R"({"keys":{}})", "\"keys\" is not an array"},
      {R"({"keys":"x"})", "\"keys\" is not an array"},
      {R"({"keys":[],"keys":[]})", "duplicate \"keys\""},
      {R"({"keys":[]})", "no usable signature key"},
      {R"({"keys":[{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]})",
       "no usable signature key (skipped: keys[0]: use \"enc\", ...)"},
      {R"({"keys":[1]})", "keys[0]: not an object"},
      {R"({"keys":[[]]})", "keys[0]: not an object"},
      {R"({"keys":[{"n":"AQAB"}]})", "keys[0]: missing \"kty\""},
      {R"({"keys":[{"kty":1}]})", "keys[0]: \"kty\" is not a string"},
      {R"({"keys":[{"kty":"RSA","kid":7}]})", "keys[0]: \"kid\" is not a string"},
      {R"({"keys":[{"kty":"RSA","kid":"a","e":"AQAB"}]})", "keys[0] (kid \"a\"): missing \"n\""},
      {R"({"keys":[{"kty":"RSA","n":"***","e":"AQAB"}]})",
       "keys[0]: \"n\" is not valid base64url"},
      {R"({"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]})", "too short"},
      {"{\"keys\":[{" + rsa + ",\"alg\":\"ES256\"}]}",
       "keys[0]: alg \"ES256\" does not fit the key (RSA-2048)"},
      {"{\"keys\":[{" + rsa + ",\"d\":\"AQAB\"}]}", "keys[0]: holds a private key (\"d\")"},
      {"{\"keys\":[{" + rsa + ",\"kty\":\"RSA\"}]}", "keys[0]: duplicate member \"kty\""},
      {"{\"keys\":[{" + rsa + ",\"use\":5}]}", "keys[0]: \"use\" is not a string"},
      {"{\"keys\":[{" + rsa + ",\"key_ops\":\"verify\"}]}",
       "keys[0]: \"key_ops\" is not an array of strings"},
      {"{\"keys\":[{" + rsa + ",\"key_ops\":[\"verify\",1]}]}",
       "keys[0]: \"key_ops\" is not an array of strings"},
      {"{\"keys\":[{" + rsa + ",\"kid\":\"a\"},{" + rsa + ",\"kid\":\"a\"}]}",
       "keys[1] (kid \"a\"): another RSA key has the same kid"},
      {R"({"keys":[{"kty":"EC","x":"AA","y":"AA"}]})", "keys[0]: missing \"crv\""},
      {R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x + R"("}]})", "missing \"y\""},
      {R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x + R"(","y":")" + b64url(off_curve_y) +
           R"("}]})",
       "keys[0]: invalid EC public key"},
      {R"({"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]})", "must be 32 bytes"},
      {"{\"keys\":[{" + p256 + ",\"alg\":\"ES384\"}]}", "does not fit the key (P-256)"},
      {R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]})", "must be 32 bytes for Ed25519"},
      {R"({"keys":[{"kty":"oct","k":""}]})", "keys[0]: empty \"k\""},
      {R"({"keys":[{"kty":"oct","k":"AAAA","alg":"RS256"}]})",
       "alg \"RS256\" does not fit the key (HMAC secret)"},
      {R"({"keys":[)" + many_keys + "]}", "more than 100 keys"},
      {many_members, "a key has more than 100 members"},
  };
  for (const auto& [json, reason] : cases) {
    auto r = parseJwks(json);
    ASSERT_FALSE(r) << json;
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    EXPECT_NE(r.error().message.find(reason), std::string::npos)
        << "json: " << json.substr(0, 200) << "\nwant: " << reason
        << "\ngot:  " << r.error().message;
  }
  EXPECT_FALSE(ERR_peek_error());
}

TEST(AuthJwtJwks, NestedAndUnknownMembersAreIgnored) {
  auto set = parseJwks(R"({"other":{"keys":[1]},"keys":[{"kty":"oct","k":"c2VjcmV0",)"
                       R"("x5c":["a","b"],"ext":{"deep":[[{"kid":"no"}]]},"kid":"yes"}],)"
                       R"("more":[{"kty":"RSA"}]})");
  ASSERT_TRUE(set) << set.error().message;
  ASSERT_EQ(set->keys.size(), 1u);
  EXPECT_EQ(set->keys[0].kid, "yes");
}

TEST(AuthJwtJwks, SameKidOnDifferentKeyTypes) {
  // RFC 7517 §4.5 allows it; the algorithm tells the keys apart.
  auto set = parseJwks(jwks({jwk(key("rsa"), "k"), jwk(key("p256"), "k"), octJwk(kSecretA, "k")}));
  ASSERT_TRUE(set) << set.error().message;
  Verifier v;
  v.algorithms = {Alg::kRs256, Alg::kEs256, Alg::kHs256};
  v.keys = set->keys;
  EXPECT_TRUE(verify(test::signToken("RS256", key("rsa"), kidHeader("RS256", "k"), claims()), v,
                     kNow));
  EXPECT_TRUE(verify(test::signToken("ES256", key("p256"), kidHeader("ES256", "k"), claims()), v,
                     kNow));
  EXPECT_TRUE(
      verify(test::signToken(kSecretA, claims(), "HS256", kidHeader("HS256", "k")), v, kNow));
}

// ---- Key selection --------------------------------------------------------------------------

Verifier twoKeyVerifier() {
  auto set = parseJwks(jwks({jwk(key("p256"), "a"), jwk(key("p256b"), "b")}));
  EXPECT_TRUE(set);
  Verifier v;
  v.algorithms = {Alg::kEs256, Alg::kRs256, Alg::kHs256};
  v.keys = set->keys;
  return v;
}

TEST(AuthJwtKeySelection, KidPicksTheKey) {
  const Verifier v = twoKeyVerifier();
  const std::string a = test::signToken("ES256", key("p256"), kidHeader("ES256", "a"), claims());
  const std::string b = test::signToken("ES256", key("p256b"), kidHeader("ES256", "b"), claims());
  EXPECT_TRUE(verify(a, v, kNow));
  EXPECT_TRUE(verify(b, v, kNow));
  // Each token verifies only under its own kid.
  expectRejected(
      verify(test::signToken("ES256", key("p256"), kidHeader("ES256", "b"), claims()), v, kNow),
      "signature mismatch");
  expectRejected(
      verify(test::signToken("ES256", key("p256b"), kidHeader("ES256", "a"), claims()), v, kNow),
      "signature mismatch");
  expectRejected(
      verify(test::signToken("ES256", key("p256"), kidHeader("ES256", "c"), claims()), v, kNow),
      "unknown key id");
  // Without kid, two ES256 keys are one too many.
  expectRejected(verify(test::signToken("ES256", key("p256"), {}, claims()), v, kNow),
                 "missing key id: several keys match algorithm \"ES256\"");
  // A kid that names an EC key cannot be used with RS256 or HS256.
  expectRejected(
      verify(test::signToken("RS256", key("rsa"), kidHeader("RS256", "a"), claims()), v, kNow),
      "key id does not match algorithm \"RS256\"");
  expectRejected(verify(test::signToken(test::publicPem(key("p256")), claims(), "HS256",
                                        kidHeader("HS256", "a")),
                        v, kNow),
                 "key id does not match algorithm \"HS256\"");
  expectRejected(verify(test::signToken("RS256", key("rsa"), {}, claims()), v, kNow),
                 "no key for algorithm \"RS256\"");
}

TEST(AuthJwtKeySelection, TokenWithoutKidNeedsExactlyOneKey) {
  auto set = parseJwks(jwks({jwk(key("p256"), "a"), jwk(key("rsa"), "r")}));
  ASSERT_TRUE(set);
  Verifier v;
  v.algorithms = {Alg::kEs256, Alg::kRs256};
  v.keys = set->keys;
  EXPECT_TRUE(verify(test::signToken("ES256", key("p256"), {}, claims()), v, kNow));
  EXPECT_TRUE(verify(test::signToken("RS256", key("rsa"), {}, claims()), v, kNow));
}

TEST(AuthJwtKeySelection, KeyAlgPinsTheAlgorithm) {
  auto set = parseJwks(jwks({jwk(key("rsa"), "r", "RS256"), octJwk(kSecretA, "h", "HS384")}));
  ASSERT_TRUE(set);
  Verifier v;
  v.algorithms.assign(allAlgs().begin(), allAlgs().end());
  v.keys = set->keys;
  EXPECT_TRUE(verify(test::signToken("RS256", key("rsa"), kidHeader("RS256", "r"), claims()), v,
                     kNow));
  expectRejected(
      verify(test::signToken("PS256", key("rsa"), kidHeader("PS256", "r"), claims()), v, kNow),
      "key id does not match algorithm \"PS256\"");
  expectRejected(verify(test::signToken("PS256", key("rsa"), {}, claims()), v, kNow),
                 "no key for algorithm \"PS256\"");
  EXPECT_TRUE(
      verify(test::signToken(kSecretA, claims(), "HS384", kidHeader("HS384", "h")), v, kNow));
  expectRejected(
      verify(test::signToken(kSecretA, claims(), "HS256", kidHeader("HS256", "h")), v, kNow),
      "key id does not match algorithm \"HS256\"");
  // An oct key never verifies RS256, whatever the kid says.
  expectRejected(
      verify(test::signToken("RS256", key("rsa"), kidHeader("RS256", "h"), claims()), v, kNow),
      "key id does not match algorithm \"RS256\"");
}

TEST(AuthJwtKeySelection, KeysWithoutKidStandForAnyKid) {
  Verifier v;
  v.algorithms = {Alg::kEs256};
  v.key = pemKey("p256");
  EXPECT_TRUE(verify(test::signToken("ES256", key("p256"), kidHeader("ES256", "whatever"),
                                     claims()),
                     v, kNow));
  // Mixed: a kid that is listed uses its key; an unknown one falls back to the id-less key.
  Verifier mixed = twoKeyVerifier();
  mixed.keys.push_back({"", std::nullopt, pemKey("p384")});
  mixed.algorithms.push_back(Alg::kEs384);
  EXPECT_TRUE(verify(test::signToken("ES384", key("p384"), kidHeader("ES384", "zzz"), claims()),
                     mixed, kNow));
  EXPECT_TRUE(verify(test::signToken("ES384", key("p384"), {}, claims()), mixed, kNow));
  expectRejected(verify(test::signToken("ES384", key("p384"), kidHeader("ES384", "a"), claims()),
                        mixed, kNow),
                 "key id does not match algorithm \"ES384\"");
  expectRejected(
      verify(test::signToken("ES256", key("p256"), kidHeader("ES256", "zzz"), claims()), mixed,
             kNow),
      "unknown key id");
  // Two id-less keys for the algorithm: an unknown kid cannot choose between them.
  mixed.keys.push_back({"", std::nullopt, pemKey("p384b")});
  expectRejected(verify(test::signToken("ES384", key("p384"), kidHeader("ES384", "zzz"), claims()),
                        mixed, kNow),
                 "unknown key id");
  expectRejected(verify(test::signToken("ES384", key("p384"), {}, claims()), mixed, kNow),
                 "missing key id: several keys match algorithm \"ES384\"");
}

TEST(AuthJwtKeySelection, KidHeaderProblems) {
  const Verifier v = twoKeyVerifier();
  expectRejected(
      verify(test::signToken("ES256", key("p256"), R"({"alg":"ES256","kid":1})", claims()), v,
             kNow),
      "malformed token header: \"kid\" is not a string");
  expectRejected(verify(test::signToken("ES256", key("p256"),
                                        R"({"alg":"ES256","kid":"a","kid":"b"})", claims()),
                        v, kNow),
                 "duplicate header \"kid\"");
  // An empty kid is no kid.
  expectRejected(
      verify(test::signToken("ES256", key("p256"), kidHeader("ES256", ""), claims()), v, kNow),
      "missing key id: several keys match algorithm \"ES256\"");
}

TEST(AuthJwtKeySelection, EmptyVerifierIsInternalError) {
  Verifier v;
  v.algorithms = {Alg::kEs256};
  auto r = verify(test::signToken("ES256", key("p256"), {}, claims()), v, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInternal);
}

}  // namespace
}  // namespace imgate::mod::auth_jwt
