// SPDX-License-Identifier: Apache-2.0
// Test-only module: exports a symbol, but not the entry the loader looks for (an old or
// misspelled entry name).
#include "test/modules/tripwire_factory.h"

namespace {
const imgate::test::modules::TripwireFactory kFactory;
}  // namespace

extern "C" __attribute__((visibility("default"))) const imgate::ModuleFactory*
imgate_module_entry_v0() noexcept {
  return &kFactory;
}
