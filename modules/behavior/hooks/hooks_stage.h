// SPDX-License-Identifier: Apache-2.0
// hooks: lifecycle webhooks. Connect, disconnect and room join/leave events of a session are
// POSTed as JSON to an upstream group, so backends keep presence and login logs. The answer to
// the connect webhook may carry messages for the new session and rooms for its user to join.
// Not terminal: every message is passed on, and no event ever waits for the backend.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/module.h"

namespace imgate::mod::hooks {

enum class Event : uint8_t { kConnect = 1, kDisconnect = 2, kJoin = 4, kLeave = 8 };

std::string_view eventName(Event event);
std::optional<Event> parseEvent(std::string_view name);

struct Settings {
  std::string upstream;
  std::string path = "/imgate/events";  // "{event}" is replaced by the event name
  uint8_t events = 0xf;                  // bit set of Event
  std::chrono::milliseconds timeout{0};  // 0: the group's timeout
  size_t max_answer = 64 * 1024;         // bytes of a connect answer
  size_t max_messages = 16;              // per connect answer
  size_t max_rooms = 16;                 // per connect answer
  size_t max_pending = 16;               // join/leave webhooks awaiting an answer, per session

  bool wants(Event event) const { return (events & static_cast<uint8_t>(event)) != 0; }
};

class HooksConfig final : public StageConfig, public std::enable_shared_from_this<HooksConfig> {
 public:
  HooksConfig(Settings settings, Counter& sent, Counter& failed, Counter& applied,
              Counter& invalid)
      : settings_(std::move(settings)), sent_(sent), failed_(failed), applied_(applied),
        invalid_(invalid) {}
  StagePtr createStage(StageCallbacks& callbacks) const override;

  const Settings& settings() const { return settings_; }
  Counter& sent() const { return sent_; }
  Counter& failed() const { return failed_; }
  Counter& applied() const { return applied_; }
  Counter& invalid() const { return invalid_; }

 private:
  Settings settings_;
  Counter& sent_;
  Counter& failed_;
  Counter& applied_;
  Counter& invalid_;
};

// What a 2xx answer to the connect webhook asks for.
struct ConnectAnswer {
  std::vector<Message> messages;  // kData, app/ts not yet set
  std::vector<std::string> rooms;
};

// Parses a connect answer (documented in the module README). An empty body is a valid answer
// that asks for nothing. Anything else must be a JSON object within the limits of `settings`;
// unknown keys are ignored. Errors are kInvalidPayload with a reason; nothing is half-parsed.
[[nodiscard]] Result<ConnectAnswer> parseConnectAnswer(std::string_view body,
                                                       const Settings& settings);

// The JSON body of one event. `room` is written for join/leave, `duration_ms` for disconnect
// when it is known (>= 0).
std::string eventBody(Event event, const Session& session, int64_t ts_ms, std::string_view room,
                      int64_t duration_ms);

// `path` with "{event}" replaced by the event name.
std::string expandPath(std::string_view path, Event event);

Result<StageConfigPtr> compileHooks(const ConfigView& config, LoadContext& context);
std::span<const ParamSpec> hooksSchema();

}  // namespace imgate::mod::hooks
