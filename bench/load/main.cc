// SPDX-License-Identifier: Apache-2.0
// imgate_load: the load generator of bench/load (see README.md there). Opens N client
// connections over WebSocket, the envelope, TCP frames, Socket.IO or Nchan's WebSocket
// subscriber, runs one scenario (idle, fanout, push, uplink), and writes one JSON object with
// the results.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api_client.h"
#include "histogram.h"
#include "json_writer.h"
#include "options.h"
#include "test_backend.h"
#include "worker.h"

namespace imgate::bench::load {
namespace {

std::atomic<bool> g_interrupted{false};

void onSignal(int) { g_interrupted.store(true); }

// The "<field>: N kB" line of a /proc file; -1 when the file or the line is missing.
int64_t procKib(const std::string& path, std::string_view field) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > field.size() && line.compare(0, field.size(), field) == 0 &&
        line[field.size()] == ':') {
      return std::atoll(line.c_str() + field.size() + 1);
    }
  }
  return -1;
}

int64_t readRssKib(int64_t pid) {
  return procKib(pid == 0 ? "/proc/self/status" : "/proc/" + std::to_string(pid) + "/status",
                 "VmRSS");
}

// The server's memory, -1 when any of its processes is unreadable. One process: its VmRSS.
// Several (nginx's master and workers): the sum of their proportional anonymous and shared
// memory (Pss_Anon + Pss_Shmem), where a page k of them map counts 1/k, so the sum is what the
// group uses; summed VmRSS would count a page of Nchan's shared zone once for every worker that
// touched it. File pages are left out: their Pss moves whenever any other process on the
// machine maps or unmaps libc, which at smoke sizes outweighs the connections (kernels before
// 5.9 lack the split; plain Pss then).
int64_t serverMemoryKib(const std::vector<int64_t>& pids) {
  if (pids.empty()) {
    return -1;
  }
  if (pids.size() == 1) {
    return readRssKib(pids[0]);
  }
  int64_t total = 0;
  for (const int64_t pid : pids) {
    const std::string path = "/proc/" + std::to_string(pid) + "/smaps_rollup";
    const int64_t anon = procKib(path, "Pss_Anon");
    const int64_t shmem = procKib(path, "Pss_Shmem");
    const int64_t kib = anon >= 0 && shmem >= 0 ? anon + shmem : procKib(path, "Pss");
    if (kib < 0) {
      return -1;
    }
    total += kib;
  }
  return total;
}

int64_t serverRssSumKib(const std::vector<int64_t>& pids) {
  int64_t total = 0;
  for (const int64_t pid : pids) {
    const int64_t kib = readRssKib(pid);
    if (kib < 0) {
      return -1;
    }
    total += kib;
  }
  return pids.empty() ? -1 : total;
}

// CPU seconds (user + system) used so far by this process, and by `pid` from /proc (-1 when
// unreadable).
double selfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double processCpuSeconds(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) {
    return -1;
  }
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15: utime, stime (ticks)
    if (i == 14) {
      utime = std::atof(f.c_str());
    } else if (i == 15) {
      stime = std::atof(f.c_str());
    }
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

double serverCpuSeconds(const std::vector<int64_t>& pids) {
  double total = 0;
  for (const int64_t pid : pids) {
    const double s = processCpuSeconds(pid);
    if (s < 0) {
      return -1;
    }
    total += s;
  }
  return pids.empty() ? -1 : total;
}

struct CpuMark {
  int64_t at_ns = 0;
  double self = 0;
  double imgate = -1;
};

void sleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

double secondsSince(int64_t mono_ns) { return double(monoNs() - mono_ns) / 1e9; }

std::string isoNow() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string ipText(uint32_t host_order) {
  return std::to_string(host_order >> 24) + "." + std::to_string((host_order >> 16) & 255) + "." +
         std::to_string((host_order >> 8) & 255) + "." + std::to_string(host_order & 255);
}

void writeLatency(JsonWriter& w, std::string_view key, const Histogram& h) {
  w.key(key).beginObject();
  w.field("count", h.count());
  w.field("mean", h.mean() / 1e6);
  w.field("p50", double(h.quantile(0.50)) / 1e6);
  w.field("p90", double(h.quantile(0.90)) / 1e6);
  w.field("p99", double(h.quantile(0.99)) / 1e6);
  w.field("p999", double(h.quantile(0.999)) / 1e6);
  w.field("max", double(h.max()) / 1e6);
  w.endObject();
}

void writeCounts(JsonWriter& w, std::string_view key, const std::map<std::string, uint64_t>& m) {
  w.key(key).beginObject();
  for (const auto& [k, v] : m) {
    w.field(k, v);
  }
  w.endObject();
}

template <class Counter>
uint64_t sum(const std::vector<std::unique_ptr<Worker>>& workers, Counter counter) {
  uint64_t total = 0;
  for (const auto& wk : workers) {
    total += counter(*wk).load(std::memory_order_relaxed);
  }
  return total;
}

class Run {
 public:
  explicit Run(Options& o) : opt_(o), state_(o) {}

  int main();

 private:
  void progress(const char* phase);
  bool raiseFileLimit();
  void connectPhase();
  void holdIdle();
  void pushPhase();
  void uplinkPhase();
  void backendOnly();
  std::string report();
  CpuMark markCpu() const {
    return {monoNs(), selfCpuSeconds(), serverCpuSeconds(opt_.server_pids)};
  }

  uint64_t established() {
    return sum(
        workers_, [](Worker & w) -> auto& { return w.live.established; });
  }
  uint64_t failed() {
    return sum(
        workers_, [](Worker & w) -> auto& { return w.live.failed; });
  }
  uint64_t closed() {
    return sum(
        workers_, [](Worker & w) -> auto& { return w.live.closed; });
  }
  uint64_t deliveries() {
    return sum(
        workers_, [](Worker & w) -> auto& { return w.live.deliveries; });
  }

  Options& opt_;
  RunState state_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<ApiClient> api_;
  std::unique_ptr<TestBackend> backend_;
  std::vector<std::string> notes_;
  std::string started_at_;
  int64_t start_ns_ = 0;
  int64_t last_progress_ns_ = 0;
  uint64_t nofile_ = 0;
  double connect_seconds_ = 0;
  double hold_seconds_ = 0;
  double phase_seconds_ = 0;
  int64_t rss_before_ = -1;
  int64_t rss_connected_ = -1;
  int64_t rss_end_ = -1;
  int64_t rss_sum_before_ = -1;  // several server processes: summed VmRSS, for comparison
  int64_t rss_sum_connected_ = -1;
  int64_t client_rss_before_ = -1;
  int64_t client_rss_connected_ = -1;
  CpuMark cpu_connect_;  // connect phase start
  CpuMark cpu_phase_;    // scenario phase start
  CpuMark cpu_end_;
  int64_t uplink_start_ns_ = 0;
  int64_t uplink_end_ns_ = 0;
  bool complete_ = true;
};

void Run::progress(const char* phase) {
  if (opt_.quiet) {
    return;
  }
  const int64_t now = monoNs();
  if (now - last_progress_ns_ < 1'000'000'000) {
    return;
  }
  last_progress_ns_ = now;
  std::fprintf(stderr, "[%6.1fs] %-8s open %llu/%u failed %llu closed %llu deliveries %llu\n",
               secondsSince(start_ns_), phase, (unsigned long long)established(), opt_.connections,
               (unsigned long long)failed(), (unsigned long long)closed(),
               (unsigned long long)deliveries());
}

bool Run::raiseFileLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  nofile_ = rl.rlim_cur;
  const uint64_t need = uint64_t(opt_.connections) + opt_.api_conns + 256;
  if (opt_.scenario != Scenario::kBackend && need > nofile_) {
    std::fprintf(stderr,
                 "imgate_load: %u connections need about %llu descriptors but RLIMIT_NOFILE is "
                 "%llu (hard limit); lower --connections or raise the limit (bench/run tries)\n",
                 opt_.connections, (unsigned long long)need, (unsigned long long)nofile_);
    return false;
  }
  return true;
}

void Run::connectPhase() {
  const uint32_t threads = opt_.threads;
  const uint64_t budget = opt_.scenario == Scenario::kUplink ? opt_.pushes : 0;
  for (uint32_t i = 0; i < threads; ++i) {
    const uint64_t share = budget / threads + (i < budget % threads ? 1 : 0);
    workers_.push_back(std::make_unique<Worker>(state_, i, threads, share));
  }
  // After the workers allocated their Conn arrays and buffers: the growth from here is what
  // the connections themselves cost this process (user space; kernel socket memory is not RSS).
  client_rss_before_ = readRssKib(0);
  const int64_t t0 = monoNs();
  for (auto& w : workers_) {
    w->start();
  }
  while (!g_interrupted.load()) {
    if (established() + failed() >= opt_.connections) {
      break;
    }
    if (secondsSince(t0) > opt_.connect_timeout_s) {
      notes_.push_back("connect phase stopped by --connect-timeout");
      complete_ = false;
      break;
    }
    progress("connect");
    sleepMs(5);
  }
  connect_seconds_ = secondsSince(t0);
  const int64_t settle_until = monoNs() + int64_t(opt_.settle_s * 1e9);
  while (!g_interrupted.load() && monoNs() < settle_until) {
    progress("settle");
    sleepMs(20);
  }
  rss_connected_ = serverMemoryKib(opt_.server_pids);
  rss_sum_connected_ = serverRssSumKib(opt_.server_pids);
  client_rss_connected_ = readRssKib(0);
}

void Run::holdIdle() {
  const int64_t t0 = monoNs();
  const int64_t until = t0 + int64_t(opt_.duration_s * 1e9);
  while (!g_interrupted.load() && monoNs() < until) {
    progress("hold");
    sleepMs(50);
  }
  hold_seconds_ = secondsSince(t0);
}

void Run::pushPhase() {
  api_ = std::make_unique<ApiClient>(state_, opt_.connections);
  const int64_t t0 = monoNs();
  api_->start(int64_t(opt_.duration_s * 1e9));
  int64_t done_at = 0;
  // Joins get the connect timeout, sending the duration, late deliveries the drain time.
  const int64_t hard =
      t0 + int64_t((opt_.connect_timeout_s + opt_.duration_s + opt_.drain_s) * 1e9);
  while (!g_interrupted.load()) {
    const int64_t now = monoNs();
    if (api_->done.load()) {
      if (done_at == 0) {
        done_at = now;
      }
      if (deliveries() >= api_->expected_deliveries.load()) {
        break;
      }
      if (now - done_at > int64_t(opt_.drain_s * 1e9)) {
        notes_.push_back("stopped waiting for deliveries after --drain");
        break;
      }
    }
    if (now > hard) {
      notes_.push_back("push phase stopped by its time limit");
      complete_ = false;
      break;
    }
    progress(opt_.scenario == Scenario::kFanout ? "fanout" : "push");
    sleepMs(2);
  }
  phase_seconds_ = secondsSince(t0);
}

void Run::uplinkPhase() {
  uplink_start_ns_ = monoNs();
  state_.uplink_go.store(true);
  const int64_t stop_sending = uplink_start_ns_ + int64_t(opt_.duration_s * 1e9);
  int64_t drain_until = 0;
  while (!g_interrupted.load()) {
    const int64_t now = monoNs();
    const uint64_t sent = sum(
        workers_, [](Worker & w) -> auto& { return w.live.uplink_sent; });
    const uint64_t settled = sum(
        workers_, [](Worker & w) -> auto& { return w.live.uplink_settled; });
    bool budget_done = true;
    for (auto& w : workers_) {
      budget_done = budget_done && w->live.uplink_budget_done.load();
    }
    const bool all_closed = established() > 0 && closed() >= established();
    if ((budget_done || all_closed) && settled >= sent) {
      break;
    }
    if (now >= stop_sending && drain_until == 0) {
      state_.uplink_stop.store(true);
      drain_until = now + int64_t(opt_.drain_s * 1e9);
    }
    if (drain_until != 0 && now >= drain_until) {
      notes_.push_back("stopped waiting for uplink answers after --drain");
      break;
    }
    progress("uplink");
    sleepMs(2);
  }
  state_.uplink_stop.store(true);
  uplink_end_ns_ = monoNs();
  phase_seconds_ = double(uplink_end_ns_ - uplink_start_ns_) / 1e9;
}

void Run::backendOnly() {
  const int64_t until = monoNs() + int64_t(opt_.duration_s * 1e9);
  while (!g_interrupted.load() && monoNs() < until) {
    sleepMs(50);
  }
}

int Run::main() {
  started_at_ = isoNow();
  start_ns_ = monoNs();
  if (!raiseFileLimit()) {
    return 2;
  }
  if (opt_.backend) {
    backend_ = std::make_unique<TestBackend>(opt_.backend_listen);
    const std::string err = backend_->start();
    if (!err.empty()) {
      std::fprintf(stderr, "imgate_load: %s\n", err.c_str());
      return 1;
    }
  }
  // A watchdog for the hard time cap, should a phase hang: the sum of every phase's limit.
  const double cap_s =
      opt_.connect_timeout_s * 2 + opt_.settle_s + opt_.duration_s + opt_.drain_s + 30;
  std::thread([cap_s] {
    std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(cap_s * 1000)));
    std::fprintf(stderr, "imgate_load: hard time limit of %.0f s reached, exiting\n", cap_s);
    std::_Exit(3);
  }).detach();

  if (opt_.scenario == Scenario::kBackend) {
    backendOnly();
  } else {
    rss_before_ = serverMemoryKib(opt_.server_pids);
    rss_sum_before_ = serverRssSumKib(opt_.server_pids);
    cpu_connect_ = markCpu();
    connectPhase();
    cpu_phase_ = markCpu();
    if (established() == 0) {
      notes_.push_back("no connection was established");
      complete_ = false;
    } else if (!g_interrupted.load()) {
      switch (opt_.scenario) {
        case Scenario::kIdle:
          holdIdle();
          break;
        case Scenario::kPush:
        case Scenario::kFanout:
          pushPhase();
          break;
        case Scenario::kUplink:
          uplinkPhase();
          break;
        case Scenario::kBackend:
          break;
      }
    }
    cpu_end_ = markCpu();
    rss_end_ = serverMemoryKib(opt_.server_pids);
  }
  if (g_interrupted.load()) {
    notes_.push_back("interrupted by a signal");
    complete_ = false;
  }
  state_.stop.store(true);
  if (api_) {
    api_->join();
  }
  for (auto& w : workers_) {
    w->join();
  }
  if (backend_) {
    backend_->stop();
  }
  const std::string json = report();
  if (!opt_.json_path.empty()) {
    std::ofstream out(opt_.json_path);
    out << json << "\n";
    if (!out) {
      std::fprintf(stderr, "imgate_load: cannot write %s\n", opt_.json_path.c_str());
      return 1;
    }
  }
  std::printf("%s\n", json.c_str());
  return 0;
}

std::string Run::report() {
  WorkerStats all;
  uint64_t attempted = 0;
  uint64_t est = 0;
  uint64_t fail = 0;
  uint64_t unique = 0;
  uint64_t sent_up = 0;
  for (auto& wk : workers_) {
    const WorkerStats& s = wk->stats;
    attempted += wk->live.attempted.load();
    est += wk->live.established.load();
    fail += wk->live.failed.load();
    unique += wk->live.deliveries.load();
    sent_up += wk->live.uplink_sent.load();
    for (const auto& [k, v] : s.fail_reasons) {
      all.fail_reasons[k] += v;
    }
    for (const auto& [k, v] : s.close_reasons) {
      all.close_reasons[k] += v;
    }
    all.handshake.merge(s.handshake);
    all.latency.merge(s.latency);
    all.uplink_latency.merge(s.uplink_latency);
    all.duplicates += s.duplicates;
    all.out_of_range += s.out_of_range;
    all.negative_latency += s.negative_latency;
    all.unexpected_replies += s.unexpected_replies;
    all.uplink_ok += s.uplink_ok;
    all.uplink_errors += s.uplink_errors;
    all.uplink_lost += s.uplink_lost;
    if (s.first_delivery_ns != 0 &&
        (all.first_delivery_ns == 0 || s.first_delivery_ns < all.first_delivery_ns)) {
      all.first_delivery_ns = s.first_delivery_ns;
    }
    all.last_delivery_ns = std::max(all.last_delivery_ns, s.last_delivery_ns);
  }

  JsonWriter w;
  w.beginObject();
  w.field("tool", "imgate_load");
  w.field("schema", 1);
  w.field("scenario", scenarioName(opt_.scenario));
  w.field("protocol", protocolName(opt_.protocol));
  w.field("publisher", publisherName(opt_.publisher));
  w.field("started_at", started_at_);
  w.field("wall_seconds", secondsSince(start_ns_));
  w.field("complete", complete_);
  w.key("command").beginArray();
  for (const auto& a : opt_.argv) {
    w.value(a);
  }
  w.endArray();
  w.key("tags").beginObject();
  for (const auto& [k, v] : opt_.tags) {
    w.field(k, v);
  }
  w.endObject();
  w.key("params").beginObject();
  w.field("connections", opt_.connections);
  w.field("threads", opt_.threads);
  w.field("connect_rate", opt_.connect_rate);
  w.field("duration_s", opt_.duration_s);
  w.field("pushes", opt_.pushes);
  w.field("push_rate", opt_.push_rate);
  w.field("payload_bytes", opt_.payload_bytes);
  w.field("pipeline", opt_.pipeline);
  w.field("api_conns", opt_.api_conns);
  w.field("target", opt_.target.text());
  w.field("api", opt_.api.text());
  w.field("room", opt_.broadcast ? std::string() : opt_.room);
  w.field("broadcast", opt_.broadcast);
  if (opt_.source_first != 0) {
    w.field("source_ips", ipText(opt_.source_first) + "-" + ipText(opt_.source_last));
  } else {
    w.key("source_ips").null();
  }
  w.field("smoke", opt_.smoke);
  w.endObject();
  w.key("limits").beginObject();
  w.field("nofile", nofile_);
  w.endObject();

  if (opt_.scenario != Scenario::kBackend) {
    w.key("connect").beginObject();
    w.field("requested", opt_.connections);
    w.field("attempted", attempted);
    w.field("established", est);
    w.field("failed", fail);
    writeCounts(w, "failures", all.fail_reasons);
    w.field("seconds", connect_seconds_);
    w.field("rate_per_s", connect_seconds_ > 0 ? double(est) / connect_seconds_ : 0.0);
    writeLatency(w, "handshake_ms", all.handshake);
    w.endObject();

    w.key("memory").beginObject();
    if (opt_.imgate_pid != 0) {
      w.field("imgate_pid", opt_.imgate_pid);
      w.key("server_pids").beginArray();
      for (const int64_t pid : opt_.server_pids) {
        w.value(pid);
      }
      w.endArray();
      // imgate_rss_*: VmRSS of the one server process, or summed Pss of several (see
      // serverMemoryKib).
      w.field("server_memory", opt_.server_pids.size() == 1 ? "vmrss" : "pss_anon_shmem_sum");
      w.field("imgate_rss_before_kib", rss_before_);
      w.field("imgate_rss_connected_kib", rss_connected_);
      w.field("imgate_rss_end_kib", rss_end_);
      if (rss_before_ >= 0 && rss_connected_ >= 0 && est > 0) {
        w.field("imgate_rss_per_connection_bytes",
                double(rss_connected_ - rss_before_) * 1024.0 / double(est));
      } else {
        w.key("imgate_rss_per_connection_bytes").null();
      }
      if (opt_.server_pids.size() > 1 && rss_sum_before_ >= 0 && rss_sum_connected_ >= 0 &&
          est > 0) {
        w.field("server_vmrss_sum_per_connection_bytes",
                double(rss_sum_connected_ - rss_sum_before_) * 1024.0 / double(est));
      }
    }
    if (client_rss_before_ >= 0 && client_rss_connected_ >= 0 && est > 0) {
      w.field("client_rss_per_connection_bytes",
              double(client_rss_connected_ - client_rss_before_) * 1024.0 / double(est));
    }
    w.field("client_conn_state_bytes", uint64_t(sizeof(Conn)));
    w.endObject();

    // Who was busy: on a shared machine, a phase where the client used as much CPU as imgate
    // measured the client too.
    w.key("cpu").beginObject();
    const auto cpu = [&](std::string_view key, const CpuMark& a, const CpuMark& b) {
      w.key(key).beginObject();
      const double secs = double(b.at_ns - a.at_ns) / 1e9;
      w.field("seconds", secs);
      w.field("client_cpu_s", b.self - a.self);
      if (a.imgate >= 0 && b.imgate >= 0) {
        w.field("imgate_cpu_s", b.imgate - a.imgate);
      }
      w.endObject();
    };
    cpu("connect", cpu_connect_, cpu_phase_);
    cpu("phase", cpu_phase_, cpu_end_);
    w.field("cores", uint64_t(std::thread::hardware_concurrency()));
    w.endObject();

    w.key("sessions").beginObject();
    w.field("closed_by_server", closed());
    writeCounts(w, "close_reasons", all.close_reasons);
    if (opt_.scenario == Scenario::kIdle) {
      w.field("hold_seconds", hold_seconds_);
    }
    w.endObject();
  }

  if (opt_.scenario == Scenario::kPush || opt_.scenario == Scenario::kFanout) {
    const ApiStats* a = api_ ? &api_->stats : nullptr;
    const uint64_t expected = a != nullptr ? a->sessions : 0;
    w.key("deliveries").beginObject();
    w.field("expected", expected);
    w.field("received", unique);
    w.field("lost", expected > unique ? expected - unique : 0);
    w.field("unaccounted", unique > expected ? unique - expected : 0);
    w.field("duplicated", all.duplicates);
    w.field("out_of_range", all.out_of_range);
    w.field("negative_latency", all.negative_latency);
    double span = 0;
    if (a != nullptr && !a->publish_ns.empty() && a->publish_ns[0] != 0) {
      span = double(all.last_delivery_ns - a->publish_ns[0]) / 1e9;
    } else if (all.first_delivery_ns != 0) {
      span = double(all.last_delivery_ns - all.first_delivery_ns) / 1e9;
    }
    w.field("per_second", span > 0 ? double(unique) / span : 0.0);
    writeLatency(w, "latency_ms", all.latency);
    w.endObject();
    if (a != nullptr) {
      w.key("push_api").beginObject();
      w.field("sent", a->sent);
      w.field("accepted", a->accepted);
      w.field("unanswered", a->unanswered);
      w.field("dropped", a->dropped);
      w.key("statuses").beginObject();
      for (const auto& [status, n] : a->statuses) {
        w.field(std::to_string(status), n);
      }
      w.endObject();
      writeCounts(w, "errors", a->errors);
      const double api_span = a->last_answer_ns > a->first_send_ns
                                  ? double(a->last_answer_ns - a->first_send_ns) / 1e9
                                  : 0;
      w.field("seconds", api_span);
      w.field("per_second", api_span > 0 ? double(a->accepted) / api_span : 0.0);
      writeLatency(w, "response_ms", a->response_latency);
      if (!a->first_error.empty()) {
        w.field("first_error", a->first_error);
      }
      w.endObject();
    }
    if (opt_.scenario == Scenario::kFanout && a != nullptr) {
      std::vector<uint32_t> count(size_t(opt_.pushes), 0);
      std::vector<int64_t> last(size_t(opt_.pushes), 0);
      for (auto& wk : workers_) {
        for (size_t i = 0; i < count.size(); ++i) {
          count[i] += wk->stats.msg_count[i];
          last[i] = std::max(last[i], wk->stats.msg_last_ns[i]);
        }
      }
      Histogram full;
      uint64_t messages = 0;
      uint64_t complete = 0;
      std::vector<uint64_t> incomplete_first;  // message numbers, for diagnosis
      uint32_t min_rcpt = UINT32_MAX;
      uint32_t max_rcpt = 0;
      for (size_t i = 0; i < count.size(); ++i) {
        if (a->publish_ns[i] == 0) {
          continue;  // never sent
        }
        ++messages;
        min_rcpt = std::min(min_rcpt, a->recipients[i]);
        max_rcpt = std::max(max_rcpt, a->recipients[i]);
        if (a->recipients[i] > 0 && count[i] >= a->recipients[i]) {
          ++complete;
          full.record(uint64_t(std::max<int64_t>(0, last[i] - a->publish_ns[i])));
        } else if (incomplete_first.size() < 20) {
          incomplete_first.push_back(i + 1);
        }
      }
      w.key("fanout").beginObject();
      w.field("target", opt_.broadcast ? std::string("all") : "room:" + opt_.room);
      w.field("messages", messages);
      w.field("recipients_min", messages > 0 ? min_rcpt : 0);
      w.field("recipients_max", max_rcpt);
      w.field("fully_delivered", complete);
      w.field("incomplete", messages - complete);
      w.key("incomplete_first").beginArray();
      for (const uint64_t n : incomplete_first) {
        w.value(n);
      }
      w.endArray();
      writeLatency(w, "full_delivery_ms", full);
      if (!opt_.broadcast) {
        w.key("join").beginObject();
        w.field("requests", a->join_requests);
        w.field("joined", a->joined);
        w.field("offline", a->join_offline);
        w.field("failed", a->join_failed);
        w.field("seconds", a->join_seconds);
        w.endObject();
      }
      w.endObject();
    }
  }

  if (opt_.scenario == Scenario::kUplink) {
    const uint64_t answered = all.uplink_ok + all.uplink_errors;
    w.key("uplink").beginObject();
    w.field("sent", sent_up);
    w.field("acked", all.uplink_ok);
    w.field("errors", all.uplink_errors);
    w.field("lost_with_connection", all.uplink_lost);
    w.field("unanswered",
            sent_up > answered + all.uplink_lost ? sent_up - answered - all.uplink_lost : 0);
    w.field("unexpected_replies", all.unexpected_replies);
    w.field("seconds", phase_seconds_);
    w.field("per_second", phase_seconds_ > 0 ? double(all.uplink_ok) / phase_seconds_ : 0.0);
    writeLatency(w, "ack_ms", all.uplink_latency);
    w.endObject();
  }

  if (backend_) {
    w.key("backend").beginObject();
    w.field("listen", opt_.backend_listen.text());
    w.field("requests", backend_->requests.load());
    w.field("connections", backend_->connections.load());
    w.field("errors", backend_->errors.load());
    w.endObject();
  }

  w.key("notes").beginArray();
  for (const auto& n : notes_) {
    w.value(n);
  }
  w.endArray();
  w.endObject();
  return w.str();
}

}  // namespace
}  // namespace imgate::bench::load

int main(int argc, char** argv) {
  using namespace imgate::bench::load;
  Options options;
  bool help = false;
  const std::string err = parseOptions(argc, argv, options, help);
  if (help) {
    std::fputs(usageText(), stdout);
    return 0;
  }
  if (!err.empty()) {
    std::fprintf(stderr, "imgate_load: %s\n", err.c_str());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  Run run(options);
  return run.main();
}
