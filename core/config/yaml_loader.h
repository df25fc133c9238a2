// SPDX-License-Identifier: Apache-2.0
// Loads a YAML config file into a read-only tree that the rest of the core walks without seeing
// yaml-cpp. This directory is the only place that includes <yaml-cpp/yaml.h>; yaml-cpp throws,
// and every exception is caught here and turned into a ConfigError with a location.
//
// Thread: config is loaded and walked on the main thread only. A RawNode is not safe to use
// from two threads at once (yaml-cpp nodes are not), even read-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "imgate/sdk/status.h"

namespace imgate::core::config {

// A position in the config text, 1-based as printed by editors. line == 0 means "no position"
// (e.g. a file that could not be opened, or a schema error that is not about any file).
struct Mark {
  int line = 0;
  int col = 0;

  friend bool operator==(const Mark&, const Mark&) = default;
};

struct ConfigError {
  std::string file;     // as given to loadFile()/loadString(); may be empty
  Mark mark;
  std::string path;     // YAML path, e.g. "listeners[1].tls.cert"; empty for file-level errors
  std::string message;  // lower case, no trailing period

  // "<file>:<line>:<col>: <path>: <message>". The ":<line>:<col>" part is left out when
  // mark.line == 0, "<path>: " when path is empty, and "<file>..: " when file is empty.
  std::string format() const;
};
using Errors = std::vector<ConfigError>;

// One error per line, each formatted as above, no trailing newline.
std::string formatErrors(const Errors& errors);
// The whole list as one imgate::Error with code kInvalidConfig (message = formatErrors()).
Error toError(const Errors& errors);

// Most errors reported for one load or one list of validations; past it one last error says
// the list was cut. Keeps a pathological file from producing a flood of identical messages.
inline constexpr size_t kMaxErrors = 200;

// Limits applied while loading, each with a default that real configs never come near. They
// exist so that a hostile or broken file gets an error instead of unbounded memory or time.
struct LoadLimits {
  // Largest file accepted. 16 MiB is hundreds of times the size of a large hand-written config.
  size_t max_bytes = size_t{16} << 20;
  // Nodes counted with aliases expanded (`*ref` counts the whole referenced tree again), so an
  // "alias bomb" of nested references is refused before anything walks it. Large hand-written
  // configs have a few thousand nodes. This also bounds what validation allocates: at most one
  // section per node, each with one ~200-byte entry per schema key.
  size_t max_nodes = 100'000;
  // Deepest nesting of maps and lists. Configs are a handful of levels deep; the limit keeps
  // every recursive walk in the core (validation, fingerprints) shallow.
  int max_depth = 64;
};

struct NodeImpl;  // defined in yaml_loader.cc; holds the yaml-cpp node

// A cheap, copyable handle to one node of a loaded document. It shares ownership of the whole
// document, so a RawNode stays valid after the Document it came from is destroyed.
// A default-constructed RawNode, or one returned by get() for an absent key, is invalid: every
// accessor then returns an empty value (never throws). An invalid node returned by get() still
// knows the file and the mark of the map it was looked up in, so errors about a missing key
// can point at that map.
class RawNode {
 public:
  RawNode() = default;

  bool valid() const;
  // A plain `~`, `null` or empty value. A quoted "null" or "~" is a scalar, not null.
  bool isNull() const;
  bool isScalar() const;
  bool isMap() const;
  bool isSeq() const;
  // True for a scalar written in quotes (or with a non-default tag): it is text, whatever it
  // looks like.
  bool isQuoted() const;

  // Position of the node. For an empty value (`key:` followed by a newline) this is the key's
  // position, because yaml-cpp reports the position of whatever comes next.
  Mark mark() const;
  const std::string& file() const;

  // The scalar as written, without quotes; empty for non-scalars.
  std::string scalar() const;
  // Map entries (key node, value node) in file order; empty for non-maps. Duplicate keys are
  // refused by the loader, so every scalar key appears once.
  std::vector<std::pair<RawNode, RawNode>> entries() const;
  // Sequence items in order; empty for non-sequences.
  std::vector<RawNode> items() const;
  // Value of the first entry whose key is the scalar `key`; invalid when absent or when this
  // node is not a map.
  RawNode get(std::string_view key) const;

  // "a map", "a list", "a string", "nothing" (null) or "no value" (invalid): for messages such
  // as "expected a map, got a list".
  std::string describe() const;
  // A canonical one-line text of the whole subtree: equal trees give equal text, whatever the
  // layout, comments or flow/block style. Scalars keep the quoted/plain distinction. Used to
  // detect a changed value across reloads. Bounded by LoadLimits::max_nodes.
  std::string canonical() const;

 private:
  friend struct NodeImpl;
  explicit RawNode(std::shared_ptr<const NodeImpl> impl) : impl_(std::move(impl)) {}

  std::shared_ptr<const NodeImpl> impl_;
};

struct Document {
  RawNode root;      // null for an empty file
  std::string file;  // the name errors carry
  std::string text;  // the text that was parsed
};

// Reads and parses `path`. Errors: the file cannot be opened or read (message carries the
// system's reason, mark.line == 0), is larger than limits.max_bytes, has a YAML syntax error
// (mark from yaml-cpp), holds more than one document, breaks max_nodes / max_depth, or has
// duplicate keys in a map (every duplicate is reported, each at its own position).
[[nodiscard]] tl::expected<Document, Errors> loadFile(const std::string& path,
                                                      const LoadLimits& limits = {});

// The same for text held in memory; `name` plays the part of the file name in errors.
[[nodiscard]] tl::expected<Document, Errors> loadString(std::string text, std::string name,
                                                        const LoadLimits& limits = {});

}  // namespace imgate::core::config
