// SPDX-License-Identifier: Apache-2.0
// The push path before the hop to the recipient's worker: parsing the HTTP request
// (core/net/http_parser), the push API's JSON parsing, validation and answer (PushApi::handle,
// with an in-memory hub that completes at once), UTF-8 validation of text (the WebSocket
// codec's validator), and the hub's user lookup (Registry, users spread over its shards).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "hub/registry.h"
#include "modules/proto/http_push/push_api.h"
#include "modules/common/utf8.h"
#include "net/http_parser.h"
#include "test/unit/modules/proto/http_push/push_api_fakes.h"

namespace imgate::core {
namespace {

const std::string kBody =
    R"({"to":{"users":["u12345"]},"event":"chat","data":{"from":"alice","text":"hello there, how are you?","ts":1700000000123}})";

std::string pushRequest() {
  return "POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1:18081\r\nAuthorization: Bearer bench-key\r\n"
         "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
}

void BM_HttpParsePushRequest(benchmark::State& state) {
  const std::string bytes = pushRequest();
  net::HttpRequestParser parser{net::HttpLimits{}};
  for (auto _ : state) {
    auto used = parser.feed(bytes);
    if (!used || !parser.complete()) {
      state.SkipWithError("parse failed");
      break;
    }
    HttpRequest request = parser.take();
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_HttpParsePushRequest);

void BM_PushApiHandle(benchmark::State& state) {
  using namespace imgate::test::http_push;
  mod::http_push::PushApiOptions options;
  options.api_keys = {"bench-key"};
  mod::http_push::PushApi api(options);
  FakeHub hub;
  FakeDispatcher dispatcher;
  HttpRequest request;
  request.method = "POST";
  request.path = "/v1/push";
  request.target = "/v1/push";
  request.headers = {{"Host", "127.0.0.1"}, {"Authorization", "Bearer bench-key"},
                     {"Content-Type", "application/json"}};
  request.body = kBody;
  for (auto _ : state) {
    auto exchange = std::make_shared<FakeExchange>(request, hub, dispatcher);
    api.handle(exchange);
    if (!exchange->response || exchange->response->status != 200) {
      state.SkipWithError("push refused");
      break;
    }
    hub.pushes.clear();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PushApiHandle);

void utf8(benchmark::State& state, bool multibyte) {
  std::string text;
  const std::string unit = multibyte ? "héllo wörld 你好 " : "hello world, plain ";
  while (text.size() < static_cast<size_t>(state.range(0))) {
    text += unit;
  }
  text.resize(static_cast<size_t>(state.range(0)));
  text.resize(mod::common::validUtf8Prefix(text, text.size()));  // no cut code point
  for (auto _ : state) {
    benchmark::DoNotOptimize(mod::common::isValidUtf8(text));
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
void BM_Utf8ValidateAscii(benchmark::State& state) { utf8(state, false); }
void BM_Utf8ValidateMixed(benchmark::State& state) { utf8(state, true); }
BENCHMARK(BM_Utf8ValidateAscii)->Arg(64)->Arg(1024)->Arg(65536);
BENCHMARK(BM_Utf8ValidateMixed)->Arg(64)->Arg(1024)->Arg(65536);

void BM_HubUserLookup(benchmark::State& state) {
  Registry registry({});
  const int64_t users = state.range(0);
  for (int64_t i = 0; i < users; ++i) {
    SessionRef ref;
    ref.id = static_cast<uint64_t>(i) << 8;
    ref.device = SmallString("phone");
    ref.origin = "proto.websocket\0edge";
    ref.peer = SmallString("127.0.0.2:40000");
    registry.add("default", "u" + std::to_string(i), ref, 0);
  }
  int64_t i = 0;
  for (auto _ : state) {
    const std::string user = "u" + std::to_string((i * 7919) % users);
    benchmark::DoNotOptimize(registry.userSessions("default", user));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HubUserLookup)->Arg(1000)->Arg(100000);

}  // namespace
}  // namespace imgate::core
