// SPDX-License-Identifier: Apache-2.0
// A worker thread: one event_base (EVENT_BASE_FLAG_NOLOCK), an MPSC inbox drained with one
// wakeup per batch, and the timers of the sessions it owns. Only this file and net/ include
// libevent headers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <thread>
#include <vector>

#include "imgate/sdk/runtime.h"
#include "imgate/sdk/upstream.h"

struct event_base;
struct event;

namespace imgate::core {

class LocalHub;
struct Generation;
namespace upstream {
class UpstreamClient;
}

class EventLoop : public Dispatcher {
 public:
  EventLoop();
  virtual ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  event_base* base() const { return base_; }

  // Dispatcher. post() is safe from any thread; the callback runs on this loop's thread, in
  // posting order, batched: one wakeup per batch however many posts arrive. From a loop's own
  // thread (a worker or the main loop), posts are held until the end of the current loop
  // iteration and then handed over together, one wakeup per target loop (nginx's posted
  // events): a burst of pipelined requests costs one eventfd write per worker, not one per
  // request, and a post to the loop itself costs no system call at all.
  TimerPtr schedule(std::chrono::milliseconds delay, std::function<void()> cb) override;
  void post(std::function<void()> cb) override;
  // Like post(), but handed over at once even from a loop's own thread (after what that thread
  // posted to this loop earlier in its iteration, which keeps the order): for a caller that
  // goes on to wait for the callback (a reload waiting for every worker to take the new
  // generation). Never from this loop's own thread.
  void postNow(std::function<void()> cb);
  void armSlot(TimerSlot& slot, std::chrono::milliseconds delay) override;
  void cancelSlot(TimerSlot& slot) override;
  std::chrono::steady_clock::time_point now() const override;
  int64_t wallMs() const override;

  // A place in the loop's timer heap (imgate::TimerNode). schedule()'s handles hold one; a core
  // object that keeps a timer for its whole life (a Connection) embeds one instead, so arming
  // it allocates nothing: arm() (re-arming moves it), cancel(), or firing takes it out. `fire`
  // runs on the loop's thread with the node it was armed with. The owner cancels it before it
  // dies; only on this loop's thread. A module's TimerSlot is one such node (armSlot).
  using TimerNode = imgate::TimerNode;
  using TimerFire = void (*)(TimerNode& node);
  void arm(TimerNode& node, TimerFire fire, std::chrono::milliseconds delay);
  void cancel(TimerNode& node);

  // Sockets watched through the loop's own epoll set, itself watched by one libevent event,
  // instead of a libevent event each (128 bytes, plus an entry in libevent's fd map): a
  // session's socket costs the kernel's epoll entry and no user-space memory. Level-triggered,
  // like libevent's events. `owner` comes back to the loop's IoHandler with the ready events
  // (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP), at most kIoBatch per libevent callback; the rest
  // at its next turn. The caller keeps the mask: ioUpdate(fd, owner, was, now) adds, changes
  // or removes the socket (a mask of 0 is not in the set). Only on the loop's thread; remove
  // a socket before closing it or handing it to another loop. False when the kernel refused
  // (errno set: ENOMEM, or ENOSPC past fs.epoll.max_user_watches).
  using IoHandler = void (*)(void* owner, uint32_t events);
  static constexpr int kIoBatch = 256;
  void setIoHandler(IoHandler handler) { io_handler_ = handler; }
  bool ioUpdate(int fd, void* owner, uint32_t was, uint32_t now);

  // Runs the loop on the calling thread until stop() (from any thread).
  void run();
  void stop();

 private:
  static void onWake(int fd, short what, void* arg);
  static void onPosted(int fd, short what, void* arg);
  static void onTimers(int fd, short what, void* arg);
  static void onIoReady(int fd, short what, void* arg);
  bool drainInbox();
  // Hands the posts held during this iteration to their loops (those to this loop run here).
  bool flushPosted();
  void enqueue(std::vector<std::function<void()>>& cbs);

  event_base* base_ = nullptr;
  int wake_fd_ = -1;
  event* wake_event_ = nullptr;
  std::mutex mu_;
  std::vector<std::function<void()>> inbox_;
  std::vector<std::function<void()>> running_;
  bool wake_pending_ = false;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  // Loop thread only: posts made during the current iteration, per target loop (this loop
  // first when it has any), and the event that flushes them after the iteration's callbacks.
  struct Outbox {
    EventLoop* target = nullptr;
    std::vector<std::function<void()>> cbs;
  };
  std::vector<Outbox> outboxes_;
  // Timers (schedule()): a min-heap on the deadline, behind one libevent timer armed for the
  // earliest. A session's timers then cost a small handle each, not a libevent event each.
 public:
  class HeapTimer;

 private:
  friend class HeapTimer;
  // The heap's entries: the node and what firing it does (so nodes carry no function of their
  // own: a Connection's costs 16 bytes).
  struct TimerEntry {
    TimerNode* node;
    TimerFire fire;
  };
  void timerInsert(TimerNode* t, TimerFire fire);
  void timerRemove(TimerNode* t);
  void timerSiftUp(size_t i);
  void timerSiftDown(size_t i);
  void timerArm();
  void timerPlace(size_t i, TimerEntry e) {
    timers_[i] = e;
    e.node->index = static_cast<uint32_t>(i);
  }
  std::vector<TimerEntry> timers_;
  event* timer_event_ = nullptr;
  int64_t timer_armed_us_ = -1;  // deadline the libevent timer is set for, -1: not set
  uint32_t timer_seq_ = 0;  // wraps (HeapTimer::seqBefore)
  bool timers_firing_ = false;
  event* posted_event_ = nullptr;
  bool posted_armed_ = false;
  int io_fd_ = -1;  // the epoll set of ioUpdate(), made on first use
  event* io_event_ = nullptr;
  IoHandler io_handler_ = nullptr;
  bool flushing_ = false;
};

class Registry;
class Connection;
struct ListenSocket;
struct ListenerSpec;

// A worker: an EventLoop on its own thread, plus the connections and sessions it owns.
class Worker final : public EventLoop {
 public:
  Worker(uint32_t index, Registry& registry);
  ~Worker() override;

  uint32_t index() const { return index_; }
  void start();
  void join();
  LocalHub& hub() { return *hub_; }
  Registry& registry() { return registry_; }

  // On this worker's thread: adopt a new generation and its listening sockets (accepting on
  // new bind addresses, no longer accepting on removed ones).
  void apply(std::shared_ptr<const Generation> generation,
             std::vector<std::shared_ptr<ListenSocket>> sockets);
  void stopAccepting();
  // Graceful stop: no keep-alive, every session gets its protocol's "going away" close.
  void drain();
  bool draining() const { return draining_; }
  // Calls an upstream group of `generation` (on this thread); `done` runs later on this thread.
  void callUpstream(const std::shared_ptr<const Generation>& generation, std::string_view group,
                    UpstreamRequest request, UpstreamCallback done);
  // Destroys a closed connection at the next loop turn (never under its own callbacks).
  void retire(Connection* connection);
  size_t connectionCount() const { return connections_.size(); }
  // Every connection of this worker by id (HTTP, handshaking, sessions, detached): the one
  // index, which the hub's lookups filter for open sessions.
  Connection* findConnection(uint64_t id) const {
    auto it = connections_.find(id);
    return it == connections_.end() ? nullptr : it->second;
  }
  const std::unordered_map<uint64_t, Connection*>& connections() const { return connections_; }

  // Detached sessions (HttpExchange::detach) living on this worker, by key. A new one is a
  // Connection without a socket, on `generation` (the handshake request's).
  Connection* newDetached(std::string peer, std::shared_ptr<const Generation> generation,
                          const ListenerSpec& listener);
  void addDetached(const std::string& key, Connection* connection) { detached_[key] = connection; }
  void removeDetached(const std::string& key) { detached_.erase(key); }
  Connection* findDetached(const std::string& key) const {
    auto it = detached_.find(key);
    return it == detached_.end() ? nullptr : it->second;
  }
  bool onThread() const { return std::this_thread::get_id() == thread_id_.load(); }

  // The generation new sessions and messages use; swapped by a post from the main thread.
  const std::shared_ptr<const Generation>& generation() const { return generation_; }
  void setGeneration(std::shared_ptr<const Generation> generation) {
    generation_ = std::move(generation);
  }

 private:
  struct Acceptor;
  static void onAccept(int fd, short what, void* arg);
  void acceptFrom(Acceptor& acceptor);
  // A connection another worker accepted for this one (balance: exact); its slot in
  // socket->open[index_] is already taken.
  void adoptBalanced(int fd, std::string peer, std::shared_ptr<ListenSocket> socket,
                     const std::string& listener, bool admitted);
  void startConnection(int fd, std::string peer, const ListenerSpec& spec, bool admitted,
                       std::shared_ptr<ListenSocket> balanced);

  uint32_t index_;
  Registry& registry_;
  uint64_t next_id_ = 0;
  bool draining_ = false;
  bool retire_posted_ = false;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  std::unordered_map<uint64_t, Connection*> connections_;
  // Connections from `balance: exact` listeners, with the socket whose count they hold.
  std::unordered_map<Connection*, std::shared_ptr<ListenSocket>> balanced_;
  std::unordered_map<std::string, Connection*> detached_;
  std::vector<Connection*> retired_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::unique_ptr<LocalHub> hub_;
  std::unique_ptr<upstream::UpstreamClient> upstream_client_;  // created on the worker thread
  std::shared_ptr<const Generation> generation_;
};

}  // namespace imgate::core
