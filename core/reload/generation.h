// SPDX-License-Identifier: Apache-2.0
// A configuration generation: everything compiled from one config file. Immutable once built;
// shared by the workers and by every session that started under it. Reload builds a whole new
// one (all or nothing) and publishes it to the workers; sessions move to it at their next
// message boundary (DESIGN.md §5).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "hub/stream_store.h"
#include "imgate/sdk/codec.h"
#include "imgate/sdk/module.h"
#include "net/admission.h"
#include "net/http_parser.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace imgate::core {

namespace config {
class ValidatedSection;
}
namespace module {
class ModuleLibrary;
}
// Null for built-in modules. Declared first in each holder so the .so outlives what it made.
using ModuleLibraryRef = std::shared_ptr<module::ModuleLibrary>;
namespace upstream {
class UpstreamSet;
}

struct TlsContext {
  explicit TlsContext(SSL_CTX* c) : ctx(c) {}
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* ctx;
};

struct CompiledStage {
  ModuleLibraryRef library;
  std::string module;
  std::string instance;
  StageConfigPtr config;
  bool terminal = false;
  bool wants_outbound = false;  // config->wantsOutbound(): its onOutbound runs
};

struct Pipeline {
  std::string name;
  std::vector<CompiledStage> stages;
  bool wants_outbound = false;
};

struct Location {
  ModuleLibraryRef library;  // of the protocol module
  std::string path;    // prefix, e.g. "/ws"
  std::string module;  // protocol module name
  ProtocolConfigPtr protocol;
  std::shared_ptr<const Pipeline> pipeline;  // never null (may have no stages)
};

struct ListenerSpec {
  std::string name;
  std::string bind;  // "host:port" as written
  bool stream = false;
  bool admin = false;
  bool admission = true;  // the top-level limits apply (never to the admin listener)
  bool exact_balance = false;  // balance: exact (new connections to the least-loaded worker)
  std::vector<Location> locations;  // http: longest prefix first; stream: exactly one
  std::shared_ptr<TlsContext> tls;
  net::HttpLimits http_limits;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds keepalive_timeout{75'000};

  // Identifies the listening socket across reloads: the bind address, or for port 0 (pick any
  // port) the bind address plus the listener name, so two such listeners get two sockets.
  std::string socketKey() const {
    return bind.size() > 2 && bind.compare(bind.size() - 2, 2, ":0") == 0 ? bind + "#" + name : bind;
  }

  // The location whose prefix is the longest match for `path`, or nullptr.
  const Location* match(std::string_view path) const;
};

struct SessionSettings {
  std::chrono::milliseconds idle_timeout{120'000};
  std::chrono::milliseconds ping_interval{0};
  std::chrono::milliseconds pause_timeout{5'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds close_timeout{2'000};
  uint32_t max_conns_per_user = 8;
  size_t max_outbound = 4u << 20;
  // Slow consumers. kClose: queue up to max_outbound, then close (slow_consumer). kDropNew: fan-out
  // messages arriving while more than outbound_high_water bytes wait are dropped. kDropOldest:
  // they wait in a backlog instead (at most max_outbound - outbound_high_water bytes), whose
  // oldest entries are dropped to make room; max_outbound still closes in every policy.
  enum class SlowConsumer : uint8_t { kClose, kDropNew, kDropOldest };
  SlowConsumer slow_consumer = SlowConsumer::kClose;
  size_t outbound_high_water = 1u << 20;
};

class ServerControl;

struct Generation {
  Generation();
  ~Generation();

  // modules.load, in config order. First member: destroyed after everything compiled from them.
  std::vector<ModuleLibraryRef> libraries;

  uint64_t id = 0;
  std::string file;
  int64_t loaded_at_ms = 0;
  unsigned workers = 0;  // resolved: "auto" = cores
  std::string workers_setting;
  std::chrono::milliseconds shutdown_timeout{10'000};
  LogLevel log_level = LogLevel::kInfo;
  LogFormat log_format = LogFormat::kText;
  std::string log_file;
  bool access_log = true;
  std::string pid_file;
  SessionSettings sessions;
  AdmissionLimits admission;
  DeliverySettings delivery;
  std::vector<ListenerSpec> listeners;
  std::unique_ptr<config::ValidatedSection> root;  // for the non-reloadable key check
  std::shared_ptr<const upstream::UpstreamSet> upstreams;  // may be null: no groups

  const ListenerSpec* listener(std::string_view name) const;
  bool hasUpstream(std::string_view group) const;
};

using GenerationPtr = std::shared_ptr<const Generation>;

// Loads, validates and compiles `path`. `previous` (may be null) is the running generation, for
// the reloadable=false checks. Errors are formatted "file:line:col: path: message".
tl::expected<std::shared_ptr<Generation>, std::vector<std::string>> buildGeneration(
    const std::string& path, const Generation* previous, ServerControl* control);

// The core's own schema (top level of the config file), for --describe and docs/config.md.
std::span<const ParamSpec> coreSchema();
// One upstream group's schema (the values of the top-level `upstreams` map).
std::span<const ParamSpec> upstreamSchema();

// Resolves "auto" to the number of online CPUs.
unsigned resolveWorkers(std::string_view setting);

}  // namespace imgate::core
