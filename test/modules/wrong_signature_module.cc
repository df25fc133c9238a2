// SPDX-License-Identifier: Apache-2.0
// Test-only module: right ABI numbers, but built "by another compiler".
#include "test/modules/tripwire_factory.h"

namespace {
const imgate::test::modules::TripwireFactory kFactory;
const imgate::ModuleFactory* const kFactories[] = {&kFactory};
}  // namespace

extern "C" __attribute__((visibility("default"))) const imgate_module_entry*
imgate_module_entry_v1() noexcept {
  static const imgate_module_entry entry = {IMGATE_ABI_MAJOR, IMGATE_ABI_MINOR,
                                            "abi=1;cxx=0;cc=other 0.0", "wrong_signature",
                                            "0.1.0", 1, kFactories};
  return &entry;
}
