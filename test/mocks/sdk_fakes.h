// SPDX-License-Identifier: Apache-2.0
// Shared fakes of SDK services for stage tests: a recording Upstreams (the test completes the
// calls) and a recording Hub.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/hub.h"
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

namespace imgate::mocks {

// A Hub that records pushes and reports every user offline; for stage tests.
class NullHub final : public Hub {
 public:
  struct Push {
    std::string app;
    PushTarget target;
    Message message;
  };
  void push(const std::string& app, PushTarget target, Message message,
            std::function<void(PushResult)> done) override {
    pushes.push_back(Push{app, std::move(target), std::move(message)});
    if (done) {
      done(PushResult{});
    }
  }
  std::vector<SessionInfo> userSessions(const std::string&, const std::string&) override { return {}; }
  void kick(const std::string&, const std::string&, uint64_t, std::string,
            std::function<void(uint64_t)> done) override {
    if (done) {
      done(0);
    }
  }
  std::vector<std::string> join(const std::string& app, const std::string& room,
                                const std::vector<std::string>& users) override {
    joins.push_back({app, room, users});
    return {};
  }
  std::vector<std::string> leave(const std::string&, const std::string&,
                                 const std::vector<std::string>& users) override {
    return users;
  }
  std::vector<std::string> roomMembers(const std::string&, const std::string&) override { return {}; }
  HubStats stats(const std::string&) override { return {}; }

  struct Join {
    std::string app;
    std::string room;
    std::vector<std::string> users;
  };
  std::vector<Push> pushes;
  std::vector<Join> joins;
};

}  // namespace imgate::mocks
