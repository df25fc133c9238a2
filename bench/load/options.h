// SPDX-License-Identifier: Apache-2.0
#pragma once

// Command line of imgate_load. Every count and time has a default and a hard cap, so a typo
// cannot start an unbounded run.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace imgate::bench::load {

enum class Scenario : uint8_t { kIdle, kFanout, kPush, kUplink, kBackend };
// kNchan: Nchan's WebSocket subscriber (bench/peers/nchan.conf.in), GET <nchan_path>?user=U&room=R
// with no token; every text or binary message is a raw published body.
enum class Protocol : uint8_t { kWs, kWsEnvelope, kTcp, kSocketIo, kNchan };
// Who takes the pushes: imgate's push API (POST /v1/push, rooms joined through the members API)
// or Nchan's publisher (POST <nchan_pub_path><channel>, the bench payload as the raw body).
enum class Publisher : uint8_t { kImgate, kNchan };

const char* scenarioName(Scenario s);
const char* protocolName(Protocol p);
const char* publisherName(Publisher p);

struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

// Hard caps (the parser refuses values above them).
constexpr uint32_t kMaxConnections = 2'000'000;
constexpr uint32_t kMaxThreads = 64;
constexpr uint32_t kMaxDurationS = 600;
constexpr uint64_t kMaxPushes = 100'000'000;
constexpr uint32_t kMaxFanoutMessages = 100'000;
constexpr uint32_t kMaxPayloadBytes = 1 << 20;
constexpr uint32_t kMaxPipeline = 1024;
constexpr uint32_t kMaxApiConns = 256;
constexpr size_t kMaxServerPids = 64;

struct Options {
  Scenario scenario = Scenario::kIdle;
  Protocol protocol = Protocol::kWs;
  // --publish; --protocol nchan makes kNchan the default.
  Publisher publisher = Publisher::kImgate;
  uint32_t connections = 1000;      // --connections
  uint32_t threads = 0;             // --threads; 0: one per core
  uint32_t connect_rate = 5000;     // --connect-rate, connections/s over all threads; 0: no pacing
  uint32_t max_pending = 512;       // --max-pending: handshakes in flight per thread
  double duration_s = 10;           // --duration: hold (idle) or sending window (others)
  double connect_timeout_s = 60;    // --connect-timeout: whole connect phase
  double handshake_timeout_s = 15;  // --handshake-timeout: one connection's handshake
  double settle_s = 2;              // --settle: wait after connecting before reading RSS
  double drain_s = 5;               // --drain: wait for late deliveries/acks after sending
  double after_join_s = 0;          // --after-join: fanout pause between room joins and pushes
  double ping_interval_s = 0;       // --ping-interval: client keepalive pings; 0: none
  Endpoint target{"127.0.0.1", 18080};   // --target: the client listener (HTTP or stream)
  Endpoint api{"127.0.0.1", 18081};      // --api: the push API listener
  std::string ws_path = "/ws";           // --ws-path
  std::string sio_path = "/socket.io/";  // --sio-path
  std::string nchan_path = "/sub";       // --nchan-path: Nchan's subscriber location
  std::string nchan_pub_path = "/pub/";  // --nchan-pub-path: publisher prefix of <channel>
  std::string api_key = "bench-key";     // --api-key
  std::string jwt_secret = "bench-secret-0123456789abcdef0123456789";  // --jwt-secret
  uint32_t jwt_ttl_s = 7200;                                           // --jwt-ttl
  std::string users_prefix = "u";  // --users-prefix: connection i is user <prefix><i>
  std::string room = "bench";      // --room; "" (or --broadcast) pushes to "all"
  bool broadcast = false;          // --broadcast
  uint64_t pushes = 1000;          // --pushes (uplink: messages; alias --messages)
  uint32_t push_rate = 0;          // --push-rate R/s (alias --rate); 0: as fast as allowed
  uint32_t payload_bytes = 64;     // --payload-bytes
  uint32_t pipeline = 16;          // --pipeline: push API requests in flight per connection
  uint32_t api_conns = 1;          // --api-conns: push API keep-alive connections
  uint32_t max_targets = 10000;    // --max-targets: users per room-join request
  int64_t imgate_pid = 0;          // --imgate-pid: the first of server_pids, 0: none
  // --imgate-pid P[,P...] (alias --server-pids): every process of the server (nginx: master and
  // workers); memory and CPU are summed over them.
  std::vector<int64_t> server_pids;
  bool source_ips_set = false;
  uint32_t source_first = 0;  // --source-ips A-B (host byte order); 0: kernel picks
  uint32_t source_last = 0;
  std::string json_path;    // --json FILE
  Endpoint backend_listen;  // --backend-listen: start the test backend here
  bool backend = false;
  bool smoke = false;                                     // --smoke: tiny defaults for CI
  bool quiet = false;                                     // --quiet: no progress lines on stderr
  std::vector<std::pair<std::string, std::string>> tags;  // --tag KEY=VALUE, into the report
  std::vector<std::string> argv;                          // as given, for the report
};

// Parses argv. Returns an empty string on success, otherwise a one-line error; `help` is set for
// --help.
std::string parseOptions(int argc, char** argv, Options& out, bool& help);

const char* usageText();

// "127.0.0.2-127.255.255.254" or one address; host byte order.
bool parseIpRange(const std::string& text, uint32_t& first, uint32_t& last);
bool parseEndpoint(const std::string& text, Endpoint& out);

}  // namespace imgate::bench::load
