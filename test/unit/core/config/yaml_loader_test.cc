// SPDX-License-Identifier: Apache-2.0
#include "config/yaml_loader.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace imgate::core::config {
namespace {

Document load(const std::string& text) {
  auto doc = loadString(text, "test.yaml");
  EXPECT_TRUE(doc.has_value()) << (doc ? "" : formatErrors(doc.error()));
  return doc ? std::move(*doc) : Document{};
}

Errors loadErrors(const std::string& text, const LoadLimits& limits = {}) {
  auto doc = loadString(text, "test.yaml", limits);
  EXPECT_FALSE(doc.has_value());
  return doc ? Errors{} : doc.error();
}

TEST(ConfigYamlLoaderTest, FormatsErrorsWithAndWithoutParts) {
  EXPECT_EQ((ConfigError{"a.yaml", {3, 7}, "x.y", "bad"}).format(), "a.yaml:3:7: x.y: bad");
  EXPECT_EQ((ConfigError{"a.yaml", {3, 7}, "", "bad"}).format(), "a.yaml:3:7: bad");
  EXPECT_EQ((ConfigError{"a.yaml", {}, "", "bad"}).format(), "a.yaml: bad");
  EXPECT_EQ((ConfigError{"", {}, "k", "bad"}).format(), "k: bad");
  Errors two = {{"a", {1, 1}, "", "x"}, {"a", {2, 1}, "", "y"}};
  EXPECT_EQ(formatErrors(two), "a:1:1: x\na:2:1: y");
  Error error = toError(two);
  EXPECT_EQ(error.code, Errc::kInvalidConfig);
  EXPECT_EQ(error.message, "a:1:1: x\na:2:1: y");
}

TEST(ConfigYamlLoaderTest, WalksMapsListsAndScalarsWithMarks) {
  Document doc = load(
      "workers: 4\n"
      "listeners:\n"
      "  - name: edge\n"
      "    bind: \"0.0.0.0:7000\"\n"
      "  - {name: push, bind: 127.0.0.1:7080}\n");
  EXPECT_EQ(doc.file, "test.yaml");
  ASSERT_TRUE(doc.root.isMap());
  EXPECT_EQ(doc.root.file(), "test.yaml");
  auto entries = doc.root.entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].first.scalar(), "workers");
  EXPECT_EQ(entries[0].second.scalar(), "4");
  EXPECT_EQ(entries[0].second.mark(), (Mark{1, 10}));
  EXPECT_EQ(entries[1].first.scalar(), "listeners");
  EXPECT_EQ(entries[1].first.mark(), (Mark{2, 1}));

  RawNode listeners = doc.root.get("listeners");
  ASSERT_TRUE(listeners.isSeq());
  auto items = listeners.items();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].isMap());
  EXPECT_EQ(items[0].mark(), (Mark{3, 5}));
  EXPECT_EQ(items[0].get("bind").scalar(), "0.0.0.0:7000");
  EXPECT_TRUE(items[0].get("bind").isQuoted());
  EXPECT_FALSE(items[0].get("name").isQuoted());
  EXPECT_EQ(items[1].get("bind").mark(), (Mark{5, 24}));
  EXPECT_EQ(items[1].get("name").scalar(), "push");
  EXPECT_EQ(listeners.describe(), "a list");
  EXPECT_EQ(items[0].describe(), "a map");
  EXPECT_EQ(items[0].get("name").describe(), "a string");
}

TEST(ConfigYamlLoaderTest, AbsentKeyIsInvalidButPointsAtItsMap) {
  Document doc = load("a:\n  b: 1\n");
  RawNode a = doc.root.get("a");
  RawNode missing = a.get("zzz");
  EXPECT_FALSE(missing.valid());
  EXPECT_FALSE(missing.isNull());
  EXPECT_FALSE(missing.isMap());
  EXPECT_EQ(missing.scalar(), "");
  EXPECT_TRUE(missing.entries().empty());
  EXPECT_TRUE(missing.items().empty());
  EXPECT_EQ(missing.mark(), a.mark());
  EXPECT_EQ(missing.file(), "test.yaml");
  EXPECT_EQ(missing.describe(), "no value");
  EXPECT_FALSE(missing.get("deeper").valid());
  // Lookup on a scalar is not a crash either.
  EXPECT_FALSE(a.get("b").get("c").valid());

  RawNode none;
  EXPECT_FALSE(none.valid());
  EXPECT_EQ(none.mark(), (Mark{}));
  EXPECT_EQ(none.file(), "");
  EXPECT_FALSE(none.get("x").valid());
}

TEST(ConfigYamlLoaderTest, NullsAndQuotedNulls) {
  Document doc = load("a:\nb: ~\nc: null\nd: \"~\"\ne: 'null'\nf: \"\"\n");
  EXPECT_TRUE(doc.root.get("a").isNull());
  // An empty value takes its key's position, not the next line's.
  EXPECT_EQ(doc.root.get("a").mark(), (Mark{1, 1}));
  EXPECT_TRUE(doc.root.get("b").isNull());
  EXPECT_EQ(doc.root.get("b").mark(), (Mark{2, 4}));
  EXPECT_TRUE(doc.root.get("c").isNull());
  EXPECT_TRUE(doc.root.get("d").isScalar());
  EXPECT_EQ(doc.root.get("d").scalar(), "~");
  EXPECT_TRUE(doc.root.get("e").isScalar());
  EXPECT_TRUE(doc.root.get("f").isScalar());
  EXPECT_EQ(doc.root.get("f").scalar(), "");
  EXPECT_EQ(doc.root.get("a").describe(), "nothing");
}

TEST(ConfigYamlLoaderTest, EmptyTextIsANullRoot) {
  Document doc = load("");
  EXPECT_TRUE(doc.root.valid());
  EXPECT_TRUE(doc.root.isNull());
  Document comments = load("# nothing here\n");
  EXPECT_TRUE(comments.root.isNull());
}

TEST(ConfigYamlLoaderTest, SyntaxErrorCarriesYamlCppMark) {
  Errors errors = loadErrors("a: 1\nb: [1, 2\nc: 3\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, "test.yaml");
  EXPECT_GT(errors[0].mark.line, 1);
  EXPECT_NE(errors[0].message.find("yaml syntax error"), std::string::npos);

  errors = loadErrors("a: 1\n  b: 2\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].mark, (Mark{2, 4}));
  EXPECT_EQ(errors[0].format(), "test.yaml:2:4: yaml syntax error: illegal map value");

  errors = loadErrors("a: \"\\q\"\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].mark, (Mark{1, 7}));
  EXPECT_NE(errors[0].message.find("unknown escape"), std::string::npos);

  errors = loadErrors("\ta: 1\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].mark.line, 1);
}

TEST(ConfigYamlLoaderTest, RefusesASecondDocument) {
  Errors errors = loadErrors("a: 1\n---\nb: 2\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].mark.line, 3);
  EXPECT_NE(errors[0].message.find("one YAML document"), std::string::npos);
}

TEST(ConfigYamlLoaderTest, ReportsEveryDuplicateKeyWithBothPositions) {
  Errors errors = loadErrors(
      "a: 1\n"
      "b:\n"
      "  x: 1\n"
      "  x: 2\n"
      "a: 3\n");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(), "test.yaml:4:3: b.x: duplicate key \"x\" (first at 3:3)");
  EXPECT_EQ(errors[1].format(), "test.yaml:5:1: a: duplicate key \"a\" (first at 1:1)");

  errors = loadErrors("l:\n  - {k: 1, k: 2}\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].path, "l[0].k");
  // A map reached through several aliases is reported once.
  errors = loadErrors("a: &m {x: 1, x: 2}\nb: *m\nc: [*m, *m]\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].mark, (Mark{1, 14}));
}

TEST(ConfigYamlLoaderTest, CapsTheNumberOfErrors) {
  std::string text;
  for (int i = 0; i < 300; ++i) {
    text += "- {k: 1, k: 2}\n";
  }
  Errors errors = loadErrors(text);
  ASSERT_EQ(errors.size(), kMaxErrors + 1);
  EXPECT_EQ(errors.back().message, "too many errors, stopping here");
}

TEST(ConfigYamlLoaderTest, DepthLimit) {
  LoadLimits limits;
  limits.max_depth = 3;
  EXPECT_TRUE(loadString("a: {b: {c: 1}}", "t", limits).has_value());
  Errors errors = loadErrors("a: {b: {c: {d: 1}}}", limits);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("nesting deeper than 3 levels"), std::string::npos);
  EXPECT_EQ(errors[0].path, "a.b.c");
  EXPECT_EQ(errors[0].mark, (Mark{1, 12}));

  // The default is enforced without configuration.
  std::string deep;
  for (int i = 0; i < 70; ++i) {
    deep += "[";
  }
  deep += "1";
  for (int i = 0; i < 70; ++i) {
    deep += "]";
  }
  errors = loadErrors(deep);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("64 levels"), std::string::npos);
}

TEST(ConfigYamlLoaderTest, NodeLimitCountsAliasesExpanded) {
  // Each level doubles the expanded size: 2^21 nodes from a few hundred bytes of text.
  std::string bomb = "l0: &l0 [x, x]\n";
  for (int i = 1; i <= 20; ++i) {
    bomb += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [*l" +
            std::to_string(i - 1) + ", *l" + std::to_string(i - 1) + "]\n";
  }
  Errors errors = loadErrors(bomb);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("more than 100000 nodes"), std::string::npos);

  LoadLimits limits;
  limits.max_nodes = 4;
  EXPECT_TRUE(loadString("[1, 2, 3]", "t", limits).has_value());
  EXPECT_FALSE(loadString("[1, 2, 3, 4]", "t", limits).has_value());
}

TEST(ConfigYamlLoaderTest, SizeLimit) {
  LoadLimits limits;
  limits.max_bytes = 8;
  EXPECT_TRUE(loadString("a: 12345", "t", limits).has_value());
  Errors errors = loadErrors("a: 123456", limits);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].format(), "test.yaml: file is larger than 8 bytes");
}

TEST(ConfigYamlLoaderTest, MissingFileNamesTheFileAndTheReason) {
  auto doc = loadFile("/nonexistent/dir/imgate.yaml");
  ASSERT_FALSE(doc.has_value());
  ASSERT_EQ(doc.error().size(), 1u);
  EXPECT_EQ(doc.error()[0].format(),
            "/nonexistent/dir/imgate.yaml: cannot open: No such file or directory");

  auto dir = loadFile("/");
  ASSERT_FALSE(dir.has_value());
  EXPECT_NE(dir.error()[0].message.find("cannot read"), std::string::npos);
}

TEST(ConfigYamlLoaderTest, LoadsAFileAndKeepsTheText) {
  std::string path = ::testing::TempDir() + "config_yaml_loader_test.yaml";
  {
    std::ofstream out(path);
    out << "a: 1\nb: [x]\n";
  }
  auto doc = loadFile(path);
  ASSERT_TRUE(doc.has_value()) << formatErrors(doc.error());
  EXPECT_EQ(doc->file, path);
  EXPECT_EQ(doc->text, "a: 1\nb: [x]\n");
  EXPECT_EQ(doc->root.get("b").items().at(0).scalar(), "x");
  EXPECT_EQ(doc->root.get("b").file(), path);

  LoadLimits limits;
  limits.max_bytes = 4;
  auto big = loadFile(path, limits);
  ASSERT_FALSE(big.has_value());
  EXPECT_NE(big.error()[0].message.find("larger than 4 bytes"), std::string::npos);

  // Syntax errors in a file carry the file's name.
  {
    std::ofstream out(path);
    out << "a: [\n";
  }
  auto bad = loadFile(path);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error()[0].file, path);
  std::remove(path.c_str());
}

TEST(ConfigYamlLoaderTest, NodesOutliveTheirDocument) {
  RawNode kept;
  {
    Document doc = load("a: {b: [1, 2]}\n");
    kept = doc.root.get("a").get("b");
  }
  ASSERT_TRUE(kept.isSeq());
  EXPECT_EQ(kept.items().at(1).scalar(), "2");
  EXPECT_EQ(kept.file(), "test.yaml");
}

TEST(ConfigYamlLoaderTest, CanonicalIgnoresLayoutButNotValues) {
  Document block = load("a:\n  - 1\n  - \"x\"\nb: {c: ~}\n");
  Document flow = load("# comment\na: [1, \"x\"]\nb:\n  c:\n");
  Document quoted = load("a: [\"1\", \"x\"]\nb: {c: ~}\n");
  Document reordered = load("b: {c: ~}\na: [1, \"x\"]\n");
  EXPECT_EQ(block.root.canonical(), flow.root.canonical());
  EXPECT_NE(block.root.canonical(), quoted.root.canonical());
  EXPECT_NE(block.root.canonical(), reordered.root.canonical());
  // Quotes inside values cannot fake structure.
  EXPECT_NE(load("a: 'x\",\"y'").root.canonical(), load("a: [x, y]").root.canonical());
}

}  // namespace
}  // namespace imgate::core::config
