// SPDX-License-Identifier: Apache-2.0
// Module factories, registration and the dlopen ABI entry (STYLE.md §4.4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "imgate/sdk/abi_hash.h"
#include "imgate/sdk/codec.h"
#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/stage.h"
#include "imgate/sdk/status.h"

// scripts/abi_hash.py refuses to record a new SDK hash until one of these has changed.
#define IMGATE_ABI_MAJOR 10  // bump: any incompatible change to a header under imgate/sdk/
#define IMGATE_ABI_MINOR 0  // bump: additions that old modules do not use

namespace imgate {

enum class ModuleKind : uint8_t { kProtocol, kStage };

class ModuleFactory {
 public:
  virtual ~ModuleFactory() = default;
  // "<family>.<name>": "proto.websocket", "auth.jwt", "echo".
  virtual std::string_view name() const = 0;
  virtual ModuleKind kind() const = 0;
  virtual std::span<const ParamSpec> schema() const = 0;
  virtual std::string_view description() const = 0;  // one line for --list-modules
};

// compile() runs on the main thread at start and at every reload, and may be slow (read key
// files, build tables). It must not touch sockets or the data path. It may throw only by
// accident: the core catches and fails the load with the module's name.
class StageFactory : public ModuleFactory {
 public:
  ModuleKind kind() const final { return ModuleKind::kStage; }
  // Terminal stages consume inbound messages and must be last in a pipeline (checked at load).
  virtual bool terminal() const { return false; }
  virtual Result<StageConfigPtr> compile(const ConfigView& config, LoadContext& context) const = 0;
};

class ProtocolFactory : public ModuleFactory {
 public:
  ModuleKind kind() const final { return ModuleKind::kProtocol; }
  virtual Result<ProtocolConfigPtr> compile(const ConfigView& config, LoadContext& context) const = 0;
};

}  // namespace imgate

// ---- dlopen boundary ------------------------------------------------------------------------
// The core looks up exactly one symbol, imgate_module_entry_v1, and reads this struct before
// touching anything else. Its layout is frozen for a given IMGATE_ABI_MAJOR.
extern "C" {
// What the core hands a loaded module, once its entry has passed every check.
struct imgate_host {
  uint32_t size;  // sizeof(imgate_host) in the core; fields are only ever appended
  imgate::Bytes (*make_bytes)(std::string&&);  // see sdk_detail::hostMakeBytes (message.h)
};

struct imgate_module_entry {
  uint32_t abi_major;           // must equal the core's
  uint32_t abi_minor;           // must be <= the core's
  const char* build_signature;  // must equal the core's, byte for byte
  const char* module_name;
  const char* module_version;
  size_t factory_count;
  const imgate::ModuleFactory* const* factories;  // usable only after the checks
  void (*bind_host)(const imgate_host* host);     // called once, after the checks
};
}

#define IMGATE_STR_(x) #x
#define IMGATE_STR(x) IMGATE_STR_(x)
#define IMGATE_BUILD_SIGNATURE                                                              \
  "abi=" IMGATE_STR(IMGATE_ABI_MAJOR) ";cxx=" IMGATE_STR(__cplusplus) ";cc=" __VERSION__   \
  ";libstdcxx_abi=" IMGATE_STR(_GLIBCXX_USE_CXX11_ABI) ";ptr=" IMGATE_STR(__SIZEOF_POINTER__) \
  ";sdk=" IMGATE_SDK_HASH

#ifdef IMGATE_SHARED_MODULE
#define IMGATE_MODULE_ENTRY_(ID, VERSION)                                                   \
  extern "C" __attribute__((visibility("default"))) const imgate_module_entry*             \
  imgate_module_entry_v1() noexcept {                                                       \
    static const ::imgate::ModuleFactory* const factories[] = {&imgate_module_##ID()};     \
    static const imgate_module_entry entry = {                                              \
        IMGATE_ABI_MAJOR, IMGATE_ABI_MINOR, IMGATE_BUILD_SIGNATURE, #ID, VERSION, 1,         \
        factories, [](const imgate_host* host) {                                            \
          ::imgate::sdk_detail::hostMakeBytes() = host->make_bytes;                         \
        }};                                                                                 \
    return &entry;                                                                          \
  }
#else
#define IMGATE_MODULE_ENTRY_(ID, VERSION)
#endif

// One line at the end of <name>_module.cc. Built in, the core's generated table calls
// imgate_module_<ID>(); built with -DIMGATE_SHARED_MODULE it also exports the entry symbol.
#define IMGATE_MODULE(ID, FACTORY, VERSION)                    \
  const ::imgate::ModuleFactory& imgate_module_##ID() {        \
    static const FACTORY instance;                             \
    return instance;                                           \
  }                                                            \
  IMGATE_MODULE_ENTRY_(ID, VERSION)
