// SPDX-License-Identifier: Apache-2.0
// The lbs module's config schema and its translation into LbsOptions, with every check the
// schema cannot express (CIDRs, version ranges, group names, the GeoIP file). Runs in
// compile(), on the main thread.
#pragma once

#include <span>

#include "imgate/sdk/config.h"
#include "imgate/sdk/runtime.h"
#include "imgate/sdk/status.h"
#include "lbs.h"

namespace imgate::mod::lbs {

std::span<const ParamSpec> lbsSchema();

// Builds the options from a section validated against lbsSchema(). Relative GeoIP paths are
// resolved against context.configDir(). Error: kInvalidConfig with the YAML path inside the
// section ("nodes[2].group: ...") and the offending value quoted.
[[nodiscard]] Result<LbsOptions> buildOptions(const ConfigView& config, LoadContext& context);

}  // namespace imgate::mod::lbs
