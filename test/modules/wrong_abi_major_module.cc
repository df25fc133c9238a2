// SPDX-License-Identifier: Apache-2.0
// Test-only module: a hand-written entry claiming the next ABI major.
#include "test/modules/tripwire_factory.h"

namespace {
const imgate::test::modules::TripwireFactory kFactory;
const imgate::ModuleFactory* const kFactories[] = {&kFactory};
}  // namespace

extern "C" __attribute__((visibility("default"))) const imgate_module_entry*
imgate_module_entry_v1() noexcept {
  static const imgate_module_entry entry = {IMGATE_ABI_MAJOR + 1, 0, IMGATE_BUILD_SIGNATURE,
                                            "wrong_abi_major", "0.1.0", 1, kFactories};
  return &entry;
}
