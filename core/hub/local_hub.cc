// SPDX-License-Identifier: Apache-2.0
#include "hub/local_hub.h"

#include <algorithm>

#include "net/connection.h"

namespace imgate::core {

// The worker indexes every connection by id; a session is in the hub from add() (the Connection
// marks itself registered right after) until remove() (it unmarks itself just before).
void LocalHub::add(Connection&) { ++count_; }

void LocalHub::remove(Connection& connection) {
  --count_;
  for (const std::string& rk : connection.roomKeys()) {
    auto it = rooms_.find(rk);
    if (it == rooms_.end()) {
      continue;
    }
    std::erase(it->second, &connection);
    if (it->second.empty()) {
      rooms_.erase(it);
    }
  }
}

Connection* LocalHub::find(uint64_t session_id) const {
  Connection* c = worker_.findConnection(session_id);
  return c != nullptr && c->registered() ? c : nullptr;
}

std::vector<Connection*> LocalHub::sessions() const {
  std::vector<Connection*> all;
  all.reserve(count_);
  for (const auto& [id, c] : worker_.connections()) {
    if (c->registered()) {
      all.push_back(c);
    }
  }
  return all;
}

void LocalHub::joinRoom(Connection& connection, const std::string& room_key,
                        std::optional<StreamHead> at) {
  const auto& joined = connection.roomKeys();
  if (std::find(joined.begin(), joined.end(), room_key) != joined.end()) {
    return;
  }
  connection.mutableRoomKeys().push_back(room_key);
  rooms_[room_key].push_back(&connection);
  connection.roomJoined(room_key, at);
}

void LocalHub::leaveRoom(Connection& connection, const std::string& room_key) {
  if (std::find(connection.roomKeys().begin(), connection.roomKeys().end(), room_key) ==
      connection.roomKeys().end()) {
    return;
  }
  std::erase(connection.mutableRoomKeys(), room_key);
  connection.roomLeft(room_key);
  auto it = rooms_.find(room_key);
  if (it != rooms_.end()) {
    std::erase(it->second, &connection);
    if (it->second.empty()) {
      rooms_.erase(it);
    }
  }
}

size_t LocalHub::deliverToSessions(Delivery& delivery, const std::vector<uint64_t>& ids,
                                   const std::string& app) {
  size_t missing = 0;
  for (uint64_t id : ids) {
    Connection* c = find(id);
    if (c == nullptr || c->identity().app != app) {
      ++missing;
      continue;
    }
    c->deliver(delivery);
  }
  return missing;
}

void LocalHub::deliverToRoom(Delivery& delivery, const std::string& room_key) {
  auto it = rooms_.find(room_key);
  if (it == rooms_.end()) {
    return;
  }
  // deliver() may close a slow consumer, which edits the room list: iterate a copy.
  std::vector<Connection*> members = it->second;
  for (Connection* c : members) {
    c->deliver(delivery);
  }
}

void LocalHub::deliverToAll(Delivery& delivery, const std::string& app) {
  std::vector<Connection*> targets = sessions();
  std::erase_if(targets, [&app](const Connection* c) { return c->identity().app != app; });
  for (Connection* c : targets) {
    c->deliver(delivery);
  }
}

uint64_t LocalHub::close(const std::vector<uint64_t>& ids, Errc code, const std::string& reason) {
  uint64_t n = 0;
  for (uint64_t id : ids) {
    if (Connection* c = find(id)) {
      c->closeWith(code, reason);
      ++n;
    }
  }
  return n;
}

}  // namespace imgate::core
