// SPDX-License-Identifier: Apache-2.0
// Keeps a module .so mapped while anything of it can still run (issue 7: "a .so is unloaded only
// when nothing from it is alive").
//
// Objects of a module (configs, stages, codecs) are pinned by whoever holds them: the generation
// (Generation::libraries), CompiledStage/Location::library, Connection's codec library. What
// escapes that ownership is closures: a stage may post a task, start a timer, call an upstream
// or the hub, and the core stores that std::function, whose code is in the .so, possibly past the
// stage. So the core marks, per thread, whose code is running (LibraryScope, set where the core
// calls into a module), and the places that store closures wrap them with pinned(), which holds
// the library until the closure is destroyed. Built-in code runs with no library set: pinned()
// then returns the function unchanged, at the cost of one thread-local read.
#pragma once

#include <functional>
#include <memory>
#include <utility>

namespace imgate::core::module {

class ModuleLibrary;
using ModuleLibraryPtr = std::shared_ptr<ModuleLibrary>;

// The library whose code the current thread is running (null: the core or a built-in module).
const ModuleLibraryPtr& currentLibrary();

// Sets currentLibrary() for its lifetime; nests.
class LibraryScope {
 public:
  explicit LibraryScope(const ModuleLibraryPtr& library);
  ~LibraryScope();
  LibraryScope(const LibraryScope&) = delete;
  LibraryScope& operator=(const LibraryScope&) = delete;

 private:
  const ModuleLibraryPtr* saved_;
};

namespace detail {
template <class R, class... A>
struct Pinned {
  ModuleLibraryPtr library;  // declared first: released after fn is destroyed
  std::function<R(A...)> fn;
  R operator()(A... args) {
    LibraryScope scope(library);
    return fn(std::forward<A>(args)...);
  }
};
}  // namespace detail

// `fn` unchanged when no module library is current, else `fn` wrapped so that it keeps the
// current library loaded while it exists and runs with that library current.
template <class R, class... A>
std::function<R(A...)> pinned(std::function<R(A...)> fn) {
  const ModuleLibraryPtr& library = currentLibrary();
  if (!library || !fn) {
    return fn;
  }
  return detail::Pinned<R, A...>{library, std::move(fn)};
}

}  // namespace imgate::core::module
