// SPDX-License-Identifier: Apache-2.0
// Test-only fakes for the auth.backend tests: the shared Session, simulated-time Dispatcher,
// recording StageCallbacks and LoadContext from test/mocks, and config compiled from inline
// YAML through the core's real schema checker.
#pragma once

#include <string>

#include "config/schema_check.h"
#include "config/yaml_loader.h"
#include "modules/behavior/auth_backend/auth_backend_stage.h"
#include "test/mocks/sdk_fakes.h"

namespace imgate::mod::auth_backend::test {

// The shared fakes (test/mocks/sdk_fakes.h) under this suite's names. FakeSession's defaults
// are the handshake the request-body test expects: listener "edge", peer 192.0.2.7:50000, not
// yet accepted (opened_at_ms 0).
using FakeSession = mocks::FakeSession;
using FakeLogger = mocks::RecordingLogger;
using FakeStageCallbacks = mocks::RecordingStageCallbacks;

// Knows the upstream group "auth".
class FakeLoadContext final : public mocks::FakeLoadContext {
 public:
  FakeLoadContext() {
    instance_name = "im[0]:auth.backend";
    groups = {"auth"};
  }
};

// The section as the core would hand it to compile(): parsed and validated against the real
// schema. Schema errors come back as one kInvalidConfig error.
inline Result<StageConfigPtr> compileYaml(const std::string& yaml, FakeLoadContext& context) {
  auto doc = core::config::loadString(yaml, "t.yaml");
  if (!doc) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(doc.error()));
  }
  core::config::Errors errors;
  auto section = core::config::validate(doc->root, backendSchema(), "auth.backend", errors);
  if (!errors.empty()) {
    return fail(Errc::kInvalidConfig, core::config::formatErrors(errors));
  }
  return compileBackend(*section, context);
}

}  // namespace imgate::mod::auth_backend::test
