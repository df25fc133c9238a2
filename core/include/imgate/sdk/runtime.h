// SPDX-License-Identifier: Apache-2.0
// Services the core lends to modules. All are non-owning and, unless said otherwise, may be
// used only on the thread that handed them out.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace imgate {

// A one-shot timer. Destroying the handle cancels it; the callback never runs after that.
class Timer {
 public:
  virtual ~Timer() = default;
};
using TimerPtr = std::unique_ptr<Timer>;

class Dispatcher;

// A place in a dispatcher's timer queue, embedded in whatever it serves. The fields belong to
// the dispatcher that arms it.
struct TimerNode {
  static constexpr uint32_t kNotQueued = UINT32_MAX;
  int64_t due_us = 0;
  uint32_t seq = 0;
  uint32_t index = kNotQueued;
  bool queued() const { return index != kNotQueued; }
};

// A one-shot timer embedded in the object it serves (32 bytes), for state that keeps a timer
// for its whole life, such as a session stage's deadline: arming and re-arming allocate
// nothing, where schedule() allocates a handle and a callback each time. `fire` runs on the
// dispatcher's thread with the slot it was given; the embedding object finds itself from it
// (a class that derives from TimerSlot static_casts). Destroying the slot cancels it. Not
// copyable; arm it on one dispatcher only (the session's).
class TimerSlot : private TimerNode {
 public:
  using Fire = void (*)(TimerSlot& slot);
  explicit TimerSlot(Fire fire) : fire_(fire) {}
  ~TimerSlot();
  TimerSlot(const TimerSlot&) = delete;
  TimerSlot& operator=(const TimerSlot&) = delete;

  // Fires after `delay` (from now; 0: at the next loop turn), replacing any earlier arming.
  void arm(Dispatcher& dispatcher, std::chrono::milliseconds delay);
  void cancel();
  bool armed() const { return queued(); }

  // For the Dispatcher that implements timers.
  TimerNode& node() { return *this; }
  static TimerSlot& fromNode(TimerNode& node) { return static_cast<TimerSlot&>(node); }
  void fire() { fire_(*this); }

 private:
  Dispatcher* dispatcher_ = nullptr;  // the one it was last armed on
  Fire fire_;
};

// The worker's event loop, seen through a keyhole.
class Dispatcher {
 public:
  // Runs `cb` once after `delay` on this thread, unless the returned handle is destroyed first.
  virtual TimerPtr schedule(std::chrono::milliseconds delay, std::function<void()> cb) = 0;
  // TimerSlot::arm and cancel: (re-)queues the slot to fire after `delay` on this thread, or
  // takes it out of the queue (nothing when it is not queued).
  virtual void armSlot(TimerSlot& slot, std::chrono::milliseconds delay) = 0;
  virtual void cancelSlot(TimerSlot& slot) = 0;
  // Runs `cb` on this thread at the next loop turn (never synchronously).
  virtual void post(std::function<void()> cb) = 0;
  // Monotonic time, cached once per loop turn.
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Wall clock in ms since the epoch, cached once per loop turn.
  virtual int64_t wallMs() const = 0;

 protected:
  ~Dispatcher() = default;
};

enum class LogLevel : uint8_t { kDebug, kInfo, kNotice, kWarn, kError, kCrit, kAlert };

inline TimerSlot::~TimerSlot() { cancel(); }

inline void TimerSlot::arm(Dispatcher& dispatcher, std::chrono::milliseconds delay) {
  if (dispatcher_ != nullptr && dispatcher_ != &dispatcher) {
    cancel();
  }
  dispatcher_ = &dispatcher;
  dispatcher.armSlot(*this, delay);
}

inline void TimerSlot::cancel() {
  if (queued()) {
    dispatcher_->cancelSlot(*this);
  }
}

// Writes to the process log with the "<module> <instance>: " prefix added by the core.
// Thread-safe.
class Logger {
 public:
  virtual bool enabled(LogLevel level) const = 0;
  virtual void log(LogLevel level, std::string_view message) = 0;

 protected:
  ~Logger() = default;
};

// A monotonically increasing counter. Thread-safe, lock-free; lives as long as the process
// (counters are kept by name across reloads, so totals survive).
class Counter {
 public:
  void add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Named counters. Names are "<family>_<metric>" in snake_case; the core exports them on the
// admin listener's /metrics as imgate_<name>_total, labelled with the module instance.
class Stats {
 public:
  virtual Counter& counter(std::string_view name) = 0;

 protected:
  ~Stats() = default;
};

// Handed to compile(); valid only for the duration of that call.
class LoadContext {
 public:
  // "<pipeline>[<index>]:<module>", or the location or listener for protocol modules.
  virtual std::string_view instanceName() const = 0;
  // Directory of the config file, for resolving relative paths of key files and the like.
  virtual std::string_view configDir() const = 0;
  virtual Logger& log() = 0;
  virtual Stats& stats() = 0;
  // True when the configuration being compiled defines an upstream group of that name (for
  // checking names in compile(), so a typo fails the load instead of every call).
  virtual bool hasUpstream(std::string_view group) const = 0;

 protected:
  ~LoadContext() = default;
};

}  // namespace imgate
