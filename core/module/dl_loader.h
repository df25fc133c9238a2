// SPDX-License-Identifier: Apache-2.0
// Third-party modules: one dlopen'ed .so per ModuleLibrary, checked before any of its C++
// objects is touched (STYLE.md §4.4).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/module.h"
#include "imgate/sdk/status.h"

namespace imgate::core::module {

// A module may export at most this many factories. Real modules export one or two; the bound
// keeps a corrupt entry (garbage count) from making the loader walk unmapped memory for long.
inline constexpr size_t kMaxFactoriesPerModule = 64;

// One loaded .so. dlclose runs in the destructor, so whoever compiles a config from one of
// these factories must hold the shared_ptr for as long as that config, its stages and their
// timers live (declare it first in the holder so it is destroyed last). Immutable after load;
// safe to read from any thread.
// Which file a library was loaded from: a reload reuses the loaded library when the file is
// unchanged and loads the new contents when it was replaced or rewritten.
struct ModuleFileId {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const ModuleFileId&) const = default;
};

// stat() of `path`, or kInvalidConfig `cannot load module "x.so": <strerror>`.
[[nodiscard]] Result<ModuleFileId> moduleFileId(const std::string& path);

class ModuleLibrary {
 public:
  ~ModuleLibrary();
  ModuleLibrary(const ModuleLibrary&) = delete;
  ModuleLibrary& operator=(const ModuleLibrary&) = delete;

  // The path as passed to loadModule (what the config said).
  const std::string& path() const { return path_; }
  // imgate_module_entry::module_name and module_version, copied at load.
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const ModuleFileId& fileId() const { return file_id_; }
  // Valid while this object lives. Dispatch on kind() and static_cast to StageFactory or
  // ProtocolFactory; never dynamic_cast (hidden visibility gives the .so its own type info).
  std::span<const ModuleFactory* const> factories() const { return factories_; }

 private:
  friend Result<std::shared_ptr<ModuleLibrary>> loadModule(
      const std::string& path, const std::function<bool(std::string_view)>& taken);

  ModuleLibrary(std::string path, void* handle) : path_(std::move(path)), handle_(handle) {}

  std::string path_;
  void* handle_;      // from dlopen; never null once constructed
  int copy_fd_ = -1;  // the memfd dlopen'ed as /proc/self/fd/<n>; closed after dlclose
  std::string name_;
  std::string version_;
  ModuleFileId file_id_;
  std::vector<const ModuleFactory*> factories_;
};

using ModuleLibraryPtr = std::shared_ptr<ModuleLibrary>;

// Loads the .so at `path` and checks, in this order, failing with Errc::kInvalidConfig (the
// caller adds the config location):
//   1. dlopen(RTLD_NOW | RTLD_LOCAL)        `cannot load module "x.so": <dlerror text>`
//      of a private copy (a memfd): every load gets its own mapping, so a .so replaced on disk
//      loads as new code next to the old one, and rewriting the file in place (cp over it)
//      cannot corrupt the running copy. The memfd is named "imgate-module:<file name>".
//   2. the entry symbol                      `module "x.so" does not export imgate_module_entry_v1`
//   3. abi_major equal, abi_minor not newer  `module "x.so" is not binary compatible (module ABI
//                                            2.0, core ABI 1.0)`
//   4. build_signature, byte for byte        `module "x.so" is not binary compatible (module: ...,
//                                            core: ...)`
//   5. non-null name, version, bind_host and factories, 1..kMaxFactoriesPerModule of them
//                                            `module "x.so": invalid entry: ...`
//      then bind_host() hands the module the core's services (imgate_host).
//   6. each factory's name() is non-empty, unique within the .so, and `taken(name)` is false
//                                            `module "x.so": duplicate module name "acme.audit"`
// Factory objects are touched (name()) only in step 6, after every check on the C struct.
// `taken` answers whether a name is already registered (built in or from another .so); it is
// called on the calling thread only. On failure the library is closed before returning.
// Main thread only (dlopen runs the .so's static constructors).
[[nodiscard]] Result<std::shared_ptr<ModuleLibrary>> loadModule(
    const std::string& path, const std::function<bool(std::string_view)>& taken);

}  // namespace imgate::core::module
