// SPDX-License-Identifier: Apache-2.0
#include "event/worker.h"

#include <event2/event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "common/log.h"
#include "hub/local_hub.h"
#include "hub/registry.h"
#include "module/library_scope.h"
#include "net/admission.h"
#include "net/connection.h"
#include "net/listener.h"
#include "upstream/upstream_client.h"
#include "reload/generation.h"

namespace imgate::core {

namespace {

// The loop running on this thread, if any: its posts are batched per iteration.
thread_local EventLoop* tls_loop = nullptr;

}  // namespace

namespace {

// Schedule order on a 32-bit counter that wraps: right for any two timers scheduled fewer than
// 2^31 schedules apart (keeps schedule()'s handle at 64 bytes, one allocator class smaller).
bool seqBefore(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

bool before(const EventLoop::TimerNode& a, const EventLoop::TimerNode& b) {
  return a.due_us != b.due_us ? a.due_us < b.due_us : seqBefore(a.seq, b.seq);  // FIFO on ties
}

}  // namespace

// One schedule(): its place in the loop's heap. Destroying it cancels it.
class EventLoop::HeapTimer final : public Timer, public TimerNode {
 public:
  HeapTimer(EventLoop& loop, std::function<void()> cb) : loop_(&loop), cb_(std::move(cb)) {}
  ~HeapTimer() override {
    if (loop_ != nullptr && queued()) {
      loop_->timerRemove(this);
    }
  }
  static void fire(TimerNode& node) {
    // The callback may destroy its own handle (its owner resets it): move the callback out.
    std::function<void()> cb = std::move(static_cast<HeapTimer&>(node).cb_);
    cb();
  }

  EventLoop* loop_;  // null once the loop is gone
  std::function<void()> cb_;
};
static_assert(sizeof(EventLoop::HeapTimer) <= 64, "a session's timer handle fits 64 bytes");

EventLoop::EventLoop() {
  event_config* cfg = event_config_new();
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (base_ == nullptr) {
    LOG_ALERT("event_base_new failed");
    std::abort();
  }
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    LOG_ALERT("eventfd failed");
    std::abort();
  }
  wake_event_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &EventLoop::onWake, this);
  event_add(wake_event_, nullptr);
  posted_event_ = event_new(base_, -1, 0, &EventLoop::onPosted, this);
  timer_event_ = evtimer_new(base_, &EventLoop::onTimers, this);
}

EventLoop::~EventLoop() {
  for (const TimerEntry& e : timers_) {
    if (e.fire == &HeapTimer::fire) {
      static_cast<HeapTimer*>(e.node)->loop_ = nullptr;  // handles that outlive the loop never fire
    }
    e.node->index = TimerNode::kNotQueued;
  }
  if (io_event_ != nullptr) {
    event_free(io_event_);
    close(io_fd_);
  }
  event_free(timer_event_);
  event_free(posted_event_);
  event_free(wake_event_);
  close(wake_fd_);
  event_base_free(base_);
}

TimerPtr EventLoop::schedule(std::chrono::milliseconds delay, std::function<void()> cb) {
  auto timer = std::make_unique<HeapTimer>(*this, module::pinned(std::move(cb)));
  arm(*timer, &HeapTimer::fire, delay);
  return timer;
}

void EventLoop::arm(TimerNode& node, TimerFire fire, std::chrono::milliseconds delay) {
  node.due_us = steadyUs() + std::max<int64_t>(0, delay.count()) * 1000;
  node.seq = timer_seq_++;
  if (!node.queued()) {
    timerInsert(&node, fire);
    return;
  }
  // Re-armed: moved in place, one pass up or down the heap.
  const size_t was = node.index;
  timers_[was].fire = fire;
  timerSiftUp(was);
  timerSiftDown(node.index);
  if (was == 0 || node.index == 0) {
    timerArm();
  }
}

bool EventLoop::ioUpdate(int fd, void* owner, uint32_t was, uint32_t now) {
  if (was == now) {
    return true;
  }
  if (io_fd_ < 0) {
    io_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (io_fd_ < 0) {
      return false;
    }
    io_event_ = event_new(base_, io_fd_, EV_READ | EV_PERSIST, &EventLoop::onIoReady, this);
    event_add(io_event_, nullptr);
  }
  epoll_event ev{};
  ev.events = now;
  ev.data.ptr = owner;
  const int op = was == 0 ? EPOLL_CTL_ADD : now == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(io_fd_, op, fd, &ev) == 0) {
    return true;
  }
  if (op == EPOLL_CTL_DEL && (errno == EBADF || errno == ENOENT)) {
    return true;  // already gone with its file
  }
  return false;
}

void EventLoop::onIoReady(int, short, void* arg) {
  auto* self = static_cast<EventLoop*>(arg);
  epoll_event ready[kIoBatch];
  // Never blocks: libevent said the set has something. What stays ready after this batch
  // keeps the set readable, so libevent calls again at its next turn (after timers and posts).
  const int n = epoll_wait(self->io_fd_, ready, kIoBatch, 0);
  for (int i = 0; i < n; ++i) {
    // An owner closed by an earlier one in this batch is still alive (Connections are retired
    // at the next turn) and ignores what it no longer waits for.
    self->io_handler_(ready[i].data.ptr, ready[i].events);
  }
}

void EventLoop::armSlot(TimerSlot& slot, std::chrono::milliseconds delay) {
  arm(slot.node(), [](TimerNode& node) { TimerSlot::fromNode(node).fire(); }, delay);
}

void EventLoop::cancelSlot(TimerSlot& slot) { cancel(slot.node()); }

void EventLoop::cancel(TimerNode& node) {
  if (node.queued()) {
    timerRemove(&node);
  }
}

void EventLoop::timerInsert(TimerNode* t, TimerFire fire) {
  timers_.push_back(TimerEntry{t, fire});
  t->index = static_cast<uint32_t>(timers_.size() - 1);
  timerSiftUp(t->index);
  if (t->index == 0) {
    timerArm();
  }
}

void EventLoop::timerRemove(TimerNode* t) {
  const size_t i = t->index;
  t->index = TimerNode::kNotQueued;
  const TimerEntry last = timers_.back();
  timers_.pop_back();
  if (last.node != t) {
    timerPlace(i, last);
    timerSiftUp(i);
    timerSiftDown(last.node->index);
  }
  if (i == 0) {
    timerArm();
  }
}

void EventLoop::timerSiftUp(size_t i) {
  const TimerEntry e = timers_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!before(*e.node, *timers_[parent].node)) {
      break;
    }
    timerPlace(i, timers_[parent]);
    i = parent;
  }
  timerPlace(i, e);
}

void EventLoop::timerSiftDown(size_t i) {
  const TimerEntry e = timers_[i];
  const size_t n = timers_.size();
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) {
      break;
    }
    if (child + 1 < n && before(*timers_[child + 1].node, *timers_[child].node)) {
      ++child;
    }
    if (!before(*timers_[child].node, *e.node)) {
      break;
    }
    timerPlace(i, timers_[child]);
    i = child;
  }
  timerPlace(i, e);
}

// Points the libevent timer at the earliest deadline (no system call: libevent folds it into
// the next epoll_wait timeout).
void EventLoop::timerArm() {
  if (timers_firing_) {
    return;  // onTimers arms once when done
  }
  if (timers_.empty()) {
    if (timer_armed_us_ >= 0) {
      evtimer_del(timer_event_);
      timer_armed_us_ = -1;
    }
    return;
  }
  const int64_t due = timers_.front().node->due_us;
  if (due == timer_armed_us_) {
    return;
  }
  const int64_t wait = std::max<int64_t>(0, due - steadyUs());
  timeval tv;
  tv.tv_sec = static_cast<time_t>(wait / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(wait % 1000000);
  evtimer_add(timer_event_, &tv);
  timer_armed_us_ = due;
}

void EventLoop::onTimers(int, short, void* arg) {
  auto* self = static_cast<EventLoop*>(arg);
  self->timer_armed_us_ = -1;
  const int64_t now = steadyUs();
  // Only timers due now and scheduled before now: one scheduled by a callback here (even with
  // zero delay) waits for the next turn, as with one libevent timer each.
  const uint32_t seq_limit = self->timer_seq_;
  self->timers_firing_ = true;
  while (!self->timers_.empty() && self->timers_.front().node->due_us <= now &&
         seqBefore(self->timers_.front().node->seq, seq_limit)) {
    const TimerEntry e = self->timers_.front();
    self->timerRemove(e.node);
    e.fire(*e.node);  // may re-arm, cancel or destroy this node and others
  }
  self->timers_firing_ = false;
  self->timerArm();
}

void EventLoop::post(std::function<void()> cb) {
  cb = module::pinned(std::move(cb));
  EventLoop* here = tls_loop;
  // Held until the end of this iteration, unless we are already flushing (a post made by a
  // flushed callback waits for the next iteration, so a callback that keeps re-posting itself
  // cannot starve the sockets).
  if (here != nullptr && !here->flushing_) {
    Outbox* box = nullptr;
    for (Outbox& o : here->outboxes_) {
      if (o.target == this) {
        box = &o;
        break;
      }
    }
    if (box == nullptr) {
      box = &here->outboxes_.emplace_back();
      box->target = this;
    }
    box->cbs.push_back(std::move(cb));
    if (!here->posted_armed_) {
      here->posted_armed_ = true;
      event_active(here->posted_event_, 0, 0);
    }
    return;
  }
  std::vector<std::function<void()>> one;
  one.push_back(std::move(cb));
  enqueue(one);
}

void EventLoop::postNow(std::function<void()> cb) {
  std::vector<std::function<void()>> cbs;
  if (EventLoop* here = tls_loop; here != nullptr) {
    for (auto it = here->outboxes_.begin(); it != here->outboxes_.end(); ++it) {
      if (it->target == this) {
        cbs.swap(it->cbs);  // posted earlier in this iteration: they go first
        here->outboxes_.erase(it);
        break;
      }
    }
  }
  cbs.push_back(module::pinned(std::move(cb)));
  enqueue(cbs);
}

void EventLoop::enqueue(std::vector<std::function<void()>>& cbs) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (inbox_.empty()) {
      inbox_.swap(cbs);
    } else {
      for (auto& cb : cbs) {
        inbox_.push_back(std::move(cb));
      }
    }
    if (!wake_pending_) {
      wake_pending_ = true;
      wake = true;
    }
  }
  cbs.clear();
  if (wake) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void EventLoop::onPosted(int, short, void* arg) {
  auto* self = static_cast<EventLoop*>(arg);
  self->flushPosted();
  if (self->stopping_.load()) {
    event_base_loopbreak(self->base_);
  }
}

bool EventLoop::flushPosted() {
  posted_armed_ = false;
  if (outboxes_.empty()) {
    return false;
  }
  std::vector<Outbox> boxes;
  boxes.swap(outboxes_);
  flushing_ = true;
  for (Outbox& box : boxes) {
    if (box.target != this) {
      box.target->enqueue(box.cbs);
    }
  }
  // Our own posts run here, after every callback of the iteration that made them.
  for (Outbox& box : boxes) {
    if (box.target == this) {
      for (auto& cb : box.cbs) {
        cb();
      }
    }
  }
  flushing_ = false;
  return true;
}

std::chrono::steady_clock::time_point EventLoop::now() const { return std::chrono::steady_clock::now(); }

int64_t EventLoop::wallMs() const {
  timeval tv;
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

void EventLoop::onWake(int fd, short, void* arg) {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(fd, &value, sizeof(value));
  static_cast<EventLoop*>(arg)->drainInbox();
}

bool EventLoop::drainInbox() {
  {
    std::lock_guard lock(mu_);
    running_.swap(inbox_);
    wake_pending_ = false;
  }
  const bool any = !running_.empty();
  for (auto& cb : running_) {
    cb();
  }
  running_.clear();
  if (stopping_.load()) {
    event_base_loopbreak(base_);
  }
  return any;
}

void EventLoop::run() {
  tls_loop = this;
  event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  // Run what was posted before stop and hand over what we posted, so no completion is lost
  // (bounded: a callback that re-posts itself forever must not hang the shutdown).
  for (int round = 0; round < 64 && (flushPosted() || drainInbox()); ++round) {
  }
  tls_loop = nullptr;
}

void EventLoop::stop() {
  stopping_.store(true);
  post([] {});
}

struct Worker::Acceptor {
  Worker* worker = nullptr;
  std::shared_ptr<ListenSocket> socket;
  std::string listener;
  int fd = -1;
  event* ev = nullptr;
  ~Acceptor() {
    if (ev != nullptr) {
      event_free(ev);
    }
  }
};

Worker::Worker(uint32_t index, Registry& registry)
    : index_(index), registry_(registry), hub_(std::make_unique<LocalHub>(*this)) {
  setIoHandler(&Connection::onIoEvent);  // the sockets of this loop's epoll set are sessions'
}

Worker::~Worker() {
  upstream_client_.reset();
  acceptors_.clear();
  for (auto& [id, c] : connections_) {
    delete c;
  }
  connections_.clear();
  for (Connection* c : retired_) {
    delete c;
  }
  retired_.clear();
  hub_.reset();
  generation_.reset();
}

void Worker::apply(std::shared_ptr<const Generation> generation,
                   std::vector<std::shared_ptr<ListenSocket>> sockets) {
  generation_ = std::move(generation);
  std::vector<std::unique_ptr<Acceptor>> next;
  for (const ListenerSpec& spec : generation_->listeners) {
    std::shared_ptr<ListenSocket> socket;
    for (const auto& s : sockets) {
      if (s->bind == spec.socketKey()) {
        socket = s;
      }
    }
    if (!socket || draining_) {
      continue;
    }
    std::unique_ptr<Acceptor> acceptor;
    for (auto& a : acceptors_) {
      if (a && a->socket == socket) {
        acceptor = std::move(a);
      }
    }
    if (!acceptor) {
      acceptor = std::make_unique<Acceptor>();
      acceptor->worker = this;
      acceptor->socket = socket;
      acceptor->fd = socket->fds[index_ % socket->fds.size()];
      acceptor->ev = event_new(base(), acceptor->fd, EV_READ | EV_PERSIST, &Worker::onAccept,
                               acceptor.get());
      event_add(acceptor->ev, nullptr);
    }
    acceptor->listener = spec.name;
    next.push_back(std::move(acceptor));
  }
  acceptors_ = std::move(next);  // acceptors for removed binds are freed here
  // Idle connections move now (each checks that it is at a boundary); the others at their next
  // message. A copy: migrating never closes, but stay safe against the set changing.
  std::vector<uint64_t> all;
  all.reserve(connections_.size());
  for (const auto& [id, c] : connections_) {
    all.push_back(id);
  }
  for (uint64_t id : all) {
    if (Connection* c = findConnection(id)) {
      c->adoptCurrentGeneration();
    }
  }
}

void Worker::stopAccepting() { acceptors_.clear(); }

void Worker::onAccept(int, short, void* arg) {
  auto* acceptor = static_cast<Acceptor*>(arg);
  acceptor->worker->acceptFrom(*acceptor);
}

void Worker::acceptFrom(Acceptor& acceptor) {
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    const int fd = accept4(acceptor.fd, reinterpret_cast<sockaddr*>(&addr), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        LOG_ERROR("accept on ", acceptor.socket->bind, ": ", std::strerror(errno));
      }
      return;
    }
    const ListenerSpec* spec = generation_->listener(acceptor.listener);
    if (spec == nullptr) {
      ::close(fd);
      continue;
    }
    std::string peer = peerName(reinterpret_cast<sockaddr*>(&addr));
    const std::string_view ip = peerIp(peer);
    const bool admission = spec->admission && !spec->admin;
    const AdmissionRefusal refusal = !admission ? AdmissionRefusal::kNone : Admission::instance().admit(
        generation_->admission, ip,
        std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now().time_since_epoch())
            .count());
    if (refusal != AdmissionRefusal::kNone) {
      // A reset, not a FIN: nothing lingers in TIME_WAIT on our side during an avalanche.
      const linger reset{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      ::close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!spec->exact_balance) {
      startConnection(fd, std::move(peer), *spec, admission, nullptr);
      continue;
    }
    // balance: exact. The slot is taken here, so the next accept (on any worker) already sees
    // it; the owner gives it back when the connection is retired.
    const std::shared_ptr<ListenSocket>& socket = acceptor.socket;
    const size_t workers = std::min(socket->fds.size(), registry_.workerCount());
    const uint32_t target = exactBalanceTarget(socket->open.get(), workers, index_ % workers);
    socket->open[target].fetch_add(1, std::memory_order_relaxed);
    if (target == index_) {
      startConnection(fd, std::move(peer), *spec, admission, socket);
      continue;
    }
    Worker& owner = registry_.worker(target);
    owner.post([&owner, fd, peer = std::move(peer), socket, listener = acceptor.listener,
                admission]() mutable {
      owner.adoptBalanced(fd, std::move(peer), std::move(socket), listener, admission);
    });
  }
}

void Worker::adoptBalanced(int fd, std::string peer, std::shared_ptr<ListenSocket> socket,
                           const std::string& listener, bool admitted) {
  const ListenerSpec* spec = generation_ ? generation_->listener(listener) : nullptr;
  if (spec == nullptr || draining_) {
    // Reloaded away or shutting down while in flight: as if never accepted.
    socket->open[index_].fetch_sub(1, std::memory_order_relaxed);
    if (admitted) {
      const std::string_view ip = peerIp(peer);
      Admission::instance().handshakeDone();
      Admission::instance().connectionClosed(ip);
    }
    ::close(fd);
    return;
  }
  startConnection(fd, std::move(peer), *spec, admitted, std::move(socket));
}

void Worker::startConnection(int fd, std::string peer, const ListenerSpec& spec, bool admitted,
                             std::shared_ptr<ListenSocket> balanced) {
  const uint64_t id = (++next_id_ << 8) | index_;
  auto* connection = new Connection(*this, fd, std::move(peer), generation_, spec, id);
  if (admitted) {
    connection->admitted();
  }
  connections_.emplace(id, connection);
  if (balanced) {
    balanced_.emplace(connection, std::move(balanced));
  }
  connection->start();
}

Connection* Worker::newDetached(std::string peer, std::shared_ptr<const Generation> generation,
                                const ListenerSpec& listener) {
  const uint64_t id = (++next_id_ << 8) | index_;
  auto* connection = new Connection(*this, -1, std::move(peer), std::move(generation), listener, id);
  connections_.emplace(id, connection);
  return connection;
}

void Worker::drain() {
  draining_ = true;
  stopAccepting();
  hub_->forEach([](Connection& c) { c.closeWith(Errc::kShutdown, "server shutting down"); });
}

void Worker::callUpstream(const std::shared_ptr<const Generation>& generation,
                          std::string_view group, UpstreamRequest request, UpstreamCallback done) {
  if (!upstream_client_) {
    upstream_client_ = std::make_unique<upstream::UpstreamClient>(*this);
  }
  upstream_client_->call(generation->upstreams.get(), group, std::move(request), std::move(done));
}

void Worker::retire(Connection* connection) {
  connections_.erase(connection->id());
  if (!balanced_.empty()) {
    if (auto it = balanced_.find(connection); it != balanced_.end()) {
      it->second->open[index_].fetch_sub(1, std::memory_order_relaxed);
      balanced_.erase(it);
    }
  }
  retired_.push_back(connection);
  if (retire_posted_) {
    return;
  }
  retire_posted_ = true;
  post([this] {
    retire_posted_ = false;
    std::vector<Connection*> dead;
    dead.swap(retired_);
    for (Connection* c : dead) {
      delete c;
    }
  });
}

void Worker::start() {
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    setCurrentDispatcher(this);
    run();
    // Pending upstream calls complete (with kShutdown) on this thread, before the loop goes.
    upstream_client_.reset();
  });
}

void Worker::join() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace imgate::core
