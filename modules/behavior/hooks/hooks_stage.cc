// SPDX-License-Identifier: Apache-2.0
#include "hooks_stage.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>

#include "modules/common/base64.h"
#include "modules/common/json_text.h"

namespace imgate::mod::hooks {

namespace {

constexpr std::array<ParamSpec, 8> kSchema = {{
    {.key = "upstream", .type = ParamType::kString, .required = true,
     .help = "upstream group (from `upstreams`) the events are POSTed to"},
    {.key = "events", .type = ParamType::kStringList,
     .default_value = "[connect, disconnect, join, leave]", .min = 1, .max = 4,
     .help = "which events are sent: connect, disconnect, join, leave"},
    {.key = "path", .type = ParamType::kString, .default_value = "/imgate/events",
     .help = "request path; {event} is replaced by the event name"},
    {.key = "timeout", .type = ParamType::kDuration, .default_value = "0", .min = 0,
     .max = 300'000, .help = "backend answer timeout; 0 uses the upstream group's timeout"},
    {.key = "max_answer", .type = ParamType::kSize, .default_value = "64KiB", .min = 0,
     .max = 16 << 20,
     .help = "largest connect answer applied; a welcome message and a few rooms fit easily"},
    {.key = "max_messages", .type = ParamType::kInt, .default_value = "16", .min = 0,
     .max = 1024, .help = "most messages one connect answer may deliver"},
    {.key = "max_rooms", .type = ParamType::kInt, .default_value = "16", .min = 0, .max = 1024,
     .help = "most rooms one connect answer may join"},
    {.key = "max_pending", .type = ParamType::kInt, .default_value = "16", .min = 1,
     .max = 1024,
     .help = "join/leave webhooks of one session awaiting an answer; more are not sent, so a "
             "client flooding JOIN frames cannot flood the backend"},
}};

constexpr std::array<std::pair<std::string_view, Event>, 4> kEventNames = {{
    {"connect", Event::kConnect},
    {"disconnect", Event::kDisconnect},
    {"join", Event::kJoin},
    {"leave", Event::kLeave},
}};

bool is2xx(const Result<UpstreamResponse>& result) {
  return result && result->status >= 200 && result->status < 300;
}

class HooksStage final : public Stage {
 public:
  HooksStage(std::shared_ptr<const HooksConfig> config, StageCallbacks& callbacks)
      : config_(std::move(config)), callbacks_(callbacks),
        pending_(std::make_shared<size_t>(0)) {}

  Verdict onOpen() override {
    opened_at_ms_ = callbacks_.dispatcher().wallMs();
    if (!config_->settings().wants(Event::kConnect)) {
      return Verdict::pass();
    }
    // The session does not wait: the answer is applied whenever it comes, and the core drops
    // it if the session is gone by then (so capturing `this` is safe).
    send(Event::kConnect, {}, -1, [this](Result<UpstreamResponse> result) {
      connectAnswered(std::move(result));
    });
    return Verdict::pass();
  }

  Verdict onMessage(Message& message) override {
    if (message.kind != MessageKind::kControl) {
      return Verdict::pass();
    }
    const std::optional<Event> event = parseEvent(message.event);
    if (!event || (*event != Event::kJoin && *event != Event::kLeave) ||
        !config_->settings().wants(*event)) {
      return Verdict::pass();
    }
    if (*pending_ >= config_->settings().max_pending) {
      config_->failed().add();
      return Verdict::pass();
    }
    ++*pending_;
    send(*event, message.to, -1,
         [config = config_, pending = pending_](Result<UpstreamResponse> result) {
           --*pending;
           if (!is2xx(result)) {
             config->failed().add();
           }
         });
    return Verdict::pass();
  }

  void onClose() override {
    if (!config_->settings().wants(Event::kDisconnect)) {
      return;
    }
    // Fire and forget: the core drops this completion with the session. It captures nothing
    // of the stage, so an Upstreams that did run it would still be safe.
    // The session's own open time also covers stages re-created by a reload.
    const int64_t opened = callbacks_.session().openedAtMs() != 0 ? callbacks_.session().openedAtMs()
                           : opened_at_ms_                       ? *opened_at_ms_
                                                                 : 0;
    const int64_t duration =
        opened != 0 ? std::max<int64_t>(0, callbacks_.dispatcher().wallMs() - opened) : -1;
    send(Event::kDisconnect, {}, duration, [config = config_](Result<UpstreamResponse> result) {
      if (!is2xx(result)) {
        config->failed().add();
      }
    });
  }

 private:
  void send(Event event, std::string_view room, int64_t duration_ms, UpstreamCallback done) {
    const Settings& s = config_->settings();
    const Session& session = callbacks_.session();
    UpstreamRequest request;
    request.path = expandPath(s.path, event);
    request.headers = {{"content-type", "application/json"},
                       {"x-imgate-event", std::string(eventName(event))}};
    request.body =
        eventBody(event, session, callbacks_.dispatcher().wallMs(), room, duration_ms);
    request.hash_key = session.identity().app + "/" + session.identity().user;
    request.timeout = s.timeout;
    config_->sent().add();
    callbacks_.upstreams().call(s.upstream, std::move(request), std::move(done));
  }

  void connectAnswered(Result<UpstreamResponse> result) {
    if (!is2xx(result)) {
      config_->failed().add();
      return;
    }
    auto answer = parseConnectAnswer(result->body, config_->settings());
    if (!answer) {
      // A backend bug the operator should see; the reasons name fields, never payloads.
      config_->failed().add();
      config_->invalid().add();
      if (callbacks_.log().enabled(LogLevel::kWarn)) {
        callbacks_.log().log(LogLevel::kWarn,
                             "connect answer ignored: " + toValidUtf8(answer.error().message));
      }
      return;
    }
    if (answer->messages.empty() && answer->rooms.empty()) {
      return;
    }
    const Identity& identity = callbacks_.session().identity();
    for (Message& m : answer->messages) {
      m.app = identity.app;
      m.ts_ms = callbacks_.dispatcher().wallMs();
      callbacks_.reply(std::move(m));
    }
    // Rooms belong to users in the hub: an anonymous session has no user to join with.
    if (!identity.user.empty()) {
      for (const std::string& room : answer->rooms) {
        (void)callbacks_.hub().join(identity.app, room, {identity.user});
      }
    }
    config_->applied().add();
  }

  std::shared_ptr<const HooksConfig> config_;
  StageCallbacks& callbacks_;
  std::optional<int64_t> opened_at_ms_;  // unknown for stages re-created by a reload
  // Shared with the join/leave completions, which must not touch the stage itself.
  std::shared_ptr<size_t> pending_;
};

// Through a const object, so iterator comparisons stay unambiguous under C++20 (clang).
const rapidjson::Value* member(const rapidjson::Value& object, const char* key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

Status invalid(std::string reason) { return fail(Errc::kInvalidPayload, std::move(reason)); }

Status parseMessages(const rapidjson::Value& list, const Settings& settings,
                     std::vector<Message>& out) {
  if (!list.IsArray()) {
    return invalid("\"messages\" is not an array");
  }
  if (list.Size() > settings.max_messages) {
    return invalid("more than " + std::to_string(settings.max_messages) + " messages");
  }
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const rapidjson::Value& item = list[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!item.IsObject()) {
      return invalid(where + " is not an object");
    }
    Message m;
    m.kind = MessageKind::kData;
    const rapidjson::Value* data = member(item, "data");
    const rapidjson::Value* data_base64 = member(item, "data_base64");
    if ((data == nullptr) == (data_base64 == nullptr)) {
      return invalid(where + " needs exactly one of \"data\" and \"data_base64\"");
    }
    if (data != nullptr) {
      m.type = PayloadType::kText;
      std::string text;
      if (data->IsString()) {
        text.assign(data->GetString(), data->GetStringLength());
      } else {
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        data->Accept(w);
        text.assign(buf.GetString(), buf.GetSize());
      }
      if (!common::isValidUtf8(text)) {
        return invalid(where + ".data is not valid UTF-8 (a \\u escape of a lone surrogate)");
      }
      m.payload = makeBytes(std::move(text));
    } else {
      if (!data_base64->IsString()) {
        return invalid(where + ".data_base64 is not a string");
      }
      auto decoded = common::base64Decode(
          std::string_view(data_base64->GetString(), data_base64->GetStringLength()));
      if (!decoded) {
        return invalid(where + ".data_base64 is not valid base64");
      }
      m.type = PayloadType::kBinary;
      m.payload = makeBytes(std::move(*decoded));
    }
    if (const rapidjson::Value* event = member(item, "event")) {
      if (!event->IsString()) {
        return invalid(where + ".event is not a string");
      }
      m.event.assign(event->GetString(), event->GetStringLength());
      if (!common::isValidUtf8(m.event)) {
        return invalid(where + ".event is not valid UTF-8 (a \\u escape of a lone surrogate)");
      }
    }
    out.push_back(std::move(m));
  }
  return {};
}

Status parseRooms(const rapidjson::Value& list, const Settings& settings,
                  std::vector<std::string>& out) {
  if (!list.IsArray()) {
    return invalid("\"rooms\" is not an array");
  }
  if (list.Size() > settings.max_rooms) {
    return invalid("more than " + std::to_string(settings.max_rooms) + " rooms");
  }
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    if (!list[i].IsString() || list[i].GetStringLength() == 0) {
      return invalid("rooms[" + std::to_string(i) + "] is not a non-empty string");
    }
    out.emplace_back(list[i].GetString(), list[i].GetStringLength());
    if (!common::isValidUtf8(out.back())) {
      return invalid("rooms[" + std::to_string(i) +
                     "] is not valid UTF-8 (a \\u escape of a lone surrogate)");
    }
  }
  return {};
}

bool isBlank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

std::span<const ParamSpec> hooksSchema() { return kSchema; }

std::string_view eventName(Event event) {
  for (const auto& [name, e] : kEventNames) {
    if (e == event) {
      return name;
    }
  }
  return "unknown";
}

std::optional<Event> parseEvent(std::string_view name) {
  for (const auto& [n, e] : kEventNames) {
    if (n == name) {
      return e;
    }
  }
  return std::nullopt;
}

StagePtr HooksConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<HooksStage>(shared_from_this(), callbacks);
}

Result<ConnectAnswer> parseConnectAnswer(std::string_view body, const Settings& settings) {
  if (body.size() > settings.max_answer) {
    return fail(Errc::kInvalidPayload, "answer of " + std::to_string(body.size()) +
                                           " bytes is over max_answer (" +
                                           std::to_string(settings.max_answer) + ")");
  }
  ConnectAnswer answer;
  if (isBlank(body)) {
    return answer;
  }
  rapidjson::Document doc;
  // Iterative parsing: a deeply nested answer must not exhaust the worker's stack. Bytes that
  // are not UTF-8 are a parse error; what escapes can still smuggle in is checked per string.
  doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(body.data(),
                                                                                     body.size());
  if (doc.HasParseError()) {
    return fail(Errc::kInvalidPayload, std::string("answer is not JSON: ") +
                                           rapidjson::GetParseError_En(doc.GetParseError()) +
                                           " at offset " + std::to_string(doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) {
    return fail(Errc::kInvalidPayload, "answer is not a JSON object");
  }
  if (const rapidjson::Value* messages = member(doc, "messages")) {
    if (Status s = parseMessages(*messages, settings, answer.messages); !s) {
      return tl::unexpected(std::move(s.error()));
    }
  }
  if (const rapidjson::Value* rooms = member(doc, "rooms")) {
    if (Status s = parseRooms(*rooms, settings, answer.rooms); !s) {
      return tl::unexpected(std::move(s.error()));
    }
  }
  return answer;
}

std::string eventBody(Event event, const Session& session, int64_t ts_ms, std::string_view room,
                      int64_t duration_ms) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](const char* key, std::string_view value) {
    w.Key(key);
    writeJsonString(w, value);  // always valid JSON, whatever a room name holds
  };
  const Identity& identity = session.identity();
  w.StartObject();
  str("event", eventName(event));
  // Sessions without an auth stage have no app until the core accepts them into its default
  // tenant; name that tenant here so the connect event matches the later ones.
  str("app", identity.app.empty() ? std::string_view("default") : std::string_view(identity.app));
  str("user", identity.user);
  str("device", identity.device);
  str("session", std::to_string(session.id()));
  str("listener", session.listener());
  str("protocol", session.protocol());
  str("peer", session.peerAddress());
  w.Key("ts");
  w.Int64(ts_ms);
  if (event == Event::kJoin || event == Event::kLeave) {
    str("room", room);
  }
  if (event == Event::kDisconnect && duration_ms >= 0) {
    w.Key("duration_ms");
    w.Int64(duration_ms);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string expandPath(std::string_view path, Event event) {
  static constexpr std::string_view kPlaceholder = "{event}";
  std::string out;
  size_t from = 0;
  for (size_t at = path.find(kPlaceholder); at != std::string_view::npos;
       at = path.find(kPlaceholder, from)) {
    out.append(path.substr(from, at - from));
    out.append(eventName(event));
    from = at + kPlaceholder.size();
  }
  out.append(path.substr(from));
  return out;
}

Result<StageConfigPtr> compileHooks(const ConfigView& config, LoadContext& context) {
  Settings s;
  s.upstream = config.getString("upstream");
  if (!context.hasUpstream(s.upstream)) {
    return fail(Errc::kInvalidConfig, config.location("upstream") +
                                          ": no upstream group named \"" + s.upstream + "\"");
  }
  s.events = 0;
  for (const std::string& name : config.getStringList("events")) {
    const std::optional<Event> event = parseEvent(name);
    if (!event) {
      return fail(Errc::kInvalidConfig, config.location("events") + ": unknown event \"" + name +
                                            "\" (connect, disconnect, join, leave)");
    }
    s.events |= static_cast<uint8_t>(*event);
  }
  s.path = config.getString("path");
  if (s.path.empty() || s.path[0] != '/') {
    return fail(Errc::kInvalidConfig, config.location("path") + ": must start with /");
  }
  s.timeout = config.getDuration("timeout");
  s.max_answer = static_cast<size_t>(config.getSize("max_answer"));
  s.max_messages = static_cast<size_t>(config.getInt("max_messages"));
  s.max_rooms = static_cast<size_t>(config.getInt("max_rooms"));
  s.max_pending = static_cast<size_t>(config.getInt("max_pending"));
  return std::make_shared<const HooksConfig>(
      std::move(s), context.stats().counter("hooks_sent"), context.stats().counter("hooks_failed"),
      context.stats().counter("hooks_applied"), context.stats().counter("hooks_invalid"));
}

}  // namespace imgate::mod::hooks
