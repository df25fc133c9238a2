// SPDX-License-Identifier: Apache-2.0
// The per-worker half of the hub: this worker's sessions by id and by room, and local fan-out.
// Touched only on the worker's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "hub/stream_store.h"
#include "imgate/sdk/hub.h"
#include "imgate/sdk/message.h"

namespace imgate::core {

class Connection;
class Worker;

// One fan-out job as seen by one worker: the shared message plus the byte encodings already made
// for it on this worker (one per codec variant), so each payload is encoded once per variant.
struct Delivery {
  std::shared_ptr<const Message> message;
  // Keyed by the codec's dynamic type and its sharedEncodingKey(): keys are only comparable
  // between codecs of one class, and two loaded copies of a module (a reload that replaced the
  // .so) have distinct classes, so a changed wire format is never shared with the old one.
  struct Encoding {
    const std::type_info* codec;
    uint64_t key;
    Bytes bytes;
  };
  std::vector<Encoding> encodings;
  uint64_t delivered = 0;
  uint64_t dropped = 0;
  int64_t start_us = 0;  // steady clock, for the push latency histogram
};

class LocalHub {
 public:
  explicit LocalHub(Worker& worker) : worker_(worker) {}

  void add(Connection& connection);
  void remove(Connection& connection);
  Connection* find(uint64_t session_id) const;
  // `at`: the room stream's head when the join was decided (the hub API's join), so a push
  // made after that call reaches the session even if it overtook this post; none: now.
  void joinRoom(Connection& connection, const std::string& room_key,
                std::optional<StreamHead> at = std::nullopt);
  void leaveRoom(Connection& connection, const std::string& room_key);

  // Sessions of another app are skipped (tenant isolation); returns how many ids matched none.
  size_t deliverToSessions(Delivery& delivery, const std::vector<uint64_t>& ids,
                           const std::string& app);
  void deliverToRoom(Delivery& delivery, const std::string& room_key);
  void deliverToAll(Delivery& delivery, const std::string& app);
  // Closes with `code` every session in `ids`; returns how many existed.
  uint64_t close(const std::vector<uint64_t>& ids, Errc code, const std::string& reason);
  // Calls f for every session (for graceful stop).
  template <class F>
  void forEach(F&& f) {
    const std::vector<Connection*> all = sessions();
    for (Connection* c : all) {
      f(*c);
    }
  }
  size_t size() const { return count_; }
  Worker& worker() { return worker_; }

 private:
  Worker& worker_;
  // The open sessions, from the worker's index of its connections (no map of its own).
  std::vector<Connection*> sessions() const;
  size_t count_ = 0;
  std::unordered_map<std::string, std::vector<Connection*>> rooms_;
};

}  // namespace imgate::core
