// SPDX-License-Identifier: Apache-2.0
#include "push_api.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <unordered_set>
#include <utility>

#include "imgate/sdk/http.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/message.h"
#include "modules/common/base64.h"
#include "modules/common/json_text.h"
#include "modules/common/utf8.h"

namespace imgate::mod::http_push {

using common::isValidUtf8;

namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;
constexpr std::string_view kRealmHeader = R"(Bearer realm="imgate")";

// ---- Errors --------------------------------------------------------------------------------

struct ApiError {
  int status = 400;
  Errc code = Errc::kBadRequest;
  std::string reason;
  std::vector<HttpHeader> headers;
  int64_t retry_after_s = 0;  // 429 only: also written as "retry_after" in the body
};

template <class T>
using ApiResult = tl::expected<T, ApiError>;

// The one table from Errc to HTTP status for this module (STYLE.md §4.10). 405 and 415 have no
// Errc of their own and are built with an explicit status.

tl::unexpected<ApiError> apiFail(Errc code, std::string reason) {
  return tl::unexpected<ApiError>(ApiError{httpStatusFor(code), code, std::move(reason), {}});
}

tl::unexpected<ApiError> badRequest(std::string reason) {
  return apiFail(Errc::kBadRequest, std::move(reason));
}

// ---- JSON output ---------------------------------------------------------------------------

// Wraps rapidjson's Writer so that every string written is valid UTF-8: ids coming from the
// hub or from percent-decoded paths must never turn a response into invalid JSON.
class JsonOut {
 public:
  JsonOut() : writer_(buffer_) {}
  void beginObject() { writer_.StartObject(); }
  void endObject() { writer_.EndObject(); }
  void beginArray() { writer_.StartArray(); }
  void endArray() { writer_.EndArray(); }
  void key(std::string_view k) {
    writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
  }
  void str(std::string_view s) { writeJsonString(writer_, s); }
  void u64(uint64_t v) { writer_.Uint64(v); }
  void i64(int64_t v) { writer_.Int64(v); }
  void boolean(bool v) { writer_.Bool(v); }
  void strings(std::string_view k, const std::vector<std::string>& values) {
    key(k);
    beginArray();
    for (const auto& v : values) {
      str(v);
    }
    endArray();
  }
  std::string take() { return std::string(buffer_.GetString(), buffer_.GetSize()); }

 private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

HttpResponse errorResponse(const ApiError& error) {
  JsonOut out;
  out.beginObject();
  out.key("error");
  out.str(errcName(error.code));
  out.key("reason");
  out.str(error.reason);
  if (error.retry_after_s > 0) {
    out.key("retry_after");
    out.i64(error.retry_after_s);
  }
  out.endObject();
  HttpResponse response = HttpResponse::json(error.status, out.take());
  for (const auto& h : error.headers) {
    response.headers.push_back(h);
  }
  return response;
}

void respond(const PushApiCounters& counters, const HttpExchangePtr& exchange,
             HttpResponse response) {
  if (response.status >= 400 && counters.errors != nullptr) {
    counters.errors->add();
  }
  if (response.status == 401 && counters.unauthorized != nullptr) {
    counters.unauthorized->add();
  }
  if (response.status == 403 && counters.forbidden != nullptr) {
    counters.forbidden->add();
  }
  if (response.status == 429 && counters.rate_limited != nullptr) {
    counters.rate_limited->add();
  }
  exchange->respond(std::move(response));
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

// ---- JSON input ----------------------------------------------------------------------------

std::string_view view(const rapidjson::Value& v) {
  return std::string_view(v.GetString(), v.GetStringLength());
}

// Deep input never reaches a recursive parse (see parseJson), but Value::Accept (used to
// re-serialize "data") recurses, so nesting is bounded before anything is serialized.
// What a walk over a parsed document found wrong, if anything.
enum class TreeFault : uint8_t { kNone, kTooDeep, kBadString };

// One walk over a parsed document, iterative whatever its depth: nesting beyond `limit`, and,
// when `strings` is set, strings (member names included) that are not valid UTF-8. The body was
// valid UTF-8, so such a string can only come from a \u escape naming a lone low surrogate
// (\udc00..\udfff), which rapidjson 1.1 decodes into an invalid sequence instead of refusing.
TreeFault checkTree(const rapidjson::Value& root, size_t limit, bool strings) {
  std::vector<std::pair<const rapidjson::Value*, size_t>> stack;
  stack.emplace_back(&root, 1);
  while (!stack.empty()) {
    const auto [value, depth] = stack.back();
    stack.pop_back();
    if (value->IsString()) {
      if (strings && !isValidUtf8(view(*value))) {
        return TreeFault::kBadString;
      }
      continue;
    }
    if (!value->IsArray() && !value->IsObject()) {
      continue;
    }
    if (depth > limit) {
      return TreeFault::kTooDeep;
    }
    if (value->IsArray()) {
      for (const auto& e : value->GetArray()) {
        stack.emplace_back(&e, depth + 1);
      }
    } else {
      for (const auto& m : value->GetObject()) {
        if (strings && !isValidUtf8(view(m.name))) {
          return TreeFault::kBadString;
        }
        stack.emplace_back(&m.value, depth + 1);
      }
    }
  }
  return TreeFault::kNone;
}

constexpr const char* kLoneSurrogate =
    "a \\u escape names a lone UTF-16 surrogate: json strings must be Unicode text";

// Whether the array / object nesting in `json` stays within `limit`, counting brackets outside
// strings. Exact for well-formed JSON. For malformed input the count is at least the depth a
// parser reaches before its error: up to that point the input is a valid prefix, where both
// agree on what is a string.
bool nestingWithin(std::string_view json, size_t limit) {
  // Depth never exceeds the number of opening brackets: a count that compiles to a tight loop
  // and settles the usual body (a few brackets) without the exact scan.
  size_t opens = 0;
  for (const char c : json) {
    opens += static_cast<size_t>(c == '[') + static_cast<size_t>(c == '{');
  }
  if (opens <= limit) {
    return true;
  }
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) {
        return false;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

ApiResult<void> parseJson(std::string_view body, size_t max_depth, rapidjson::Document& doc) {
  // Fast path, which every well-formed body takes: the encoding is checked in one pass over the
  // whole body and the nesting bounded before parsing, so rapidjson's recursive parser (faster
  // than the iterative one) needs no encoding check of its own and cannot recurse deeper than
  // max_depth. Its acceptance is the strict parse's: both refuse raw control characters and bad
  // \u escapes; only the encoding check moved.
  const bool escapes = body.find("\\u") != std::string_view::npos;
  if (isValidUtf8(body) && nestingWithin(body, max_depth)) {
    doc.Parse(body.data(), body.size());
    if (!doc.HasParseError()) {
      if (escapes && checkTree(doc, max_depth, true) == TreeFault::kBadString) {
        return badRequest(kLoneSurrogate);
      }
      if (!doc.IsObject()) {
        return badRequest("body must be a json object");
      }
      return {};
    }
  }
  // Anything else is refused: the strict, iterative parse names the first error and its offset.
  doc.Parse<kParseFlags>(body.data(), body.size());
  if (doc.HasParseError()) {
    return badRequest("invalid json at offset " + std::to_string(doc.GetErrorOffset()) + ": " +
                      rapidjson::GetParseError_En(doc.GetParseError()));
  }
  switch (checkTree(doc, max_depth, escapes)) {
    case TreeFault::kTooDeep:
      return badRequest("json nesting deeper than " + std::to_string(max_depth));
    case TreeFault::kBadString:
      return badRequest(kLoneSurrogate);
    case TreeFault::kNone:
      break;
  }
  if (!doc.IsObject()) {
    return badRequest("body must be a json object");
  }
  return {};
}

std::string memberName(const rapidjson::Value::ConstMemberIterator& it) {
  return std::string(it->name.GetString(), it->name.GetStringLength());
}

const rapidjson::Value* member(const rapidjson::Value& object, std::string_view name) {
  const auto it = object.FindMember(
      rapidjson::Value(rapidjson::StringRef(name.data(), name.size())));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

ApiResult<void> rejectUnknownFields(const rapidjson::Value& object,
                                    std::initializer_list<std::string_view> known,
                                    const std::string& where) {
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    bool found = false;
    for (const auto k : known) {
      found = found || view(it->name) == k;
    }
    if (!found) {
      return badRequest(where + "unknown field " + quoted(view(it->name)));
    }
  }
  return {};
}

ApiResult<std::optional<std::string>> optionalString(const rapidjson::Value& object,
                                                     std::string_view name,
                                                     const std::string& where) {
  const rapidjson::Value* v = member(object, name);
  if (v == nullptr) {
    return std::optional<std::string>();
  }
  if (!v->IsString()) {
    return badRequest(where + quoted(name) + " must be a string");
  }
  return std::optional<std::string>(std::string(view(*v)));
}

// Order-preserving de-duplication: a user named twice must not get the message twice.
std::vector<std::string> dedup(std::vector<std::string> ids) {
  if (ids.size() <= 8) {  // the usual few ids: pairwise comparison beats building a hash set
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (auto& id : ids) {
      if (std::find(out.begin(), out.end(), id) == out.end()) {
        out.push_back(std::move(id));
      }
    }
    return out;
  }
  std::unordered_set<std::string> seen;
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (auto& id : ids) {
    if (seen.insert(id).second) {
      out.push_back(std::move(id));
    }
  }
  return out;
}

std::optional<uint64_t> parseSessionId(std::string_view s) {
  uint64_t id = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), id);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || id == 0) {
    return std::nullopt;
  }
  return id;
}

// A non-empty array of non-empty strings, at most `max` long. Session ids may also be JSON
// integers; they are normalized to their decimal string.
ApiResult<std::vector<std::string>> idList(const rapidjson::Value& v, std::string_view label,
                                           size_t max, bool session_ids,
                                           const std::string& where) {
  const std::string field = where + quoted(label);
  if (!v.IsArray()) {
    return badRequest(field + " must be an array of strings");
  }
  if (v.Empty()) {
    return badRequest(field + " is empty");
  }
  if (v.Size() > max) {
    return apiFail(Errc::kMessageTooBig, field + " has " + std::to_string(v.Size()) +
                                             " entries, more than max_targets " +
                                             std::to_string(max));
  }
  std::vector<std::string> ids;
  ids.reserve(v.Size());
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    const auto& e = v[i];
    const std::string at = field + "[" + std::to_string(i) + "]";
    if (session_ids && e.IsUint64()) {
      if (e.GetUint64() == 0) {
        return badRequest(at + " is not a session id");
      }
      ids.push_back(std::to_string(e.GetUint64()));
      continue;
    }
    if (!e.IsString()) {
      return badRequest(at + " must be a string");
    }
    if (e.GetStringLength() == 0) {
      return badRequest(at + " is empty");
    }
    if (session_ids && !parseSessionId(view(e))) {
      return badRequest(at + " is not a session id (a decimal number)");
    }
    ids.emplace_back(view(e));
  }
  return dedup(std::move(ids));
}

// ---- Push objects --------------------------------------------------------------------------

constexpr uint64_t kMaxWaitAckMs = 60'000;

struct PushItem {
  std::string app;
  PushTarget target;
  Message message;
};

ApiResult<PushTarget> parseTarget(const rapidjson::Value& object, size_t max_targets,
                                  const std::string& where) {
  const rapidjson::Value* to = member(object, "to");
  if (to == nullptr) {
    return badRequest(where + "missing field \"to\"");
  }
  PushTarget target;
  if (to->IsString()) {
    if (view(*to) != "all") {
      return badRequest(where + "unknown target kind " + quoted(view(*to)) +
                        " (expected \"all\" or an object)");
    }
    target.kind = TargetKind::kAll;
    return target;
  }
  if (!to->IsObject()) {
    return badRequest(where + "\"to\" must be \"all\" or an object");
  }
  if (to->MemberCount() != 1) {
    return badRequest(where +
                      "\"to\" must have exactly one of \"users\", \"sessions\", \"room\", "
                      "\"rooms\"");
  }
  const auto it = to->MemberBegin();
  const std::string kind = memberName(it);
  if (kind == "room") {
    if (!it->value.IsString()) {
      return badRequest(where + "\"to.room\" must be a string");
    }
    if (it->value.GetStringLength() == 0) {
      return badRequest(where + "\"to.room\" is empty");
    }
    target.kind = TargetKind::kRoom;
    target.ids.emplace_back(view(it->value));
    return target;
  }
  if (kind == "users") {
    target.kind = TargetKind::kUser;
  } else if (kind == "sessions") {
    target.kind = TargetKind::kSession;
  } else if (kind == "rooms") {
    target.kind = TargetKind::kRoom;
  } else {
    return badRequest(where + "unknown target kind " + quoted(kind) +
                      " (expected users, sessions, room or rooms)");
  }
  auto ids = idList(it->value, "to." + kind, max_targets, target.kind == TargetKind::kSession,
                    where);
  if (!ids) {
    return tl::unexpected<ApiError>(std::move(ids.error()));
  }
  target.ids = std::move(*ids);
  return target;
}

void serializeCompact(const rapidjson::Value& value, std::string& out) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  out.assign(buffer.GetString(), buffer.GetSize());
}

ApiResult<PushItem> parsePushObject(const rapidjson::Value& object, const std::string& app,
                                    const PushApiOptions& options, const std::string& where,
                                    int64_t now_ms) {
  if (!object.IsObject()) {
    return badRequest(where + "a push must be a json object");
  }
  if (auto ok = rejectUnknownFields(
          object,
          {"to", "data", "data_base64", "event", "namespace", "app", "id", "reliable", "wait_ack"},
          where);
      !ok) {
    return tl::unexpected<ApiError>(std::move(ok.error()));
  }
  PushItem item;
  item.app = app;
  auto item_app = optionalString(object, "app", where);
  if (!item_app) {
    return tl::unexpected<ApiError>(std::move(item_app.error()));
  }
  if (*item_app) {
    if ((*item_app)->empty()) {
      return badRequest(where + "\"app\" is empty");
    }
    item.app = std::move(**item_app);
  }
  auto target = parseTarget(object, options.max_targets, where);
  if (!target) {
    return tl::unexpected<ApiError>(std::move(target.error()));
  }
  item.target = std::move(*target);

  Message& msg = item.message;
  msg.kind = MessageKind::kData;
  msg.app = item.app;
  msg.to_kind = item.target.kind;
  if (item.target.ids.size() == 1) {
    msg.to = item.target.ids.front();
  }
  msg.ts_ms = now_ms;

  const rapidjson::Value* data = member(object, "data");
  const rapidjson::Value* data64 = member(object, "data_base64");
  if (data != nullptr && data64 != nullptr) {
    return badRequest(where + "give either \"data\" or \"data_base64\", not both");
  }
  if (data == nullptr && data64 == nullptr) {
    return badRequest(where + "missing field \"data\" (or \"data_base64\")");
  }
  if (data != nullptr) {
    msg.type = PayloadType::kText;
    if (data->IsString()) {
      msg.payload = makeBytes(std::string(view(*data)));
    } else {
      std::string text;
      serializeCompact(*data, text);
      msg.payload = makeBytes(std::move(text));
    }
  } else {
    if (!data64->IsString()) {
      return badRequest(where + "\"data_base64\" must be a string");
    }
    auto bytes = decodeBase64(view(*data64));
    if (!bytes) {
      return badRequest(where + "\"data_base64\" " + bytes.error().message);
    }
    msg.type = PayloadType::kBinary;
    msg.payload = makeBytes(std::move(*bytes));
  }

  auto event = optionalString(object, "event", where);
  if (!event) {
    return tl::unexpected<ApiError>(std::move(event.error()));
  }
  if (*event) {
    msg.event = std::move(**event);
  }
  auto id = optionalString(object, "id", where);
  if (!id) {
    return tl::unexpected<ApiError>(std::move(id.error()));
  }
  if (*id) {
    msg.id = std::move(**id);
  }
  // Socket.IO namespace ("/chat"); other protocols ignore it. "/" is the default.
  auto nsp = optionalString(object, "namespace", where);
  if (!nsp) {
    return tl::unexpected<ApiError>(std::move(nsp.error()));
  }
  if (*nsp && **nsp != "/") {
    if ((*nsp)->empty() || (**nsp)[0] != '/' || (*nsp)->size() > 256) {
      return badRequest(where + "\"namespace\" must start with \"/\" (at most 256 bytes)");
    }
    msg.meta.emplace_back("nsp", std::move(**nsp));
  }
  // Reliable delivery (docs/reliability.md): retransmitted until acked; wait_ack (ms) holds the
  // answer until one device of each user acked, or the time ran out.
  if (const rapidjson::Value* reliable = member(object, "reliable")) {
    if (!reliable->IsBool()) {
      return badRequest(where + "\"reliable\" must be true or false");
    }
    msg.reliable = reliable->GetBool();
  }
  if (const rapidjson::Value* wait = member(object, "wait_ack")) {
    if (!wait->IsUint64() || wait->GetUint64() > kMaxWaitAckMs) {
      return badRequest(where + "\"wait_ack\" must be milliseconds from 0 to " +
                        std::to_string(kMaxWaitAckMs));
    }
    if (item.target.kind != TargetKind::kUser && wait->GetUint64() > 0) {
      return badRequest(where + "\"wait_ack\" needs a user target");
    }
    item.target.wait_ack = std::chrono::milliseconds(wait->GetUint64());
    if (wait->GetUint64() > 0) {
      msg.reliable = true;
    }
  }
  return item;
}

void writePushResult(JsonOut& out, const PushResult& result, bool waited) {
  out.key("sessions");
  out.u64(result.sessions);
  out.strings("offline", result.offline);
  out.strings("offline_stored", result.offline_stored);
  out.key("dropped");
  out.u64(result.dropped);
  if (waited) {
    out.strings("acked", result.acked);
    out.strings("unacked", result.unacked);
  }
  if (!result.positions.empty()) {
    out.key("seq");
    out.beginArray();
    for (const PushResult::Position& p : result.positions) {
      out.beginObject();
      out.key("target");
      out.str(p.target);
      out.key("stream");
      out.str(p.stream);
      out.key("epoch");
      char hex[16];
      const auto end = std::to_chars(hex, hex + sizeof(hex), p.epoch, 16).ptr;
      out.str(std::string_view(hex, static_cast<size_t>(end - hex)));
      out.key("seq");
      out.u64(p.seq);
      out.endObject();
    }
    out.endArray();
  }
}

// ---- Routing -------------------------------------------------------------------------------

enum class Route { kPush, kUser, kUserSessions, kRoomMembers, kStats };

struct RouteMatch {
  Route route = Route::kPush;
  std::string id;  // percent-decoded {uid} or {room}
};

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  if (path.empty() || path.front() != '/') {
    return segments;
  }
  path.remove_prefix(1);
  while (true) {
    const size_t slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      break;
    }
    path.remove_prefix(slash + 1);
  }
  return segments;
}

// Literal segments are compared as sent; only {uid} and {room} are percent-decoded, so an id
// may contain '/' (as %2F). Empty ids never match.
std::optional<RouteMatch> matchRoute(std::string_view path) {
  const auto s = splitPath(path);
  if (s.size() < 2 || s[0] != "v1") {
    return std::nullopt;
  }
  if (s.size() == 2 && s[1] == "push") {
    return RouteMatch{Route::kPush, {}};
  }
  if (s.size() == 2 && s[1] == "stats") {
    return RouteMatch{Route::kStats, {}};
  }
  if (s.size() < 3 || s[2].empty()) {
    return std::nullopt;
  }
  std::string id = percentDecode(s[2], false);
  if (s[1] == "users" && s.size() == 3) {
    return RouteMatch{Route::kUser, std::move(id)};
  }
  if (s[1] == "users" && s.size() == 4 && s[3] == "sessions") {
    return RouteMatch{Route::kUserSessions, std::move(id)};
  }
  if (s[1] == "rooms" && s.size() == 4 && s[3] == "members") {
    return RouteMatch{Route::kRoomMembers, std::move(id)};
  }
  return std::nullopt;
}

std::string_view allowedMethods(Route route) {
  switch (route) {
    case Route::kPush: return "POST";
    case Route::kUser: return "GET";
    case Route::kUserSessions: return "DELETE";
    case Route::kRoomMembers: return "GET, POST, DELETE";
    case Route::kStats: return "GET";
  }
  return "";
}

// The one table from endpoint to scope (docs/http-api.md, "Scopes"). Reading is `read`,
// changing what clients see (messages, room membership) is `push`, closing sessions is `admin`.
Scope scopeFor(Route route, std::string_view method) {
  switch (route) {
    case Route::kPush: return Scope::kPush;
    case Route::kUser: return Scope::kRead;
    case Route::kUserSessions: return Scope::kAdmin;
    case Route::kRoomMembers: return method == "GET" ? Scope::kRead : Scope::kPush;
    case Route::kStats: return Scope::kRead;
  }
  return Scope::kAdmin;
}

// The route as documented, for reasons ("DELETE /v1/users/{uid}/sessions").
std::string_view routeTemplate(Route route) {
  switch (route) {
    case Route::kPush: return "/v1/push";
    case Route::kUser: return "/v1/users/{uid}";
    case Route::kUserSessions: return "/v1/users/{uid}/sessions";
    case Route::kRoomMembers: return "/v1/rooms/{room}/members";
    case Route::kStats: return "/v1/stats";
  }
  return "";
}

bool methodAllowed(Route route, std::string_view method) {
  std::string_view allowed = allowedMethods(route);
  while (!allowed.empty()) {
    const size_t comma = allowed.find(',');
    if (http_detail::trim(allowed.substr(0, comma)) == method) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    allowed.remove_prefix(comma + 1);
  }
  return false;
}

// Every value of a repeated query parameter (HttpRequest::queryParam returns the first only).
std::vector<std::string> queryParams(std::string_view query, std::string_view name) {
  std::vector<std::string> values;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (percentDecode(pair.substr(0, eq), true) == name) {
      values.push_back(eq == std::string_view::npos ? std::string()
                                                    : percentDecode(pair.substr(eq + 1), true));
    }
  }
  return values;
}

ApiResult<void> requireJsonContentType(const HttpRequest& request) {
  const auto header = request.header("content-type");
  if (!header) {
    return tl::unexpected<ApiError>(
        ApiError{415, Errc::kBadRequest, "missing content-type (send application/json)", {}});
  }
  std::string_view rest = *header;
  const size_t semi = rest.find(';');
  const std::string_view media = http_detail::trim(rest.substr(0, semi));
  if (!http_detail::iequals(media, "application/json")) {
    return tl::unexpected<ApiError>(ApiError{
        415, Errc::kBadRequest,
        "content-type must be application/json, got " + quoted(media), {}});
  }
  rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  while (!rest.empty()) {
    const size_t next = rest.find(';');
    const std::string_view param = http_detail::trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos ||
        !http_detail::iequals(http_detail::trim(param.substr(0, eq)), "charset")) {
      continue;
    }
    std::string_view charset = http_detail::trim(param.substr(eq + 1));
    if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') {
      charset = charset.substr(1, charset.size() - 2);
    }
    if (!http_detail::iequals(charset, "utf-8") && !http_detail::iequals(charset, "utf8")) {
      return tl::unexpected<ApiError>(ApiError{
          415, Errc::kBadRequest, "charset must be utf-8, got " + quoted(charset), {}});
    }
  }
  return {};
}

// ---- One request ---------------------------------------------------------------------------

// Per-request context; lives on the handler's stack except where a callback captures pieces.
// A request body's parsed JSON. Its first 4 KiB of values live in the object itself, on the
// handler's stack, so a typical push (a few hundred bytes) costs no 64 KiB heap chunk from
// rapidjson's pool; larger bodies spill into heap chunks as before.
class JsonBody {
 public:
  JsonBody() : pool_(buffer_, sizeof(buffer_)), doc_(&pool_) {}
  JsonBody(const JsonBody&) = delete;
  JsonBody& operator=(const JsonBody&) = delete;
  rapidjson::Document& doc() { return doc_; }

 private:
  alignas(16) char buffer_[4096];
  rapidjson::MemoryPoolAllocator<> pool_;
  rapidjson::Document doc_;
};

class Request {
 public:
  Request(const PushApiOptions& options, const PushApiCounters& counters,
          const std::vector<ApiKey>& keys, const HttpExchangePtr& exchange)
      : options_(options), counters_(counters), keys_(keys), exchange_(exchange),
        request_(exchange->request()) {}

  void run();

 private:
  // The key the request authenticated with; nullptr for an anonymous request.
  ApiResult<const ApiKey*> authenticate() const;
  ApiResult<void> checkScope(const RouteMatch& match) const;
  ApiResult<void> checkApp(const std::string& app) const;
  // Takes `n` tokens from the key's bucket (nothing for keys without a limit).
  ApiResult<void> takeTokens(int64_t n) const;
  // The rest of a batch's cost (one token per message; run() took the first).
  ApiResult<void> takeBatchTokens(int64_t messages) const;
  ApiResult<std::string> queryApp() const;
  ApiResult<void> parseBody(rapidjson::Document& doc) const;
  ApiResult<void> dispatch(const RouteMatch& match);
  ApiResult<void> push(const std::string& app);
  ApiResult<void> getUser(const std::string& app, const std::string& user);
  ApiResult<void> kick(const std::string& app, const std::string& user);
  ApiResult<void> roomMembers(const std::string& app, const std::string& room);
  ApiResult<void> stats(const std::string& app);
  ApiResult<std::pair<std::string, std::vector<std::string>>> memberBody(
      const std::string& app);

  void fail(const ApiError& error) const { respond(counters_, exchange_, errorResponse(error)); }

  const PushApiOptions& options_;
  const PushApiCounters& counters_;
  const std::vector<ApiKey>& keys_;
  const HttpExchangePtr& exchange_;
  const HttpRequest& request_;
  const ApiKey* key_ = nullptr;
};

void Request::run() {
  if (counters_.requests != nullptr) {
    counters_.requests->add();
  }
  if (auto key = authenticate(); !key) {
    fail(key.error());
    return;
  } else {
    key_ = *key;
  }
  const auto match = matchRoute(request_.path);
  if (!match) {
    fail(ApiError{404, Errc::kNotFound,
                  "no route for " + request_.method + " " + quoted(request_.path), {}});
    return;
  }
  if (!methodAllowed(match->route, request_.method)) {
    const std::string_view allow = allowedMethods(match->route);
    fail(ApiError{405, Errc::kBadRequest,
                  "method " + request_.method + " not allowed here (allowed: " +
                      std::string(allow) + ")",
                  {{"allow", std::string(allow)}}});
    return;
  }
  if (!isValidUtf8(match->id)) {
    fail(badRequest("path segment is not valid utf-8 after percent-decoding").value());
    return;
  }
  if (auto ok = checkScope(*match); !ok) {
    fail(ok.error());
    return;
  }
  // One token per request before the body is read, so a key sending garbage is limited too. A
  // batch push takes the rest of its cost once it has been validated (push()).
  if (auto ok = takeTokens(1); !ok) {
    fail(ok.error());
    return;
  }
  if (auto ok = dispatch(*match); !ok) {
    fail(ok.error());
  }
}

ApiResult<const ApiKey*> Request::authenticate() const {
  const auto reject = [](std::string reason) {
    return tl::unexpected<ApiError>(ApiError{401, Errc::kUnauthenticated, std::move(reason),
                                             {{"www-authenticate", std::string(kRealmHeader)}}});
  };
  std::vector<std::string_view> presented;
  bool other_scheme = false;
  if (const auto auth = request_.header("authorization")) {
    const std::string_view value = http_detail::trim(*auth);
    const size_t space = value.find(' ');
    if (http_detail::iequals(value.substr(0, space), "bearer")) {
      // "Bearer" with no token counts as a wrong key, not as a missing one.
      presented.push_back(space == std::string_view::npos
                              ? std::string_view()
                              : http_detail::trim(value.substr(space + 1)));
    } else {
      other_scheme = true;
    }
  }
  if (const auto key = request_.header("x-api-key")) {
    presented.push_back(http_detail::trim(*key));
  }
  if (presented.empty()) {
    if (options_.allow_anonymous) {
      return nullptr;
    }
    return reject(other_scheme ? "authorization scheme must be Bearer"
                               : "missing api key (send Authorization: Bearer <key> or "
                                 "X-API-Key: <key>)");
  }
  if (keys_.empty()) {
    return nullptr;  // anonymous-only configuration: credentials are not checked
  }
  // Every key is compared with every credential, so timing does not reveal which one came
  // close. When both headers carry a valid key, the Authorization one wins.
  const ApiKey* found = nullptr;
  for (const auto candidate : presented) {
    for (const auto& key : keys_) {
      const bool equal = constantTimeEquals(candidate, key.key);
      if (equal && found == nullptr) {
        found = &key;
      }
    }
  }
  if (found == nullptr) {
    return reject("invalid api key");
  }
  return found;
}

ApiResult<void> Request::checkScope(const RouteMatch& match) const {
  const Scope needed = scopeFor(match.route, request_.method);
  if (key_ == nullptr || allows(key_->scopes, needed)) {
    return {};
  }
  const std::string_view alternative = needed == Scope::kAdmin ? "" : " or admin";
  return apiFail(Errc::kPermissionDenied,
                 "key " + quoted(key_->name) + " lacks scope " + quoted(scopeName(needed)) +
                     " (" + request_.method + " " + std::string(routeTemplate(match.route)) +
                     " needs " + std::string(scopeName(needed)) + std::string(alternative) +
                     ")");
}

ApiResult<void> Request::checkApp(const std::string& app) const {
  if (key_ == nullptr || key_->apps.empty()) {
    return {};
  }
  for (const auto& allowed : key_->apps) {
    if (allowed == app) {
      return {};
    }
  }
  return apiFail(Errc::kPermissionDenied,
                 "key " + quoted(key_->name) + " may not use app " + quoted(app));
}

ApiResult<void> Request::takeTokens(int64_t n) const {
  if (key_ == nullptr || !key_->limiter) {
    return {};
  }
  const RateLimiter::Take take = key_->limiter->tryTake(n, exchange_->dispatcher().now());
  if (take.taken) {
    return {};
  }
  const int64_t seconds = retryAfterSeconds(take.wait);
  ApiError error{429, Errc::kResourceExhausted,
                 "rate limit of key " + quoted(key_->name) + " exceeded (" +
                     key_->limiter->limit().describe() + "); retry in " + std::to_string(seconds) +
                     "s",
                 {{"retry-after", std::to_string(seconds)}}, seconds};
  return tl::unexpected<ApiError>(std::move(error));
}

ApiResult<void> Request::takeBatchTokens(int64_t messages) const {
  if (key_ == nullptr || !key_->limiter || messages <= 1) {
    return {};
  }
  RateLimiter& limiter = *key_->limiter;
  if (messages > limiter.limit().burst) {
    return apiFail(Errc::kMessageTooBig,
                   "batch of " + std::to_string(messages) + " messages is more than the burst " +
                       std::to_string(limiter.limit().burst) + " of key " + quoted(key_->name) +
                       " (each message costs one request of its rate limit)");
  }
  if (limiter.tryTake(messages - 1, exchange_->dispatcher().now()).taken) {
    return {};
  }
  // Refused: the request costs nothing, and Retry-After is the wait for the whole batch.
  limiter.giveBack(1);
  return takeTokens(messages);
}

ApiResult<std::string> Request::queryApp() const {
  auto app = request_.queryParam("app");
  if (!app) {
    return options_.default_app;
  }
  if (app->empty()) {
    return badRequest("query parameter app is empty");
  }
  if (!isValidUtf8(*app)) {
    return badRequest("query parameter app is not valid utf-8");
  }
  return std::move(*app);
}

ApiResult<void> Request::parseBody(rapidjson::Document& doc) const {
  if (auto ok = requireJsonContentType(request_); !ok) {
    return ok;
  }
  return parseJson(request_.body, options_.max_json_depth, doc);
}

ApiResult<void> Request::dispatch(const RouteMatch& match) {
  auto app = queryApp();
  if (!app) {
    return tl::unexpected<ApiError>(std::move(app.error()));
  }
  // Routes whose app can only come from the query: check it before doing anything. Push and
  // membership changes may name the app in the body; they check once it is parsed.
  const bool app_in_body = match.route == Route::kPush ||
                           (match.route == Route::kRoomMembers && request_.method != "GET");
  if (!app_in_body) {
    if (auto ok = checkApp(*app); !ok) {
      return ok;
    }
  }
  switch (match.route) {
    case Route::kPush: return push(*app);
    case Route::kUser: return getUser(*app, match.id);
    case Route::kUserSessions: return kick(*app, match.id);
    case Route::kRoomMembers: return roomMembers(*app, match.id);
    case Route::kStats: return stats(*app);
  }
  return apiFail(Errc::kInternal, "unhandled route");
}

ApiResult<void> Request::push(const std::string& query_app) {
  JsonBody body;
  rapidjson::Document& doc = body.doc();
  if (auto ok = parseBody(doc); !ok) {
    return ok;
  }
  const int64_t now_ms = exchange_->dispatcher().wallMs();
  Hub& hub = exchange_->hub();
  const rapidjson::Value* messages = member(doc, "messages");
  if (messages == nullptr) {
    auto item = parsePushObject(doc, query_app, options_, "", now_ms);
    if (!item) {
      return tl::unexpected<ApiError>(std::move(item.error()));
    }
    if (auto ok = checkApp(item->app); !ok) {
      return ok;
    }
    if (counters_.messages != nullptr) {
      counters_.messages->add();
    }
    const bool waited = item->target.wait_ack.count() > 0;
    hub.push(item->app, std::move(item->target), std::move(item->message),
             [exchange = exchange_, counters = counters_, waited](PushResult result) {
               JsonOut out;
               out.beginObject();
               writePushResult(out, result, waited);
               out.endObject();
               respond(counters, exchange, HttpResponse::json(200, out.take()));
             });
    return {};
  }

  if (auto ok = rejectUnknownFields(doc, {"messages", "app"}, ""); !ok) {
    return ok;
  }
  auto batch_app = optionalString(doc, "app", "");
  if (!batch_app) {
    return tl::unexpected<ApiError>(std::move(batch_app.error()));
  }
  if (*batch_app && (*batch_app)->empty()) {
    return badRequest("\"app\" is empty");
  }
  const std::string app = *batch_app ? **batch_app : query_app;
  if (!messages->IsArray()) {
    return badRequest("\"messages\" must be an array");
  }
  if (messages->Empty()) {
    return badRequest("\"messages\" is empty");
  }
  if (messages->Size() > options_.max_batch) {
    return apiFail(Errc::kMessageTooBig,
                   "\"messages\" has " + std::to_string(messages->Size()) +
                       " entries, more than max_batch " + std::to_string(options_.max_batch));
  }
  // Validate the whole batch first: a bad entry must not leave the earlier ones half-sent.
  std::vector<PushItem> items;
  items.reserve(messages->Size());
  for (rapidjson::SizeType i = 0; i < messages->Size(); ++i) {
    auto item = parsePushObject((*messages)[i], app, options_,
                                "messages[" + std::to_string(i) + "]: ", now_ms);
    if (!item) {
      return tl::unexpected<ApiError>(std::move(item.error()));
    }
    items.push_back(std::move(*item));
  }
  for (const auto& item : items) {
    if (auto ok = checkApp(item.app); !ok) {
      return ok;
    }
  }
  if (auto ok = takeBatchTokens(static_cast<int64_t>(items.size())); !ok) {
    return ok;
  }

  // Completion callbacks run on this worker thread, one at a time: no locking needed.
  struct Gather {
    HttpExchangePtr exchange;
    PushApiCounters counters;
    std::vector<PushResult> results;
    size_t remaining;
    std::vector<bool> waited;
  };
  auto gather = std::make_shared<Gather>(
      Gather{exchange_, counters_, std::vector<PushResult>(items.size()), items.size(), {}});
  for (const PushItem& item : items) {
    gather->waited.push_back(item.target.wait_ack.count() > 0);
  }
  if (counters_.messages != nullptr) {
    counters_.messages->add(items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) {
    hub.push(items[i].app, std::move(items[i].target), std::move(items[i].message),
             [gather, i](PushResult result) {
               if (gather->remaining == 0) {
                 return;  // a hub that completes twice is a bug; answer once anyway
               }
               gather->results[i] = std::move(result);
               if (--gather->remaining != 0) {
                 return;
               }
               uint64_t total = 0;
               JsonOut out;
               out.beginObject();
               out.key("results");
               out.beginArray();
               for (size_t k = 0; k < gather->results.size(); ++k) {
                 const PushResult& r = gather->results[k];
                 out.beginObject();
                 writePushResult(out, r, gather->waited[k]);
                 out.endObject();
                 total += r.sessions;
               }
               out.endArray();
               out.key("sessions");
               out.u64(total);
               out.endObject();
               respond(gather->counters, gather->exchange, HttpResponse::json(200, out.take()));
             });
  }
  return {};
}

ApiResult<void> Request::getUser(const std::string& app, const std::string& user) {
  const std::vector<SessionInfo> sessions = exchange_->hub().userSessions(app, user);
  JsonOut out;
  out.beginObject();
  out.key("user");
  out.str(user);
  out.key("online");
  out.boolean(!sessions.empty());
  out.key("sessions");
  out.beginArray();
  for (const auto& s : sessions) {
    out.beginObject();
    out.key("id");
    out.str(std::to_string(s.id));  // 64-bit: a JSON number would lose precision in JS
    out.key("device");
    out.str(s.device);
    out.key("protocol");
    out.str(s.protocol);
    out.key("listener");
    out.str(s.listener);
    out.key("peer");
    out.str(s.peer);
    out.key("connected_at");
    out.i64(s.connected_at_ms);
    out.strings("rooms", s.rooms);
    out.endObject();
  }
  out.endArray();
  out.endObject();
  respond(counters_, exchange_, HttpResponse::json(200, out.take()));
  return {};
}

ApiResult<void> Request::kick(const std::string& app, const std::string& user) {
  uint64_t session_id = 0;
  if (auto sid = request_.queryParam("session")) {
    const auto parsed = parseSessionId(*sid);
    if (!parsed) {
      return badRequest("query parameter session is not a session id (a decimal number)");
    }
    session_id = *parsed;
  }
  std::string reason = request_.queryParam("reason").value_or("");
  if (!isValidUtf8(reason)) {
    return badRequest("query parameter reason is not valid utf-8");
  }
  exchange_->hub().kick(
      app, user, session_id, std::move(reason),
      [exchange = exchange_, counters = counters_, session_id, user](uint64_t kicked) {
        if (session_id != 0 && kicked == 0) {
          respond(counters, exchange,
                  errorResponse(ApiError{404, Errc::kNotFound,
                                         "no session " + std::to_string(session_id) +
                                             " for user " + quoted(user),
                                         {}}));
          return;
        }
        JsonOut out;
        out.beginObject();
        out.key("kicked");
        out.u64(kicked);
        out.endObject();
        respond(counters, exchange, HttpResponse::json(200, out.take()));
      });
  return {};
}

// The user list of a membership change, from {"users":[...]} (POST, DELETE) or from repeated
// ?user= parameters (DELETE without a body). Returns the app to use and the users.
ApiResult<std::pair<std::string, std::vector<std::string>>> Request::memberBody(
    const std::string& app) {
  const bool has_body = !request_.body.empty();
  std::vector<std::string> from_query = queryParams(request_.query, "user");
  if (request_.method == "DELETE" && !has_body) {
    if (from_query.empty()) {
      return badRequest("missing users: send {\"users\":[...]} or ?user=<id>");
    }
    if (from_query.size() > options_.max_targets) {
      return apiFail(Errc::kMessageTooBig, "more than max_targets " +
                                               std::to_string(options_.max_targets) + " users");
    }
    for (const auto& u : from_query) {
      if (u.empty()) {
        return badRequest("query parameter user is empty");
      }
      if (!isValidUtf8(u)) {
        return badRequest("query parameter user is not valid utf-8");
      }
    }
    return std::make_pair(app, dedup(std::move(from_query)));
  }
  if (!from_query.empty()) {
    return badRequest("give users in the body or in ?user=, not both");
  }
  JsonBody body;
  rapidjson::Document& doc = body.doc();
  if (auto ok = parseBody(doc); !ok) {
    return tl::unexpected<ApiError>(std::move(ok.error()));
  }
  if (auto ok = rejectUnknownFields(doc, {"users", "app"}, ""); !ok) {
    return tl::unexpected<ApiError>(std::move(ok.error()));
  }
  auto body_app = optionalString(doc, "app", "");
  if (!body_app) {
    return tl::unexpected<ApiError>(std::move(body_app.error()));
  }
  if (*body_app && (*body_app)->empty()) {
    return badRequest("\"app\" is empty");
  }
  const rapidjson::Value* users = member(doc, "users");
  if (users == nullptr) {
    return badRequest("missing field \"users\"");
  }
  auto ids = idList(*users, "users", options_.max_targets, false, "");
  if (!ids) {
    return tl::unexpected<ApiError>(std::move(ids.error()));
  }
  return std::make_pair(*body_app ? **body_app : app, std::move(*ids));
}

std::vector<std::string> without(const std::vector<std::string>& all,
                                 const std::vector<std::string>& remove) {
  const std::unordered_set<std::string> gone(remove.begin(), remove.end());
  std::vector<std::string> out;
  for (const auto& u : all) {
    if (gone.count(u) == 0) {
      out.push_back(u);
    }
  }
  return out;
}

ApiResult<void> Request::roomMembers(const std::string& app, const std::string& room) {
  Hub& hub = exchange_->hub();
  JsonOut out;
  out.beginObject();
  if (request_.method == "GET") {
    out.key("room");
    out.str(room);
    out.strings("users", hub.roomMembers(app, room));
  } else {
    auto body = memberBody(app);
    if (!body) {
      return tl::unexpected<ApiError>(std::move(body.error()));
    }
    const auto& [member_app, users] = *body;
    if (auto ok = checkApp(member_app); !ok) {
      return ok;
    }
    if (request_.method == "POST") {
      const std::vector<std::string> offline = hub.join(member_app, room, users);
      out.strings("joined", without(users, offline));
      out.strings("offline", offline);
    } else {
      const std::vector<std::string> not_members = hub.leave(member_app, room, users);
      out.strings("left", without(users, not_members));
      out.strings("not_members", not_members);
    }
  }
  out.endObject();
  respond(counters_, exchange_, HttpResponse::json(200, out.take()));
  return {};
}

ApiResult<void> Request::stats(const std::string& app) {
  const HubStats stats = exchange_->hub().stats(app);
  JsonOut out;
  out.beginObject();
  out.key("sessions");
  out.u64(stats.sessions);
  out.key("users");
  out.u64(stats.users);
  out.key("rooms");
  out.u64(stats.rooms);
  out.endObject();
  respond(counters_, exchange_, HttpResponse::json(200, out.take()));
  return {};
}

}  // namespace

// ---- Public --------------------------------------------------------------------------------

PushApi::PushApi(PushApiOptions options, PushApiCounters counters)
    : options_(std::move(options)), counters_(counters) {
  all_keys_.reserve(options_.api_keys.size() + options_.keys.size());
  for (size_t i = 0; i < options_.api_keys.size(); ++i) {
    all_keys_.push_back(
        ApiKey{"api_keys[" + std::to_string(i) + "]", options_.api_keys[i], kAllScopes, {}, {}});
  }
  all_keys_.insert(all_keys_.end(), options_.keys.begin(), options_.keys.end());
}

void PushApi::handle(const HttpExchangePtr& exchange) const {
  Request request(options_, counters_, all_keys_, exchange);
  request.run();
}

std::optional<Scope> parseScope(std::string_view name) {
  if (name == "push") {
    return Scope::kPush;
  }
  if (name == "read") {
    return Scope::kRead;
  }
  if (name == "admin") {
    return Scope::kAdmin;
  }
  return std::nullopt;
}

std::string_view scopeName(Scope scope) {
  switch (scope) {
    case Scope::kPush: return "push";
    case Scope::kRead: return "read";
    case Scope::kAdmin: return "admin";
  }
  return "unknown";
}

Result<std::string> decodeBase64(std::string_view in) {
  auto out = common::base64Decode(in, common::Base64Alphabet::kStandard);
  if (!out) {
    return fail(Errc::kBadRequest, "is not valid base64 (RFC 4648 standard alphabet)");
  }
  return std::move(*out);
}

bool constantTimeEquals(std::string_view presented, std::string_view expected) {
  size_t diff = presented.size() ^ expected.size();
  for (size_t i = 0; i < presented.size(); ++i) {
    const auto e = i < expected.size() ? static_cast<unsigned char>(expected[i]) : 0u;
    diff |= static_cast<unsigned char>(presented[i]) ^ e;
  }
  return diff == 0;
}

}  // namespace imgate::mod::http_push
