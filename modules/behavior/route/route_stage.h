// SPDX-License-Identifier: Apache-2.0
// route: the terminal stage that sends what clients say to the backends that already exist.
// Each inbound data message is matched against ordered rules (app, event, user, listener; RE2)
// and POSTed as a JSON envelope to the rule's upstream group; the backend's answer comes back to
// the sender as the ack (TCP SEND_ACK, WebSocket message), after the backend accepted it.
#pragma once

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "imgate/sdk/module.h"

namespace imgate::mod::route {

struct Rule {
  std::unique_ptr<RE2> app;
  std::unique_ptr<RE2> event;
  std::unique_ptr<RE2> user;
  std::unique_ptr<RE2> listener;
  std::vector<std::pair<std::string, std::unique_ptr<RE2>>> meta;  // key, pattern
  std::string upstream;
  std::string path;  // template: {app} {user} {device} {event} {session}
  // Gray release: these users, or a stable share of all users, go to gray_upstream instead.
  std::string gray_upstream;
  std::unordered_set<std::string> gray_users;
  uint32_t gray_percent = 0;
};

enum class NoMatch : uint8_t { kReject, kDrop };

// The answer given to one client message, kept for de-duplication.
struct AckRecord {
  Errc code = Errc::kNone;
  std::string reason;
  std::string body;
};

// Uplink de-duplication: (app, user, message id) -> the first answer, for `window`. Shared by
// every session of the configuration (all workers), so a retry on a new connection is caught
// too; sharded mutexes, bounded by `max_entries` (oldest first out).
class DedupeTable {
 public:
  DedupeTable(std::chrono::milliseconds window, size_t max_entries)
      : window_(window), max_per_shard_(std::max<size_t>(1, max_entries / kShards)) {}
  enum class Seen : uint8_t { kNew, kInFlight, kDone };
  // Registers `key` as in flight unless it is known; returns what was known (and the record).
  Seen begin(const std::string& key, int64_t now_ms, AckRecord& record);
  void finish(const std::string& key, int64_t now_ms, const AckRecord& record);
  // Forgets an in-flight key whose answer will never come (the session went away).
  void abandon(const std::string& key);

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    bool done = false;
    int64_t expires_ms = 0;
    AckRecord record;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> entries;
    std::deque<std::pair<int64_t, std::string>> order;  // (expiry, key), oldest first
  };
  Shard& shard(const std::string& key) { return shards_[std::hash<std::string>{}(key) % kShards]; }
  void expire(Shard& s, int64_t now_ms);

  std::chrono::milliseconds window_;
  size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

class RouteConfig final : public StageConfig, public std::enable_shared_from_this<RouteConfig> {
 public:
  RouteConfig(std::vector<Rule> rules, NoMatch no_match, std::chrono::milliseconds timeout,
              std::unique_ptr<DedupeTable> dedupe, Counter& routed, Counter& failed,
              Counter& unrouted, Counter& duplicates)
      : rules_(std::move(rules)), no_match_(no_match), timeout_(timeout),
        dedupe_(std::move(dedupe)), routed_(routed), failed_(failed), unrouted_(unrouted),
        duplicates_(duplicates) {}
  StagePtr createStage(StageCallbacks& callbacks) const override;

  // The rule for `message` from `session`, or nullptr.
  const Rule* match(const Message& message, const Session& session) const;
  // The group a user goes to under `rule` (gray release applied).
  const std::string& upstreamFor(const Rule& rule, const Message& message) const;
  NoMatch noMatch() const { return no_match_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  Counter& routed() const { return routed_; }
  Counter& failed() const { return failed_; }
  Counter& unrouted() const { return unrouted_; }
  Counter& duplicates() const { return duplicates_; }
  DedupeTable* dedupe() const { return dedupe_.get(); }

 private:
  std::vector<Rule> rules_;
  NoMatch no_match_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<DedupeTable> dedupe_;  // null: de-duplication off
  Counter& routed_;
  Counter& failed_;
  Counter& unrouted_;
  Counter& duplicates_;
};

// A backend answer split into the reply for the sender and push instructions: a JSON object with
// an "imgate" member {"reply": <string or JSON>, "push": [{"to": ..., "data"|"data_base64": ...,
// "event": ...}]} carries instructions; any other body is the reply as is. Bad instructions are
// ignored (the reply still goes out) and reported in `error`. A body that is not valid UTF-8
// is the reply as binary; strings in instructions are made valid UTF-8 (U+FFFD for the lone
// surrogates a \u escape can name).
struct BackendAnswer {
  std::string reply;
  PayloadType reply_type = PayloadType::kText;
  struct Push {
    PushTarget target;
    Message message;
  };
  std::vector<Push> pushes;
  std::string error;
};
BackendAnswer parseAnswer(std::string_view body);

// The JSON body POSTed to the backend (documented in the module README).
std::string envelope(const Message& message, const Session& session, std::string_view trace_id);
// Expands {app} {user} {device} {event} {session} in `path` (values percent-encoded).
std::string expandPath(const std::string& path, const Message& message, const Session& session);
// Stable 0..99 bucket of (app, user), for gray release shares.
uint32_t grayBucket(std::string_view app, std::string_view user);

Result<StageConfigPtr> compileRoute(const ConfigView& config, LoadContext& context);
std::span<const ParamSpec> routeSchema();

}  // namespace imgate::mod::route
