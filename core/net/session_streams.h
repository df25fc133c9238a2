// SPDX-License-Identifier: Apache-2.0
// One session's side of reliable delivery (docs/reliability.md): where it is in each of its
// streams, and the reliable messages it sent that the client has not acked yet. Sans-I/O (the
// caller passes the time and does the writing), so the ack window, backoff and duplicate rules
// are unit-tested with simulated time. Used on the session's worker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/stream_store.h"

namespace imgate::core {

class SessionStreams {
 public:
  struct Position {
    std::string stream;
    uint64_t epoch = 0;
    uint64_t seq = 0;  // the last seq this session was given
  };

  // What to do with a sequenced message about to be sent.
  enum class Check : uint8_t {
    kSend,       // next in order: send it
    kDuplicate,  // already sent (a replay overtook the live copy): skip it
    kGap,        // messages between the position and this one were not sent: send them first
  };
  // A stream with no position, or whose epoch differs from the message's, counts as "before
  // seq 1 of the message's epoch": a session records a position whenever it subscribes to a
  // stream that exists, so an unknown stream (or a new epoch) began after it subscribed and all
  // of it is due. (So sessions need no state for streams that have no message yet.)
  Check check(const Message& message) const;
  // The seq the session is at in `message`'s epoch of its stream (0 when unknown or another
  // epoch).
  uint64_t positionIn(const Message& message) const;

  // The message was written: moves the position; with `track`, it waits for an ack.
  void sent(const MessagePtr& message, bool track, int64_t now_ms,
            std::chrono::milliseconds ack_timeout);

  void setPosition(std::string_view stream, uint64_t epoch, uint64_t seq);
  void erase(std::string_view stream);
  const Position* position(std::string_view stream) const;
  const std::vector<Position>& positions() const { return positions_; }

  // Cumulative ack: removes tracked messages of `stream` up to `seq`; returns how many.
  size_t ack(std::string_view stream, uint64_t seq);

  // Tracked messages whose ack is overdue at `now_ms`, to send again; each one's next deadline
  // is ack_timeout * backoff^attempts later. Sets `exhausted` when one already went out
  // 1 + max_retransmits times (the session should then be closed).
  std::vector<MessagePtr> due(int64_t now_ms, std::chrono::milliseconds ack_timeout, double backoff,
                              uint32_t max_retransmits, bool& exhausted);
  std::optional<int64_t> nextDeadline() const;
  size_t unacked() const { return unacked_.size(); }

 private:
  struct Unacked {
    MessagePtr message;
    int64_t due_ms = 0;
    uint32_t attempts = 0;  // retransmissions so far
  };
  Position* find(std::string_view stream);

  std::vector<Position> positions_;
  std::vector<Unacked> unacked_;  // in send order; at most delivery.max_unacked
};

}  // namespace imgate::core
