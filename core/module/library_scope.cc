// SPDX-License-Identifier: Apache-2.0
#include "module/library_scope.h"

namespace imgate::core::module {

namespace {
// A pointer, not a shared_ptr: entering a scope costs no refcount traffic. The pointee is owned
// by whoever set the scope and outlives it.
thread_local const ModuleLibraryPtr* tls_current = nullptr;
const ModuleLibraryPtr kNoLibrary;
}  // namespace

const ModuleLibraryPtr& currentLibrary() { return tls_current != nullptr ? *tls_current : kNoLibrary; }

LibraryScope::LibraryScope(const ModuleLibraryPtr& library)
    : saved_(tls_current) {
  tls_current = &library;
}

LibraryScope::~LibraryScope() { tls_current = saved_; }

}  // namespace imgate::core::module
