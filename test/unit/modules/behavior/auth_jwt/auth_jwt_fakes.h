// SPDX-License-Identifier: Apache-2.0
// Test-only fakes for the auth.jwt tests: a map-based ConfigView that fills schema defaults,
// a LoadContext, a Session, StageCallbacks and a Dispatcher with simulated time, and a
// token signer that uses OpenSSL directly (not the code under test).
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/config.h"
#include "imgate/sdk/http.h"
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

class FakeLogger final : public Logger {
 public:
  bool enabled(LogLevel level) const override {
    (void)level;
    return true;
  }
  void log(LogLevel level, std::string_view message) override {
    lines.push_back({level, std::string(message)});
  }
  std::vector<std::pair<LogLevel, std::string>> lines;
};

class FakeStats final : public Stats {
 public:
  Counter& counter(std::string_view name) override {
    auto& slot = counters_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }
  uint64_t value(const std::string& name) const {
    const auto it = counters_.find(name);
    return it == counters_.end() ? 0 : it->second->value();
  }

 private:
  std::map<std::string, std::unique_ptr<Counter>> counters_;
};

class FakeLoadContext final : public LoadContext {
 public:
  bool hasUpstream(std::string_view group) const override {
    return upstream_groups.count(std::string(group)) > 0;
  }
  std::set<std::string> upstream_groups;
  std::string_view instanceName() const override { return "im[0]:auth.jwt"; }
  std::string_view configDir() const override { return config_dir; }
  Logger& log() override { return logger; }
  Stats& stats() override { return stats_; }

  std::string config_dir = "/nonexistent";
  FakeLogger logger;
  FakeStats stats_;
};

// ---- Session --------------------------------------------------------------------------------

// Simulated time: wall_ms is the clock (now() follows it); timers run only from advance(), in
// due order, each seeing the clock at its due time. A callback may schedule or cancel timers.
class FakeDispatcher final : public Dispatcher {
 public:
  TimerPtr schedule(std::chrono::milliseconds delay, std::function<void()> cb) override {
    auto entry =
        std::make_shared<Entry>(Entry{wall_ms + delay.count(), next_seq_++, std::move(cb)});
    entries_.push_back(entry);
    return std::make_unique<Handle>(entry);
  }
  void post(std::function<void()> cb) override {
    (void)cb;
    ADD_FAILURE() << "auth.jwt should not post";
  }
  std::chrono::steady_clock::time_point now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(wall_ms));
  }
  int64_t wallMs() const override { return wall_ms; }

  // Moves the clock forward by `ms`, running every timer that falls due on the way.
  void advance(int64_t ms) { advanceTo(wall_ms + ms); }
  void advanceTo(int64_t target_ms) {
    for (;;) {
      std::erase_if(entries_, [](const std::shared_ptr<Entry>& e) { return !e->cb; });
      std::shared_ptr<Entry> next;
      for (const auto& e : entries_) {
        if (e->due_ms <= target_ms &&
            (!next || e->due_ms < next->due_ms ||
             (e->due_ms == next->due_ms && e->seq < next->seq))) {
          next = e;
        }
      }
      if (!next) {
        break;
      }
      wall_ms = std::max(wall_ms, next->due_ms);
      auto cb = std::move(next->cb);  // the callback may destroy its own handle
      next->cb = nullptr;
      cb();
    }
    wall_ms = std::max(wall_ms, target_ms);
  }
  // Timers scheduled and neither run nor cancelled.
  size_t pending() const {
    size_t n = 0;
    for (const auto& e : entries_) {
      n += e->cb ? 1 : 0;
    }
    return n;
  }
  // Due time of the earliest pending timer, or -1.
  int64_t nextDue() const {
    int64_t due = -1;
    for (const auto& e : entries_) {
      if (e->cb && (due < 0 || e->due_ms < due)) {
        due = e->due_ms;
      }
    }
    return due;
  }

  int64_t wall_ms = 1'700'000'000'000;

 private:
  struct Entry {
    int64_t due_ms;
    uint64_t seq;
    std::function<void()> cb;  // empty once run or cancelled
  };
  class Handle final : public Timer {
   public:
    explicit Handle(std::weak_ptr<Entry> entry) : entry_(std::move(entry)) {}
    ~Handle() override {
      if (auto e = entry_.lock()) {
        e->cb = nullptr;
      }
    }

   private:
    std::weak_ptr<Entry> entry_;
  };
  std::vector<std::shared_ptr<Entry>> entries_;
  uint64_t next_seq_ = 0;
};

class FakeSession final : public Session {
 public:
  // Unique per fake, as the core's are per process: the expiry registry is process-wide.
  FakeSession() : session_id(nextId()) {}
  static uint64_t nextId() {
    static uint64_t next = 1000;
    return next++;
  }
  uint64_t id() const override { return session_id; }
  int64_t openedAtMs() const override { return opened_at_ms; }
  std::string_view protocol() const override { return "proto.websocket"; }
  std::string_view listener() const override { return "ws"; }
  std::string_view peerAddress() const override { return "127.0.0.1:50000"; }
  const Identity& identity() const override { return identity_; }
  std::optional<std::string_view> handshakeHeader(std::string_view name) const override {
    for (const auto& [k, v] : headers) {
      if (http_detail::iequals(k, name)) {
        return std::string_view(v);
      }
    }
    return std::nullopt;
  }
  std::optional<std::string> handshakeQuery(std::string_view name) const override {
    const auto it = query.find(std::string(name));
    if (it == query.end()) {
      return std::nullopt;
    }
    return it->second;
  }
  const std::vector<std::string>& offeredSubprotocols() const override { return subprotocols; }

  std::vector<std::pair<std::string, std::string>> headers;
  std::map<std::string, std::string> query;
  std::vector<std::string> subprotocols;
  Identity identity_;
  uint64_t session_id;
  int64_t opened_at_ms = 1'700'000'000'000;  // 0: the handshake is still running
};

class FakeStageCallbacks final : public StageCallbacks {
 public:
  Upstreams& upstreams() override { return fake_upstreams; }
  Hub& hub() override { return fake_hub_; }
  ::imgate::mocks::NullHub fake_hub_;
  ::imgate::mocks::FakeUpstreams fake_upstreams;
  Session& session() override { return session_; }
  Dispatcher& dispatcher() override { return dispatcher_; }
  void resume() override { ADD_FAILURE() << "unexpected resume()"; }
  void reject(Errc code, std::string reason) override {
    (void)code;
    ADD_FAILURE() << "unexpected reject(): " << reason;
  }
  void close(Errc code, std::string reason) override {
    closed.emplace_back(code, std::move(reason));
  }
  std::vector<std::pair<Errc, std::string>> closed;
  void reply(Message message) override { replies.push_back(std::move(message)); }
  std::vector<Message> replies;
  void setIdentity(Identity identity) override {
    ++identity_calls;
    session_.identity_ = std::move(identity);
  }

  FakeSession session_;
  FakeDispatcher dispatcher_;
  int identity_calls = 0;
};

}  // namespace imgate::mod::auth_jwt::test
