// SPDX-License-Identifier: Apache-2.0
// The module registry: built-in modules from the generated table (builtin_modules.cc), looked
// up by name. Read-only after start.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "imgate/sdk/module.h"

namespace imgate::core::module {

using BuiltinModuleFn = const ModuleFactory& (*)();

// Defined in the generated builtin_modules.cc.
std::span<const BuiltinModuleFn> builtinModules();

class ModuleRegistry {
 public:
  static const ModuleRegistry& instance();
  const ModuleFactory* find(std::string_view name) const;
  const std::vector<const ModuleFactory*>& all() const { return factories_; }

 private:
  ModuleRegistry();
  std::vector<const ModuleFactory*> factories_;
};

}  // namespace imgate::core::module
