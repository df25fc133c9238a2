// SPDX-License-Identifier: Apache-2.0
#include "modules/behavior/auth_jwt/jwt.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "auth_jwt_fakes.h"

namespace imgate::mod::auth_jwt {
namespace {

using namespace std::string_literals;

using test::b64url;
using test::hmac;
using test::signToken;

constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";
constexpr int64_t kNow = 1'700'000'000;

Verifier makeVerifier(std::vector<Alg> algorithms = {Alg::kHs256}) {
  Verifier v;
  v.algorithms = std::move(algorithms);
  v.key = std::make_shared<HmacKey>(std::string(kSecret));
  v.leeway = std::chrono::seconds(30);
  return v;
}

std::string payload(std::string_view extra = {}) {
  std::string p = R"({"sub":"alice","exp":)" + std::to_string(kNow + 3600);
  if (!extra.empty()) {
    p += ",";
    p += extra;
  }
  return p + "}";
}

void expectRejected(const Result<Claims>& r, std::string_view reason) {
  ASSERT_FALSE(r) << "expected rejection: " << reason;
  EXPECT_EQ(r.error().code, Errc::kUnauthenticated);
  EXPECT_EQ(r.error().message, reason);
}

// ---- base64url ------------------------------------------------------------------------------

TEST(AuthJwtBase64, DecodesPaddedAndUnpadded) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"Zg", "f"},
      {"Zg==", "f"},
      {"Zm8", "fo"},
      {"Zm8=", "fo"},
      {"Zm9v", "foo"},
      {"Zm9vYg", "foob"},
      {"Zm9vYmE", "fooba"},
      {"Zm9vYmFy", "foobar"},
      {"-_8", "\xfb\xff"},
      {"-_8=", "\xfb\xff"},
      {"AA", std::string(1, '\0')},
  };
  for (const auto& [in, want] : cases) {
    auto got = base64UrlDecode(in);
    ASSERT_TRUE(got) << in;
    EXPECT_EQ(*got, want) << in;
  }
}

TEST(AuthJwtBase64, RejectsInvalid) {
  for (const char* in : {"Z", "Zg=", "Zg===", "Z===", "=", "==", "Zm9v=", "Zm9v+", "Zm9v/", "Zm 9",
                         "Zm9\n", "Z=g=", "Zg=A", "Zh", "Zm9", "Zm8x=", "Zm:v", "Zm.v"}) {
    // "Zh" and "Zm9" have non-zero unused bits: another encoding of the same bytes.
    EXPECT_FALSE(base64UrlDecode(in)) << in;
  }
}

TEST(AuthJwtBase64, EncodeRoundTrips) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t n = 0; n <= all.size(); n += 7) {
    const std::string in = all.substr(0, n);
    const std::string enc = base64UrlEncode(in);
    EXPECT_EQ(enc, b64url(in));
    auto dec = base64UrlDecode(enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(*dec, in);
  }
}

TEST(AuthJwtAlg, Names) {
  EXPECT_EQ(algFromName("HS256"), Alg::kHs256);
  EXPECT_EQ(algFromName("HS384"), Alg::kHs384);
  EXPECT_EQ(algFromName("HS512"), Alg::kHs512);
  EXPECT_FALSE(algFromName("hs256"));
  EXPECT_FALSE(algFromName("none"));
  EXPECT_FALSE(algFromName("rs256"));
  EXPECT_FALSE(algFromName("EDDSA"));
  EXPECT_FALSE(algFromName("ES256K"));
  EXPECT_FALSE(algFromName("RSA-OAEP"));
  EXPECT_EQ(algName(Alg::kHs384), "HS384");
  // Every value round-trips through its name.
  ASSERT_EQ(allAlgs().size(), 13u);
  for (Alg alg : allAlgs()) {
    EXPECT_EQ(algFromName(algName(alg)), alg) << algName(alg);
  }
  EXPECT_EQ(algFromName("RS256"), Alg::kRs256);
  EXPECT_EQ(algFromName("PS512"), Alg::kPs512);
  EXPECT_EQ(algFromName("ES384"), Alg::kEs384);
  EXPECT_EQ(algFromName("EdDSA"), Alg::kEdDsa);
  EXPECT_TRUE(isHmac(Alg::kHs512));
  EXPECT_FALSE(isHmac(Alg::kRs256));
}

// ---- Valid tokens ---------------------------------------------------------------------------

TEST(AuthJwtVerify, AcceptsEachHmacAlgorithm) {
  const Verifier v = makeVerifier({Alg::kHs256, Alg::kHs384, Alg::kHs512});
  for (const char* alg : {"HS256", "HS384", "HS512"}) {
    auto claims = verify(signToken(kSecret, payload(), alg), v, kNow);
    ASSERT_TRUE(claims) << alg << ": " << claims.error().message;
    EXPECT_EQ(claims->user, "alice");
    EXPECT_EQ(claims->app, "default");
    EXPECT_EQ(claims->device, "");
    EXPECT_EQ(claims->expires_s, kNow + 3600);
  }
}

TEST(AuthJwtVerify, ExtractsClaims) {
  const Verifier v = makeVerifier();
  auto claims =
      verify(signToken(kSecret, payload(R"("app":"chat","device":"ios-1","iat":1)")), v, kNow);
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->user, "alice");
  EXPECT_EQ(claims->app, "chat");
  EXPECT_EQ(claims->device, "ios-1");
}

TEST(AuthJwtVerify, ConfigurableClaimNamesAndNumericUser) {
  Verifier v = makeVerifier();
  v.user_claim = "uid";
  v.app_claim = "tenant";
  v.device_claim = "dev";
  v.default_app = "main";
  auto claims = verify(signToken(kSecret, R"({"uid":12345,"tenant":"t1","dev":"d"})"), v, kNow);
  ASSERT_TRUE(claims) << claims.error().message;
  EXPECT_EQ(claims->user, "12345");
  EXPECT_EQ(claims->app, "t1");
  EXPECT_EQ(claims->device, "d");
  EXPECT_FALSE(claims->expires_s);

  auto no_app = verify(signToken(kSecret, R"({"uid":"bob","app":"ignored"})"), v, kNow);
  ASSERT_TRUE(no_app);
  EXPECT_EQ(no_app->app, "main");
}

TEST(AuthJwtVerify, AcceptsPaddedSegmentsAndUnknownHeaderFields) {
  const Verifier v = makeVerifier();
  const std::string header = R"({"alg":"HS256","typ":"JWT","kid":"k1"})";
  std::string h = b64url(header);
  std::string p = b64url(payload());
  while (h.size() % 4 != 0) {
    h.push_back('=');
  }
  const std::string input = h + "." + p;
  EXPECT_TRUE(verify(input + "." + b64url(hmac("HS256", kSecret, input)), v, kNow));
}

// ---- Time -----------------------------------------------------------------------------------

TEST(AuthJwtVerify, ExpiryWithLeewayEdges) {
  const Verifier v = makeVerifier();  // leeway 30s
  auto at = [&](int64_t exp) {
    return verify(signToken(kSecret, R"({"sub":"a","exp":)" + std::to_string(exp) + "}"), v, kNow);
  };
  EXPECT_TRUE(at(kNow + 1));
  EXPECT_TRUE(at(kNow - 29));                      // expired 29s ago: inside the leeway
  expectRejected(at(kNow - 30), "token expired");  // now >= exp + leeway
  expectRejected(at(kNow - 3600), "token expired");

  Verifier strict = makeVerifier();
  strict.leeway = std::chrono::seconds(0);
  EXPECT_TRUE(verify(signToken(kSecret, R"({"sub":"a","exp":)" + std::to_string(kNow + 1) + "}"),
                     strict, kNow));
  expectRejected(
      verify(signToken(kSecret, R"({"sub":"a","exp":)" + std::to_string(kNow) + "}"), strict, kNow),
      "token expired");
}

TEST(AuthJwtVerify, NotBeforeWithLeewayEdges) {
  const Verifier v = makeVerifier();
  auto at = [&](int64_t nbf) {
    return verify(signToken(kSecret, R"({"sub":"a","nbf":)" + std::to_string(nbf) + "}"), v, kNow);
  };
  EXPECT_TRUE(at(kNow - 100));
  EXPECT_TRUE(at(kNow + 30));  // now + leeway == nbf
  expectRejected(at(kNow + 31), "token not yet valid");
  expectRejected(at(kNow + 3600), "token not yet valid");
}

TEST(AuthJwtVerify, FractionalAndNonNumericDates) {
  const Verifier v = makeVerifier();
  EXPECT_TRUE(verify(signToken(kSecret, R"({"sub":"a","exp":1700000100.5})"), v, kNow));
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","exp":"tomorrow"})"), v, kNow),
                 "claim \"exp\" is not a number");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","nbf":null})"), v, kNow),
                 "claim \"nbf\" is not a number");
  // Huge values must not overflow anything.
  auto far = verify(signToken(kSecret, R"({"sub":"a","exp":1e300})"), v, kNow);
  ASSERT_TRUE(far);
  EXPECT_GT(*far->expires_s, kNow);
}

// ---- Signature and algorithm ----------------------------------------------------------------

TEST(AuthJwtVerify, WrongSignature) {
  const Verifier v = makeVerifier();
  expectRejected(verify(signToken("another secret of enough length!!", payload()), v, kNow),
                 "signature mismatch");
  // Payload swapped after signing.
  const std::string good = signToken(kSecret, payload());
  const std::string forged = signToken(kSecret, R"({"sub":"mallory"})");
  const size_t d1 = good.find('.');
  const size_t d2 = good.rfind('.');
  const size_t f1 = forged.find('.');
  const size_t f2 = forged.rfind('.');
  const std::string spliced =
      good.substr(0, d1 + 1) + forged.substr(f1 + 1, f2 - f1 - 1) + good.substr(d2);
  expectRejected(verify(spliced, v, kNow), "signature mismatch");
  // Truncated and empty signatures.
  // 43 characters cut to 40: still canonical base64url, 30 bytes instead of 32.
  expectRejected(verify(good.substr(0, good.size() - 3), v, kNow), "signature mismatch");
  expectRejected(verify(good.substr(0, d2 + 1), v, kNow), "signature mismatch");
  // HS256 signature presented as HS512 (alg swapped in the header).
  const Verifier all = makeVerifier({Alg::kHs256, Alg::kHs512});
  const std::string h512 = b64url(R"({"alg":"HS512"})");
  const std::string p = b64url(payload());
  const std::string swapped = h512 + "." + p + "." + b64url(hmac("HS256", kSecret, h512 + "." + p));
  expectRejected(verify(swapped, all, kNow), "signature mismatch");
}

TEST(AuthJwtVerify, AlgorithmNoneIsRefused) {
  const Verifier v = makeVerifier({Alg::kHs256, Alg::kHs384, Alg::kHs512});
  for (const char* header : {R"({"alg":"none"})", R"({"alg":"None"})", R"({"alg":"NONE"})"}) {
    const std::string alg = std::string(header).substr(8, 4);
    const std::string token = b64url(header) + "." + b64url(payload()) + ".";
    expectRejected(verify(token, v, kNow), "algorithm \"" + alg + "\" not allowed");
  }
}

TEST(AuthJwtVerify, AlgorithmNotConfiguredIsRefused) {
  const Verifier v = makeVerifier({Alg::kHs256});
  expectRejected(verify(signToken(kSecret, payload(), "HS512"), v, kNow),
                 "algorithm \"HS512\" not allowed");
  const std::string rs = b64url(R"({"alg":"RS256"})") + "." + b64url(payload()) + ".c2ln";
  expectRejected(verify(rs, v, kNow), "algorithm \"RS256\" not allowed");
  const std::string lower = b64url(R"({"alg":"hs256"})") + "." + b64url(payload()) + ".c2ln";
  expectRejected(verify(lower, v, kNow), "algorithm \"hs256\" not allowed");
  const std::string long_alg =
      b64url(R"({"alg":")" + std::string(100, 'X') + R"("})") + "." + b64url(payload()) + ".";
  expectRejected(verify(long_alg, v, kNow),
                 "algorithm \"" + std::string(16, 'X') + "\" not allowed");
}

TEST(AuthJwtVerify, HeaderProblems) {
  const Verifier v = makeVerifier();
  expectRejected(verify(signToken(kSecret, payload(), "HS256", R"({"typ":"JWT"})"), v, kNow),
                 "malformed token header: missing \"alg\"");
  expectRejected(verify(signToken(kSecret, payload(), "HS256", R"({"alg":256})"), v, kNow),
                 "malformed token header: missing \"alg\"");
  expectRejected(
      verify(signToken(kSecret, payload(), "HS256", R"({"alg":"HS256","alg":"HS256"})"), v, kNow),
      "duplicate header \"alg\"");
  expectRejected(
      verify(signToken(kSecret, payload(), "HS256", R"({"alg":"HS256","crit":["exp"]})"), v, kNow),
      "unsupported critical header");
  expectRejected(verify(signToken(kSecret, payload(), "HS256", R"(["HS256"])"), v, kNow),
                 "malformed token header: not a json object");
  expectRejected(verify(signToken(kSecret, payload(), "HS256", R"({"alg":"HS256")"), v, kNow),
                 "malformed token header: invalid json");
}

TEST(AuthJwtVerify, VerifierWithoutKeyIsInternalError) {
  Verifier v = makeVerifier();
  v.key = nullptr;
  auto r = verify(signToken(kSecret, payload()), v, kNow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInternal);
}

// ---- Malformed tokens -----------------------------------------------------------------------

TEST(AuthJwtVerify, MalformedSegments) {
  const Verifier v = makeVerifier();
  const std::string good = signToken(kSecret, payload());
  const std::string segments = "malformed token: expected three dot-separated segments";
  expectRejected(verify("", v, kNow), segments);
  expectRejected(verify("abc", v, kNow), segments);
  expectRejected(verify("a.b", v, kNow), segments);
  expectRejected(verify(good + ".x", v, kNow), segments);
  expectRejected(verify("..", v, kNow), "malformed token header: invalid json");
  expectRejected(verify(std::string(kMaxTokenBytes + 1, 'a'), v, kNow), "token too long");
}

TEST(AuthJwtVerify, MalformedBase64) {
  const Verifier v = makeVerifier();
  const std::string h = b64url(R"({"alg":"HS256"})");
  const std::string p = b64url(payload());
  const std::string sig = b64url(hmac("HS256", kSecret, h + "." + p));
  expectRejected(verify("*" + h + "." + p + "." + sig, v, kNow),
                 "malformed token header: invalid base64url");
  expectRejected(verify(h + "." + p + "." + sig + "+", v, kNow),
                 "malformed token signature: invalid base64url");
  // A payload that is not base64url cannot carry a valid signature either, but sign the
  // exact bytes to reach the payload decoding.
  const std::string bad_p = p + "!";
  expectRejected(
      verify(h + "." + bad_p + "." + b64url(hmac("HS256", kSecret, h + "." + bad_p)), v, kNow),
      "malformed token payload: invalid base64url");
}

TEST(AuthJwtVerify, MalformedPayloadJson) {
  const Verifier v = makeVerifier();
  expectRejected(verify(signToken(kSecret, "not json"), v, kNow),
                 "malformed token payload: invalid json");
  expectRejected(verify(signToken(kSecret, R"(["sub","alice"])"), v, kNow),
                 "malformed token payload: not a json object");
  expectRejected(verify(signToken(kSecret, R"({"sub":"alice"} x)"), v, kNow),
                 "malformed token payload: invalid json");
  expectRejected(verify(signToken(kSecret, std::string(5000, '[')), v, kNow),
                 "malformed token payload: invalid json");
}

TEST(AuthJwtVerify, JsonDetails) {
  const Verifier v = makeVerifier();
  auto user = [&](std::string_view json) -> std::string {
    auto r = verify(signToken(kSecret, json), v, kNow);
    return r ? r->user : "error: " + r.error().message;
  };
  // Short documents (they fit std::string's inline buffer) and escapes.
  EXPECT_EQ(user(R"({"sub":"a"})"), "a");
  EXPECT_EQ(user(R"({"sub":"al\u0069ce\n"})"), "alice\n");
  EXPECT_EQ(user(" {\"sub\" : \"a\"} \n"), "a");
  EXPECT_EQ(user(R"({"sub":"caf\u00e9"})"), "caf\xc3\xa9");
  EXPECT_EQ(user(R"({"sub":-42})"), "-42");
  EXPECT_EQ(user(R"({"sub":18446744073709551615})"), "18446744073709551615");
  // Only top-level members count.
  EXPECT_EQ(user(R"({"x":{"sub":"evil"},"sub":"a","y":[{"sub":"evil"}]})"), "a");
  EXPECT_EQ(user(R"({"x":{"sub":"evil"}})"), "error: missing claim \"sub\"");
  // Nesting is fine up to a bound; beyond it the document is refused.
  EXPECT_EQ(user(R"({"sub":"a","n":)" + std::string(20, '[') + std::string(20, ']') + "}"), "a");
  EXPECT_EQ(user(R"({"sub":"a","n":)" + std::string(40, '[') + std::string(40, ']') + "}"),
            "error: malformed token payload: invalid json");
  // NUL bytes, invalid UTF-8, trailing garbage.
  EXPECT_EQ(user("{\"sub\":\"a\"}\0{}"s), "error: malformed token payload: invalid json");
  EXPECT_EQ(user("{\"sub\":\"a\xff\"}"), "error: malformed token payload: invalid json");
  EXPECT_EQ(user(R"({"sub":"a"}{})"), "error: malformed token payload: invalid json");
  // A truncated UTF-8 sequence at the very end (once read past the buffer: see jwt.cc).
  EXPECT_EQ(user("{\"sub\":\"\xf0"), "error: malformed token payload: invalid json");
  EXPECT_EQ(user("\"\xec"), "error: malformed token payload: invalid json");
  EXPECT_EQ(user(R"({"sub":"a",})"), "error: malformed token payload: invalid json");
  EXPECT_EQ(user(R"("alice")"), "error: malformed token payload: not a json object");
  EXPECT_EQ(user("42"), "error: malformed token payload: not a json object");
}

TEST(AuthJwtVerify, UserClaimProblems) {
  const Verifier v = makeVerifier();
  expectRejected(verify(signToken(kSecret, R"({"name":"alice"})"), v, kNow),
                 "missing claim \"sub\"");
  expectRejected(verify(signToken(kSecret, R"({"sub":{"id":1}})"), v, kNow),
                 "claim \"sub\" is not a string");
  expectRejected(verify(signToken(kSecret, R"({"sub":1.5})"), v, kNow),
                 "claim \"sub\" is not a string");
  expectRejected(verify(signToken(kSecret, R"({"sub":""})"), v, kNow), "claim \"sub\" is empty");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","sub":"b"})"), v, kNow),
                 "duplicate claim \"sub\"");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","app":7})"), v, kNow),
                 "claim \"app\" is not a string");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","device":[]})"), v, kNow),
                 "claim \"device\" is not a string");
}

TEST(AuthJwtVerify, IssuerAndAudience) {
  Verifier v = makeVerifier();
  v.issuer = "https://auth.example";
  v.audience = "imgate";
  auto tok = [&](std::string_view claims) {
    return verify(signToken(kSecret, R"({"sub":"a",)" + std::string(claims) + "}"), v, kNow);
  };
  EXPECT_TRUE(tok(R"("iss":"https://auth.example","aud":"imgate")"));
  EXPECT_TRUE(tok(R"("iss":"https://auth.example","aud":["other","imgate"])"));
  expectRejected(tok(R"("iss":"https://evil.example","aud":"imgate")"), "issuer mismatch");
  expectRejected(tok(R"("aud":"imgate")"), "issuer mismatch");
  expectRejected(tok(R"("iss":"https://auth.example","aud":"other")"), "audience mismatch");
  expectRejected(tok(R"("iss":"https://auth.example","aud":["other",1])"), "audience mismatch");
  expectRejected(tok(R"("iss":"https://auth.example")"), "audience mismatch");
  expectRejected(tok(R"("iss":5,"aud":"imgate")"), "claim \"iss\" is not a string");
  // Not configured: not checked.
  EXPECT_TRUE(
      verify(signToken(kSecret, R"({"sub":"a","iss":"x","aud":"y"})"), makeVerifier(), kNow));
}

// ---- iat and max_age ------------------------------------------------------------------------

TEST(AuthJwtVerify, IssuedAtWithLeewayEdges) {
  const Verifier v = makeVerifier();  // leeway 30s
  auto at = [&](int64_t iat) {
    return verify(signToken(kSecret, R"({"sub":"a","iat":)" + std::to_string(iat) + "}"), v, kNow);
  };
  auto past = at(kNow - 100);
  ASSERT_TRUE(past);
  EXPECT_EQ(past->issued_at, kNow - 100);
  EXPECT_TRUE(at(kNow + 30));  // clock skew within the leeway
  expectRejected(at(kNow + 31), "token issued in the future");
  EXPECT_FALSE(verify(signToken(kSecret, R"({"sub":"a"})"), v, kNow)->issued_at);
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","iat":"now"})"), v, kNow),
                 "claim \"iat\" is not a number");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a","iat":1,"iat":2})"), v, kNow),
                 "duplicate claim \"iat\"");
  auto fractional = verify(signToken(kSecret, R"({"sub":"a","iat":1699999999.9})"), v, kNow);
  ASSERT_TRUE(fractional);
  EXPECT_EQ(fractional->issued_at, 1699999999);
}

TEST(AuthJwtVerify, MaxAge) {
  Verifier v = makeVerifier();
  v.max_age = std::chrono::seconds(600);
  auto at = [&](int64_t iat) {
    return verify(signToken(kSecret, R"({"sub":"a","iat":)" + std::to_string(iat) + "}"), v, kNow);
  };
  EXPECT_TRUE(at(kNow));
  EXPECT_TRUE(at(kNow - 630));  // 600s + 30s leeway
  expectRejected(at(kNow - 631), "token too old");
  expectRejected(verify(signToken(kSecret, R"({"sub":"a"})"), v, kNow), "missing claim \"iat\"");
  // Off by default: any age passes.
  EXPECT_TRUE(verify(signToken(kSecret, R"({"sub":"a","iat":1})"), makeVerifier(), kNow));
}

// ---- Rooms ----------------------------------------------------------------------------------

TEST(AuthJwtVerify, RoomsClaim) {
  Verifier v = makeVerifier();
  auto rooms = [&](std::string_view json) -> Result<Claims> {
    return verify(signToken(kSecret, R"({"sub":"a",)" + std::string(json) + "}"), v, kNow);
  };
  auto ok = rooms(R"("rooms":["lobby","team-7","lobby","caf\u00e9"])");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->rooms, (std::vector<std::string>{"lobby", "team-7", "caf\xc3\xa9"}));
  auto none = verify(signToken(kSecret, R"({"sub":"a"})"), v, kNow);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->rooms.empty());
  auto empty = rooms(R"("rooms":[])");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->rooms.empty());

  const std::string not_array = "claim \"rooms\" is not an array of strings";
  expectRejected(rooms(R"("rooms":"lobby")"), not_array);
  expectRejected(rooms(R"("rooms":{"lobby":1})"), not_array);
  expectRejected(rooms(R"("rooms":null)"), not_array);
  expectRejected(rooms(R"("rooms":["a",1])"), not_array);
  expectRejected(rooms(R"("rooms":["a",null])"), not_array);
  expectRejected(rooms(R"("rooms":["a",["b"]])"), not_array);
  expectRejected(rooms(R"("rooms":[{"name":"a"}])"), not_array);
  expectRejected(rooms(R"("rooms":["a",""])"), "claim \"rooms\" holds an empty name");
  expectRejected(rooms(R"("rooms":["a"],"rooms":["b"])"), "duplicate claim \"rooms\"");
  // Strings nested inside other claims do not leak into the rooms.
  auto nested = rooms(R"("x":{"rooms":["evil"]},"rooms":["a"],"y":[["evil"]])");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->rooms, (std::vector<std::string>{"a"}));
}

TEST(AuthJwtVerify, RoomsBoundAndName) {
  Verifier v = makeVerifier();
  v.max_rooms = 3;
  auto with = [&](size_t n) {
    std::string list;
    for (size_t i = 0; i < n; ++i) {
      list += (i == 0 ? "\"r" : ",\"r") + std::to_string(i) + "\"";
    }
    return verify(signToken(kSecret, R"({"sub":"a","rooms":[)" + list + "]}"), v, kNow);
  };
  ASSERT_TRUE(with(3));
  EXPECT_EQ(with(3)->rooms.size(), 3u);
  expectRejected(with(4), "claim \"rooms\" has more than 3 entries");
  // The default bound.
  EXPECT_EQ(makeVerifier().max_rooms, kDefaultMaxRooms);
  EXPECT_EQ(kDefaultMaxRooms, 256u);
  v.max_rooms = kDefaultMaxRooms;
  EXPECT_TRUE(with(256));
  expectRejected(with(257), "claim \"rooms\" has more than 256 entries");

  // Renamed, or turned off (then even a malformed claim is ignored).
  v.rooms_claim = "chans";
  auto renamed = verify(signToken(kSecret, R"({"sub":"a","chans":["c"],"rooms":5})"), v, kNow);
  ASSERT_TRUE(renamed) << renamed.error().message;
  EXPECT_EQ(renamed->rooms, (std::vector<std::string>{"c"}));
  v.rooms_claim = "";
  auto off = verify(signToken(kSecret, R"({"sub":"a","rooms":5})"), v, kNow);
  ASSERT_TRUE(off);
  EXPECT_TRUE(off->rooms.empty());
}

}  // namespace
}  // namespace imgate::mod::auth_jwt
