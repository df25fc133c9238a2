// SPDX-License-Identifier: Apache-2.0
#include "token_expiry.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <utility>

namespace imgate::mod::auth_jwt {

// ---- Refresh messages -------------------------------------------------------------------------

namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) {
    return {};
  }
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// Through a const object, so iterator comparisons stay unambiguous under C++20 (clang).
const rapidjson::Value* member(const rapidjson::Value& object, const char* key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::string_view text(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

// A token, or the token member of an object.
bool tokenOf(const rapidjson::Value& v, std::string& out) {
  const rapidjson::Value* token = &v;
  if (v.IsObject()) {
    token = member(v, "token");
    if (token == nullptr) {
      return false;
    }
  }
  if (!token->IsString() || token->GetStringLength() == 0) {
    return false;
  }
  out.assign(text(*token));
  return true;
}

std::string idOf(const rapidjson::Value& object) {
  const rapidjson::Value* id = member(object, "id");
  if (id == nullptr) {
    return {};
  }
  if (id->IsString()) {
    return std::string(text(*id));
  }
  if (id->IsUint64()) {
    return std::to_string(id->GetUint64());
  }
  if (id->IsInt64()) {
    return std::to_string(id->GetInt64());
  }
  return {};
}

// The payload of an "auth.refresh" event.
void parseEventPayload(std::string_view payload, RefreshRequest& out) {
  const std::string_view body = trim(payload);
  if (body.empty()) {
    out.error = "refresh without a token";
    return;
  }
  if (body.front() != '{' && body.front() != '[' && body.front() != '"') {
    out.token.assign(body);
    return;
  }
  rapidjson::Document doc;
  // Iterative parsing: nesting in a hostile payload must not exhaust the worker's stack.
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError()) {
    out.error = "malformed refresh: payload is not valid JSON";
    return;
  }
  const rapidjson::Value* value = &doc;
  if (doc.IsArray()) {
    if (doc.Empty()) {
      out.error = "refresh without a token";
      return;
    }
    value = &doc[0];
  }
  if (!tokenOf(*value, out.token)) {
    out.token.clear();
    out.error = "refresh without a token";
    return;
  }
  if (out.id.empty() && value->IsObject()) {
    out.id = idOf(*value);
  }
}

void writeString(rapidjson::Writer<rapidjson::StringBuffer>& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// What both answers to a refresh share; the caller adds the payload, or the reason.
Message refreshAnswer(std::string app, std::string id, std::string_view status, int64_t now_ms) {
  Message m;
  m.kind = MessageKind::kAck;
  m.type = PayloadType::kText;
  m.app = std::move(app);
  m.id = std::move(id);
  m.event = std::string(kRefreshEvent);
  m.ts_ms = now_ms;
  m.meta.emplace_back("status", std::string(status));
  return m;
}

}  // namespace

RefreshRequest parseRefresh(const Message& message) {
  RefreshRequest out;
  if (message.kind != MessageKind::kData && message.kind != MessageKind::kControl) {
    return out;
  }
  const std::string_view payload = message.data();
  if (message.event == kRefreshEvent) {
    out.is_refresh = true;
    out.id = message.id;
    if (payload.size() > kMaxRefreshPayload) {
      out.error = "token too long";
      return out;
    }
    parseEventPayload(payload, out);
    return out;
  }
  // Plain WebSocket: cheap checks first, so ordinary traffic is not parsed as JSON.
  if (!message.event.empty() || message.type != PayloadType::kText ||
      payload.size() > kMaxRefreshPayload) {
    return out;
  }
  const std::string_view body = trim(payload);
  if (body.empty() || body.front() != '{' || body.find(kRefreshEvent) == std::string_view::npos) {
    return out;
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) {
    return out;
  }
  const rapidjson::Value* event = member(doc, "event");
  if (event == nullptr || !event->IsString() || text(*event) != kRefreshEvent) {
    return out;
  }
  out.is_refresh = true;
  out.id = message.id.empty() ? idOf(doc) : message.id;
  if (!tokenOf(doc, out.token)) {
    out.token.clear();
    out.error = "refresh without a token";
  }
  return out;
}

Message expiringNotice(std::string app, int64_t exp_s, int64_t now_ms) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("event");
  writeString(w, kExpiringEvent);
  w.Key("expires_at");
  w.Int64(exp_s);
  w.EndObject();
  Message m;
  m.kind = MessageKind::kControl;
  m.type = PayloadType::kText;
  m.to_kind = TargetKind::kSession;
  m.app = std::move(app);
  m.event = std::string(kExpiringEvent);
  m.ts_ms = now_ms;
  m.payload = makeBytes(std::string(buf.GetString(), buf.GetSize()));
  return m;
}

Message refreshAck(std::string app, std::string id, std::optional<int64_t> exp_s, int64_t now_ms) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("event");
  writeString(w, kRefreshEvent);
  w.Key("status");
  w.String("ok");
  if (exp_s) {
    w.Key("expires_at");
    w.Int64(*exp_s);
  }
  w.EndObject();
  Message m = refreshAnswer(std::move(app), std::move(id), "ok", now_ms);
  m.payload = makeBytes(std::string(buf.GetString(), buf.GetSize()));
  return m;
}

Message refreshError(std::string app, std::string id, std::string reason, int64_t now_ms) {
  Message m = refreshAnswer(std::move(app), std::move(id), "unauthenticated", now_ms);
  m.meta.emplace_back("reason", std::move(reason));
  m.payload = makeBytes(std::string());
  return m;
}

}  // namespace imgate::mod::auth_jwt
