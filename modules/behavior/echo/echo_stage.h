// SPDX-License-Identifier: Apache-2.0
// The echo stage: sends every inbound data message back to the session that sent it. The
// smallest terminal stage, used for smoke tests, load tests and as a module template.
#pragma once

#include "imgate/sdk/stage.h"

namespace imgate::mod::echo {

// Per session. Holds only the callbacks reference, which the core keeps valid for the Stage's
// whole life.
class EchoStage final : public Stage {
 public:
  explicit EchoStage(StageCallbacks& callbacks) : callbacks_(callbacks) {}

  // kData messages are replied as they came: same payload type, same event, and the same Bytes
  // object (shared, not copied). Other kinds (ack, control, presence) are consumed without a
  // reply. Always passes: the core reports nothing for an echoed message.
  Verdict onMessage(Message& message) override;

 private:
  StageCallbacks& callbacks_;
};

// No settings: one shared, stateless config per generation.
class EchoConfig final : public StageConfig {
 public:
  StagePtr createStage(StageCallbacks& callbacks) const override;
};

}  // namespace imgate::mod::echo
