// SPDX-License-Identifier: Apache-2.0
// A recording Upstreams for stage tests: calls are kept, and the test completes them.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/upstream.h"

namespace imgate::mocks {

class FakeUpstreams final : public Upstreams {
 public:
  struct Call {
    std::string group;
    UpstreamRequest request;
    UpstreamCallback done;
  };

  bool has(std::string_view group) const override { return groups.count(std::string(group)) > 0; }
  void call(std::string_view group, UpstreamRequest request, UpstreamCallback done) override {
    calls.push_back(Call{std::string(group), std::move(request), std::move(done)});
  }
  // Completes the oldest pending call.
  void complete(Result<UpstreamResponse> result) {
    Call c = std::move(calls.front());
    calls.erase(calls.begin());
    c.done(std::move(result));
  }

  std::set<std::string> groups;
  std::vector<Call> calls;
};

}  // namespace imgate::mocks
