// SPDX-License-Identifier: Apache-2.0
// Reading Message::meta, the small flat key/value list stages and codecs annotate messages with.
#pragma once

#include <string_view>

#include "imgate/sdk/message.h"

namespace imgate::mod {

// The first value of `key`, or empty when absent.
inline std::string_view metaValue(const Message& message, std::string_view key) {
  for (const auto& [k, v] : message.meta) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

}  // namespace imgate::mod
