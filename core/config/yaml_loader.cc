// SPDX-License-Identifier: Apache-2.0
#include "config/yaml_loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <new>
#include <set>
#include <system_error>
#include <unordered_map>

namespace imgate::core::config {

struct NodeImpl {
  YAML::Node node;
  std::shared_ptr<const std::string> file;
  bool absent = false;  // the result of get() for a missing key
  // Used instead of node.Mark() when set: empty values and absent keys.
  bool has_mark_override = false;
  Mark mark_override;

  static RawNode wrap(YAML::Node node, std::shared_ptr<const std::string> file) {
    auto impl = std::make_shared<NodeImpl>();
    impl->node = std::move(node);
    impl->file = std::move(file);
    return RawNode(std::move(impl));
  }

  static RawNode wrapAt(YAML::Node node, std::shared_ptr<const std::string> file, Mark mark) {
    auto impl = std::make_shared<NodeImpl>();
    impl->node = std::move(node);
    impl->file = std::move(file);
    impl->has_mark_override = true;
    impl->mark_override = mark;
    return RawNode(std::move(impl));
  }

  static RawNode wrapAbsent(std::shared_ptr<const std::string> file, Mark mark) {
    auto impl = std::make_shared<NodeImpl>();
    impl->file = std::move(file);
    impl->absent = true;
    impl->has_mark_override = true;
    impl->mark_override = mark;
    return RawNode(std::move(impl));
  }
};

namespace {

Mark toMark(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) {
    return {};
  }
  return Mark{mark.line + 1, mark.column + 1};
}

std::string positionText(Mark mark) {
  return std::to_string(mark.line) + ":" + std::to_string(mark.col);
}

void appendQuoted(std::string& out, const std::string& text) {
  out += '"';
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

void appendCanonical(std::string& out, const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
      out += '!';
      return;
    case YAML::NodeType::Null:
      out += '~';
      return;
    case YAML::NodeType::Scalar:
      // "1" and 1 differ to a YAML reader, so they differ here too.
      out += node.Tag() == "?" ? 'p' : 'q';
      appendQuoted(out, node.Scalar());
      return;
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& item : node) {
        if (!first) {
          out += ',';
        }
        first = false;
        appendCanonical(out, item);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : node) {
        if (!first) {
          out += ',';
        }
        first = false;
        appendCanonical(out, kv.first);
        out += ':';
        appendCanonical(out, kv.second);
      }
      out += '}';
      return;
    }
  }
}

// Walks the tree with aliases expanded, enforcing the node and depth limits, and reports
// duplicate map keys. Stops descending as soon as a limit is hit, so its cost is bounded by
// max_nodes whatever the document holds.
class TreeChecker {
 public:
  TreeChecker(const LoadLimits& limits, const std::string& file, Errors& errors)
      : limits_(limits), file_(file), errors_(errors) {}

  void check(const YAML::Node& root) { walk(root, 1); }

 private:
  // Built only when reporting, from the segments of the keys and indexes walked so far.
  std::string path() const {
    std::string out;
    for (const auto& segment : segments_) {
      if (!out.empty() && segment[0] != '[') {
        out += '.';
      }
      out += segment;
    }
    return out;
  }

  void fail(const YAML::Node& node, std::string message) {
    Mark mark = toMark(node.Mark());
    // An aliased map is walked once per reference; report its duplicates once.
    if (!reported_.insert({mark.line, mark.col}).second) {
      return;
    }
    if (errors_.size() == kMaxErrors) {
      errors_.push_back({file_, mark, "", "too many errors, stopping here"});
    }
    if (errors_.size() < kMaxErrors) {
      errors_.push_back({file_, mark, path(), std::move(message)});
    }
  }

  bool walk(const YAML::Node& node, int depth) {
    if (++count_ > limits_.max_nodes) {
      fail(node, "document has more than " + std::to_string(limits_.max_nodes) +
                     " nodes (aliases counted expanded)");
      return false;
    }
    if (!node.IsMap() && !node.IsSequence()) {
      return true;
    }
    if (depth > limits_.max_depth) {
      fail(node, "nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
      return false;
    }
    if (node.IsSequence()) {
      size_t index = 0;
      for (const auto& item : node) {
        segments_.push_back("[" + std::to_string(index++) + "]");
        bool ok = walk(item, depth + 1);
        segments_.pop_back();
        if (!ok) {
          return false;
        }
      }
      return true;
    }
    std::unordered_map<std::string, Mark> seen;
    for (const auto& kv : node) {
      std::string segment = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      segments_.push_back(segment.empty() ? "\"\"" : segment);
      if (kv.first.IsScalar()) {
        auto [it, inserted] = seen.emplace(kv.first.Scalar(), toMark(kv.first.Mark()));
        if (!inserted) {
          std::string message = "duplicate key ";
          appendQuoted(message, kv.first.Scalar());
          fail(kv.first, message + " (first at " + positionText(it->second) + ")");
        }
      }
      bool ok = walk(kv.first, depth + 1) && walk(kv.second, depth + 1);
      segments_.pop_back();
      if (!ok) {
        return false;
      }
    }
    return true;
  }

  const LoadLimits& limits_;
  const std::string& file_;
  Errors& errors_;
  size_t count_ = 0;
  std::vector<std::string> segments_;
  std::set<std::pair<int, int>> reported_;
};

}  // namespace

// ---- ConfigError --------------------------------------------------------------------------

std::string ConfigError::format() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (mark.line > 0) {
      out += ':' + positionText(mark);
    }
    out += ": ";
  } else if (mark.line > 0) {
    out += positionText(mark) + ": ";
  }
  if (!path.empty()) {
    out += path + ": ";
  }
  out += message;
  return out;
}

std::string formatErrors(const Errors& errors) {
  std::string out;
  for (const auto& error : errors) {
    if (!out.empty()) {
      out += '\n';
    }
    out += error.format();
  }
  return out;
}

Error toError(const Errors& errors) { return Error{Errc::kInvalidConfig, formatErrors(errors)}; }

// ---- RawNode ------------------------------------------------------------------------------

bool RawNode::valid() const { return impl_ != nullptr && !impl_->absent; }

bool RawNode::isNull() const { return valid() && impl_->node.IsNull(); }

bool RawNode::isScalar() const { return valid() && impl_->node.IsScalar(); }

bool RawNode::isMap() const { return valid() && impl_->node.IsMap(); }

bool RawNode::isSeq() const { return valid() && impl_->node.IsSequence(); }

bool RawNode::isQuoted() const { return isScalar() && impl_->node.Tag() != "?"; }

Mark RawNode::mark() const {
  if (impl_ == nullptr) {
    return {};
  }
  if (impl_->has_mark_override) {
    return impl_->mark_override;
  }
  return toMark(impl_->node.Mark());
}

const std::string& RawNode::file() const {
  static const std::string kNoFile;
  return impl_ != nullptr && impl_->file != nullptr ? *impl_->file : kNoFile;
}

std::string RawNode::scalar() const { return isScalar() ? impl_->node.Scalar() : std::string(); }

std::vector<std::pair<RawNode, RawNode>> RawNode::entries() const {
  std::vector<std::pair<RawNode, RawNode>> out;
  if (!isMap()) {
    return out;
  }
  out.reserve(impl_->node.size());
  for (const auto& kv : impl_->node) {
    RawNode key = NodeImpl::wrap(kv.first, impl_->file);
    RawNode value;
    Mark key_mark = key.mark();
    // yaml-cpp places an empty value at the next token, often on a later line; the key is
    // where the user looks.
    if (kv.second.IsNull() && toMark(kv.second.Mark()).line != key_mark.line) {
      value = NodeImpl::wrapAt(kv.second, impl_->file, key_mark);
    } else {
      value = NodeImpl::wrap(kv.second, impl_->file);
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

std::vector<RawNode> RawNode::items() const {
  std::vector<RawNode> out;
  if (!isSeq()) {
    return out;
  }
  out.reserve(impl_->node.size());
  for (const auto& item : impl_->node) {
    out.push_back(NodeImpl::wrap(item, impl_->file));
  }
  return out;
}

RawNode RawNode::get(std::string_view key) const {
  if (impl_ == nullptr) {
    return {};
  }
  for (const auto& [k, v] : entries()) {
    if (k.isScalar() && k.scalar() == key) {
      return v;
    }
  }
  return NodeImpl::wrapAbsent(impl_->file, mark());
}

std::string RawNode::describe() const {
  if (!valid()) {
    return "no value";
  }
  if (isNull()) {
    return "nothing";
  }
  if (isMap()) {
    return "a map";
  }
  if (isSeq()) {
    return "a list";
  }
  return "a string";
}

std::string RawNode::canonical() const {
  std::string out;
  if (!valid()) {
    out += '!';
  } else {
    appendCanonical(out, impl_->node);
  }
  return out;
}

// ---- Loading ------------------------------------------------------------------------------

tl::expected<Document, Errors> loadString(std::string text, std::string name,
                                          const LoadLimits& limits) {
  Errors errors;
  if (text.size() > limits.max_bytes) {
    errors.push_back({name, {}, "",
                      "file is larger than " + std::to_string(limits.max_bytes) + " bytes"});
    return tl::unexpected(std::move(errors));
  }
  auto file = std::make_shared<const std::string>(name);
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() > 1) {
      errors.push_back({name, toMark(docs[1].Mark()), "",
                        "a config file holds one YAML document; found a second one here"});
      return tl::unexpected(std::move(errors));
    }
    YAML::Node root = docs.empty() ? YAML::Node() : docs[0];
    TreeChecker(limits, name, errors).check(root);
    if (!errors.empty()) {
      return tl::unexpected(std::move(errors));
    }
    return Document{NodeImpl::wrap(std::move(root), std::move(file)), std::move(name),
                    std::move(text)};
  } catch (const YAML::Exception& e) {
    // e.msg is the bare reason; e.what() repeats the position in yaml-cpp's own words.
    errors.push_back({name, toMark(e.mark), "", "yaml syntax error: " + e.msg});
  } catch (const std::bad_alloc&) {
    errors.push_back({name, {}, "", "out of memory while parsing"});
  } catch (const std::exception& e) {
    errors.push_back({name, {}, "", std::string("cannot parse: ") + e.what()});
  } catch (...) {
    errors.push_back({name, {}, "", "cannot parse: unknown error"});
  }
  return tl::unexpected(std::move(errors));
}

tl::expected<Document, Errors> loadFile(const std::string& path, const LoadLimits& limits) {
  auto failed = [&](std::string message) -> tl::expected<Document, Errors> {
    return tl::unexpected(Errors{ConfigError{path, {}, "", std::move(message)}});
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return failed("cannot open: " + std::generic_category().message(errno));
  }
  std::string text;
  char buf[16384];
  bool too_big = false;
  // Read in chunks rather than trusting a size from stat(): pipes and /proc files have none.
  while (true) {
    size_t n = std::fread(buf, 1, sizeof buf, f);
    text.append(buf, n);
    if (text.size() > limits.max_bytes) {
      too_big = true;
      break;
    }
    if (n < sizeof buf) {
      break;
    }
  }
  bool read_error = std::ferror(f) != 0;
  int saved_errno = errno;
  std::fclose(f);
  if (too_big) {
    return failed("file is larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  if (read_error) {
    return failed("cannot read: " + std::generic_category().message(saved_errno));
  }
  return loadString(std::move(text), path, limits);
}

}  // namespace imgate::core::config
