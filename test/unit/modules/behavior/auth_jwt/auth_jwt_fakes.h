// SPDX-License-Identifier: Apache-2.0
// Test-only fakes for the auth.jwt tests: a map-based ConfigView that fills schema defaults,
// a token signer that uses OpenSSL directly (not the code under test), and the shared
// LoadContext, Session, StageCallbacks and simulated-time Dispatcher from test/mocks.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::auth_jwt::test {

// ---- Tokens ---------------------------------------------------------------------------------

inline std::string b64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') {
    out.pop_back();
  }
  for (char& c : out) {
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

inline std::string hmac(std::string_view alg, std::string_view secret, std::string_view input) {
  const EVP_MD* md = alg == "HS512" ? EVP_sha512() : alg == "HS384" ? EVP_sha384() : EVP_sha256();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

// header_json and payload_json are used verbatim; the signature is HMAC-<alg> over them.
inline std::string signToken(std::string_view secret, std::string_view payload_json,
                             std::string_view alg = "HS256", std::string_view header_json = {}) {
  const std::string header = header_json.empty()
                                 ? R"({"alg":")" + std::string(alg) + R"(","typ":"JWT"})"
                                 : std::string(header_json);
  const std::string input = b64url(header) + "." + b64url(payload_json);
  return input + "." + b64url(hmac(alg, secret, input));
}

// ---- Config ---------------------------------------------------------------------------------

// Values in YAML scalar syntax, as the core's view would return them after validation. Keys
// not in the schema fail the test; absent keys get the schema default.
class FakeConfigView final : public ConfigView {
 public:
  FakeConfigView(std::span<const ParamSpec> schema, std::map<std::string, std::string> scalars,
                 std::map<std::string, std::vector<std::string>> lists = {})
      : schema_(schema), scalars_(std::move(scalars)), lists_(std::move(lists)) {
    for (const auto& [key, value] : scalars_) {
      EXPECT_NE(spec(key), nullptr) << "unknown key " << key;
    }
    for (const auto& [key, value] : lists_) {
      EXPECT_NE(spec(key), nullptr) << "unknown key " << key;
    }
  }

  std::string location() const override { return "test.yaml:1:1 auth.jwt"; }
  std::string location(std::string_view key) const override {
    return "test.yaml:2:3 auth.jwt." + std::string(key);
  }
  bool has(std::string_view key) const override {
    return scalars_.count(std::string(key)) != 0 || lists_.count(std::string(key)) != 0;
  }
  bool getBool(std::string_view key) const override { return raw(key) == "true"; }
  int64_t getInt(std::string_view key) const override {
    const std::string v = raw(key);
    return v.empty() ? 0 : std::stoll(v);
  }
  std::string getString(std::string_view key) const override { return raw(key); }
  std::chrono::milliseconds getDuration(std::string_view key) const override {
    const std::string v = raw(key);
    size_t digits = 0;
    while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') {
      ++digits;
    }
    const int64_t n = digits == 0 ? 0 : std::stoll(v.substr(0, digits));
    const std::string unit = v.substr(digits);
    int64_t ms = n;
    if (unit == "s") {
      ms = n * 1000;
    } else if (unit == "m") {
      ms = n * 60 * 1000;
    } else if (unit == "h") {
      ms = n * 3600 * 1000;
    } else {
      EXPECT_TRUE(unit == "ms" || (unit.empty() && n == 0)) << "bad duration " << v;
    }
    return std::chrono::milliseconds(ms);
  }
  int64_t getSize(std::string_view key) const override { return getInt(key); }
  Rate getRate(std::string_view key) const override {
    (void)key;
    return {};
  }
  std::vector<std::string> getStringList(std::string_view key) const override {
    const auto it = lists_.find(std::string(key));
    if (it != lists_.end()) {
      return it->second;
    }
    const std::string v = raw(key);
    return v.empty() ? std::vector<std::string>{} : std::vector<std::string>{v};
  }
  const ConfigView& child(std::string_view key) const override {
    (void)key;
    static const FakeConfigView empty({}, {});
    return empty;
  }
  std::vector<const ConfigView*> children(std::string_view key) const override {
    (void)key;
    return {};
  }

 private:
  const ParamSpec* spec(std::string_view key) const {
    for (const ParamSpec& p : schema_) {
      if (p.key == key) {
        return &p;
      }
    }
    return nullptr;
  }
  std::string raw(std::string_view key) const {
    const auto it = scalars_.find(std::string(key));
    if (it != scalars_.end()) {
      return it->second;
    }
    const ParamSpec* p = spec(key);
    return p == nullptr ? std::string() : std::string(p->default_value);
  }

  std::span<const ParamSpec> schema_;
  std::map<std::string, std::string> scalars_;
  std::map<std::string, std::vector<std::string>> lists_;
};

// Relative key files resolve against config_dir; tests that read files point it at their own
// directory.
class FakeLoadContext final : public mocks::FakeLoadContext {
 public:
  FakeLoadContext() {
    instance_name = "im[0]:auth.jwt";
    config_dir = "/nonexistent";
  }
};

// ---- Session --------------------------------------------------------------------------------

// The shared recording callbacks (test/mocks/sdk_fakes.h) for an accepted session, the
// case most expiry tests start from (a test sets session_.opened_at_ms = 0 for a handshake
// still running). auth.jwt never pauses, so resume() and reject() fail the test.
class FakeStageCallbacks final : public mocks::RecordingStageCallbacks {
 public:
  FakeStageCallbacks() { session_.opened_at_ms = 1'700'000'000'000; }
  void resume() override { ADD_FAILURE() << "unexpected resume()"; }
  void reject(Errc code, std::string reason) override {
    (void)code;
    ADD_FAILURE() << "unexpected reject(): " << reason;
  }
};

}  // namespace imgate::mod::auth_jwt::test
