// SPDX-License-Identifier: Apache-2.0
#pragma once

// The backend side of the push and fanout scenarios: HTTP/1.1 keep-alive connections to the
// push API on their own thread, with up to --pipeline requests in flight on each (answers come
// in request order). Fanout first adds every user to the room (batches of --max-targets), then
// pushes; each push's payload carries the wall-clock time just before its request is written.

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "histogram.h"
#include "worker.h"

namespace imgate::bench::load {

struct ApiStats {
  std::map<int, uint64_t> statuses;  // HTTP status -> answers
  std::map<std::string, uint64_t> errors;
  uint64_t sent = 0;           // push requests written
  uint64_t accepted = 0;       // 2xx answers to pushes
  uint64_t sessions = 0;       // sum of "sessions" in those answers: deliveries to expect
  uint64_t dropped = 0;        // sum of "dropped"
  uint64_t unanswered = 0;     // lost with a connection, or still in flight at the end
  Histogram response_latency;  // request written -> answer read
  int64_t first_send_ns = 0;   // monotonic
  int64_t last_answer_ns = 0;
  std::string first_error;  // the first non-2xx answer, for the report
  // room joins (fanout)
  uint64_t join_requests = 0;
  uint64_t joined = 0;
  uint64_t join_offline = 0;
  uint64_t join_failed = 0;  // requests not answered 2xx
  double join_seconds = 0;
  // fanout, per message number - 1
  std::vector<int64_t> publish_ns;   // wall clock written into the payload
  std::vector<uint32_t> recipients;  // "sessions" of the answer
};

class ApiClient {
 public:
  // `users`: the push scenario spreads pushes over users 0..users-1 (push n goes to user
  // (n-1) % users); fanout joins them all to the room.
  ApiClient(RunState& run, uint32_t users);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // Starts the thread. No new push is written after send_deadline (monotonic ns).
  void start(int64_t send_deadline_ns);
  void join();

  std::atomic<bool> joins_done{false};
  std::atomic<bool> done{false};  // nothing more will be sent or answered
  std::atomic<uint64_t> answered{0};
  std::atomic<uint64_t> expected_deliveries{0};
  ApiStats stats;  // read after join()

 private:
  enum class Kind : uint8_t { kJoin, kPush };
  struct Inflight {
    Kind kind;
    uint64_t n;  // push number or join batch
    int64_t sent_ns;
  };
  struct Conn {
    int fd = -1;
    bool connecting = false;
    bool armed_out = false;  // EPOLLOUT is in the interest set
    std::deque<Inflight> inflight;
    std::string in;
    std::string out;
  };

  void loop();
  bool open(Conn& c);
  void closeConn(Conn& c, const std::string& reason);
  void fill(Conn& c, int64_t now);
  void flush(Conn& c);
  void readable(Conn& c);
  void onAnswer(Conn& c, int status, std::string_view body, int64_t now);
  void appendRequest(std::string& out, std::string_view path, std::string_view body);

  RunState& run_;
  const Options& opt_;
  const uint32_t users_;
  int64_t send_deadline_ns_ = 0;
  int epfd_ = -1;
  std::vector<Conn> conns_;
  uint64_t next_push_ = 1;
  uint64_t join_batches_ = 0;
  uint64_t next_join_ = 0;
  uint64_t joins_answered_ = 0;
  int64_t join_start_ns_ = 0;
  int64_t joins_answered_at_ = 0;
  double tokens_ = 0;
  int64_t last_tick_ns_ = 0;
  uint32_t reconnects_ = 0;
  std::string body_;
  std::thread thread_;
};

}  // namespace imgate::bench::load
