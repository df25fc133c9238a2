// SPDX-License-Identifier: Apache-2.0
#include "flow_stage.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>

namespace imgate::mod::flow {

namespace {

constexpr std::array<std::string_view, 3> kActions = {"reject", "close", "drop"};
constexpr int64_t kMaxBurst = 1'000'000'000;
constexpr int64_t kMaxBytes = int64_t{1} << 40;  // 1 TiB

constexpr std::array<ParamSpec, 5> kScopeSchema = {{
    {.key = "rate", .type = ParamType::kRate, .min = 1,
     .help = "messages per period (\"10/s\", \"1200/m\"); absent: no message limit"},
    {.key = "burst", .type = ParamType::kInt, .min = 1, .max = kMaxBurst,
     .help = "messages that may arrive at once after a quiet spell; default: rate's count"},
    {.key = "bytes_per_second", .type = ParamType::kSize, .min = 1, .max = kMaxBytes,
     .help = "payload bytes per second (\"64KiB\"); absent: no byte limit"},
    {.key = "burst_bytes", .type = ParamType::kSize, .min = 1, .max = kMaxBytes,
     .help = "payload bytes that may arrive at once; default: bytes_per_second. A larger "
             "message is always refused"},
    {.key = "action", .type = ParamType::kEnum, .choices = kActions,
     .help = "overrides the stage's action for this scope"},
}};

constexpr std::array<ParamSpec, 6> kIpSchema = {{
    kScopeSchema[0],
    kScopeSchema[1],
    kScopeSchema[2],
    kScopeSchema[3],
    kScopeSchema[4],
    {.key = "ipv6_prefix", .type = ParamType::kInt, .default_value = "64", .min = 1, .max = 128,
     .help = "IPv6 peers are counted per network of this many bits (a host usually owns a /64)"},
}};

constexpr std::array<ParamSpec, 6> kSchema = {{
    {.key = "action", .type = ParamType::kEnum, .default_value = "reject", .choices = kActions,
     .help = "a message over a limit: reject (error ack resource_exhausted, the session stays), "
             "close (the session, code resource_exhausted), drop (silently)"},
    {.key = "max_keys", .type = ParamType::kInt, .default_value = "1000000", .min = 1,
     .max = 100'000'000,
     .help = "entries per scope table (about 200 bytes each); past it new keys go unlimited "
             "by that scope and are counted (flow_untracked_<scope>)"},
    {.key = "session", .type = ParamType::kMap, .help = "limits per session",
     .fields = kScopeSchema},
    {.key = "user", .type = ParamType::kMap,
     .help = "limits per user (app and user id), shared by all the user's sessions",
     .fields = kScopeSchema},
    {.key = "ip", .type = ParamType::kMap, .help = "limits per client address, shared",
     .fields = kIpSchema},
    {.key = "app", .type = ParamType::kMap, .help = "limits per app (tenant), shared",
     .fields = kScopeSchema},
}};

Excess parseAction(std::string_view text) {
  if (text == "close") {
    return Excess::kClose;
  }
  if (text == "drop") {
    return Excess::kDrop;
  }
  return Excess::kReject;
}

// ---- Table registry --------------------------------------------------------------------------

// Tables by "<instance>/<scope>", held weakly: a table lives as long as some generation's
// config uses it, and a new generation of the same instance finds it here.
struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<BucketTable>, std::less<>> tables;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

// ---- Stage -----------------------------------------------------------------------------------

std::string formatMs(std::chrono::microseconds us) {
  return std::to_string((us.count() + 999) / 1000) + "ms";
}

class FlowStage final : public Stage {
 public:
  FlowStage(std::shared_ptr<const FlowConfig> config, StageCallbacks& callbacks)
      : config_(std::move(config)), callbacks_(callbacks) {}

  Verdict onMessage(Message& message) override {
    // A client's acks answer what the server pushed: limiting them would punish the client for
    // the server's traffic.
    if (message.kind == MessageKind::kAck) {
      return Verdict::pass();
    }
    if (!keys_built_) {
      buildKeys();
    }
    const Clock::time_point now = callbacks_.dispatcher().now();
    const auto bytes = static_cast<int64_t>(message.data().size());
    const auto& rules = config_->rules();
    std::array<bool, kAllScopes.size()> taken{};
    for (size_t i = 0; i < rules.size(); ++i) {
      const FlowConfig::Rule& rule = rules[i];
      const std::string& key = keys_[static_cast<size_t>(rule.scope)];
      if (key.empty()) {
        continue;  // an anonymous session has no user bucket
      }
      const BucketTable::Outcome outcome = rule.table->take(key, rule.limits, now, bytes);
      if (outcome.kind == BucketTable::Outcome::Kind::kAdmitted) {
        taken[i] = true;
        continue;
      }
      if (outcome.kind == BucketTable::Outcome::Kind::kUntracked) {
        rule.untracked->add();
        if (rule.table->shouldWarnFull(now)) {
          callbacks_.log().log(LogLevel::kWarn,
                               "flow table of scope \"" + std::string(scopeName(rule.scope)) +
                                   "\" is full (max_keys); new keys are not limited by it");
        }
        continue;
      }
      for (size_t j = 0; j < i; ++j) {
        if (taken[j]) {
          const FlowConfig::Rule& back = rules[j];
          back.table->give(keys_[static_cast<size_t>(back.scope)], back.limits, bytes);
        }
      }
      rule.limited->add();
      return excess(message, rule, outcome, bytes);
    }
    return Verdict::pass();
  }

  void onClose() override {
    // Only a closing session forgets its bucket: a reload destroys the stage without onClose,
    // and the next generation's stage finds the same bucket by session id.
    if (const FlowConfig::Rule* rule = config_->rule(Scope::kSession)) {
      rule->table->erase(std::to_string(callbacks_.session().id()));
    }
  }

 private:
  void buildKeys() {
    const Session& session = callbacks_.session();
    const Identity& identity = session.identity();
    keys_[static_cast<size_t>(Scope::kSession)] = std::to_string(session.id());
    if (!identity.user.empty()) {
      std::string& user = keys_[static_cast<size_t>(Scope::kUser)];
      user = identity.app;
      user.push_back('\0');
      user.append(identity.user);
    }
    keys_[static_cast<size_t>(Scope::kIp)] = ipKey(session.peerAddress(), config_->ipv6Prefix());
    // The core gives sessions without an auth stage the default app; "" only in odd tests.
    keys_[static_cast<size_t>(Scope::kApp)] = identity.app;
    if (keys_[static_cast<size_t>(Scope::kApp)].empty()) {
      keys_[static_cast<size_t>(Scope::kApp)].push_back('\0');
    }
    keys_built_ = true;
  }

  Verdict excess(const Message& message, const FlowConfig::Rule& rule,
                 const BucketTable::Outcome& outcome, int64_t bytes) {
    const bool debug = callbacks_.log().enabled(LogLevel::kDebug);
    if (rule.action == Excess::kDrop && !debug) {
      return Verdict::drop();  // a flood being shed should cost as little as possible
    }
    std::string reason = "rate limited: ";
    reason.append(scopeName(rule.scope));
    if (outcome.retry_after == std::chrono::microseconds::max()) {
      reason.append(" byte burst is " + std::to_string(rule.limits.bytes->burst) +
                    ", the message has " + std::to_string(bytes));
    } else {
      reason.append(outcome.by_bytes ? " bytes " + rule.limits.bytes->describe("B")
                                     : " messages " + rule.limits.messages->describe(""));
      reason.append("; retry after " + formatMs(outcome.retry_after));
    }
    if (debug) {
      callbacks_.log().log(LogLevel::kDebug, reason);
    }
    switch (rule.action) {
      case Excess::kClose:
        return Verdict::reject(Errc::kResourceExhausted, std::move(reason));
      case Excess::kDrop:
        return Verdict::drop();
      case Excess::kReject:
        break;
    }
    // Verdict::reject from onMessage closes the session, so "reject" answers with an error ack
    // (as route does) and drops the message.
    Message ack;
    ack.kind = MessageKind::kAck;
    ack.type = PayloadType::kText;
    ack.app = message.app;
    ack.id = message.id;
    ack.event = message.event;
    ack.ts_ms = callbacks_.dispatcher().wallMs();
    ack.meta.emplace_back("status", std::string(errcName(Errc::kResourceExhausted)));
    ack.meta.emplace_back("reason", std::move(reason));
    if (outcome.retry_after != std::chrono::microseconds::max()) {
      ack.meta.emplace_back("retry_after_ms",
                            std::to_string((outcome.retry_after.count() + 999) / 1000));
    }
    ack.payload = makeBytes(std::string());
    callbacks_.reply(std::move(ack));
    return Verdict::drop();
  }

  std::shared_ptr<const FlowConfig> config_;
  StageCallbacks& callbacks_;
  // Keys of this session in each scope's table, by Scope; computed at the first message
  // (the identity is final once the session is open). Empty user key: anonymous.
  std::array<std::string, kAllScopes.size()> keys_;
  bool keys_built_ = false;
};

}  // namespace

std::string_view scopeName(Scope scope) {
  switch (scope) {
    case Scope::kSession: return "session";
    case Scope::kUser: return "user";
    case Scope::kIp: return "ip";
    case Scope::kApp: return "app";
  }
  return "unknown";
}

void ScopeLimits::finish() {
  std::chrono::microseconds fill{0};
  if (messages) {
    fill = std::max(fill, messages->fillTime());
  }
  if (bytes) {
    fill = std::max(fill, bytes->fillTime());
  }
  idle = std::max(2 * fill, std::chrono::microseconds(1'000'000));
}

// ---- BucketTable -----------------------------------------------------------------------------

void BucketTable::unlink(Shard& shard, Entry& entry) {
  (entry.prev != nullptr ? entry.prev->next : shard.head) = entry.next;
  (entry.next != nullptr ? entry.next->prev : shard.tail) = entry.prev;
  entry.prev = entry.next = nullptr;
}

void BucketTable::pushFront(Shard& shard, Entry& entry) {
  entry.prev = nullptr;
  entry.next = shard.head;
  (shard.head != nullptr ? shard.head->prev : shard.tail) = &entry;
  shard.head = &entry;
}

void BucketTable::sweep(Shard& shard, int64_t now_us, int64_t idle_us, size_t budget) {
  while (budget-- > 0 && shard.tail != nullptr && now_us - shard.tail->used_us >= idle_us) {
    Entry* victim = shard.tail;
    unlink(shard, *victim);
    shard.entries.erase(*victim->key);
    size_.fetch_sub(1, std::memory_order_relaxed);
    removed_.add();
  }
}

bool BucketTable::reserve(size_t max_keys) {
  size_t size = size_.load(std::memory_order_relaxed);
  while (size < max_keys) {
    if (size_.compare_exchange_weak(size, size + 1, std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

void BucketTable::sweepWhenFull(Shard& own, int64_t now_us, int64_t idle_us) {
  sweep(own, now_us, idle_us, kSweepWhenFull);
  // Idle entries may all sit in other shards. try_lock, because this thread already holds
  // `own`: two threads sweeping each other's shards must not wait on each other.
  for (Shard& other : shards_) {
    if (size_.load(std::memory_order_relaxed) == 0 || &other == &own) {
      continue;
    }
    std::unique_lock lock(other.mu, std::try_to_lock);
    if (lock.owns_lock()) {
      sweep(other, now_us, idle_us, kSweepPerCall);
    }
  }
}

BucketTable::Outcome BucketTable::take(const std::string& key, const ScopeLimits& limits,
                                       Clock::time_point now, int64_t bytes) {
  const int64_t now_us = toMicros(now);
  const int64_t idle_us = limits.idle.count();
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  sweep(shard, now_us, idle_us, kSweepPerCall);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    if (!reserve(limits.max_keys)) {
      sweepWhenFull(shard, now_us, idle_us);
      if (!reserve(limits.max_keys)) {
        return {Outcome::Kind::kUntracked, false, {}};
      }
    }
    it = shard.entries.try_emplace(key).first;
    it->second.key = &it->first;
    pushFront(shard, it->second);
    created_.add();
  } else if (shard.head != &it->second) {
    unlink(shard, it->second);
    pushFront(shard, it->second);
  }
  Entry& entry = it->second;
  entry.used_us = std::max(entry.used_us, now_us);
  // A bucket appears the first time its limit is configured (new entry, or a reload that
  // added the limit): it starts full, like a new entry.
  if (limits.messages && !entry.messages) {
    entry.messages.emplace(*limits.messages, now);
  }
  if (limits.bytes && !entry.bytes) {
    entry.bytes.emplace(*limits.bytes, now);
  }
  if (limits.messages && !entry.messages->take(*limits.messages, now, 1)) {
    return {Outcome::Kind::kLimited, false, entry.messages->retryAfter(*limits.messages, now, 1)};
  }
  if (limits.bytes && !entry.bytes->take(*limits.bytes, now, bytes)) {
    if (limits.messages) {
      entry.messages->give(*limits.messages, 1);
    }
    return {Outcome::Kind::kLimited, true, entry.bytes->retryAfter(*limits.bytes, now, bytes)};
  }
  return {Outcome::Kind::kAdmitted, false, {}};
}

void BucketTable::give(const std::string& key, const ScopeLimits& limits, int64_t bytes) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    return;
  }
  if (limits.messages && it->second.messages) {
    it->second.messages->give(*limits.messages, 1);
  }
  if (limits.bytes && it->second.bytes) {
    it->second.bytes->give(*limits.bytes, bytes);
  }
}

bool BucketTable::erase(const std::string& key) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    return false;
  }
  unlink(shard, it->second);
  shard.entries.erase(it);
  size_.fetch_sub(1, std::memory_order_relaxed);
  removed_.add();
  return true;
}

std::optional<int64_t> BucketTable::availableForTest(const std::string& key,
                                                     const ScopeLimits& limits,
                                                     Clock::time_point now, bool bytes) {
  Shard& shard = shardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key);
  if (it == shard.entries.end()) {
    return std::nullopt;
  }
  const std::optional<TokenBucket>& bucket = bytes ? it->second.bytes : it->second.messages;
  const std::optional<Limit>& limit = bytes ? limits.bytes : limits.messages;
  if (!bucket || !limit) {
    return std::nullopt;
  }
  return bucket->available(*limit, now);
}

bool BucketTable::shouldWarnFull(Clock::time_point now) {
  const int64_t now_us = toMicros(now);
  int64_t last = last_full_warning_us_.load(std::memory_order_relaxed);
  if (last != std::numeric_limits<int64_t>::min() && now_us - last < 60'000'000) {
    return false;
  }
  return last_full_warning_us_.compare_exchange_strong(last, now_us, std::memory_order_relaxed);
}

// ---- Registry --------------------------------------------------------------------------------

BucketTableSharedPtr tableFor(std::string_view instance, Scope scope, Counter& created,
                              Counter& removed, bool& reused) {
  std::string name(instance);
  name.push_back('/');
  name.append(scopeName(scope));
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::erase_if(r.tables, [](const auto& kv) { return kv.second.expired(); });
  if (auto it = r.tables.find(name); it != r.tables.end()) {
    if (BucketTableSharedPtr table = it->second.lock()) {
      reused = true;
      return table;
    }
  }
  auto table = std::make_shared<BucketTable>(created, removed);
  r.tables[name] = table;
  reused = false;
  return table;
}

size_t registeredTablesForTest() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::erase_if(r.tables, [](const auto& kv) { return kv.second.expired(); });
  return r.tables.size();
}

// ---- Addresses -------------------------------------------------------------------------------

std::string ipKey(std::string_view peer, int ipv6_prefix) {
  if (!peer.empty() && peer.front() == '[') {
    const size_t close = peer.find(']');
    if (close == std::string_view::npos) {
      return std::string(peer);
    }
    const std::string host(peer.substr(1, close - 1));
    unsigned char addr[16];
    if (inet_pton(AF_INET6, host.c_str(), addr) != 1) {
      return host;
    }
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(addr, kMapped, sizeof(kMapped)) == 0) {
      char v4[INET_ADDRSTRLEN];
      if (inet_ntop(AF_INET, addr + 12, v4, sizeof(v4)) != nullptr) {
        return v4;
      }
    }
    const int prefix = std::clamp(ipv6_prefix, 0, 128);
    for (int bit = prefix; bit < 128; ++bit) {
      addr[bit / 8] = static_cast<unsigned char>(addr[bit / 8] & ~(0x80u >> (bit % 8)));
    }
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, addr, text, sizeof(text)) == nullptr) {
      return host;
    }
    std::string out(text);
    if (prefix < 128) {
      out.append("/" + std::to_string(prefix));
    }
    return out;
  }
  const size_t colon = peer.rfind(':');
  if (colon == std::string_view::npos || peer.find(':') != colon) {
    return std::string(peer);
  }
  return std::string(peer.substr(0, colon));
}

// ---- Config ----------------------------------------------------------------------------------

const FlowConfig::Rule* FlowConfig::rule(Scope scope) const {
  for (const Rule& r : rules_) {
    if (r.scope == scope) {
      return &r;
    }
  }
  return nullptr;
}

StagePtr FlowConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<FlowStage>(shared_from_this(), callbacks);
}

std::span<const ParamSpec> flowSchema() { return kSchema; }

Result<StageConfigPtr> compileFlow(const ConfigView& config, LoadContext& context) {
  const Excess default_action = parseAction(config.getString("action"));
  const auto max_keys = static_cast<size_t>(config.getInt("max_keys"));
  std::vector<FlowConfig::Rule> rules;
  int ipv6_prefix = 64;
  for (Scope scope : kAllScopes) {
    const std::string name(scopeName(scope));
    const ConfigView& v = config.child(name);
    const bool has_rate = v.has("rate");
    const bool has_bytes = v.has("bytes_per_second");
    if (!has_rate && v.has("burst")) {
      return fail(Errc::kInvalidConfig, v.location("burst") + ": burst needs rate");
    }
    if (!has_bytes && v.has("burst_bytes")) {
      return fail(Errc::kInvalidConfig,
                  v.location("burst_bytes") + ": burst_bytes needs bytes_per_second");
    }
    if (!has_rate && !has_bytes) {
      if (config.has(name)) {
        return fail(Errc::kInvalidConfig, config.location(name) +
                                              ": sets no limit (give rate or bytes_per_second)");
      }
      continue;
    }
    FlowConfig::Rule rule;
    rule.scope = scope;
    if (has_rate) {
      const Rate rate = v.getRate("rate");
      const int64_t burst = v.has("burst") ? v.getInt("burst") : int64_t{rate.count};
      auto limit = Limit::make(rate, burst);
      if (!limit) {
        return fail(Errc::kInvalidConfig, v.location(v.has("burst") ? "burst" : "rate") + ": " +
                                              limit.error().message);
      }
      rule.limits.messages = *limit;
    }
    if (has_bytes) {
      const int64_t per_second = v.getSize("bytes_per_second");
      const int64_t burst = v.has("burst_bytes") ? v.getSize("burst_bytes") : per_second;
      auto limit = Limit::make(per_second, std::chrono::seconds(1), burst);
      if (!limit) {
        return fail(Errc::kInvalidConfig,
                    v.location(v.has("burst_bytes") ? "burst_bytes" : "bytes_per_second") + ": " +
                        limit.error().message);
      }
      rule.limits.bytes = *limit;
    }
    rule.limits.max_keys = max_keys;
    rule.limits.finish();
    rule.action = v.has("action") ? parseAction(v.getString("action")) : default_action;
    if (scope == Scope::kIp) {
      ipv6_prefix = static_cast<int>(v.getInt("ipv6_prefix"));
    }
    Stats& stats = context.stats();
    rule.limited = &stats.counter("flow_limited_" + name);
    rule.untracked = &stats.counter("flow_untracked_" + name);
    bool reused = false;
    rule.table = tableFor(context.instanceName(), scope, stats.counter("flow_keys_created_" + name),
                          stats.counter("flow_keys_removed_" + name), reused);
    if (reused && context.log().enabled(LogLevel::kInfo)) {
      context.log().log(LogLevel::kInfo, "scope \"" + name + "\" keeps its bucket state (keys: " +
                                             std::to_string(rule.table->size()) + ")");
    }
    rules.push_back(std::move(rule));
  }
  if (rules.empty()) {
    return fail(Errc::kInvalidConfig,
                config.location() +
                    ": no limit configured (give rate or bytes_per_second under session, user, "
                    "ip or app)");
  }
  return std::make_shared<FlowConfig>(std::move(rules), ipv6_prefix);
}

}  // namespace imgate::mod::flow
