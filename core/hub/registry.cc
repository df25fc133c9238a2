// SPDX-License-Identifier: Apache-2.0
#include "hub/registry.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "common/clock.h"
#include "common/stats.h"
#include "event/worker.h"
#include "hub/local_hub.h"
#include "module/library_scope.h"
#include "net/connection.h"

namespace imgate::core {

namespace {
thread_local Dispatcher* tls_dispatcher = nullptr;
}  // namespace

// Shared by the workers taking part in one push; the last one to finish reports to the origin
// (with wait_ack: once every awaited user acked, or at the deadline, whichever comes first).
struct PushJob : std::enable_shared_from_this<PushJob> {
  std::atomic<size_t> remaining{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> dropped{0};
  std::mutex mu;
  // Guarded by mu once workers run.
  std::vector<std::string> offline;
  std::vector<std::string> offline_stored;
  std::vector<PushResult::Position> positions;
  std::vector<std::string> acked;
  std::vector<std::string> awaited;  // users whose first ack is still awaited
  bool written = false;              // every worker has delivered
  std::function<void(PushResult)> done;
  Dispatcher* origin = nullptr;
  std::chrono::milliseconds wait_ack{0};
  Registry* registry = nullptr;
  // On the origin thread only.
  bool reported = false;
  TimerPtr deadline;

  // One worker is done. `on_loop`: called from a posted callback on a worker's loop, where
  // answering the origin directly is safe when this is the origin's own thread (no re-entry into
  // the caller of Registry::push, which only ever runs before any post).
  void finishOne(bool on_loop) {
    if (remaining.fetch_sub(1) != 1) {
      return;
    }
    bool wait = false;
    {
      std::lock_guard lock(mu);
      written = true;
      wait = !awaited.empty() && origin != nullptr;
    }
    if (!wait) {
      if (on_loop && origin != nullptr && origin == tls_dispatcher) {
        reportNow();  // saves a post to ourselves: the same context that post would run in
      } else {
        report();
      }
      return;
    }
    origin->post([self = shared_from_this()] {
      if (self->reported) {
        return;
      }
      self->deadline = self->origin->schedule(self->wait_ack, [self] {
        self->origin->post([self] { self->reportNow(); });  // never inside the timer's own callback
      });
    });
  }

  // A user's device acked (any thread).
  void userAcked(const std::string& user) {
    bool all = false;
    {
      std::lock_guard lock(mu);
      auto it = std::find(awaited.begin(), awaited.end(), user);
      if (it == awaited.end()) {
        return;
      }
      awaited.erase(it);
      acked.push_back(user);
      all = awaited.empty() && written;
    }
    if (all) {
      report();
    }
  }

  // Completes the job on the origin thread (where `reported` and `deadline` live); a caller
  // without an event loop gets it where the job finished.
  void report() {
    if (origin != nullptr) {
      origin->post([self = shared_from_this()] { self->reportNow(); });
    } else {
      reportNow();
    }
  }

  void reportNow() {
    if (reported) {
      return;
    }
    reported = true;
    deadline.reset();
    PushResult result;
    result.sessions = delivered.load();
    result.dropped = dropped.load();
    {
      std::lock_guard lock(mu);
      result.offline = std::move(offline);
      result.offline_stored = std::move(offline_stored);
      result.positions = std::move(positions);
      result.acked = std::move(acked);
      result.unacked = std::move(awaited);
    }
    if (registry != nullptr && wait_ack.count() > 0) {
      registry->forgetWaiter(this);
    }
    if (auto cb = std::move(done)) {
      cb(std::move(result));
    }
  }
};

static_assert(sizeof(SessionList) <= 80, "the user map node holds one session: the 144-byte class");
static_assert(sizeof(SessionRef) <= 80, "a user's session list entry fits the 80-byte class");

const char* internName(std::string_view name) {
  static std::mutex mu;
  static auto* names = new std::unordered_set<std::string>();  // never freed: names outlive exit
  std::lock_guard lock(mu);
  return names->emplace(name).first->c_str();  // set nodes never move
}

const char* internOrigin(std::string_view protocol, std::string_view listener) {
  std::string both(protocol);
  both.push_back('\0');
  both.append(listener);
  return internName(both);  // c_str() ends it with the second NUL
}

void setCurrentDispatcher(Dispatcher* dispatcher) { tls_dispatcher = dispatcher; }

Registry::Registry(std::vector<Worker*> workers)
    : workers_(std::move(workers)), store_(std::make_unique<MemoryStreamStore>()) {}

Registry::~Registry() = default;

std::string Registry::key(const std::string& app, const std::string& name) {
  std::string k;
  k.reserve(app.size() + name.size() + 1);
  k.append(app).push_back('\0');
  k.append(name);
  return k;
}

Registry::AddResult Registry::add(const std::string& app, const std::string& user,
                                  const SessionRef& ref, uint32_t max_per_user) {
  AddResult result;
  const std::string k = key(app, user);
  UserShard& shard = userShard(k);
  std::lock_guard lock(shard.mu);
  UserEntry& entry = shard.users[k];
  result.first = entry.sessions.empty();
  entry.sessions.push_back(ref);
  if (max_per_user > 0) {
    while (entry.sessions.size() > max_per_user) {
      result.evict.push_back(entry.sessions.front().id);
      entry.sessions.pop_front();
    }
  }
  result.rooms = entry.rooms.list();
  return result;
}

void Registry::remove(const std::string& app, const std::string& user, uint64_t session_id) {
  const std::string k = key(app, user);
  std::vector<std::string> left_rooms;
  {
    UserShard& shard = userShard(k);
    std::lock_guard lock(shard.mu);
    auto it = shard.users.find(k);
    if (it == shard.users.end()) {
      return;
    }
    auto& sessions = it->second.sessions;
    sessions.erase(session_id);
    if (!sessions.empty()) {
      return;
    }
    left_rooms = it->second.rooms.list();
    shard.users.erase(it);
    // Still under the user's lock, so no push for the user slips between: what follows the
    // current head is stored for the user's next session.
    store_->markOffline(streamKey(app, "user", user));
  }
  for (const std::string& room : left_rooms) {
    const std::string rk = key(app, room);
    RoomShard& rs = roomShard(rk);
    std::lock_guard lock(rs.mu);
    auto it = rs.rooms.find(rk);
    if (it != rs.rooms.end()) {
      it->second.erase(user);
      if (it->second.empty()) {
        rs.rooms.erase(it);
      }
    }
  }
}

void Registry::configure(const DeliverySettings& settings) {
  {
    std::lock_guard lock(delivery_mu_);
    delivery_ = settings;
  }
  store_->setLimits(settings.limits);
}

DeliverySettings Registry::delivery() const {
  std::lock_guard lock(delivery_mu_);
  return delivery_;
}

void Registry::push(const std::string& app, PushTarget target, Message message,
                    std::function<void(PushResult)> done) {
  StatsRegistry::instance().core().pushes.fetch_add(1, std::memory_order_relaxed);
  auto job = std::make_shared<PushJob>();
  job->done = module::pinned(std::move(done));
  job->origin = tls_dispatcher;
  job->registry = this;
  message.app = app;
  message.to_kind = target.kind;
  const DeliverySettings settings = delivery();
  // Only data gets a seq: control and presence notices are not part of any stream.
  const bool sequenced = settings.enabled && message.kind == MessageKind::kData;
  if (!sequenced && message.kind == MessageKind::kData) {
    message.seq = 0;  // data outside any stream (delivery.enabled: false)
    message.epoch = 0;
    message.stream.clear();
  }
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t start = steadyUs();
  const size_t n = workers_.size();

  // Per worker: (message, sessions) batches. A user push gives each user its own copy (its
  // own seq); rooms and broadcasts share one message among all recipients.
  struct Batch {
    MessagePtr message;
    std::vector<uint64_t> ids;
    std::vector<std::string> room_keys;
  };
  std::vector<std::vector<Batch>> per_worker(n);
  // Sequenced user pushes make each user's copy in the stream store; the others share one.
  MessagePtr shared_message;
  auto shared = [&]() -> const MessagePtr& {
    if (!shared_message) {
      shared_message = std::make_shared<const Message>(message);
    }
    return shared_message;
  };
  switch (target.kind) {
    case TargetKind::kUser: {
      if (target.wait_ack.count() > 0 && sequenced) {
        job->wait_ack = target.wait_ack;
      }
      for (size_t i = 0; i < target.ids.size(); ++i) {
        const std::string& user = target.ids[i];
        const std::string k = key(app, user);
        UserShard& shard = userShard(k);
        const std::string stream_key = sequenced ? streamKey(app, "user", user) : std::string();
        // Under the user's lock: a session added after this gets the next seq live, one added
        // before it is in this lookup (Connection reads the stream head after add()).
        std::lock_guard lock(shard.mu);
        MessagePtr m;
        if (sequenced) {
          // The last (often the only) user's copy takes the message itself.
          m = store_->append(stream_key, "user",
                             i + 1 == target.ids.size() ? std::move(message) : Message(message),
                             now_ms);
        } else {
          m = shared();
        }
        auto it = shard.users.find(k);
        const bool online = it != shard.users.end() && !it->second.sessions.empty();
        {
          std::lock_guard job_lock(job->mu);
          if (sequenced) {
            job->positions.push_back({user, "user", m->epoch, m->seq});
          }
          if (!online) {
            job->offline.push_back(user);
            if (sequenced && settings.offline && settings.limits.max_messages > 0) {
              job->offline_stored.push_back(user);
              // The first message of a user never seen online starts the offline backlog.
              store_->markOffline(stream_key, m->seq - 1);
            }
          } else if (job->wait_ack.count() > 0) {
            job->awaited.push_back(user);
          }
        }
        if (!online) {
          continue;
        }
        if (job->wait_ack.count() > 0) {
          std::lock_guard wl(waiters_mu_);
          waiters_.emplace(stream_key, AckWaiter{m->epoch, m->seq, user, job});
        }
        std::vector<Batch*> batches(n, nullptr);
        for (const SessionRef& ref : it->second.sessions) {
          const size_t w = workerOf(ref.id) % n;
          if (batches[w] == nullptr) {
            per_worker[w].push_back(Batch{m, {}, {}});
            batches[w] = &per_worker[w].back();
          }
          batches[w]->ids.push_back(ref.id);
        }
      }
      break;
    }
    case TargetKind::kSession: {
      if (sequenced) {
        message.seq = 0;  // session-targeted messages belong to no stream
      }
      for (const std::string& id : target.ids) {
        char* end = nullptr;
        const uint64_t sid = std::strtoull(id.c_str(), &end, 10);
        if (id.empty() || *end != '\0' || workerOf(sid) >= n) {
          job->offline.push_back(id);
          continue;
        }
        auto& batches = per_worker[workerOf(sid)];
        if (batches.empty()) {
          batches.push_back(Batch{shared(), {}, {}});
        }
        batches.front().ids.push_back(sid);
      }
      break;
    }
    case TargetKind::kRoom:
      for (const std::string& room : target.ids) {
        MessagePtr m;
        if (sequenced) {
          m = store_->append(streamKey(app, roomStream(room), ""), roomStream(room), message,
                             now_ms);
          std::lock_guard job_lock(job->mu);
          job->positions.push_back({room, roomStream(room), m->epoch, m->seq});
        } else {
          m = shared();
        }
        for (size_t w = 0; w < n; ++w) {
          per_worker[w].push_back(Batch{m, {}, {key(app, room)}});
        }
      }
      break;
    case TargetKind::kAll: {
      MessagePtr m;
      if (sequenced && settings.broadcast_stream) {
        m = store_->append(streamKey(app, "all", ""), "all", message, now_ms);
        std::lock_guard job_lock(job->mu);
        job->positions.push_back({app, "all", m->epoch, m->seq});
      } else {
        if (sequenced) {
          message.seq = 0;  // a broadcast outside the "all" stream
        }
        m = shared();
      }
      for (size_t w = 0; w < n; ++w) {
        per_worker[w].push_back(Batch{m, {}, {}});
      }
      break;
    }
    case TargetKind::kNone:
      break;
  }

  std::vector<size_t> involved;
  for (size_t w = 0; w < n; ++w) {
    if (!per_worker[w].empty()) {
      involved.push_back(w);
    }
  }
  if (involved.empty()) {
    job->remaining = 1;
    job->finishOne(false);
    return;
  }
  job->remaining = involved.size();
  for (size_t w : involved) {
    Worker* worker = workers_[w];
    worker->post([worker, job, start, batches = std::move(per_worker[w]), kind = target.kind,
                  app]() {
      LocalHub& hub = worker->hub();
      for (const Batch& batch : batches) {
        Delivery delivery;
        delivery.message = batch.message;
        delivery.start_us = start;
        if (kind == TargetKind::kRoom) {
          for (const std::string& rk : batch.room_keys) {
            hub.deliverToRoom(delivery, rk);
          }
        } else if (kind == TargetKind::kAll) {
          hub.deliverToAll(delivery, app);
        } else {
          if (kind == TargetKind::kSession) {
            std::lock_guard lock(job->mu);
            for (uint64_t id : batch.ids) {
              const Connection* c = hub.find(id);
              if (c == nullptr || c->identity().app != app) {
                job->offline.push_back(std::to_string(id));
              }
            }
          }
          hub.deliverToSessions(delivery, batch.ids, app);
        }
        job->delivered.fetch_add(delivery.delivered);
        job->dropped.fetch_add(delivery.dropped);
      }
      job->finishOne(true);
    });
  }
}

void Registry::streamAcked(const std::string& app, const std::string& user, uint64_t epoch,
                           uint64_t seq) {
  std::vector<std::pair<std::shared_ptr<PushJob>, std::string>> fired;
  {
    std::lock_guard lock(waiters_mu_);
    if (waiters_.empty()) {
      return;
    }
    auto [b, e] = waiters_.equal_range(streamKey(app, "user", user));
    for (auto it = b; it != e;) {
      if (it->second.epoch == epoch && it->second.seq <= seq) {
        fired.emplace_back(it->second.job, it->second.user);
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [job, u] : fired) {
    job->userAcked(u);
  }
}

void Registry::forgetWaiter(const PushJob* job) {
  std::lock_guard lock(waiters_mu_);
  std::erase_if(waiters_, [job](const auto& kv) { return kv.second.job.get() == job; });
}

std::vector<SessionInfo> Registry::userSessions(const std::string& app, const std::string& user) {
  std::vector<SessionInfo> out;
  const std::string k = key(app, user);
  UserShard& shard = userShard(k);
  std::lock_guard lock(shard.mu);
  auto it = shard.users.find(k);
  if (it == shard.users.end()) {
    return out;
  }
  std::vector<std::string> rooms = it->second.rooms.list();
  std::sort(rooms.begin(), rooms.end());
  for (const SessionRef& ref : it->second.sessions) {
    SessionInfo info;
    info.id = ref.id;
    info.user = user;
    info.device = ref.device.str();
    info.protocol = ref.protocol();
    info.listener = ref.listener();
    info.peer = ref.peer.str();
    info.connected_at_ms = ref.connected_at_ms;
    info.rooms = rooms;
    out.push_back(std::move(info));
  }
  return out;
}

void Registry::kick(const std::string& app, const std::string& user, uint64_t session_id,
                    std::string reason, std::function<void(uint64_t)> done) {
  std::vector<uint64_t> ids;
  {
    const std::string k = key(app, user);
    UserShard& shard = userShard(k);
    std::lock_guard lock(shard.mu);
    auto it = shard.users.find(k);
    if (it != shard.users.end()) {
      for (const SessionRef& ref : it->second.sessions) {
        if (session_id == 0 || ref.id == session_id) {
          ids.push_back(ref.id);
        }
      }
    }
  }
  const size_t n = workers_.size();
  std::vector<std::vector<uint64_t>> per_worker(n);
  for (uint64_t id : ids) {
    per_worker[workerOf(id) % n].push_back(id);
  }
  struct KickJob {
    std::atomic<size_t> remaining{0};
    std::atomic<uint64_t> closed{0};
    std::function<void(uint64_t)> done;
    Dispatcher* origin = nullptr;
  };
  auto job = std::make_shared<KickJob>();
  job->done = module::pinned(std::move(done));
  job->origin = tls_dispatcher;
  size_t involved = 0;
  for (auto& v : per_worker) {
    involved += v.empty() ? 0 : 1;
  }
  auto finish = [](const std::shared_ptr<KickJob>& j) {
    if (j->remaining.fetch_sub(1) == 1 && j->done) {
      if (j->origin != nullptr) {
        j->origin->post([cb = std::move(j->done), n = j->closed.load()] { cb(n); });
      } else {
        j->done(j->closed.load());
      }
    }
  };
  if (involved == 0) {
    job->remaining = 1;
    finish(job);
    return;
  }
  job->remaining = involved;
  for (size_t w = 0; w < n; ++w) {
    if (per_worker[w].empty()) {
      continue;
    }
    Worker* worker = workers_[w];
    worker->post([worker, job, finish, ids = std::move(per_worker[w]), reason] {
      job->closed.fetch_add(worker->hub().close(ids, Errc::kKicked, reason));
      finish(job);
    });
  }
}

// Posts to each worker the sessions whose local room index must gain (or lose) `rk`.
void Registry::updateRoomIndexes(std::vector<std::vector<uint64_t>>& per_worker,
                                 const std::string& rk, bool join, StreamHead head) {
  for (size_t w = 0; w < per_worker.size(); ++w) {
    if (per_worker[w].empty()) {
      continue;
    }
    Worker* worker = workers_[w];
    worker->post([worker, rk, join, head, ids = std::move(per_worker[w])] {
      for (uint64_t id : ids) {
        if (Connection* c = worker->hub().find(id)) {
          if (join) {
            worker->hub().joinRoom(*c, rk, head);
          } else {
            worker->hub().leaveRoom(*c, rk);
          }
        }
      }
    });
  }
}

std::vector<std::string> Registry::join(const std::string& app, const std::string& room,
                                        const std::vector<std::string>& users) {
  std::vector<std::string> offline;
  const std::string rk = key(app, room);
  const size_t n = workers_.size();
  std::vector<std::vector<uint64_t>> per_worker(n);
  for (const std::string& user : users) {
    const std::string k = key(app, user);
    UserShard& shard = userShard(k);
    std::lock_guard lock(shard.mu);
    auto it = shard.users.find(k);
    if (it == shard.users.end() || it->second.sessions.empty()) {
      offline.push_back(user);
      continue;
    }
    if (it->second.rooms.insert(room)) {
      for (const SessionRef& ref : it->second.sessions) {
        per_worker[workerOf(ref.id) % n].push_back(ref.id);
      }
    }
    // Still under the user's lock (order: user shard, then room shard; remove() never holds
    // both), so a concurrent remove of the user's last session cannot leave a stale member.
    RoomShard& rs = roomShard(rk);
    std::lock_guard room_lock(rs.mu);
    rs.rooms[rk].insert(user);
  }
  // The room stream's head now: pushes after this call must reach the new members even when
  // their delivery overtakes the index update on a worker (Connection::roomJoined catches up).
  updateRoomIndexes(per_worker, rk, true, store_->head(streamKey(app, roomStream(room), "")));
  return offline;
}

std::vector<std::string> Registry::leave(const std::string& app, const std::string& room,
                                         const std::vector<std::string>& users) {
  std::vector<std::string> not_members;
  const std::string rk = key(app, room);
  const size_t n = workers_.size();
  std::vector<std::vector<uint64_t>> per_worker(n);
  for (const std::string& user : users) {
    const std::string k = key(app, user);
    UserShard& shard = userShard(k);
    std::lock_guard lock(shard.mu);
    auto it = shard.users.find(k);
    if (it == shard.users.end() || it->second.rooms.erase(room) == 0) {
      not_members.push_back(user);
      continue;
    }
    for (const SessionRef& ref : it->second.sessions) {
      per_worker[workerOf(ref.id) % n].push_back(ref.id);
    }
    RoomShard& rs = roomShard(rk);
    std::lock_guard room_lock(rs.mu);
    auto room = rs.rooms.find(rk);
    if (room != rs.rooms.end()) {
      room->second.erase(user);
      if (room->second.empty()) {
        rs.rooms.erase(room);
      }
    }
  }
  updateRoomIndexes(per_worker, rk, false, {});
  return not_members;
}

std::vector<std::string> Registry::roomMembers(const std::string& app, const std::string& room) {
  const std::string rk = key(app, room);
  RoomShard& rs = roomShard(rk);
  std::lock_guard lock(rs.mu);
  std::vector<std::string> out;
  auto it = rs.rooms.find(rk);
  if (it != rs.rooms.end()) {
    out.assign(it->second.begin(), it->second.end());
    std::sort(out.begin(), out.end());
  }
  return out;
}

NodeLoad Registry::nodeLoad() {
  const CoreCounters& c = StatsRegistry::instance().core();
  NodeLoad load;
  load.connections = c.connections_active.load(std::memory_order_relaxed);
  load.sessions = c.sessions_active.load(std::memory_order_relaxed);
  load.workers = static_cast<unsigned>(workers_.size());
  const uint64_t opened = c.sessions_opened.load(std::memory_order_relaxed);
  const int64_t now_us = steadyUs();
  std::lock_guard lock(rate_mu_);
  // Two 10 s windows: the rate is measured from the start of the previous one, so it always
  // covers 10-20 s of history and never jumps to zero right after a window turns over.
  constexpr int64_t kWindowUs = 10'000'000;
  if (rate_window_start_us_ == 0) {
    rate_prev_ = {now_us, opened};
    rate_window_start_us_ = now_us;
    rate_window_opened_ = opened;
  } else if (now_us - rate_window_start_us_ >= kWindowUs) {
    rate_prev_ = {rate_window_start_us_, rate_window_opened_};
    rate_window_start_us_ = now_us;
    rate_window_opened_ = opened;
  }
  const int64_t span_us = now_us - rate_prev_.first;
  if (span_us > 0) {
    load.connects_per_s =
        static_cast<double>(opened - rate_prev_.second) * 1e6 / static_cast<double>(span_us);
  }
  return load;
}

HubStats Registry::stats(const std::string& app) {
  HubStats s;
  const std::string prefix = app + '\0';
  for (auto& shard : users_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [k, entry] : shard.users) {
      if (k.compare(0, prefix.size(), prefix) == 0) {
        ++s.users;
        s.sessions += entry.sessions.size();
      }
    }
  }
  for (auto& shard : rooms_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [k, members] : shard.rooms) {
      if (k.compare(0, prefix.size(), prefix) == 0) {
        ++s.rooms;
      }
    }
  }
  return s;
}

uint64_t Registry::totalUsers() const {
  uint64_t n = 0;
  for (const auto& shard : users_) {
    std::lock_guard lock(shard.mu);
    n += shard.users.size();
  }
  return n;
}

uint64_t Registry::totalRooms() const {
  uint64_t n = 0;
  for (const auto& shard : rooms_) {
    std::lock_guard lock(shard.mu);
    n += shard.rooms.size();
  }
  return n;
}

// ---- Detached sessions ---------------------------------------------------------------------

bool Registry::addDetached(const std::string& key, uint32_t worker) {
  std::lock_guard<std::mutex> lock(detached_mu_);
  return detached_.emplace(key, worker).second;
}

std::optional<uint32_t> Registry::detachedWorker(std::string_view key) const {
  std::lock_guard<std::mutex> lock(detached_mu_);
  auto it = detached_.find(std::string(key));
  if (it == detached_.end()) {
    return std::nullopt;
  }
  return it->second;
}

void Registry::removeDetached(const std::string& key) {
  std::lock_guard<std::mutex> lock(detached_mu_);
  detached_.erase(key);
}

}  // namespace imgate::core
