// SPDX-License-Identifier: Apache-2.0
// Fakes for push API tests: a dispatcher with simulated time, an in-memory hub and an exchange
// that records the answer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/codec.h"
#include "imgate/sdk/http.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/runtime.h"

namespace imgate::test::http_push {

inline constexpr int64_t kNowMs = 1700000000123;

// ---- Fakes ---------------------------------------------------------------------------------

class FakeDispatcher final : public Dispatcher {
 public:
   void armSlot(TimerSlot&, std::chrono::milliseconds) override {}
   void cancelSlot(TimerSlot&) override {}
  TimerPtr schedule(std::chrono::milliseconds, std::function<void()>) override {
    return std::make_unique<Timer>();
  }
  void post(std::function<void()> cb) override { posted.push_back(std::move(cb)); }
  std::chrono::steady_clock::time_point now() const override { return now_; }
  int64_t wallMs() const override { return kNowMs; }

  std::vector<std::function<void()>> posted;
  // Simulated monotonic time: tests move it forward (or back) by hand.
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

// A small in-memory model of the hub. Completion callbacks run synchronously unless `defer` is
// set; then they wait in `deferred` until the test runs them (in any order).
class FakeHub final : public Hub {
 public:
  struct PushCall {
    std::string app;
    PushTarget target;
    Message message;
  };
  struct KickCall {
    std::string app;
    std::string user;
    uint64_t session_id;
    std::string reason;
  };

  void addSession(const std::string& user, SessionInfo info) {
    info.user = user;
    users[user].push_back(std::move(info));
  }

  void push(const std::string& app, PushTarget target, Message message,
            std::function<void(PushResult)> done) override {
    PushResult result = deliver(target);
    pushes.push_back({app, std::move(target), std::move(message)});
    run([done = std::move(done), result]() { done(result); });
  }

  std::vector<SessionInfo> userSessions(const std::string& app, const std::string& user) override {
    apps.push_back(app);
    queried_users.push_back(user);
    const auto it = users.find(user);
    return it == users.end() ? std::vector<SessionInfo>() : it->second;
  }

  void kick(const std::string& app, const std::string& user, uint64_t session_id,
            std::string reason, std::function<void(uint64_t)> done) override {
    kicks.push_back({app, user, session_id, reason});
    uint64_t n = 0;
    if (auto it = users.find(user); it != users.end()) {
      auto& list = it->second;
      const auto gone = [&](const SessionInfo& s) { return session_id == 0 || s.id == session_id; };
      n = static_cast<uint64_t>(std::count_if(list.begin(), list.end(), gone));
      list.erase(std::remove_if(list.begin(), list.end(), gone), list.end());
      if (list.empty()) {
        users.erase(it);
      }
    }
    run([done = std::move(done), n]() { done(n); });
  }

  std::vector<std::string> join(const std::string& app, const std::string& room,
                                const std::vector<std::string>& members) override {
    apps.push_back(app);
    rooms_called.push_back(room);
    std::vector<std::string> offline;
    for (const auto& u : members) {
      if (users.count(u) > 0) {
        rooms[room].insert(u);
      } else {
        offline.push_back(u);
      }
    }
    return offline;
  }

  std::vector<std::string> leave(const std::string& app, const std::string& room,
                                 const std::vector<std::string>& members) override {
    apps.push_back(app);
    rooms_called.push_back(room);
    std::vector<std::string> not_members;
    for (const auto& u : members) {
      if (rooms[room].erase(u) == 0) {
        not_members.push_back(u);
      }
    }
    return not_members;
  }

  std::vector<std::string> roomMembers(const std::string& app, const std::string& room) override {
    apps.push_back(app);
    rooms_called.push_back(room);
    const auto it = rooms.find(room);
    return it == rooms.end() ? std::vector<std::string>()
                             : std::vector<std::string>(it->second.begin(), it->second.end());
  }

  HubStats stats(const std::string& app) override {
    apps.push_back(app);
    return stats_value;
  }

  void runDeferred(size_t index) {
    auto cb = std::move(deferred.at(index));
    deferred.at(index) = nullptr;
    cb();
  }

  bool defer = false;
  std::map<std::string, std::vector<SessionInfo>> users;
  std::map<std::string, std::set<std::string>> rooms;
  HubStats stats_value{7, 5, 3};
  std::vector<PushCall> pushes;
  std::vector<KickCall> kicks;
  std::vector<std::string> apps;
  std::vector<std::string> queried_users;
  std::vector<std::string> rooms_called;
  std::vector<std::function<void()>> deferred;

 private:
  void run(std::function<void()> cb) {
    if (defer) {
      deferred.push_back(std::move(cb));
    } else {
      cb();
    }
  }

  PushResult deliver(const PushTarget& target) {
    PushResult r;
    const auto sessionsOf = [&](const std::string& user) -> uint64_t {
      const auto it = users.find(user);
      return it == users.end() ? 0 : it->second.size();
    };
    switch (target.kind) {
      case TargetKind::kUser:
        for (const auto& u : target.ids) {
          const uint64_t n = sessionsOf(u);
          if (n == 0) {
            r.offline.push_back(u);
          }
          r.sessions += n;
        }
        break;
      case TargetKind::kSession:
        for (const auto& id : target.ids) {
          bool found = false;
          for (const auto& [user, list] : users) {
            for (const auto& s : list) {
              found = found || std::to_string(s.id) == id;
            }
          }
          if (found) {
            ++r.sessions;
          } else {
            r.offline.push_back(id);
          }
        }
        break;
      case TargetKind::kRoom:
        for (const auto& room : target.ids) {
          for (const auto& u : rooms[room]) {
            r.sessions += sessionsOf(u);
          }
        }
        break;
      case TargetKind::kAll:
        for (const auto& [user, list] : users) {
          r.sessions += list.size();
        }
        break;
      case TargetKind::kNone: break;
    }
    return r;
  }
};

class FakeExchange final : public HttpExchange {
 public:
  FakeExchange(HttpRequest request, FakeHub& hub, FakeDispatcher& dispatcher)
      : request_(std::move(request)), hub_(hub), dispatcher_(dispatcher) {}

  const HttpRequest& request() const override { return request_; }
  std::string_view location() const override { return "/v1/"; }
  void respond(HttpResponse response) override {
    ++responses;
    if (!this->response) {
      this->response = std::move(response);
    }
  }
  void upgrade(CodecPtr, HttpResponse, std::vector<std::string>) override { upgraded = true; }
  void detach(std::string, CodecPtr, HttpResponse) override {}
  void poll(std::string_view, std::chrono::milliseconds, DetachedCallback) override {}
  void feed(std::string_view, std::string, DetachedCallback) override {}
  void attach(std::string, CodecPtr, HttpResponse, HttpResponse) override {}
  bool alive() const override { return true; }
  Hub& hub() override { return hub_; }
  Dispatcher& dispatcher() override { return dispatcher_; }

  std::optional<HttpResponse> response;
  int responses = 0;
  bool upgraded = false;

 private:
  HttpRequest request_;
  FakeHub& hub_;
  FakeDispatcher& dispatcher_;
};

inline std::optional<std::string> headerOf(const HttpResponse& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (http_detail::iequals(h.name, name)) {
      return h.value;
    }
  }
  return std::nullopt;
}

}  // namespace imgate::test::http_push
