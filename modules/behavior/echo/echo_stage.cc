// SPDX-License-Identifier: Apache-2.0
#include "echo_stage.h"

#include <memory>

namespace imgate::mod::echo {

Verdict EchoStage::onMessage(Message& message) {
  if (message.kind == MessageKind::kData) {
    // Copying the Message copies the Bytes handle, not the payload.
    callbacks_.reply(message);
  }
  return Verdict::pass();
}

StagePtr EchoConfig::createStage(StageCallbacks& callbacks) const {
  return std::make_unique<EchoStage>(callbacks);
}

}  // namespace imgate::mod::echo
