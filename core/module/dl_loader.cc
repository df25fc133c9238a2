// SPDX-License-Identifier: Apache-2.0
#include "module/dl_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

// The core's side of imgate_host::make_bytes: the control block of every payload a module makes
// is instantiated here, in the core's code.
Bytes hostMakeBytes(std::string&& data) {
  return std::make_shared<const std::string>(std::move(data));
}

constexpr imgate_host kHost = {sizeof(imgate_host), &hostMakeBytes};

ModuleFileId fileIdOf(const struct stat& st) {
  return ModuleFileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_size),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                          st.st_mtim.tv_nsec};
}

// Copies the file into an anonymous memfd; returns the fd (to dlopen through /proc/self/fd).
Result<int> privateCopy(const std::string& path, ModuleFileId& id) {
  auto sysError = [&](const char* what) {
    return fail(Errc::kInvalidConfig, "cannot load module " + quoted(path) + ": " + what + ": " +
                                          std::strerror(errno));
  };
  FdCloser src{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (src.fd < 0) {
    return sysError("open");
  }
  struct stat st {};
  if (::fstat(src.fd, &st) != 0) {
    return sysError("stat");
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(Errc::kInvalidConfig, "cannot load module " + quoted(path) + ": not a regular file");
  }
  id = fileIdOf(st);
  // Named after the file, so /proc/<pid>/maps (pmap, gdb) shows which module a mapping is.
  std::string name = "imgate-module:" + path.substr(path.rfind('/') + 1);
  name.resize(std::min<size_t>(name.size(), 240));
  const int copy = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (copy < 0) {
    return sysError("memfd_create");
  }
  FdCloser guard{copy};
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(src.fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return sysError("read");
    }
    if (n == 0) {
      break;
    }
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(copy, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        return sysError("write");
      }
      done += w;
    }
  }
  guard.fd = -1;
  return copy;
}

}  // namespace

Result<ModuleFileId> moduleFileId(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(Errc::kInvalidConfig,
                "cannot load module " + quoted(path) + ": " + std::strerror(errno));
  }
  return fileIdOf(st);
}

ModuleLibrary::~ModuleLibrary() {
  // The factories live inside the .so: drop our pointers before the code goes away.
  factories_.clear();
  ::dlclose(handle_);
  if (copy_fd_ >= 0) {
    ::close(copy_fd_);
  }
}

Result<std::shared_ptr<ModuleLibrary>> loadModule(
    const std::string& path, const std::function<bool(std::string_view)>& taken) {
  ModuleFileId file_id;
  auto copy = privateCopy(path, file_id);
  if (!copy) {
    return tl::unexpected(copy.error());
  }
  // Held open for the library's life: glibc's dlopen returns an already loaded object whose
  // name matches, so the "/proc/self/fd/N" name must stay unique while the copy is loaded.
  FdCloser copy_guard{*copy};
  const std::string copy_path = "/proc/self/fd/" + std::to_string(*copy);
  ::dlerror();  // clear any stale error so the text below is this call's
  HandleGuard handle(::dlopen(copy_path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle) {
    const char* err = ::dlerror();
    // dlerror names the copy ("/proc/self/fd/7: invalid ELF header"): say the real path.
    std::string why = err != nullptr ? err : "unknown dlopen error";
    if (why.starts_with(copy_path + ": ")) {
      why.erase(0, copy_path.size() + 2);
    }
    return fail(Errc::kInvalidConfig, "cannot load module " + quoted(path) + ": " + why);
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
  if (entry->bind_host == nullptr) {
    return moduleError(path, ": invalid entry: null bind_host");
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

  // Only now, with a matching ABI and toolchain, is calling into the module defined.
  entry->bind_host(&kHost);
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
  library->copy_fd_ = std::exchange(copy_guard.fd, -1);
  library->name_ = entry->module_name;
  library->version_ = entry->module_version;
  library->file_id_ = file_id;
  library->factories_.assign(factories.begin(), factories.end());
  return library;
}

}  // namespace imgate::core::module
