// SPDX-License-Identifier: Apache-2.0
#include "options.h"

#include <arpa/inet.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string_view>
#include <thread>

namespace imgate::bench::load {

namespace {

// Names that go into JSON, URLs and JWT claims unescaped.
bool isSafeName(const std::string& s, bool allow_empty) {
  if (s.empty()) {
    return allow_empty;
  }
  if (s.size() > 64) {
    return false;
  }
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool isSafePath(const std::string& s) {
  if (s.empty() || s[0] != '/' || s.size() > 256) {
    return false;
  }
  for (char c : s) {
    if (c <= ' ' || c == 0x7F || c == '?' || c == '#') {
      return false;
    }
  }
  return true;
}

bool parseU64(std::string_view s, uint64_t& out) {
  if (s.empty()) {
    return false;
  }
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// "10", "10s", "250ms", "2m".
bool parseSeconds(std::string_view s, double& out) {
  double scale = 1;
  if (s.ends_with("ms")) {
    scale = 0.001;
    s.remove_suffix(2);
  } else if (s.ends_with("s")) {
    s.remove_suffix(1);
  } else if (s.ends_with("m")) {
    scale = 60;
    s.remove_suffix(1);
  }
  if (s.empty()) {
    return false;
  }
  std::string tmp(s);
  char* end = nullptr;
  const double v = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size() || !std::isfinite(v) || v < 0) {
    return false;
  }
  out = v * scale;
  return true;
}

// "2000", "2000/s".
bool parseRate(std::string_view s, uint64_t& out) {
  if (s.ends_with("/s")) {
    s.remove_suffix(2);
  }
  return parseU64(s, out);
}

}  // namespace

const char* scenarioName(Scenario s) {
  switch (s) {
    case Scenario::kIdle:
      return "idle";
    case Scenario::kFanout:
      return "fanout";
    case Scenario::kPush:
      return "push";
    case Scenario::kUplink:
      return "uplink";
    case Scenario::kBackend:
      return "backend";
  }
  return "?";
}

const char* protocolName(Protocol p) {
  switch (p) {
    case Protocol::kWs:
      return "ws";
    case Protocol::kWsEnvelope:
      return "ws-envelope";
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kSocketIo:
      return "socketio";
    case Protocol::kNchan:
      return "nchan";
  }
  return "?";
}

const char* publisherName(Publisher p) {
  switch (p) {
    case Publisher::kImgate:
      return "imgate";
    case Publisher::kNchan:
      return "nchan";
  }
  return "?";
}

bool parseIpRange(const std::string& text, uint32_t& first, uint32_t& last) {
  const size_t dash = text.find('-');
  const std::string a = text.substr(0, dash);
  const std::string b = dash == std::string::npos ? a : text.substr(dash + 1);
  in_addr x{};
  in_addr y{};
  if (inet_pton(AF_INET, a.c_str(), &x) != 1 || inet_pton(AF_INET, b.c_str(), &y) != 1) {
    return false;
  }
  first = ntohl(x.s_addr);
  last = ntohl(y.s_addr);
  return first != 0 && first <= last;
}

bool parseEndpoint(const std::string& text, Endpoint& out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return false;
  }
  uint64_t port = 0;
  if (!parseU64(std::string_view(text).substr(colon + 1), port) || port == 0 || port > 65535) {
    return false;
  }
  in_addr addr{};
  const std::string host = text.substr(0, colon);
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) {
    return false;  // IPv4 literals only: no resolver on the load path
  }
  out.host = host;
  out.port = uint16_t(port);
  return true;
}

const char* usageText() {
  return R"(usage: imgate_load --scenario idle|fanout|push|uplink|backend [options]

  --protocol ws|ws-envelope|tcp|socketio|nchan
                          client protocol (default ws; nchan: Nchan's WebSocket subscriber,
                          GET <nchan-path>?user=U&room=R, no token)
  --publish imgate|nchan  who takes pushes: imgate's POST /v1/push, or Nchan's publisher
                          (POST <nchan-pub-path><channel>, raw payload; channels all, user_U,
                          room_R; no room joins). Default imgate, nchan with --protocol nchan
  --connections N         client connections (default 1000, max 2000000)
  --threads T             event-loop threads (default: one per core, max 64)
  --connect-rate R/s      new connections per second, all threads (default 5000; 0: unpaced)
  --max-pending N         handshakes in flight per thread (default 512)
  --duration S            idle: hold time; others: sending window (default 10, max 600)
  --connect-timeout S     connect phase limit (default 60, max 600)
  --handshake-timeout S   one connection's handshake limit (default 15)
  --settle S              pause after connecting, before reading RSS (default 2)
  --drain S               wait for late deliveries and acks after sending (default 5, max 60)
  --after-join S          fanout: pause between the room joins and the first push (default 0)
  --ping-interval S       each client pings this often, spread evenly (default 0: never; SDKs
                          use ~50 s, inside imgate's 120 s idle_timeout)
  --target HOST:PORT      client listener (default 127.0.0.1:18080; tcp: the stream listener)
  --api HOST:PORT         push API listener (default 127.0.0.1:18081)
  --ws-path P             WebSocket location (default /ws)
  --sio-path P            Socket.IO location (default /socket.io/)
  --nchan-path P          Nchan subscriber location (default /sub)
  --nchan-pub-path P      Nchan publisher prefix, the channel id follows (default /pub/)
  --api-key K             push API key (default bench-key)
  --jwt-secret S          HS256 secret of auth.jwt (default: the bench configs' secret)
  --jwt-ttl S             token lifetime (default 7200)
  --users-prefix P        connection i authenticates as user P<i> (default u)
  --room NAME             fanout: room to join and push to (default bench)
  --broadcast             fanout: push to "all" instead of a room
  --pushes N              pushes (push, fanout) or uplink messages (alias --messages;
                          default 1000; fanout max 100000)
  --push-rate R/s         rate of those (alias --rate; default 0: as fast as the window allows)
  --payload-bytes B       payload size (default 64, max 1048576)
  --pipeline D            push API requests in flight per connection (default 16)
  --api-conns C           push API connections (default 1)
  --max-targets N         users per room-join request (default 10000, imgate's max_targets)
  --imgate-pid PID[,PID]  the server's processes (alias --server-pids; at most 64): memory per
                          connection from VmRSS (one PID) or summed Pss (several, e.g. nginx's
                          master and workers: shared pages count once), CPU summed
  --source-ips A-B        bind each socket to the next address of the range
                          (default for a 127.x target: 127.0.0.2-127.255.255.254)
  --backend-listen H:P    run the test HTTP backend (answers every POST 200 {"ok":true})
  --json FILE             write the results there (also printed on stdout)
  --tag KEY=VALUE         copied into the results' "tags" (commit, machine; repeatable)
  --smoke                 tiny defaults for CI (50 connections, 200 pushes, 3 s, unpaced
                          connects, --after-join 0.05)
  --quiet                 no progress lines on stderr
)";
}

std::string parseOptions(int argc, char** argv, Options& o, bool& help) {
  help = false;
  o.argv.assign(argv, argv + argc);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--smoke") == 0) {
      o.smoke = true;
      o.connections = 50;
      o.pushes = 200;
      o.duration_s = 3;
      o.connect_timeout_s = 10;
      o.settle_s = 0.5;
      o.drain_s = 2;
      o.connect_rate = 0;
      // Works around imgate answering room joins before every worker applied them (the first
      // room push can then be skipped as a duplicate); --after-join 0 shows it.
      o.after_join_s = 0.05;
    }
  }
  bool threads_set = false;
  bool publisher_set = false;
  using Setter = std::function<bool(const std::string&)>;
  auto u32 = [](uint32_t& dst, uint64_t max) {
    return Setter([&dst, max](const std::string& v) {
      uint64_t x = 0;
      if (!parseU64(v, x) || x > max) {
        return false;
      }
      dst = uint32_t(x);
      return true;
    });
  };
  auto secs = [](double& dst, double max) {
    return Setter([&dst, max](const std::string& v) { return parseSeconds(v, dst) && dst <= max; });
  };
  auto rate = [](uint32_t& dst) {
    return Setter([&dst](const std::string& v) {
      uint64_t x = 0;
      if (!parseRate(v, x) || x > 100'000'000) {
        return false;
      }
      dst = uint32_t(x);
      return true;
    });
  };
  auto str = [](std::string& dst) {
    return Setter([&dst](const std::string& v) {
      dst = v;
      return true;
    });
  };
  auto endpoint = [](Endpoint& dst) {
    return Setter([&dst](const std::string& v) { return parseEndpoint(v, dst); });
  };
  std::map<std::string, Setter> with_value = {
      {"--scenario",
       [&](const std::string& v) {
         static const std::map<std::string, Scenario> kNames = {{"idle", Scenario::kIdle},
                                                                {"fanout", Scenario::kFanout},
                                                                {"push", Scenario::kPush},
                                                                {"uplink", Scenario::kUplink},
                                                                {"backend", Scenario::kBackend}};
         auto it = kNames.find(v);
         if (it == kNames.end()) {
           return false;
         }
         o.scenario = it->second;
         return true;
       }},
      {"--protocol",
       [&](const std::string& v) {
         static const std::map<std::string, Protocol> kNames = {
             {"ws", Protocol::kWs},
             {"ws-envelope", Protocol::kWsEnvelope},
             {"tcp", Protocol::kTcp},
             {"socketio", Protocol::kSocketIo},
             {"nchan", Protocol::kNchan}};
         auto it = kNames.find(v);
         if (it == kNames.end()) {
           return false;
         }
         o.protocol = it->second;
         return true;
       }},
      {"--publish",
       [&](const std::string& v) {
         publisher_set = true;
         if (v == "imgate") {
           o.publisher = Publisher::kImgate;
         } else if (v == "nchan") {
           o.publisher = Publisher::kNchan;
         } else {
           return false;
         }
         return true;
       }},
      {"--connections", u32(o.connections, kMaxConnections)},
      {"--threads",
       [&](const std::string& v) {
         threads_set = true;
         uint64_t x = 0;
         if (!parseU64(v, x) || x < 1 || x > kMaxThreads) {
           return false;
         }
         o.threads = uint32_t(x);
         return true;
       }},
      {"--connect-rate", rate(o.connect_rate)},
      {"--max-pending", u32(o.max_pending, 1'000'000)},
      {"--duration", secs(o.duration_s, kMaxDurationS)},
      {"--connect-timeout", secs(o.connect_timeout_s, kMaxDurationS)},
      {"--handshake-timeout", secs(o.handshake_timeout_s, kMaxDurationS)},
      {"--settle", secs(o.settle_s, 60)},
      {"--drain", secs(o.drain_s, 60)},
      {"--after-join", secs(o.after_join_s, 60)},
      {"--ping-interval", secs(o.ping_interval_s, 3600)},
      {"--target", endpoint(o.target)},
      {"--api", endpoint(o.api)},
      {"--ws-path", str(o.ws_path)},
      {"--sio-path", str(o.sio_path)},
      {"--nchan-path", str(o.nchan_path)},
      {"--nchan-pub-path", str(o.nchan_pub_path)},
      {"--api-key", str(o.api_key)},
      {"--jwt-secret", str(o.jwt_secret)},
      {"--jwt-ttl", u32(o.jwt_ttl_s, 30 * 86400)},
      {"--users-prefix", str(o.users_prefix)},
      {"--room", str(o.room)},
      {"--pushes",
       [&](const std::string& v) { return parseU64(v, o.pushes) && o.pushes <= kMaxPushes; }},
      {"--push-rate", rate(o.push_rate)},
      {"--payload-bytes", u32(o.payload_bytes, kMaxPayloadBytes)},
      {"--pipeline", u32(o.pipeline, kMaxPipeline)},
      {"--api-conns", u32(o.api_conns, kMaxApiConns)},
      {"--max-targets", u32(o.max_targets, 10'000'000)},
      {"--imgate-pid",
       [&](const std::string& v) {
         o.server_pids.clear();
         size_t pos = 0;
         while (pos <= v.size()) {
           const size_t comma = std::min(v.find(',', pos), v.size());
           uint64_t x = 0;
           if (!parseU64(std::string_view(v).substr(pos, comma - pos), x) || x == 0 ||
               x > 0x7FFFFFFF || o.server_pids.size() >= kMaxServerPids) {
             return false;
           }
           o.server_pids.push_back(int64_t(x));
           pos = comma + 1;
         }
         o.imgate_pid = o.server_pids.front();
         return true;
       }},
      {"--source-ips",
       [&](const std::string& v) {
         o.source_ips_set = true;
         if (v == "none") {
           o.source_first = o.source_last = 0;
           return true;
         }
         return parseIpRange(v, o.source_first, o.source_last);
       }},
      {"--json", str(o.json_path)},
      {"--tag",
       [&](const std::string& v) {
         const size_t eq = v.find('=');
         if (eq == 0 || eq == std::string::npos || o.tags.size() >= 64 || v.size() > 1024) {
           return false;
         }
         o.tags.emplace_back(v.substr(0, eq), v.substr(eq + 1));
         return true;
       }},
      {"--backend-listen",
       [&](const std::string& v) {
         o.backend = true;
         return parseEndpoint(v, o.backend_listen);
       }},
  };
  with_value["--messages"] = with_value["--pushes"];
  with_value["--rate"] = with_value["--push-rate"];
  with_value["--server-pids"] = with_value["--imgate-pid"];

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    const size_t eq = arg.find('=');
    if (arg.starts_with("--") && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    if (arg == "--help" || arg == "-h") {
      help = true;
      return "";
    }
    if (arg == "--smoke") {
      continue;
    }
    if (arg == "--broadcast") {
      o.broadcast = true;
      continue;
    }
    if (arg == "--quiet") {
      o.quiet = true;
      continue;
    }
    auto it = with_value.find(arg);
    if (it == with_value.end()) {
      return "unknown option \"" + arg + "\" (see --help)";
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return "option " + arg + " needs a value";
      }
      value = argv[++i];
    }
    if (!it->second(value)) {
      return "bad value \"" + value + "\" for " + arg + " (see --help for the allowed range)";
    }
  }

  if (!threads_set) {
    o.threads = std::max(1u, std::min(kMaxThreads, std::thread::hardware_concurrency()));
  }
  if (o.connections == 0 && o.scenario != Scenario::kBackend) {
    return "--connections must be at least 1";
  }
  o.threads = std::min(o.threads, std::max<uint32_t>(1, o.connections));
  if (!isSafeName(o.users_prefix, true)) {
    return "--users-prefix may only hold letters, digits, '-', '_' and '.' (at most 64)";
  }
  if (!isSafeName(o.room, true)) {
    return "--room may only hold letters, digits, '-', '_' and '.' (at most 64)";
  }
  if (o.room.empty()) {
    o.broadcast = true;
  }
  if (!isSafePath(o.ws_path) || !isSafePath(o.sio_path) || !isSafePath(o.nchan_path) ||
      !isSafePath(o.nchan_pub_path)) {
    return "--ws-path, --sio-path, --nchan-path and --nchan-pub-path must start with '/' and hold "
           "no blanks, '?' or '#'";
  }
  if (!publisher_set && o.protocol == Protocol::kNchan) {
    o.publisher = Publisher::kNchan;
  }
  if (o.protocol == Protocol::kNchan && o.scenario == Scenario::kUplink) {
    return "--protocol nchan has no uplink: Nchan subscribers only receive";
  }
  if (o.api_key.empty() || o.api_key.find_first_of("\r\n") != std::string::npos) {
    return "--api-key must be non-empty and on one line";
  }
  if (o.jwt_secret.empty()) {
    return "--jwt-secret must not be empty";
  }
  if (o.scenario == Scenario::kFanout && o.pushes > kMaxFanoutMessages) {
    return "fanout: --pushes is at most " + std::to_string(kMaxFanoutMessages);
  }
  if (o.pipeline == 0 || o.api_conns == 0 || o.max_targets == 0) {
    return "--pipeline, --api-conns and --max-targets must be at least 1";
  }
  if (o.scenario == Scenario::kBackend && !o.backend) {
    return "--scenario backend needs --backend-listen HOST:PORT";
  }
  if (!o.source_ips_set && o.target.host.starts_with("127.")) {
    parseIpRange("127.0.0.2-127.255.255.254", o.source_first, o.source_last);
  }
  return "";
}

}  // namespace imgate::bench::load
