// SPDX-License-Identifier: Apache-2.0
#include "pipeline/stage_runner.h"

#include <utility>

#include "common/log.h"
#include "common/stats.h"
#include "module/library_scope.h"

namespace imgate::core {

namespace {
CoreCounters& counters() { return StatsRegistry::instance().core(); }
}  // namespace

StageRunner::StageRunner(StageRunnerHost& host) : host_(host) {}

StageRunner::~StageRunner() = default;

std::string_view StageRunner::name(size_t index) const {
  return index < pipeline_->stages.size() ? std::string_view(pipeline_->stages[index].instance)
                                          : std::string_view("?");
}

bool StageRunner::reset(std::shared_ptr<const Pipeline> pipeline) {
  // The old stages go first, while the old pipeline still pins the libraries their code is in.
  stages_.reset();
  pipeline_ = std::move(pipeline);
  ++epoch_;
  auto stages = std::make_unique<StagePtr[]>(pipeline_->stages.size());
  for (size_t i = 0; i < pipeline_->stages.size(); ++i) {
    const CompiledStage& cs = pipeline_->stages[i];
    StagePtr stage;
    module::LibraryScope scope(cs.library);
    try {
      stage = cs.config->createStage(host_.stageCallbacks());
    } catch (const std::exception& e) {
      LOG_ERROR(cs.instance, ": createStage threw: ", e.what());
    } catch (...) {
      LOG_ERROR(cs.instance, ": createStage threw");
    }
    if (!stage) {
      counters().bugs.fetch_add(1, std::memory_order_relaxed);
      stages.reset();  // the ones made so far go, while their libraries are still pinned
      host_.messageRejected(Errc::kInternal, "stage could not be created", cs.instance);
      return false;
    }
    stages[i] = std::move(stage);
  }
  stages_ = std::move(stages);
  return true;
}

// Runs one hook behind the exception guard, then applies what the stage asked for during it
// (replies, resume, reject): the core never re-enters a stage from inside its own hook.
template <class F>
Verdict StageRunner::guard(size_t index, F&& hook) {
  Verdict v;
  in_hook_ = true;
  try {
    module::LibraryScope scope(pipeline_->stages[index].library);
    v = hook(*stages_[index]);
  } catch (const std::exception& e) {
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR(name(index), ": hook threw: ", e.what());
    v = Verdict::reject(Errc::kInternal, "stage failed");
  } catch (...) {
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    LOG_ERROR(name(index), ": hook threw");
    v = Verdict::reject(Errc::kInternal, "stage failed");
  }
  in_hook_ = false;
  // Take what the hook asked for before anything else runs: sending the replies below goes
  // through outbound hooks, which must not see (or clear) these requests.
  const bool resume = std::exchange(resume_requested_, false);
  RejectRequest reject = rare_ ? std::move(rare_->reject_requested) : nullptr;
  resume_now_ = false;
  if (v.action == Action::kPause) {
    if (reject) {
      v = Verdict::reject(reject->first, std::move(reject->second));
    } else {
      resume_now_ = resume;
    }
  } else if (resume || reject) {
    if (paused_at_ != kNotPaused) {
      // For the message paused earlier (e.g. a stage resuming from its onOutbound hook).
      if (reject) {
        rare().deferred_reject = std::move(reject);
      } else {
        deferred_resume_ = true;
      }
    } else {
      counters().bugs.fetch_add(1, std::memory_order_relaxed);  // nothing is paused
    }
  }
  if (rare_ && rare_->replies && !rare_->replies->empty()) {
    std::vector<Message> replies;
    replies.swap(*rare_->replies);
    for (const Message& m : replies) {
      if (host_.alive()) {
        host_.sendReply(m);
      }
    }
  }
  switch (v.action) {
    case Action::kPass: break;
    case Action::kPause: counters().stage_paused.fetch_add(1, std::memory_order_relaxed); break;
    case Action::kDrop: counters().stage_dropped.fetch_add(1, std::memory_order_relaxed); break;
    case Action::kReject: counters().stage_rejected.fetch_add(1, std::memory_order_relaxed); break;
  }
  return v;
}

void StageRunner::applyDeferred() {
  if (depth_ > 0 || (!deferred_resume_ && !(rare_ && rare_->deferred_reject))) {
    return;
  }
  RejectRequest reject_request = rare_ ? std::move(rare_->deferred_reject) : nullptr;
  const bool resume_request = std::exchange(deferred_resume_, false);
  if (paused_at_ == kNotPaused || !host_.alive()) {
    return;
  }
  if (reject_request) {
    reject(reject_request->first, std::move(reject_request->second));
  } else if (resume_request) {
    resume();
  }
}

void StageRunner::open() {
  ++depth_;
  runOpen(0);
  --depth_;
  applyDeferred();
}

void StageRunner::runOpen(size_t from) {
  for (size_t i = from; i < stageCount(); ++i) {
    Verdict v = guard(i, [](Stage& s) { return s.onOpen(); });
    if (!host_.alive()) {
      return;
    }
    switch (v.action) {
      case Action::kPass:
        continue;
      case Action::kPause:
        paused_at_ = static_cast<uint32_t>(i);
        pause_is_open_ = true;
        if (resume_now_) {
          continueAfterPause();
        } else {
          host_.pauseChanged(true, true);
        }
        return;
      case Action::kDrop:
        host_.openRejected(Errc::kUnavailable, "connection dropped", name(i));
        return;
      case Action::kReject:
        host_.openRejected(v.code, v.reason, name(i));
        return;
    }
  }
  host_.openAccepted();
}

void StageRunner::inbound(Message&& message) {
  if (closed_) {
    return;
  }
  if (paused_at_ != kNotPaused || !queueEmpty() || in_hook_) {
    std::unique_ptr<std::deque<Message>>& queue = rare().queue;
    if (!queue) {
      queue = std::make_unique<std::deque<Message>>();
    }
    queue->push_back(std::move(message));
    host_.setReading(false);  // order is kept; the queue holds at most one read's worth
    return;
  }
  host_.atMessageBoundary();
  ++depth_;
  runInbound(message, 0);
  --depth_;
  applyDeferred();
}

void StageRunner::runInbound(Message& message, size_t from) {
  for (size_t i = from; i < stageCount(); ++i) {
    Verdict v = guard(i, [&message](Stage& s) { return s.onMessage(message); });
    if (!host_.alive()) {
      return;
    }
    switch (v.action) {
      case Action::kPass:
        continue;
      case Action::kPause:
        paused_at_ = static_cast<uint32_t>(i);
        pause_is_open_ = false;
        rare().paused_message = std::make_unique<Message>(std::move(message));
        if (resume_now_) {
          continueAfterPause();
        } else {
          host_.pauseChanged(true, false);
        }
        return;
      case Action::kDrop:
        return;
      case Action::kReject:
        host_.messageRejected(v.code, v.reason, name(i));
        return;
    }
  }
}

bool StageRunner::outboundAllowed(const Message& message) {
  if (!pipeline_ || !pipeline_->wants_outbound) {
    return true;
  }
  bool allowed = true;
  ++depth_;
  for (size_t i = 0; i < stageCount() && allowed; ++i) {
    if (!pipeline_->stages[i].wants_outbound) {
      continue;
    }
    Verdict v = guard(i, [&message](Stage& s) { return s.onOutbound(message); });
    switch (v.action) {
      case Action::kPass:
        break;
      case Action::kPause:
        counters().bugs.fetch_add(1, std::memory_order_relaxed);  // not allowed outbound
        break;
      case Action::kDrop:
        allowed = false;
        break;
      case Action::kReject:
        host_.messageRejected(v.code, v.reason, name(i));
        allowed = false;
        break;
    }
  }
  --depth_;
  applyDeferred();
  return allowed && host_.alive();
}

void StageRunner::resume() {
  if (in_hook_) {
    resume_requested_ = true;
    return;
  }
  if (paused_at_ == kNotPaused) {
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  host_.pauseChanged(false, pause_is_open_);
  ++depth_;
  continueAfterPause();
  --depth_;
  applyDeferred();
}

void StageRunner::reject(Errc code, std::string reason) {
  if (in_hook_) {
    rare().reject_requested =
        std::make_unique<std::pair<Errc, std::string>>(code, std::move(reason));
    return;
  }
  if (paused_at_ == kNotPaused) {
    counters().bugs.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const size_t at = paused_at_;
  const bool open = pause_is_open_;
  paused_at_ = kNotPaused;
  if (rare_) {
    rare_->paused_message.reset();
  }
  host_.pauseChanged(false, open);
  if (open) {
    host_.openRejected(code, reason, name(at));
  } else {
    host_.messageRejected(code, reason, name(at));
  }
}

void StageRunner::reply(Message message) {
  if (in_hook_) {
    std::unique_ptr<std::vector<Message>>& replies = rare().replies;
    if (!replies) {
      replies = std::make_unique<std::vector<Message>>();
    }
    replies->push_back(std::move(message));
    return;
  }
  if (host_.alive()) {
    host_.sendReply(message);
  }
}

void StageRunner::pauseTimedOut() {
  if (paused_at_ == kNotPaused) {
    return;
  }
  counters().pause_timeouts.fetch_add(1, std::memory_order_relaxed);
  const size_t at = paused_at_;
  const bool open = pause_is_open_;
  paused_at_ = kNotPaused;
  if (rare_) {
    rare_->paused_message.reset();
  }
  if (open) {
    host_.openRejected(Errc::kTimeout, "stage did not answer in time", name(at));
  } else {
    host_.messageRejected(Errc::kTimeout, "stage did not answer in time", name(at));
  }
}

void StageRunner::continueAfterPause() {
  const size_t next = paused_at_ + 1;
  paused_at_ = kNotPaused;
  if (pause_is_open_) {
    runOpen(next);
    return;
  }
  std::unique_ptr<Message> message = std::move(rare().paused_message);
  runInbound(*message, next);
  drainQueue();
}

void StageRunner::drainQueue() {
  while (paused_at_ == kNotPaused && !queueEmpty() && host_.alive()) {
    Message m = std::move(rare_->queue->front());
    rare_->queue->pop_front();
    host_.atMessageBoundary();
    runInbound(m, 0);
  }
  if (paused_at_ == kNotPaused && queueEmpty() && host_.alive()) {
    if (rare_) {
      rare_->queue.reset();
    }
    host_.setReading(true);
  }
}

void StageRunner::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  ++epoch_;
  if (rare_) {
    rare_->queue.reset();
    rare_->paused_message.reset();
  }
  paused_at_ = kNotPaused;
  for (size_t i = 0; i < stageCount(); ++i) {
    try {
      module::LibraryScope scope(pipeline_->stages[i].library);
      stages_[i]->onClose();
    } catch (...) {
      counters().bugs.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

}  // namespace imgate::core
