// SPDX-License-Identifier: Apache-2.0
#include "reload/generation.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "admin/admin.h"
#include "common/stats.h"
#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "module/dl_loader.h"
#include "module/library_scope.h"
#include "module/registry.h"
#include "upstream/upstream_config.h"

namespace imgate::core {

namespace {

using config::ConfigError;
using config::Errors;
using config::RawNode;
using config::ValidatedSection;

// ---- The core's own schema ---------------------------------------------------------------

constexpr std::array<std::string_view, 7> kLogLevels = {"debug", "info",  "notice", "warn",
                                                        "error", "crit", "alert"};
constexpr std::array<std::string_view, 2> kLogFormats = {"text", "json"};
constexpr std::array<std::string_view, 2> kListenerTypes = {"http", "stream"};
constexpr std::array<std::string_view, 2> kBalanceModes = {"kernel", "exact"};
constexpr std::array<std::string_view, 2> kTlsVersions = {"1.2", "1.3"};

constexpr std::array<ParamSpec, 4> kLogSchema = {{
    {.key = "level", .type = ParamType::kEnum, .default_value = "info", .choices = kLogLevels,
     .help = "least severe level written"},
    {.key = "format", .type = ParamType::kEnum, .default_value = "text", .choices = kLogFormats,
     .help = "text lines, or one JSON object per line for log shippers"},
    {.key = "file", .type = ParamType::kString, .default_value = "",
     .help = "log file path (appended to); empty means standard error"},
    {.key = "access_log", .type = ParamType::kBool, .default_value = "true",
     .help = "log every HTTP request and every session open/close at info"},
}};

constexpr std::array<std::string_view, 3> kSlowConsumerPolicies = {"close", "drop_new",
                                                                    "drop_oldest"};

constexpr std::array<ParamSpec, 9> kSessionSchema = {{
    {.key = "idle_timeout", .type = ParamType::kDuration, .default_value = "120s", .min = 1000,
     .max = 86'400'000,
     .help = "close a session after this long without any frame from the client (seed "
             "articles: clients ping every ~50s, server gives up after ~120s)"},
    {.key = "ping_interval", .type = ParamType::kDuration, .default_value = "0", .min = 0,
     .max = 3'600'000,
     .help = "send a protocol ping after this long without traffic; 0 disables server pings"},
    {.key = "max_conns_per_user", .type = ParamType::kInt, .default_value = "8", .min = 0,
     .max = 100000,
     .help = "sessions one user may hold at once (0: no cap); the oldest is closed with "
             "close code 4009 when a new one exceeds it"},
    {.key = "max_outbound", .type = ParamType::kSize, .default_value = "4MiB", .min = 4096,
     .max = int64_t{1} << 32,
     .help = "bytes queued for one slow client before it is closed with slow_consumer "
             "(WebSocket 4008); bounds server memory per session whatever the policy"},
    {.key = "slow_consumer", .type = ParamType::kEnum, .default_value = "close",
     .choices = kSlowConsumerPolicies,
     .help = "close: queue everything up to max_outbound, then close; drop_new: while more "
             "than outbound_high_water bytes wait, drop pushed messages for that session; "
             "drop_oldest: keep them in a backlog of at most max_outbound - "
             "outbound_high_water bytes and drop its oldest to make room. Drops are counted in "
             "imgate_outbound_dropped_total; replies, acks and per-session encodings (e.g. "
             "compressed with the session's context) are never dropped"},
    {.key = "outbound_high_water", .type = ParamType::kSize, .default_value = "1MiB",
     .min = 1024, .max = int64_t{1} << 32,
     .help = "drop_new: queued bytes above which pushes are dropped (keep it below "
             "max_outbound)"},
    {.key = "pause_timeout", .type = ParamType::kDuration, .default_value = "5s", .min = 1,
     .max = 600'000, .help = "how long a stage may keep a message paused before it is rejected"},
    {.key = "handshake_timeout", .type = ParamType::kDuration, .default_value = "10s", .min = 100,
     .max = 600'000, .help = "time a new connection has to complete TLS and its handshake"},
    {.key = "close_timeout", .type = ParamType::kDuration, .default_value = "2s", .min = 0,
     .max = 60'000,
     .help = "how long to wait for the client to close after the server's close frame"},
}};

constexpr std::array<ParamSpec, 3> kTlsSchema = {{
    {.key = "cert", .type = ParamType::kString, .required = true,
     .help = "PEM certificate chain file (relative to the config file's directory)"},
    {.key = "key", .type = ParamType::kString, .required = true, .help = "PEM private key file"},
    {.key = "min_version", .type = ParamType::kEnum, .default_value = "1.2",
     .choices = kTlsVersions, .help = "lowest TLS version accepted"},
}};

constexpr std::array<ParamSpec, 4> kLocationSchema = {{
    {.key = "path", .type = ParamType::kString, .required = true,
     .help = "path prefix; the longest matching prefix wins (nginx-like)"},
    {.key = "protocol", .type = ParamType::kString, .required = true,
     .help = "protocol module serving this location, e.g. proto.websocket"},
    {.key = "config", .type = ParamType::kAny, .help = "the protocol module's own settings"},
    {.key = "pipeline", .type = ParamType::kString, .default_value = "",
     .help = "pipeline (from `pipelines`) that sessions of this location run through"},
}};

constexpr std::array<ParamSpec, 15> kListenerSchema = {{
    {.key = "name", .type = ParamType::kString, .required = true,
     .help = "unique name, used in logs, metrics and for moving sessions on reload"},
    {.key = "admission", .type = ParamType::kBool, .default_value = "true",
     .help = "apply the top-level `limits` to this listener's new connections; turn it off for "
             "listeners only backends reach (the push API), so an avalanche of clients cannot "
             "lock them out (the admin listener is always exempt)"},
    {.key = "bind", .type = ParamType::kString, .required = true,
     .help = "address:port to listen on, e.g. 0.0.0.0:8080 or [::1]:8080; port 0 picks one"},
    {.key = "balance", .type = ParamType::kEnum, .default_value = "kernel",
     .choices = kBalanceModes,
     .help = "how new connections are spread over the workers. kernel: each worker accepts on "
             "its own SO_REUSEPORT socket and the kernel's hash decides (no cost; even for many "
             "clients). exact: a new connection goes to the worker with the fewest open "
             "connections from this listener (one cross-thread hop when that is not the worker "
             "that accepted it), for listeners with a few busy long-lived connections, such as "
             "the push API used by some backends over keep-alive"},
    {.key = "type", .type = ParamType::kEnum, .default_value = "http", .choices = kListenerTypes,
     .help = "http: HTTP/1.1 front with locations; stream: raw TCP to one protocol"},
    {.key = "tls", .type = ParamType::kMap, .help = "serve TLS on this listener",
     .fields = kTlsSchema},
    {.key = "locations", .type = ParamType::kMapList,
     .help = "http listeners: path prefixes mapped to protocol modules", .fields = kLocationSchema},
    {.key = "protocol", .type = ParamType::kString, .default_value = "",
     .help = "stream listeners: the protocol module"},
    {.key = "config", .type = ParamType::kAny, .help = "stream listeners: the module's settings"},
    {.key = "pipeline", .type = ParamType::kString, .default_value = "",
     .help = "stream listeners: the pipeline"},
    {.key = "max_header_size", .type = ParamType::kSize, .default_value = "16KiB", .min = 1024,
     .max = 1 << 20, .help = "request line plus headers; larger requests get 431"},
    {.key = "max_body", .type = ParamType::kSize, .default_value = "1MiB", .min = 0,
     .max = int64_t{1} << 30, .help = "request body limit; larger bodies get 413"},
    {.key = "header_timeout", .type = ParamType::kDuration, .default_value = "10s", .min = 100,
     .max = 600'000, .help = "time to receive a whole request once it has started (408)"},
    {.key = "keepalive_timeout", .type = ParamType::kDuration, .default_value = "75s", .min = 0,
     .max = 3'600'000, .help = "idle time allowed between requests on a keep-alive connection"},
    {.key = "max_uri", .type = ParamType::kSize, .default_value = "8KiB", .min = 256,
     .max = 1 << 20, .help = "request-target length limit (414)"},
}};

constexpr std::array<ParamSpec, 3> kAdminSchema = {{
    {.key = "bind", .type = ParamType::kString, .default_value = "",
     .help = "address:port of the admin listener (/metrics, /healthz, /status, /reload); "
             "empty disables it. Keep it on loopback or a private network"},
    {.key = "api_keys", .type = ParamType::kStringList,
     .help = "old-style keys: if set, POST /reload needs Authorization: Bearer <key> (reads stay "
             "open unless keys is set)"},
    {.key = "keys", .type = ParamType::kMapList,
     .help = "keys with scopes: read (GET /metrics, /status), admin (POST /reload); when set, "
             "reads need a key too. /healthz is always open",
     .fields = kAdminKeyFields},
}};

constexpr std::array<ParamSpec, 1> kModulesSchema = {{
    {.key = "load", .type = ParamType::kStringList,
     .help = "third-party module .so files (paths relative to this file's directory), loaded in "
             "order at start and at every reload: an added file is loaded, a removed one is "
             "unloaded once nothing of it is alive, a changed file (new mtime/size/inode) is "
             "loaded as new code beside the old one. Built against the installed SDK "
             "(docs/modules.md)"},
}};

constexpr std::array<ParamSpec, 5> kLimitsSchema = {{
    {.key = "max_connections", .type = ParamType::kInt, .default_value = "1000000", .min = 0,
     .max = 100'000'000,
     .help = "open client connections, all listeners (0: no limit but the file-descriptor "
             "limit); excess sockets are reset right after accept"},
    {.key = "max_connections_per_ip", .type = ParamType::kInt, .default_value = "0", .min = 0,
     .max = 10'000'000,
     .help = "open connections from one client address (0: no limit). Mind carrier NAT: many "
             "mobile users can share one address"},
    {.key = "connect_rate", .type = ParamType::kInt, .default_value = "0", .min = 0,
     .max = 10'000'000,
     .help = "new connections per second accepted, whole process (0: no limit); the rest are "
             "reset before any TLS or HTTP work, so a reconnect avalanche costs little"},
    {.key = "connect_burst", .type = ParamType::kInt, .default_value = "0", .min = 0,
     .max = 10'000'000, .help = "connections accepted at once above connect_rate (0: the rate)"},
    {.key = "max_handshakes", .type = ParamType::kInt, .default_value = "10000", .min = 0,
     .max = 10'000'000,
     .help = "connections still in their handshake (TLS, first HTTP request, WebSocket upgrade "
             "and auth, in-band hello) at once (0: no limit)"},
}};

constexpr std::array<ParamSpec, 6> kHistorySchema = {{
    {.key = "max_messages", .type = ParamType::kInt, .default_value = "1000", .min = 0,
     .max = 10'000'000,
     .help = "messages kept per stream (0: no history; seqs are still given, nothing can be "
             "recovered)"},
    {.key = "max_bytes", .type = ParamType::kSize, .default_value = "1MiB", .min = 0,
     .max = int64_t{1} << 40, .help = "bytes kept per stream (payload, event, id, ~96 bytes "
                                      "of overhead per message)"},
    {.key = "ttl", .type = ParamType::kDuration, .default_value = "24h", .min = 1000,
     .max = int64_t{365} * 24 * 3600 * 1000, .help = "how long a message stays recoverable"},
    {.key = "idle_ttl", .type = ParamType::kDuration, .default_value = "7d", .min = 1000,
     .max = int64_t{365} * 24 * 3600 * 1000,
     .help = "a stream with no new message for this long is forgotten with its epoch (a client "
             "resuming it later is told recovery is impossible)"},
    {.key = "max_total_bytes", .type = ParamType::kSize, .default_value = "256MiB", .min = 0,
     .max = int64_t{1} << 44,
     .help = "history of all streams together; over it, the least recently used streams lose "
             "their oldest messages first (enforced per 1/64 shard, so approximate)"},
    {.key = "max_streams", .type = ParamType::kInt, .default_value = "10000000", .min = 1,
     .max = 1'000'000'000,
     .help = "streams remembered; over it, the least recently used are forgotten"},
}};

constexpr std::array<ParamSpec, 10> kDeliverySchema = {{
    {.key = "enabled", .type = ParamType::kBool, .default_value = "true",
     .help = "give pushes to users, rooms and everyone a per-stream seq and keep them in "
             "history (acks, retransmission, resume, offline storage); false: fire and forget"},
    {.key = "broadcast_stream", .type = ParamType::kBool, .default_value = "true",
     .help = "pushes to everyone (target all) form the app's \"all\" stream"},
    {.key = "offline", .type = ParamType::kBool, .default_value = "true",
     .help = "pushes to a user with no live session are delivered at their next connect (to "
             "sessions without a resume position of their own)"},
    {.key = "reliable", .type = ParamType::kBool, .default_value = "false",
     .help = "every sequenced push is reliable (retransmitted until acked on protocols with "
             "acks); false: only pushes that ask for it"},
    {.key = "ack_timeout", .type = ParamType::kDuration, .default_value = "5s", .min = 10,
     .max = 3'600'000, .help = "a reliable message not acked this long after it was sent is "
                               "sent again"},
    {.key = "ack_backoff", .type = ParamType::kInt, .default_value = "2", .min = 1, .max = 10,
     .help = "each retransmission waits this many times longer than the previous wait"},
    {.key = "max_retransmits", .type = ParamType::kInt, .default_value = "5", .min = 0,
     .max = 100, .help = "retransmissions of one message; then the session is closed (4000, "
                         "ack timeout) and the client resumes"},
    {.key = "max_unacked", .type = ParamType::kInt, .default_value = "1024", .min = 1,
     .max = 1'000'000, .help = "reliable messages awaiting an ack per session; more closes the "
                               "session as a slow consumer (4008)"},
    {.key = "max_replay", .type = ParamType::kInt, .default_value = "1000", .min = 0,
     .max = 10'000'000, .help = "messages replayed per stream at resume; a client further "
                                "behind is told recovery is impossible"},
    {.key = "history", .type = ParamType::kMap, .help = "per-stream history limits",
     .fields = kHistorySchema},
}};

constexpr std::array<ParamSpec, 13> kRootSchema = {{
    {.key = "version", .type = ParamType::kInt, .default_value = "1", .min = 1, .max = 1,
     .help = "config format version"},
    {.key = "workers", .type = ParamType::kString, .default_value = "auto", .reloadable = false,
     .help = "worker threads: auto (one per core) or a number from 1 to 64"},
    {.key = "pid_file", .type = ParamType::kString, .default_value = "", .reloadable = false,
     .help = "write the process id here (used by imgate -s without an admin listener)"},
    {.key = "shutdown_timeout", .type = ParamType::kDuration, .default_value = "10s", .min = 0,
     .max = 3'600'000, .help = "graceful stop (SIGQUIT): how long to wait for sessions to close"},
    {.key = "log", .type = ParamType::kMap, .help = "logging", .fields = kLogSchema},
    {.key = "sessions", .type = ParamType::kMap, .help = "limits and timers of long-lived sessions",
     .fields = kSessionSchema},
    {.key = "admin", .type = ParamType::kMap, .help = "the admin listener", .fields = kAdminSchema},
    {.key = "limits", .type = ParamType::kMap,
     .help = "admission control, checked for every new connection before any TLS or HTTP work "
             "(reloadable; connections already open are kept)",
     .fields = kLimitsSchema},
    {.key = "delivery", .type = ParamType::kMap,
     .help = "reliable delivery: streams, history, acks and resume (docs/reliability.md)",
     .fields = kDeliverySchema},
    {.key = "listeners", .type = ParamType::kMapList, .required = true, .min = 1,
     .help = "where clients and backends connect", .fields = kListenerSchema},
    {.key = "modules", .type = ParamType::kMap, .help = "third-party modules",
     .fields = kModulesSchema},
    {.key = "pipelines", .type = ParamType::kAny,
     .help = "named lists of behaviour stages: name: [ {module: {settings}}, ... ]"},
    {.key = "upstreams", .type = ParamType::kAny,
     .help = "named groups of backend HTTP servers: name: {backends: [...], policy, timeouts, "
             "health checks} (see the upstream group keys below)"},
}};

// ---- Helpers -----------------------------------------------------------------------------

class Context final : public LoadContext {
 public:
  Context(std::string instance, std::string dir)
      : instance_(std::move(instance)), dir_(std::move(dir)), log_(instance_ + ": "),
        stats_(instance_) {}
  std::string_view instanceName() const override { return instance_; }
  std::string_view configDir() const override { return dir_; }
  Logger& log() override { return log_; }
  Stats& stats() override { return stats_; }
  bool hasUpstream(std::string_view group) const override {
    return generation_ != nullptr && generation_->hasUpstream(group);
  }
  const Generation* generation_ = nullptr;

 private:
  std::string instance_;
  std::string dir_;
  PrefixLogger log_;
  InstanceStats stats_;
};

struct Builder {
  std::string file;
  std::string dir;
  const Generation* previous;
  ServerControl* control;
  const Generation* gen = nullptr;
  Errors errors;
  std::map<std::string, std::shared_ptr<const Pipeline>> pipelines;

  void error(const RawNode& at, std::string path, std::string message) {
    errors.push_back(ConfigError{file, at.valid() ? at.mark() : config::Mark{}, std::move(path),
                                 std::move(message)});
  }
  void error(const ValidatedSection& s, std::string_view key, std::string path,
             std::string message) {
    errors.push_back(ConfigError{file, s.mark(key), std::move(path), std::move(message)});
  }

  std::string resolvePath(const std::string& p) const {
    if (p.empty() || p[0] == '/') {
      return p;
    }
    return dir + "/" + p;
  }

  // Modules from modules.load (this generation's), searched before the built-in ones.
  std::vector<ModuleLibraryRef> libraries;

  struct Found {
    const ModuleFactory* factory = nullptr;
    ModuleLibraryRef library;
  };
  Found findModule(std::string_view name) const {
    for (const auto& lib : libraries) {
      for (const ModuleFactory* f : lib->factories()) {
        if (f->name() == name) {
          return {f, lib};
        }
      }
    }
    return {module::ModuleRegistry::instance().find(name), nullptr};
  }

  bool moduleNameTaken(std::string_view name) const { return findModule(name).factory != nullptr; }

  // modules.load: each file is loaded (or, unchanged since the previous generation, shared with
  // it) before any pipeline or location is compiled, so they can use its modules.
  void loadModules(const RawNode& modules) {
    const RawNode list = modules.valid() && modules.isMap() ? modules.get("load") : RawNode();
    if (!list.valid() || list.isNull()) {
      return;
    }
    const auto items = list.isSeq() ? list.items() : std::vector<RawNode>{list};
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string ipath = format("modules.load[", i, "]");
      const std::string file_path = resolvePath(items[i].scalar());
      for (const auto& lib : libraries) {
        if (lib->path() == file_path) {
          error(items[i], ipath, format("module file ", quote(file_path), " is listed twice"));
        }
      }
      auto id = module::moduleFileId(file_path);
      if (!id) {
        error(items[i], ipath, id.error().message);
        continue;
      }
      ModuleLibraryRef library;
      if (previous != nullptr) {
        for (const auto& lib : previous->libraries) {
          if (lib->path() == file_path && lib->fileId() == *id) {
            library = lib;  // unchanged: keep the loaded code (and its static state)
          }
        }
      }
      if (library) {
        bool clash = false;
        for (const ModuleFactory* f : library->factories()) {
          if (!clash && moduleNameTaken(f->name())) {
            error(items[i], ipath, format("module ", quote(file_path), ": duplicate module name ",
                                          quote(f->name())));
            clash = true;
          }
        }
        if (clash) {
          continue;
        }
      } else {
        auto loaded = module::loadModule(
            file_path, [this](std::string_view name) { return moduleNameTaken(name); });
        if (!loaded) {
          error(items[i], ipath, loaded.error().message);
          continue;
        }
        library = *loaded;
      }
      libraries.push_back(std::move(library));
    }
  }

  // Runs a module's compile() behind the exception guard (STYLE.md §4.10).
  template <class Factory>
  auto compile(const Factory& factory, const ValidatedSection& section, Context& ctx,
               const RawNode& at, const std::string& path)
      -> decltype(factory.compile(section, ctx)) {
    try {
      auto result = factory.compile(section, ctx);
      if (!result) {
        error(at, path, format(factory.name(), ": ", result.error().message));
      }
      return result;
    } catch (const std::exception& e) {
      error(at, path, format(factory.name(), ": compile() threw: ", e.what()));
    } catch (...) {
      error(at, path, format(factory.name(), ": compile() threw"));
    }
    return fail(Errc::kInvalidConfig, "compile failed");
  }

  void buildPipelines(const RawNode& node) {
    if (!node.valid() || node.isNull()) {
      return;
    }
    if (!node.isMap()) {
      error(node, "pipelines", format("must be a map of pipeline name to list, not ", node.describe()));
      return;
    }
    for (const auto& [key, value] : node.entries()) {
      const std::string name = key.scalar();
      const std::string ppath = "pipelines." + name;
      auto pipeline = std::make_shared<Pipeline>();
      pipeline->name = name;
      if (!value.isNull() && !value.isSeq()) {
        error(value, ppath, format("must be a list of stages, not ", value.describe()));
        continue;
      }
      const auto items = value.isNull() ? std::vector<RawNode>{} : value.items();
      for (size_t i = 0; i < items.size(); ++i) {
        const RawNode& item = items[i];
        const std::string ipath = format(ppath, "[", i, "]");
        std::string module_name;
        RawNode settings;
        if (item.isScalar()) {
          module_name = item.scalar();
        } else if (item.isMap() && item.entries().size() == 1) {
          module_name = item.entries()[0].first.scalar();
          settings = item.entries()[0].second;
        } else {
          error(item, ipath, "a stage is written as `module.name: {settings}` or `module.name`");
          continue;
        }
        const Found found = findModule(module_name);
        const ModuleFactory* factory = found.factory;
        if (factory == nullptr) {
          error(item, ipath, format("unknown module ", quote(module_name)));
          continue;
        }
        if (factory->kind() != ModuleKind::kStage) {
          error(item, ipath, format(quote(module_name), " is a protocol module, not a stage"));
          continue;
        }
        const auto& sf = static_cast<const StageFactory&>(*factory);
        const std::string spath = ipath + "." + module_name;
        const size_t before = errors.size();
        auto section = config::validate(settings, sf.schema(), spath, errors);
        if (errors.size() != before || !section) {
          continue;
        }
        const std::string instance = format(name, "[", i, "]:", module_name);
        Context ctx(instance, dir);
        ctx.generation_ = gen;
        module::LibraryScope scope(found.library);
        auto compiled = compile(sf, *section, ctx, item, spath);
        if (!compiled) {
          continue;
        }
        if (sf.terminal() && i + 1 != items.size()) {
          error(item, ipath, format("terminal stage ", quote(module_name), " must be last"));
        }
        const bool outbound = (*compiled)->wantsOutbound();
        pipeline->wants_outbound = pipeline->wants_outbound || outbound;
        pipeline->stages.push_back(CompiledStage{found.library, module_name, instance, *compiled,
                                                 sf.terminal(), outbound});
      }
      pipelines[name] = pipeline;
    }
  }

  std::shared_ptr<const Pipeline> pipeline(const ValidatedSection& s, const std::string& path) {
    const std::string name = s.getString("pipeline");
    if (name.empty()) {
      static const auto kEmpty = std::make_shared<const Pipeline>();
      return kEmpty;
    }
    auto it = pipelines.find(name);
    if (it == pipelines.end()) {
      error(s, "pipeline", path + ".pipeline", format("no pipeline named ", quote(name)));
      return nullptr;
    }
    return it->second;
  }

  bool location(const ValidatedSection& s, const std::string& path, const std::string& listener,
                Location& out) {
    out.path = s.has("path") ? s.getString("path") : std::string();
    out.module = s.getString("protocol");
    const Found found = findModule(out.module);
    const ModuleFactory* factory = found.factory;
    out.library = found.library;
    if (factory == nullptr) {
      error(s, "protocol", path + ".protocol", format("unknown module ", quote(out.module)));
      return false;
    }
    if (factory->kind() != ModuleKind::kProtocol) {
      error(s, "protocol", path + ".protocol",
            format(quote(out.module), " is a stage, not a protocol module"));
      return false;
    }
    const auto& pf = static_cast<const ProtocolFactory&>(*factory);
    const RawNode raw = s.raw("config");
    const std::string cpath = path + ".config";
    const size_t before = errors.size();
    auto section = config::validate(raw, pf.schema(), cpath, errors);
    if (errors.size() != before || !section) {
      return false;
    }
    Context ctx(format(listener, out.path, ":", out.module), dir);
    ctx.generation_ = gen;
    module::LibraryScope scope(found.library);
    auto compiled = compile(pf, *section, ctx, raw.valid() ? raw : s.raw("protocol"), cpath);
    if (!compiled) {
      return false;
    }
    out.protocol = *compiled;
    out.pipeline = pipeline(s, path);
    return out.pipeline != nullptr;
  }

  std::shared_ptr<TlsContext> tls(const ValidatedSection& s, const std::string& path) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    auto holder = std::make_shared<TlsContext>(ctx);
    const int min = s.getString("min_version") == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, min);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    auto sslError = [] {
      const unsigned long e = ERR_get_error();
      char buf[256];
      ERR_error_string_n(e, buf, sizeof(buf));
      ERR_clear_error();
      return std::string(buf);
    };
    const std::string cert = resolvePath(s.getString("cert"));
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
      error(s, "cert", path + ".cert", format("cannot load certificate ", quote(cert), ": ", sslError()));
      return nullptr;
    }
    const std::string key = resolvePath(s.getString("key"));
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      error(s, "key", path + ".key", format("cannot load private key ", quote(key), ": ", sslError()));
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      error(s, "key", path + ".key", "private key does not match the certificate");
      return nullptr;
    }
    return holder;
  }

  bool validBind(const std::string& bind) {
    const size_t colon = bind.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == bind.size()) {
      return false;
    }
    const std::string port = bind.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoi(port) > 65535) {
      return false;
    }
    return true;
  }

  void listeners(const ValidatedSection& root, Generation& gen) {
    std::set<std::string> names;
    std::set<std::string> binds;
    const auto list = root.children("listeners");
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& s = static_cast<const ValidatedSection&>(*list[i]);
      const std::string path = format("listeners[", i, "]");
      ListenerSpec spec;
      spec.name = s.getString("name");
      spec.bind = s.getString("bind");
      if (!names.insert(spec.name).second || spec.name == "admin") {
        error(s, "name", path + ".name", format("duplicate listener name ", quote(spec.name)));
      }
      if (!validBind(spec.bind)) {
        error(s, "bind", path + ".bind",
              format(quote(spec.bind), " is not an address:port (e.g. 0.0.0.0:8080)"));
      } else if (!binds.insert(spec.socketKey()).second) {
        error(s, "bind", path + ".bind", format("address ", quote(spec.bind), " is used twice"));
      }
      spec.stream = s.getString("type") == "stream";
      spec.http_limits.max_header_bytes = static_cast<size_t>(s.getSize("max_header_size"));
      spec.http_limits.max_body = static_cast<size_t>(s.getSize("max_body"));
      spec.http_limits.max_uri = static_cast<size_t>(s.getSize("max_uri"));
      spec.header_timeout = s.getDuration("header_timeout");
      spec.keepalive_timeout = s.getDuration("keepalive_timeout");
      spec.admission = s.getBool("admission");
      spec.exact_balance = s.getString("balance") == "exact";
      if (s.has("tls")) {
        spec.tls = tls(static_cast<const ValidatedSection&>(s.child("tls")), path + ".tls");
      }
      if (spec.stream) {
        if (s.has("locations")) {
          error(s, "locations", path + ".locations", "stream listeners take `protocol`, not locations");
        }
        if (s.getString("protocol").empty()) {
          error(s, "protocol", path + ".protocol", "a stream listener needs a protocol module");
        } else {
          Location loc;
          if (location(s, path, spec.name, loc)) {
            if (loc.protocol->createCodec() == nullptr) {
              error(s, "protocol", path + ".protocol",
                    format(quote(loc.module), " cannot serve a stream listener"));
            } else {
              spec.locations.push_back(std::move(loc));
            }
          }
        }
      } else {
        if (s.has("protocol")) {
          error(s, "protocol", path + ".protocol",
                "http listeners map protocols under `locations`");
        }
        const auto locs = s.children("locations");
        if (locs.empty()) {
          error(s, "locations", path + ".locations", "an http listener needs at least one location");
        }
        std::set<std::string> paths;
        for (size_t j = 0; j < locs.size(); ++j) {
          const auto& ls = static_cast<const ValidatedSection&>(*locs[j]);
          const std::string lpath = format(path, ".locations[", j, "]");
          const std::string p = ls.getString("path");
          if (p.empty() || p[0] != '/') {
            error(ls, "path", lpath + ".path", format("path ", quote(p), " must start with /"));
            continue;
          }
          if (!paths.insert(p).second) {
            error(ls, "path", lpath + ".path", format("path ", quote(p), " is mapped twice"));
            continue;
          }
          Location loc;
          if (location(ls, lpath, spec.name, loc)) {
            spec.locations.push_back(std::move(loc));
          }
        }
        std::stable_sort(spec.locations.begin(), spec.locations.end(),
                         [](const Location& a, const Location& b) { return a.path.size() > b.path.size(); });
      }
      gen.listeners.push_back(std::move(spec));
    }
  }
};

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx); }

Generation::Generation() = default;
Generation::~Generation() = default;

const Location* ListenerSpec::match(std::string_view path) const {
  for (const Location& loc : locations) {  // longest first
    if (path.substr(0, loc.path.size()) == loc.path) {
      return &loc;
    }
  }
  return nullptr;
}

bool Generation::hasUpstream(std::string_view group) const {
  return upstreams != nullptr && upstreams->find(group) != nullptr;
}

const ListenerSpec* Generation::listener(std::string_view name) const {
  for (const ListenerSpec& l : listeners) {
    if (l.name == name) {
      return &l;
    }
  }
  return nullptr;
}

std::span<const ParamSpec> coreSchema() { return kRootSchema; }

std::span<const ParamSpec> upstreamSchema() { return upstream::upstreamGroupSchema(); }

unsigned resolveWorkers(std::string_view setting) {
  if (setting == "auto") {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return static_cast<unsigned>(std::clamp<long>(n, 1, 64));
  }
  return static_cast<unsigned>(std::stoul(std::string(setting)));
}

tl::expected<std::shared_ptr<Generation>, std::vector<std::string>> buildGeneration(
    const std::string& path, const Generation* previous, ServerControl* control) {
  auto fmt = [](const Errors& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors) {
      out.push_back(e.format());
    }
    return out;
  };
  auto doc = config::loadFile(path);
  if (!doc) {
    return tl::unexpected(fmt(doc.error()));
  }
  Builder b;
  b.file = path;
  b.dir = std::filesystem::path(path).parent_path().string();
  if (b.dir.empty()) {
    b.dir = ".";
  }
  b.previous = previous;
  b.control = control;

  auto gen = std::make_shared<Generation>();
  gen->file = path;
  timeval tv;
  gettimeofday(&tv, nullptr);
  gen->loaded_at_ms = static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
  RawNode root = doc->root;
  if (root.valid() && !root.isNull() && !root.isMap()) {
    b.error(root, "", format("the config must be a map, not ", root.describe()));
    return tl::unexpected(fmt(b.errors));
  }
  gen->root = config::validate(root, kRootSchema, "", b.errors);
  if (!b.errors.empty() || !gen->root) {
    return tl::unexpected(fmt(b.errors));
  }
  const ValidatedSection& r = *gen->root;
  if (previous != nullptr && previous->root) {
    config::checkNonReloadable(*previous->root, r, kRootSchema, "", b.errors);
  }
  gen->workers_setting = r.getString("workers");
  if (gen->workers_setting != "auto") {
    const auto& w = gen->workers_setting;
    if (w.empty() || w.size() > 2 || w.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(w) < 1 || std::stoi(w) > 64) {
      b.error(r, "workers", "workers", format(quote(w), " is not auto or a number from 1 to 64"));
    }
  }
  if (b.errors.empty()) {
    gen->workers = resolveWorkers(gen->workers_setting);
  }
  gen->pid_file = r.getString("pid_file");
  gen->shutdown_timeout = r.getDuration("shutdown_timeout");
  const auto& log = static_cast<const ValidatedSection&>(r.child("log"));
  parseLogLevel(log.getString("level"), gen->log_level);
  gen->log_format = log.getString("format") == "json" ? LogFormat::kJson : LogFormat::kText;
  gen->log_file = log.getString("file");
  if (!gen->log_file.empty()) {
    gen->log_file = b.resolvePath(gen->log_file);
  }
  gen->access_log = log.getBool("access_log");
  const auto& ss = static_cast<const ValidatedSection&>(r.child("sessions"));
  gen->sessions.idle_timeout = ss.getDuration("idle_timeout");
  gen->sessions.ping_interval = ss.getDuration("ping_interval");
  gen->sessions.max_conns_per_user = static_cast<uint32_t>(ss.getInt("max_conns_per_user"));
  gen->sessions.max_outbound = static_cast<size_t>(ss.getSize("max_outbound"));
  const std::string policy = ss.getString("slow_consumer");
  gen->sessions.slow_consumer = policy == "drop_new"      ? SessionSettings::SlowConsumer::kDropNew
                                : policy == "drop_oldest" ? SessionSettings::SlowConsumer::kDropOldest
                                                          : SessionSettings::SlowConsumer::kClose;
  gen->sessions.outbound_high_water = static_cast<size_t>(ss.getSize("outbound_high_water"));
  gen->sessions.pause_timeout = ss.getDuration("pause_timeout");
  gen->sessions.handshake_timeout = ss.getDuration("handshake_timeout");
  gen->sessions.close_timeout = ss.getDuration("close_timeout");
  const auto& lim = static_cast<const ValidatedSection&>(r.child("limits"));
  gen->admission.max_connections = static_cast<uint64_t>(lim.getInt("max_connections"));
  gen->admission.max_connections_per_ip =
      static_cast<uint32_t>(lim.getInt("max_connections_per_ip"));
  gen->admission.connect_rate = static_cast<uint32_t>(lim.getInt("connect_rate"));
  gen->admission.connect_burst = static_cast<uint32_t>(lim.getInt("connect_burst"));
  gen->admission.max_handshakes = static_cast<uint32_t>(lim.getInt("max_handshakes"));
  const auto& del = static_cast<const ValidatedSection&>(r.child("delivery"));
  gen->delivery.enabled = del.getBool("enabled");
  gen->delivery.broadcast_stream = del.getBool("broadcast_stream");
  gen->delivery.offline = del.getBool("offline");
  gen->delivery.reliable = del.getBool("reliable");
  gen->delivery.ack_timeout = del.getDuration("ack_timeout");
  gen->delivery.ack_backoff = static_cast<double>(del.getInt("ack_backoff"));
  gen->delivery.max_retransmits = static_cast<uint32_t>(del.getInt("max_retransmits"));
  gen->delivery.max_unacked = static_cast<uint32_t>(del.getInt("max_unacked"));
  gen->delivery.max_replay = static_cast<uint32_t>(del.getInt("max_replay"));
  const auto& hist = static_cast<const ValidatedSection&>(del.child("history"));
  gen->delivery.limits.max_messages = static_cast<size_t>(hist.getInt("max_messages"));
  gen->delivery.limits.max_bytes = static_cast<size_t>(hist.getSize("max_bytes"));
  gen->delivery.limits.ttl = hist.getDuration("ttl");
  gen->delivery.limits.idle_ttl = hist.getDuration("idle_ttl");
  gen->delivery.limits.max_total_bytes = static_cast<size_t>(hist.getSize("max_total_bytes"));
  gen->delivery.limits.max_streams = static_cast<size_t>(hist.getInt("max_streams"));

  // Upstreams first: stages check the group names they use (LoadContext::hasUpstream).
  auto upstreams = upstream::compileUpstreams(r.raw("upstreams"), path);
  if (!upstreams) {
    b.errors.insert(b.errors.end(), upstreams.error().begin(), upstreams.error().end());
  } else {
    gen->upstreams = *upstreams;
  }
  b.gen = gen.get();
  b.loadModules(r.raw("modules"));
  gen->libraries = b.libraries;
  b.buildPipelines(r.raw("pipelines"));
  b.listeners(r, *gen);

  const auto& admin = static_cast<const ValidatedSection&>(r.child("admin"));
  const std::string admin_bind = admin.getString("bind");
  if (!admin_bind.empty()) {
    if (!b.validBind(admin_bind)) {
      b.error(admin, "bind", "admin.bind",
              format(quote(admin_bind), " is not an address:port (e.g. 127.0.0.1:9901)"));
    } else {
      for (const auto& l : gen->listeners) {
        if (l.bind == admin_bind && !admin_bind.ends_with(":0")) {
          b.error(admin, "bind", "admin.bind",
                  format("address ", quote(admin_bind), " is already used by listener ",
                         quote(l.name)));
        }
      }
      ListenerSpec spec;
      spec.name = "admin";
      spec.bind = admin_bind;
      spec.admin = true;
      Location loc;
      loc.path = "/";
      loc.module = "core.admin";
      auto auth = AdminAuth::compile(admin);
      if (!auth) {
        b.error(admin, "keys", "admin", auth.error().message);
      } else {
        warnIfAdminExposed(*auth, admin_bind);
      }
      loc.protocol =
          std::make_shared<AdminProtocol>(control, auth ? std::move(*auth) : AdminAuth{});
      loc.pipeline = std::make_shared<const Pipeline>();
      spec.locations.push_back(std::move(loc));
      gen->listeners.push_back(std::move(spec));
    }
  }
  if (!b.errors.empty()) {
    return tl::unexpected(fmt(b.errors));
  }
  return gen;
}

}  // namespace imgate::core
