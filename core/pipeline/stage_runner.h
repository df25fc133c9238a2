// SPDX-License-Identifier: Apache-2.0
// Runs one session's stages: onOpen in order at the handshake, every inbound message in order,
// outbound checks, and the pause / resume / reject protocol (STYLE.md §4.3 "How the core drives
// it"). Sans-I/O: what it decides is handed to its host (the connection), which owns the socket
// and the timers. One per session; used only on the session's worker thread.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "imgate/sdk/stage.h"
#include "reload/generation.h"

namespace imgate::core {

class StageRunnerHost {
 public:
  // Every onOpen passed: accept the session.
  virtual void openAccepted() = 0;
  // A stage refused the handshake (or failed): answer with the error and close.
  virtual void openRejected(Errc code, const std::string& reason, std::string_view stage) = 0;
  // A stage rejected a message (or failed): close the session with the error.
  virtual void messageRejected(Errc code, const std::string& reason, std::string_view stage) = 0;
  // A reply queued by a stage: encode and send it to the client.
  virtual void sendReply(const Message& message) = 0;
  // A pause started (arm the pause or handshake timer) or ended (disarm).
  virtual void pauseChanged(bool paused, bool during_open) = 0;
  // Stop reading from the socket while messages wait behind a pause; resume when drained.
  virtual void setReading(bool on) = 0;
  // Called before each inbound message enters the pipeline, when no stage is busy: the host may
  // move the session to a new generation here (reset() is safe at this point).
  virtual void atMessageBoundary() = 0;
  // False once the session is closing: the runner then stops.
  virtual bool alive() const = 0;
  // What the stages are created with (the Connection is both: asked, not stored twice).
  virtual StageCallbacks& stageCallbacks() = 0;

 protected:
  ~StageRunnerHost() = default;
};

class StageRunner {
 public:
  explicit StageRunner(StageRunnerHost& host);
  ~StageRunner();

  // (Re)creates the stages from `pipeline`. Returns false (host told via messageRejected) when
  // a stage cannot be created.
  bool reset(std::shared_ptr<const Pipeline> pipeline);
  const std::shared_ptr<const Pipeline>& pipeline() const { return pipeline_; }

  void open();
  // Messages that arrive while a stage keeps an earlier one paused wait, in order, and the host
  // is told to stop reading: the queue holds at most one socket read's worth.
  void inbound(Message&& message);
  // True when the message may be sent to this session (no stage dropped or rejected it).
  bool outboundAllowed(const Message& message);
  // The session is closing: every stage's onClose, once.
  void close();

  // StageCallbacks forwarding.
  void resume();
  void reject(Errc code, std::string reason);
  void reply(Message message);
  // The host's pause timer fired.
  void pauseTimedOut();

  // Which set of stage instances is current: changes at reset() and close(). Completions of
  // async work started by a stage (upstream calls) compare it before touching the stage.
  uint32_t epoch() const { return epoch_; }

  bool paused() const { return paused_at_ != kNotPaused; }
  bool busy() const { return paused_at_ != kNotPaused || in_hook_ || !queueEmpty(); }
  bool inHook() const { return in_hook_; }
  size_t stageCount() const { return stages_ ? pipeline_->stages.size() : 0; }

 private:
  template <class F>
  Verdict guard(size_t index, F&& hook);
  // Applies a resume()/reject() that a hook asked for while an earlier message was paused (for
  // example from onOutbound), once no chain is running.
  void applyDeferred();
  void runOpen(size_t from);
  void runInbound(Message& message, size_t from);
  void continueAfterPause();
  void drainQueue();
  std::string_view name(size_t index) const;

  StageRunnerHost& host_;
  std::shared_ptr<const Pipeline> pipeline_;
  // One per stage of pipeline_, or null (none made yet, or making one failed): an array, not a
  // vector, since its size is the pipeline's.
  std::unique_ptr<StagePtr[]> stages_;
  // What only a session whose stages pause, reject or reply from a hook needs: held out of
  // line and allocated on first use, so an idle session carries one pointer for all of it.
  using RejectRequest = std::unique_ptr<std::pair<Errc, std::string>>;
  struct Rare {
    std::unique_ptr<Message> paused_message;
    // Messages waiting behind a pause; freed when drained.
    std::unique_ptr<std::deque<Message>> queue;
    // A rejection asked for inside a hook, taken by guard() as soon as the hook returns.
    RejectRequest reject_requested;
    // One for a pause in progress made by a hook of another event; applied at depth 0.
    RejectRequest deferred_reject;
    // Replies asked for inside a hook, sent when it returns.
    std::unique_ptr<std::vector<Message>> replies;
  };
  std::unique_ptr<Rare> rare_;
  Rare& rare() {
    if (!rare_) {
      rare_ = std::make_unique<Rare>();
    }
    return *rare_;
  }
  bool queueEmpty() const { return !rare_ || !rare_->queue || rare_->queue->empty(); }
  uint32_t epoch_ = 0;    // bumped at reset and close (wraps after 2^32 reloads of one session)
  // The stage the chain stopped at (its message in rare_->paused_message unless the pause is in
  // onOpen), kNotPaused when running.
  static constexpr uint32_t kNotPaused = UINT32_MAX;
  uint32_t paused_at_ = kNotPaused;
  uint16_t depth_ = 0;  // nesting of chain runs on the stack
  bool in_hook_ = false;
  bool closed_ = false;
  bool pause_is_open_ = false;
  bool resume_requested_ = false;  // asked inside a hook, taken by guard()
  // guard() verdict side channel: the pausing hook already asked to resume.
  bool resume_now_ = false;
  bool deferred_resume_ = false;  // asked for a pause in progress, applied at depth 0
};

}  // namespace imgate::core
