// SPDX-License-Identifier: Apache-2.0
// The schema checker: turns one YAML section into a ValidatedSection, or into a list of
// errors that each carry file:line:col and the YAML path. Runs on the main thread at load and
// reload, before any module's compile().
//
// Rules applied, per ParamType (see imgate/sdk/config.h for the types themselves):
//   - A plain `~`, `null` or empty value means "not written": has() is false and the default
//     applies. A required key written as null is reported ("is required but has no value").
//   - kBool: true/false (also True/TRUE/False/FALSE, as YAML 1.2). yes/no/on/off are refused
//     with a hint, because YAML 1.1 and 1.2 disagree on them.
//   - kInt: decimal, optional sign; fractions ("1.5"), exponents and overflow are refused.
//     min/max bound the value.
//   - kString: any scalar, kept as written (so `port: 80` gives "80"); maps and lists are
//     refused. min/max, when set, bound the length in bytes.
//   - kDuration / kSize / kRate: parsed by units.h; min/max bound milliseconds / bytes / the
//     rate's count, and messages print bounds in the key's unit ("must be at most 64MiB").
//   - kEnum: exactly one of `choices` (case-sensitive), with a "did you mean" hint.
//   - kStringList: a list of scalars, or a lone scalar as a one-element list; min/max bound
//     the number of items.
//   - kMap: a map checked against `fields`. When absent (and not required) the section still
//     exists, filled with the nested defaults, and required nested keys are not reported.
//   - kMapList: a list of maps checked against `fields`; a null item is an empty map; min/max
//     bound the number of items. Paths read "listeners[1].tls.cert".
//   - kAny: any value, unchecked; the caller reads it with ValidatedSection::raw().
//   - Unknown keys are reported with a "did you mean" suggestion (edit distance) or, for small
//     schemas, the list of valid keys. Non-string keys are reported.
//   - default_value is read by the same rules (as YAML for kStringList, kMap, kMapList, kAny;
//     as the bare text for scalar types). A bad default is a bug in the schema and is reported
//     as an error at the section's position; checkSchema() finds it without any config.
// Duplicate keys are refused earlier, by the loader. Every problem is reported, not the first.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/config_view.h"
#include "config/yaml_loader.h"
#include "imgate/sdk/config.h"

namespace imgate::core::config {

// Validates `node` (a map; null or invalid means an empty section) against `schema` and
// appends every problem to `errors`. `path` is the YAML path of `node` ("" for the root,
// "listeners[0]", "protocols.proto.websocket"); children are reported as "<path>.<key>".
// Always returns a section (never null), with defaults filled in, even when errors were
// added: the caller decides from `errors` whether to go on, and may keep validating other
// sections to report everything in one pass.
[[nodiscard]] std::unique_ptr<ValidatedSection> validate(const RawNode& node,
                                                         std::span<const ParamSpec> schema,
                                                         const std::string& path,
                                                         Errors& errors);

// Reload check between two sections validated against the same `schema`: for every
// reloadable=false key whose effective value (default included) changed, appends
// "<key> cannot change on reload (requires restart)" at the new value's position (or at the
// new section's position when the key was removed). Recurses into kMap keys that are
// themselves reloadable. It does not recurse into kMapList elements, because only the caller
// knows which old element a new one corresponds to (by name, not by index): pair them and call
// this again with sections(key) and the nested schema. A non-reloadable kMap or kMapList key
// is compared as a whole.
void checkNonReloadable(const ValidatedSection& old_section,
                        const ValidatedSection& new_section, std::span<const ParamSpec> schema,
                        const std::string& path, Errors& errors);

// Checks a schema itself, for registration time and for module tests: empty or duplicate
// keys, keys that are not snake_case, min > max, kEnum without choices or with a default
// outside them, choices on a non-enum, kMap/kMapList without fields, fields on other types,
// a required key with a default, and defaults that do not parse or are out of range.
// Errors carry no file; path is "<path>.<key>"; messages start with "schema: ".
void checkSchema(std::span<const ParamSpec> schema, const std::string& path, Errors& errors);

// The candidate closest to `word` by edit distance (insert, delete, substitute, swap of two
// neighbours), when close enough to be a likely typo (at most 1 edit for short words, up to
// 3 for long ones); empty otherwise. Exposed for the core's own name checks (module names,
// pipeline references).
std::string suggest(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace imgate::core::config
