// SPDX-License-Identifier: Apache-2.0
// Fuzzes JWT verification twice per input: the input as a raw token (segments, base64url,
// header parsing), and the input split into header and payload JSON that the harness signs with
// the verifier's key, so the payload parser behind the signature check is reached too.
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
using imgate::mod::auth_jwt::Verifier;

const std::shared_ptr<HmacKey>& key() {
  static const auto k = std::make_shared<HmacKey>("fuzz-secret-0123456789abcdef01234567");
  return k;
}

std::string b64(std::string_view s) {
  return imgate::mod::common::base64Encode(s, imgate::mod::common::Base64Alphabet::kUrl, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Verifier verifier;
  verifier.key = key();
  verifier.algorithms = {Alg::kHs256, Alg::kHs512};
  verifier.audience = "imgate";
  (void)imgate::mod::auth_jwt::verify(input, verifier, 1'800'000'000);

  const size_t split = input.find('\0');
  const std::string_view header = split == std::string_view::npos ? R"({"alg":"HS256"})" : input.substr(0, split);
  const std::string_view payload = split == std::string_view::npos ? input : input.substr(split + 1);
  const std::string signing = b64(header) + "." + b64(payload);
  for (Alg alg : {Alg::kHs256, Alg::kHs512}) {
    const std::string token = signing + "." + b64(key()->sign(alg, signing));
    (void)imgate::mod::auth_jwt::verify(token, verifier, 1'800'000'000);
  }
  return 0;
}
