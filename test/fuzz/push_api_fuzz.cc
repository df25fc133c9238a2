// SPDX-License-Identifier: Apache-2.0
// Fuzzes the push API's request body (POST /v1/push, then the same bytes as a room membership
// change) through PushApi::handle with an in-memory hub. Checks, for every input:
//  - exactly one answer, whose body is valid JSON (errors included);
//  - differentially against rapidjson's strict parse (encoding validated, iterative): a body the
//    strict parse refuses is a 400 "invalid json at offset N" with the strict parser's offset
//    and message, and a body it accepts never gets that answer, whichever of the module's two
//    parse paths (fast for valid UTF-8 within the depth limit, strict otherwise) ran;
//  - a push the hub received carries valid UTF-8 text.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "modules/common/utf8.h"
#include "modules/proto/http_push/push_api.h"
#include "test/unit/modules/proto/http_push/push_api_fakes.h"

namespace {

using imgate::HttpRequest;
using imgate::HttpResponse;
using imgate::test::http_push::FakeDispatcher;
using imgate::test::http_push::FakeExchange;
using imgate::test::http_push::FakeHub;

void check(bool ok) {
  if (!ok) {
    std::abort();
  }
}

const imgate::mod::http_push::PushApi& api() {
  static const auto* a = [] {
    imgate::mod::http_push::PushApiOptions options;
    options.api_keys = {"fuzz-key"};
    options.max_json_depth = 8;  // small, so the fuzzer reaches both sides of the limit
    return new imgate::mod::http_push::PushApi(options);
  }();
  return *a;
}

struct Answer {
  int status = 0;
  std::string reason;  // "reason" of an error answer
};

Answer call(const std::string& method, const std::string& path, std::string_view body,
            FakeHub& hub) {
  FakeDispatcher dispatcher;
  HttpRequest request;
  request.method = method;
  request.path = path;
  request.target = path;
  request.headers = {{"Authorization", "Bearer fuzz-key"}, {"Content-Type", "application/json"}};
  request.body = std::string(body);
  auto exchange = std::make_shared<FakeExchange>(request, hub, dispatcher);
  api().handle(exchange);
  check(exchange->responses == 1 && exchange->response.has_value());
  rapidjson::Document answer;
  answer.Parse<rapidjson::kParseValidateEncodingFlag>(exchange->response->body.data(),
                                                       exchange->response->body.size());
  check(!answer.HasParseError() && answer.IsObject());
  Answer out;
  out.status = exchange->response->status;
  if (answer.HasMember("reason") && answer["reason"].IsString()) {
    out.reason.assign(answer["reason"].GetString(), answer["reason"].GetStringLength());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  rapidjson::Document strict;
  strict.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(
      body.data(), body.size());
  const std::string expected =
      strict.HasParseError()
          ? "invalid json at offset " + std::to_string(strict.GetErrorOffset()) + ": " +
                rapidjson::GetParseError_En(strict.GetParseError())
          : std::string();

  for (const char* path : {"/v1/push", "/v1/rooms/r1/members"}) {
    FakeHub hub;
    const Answer r = call("POST", path, body, hub);
    if (!expected.empty()) {
      check(r.status == 400 && r.reason == expected);
    } else {
      check(r.reason.rfind("invalid json at offset ", 0) != 0);
    }
    for (const FakeHub::PushCall& push : hub.pushes) {
      if (push.message.type == imgate::PayloadType::kText) {
        check(imgate::mod::common::isValidUtf8(push.message.data()));
      }
    }
  }
  return 0;
}
