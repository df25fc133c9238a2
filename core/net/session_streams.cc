// SPDX-License-Identifier: Apache-2.0
#include "net/session_streams.h"

#include <algorithm>
#include <cmath>

namespace imgate::core {

SessionStreams::Position* SessionStreams::find(std::string_view stream) {
  for (Position& p : positions_) {
    if (p.stream == stream) {
      return &p;
    }
  }
  return nullptr;
}

const SessionStreams::Position* SessionStreams::position(std::string_view stream) const {
  for (const Position& p : positions_) {
    if (p.stream == stream) {
      return &p;
    }
  }
  return nullptr;
}

uint64_t SessionStreams::positionIn(const Message& message) const {
  const Position* p = position(message.stream);
  return p != nullptr && p->epoch == message.epoch ? p->seq : 0;
}

SessionStreams::Check SessionStreams::check(const Message& message) const {
  const uint64_t at = positionIn(message);
  if (message.seq <= at) {
    return Check::kDuplicate;
  }
  return message.seq == at + 1 ? Check::kSend : Check::kGap;
}

void SessionStreams::sent(const MessagePtr& message, bool track, int64_t now_ms,
                          std::chrono::milliseconds ack_timeout) {
  setPosition(message->stream, message->epoch, message->seq);
  if (track) {
    unacked_.push_back(Unacked{message, now_ms + ack_timeout.count(), 0});
  }
}

void SessionStreams::setPosition(std::string_view stream, uint64_t epoch, uint64_t seq) {
  if (Position* p = find(stream)) {
    if (p->epoch != epoch) {
      // A new epoch: whatever waits for an ack in the old one can never be acked.
      std::erase_if(unacked_, [&](const Unacked& u) { return u.message->stream == stream; });
    }
    p->epoch = epoch;
    p->seq = seq;
    return;
  }
  positions_.push_back(Position{std::string(stream), epoch, seq});
}

void SessionStreams::erase(std::string_view stream) {
  std::erase_if(positions_, [&](const Position& p) { return p.stream == stream; });
  std::erase_if(unacked_, [&](const Unacked& u) { return u.message->stream == stream; });
}

size_t SessionStreams::ack(std::string_view stream, uint64_t seq) {
  const size_t before = unacked_.size();
  std::erase_if(unacked_, [&](const Unacked& u) {
    return u.message->stream == stream && u.message->seq <= seq;
  });
  return before - unacked_.size();
}

std::vector<MessagePtr> SessionStreams::due(int64_t now_ms, std::chrono::milliseconds ack_timeout,
                                            double backoff, uint32_t max_retransmits,
                                            bool& exhausted) {
  exhausted = false;
  std::vector<MessagePtr> out;
  for (Unacked& u : unacked_) {
    if (u.due_ms > now_ms) {
      continue;
    }
    if (u.attempts >= max_retransmits) {
      exhausted = true;
      return {};
    }
    ++u.attempts;
    const double factor = std::pow(std::max(backoff, 1.0), static_cast<double>(u.attempts));
    const auto wait = static_cast<int64_t>(std::min(
        static_cast<double>(ack_timeout.count()) * factor, 3'600'000.0));  // at most an hour
    u.due_ms = now_ms + std::max<int64_t>(wait, 1);
    out.push_back(u.message);
  }
  return out;
}

std::optional<int64_t> SessionStreams::nextDeadline() const {
  std::optional<int64_t> next;
  for (const Unacked& u : unacked_) {
    if (!next || u.due_ms < *next) {
      next = u.due_ms;
    }
  }
  return next;
}

}  // namespace imgate::core
