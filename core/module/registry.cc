// SPDX-License-Identifier: Apache-2.0
#include "module/registry.h"

#include <algorithm>

namespace imgate::core::module {

ModuleRegistry::ModuleRegistry() {
  for (BuiltinModuleFn fn : builtinModules()) {
    factories_.push_back(&fn());
  }
}

const ModuleRegistry& ModuleRegistry::instance() {
  static const ModuleRegistry registry;
  return registry;
}

const ModuleFactory* ModuleRegistry::find(std::string_view name) const {
  auto it = std::find_if(factories_.begin(), factories_.end(),
                         [&](const ModuleFactory* f) { return f->name() == name; });
  return it == factories_.end() ? nullptr : *it;
}

}  // namespace imgate::core::module
