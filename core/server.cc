// SPDX-License-Identifier: Apache-2.0
#include "server.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <cstring>
#include <fstream>

#include "common/log.h"
#include "common/stats.h"
#include "hub/local_hub.h"
#include "upstream/backend_state.h"

namespace imgate::core {

namespace {

int64_t nowMs() {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

constexpr const char* kVersion = "0.1.0";

}  // namespace

Server::Server(std::string config_path) : config_path_(std::move(config_path)) {}

Server::~Server() {
  for (event* ev : signal_events_) {
    event_free(ev);
  }
}

bool Server::configureLog(const Generation& gen, std::string& error) {
  int fd = 2;
  if (!gen.log_file.empty()) {
    fd = ::open(gen.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      error = format("cannot open log file ", quote(gen.log_file), ": ", std::strerror(errno));
      return false;
    }
  }
  Log::instance().configure(gen.log_level, gen.log_format, fd);
  Log::instance().setAccessLog(gen.access_log);
  if (log_fd_ != 2 && log_fd_ != fd) {
    ::close(log_fd_);  // lines already written went to the old file; reopen on reload (rotation)
  }
  log_fd_ = fd;
  return true;
}

tl::expected<std::vector<std::shared_ptr<ListenSocket>>, std::string> Server::openSockets(
    const Generation& gen) {
  std::vector<std::shared_ptr<ListenSocket>> out;
  for (const ListenerSpec& spec : gen.listeners) {
    auto it = sockets_.find(spec.socketKey());
    if (it != sockets_.end()) {
      out.push_back(it->second);
      continue;
    }
    auto sock = openListenSocket(spec.bind, static_cast<unsigned>(workers_.size()));
    if (!sock) {
      return tl::unexpected(format("listener ", quote(spec.name), ": ", sock.error().message));
    }
    (*sock)->bind = spec.socketKey();
    out.push_back(std::shared_ptr<ListenSocket>(std::move(*sock)));
  }
  return out;
}

void Server::publish(std::shared_ptr<const Generation> gen,
                     std::vector<std::shared_ptr<ListenSocket>> sockets, bool wait_applied) {
  std::map<std::string, std::shared_ptr<ListenSocket>> next;
  std::vector<BoundListener> bound;
  for (size_t i = 0; i < gen->listeners.size(); ++i) {
    next[sockets[i]->bind] = sockets[i];
    bound.push_back({gen->listeners[i].name, sockets[i]->port,
                     gen->listeners[i].exact_balance ? sockets[i] : nullptr});
    LOG_NOTICE("listening on ", gen->listeners[i].bind, " port ", sockets[i]->port, " (listener ",
               quote(gen->listeners[i].name), gen->listeners[i].tls ? ", tls" : "", ")");
  }
  sockets_ = std::move(next);  // sockets no longer listed close once the workers drop them
  current_ = gen;
  registry_->configure(gen->delivery);
  if (health_) {
    health_->setUpstreams(gen->upstreams);
  }
  {
    std::lock_guard lock(status_mu_);
    bound_ = std::move(bound);
    generation_id_ = gen->id;
  }
  // A reload is reported done once every worker runs the new generation, so the next message a
  // client sends after "reload done" meets the new rules (the workers apply it on their own
  // threads; this thread waits, bounded, which costs a reload a loop turn of each worker).
  struct Applied {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
  };
  auto applied = std::make_shared<Applied>();
  applied->left = workers_.size();
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->postNow([worker, gen, sockets, applied] {
      worker->apply(gen, sockets);
      std::lock_guard lock(applied->mu);
      if (--applied->left == 0) {
        applied->cv.notify_all();
      }
    });
  }
  if (wait_applied) {
    std::unique_lock lock(applied->mu);
    if (!applied->cv.wait_for(lock, kApplyWait, [&] { return applied->left == 0; })) {
      LOG_WARN("reload: ", applied->left, " worker(s) did not take generation ", gen->id,
               " within ", kApplyWait.count(), " ms; they will when their loop turns");
    }
  }
}

std::vector<std::string> Server::reload() {
  LOG_NOTICE("reloading configuration from ", quote(config_path_));
  auto built = buildGeneration(config_path_, current_.get(), this);
  std::vector<std::string> errors;
  if (!built) {
    errors = built.error();
  } else {
    auto sockets = openSockets(**built);
    if (!sockets) {
      errors.push_back(format(config_path_, ": ", sockets.error()));
    } else {
      std::string log_error;
      if (!configureLog(**built, log_error)) {
        errors.push_back(format(config_path_, ": log.file: ", log_error));
      } else {
        (*built)->id = next_generation_++;
        publish(*built, std::move(*sockets), true);
      }
    }
  }
  {
    std::lock_guard lock(status_mu_);
    last_reload_ok_ = errors.empty();
    last_reload_at_ms_ = nowMs();
    last_reload_errors_ = errors;
  }
  auto& c = StatsRegistry::instance().core();
  if (errors.empty()) {
    c.reloads_ok.fetch_add(1);
    LOG_NOTICE("reload done, generation ", current_->id);
  } else {
    c.reloads_failed.fetch_add(1);
    for (const std::string& e : errors) {
      LOG_ERROR("reload failed: ", e);
    }
    LOG_ERROR("reload failed, still running generation ", current_->id);
  }
  return errors;
}

void Server::requestReload(std::function<void(bool, std::string)> done) {
  Dispatcher* origin = nullptr;
  for (auto& w : workers_) {
    if (w->onThread()) {
      origin = w.get();
    }
  }
  main_.post([this, origin, done = std::move(done)] {
    auto errors = reload();
    std::string message;
    if (errors.empty()) {
      message = std::to_string(current_->id);
    } else {
      for (const auto& e : errors) {
        message.append(message.empty() ? "" : "; ").append(e);
      }
    }
    const bool ok = errors.empty();
    if (origin != nullptr) {
      origin->post([done, ok, message] { done(ok, message); });
    }
  });
}

void Server::scheduleHistorySweep() {
  sweep_timer_ = main_.schedule(std::chrono::milliseconds(250), [this] {
    registry_->streams().sweep(main_.wallMs());
    main_.post([this] { scheduleHistorySweep(); });  // re-arm outside the timer's callback
  });
}

std::string Server::metricsText() {
  std::string out;
  out.reserve(8192);
  StatsRegistry::instance().render(out, registry_ ? registry_->totalUsers() : 0,
                                   registry_ ? registry_->totalRooms() : 0, Log::instance().errors());
  if (registry_) {
    const StreamStoreStats h = registry_->streams().stats();
    out.append("# HELP imgate_history_streams Streams with a seq counter (users, rooms, all).\n"
               "# TYPE imgate_history_streams gauge\nimgate_history_streams ");
    out.append(std::to_string(h.streams));
    out.append("\n# HELP imgate_history_messages Messages kept for recovery.\n"
               "# TYPE imgate_history_messages gauge\nimgate_history_messages ");
    out.append(std::to_string(h.messages));
    out.append("\n# HELP imgate_history_bytes Bytes of history (approximate).\n"
               "# TYPE imgate_history_bytes gauge\nimgate_history_bytes ");
    out.append(std::to_string(h.bytes));
    out.append("\n# HELP imgate_history_dropped_total Messages dropped from history, by "
               "cause.\n# TYPE imgate_history_dropped_total counter\n"
               "imgate_history_dropped_total{cause=\"limit\"} ");
    out.append(std::to_string(h.evicted));
    out.append("\nimgate_history_dropped_total{cause=\"age\"} ");
    out.append(std::to_string(h.expired)).append("\n");
  }
  upstream::renderUpstreamMetrics(out);
  return out;
}

std::string Server::statusJson() {
  std::lock_guard lock(status_mu_);
  const auto& c = StatsRegistry::instance().core();
  std::string out = format("{\"version\":\"", kVersion, "\",\"pid\":", getpid(),
                           ",\"generation\":", generation_id_, ",\"config\":", jsonQuote(config_path_),
                           ",\"workers\":", workers_.size(), ",\"draining\":", draining_.load(),
                           ",\"sessions\":", c.sessions_active.load(),
                           ",\"connections\":", c.connections_active.load(),
                           ",\"users\":", registry_ ? registry_->totalUsers() : 0,
                           ",\"last_reload\":{\"ok\":", last_reload_ok_,
                           ",\"at\":", last_reload_at_ms_, ",\"errors\":[");
  for (size_t i = 0; i < last_reload_errors_.size(); ++i) {
    out.append(i ? "," : "").append(jsonQuote(last_reload_errors_[i]));
  }
  out.append("]},\"listeners\":[");
  for (size_t i = 0; i < bound_.size(); ++i) {
    const BoundListener& b = bound_[i];
    out.append(i ? "," : "").append(format("{\"name\":", jsonQuote(b.name), ",\"port\":", b.port));
    if (b.balanced) {
      // Open connections per worker: what balance: exact evens out.
      out.append(",\"balance\":\"exact\",\"open\":[");
      for (size_t w = 0; w < b.balanced->fds.size(); ++w) {
        out.append(w ? "," : "")
            .append(std::to_string(b.balanced->open[w].load(std::memory_order_relaxed)));
      }
      out.push_back(']');
    }
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

void Server::signalCallback(int fd, short, void* arg) { static_cast<Server*>(arg)->onSignal(fd); }

void Server::onSignal(int sig) {
  switch (sig) {
    case SIGHUP:
      reload();
      break;
    case SIGQUIT:
      gracefulStop();
      break;
    case SIGTERM:
    case SIGINT:
      LOG_NOTICE("signal ", sig, " received, stopping now");
      fastStop();
      break;
    default:
      break;
  }
}

void Server::gracefulStop() {
  if (draining_.exchange(true)) {
    return;
  }
  LOG_NOTICE("graceful stop: closing sessions, waiting up to ", current_->shutdown_timeout.count(),
             "ms");
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->post([worker] { worker->drain(); });
  }
  drain_deadline_ms_ = nowMs() + current_->shutdown_timeout.count();
  stop_timer_ = main_.schedule(std::chrono::milliseconds(10), [this] { checkDrained(); });
}

// Polls the connection count: cheap, and the main thread has nothing else to do while draining.
void Server::checkDrained() {
  const uint64_t open = StatsRegistry::instance().core().connections_active.load();
  if (open == 0 || nowMs() >= drain_deadline_ms_) {
    if (open != 0) {
      LOG_WARN("shutdown timeout with ", open, " connections still open");
    }
    fastStop();
    return;
  }
  stop_timer_ = main_.schedule(std::chrono::milliseconds(50), [this] { checkDrained(); });
}

void Server::fastStop() {
  for (auto& w : workers_) {
    w->stop();
  }
  main_.stop();
}

int Server::run() {
  auto built = buildGeneration(config_path_, nullptr, this);
  if (!built) {
    for (const std::string& e : built.error()) {
      fprintf(stderr, "imgate: %s\n", e.c_str());
    }
    fprintf(stderr, "imgate: configuration %s is invalid\n", config_path_.c_str());
    return 1;
  }
  std::string log_error;
  if (!configureLog(**built, log_error)) {
    fprintf(stderr, "imgate: %s\n", log_error.c_str());
    return 1;
  }
  const unsigned n = (*built)->workers;
  std::vector<Worker*> raw;
  registry_ = std::make_unique<Registry>(std::vector<Worker*>{});
  // Registry needs the worker list and workers need the registry: build both, then wire.
  for (unsigned i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, *registry_));
    raw.push_back(workers_.back().get());
  }
  registry_->setWorkers(raw);
  registry_->configure((*built)->delivery);
  auto sockets = openSockets(**built);
  if (!sockets) {
    fprintf(stderr, "imgate: %s: %s\n", config_path_.c_str(), sockets.error().c_str());
    return 1;
  }
  (*built)->id = next_generation_++;
  if (!(*built)->pid_file.empty()) {
    std::ofstream pid((*built)->pid_file, std::ios::trunc);
    pid << getpid() << "\n";
  }
  std::shared_ptr<const Generation> first = *built;
  for (auto& w : workers_) {
    w->apply(first, *sockets);  // before the threads start: no race
  }
  {
    std::map<std::string, std::shared_ptr<ListenSocket>> by_bind;
    std::lock_guard lock(status_mu_);
    for (size_t i = 0; i < first->listeners.size(); ++i) {
      by_bind[(*sockets)[i]->bind] = (*sockets)[i];
      bound_.push_back({first->listeners[i].name, (*sockets)[i]->port,
                        first->listeners[i].exact_balance ? (*sockets)[i] : nullptr});
      LOG_NOTICE("listening on ", first->listeners[i].bind, " port ", (*sockets)[i]->port,
                 " (listener ", quote(first->listeners[i].name),
                 first->listeners[i].tls ? ", tls" : "", ")");
    }
    sockets_ = std::move(by_bind);
    generation_id_ = first->id;
    current_ = first;
  }
  sockets->clear();  // the workers and sockets_ own them now; a reload may drop them
  health_ = std::make_unique<upstream::HealthChecker>(main_);
  health_->setUpstreams(first->upstreams);
  scheduleHistorySweep();
  signal(SIGPIPE, SIG_IGN);
  for (int sig : {SIGHUP, SIGQUIT, SIGTERM, SIGINT}) {
    event* ev = evsignal_new(main_.base(), sig, &Server::signalCallback, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  setCurrentDispatcher(&main_);
  for (auto& w : workers_) {
    w->start();
  }
  LOG_NOTICE("imgate ", kVersion, " started: ", n, " workers, config ", quote(config_path_),
             ", pid ", getpid());
  // From here current_, the workers and the sessions own the generation: locals must not pin
  // it (nor its module .so files) past the first reload.
  first.reset();
  built->reset();
  main_.run();
  for (auto& w : workers_) {
    w->join();
  }
  sweep_timer_.reset();
  health_.reset();
  if (!current_->pid_file.empty()) {
    ::unlink(current_->pid_file.c_str());
  }
  LOG_NOTICE("imgate stopped");
  workers_.clear();
  return 0;
}

}  // namespace imgate::core
