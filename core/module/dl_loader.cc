// SPDX-License-Identifier: Apache-2.0
#include "module/dl_loader.h"

#include <dlfcn.h>

#include <cstring>
#include <utility>

namespace imgate::core::module {

namespace {

using EntryFn = const imgate_module_entry* (*)() noexcept;

constexpr const char kEntrySymbol[] = "imgate_module_entry_v1";

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

tl::unexpected<Error> moduleError(const std::string& path, std::string_view what) {
  return fail(Errc::kInvalidConfig, "module " + quoted(path) + std::string(what));
}

// Closes the handle on every early return; released into ModuleLibrary once all checks pass.
struct HandleCloser {
  void operator()(void* handle) const noexcept { ::dlclose(handle); }
};
using HandleGuard = std::unique_ptr<void, HandleCloser>;

}  // namespace

ModuleLibrary::~ModuleLibrary() {
  // The factories live inside the .so: drop our pointers before the code goes away.
  factories_.clear();
  ::dlclose(handle_);
}

Result<std::shared_ptr<ModuleLibrary>> loadModule(
    const std::string& path, const std::function<bool(std::string_view)>& taken) {
  ::dlerror();  // clear any stale error so the text below is this call's
  HandleGuard handle(::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* why = ::dlerror();
    return fail(Errc::kInvalidConfig, "cannot load module " + quoted(path) + ": " +
                                          (why != nullptr ? why : "unknown dlopen error"));
  }

  void* symbol = ::dlsym(handle.get(), kEntrySymbol);
  if (symbol == nullptr) {
    return moduleError(path, std::string(" does not export ") + kEntrySymbol);
  }
  // POSIX guarantees object and function pointers convert losslessly for dlsym results;
  // memcpy avoids the conditionally-supported cast.
  EntryFn entry_fn = nullptr;
  static_assert(sizeof(entry_fn) == sizeof(symbol));
  std::memcpy(&entry_fn, &symbol, sizeof(entry_fn));
  const imgate_module_entry* entry = entry_fn();
  if (entry == nullptr) {
    return moduleError(path, ": invalid entry: imgate_module_entry_v1 returned null");
  }

  if (entry->abi_major != IMGATE_ABI_MAJOR || entry->abi_minor > IMGATE_ABI_MINOR) {
    return moduleError(path, " is not binary compatible (module ABI " +
                                 std::to_string(entry->abi_major) + "." +
                                 std::to_string(entry->abi_minor) + ", core ABI " +
                                 std::to_string(IMGATE_ABI_MAJOR) + "." +
                                 std::to_string(IMGATE_ABI_MINOR) + ")");
  }
  const char* core_signature = IMGATE_BUILD_SIGNATURE;
  if (entry->build_signature == nullptr ||
      std::strcmp(entry->build_signature, core_signature) != 0) {
    const char* module_signature =
        entry->build_signature != nullptr ? entry->build_signature : "(null)";
    return moduleError(path, std::string(" is not binary compatible (module: ") +
                                 module_signature + ", core: " + core_signature + ")");
  }

  if (entry->module_name == nullptr || entry->module_name[0] == '\0') {
    return moduleError(path, ": invalid entry: empty module_name");
  }
  if (entry->module_version == nullptr) {
    return moduleError(path, ": invalid entry: null module_version");
  }
  if (entry->factories == nullptr || entry->factory_count == 0) {
    return moduleError(path, ": invalid entry: no factories");
  }
  if (entry->factory_count > kMaxFactoriesPerModule) {
    return moduleError(path, ": invalid entry: " + std::to_string(entry->factory_count) +
                                 " factories, at most " +
                                 std::to_string(kMaxFactoriesPerModule) + " allowed");
  }
  const std::span<const ModuleFactory* const> factories(entry->factories,
                                                        entry->factory_count);
  for (size_t i = 0; i < factories.size(); ++i) {
    if (factories[i] == nullptr) {
      return moduleError(path, ": invalid entry: factory " + std::to_string(i) + " is null");
    }
  }

  // Only now, with a matching ABI and toolchain, is calling into the C++ objects defined.
  for (size_t i = 0; i < factories.size(); ++i) {
    const std::string_view name = factories[i]->name();
    if (name.empty()) {
      return moduleError(path, ": factory " + std::to_string(i) + " has an empty name");
    }
    bool repeated = false;
    for (size_t j = 0; j < i; ++j) {
      repeated = repeated || factories[j]->name() == name;
    }
    if (repeated || (taken && taken(name))) {
      return moduleError(path, ": duplicate module name " + quoted(name));
    }
  }

  std::shared_ptr<ModuleLibrary> library(new ModuleLibrary(path, handle.release()));
  library->name_ = entry->module_name;
  library->version_ = entry->module_version;
  library->factories_.assign(factories.begin(), factories.end());
  return library;
}

}  // namespace imgate::core::module
