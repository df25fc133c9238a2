// SPDX-License-Identifier: Apache-2.0
#pragma once

// One epoll event loop on one thread, owning a share of the client connections: connection i
// belongs to worker i % threads. Level-triggered, non-blocking sockets. Per connection it keeps
// a 24-byte Conn; bytes of an incomplete frame and unsent output live in side tables only while
// they exist.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client_codec.h"
#include "histogram.h"
#include "options.h"

namespace imgate::bench::load {

int64_t monoNs();
int64_t wallNs();

// Shared by the main thread, the workers and the push API client.
struct RunState {
  explicit RunState(const Options& o);

  const Options& options;
  const int64_t start_mono_ns;
  const uint64_t ws_salt;
  std::atomic<bool> stop{false};         // workers close everything and exit
  std::atomic<bool> uplink_go{false};    // uplink: start sending
  std::atomic<bool> uplink_stop{false};  // uplink: send nothing new
  // push: one bit per push number, so a duplicate is counted exactly whichever connection and
  // thread receives it (pushes / 8 bytes).
  std::unique_ptr<std::atomic<uint64_t>[]> seen;
  size_t seen_words = 0;
};

struct Conn {
  int32_t fd = -1;
  uint8_t state = kStateIdle;  // ConnState
  uint8_t flags = 0;
  uint16_t reserved = 0;
  uint32_t start_us = 0;   // connect start, microseconds since the run started
  uint32_t last_n = 0;     // fanout: highest message number received
  int64_t up_sent_ns = 0;  // uplink: when the unanswered message was sent (monotonic); 0: none
};

struct alignas(64) LiveCounters {
  std::atomic<uint64_t> attempted{0};
  std::atomic<uint64_t> established{0};
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> closed{0};      // closed after being established
  std::atomic<uint64_t> deliveries{0};  // unique deliveries
  std::atomic<uint64_t> uplink_sent{0};
  std::atomic<uint64_t> uplink_settled{0};  // answered, or lost with their connection
  std::atomic<bool> uplink_budget_done{false};
};

struct WorkerStats {
  std::map<std::string, uint64_t> fail_reasons;   // before the session was open
  std::map<std::string, uint64_t> close_reasons;  // after
  Histogram handshake;                            // connect start -> session open
  Histogram latency;                              // publish -> receive
  uint64_t duplicates = 0;
  uint64_t out_of_range = 0;        // a bench payload whose number this run never sent
  uint64_t negative_latency = 0;    // receive clock before the publish clock (recorded as 0)
  uint64_t unexpected_replies = 0;  // an uplink answer with nothing outstanding
  uint64_t uplink_ok = 0;
  uint64_t uplink_errors = 0;
  uint64_t uplink_lost = 0;  // outstanding when its connection closed
  Histogram uplink_latency;
  int64_t first_delivery_ns = 0;  // wall clock
  int64_t last_delivery_ns = 0;
  std::vector<uint32_t> msg_count;   // fanout: receivers per message number
  std::vector<int64_t> msg_last_ns;  // fanout: last receive (wall clock) per message number
};

class Worker final : private ClientEvents {
 public:
  Worker(RunState& run, uint32_t index, uint32_t threads, uint64_t uplink_budget);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  void join();

  LiveCounters live;
  WorkerStats stats;  // read only after join()
  size_t connectionSlots() const { return conns_.size(); }

 private:
  static constexpr uint8_t kPendingWrite = 1;
  static constexpr uint8_t kPartial = 2;
  static constexpr uint8_t kBroken = 4;

  void loop();
  uint32_t idOf(uint32_t slot) const { return index_ + slot * threads_; }
  void startConnect(uint32_t slot, int64_t now);
  void onConnected(uint32_t slot);
  void onEvent(uint32_t slot, uint32_t events);
  void onReadable(uint32_t slot);
  void feed(uint32_t slot, const uint8_t* data, size_t size);
  void flush(uint32_t slot);
  void settle(uint32_t slot);  // closes a connection a codec call marked done or broken
  void drop(uint32_t slot, std::string_view reason);
  void recordClose(uint32_t slot, std::string_view reason);
  void finish(uint32_t slot);
  void checkTimeouts(int64_t now);
  void pumpUplink(int64_t now);
  void pumpPings(int64_t now);
  bool sendUplinkOn(uint32_t slot, int64_t now);
  void watch(uint32_t slot, bool want_write);

  // ClientEvents, for connection cur_.
  void send(std::string_view bytes) override;
  void established() override;
  void delivery(uint64_t t_ns, uint64_t n) override;
  void uplinkReply(bool ok) override;
  void closed(std::string_view reason) override;

  RunState& run_;
  const Options& opt_;
  const uint32_t index_;
  const uint32_t threads_;
  ClientCodec codec_;
  std::vector<Conn> conns_;
  std::unordered_map<uint32_t, std::string> partial_;  // unparsed input
  std::unordered_map<uint32_t, std::string> pending_;  // unsent output
  std::vector<uint8_t> scratch_;
  int epfd_ = -1;
  uint32_t cur_ = 0;
  uint32_t next_connect_ = 0;
  uint32_t in_handshake_ = 0;
  double connect_tokens_ = 0;
  uint32_t source_count_ = 0;
  // uplink
  uint64_t uplink_budget_;
  uint64_t uplink_next_k_ = 1;
  double uplink_tokens_ = 0;
  uint32_t uplink_cursor_ = 0;
  int64_t uplink_last_ns_ = 0;
  // keepalive pings: a cursor walks the connections once per interval
  double ping_due_ = 0;
  int64_t ping_last_ns_ = 0;
  uint32_t ping_cursor_ = 0;
  bool uplink_started_ = false;
  std::thread thread_;
};

}  // namespace imgate::bench::load
