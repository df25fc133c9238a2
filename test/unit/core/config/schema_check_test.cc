// SPDX-License-Identifier: Apache-2.0
#include "config/schema_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config_view.h"
#include "config/yaml_loader.h"

namespace imgate::core::config {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kModes[] = {"fast", "safe"};

constexpr ParamSpec kTlsFields[] = {
    {.key = "cert", .type = ParamType::kString, .required = true},
    {.key = "key", .type = ParamType::kString, .required = true},
    {.key = "session_timeout", .type = ParamType::kDuration, .default_value = "5m"},
};

constexpr ParamSpec kListenerFields[] = {
    {.key = "name", .type = ParamType::kString, .required = true},
    {.key = "bind", .type = ParamType::kString, .required = true, .reloadable = false},
    {.key = "tls", .type = ParamType::kMap, .fields = kTlsFields},
};

constexpr ParamSpec kLimitsFields[] = {
    {.key = "max_conns", .type = ParamType::kInt, .default_value = "100", .min = 1},
    {.key = "backlog", .type = ParamType::kInt, .default_value = "511", .reloadable = false},
};

constexpr ParamSpec kSchema[] = {
    {.key = "enabled", .type = ParamType::kBool, .default_value = "true"},
    {.key = "workers",
     .type = ParamType::kInt,
     .default_value = "4",
     .min = 1,
     .max = 64,
     .reloadable = false},
    {.key = "name", .type = ParamType::kString, .default_value = "imgate", .max = 8},
    {.key = "idle_timeout",
     .type = ParamType::kDuration,
     .default_value = "120s",
     .min = 1'000,
     .max = 3'600'000},
    {.key = "max_message",
     .type = ParamType::kSize,
     .default_value = "64KiB",
     .min = 1,
     .max = 64 << 20},
    {.key = "rate", .type = ParamType::kRate, .default_value = "20/s", .min = 1, .max = 1000},
    {.key = "mode", .type = ParamType::kEnum, .default_value = "safe", .choices = kModes},
    {.key = "tags", .type = ParamType::kStringList, .min = 1, .max = 3},
    {.key = "limits", .type = ParamType::kMap, .fields = kLimitsFields},
    {.key = "listeners", .type = ParamType::kMapList, .max = 2, .fields = kListenerFields},
    {.key = "extra", .type = ParamType::kAny},
};

struct Checked {
  std::unique_ptr<ValidatedSection> section;
  Errors errors;

  std::vector<std::string> formatted() const {
    std::vector<std::string> out;
    for (const auto& e : errors) {
      out.push_back(e.format());
    }
    return out;
  }
};

Checked check(const std::string& yaml, std::span<const ParamSpec> schema = kSchema,
              const std::string& path = "") {
  Checked out;
  auto doc = loadString(yaml, "t.yaml");
  EXPECT_TRUE(doc.has_value()) << formatErrors(doc.error());
  if (!doc) {
    return out;
  }
  out.section = validate(doc->root, schema, path, out.errors);
  EXPECT_NE(out.section, nullptr);
  return out;
}

// ---- Values ---------------------------------------------------------------------------------

TEST(ConfigSchemaCheckTest, AcceptsValidValuesOfEveryType) {
  Checked c = check(
      "enabled: false\n"
      "workers: 16\n"
      "name: edge\n"
      "idle_timeout: 90s\n"
      "max_message: 1MiB\n"
      "rate: 100/m\n"
      "mode: fast\n"
      "tags: [a, b]\n"
      "limits: {max_conns: 7}\n"
      "listeners:\n"
      "  - {name: a, bind: ':1'}\n"
      "  - name: b\n"
      "    bind: ':2'\n"
      "    tls: {cert: c.pem, key: k.pem}\n"
      "extra: {anything: [goes, here]}\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  EXPECT_FALSE(s.getBool("enabled"));
  EXPECT_EQ(s.getInt("workers"), 16);
  EXPECT_EQ(s.getString("name"), "edge");
  EXPECT_EQ(s.getDuration("idle_timeout"), milliseconds(90'000));
  EXPECT_EQ(s.getSize("max_message"), 1 << 20);
  EXPECT_EQ(s.getRate("rate").count, 100u);
  EXPECT_EQ(s.getRate("rate").per, milliseconds(60'000));
  EXPECT_EQ(s.getString("mode"), "fast");
  EXPECT_THAT(s.getStringList("tags"), ElementsAre("a", "b"));
  EXPECT_EQ(s.child("limits").getInt("max_conns"), 7);
  EXPECT_EQ(s.child("limits").getInt("backlog"), 511);
  auto listeners = s.children("listeners");
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[0]->getString("bind"), ":1");
  EXPECT_EQ(listeners[1]->getString("name"), "b");
  EXPECT_EQ(listeners[1]->child("tls").getString("cert"), "c.pem");
  EXPECT_EQ(listeners[1]->child("tls").getDuration("session_timeout"), milliseconds(300'000));
  EXPECT_FALSE(listeners[0]->child("tls").has("cert"));
  RawNode extra = s.raw("extra");
  ASSERT_TRUE(extra.isMap());
  EXPECT_EQ(extra.get("anything").items().at(1).scalar(), "here");
}

TEST(ConfigSchemaCheckTest, BooleansAreTrueOrFalseOnly) {
  for (const char* yes : {"true", "True", "TRUE"}) {
    Checked c = check(std::string("enabled: ") + yes + "\n");
    EXPECT_THAT(c.formatted(), ElementsAre()) << yes;
    EXPECT_TRUE(c.section->getBool("enabled")) << yes;
  }
  for (const char* no : {"false", "False", "FALSE"}) {
    Checked c = check(std::string("enabled: ") + no + "\n");
    EXPECT_THAT(c.formatted(), ElementsAre()) << no;
    EXPECT_FALSE(c.section->getBool("enabled")) << no;
  }
  for (const char* bad : {"yes", "no", "on", "off", "1", "y"}) {
    Checked c = check(std::string("enabled: ") + bad + "\n");
    EXPECT_THAT(c.formatted(), ElementsAre("t.yaml:1:10: enabled: \"" + std::string(bad) +
                                           "\" is not a boolean (use true or false)"));
  }
}

TEST(ConfigSchemaCheckTest, StringsTakeAnyScalarAsWritten) {
  EXPECT_EQ(check("name: 80\n").section->getString("name"), "80");
  EXPECT_EQ(check("name: 'true'\n").section->getString("name"), "true");
  EXPECT_EQ(check("name: 1.50\n").section->getString("name"), "1.50");
  EXPECT_EQ(check("name: \"\"\n").section->getString("name"), "");
  Checked c = check("name: \"~\"\n");
  EXPECT_TRUE(c.section->has("name"));
  EXPECT_EQ(c.section->getString("name"), "~");
}

TEST(ConfigSchemaCheckTest, IntegersRefuseFractionsAndOverflow) {
  constexpr ParamSpec kWide[] = {{.key = "n", .type = ParamType::kInt}};
  EXPECT_EQ(check("n: -9223372036854775808\n", kWide).section->getInt("n"), INT64_MIN);
  EXPECT_EQ(check("n: 9223372036854775807\n", kWide).section->getInt("n"), INT64_MAX);
  EXPECT_EQ(check("n: +12\n", kWide).section->getInt("n"), 12);
  EXPECT_EQ(check("n: '-7'\n", kWide).section->getInt("n"), -7);
  struct Bad {
    const char* value;
    const char* message;
  };
  for (const Bad& bad : {Bad{"9223372036854775808", "out of range for a 64-bit integer"},
                         Bad{"-9223372036854775809", "out of range"},
                         Bad{"99999999999999999999999", "out of range"},
                         Bad{"1.5", "is not an integer (no fractions or exponents)"},
                         Bad{"1e3", "no fractions or exponents"},
                         Bad{"0x10", "is not an integer"},
                         Bad{"ten", "is not an integer"},
                         Bad{"'-'", "is not an integer"}}) {
    Checked c = check(std::string("n: ") + bad.value + "\n", kWide);
    ASSERT_EQ(c.errors.size(), 1u) << bad.value;
    EXPECT_THAT(c.errors[0].format(), HasSubstr(bad.message)) << bad.value;
    EXPECT_EQ(c.errors[0].path, "n");
  }
}

TEST(ConfigSchemaCheckTest, StringListTakesALoneScalar) {
  Checked c = check("tags: solo\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  EXPECT_THAT(c.section->getStringList("tags"), ElementsAre("solo"));
  c = check("tags:\n  - x\n  - 2\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  EXPECT_THAT(c.section->getStringList("tags"), ElementsAre("x", "2"));
}

// ---- Bounds ---------------------------------------------------------------------------------

struct BoundCase {
  const char* key;
  const char* inside;
  const char* outside;
  const char* bound;  // expected in the message, in the key's unit
};

TEST(ConfigSchemaCheckTest, EveryBoundAcceptsJustInsideAndRejectsJustOutside) {
  const BoundCase cases[] = {
      {"workers", "1", "0", "must be at least 1"},
      {"workers", "64", "65", "must be at most 64"},
      {"idle_timeout", "1s", "999ms", "must be at least 1s"},
      {"idle_timeout", "1h", "3600001ms", "must be at most 1h"},
      {"max_message", "1", "0", "must be at least 1"},
      {"max_message", "64MiB", "67108865", "must be at most 64MiB"},
      {"rate", "1/s", "0/s", "count must be at least 1"},
      {"rate", "1000/m", "1001/m", "count must be at most 1000"},
      {"tags", "[a]", "[]", "must have at least 1 item"},
      {"tags", "[a, b, c]", "[a, b, c, d]", "must have at most 3 items"},
      {"name", "12345678", "123456789", "must be at most 8 bytes long"},
      {"listeners", "[{name: a, bind: b}, {name: c, bind: d}]",
       "[{name: a, bind: b}, {name: c, bind: d}, {name: e, bind: f}]",
       "must have at most 2 items"},
  };
  for (const auto& c : cases) {
    Checked ok = check(std::string(c.key) + ": " + c.inside + "\n");
    EXPECT_THAT(ok.formatted(), ElementsAre()) << c.key << ": " << c.inside;
    Checked bad = check(std::string(c.key) + ": " + c.outside + "\n");
    ASSERT_EQ(bad.errors.size(), 1u) << c.key << ": " << c.outside;
    std::string message = bad.errors[0].format();
    EXPECT_THAT(message, HasSubstr(c.key));
    EXPECT_THAT(message, HasSubstr(c.bound));
    EXPECT_EQ(bad.errors[0].mark.line, 1) << message;
  }
  constexpr ParamSpec kNested[] = {
      {.key = "limits", .type = ParamType::kMap, .fields = kLimitsFields}};
  EXPECT_THAT(check("limits: {max_conns: 1}\n", kNested).formatted(), ElementsAre());
  EXPECT_THAT(check("limits: {max_conns: 0}\n", kNested).formatted(),
              ElementsAre("t.yaml:1:21: limits.max_conns: must be at least 1, got \"0\""));
}

// ---- Type and value errors ------------------------------------------------------------------

struct BadValue {
  const char* yaml;
  const char* error;  // the full formatted error
};

TEST(ConfigSchemaCheckTest, WrongTypesAndBadValuesNameTheExpectation) {
  const BadValue cases[] = {
      {"enabled: [true]", "t.yaml:1:10: enabled: expected a boolean (true or false), got a list"},
      {"workers: {a: 1}", "t.yaml:1:10: workers: expected an integer, got a map"},
      {"name: {a: 1}", "t.yaml:1:7: name: expected a string, got a map"},
      {"idle_timeout: 30", "t.yaml:1:15: idle_timeout: \"30\" has no unit (e.g. 30s)"},
      {"idle_timeout: [30s]",
       "t.yaml:1:15: idle_timeout: expected a duration (like 30s), got a list"},
      {"max_message: 64KB",
       "t.yaml:1:14: max_message: \"64KB\" is ambiguous: write 64KiB (65536 bytes) or 64000"},
      {"rate: fast", "t.yaml:1:7: rate: \"fast\" is not a rate (like 20/s)"},
      {"mode: fsat",
       "t.yaml:1:7: mode: \"fsat\" must be one of fast, safe (did you mean \"fast\"?)"},
      {"mode: turbo", "t.yaml:1:7: mode: \"turbo\" must be one of fast, safe"},
      {"mode: [fast]", "t.yaml:1:7: mode: expected one of fast, safe, got a list"},
      {"tags: {a: 1}", "t.yaml:1:7: tags: expected a list of strings, got a map"},
      {"tags: [a, [b]]", "t.yaml:1:11: tags[1]: expected a string, got a list"},
      {"limits: [1]", "t.yaml:1:9: limits: expected a map, got a list"},
      {"limits: x", "t.yaml:1:9: limits: expected a map, got a string"},
      {"listeners: {name: x}", "t.yaml:1:12: listeners: expected a list of maps, got a map"},
      {"listeners: [1]", "t.yaml:1:13: listeners[0]: expected a map, got a string"},
      {"? [a]\n: 1", "t.yaml:1:3: a key must be a string, got a list"},
  };
  for (const auto& c : cases) {
    Checked checked = check(std::string(c.yaml) + "\n");
    EXPECT_THAT(checked.formatted(), ElementsAre(c.error)) << c.yaml;
  }
}

TEST(ConfigSchemaCheckTest, RootThatIsNotAMap) {
  Checked c = check("- a\n- b\n");
  EXPECT_THAT(c.formatted(), ElementsAre("t.yaml:1:1: expected a map, got a list"));
  // Still a usable section, with defaults.
  EXPECT_EQ(c.section->getInt("workers"), 4);
  c = check("just text\n", kSchema, "protocols.proto.x");
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:1:1: protocols.proto.x: expected a map, got a string"));
}

TEST(ConfigSchemaCheckTest, UnknownKeySuggestsTheClosestKey) {
  Checked c = check("idle_timout: 30s\nworkres: 2\n");
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:1:1: idle_timout: unknown key \"idle_timout\" (did you mean "
                          "\"idle_timeout\"?)",
                          "t.yaml:2:1: workres: unknown key \"workres\" (did you mean "
                          "\"workers\"?)"));
  // Nothing close: small schemas list what is valid.
  c = check("limits: {zzz: 1}\n");
  EXPECT_THAT(c.formatted(), ElementsAre("t.yaml:1:10: limits.zzz: unknown key \"zzz\" "
                                         "(valid keys: max_conns, backlog)"));
  c = check("completely_unrelated_key: 1\n");
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0].message, "unknown key \"completely_unrelated_key\" (valid keys: "
                                 "enabled, workers, name, idle_timeout, max_message, rate, "
                                 "mode, tags, limits, listeners, extra)");
  c = check("a: 1\n", std::span<const ParamSpec>());
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:1:1: a: unknown key \"a\" (this section takes no keys)"));
}

TEST(ConfigSchemaCheckTest, SuggestHandlesTyposAndRefusesFarMatches) {
  constexpr std::string_view kNames[] = {"idle_timeout", "bind", "max_message", "workers"};
  EXPECT_EQ(suggest("idle_timout", kNames), "idle_timeout");
  EXPECT_EQ(suggest("idle_tiemout", kNames), "idle_timeout");  // swapped neighbours
  EXPECT_EQ(suggest("bnd", kNames), "bind");
  EXPECT_EQ(suggest("Bind", kNames), "bind");
  EXPECT_EQ(suggest("max_msg", kNames), "");
  EXPECT_EQ(suggest("port", kNames), "");
  EXPECT_EQ(suggest("", kNames), "");
  EXPECT_EQ(suggest(std::string(10'000, 'x'), kNames), "");
}

TEST(ConfigSchemaCheckTest, CollectsEveryErrorInOnePassWithPositions) {
  Checked c = check(
      "workers: 0\n"
      "name: ok\n"
      "mode: slow\n"
      "listeners:\n"
      "  - name: a\n"
      "    bind: ':1'\n"
      "    tls: {cert: c.pem, keyy: k.pem}\n"
      "  - name: b\n"
      "    tls:\n"
      "      cert: [x]\n"
      "      key: k.pem\n"
      "      session_timeout: 5\n"
      "rate: 20 per second\n");
  EXPECT_THAT(
      c.formatted(),
      ElementsAre(
          "t.yaml:1:10: workers: must be at least 1, got \"0\"",
          "t.yaml:3:7: mode: \"slow\" must be one of fast, safe",
          "t.yaml:7:24: listeners[0].tls.keyy: unknown key \"keyy\" (did you mean \"key\"?)",
          "t.yaml:7:10: listeners[0].tls.key: required key \"key\" is missing",
          "t.yaml:10:13: listeners[1].tls.cert: expected a string, got a list",
          "t.yaml:12:24: listeners[1].tls.session_timeout: \"5\" has no unit (e.g. 30s)",
          "t.yaml:8:5: listeners[1].bind: required key \"bind\" is missing",
          "t.yaml:13:7: rate: \"20 per second\" is not a rate (like 20/s)"));
}

TEST(ConfigSchemaCheckTest, CapsTheNumberOfErrors) {
  std::string text = "listeners:\n";
  for (int i = 0; i < 300; ++i) {
    text += "  - {name: x}\n";
  }
  constexpr ParamSpec kMany[] = {
      {.key = "listeners", .type = ParamType::kMapList, .fields = kListenerFields}};
  Checked c = check(text, kMany);
  ASSERT_EQ(c.errors.size(), kMaxErrors + 1);
  EXPECT_EQ(c.errors[0].format(),
            "t.yaml:2:5: listeners[0].bind: required key \"bind\" is missing");
  EXPECT_EQ(c.errors.back().message, "too many errors, stopping here");
  // Later validations into the same list add nothing more.
  auto more = validate(RawNode(), kListenerFields, "x", c.errors);
  EXPECT_EQ(c.errors.size(), kMaxErrors + 1);
}

// ---- Required keys, nulls, has() --------------------------------------------------------------

TEST(ConfigSchemaCheckTest, RequiredKeyMissingPointsAtTheMap) {
  constexpr ParamSpec kNeeds[] = {
      {.key = "listeners", .type = ParamType::kMapList, .required = true,
       .fields = kListenerFields},
      {.key = "limits", .type = ParamType::kMap, .required = true, .fields = kLimitsFields},
  };
  Checked c = check("\n\nlisteners:\n  - {name: x}\n", kNeeds);
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:4:5: listeners[0].bind: required key \"bind\" is missing",
                          "t.yaml:3:1: limits: required key \"limits\" is missing"));
  // A required key written empty is reported at the key.
  c = check("listeners:\n  - name:\n    bind: x\nlimits: {}\n", kNeeds);
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:2:5: listeners[0].name: is required but has no value"));
  // An absent section (invalid node from get()) reports at the map it was looked up in.
  auto doc = loadString("a: 1\nprotocols:\n  other: {}\n", "t.yaml");
  ASSERT_TRUE(doc.has_value());
  Errors errors;
  auto section = validate(doc->root.get("protocols").get("proto.x"), kNeeds,
                          "protocols.proto.x", errors);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].format(),
            "t.yaml:3:3: protocols.proto.x.listeners: required key \"listeners\" is missing");
  EXPECT_EQ(section->child("limits").getInt("max_conns"), 100);
}

TEST(ConfigSchemaCheckTest, NullMeansNotWrittenAndDefaultsApply) {
  Checked c = check("workers: ~\nname:\nmode: null\ntags:\nlimits:\nlisteners: ~\nextra:\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  for (const char* key : {"workers", "name", "mode", "tags", "limits", "listeners", "extra"}) {
    EXPECT_FALSE(s.has(key)) << key;
  }
  EXPECT_TRUE(s.keys().empty());
  EXPECT_EQ(s.getInt("workers"), 4);
  EXPECT_EQ(s.getString("name"), "imgate");
  EXPECT_EQ(s.getString("mode"), "safe");
  EXPECT_TRUE(s.getStringList("tags").empty());
  EXPECT_EQ(s.child("limits").getInt("backlog"), 511);
  EXPECT_TRUE(s.children("listeners").empty());
  EXPECT_FALSE(s.raw("extra").valid());
}

TEST(ConfigSchemaCheckTest, DefaultsAppliedAndHasOnlyForWrittenKeys) {
  Checked c = check("workers: 8\nlimits: {}\nextra: 0\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  EXPECT_TRUE(s.has("workers"));
  EXPECT_TRUE(s.has("limits"));
  EXPECT_TRUE(s.has("extra"));
  EXPECT_FALSE(s.has("enabled"));
  EXPECT_FALSE(s.has("idle_timeout"));
  EXPECT_FALSE(s.has("not_in_schema"));
  EXPECT_THAT(s.keys(), ElementsAre("workers", "limits", "extra"));

  EXPECT_TRUE(s.getBool("enabled"));
  EXPECT_EQ(s.getInt("workers"), 8);
  EXPECT_EQ(s.getString("name"), "imgate");
  EXPECT_EQ(s.getDuration("idle_timeout"), milliseconds(120'000));
  EXPECT_EQ(s.getSize("max_message"), 64 * 1024);
  EXPECT_EQ(s.getRate("rate").count, 20u);
  EXPECT_EQ(s.getRate("rate").per, milliseconds(1'000));
  EXPECT_EQ(s.getString("mode"), "safe");
  EXPECT_FALSE(s.child("limits").has("max_conns"));
  EXPECT_EQ(s.child("limits").getInt("max_conns"), 100);
}

TEST(ConfigSchemaCheckTest, AbsentMapGetsNestedDefaultsWithoutRequiredErrors) {
  constexpr ParamSpec kOuter[] = {
      {.key = "tls", .type = ParamType::kMap, .fields = kTlsFields},
  };
  Checked c = check("{}\n", kOuter);
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ConfigView& tls = c.section->child("tls");
  EXPECT_FALSE(c.section->has("tls"));
  EXPECT_FALSE(tls.has("session_timeout"));
  EXPECT_EQ(tls.getDuration("session_timeout"), milliseconds(300'000));
  EXPECT_EQ(tls.getString("cert"), "");
  // Written, the nested required keys are enforced.
  c = check("tls: {}\n", kOuter);
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:1:6: tls.cert: required key \"cert\" is missing",
                          "t.yaml:1:6: tls.key: required key \"key\" is missing"));
}

TEST(ConfigSchemaCheckTest, GettersOutsideTheSchemaOrOfTheWrongTypeReturnZero) {
  Checked c = check("workers: 8\nname: x\nlisteners: [{name: a, bind: b}]\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  EXPECT_EQ(s.getInt("nope"), 0);
  EXPECT_EQ(s.getString("nope"), "");
  EXPECT_FALSE(s.getBool("nope"));
  EXPECT_EQ(s.getDuration("nope"), milliseconds(0));
  EXPECT_EQ(s.getSize("nope"), 0);
  EXPECT_EQ(s.getRate("nope").count, 0u);
  EXPECT_TRUE(s.getStringList("nope").empty());
  EXPECT_TRUE(s.children("nope").empty());
  EXPECT_FALSE(s.child("nope").has("x"));
  EXPECT_EQ(s.child("nope").getInt("x"), 0);
  // Wrong types.
  EXPECT_EQ(s.getString("workers"), "");
  EXPECT_EQ(s.getInt("name"), 0);
  EXPECT_EQ(s.getSize("workers"), 0);
  EXPECT_FALSE(s.child("listeners").has("name"));
  EXPECT_TRUE(s.children("limits").empty());
}

TEST(ConfigSchemaCheckTest, LocationsNameFileLineColumnAndPath) {
  Checked c = check("workers: 8\nlisteners:\n  - {name: a, bind: b}\n  - name: c\n    bind: d\n");
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  EXPECT_EQ(s.location(), "t.yaml:1:1");
  EXPECT_EQ(s.location("workers"), "t.yaml:1:10 workers");
  EXPECT_EQ(s.location("name"), "t.yaml:1:1 name");  // not written: the section
  EXPECT_EQ(s.mark("workers"), (Mark{1, 10}));
  auto listeners = s.sections("listeners");
  ASSERT_EQ(listeners.size(), 2u);
  EXPECT_EQ(listeners[1]->location(), "t.yaml:4:5 listeners[1]");
  EXPECT_EQ(listeners[1]->location("bind"), "t.yaml:5:11 listeners[1].bind");
  EXPECT_EQ(listeners[1]->child("tls").location(), "t.yaml:4:5 listeners[1].tls");
  EXPECT_EQ(listeners[1]->section("tls").path(), "listeners[1].tls");
  EXPECT_EQ(ValidatedSection::empty().location(), "");
}

// ---- Schema defaults and checkSchema ---------------------------------------------------------

TEST(ConfigSchemaCheckTest, CompositeDefaultsAreReadAsYaml) {
  constexpr ParamSpec kDefaults[] = {
      {.key = "tags", .type = ParamType::kStringList, .default_value = "[a, b]"},
      {.key = "one", .type = ParamType::kStringList, .default_value = "solo"},
      {.key = "limits", .type = ParamType::kMap, .default_value = "{max_conns: 3}",
       .fields = kLimitsFields},
      {.key = "listeners", .type = ParamType::kMapList,
       .default_value = "[{name: d, bind: ':9'}]", .fields = kListenerFields},
      {.key = "extra", .type = ParamType::kAny, .default_value = "{x: 1}"},
  };
  Checked c = check("{}\n", kDefaults);
  ASSERT_THAT(c.formatted(), ElementsAre());
  const ValidatedSection& s = *c.section;
  EXPECT_THAT(s.getStringList("tags"), ElementsAre("a", "b"));
  EXPECT_THAT(s.getStringList("one"), ElementsAre("solo"));
  EXPECT_EQ(s.child("limits").getInt("max_conns"), 3);
  EXPECT_EQ(s.child("limits").getInt("backlog"), 511);
  ASSERT_EQ(s.children("listeners").size(), 1u);
  EXPECT_EQ(s.children("listeners")[0]->getString("bind"), ":9");
  // Positions of defaulted values are the section's, not the default text's.
  EXPECT_EQ(s.sections("listeners")[0]->location(), "t.yaml:1:1 listeners[0]");
  EXPECT_EQ(s.raw("extra").get("x").scalar(), "1");
  EXPECT_FALSE(s.has("extra"));
  Errors errors;
  checkSchema(kDefaults, "", errors);
  EXPECT_TRUE(errors.empty()) << formatErrors(errors);
}

TEST(ConfigSchemaCheckTest, BadDefaultIsReportedWhenUsed) {
  constexpr ParamSpec kBad[] = {
      {.key = "timeout", .type = ParamType::kDuration, .default_value = "30"},
      {.key = "count", .type = ParamType::kInt, .default_value = "5", .max = 4},
      {.key = "list", .type = ParamType::kStringList, .default_value = "[a, [b]]"},
  };
  Checked c = check("a:\n  x: 1\n", kBad, "");
  // The unknown key first, then the defaults at the section's position.
  EXPECT_THAT(c.formatted(),
              ElementsAre("t.yaml:1:1: a: unknown key \"a\" (valid keys: timeout, count, list)",
                          "t.yaml:1:1: timeout: invalid default \"30\" in the schema: \"30\" has "
                          "no unit (e.g. 30s)",
                          "t.yaml:1:1: count: invalid default \"5\" in the schema: must be at "
                          "most 4, got \"5\"",
                          "t.yaml:1:1: list: invalid default \"[a, [b]]\" in the schema: "
                          "list[1]: expected a string, got a list"));
  // Written values do not need the default.
  c = check("timeout: 1s\ncount: 1\nlist: [a]\n", kBad);
  EXPECT_THAT(c.formatted(), ElementsAre());
}

constexpr ParamSpec kBadNested[] = {
    {.key = "when", .type = ParamType::kDuration, .default_value = "soon"},
};

TEST(ConfigSchemaCheckTest, CheckSchemaFindsSchemaBugs) {
  static constexpr std::string_view kOne[] = {"a"};
  constexpr ParamSpec kBugs[] = {
      {.key = "ok", .type = ParamType::kInt},
      {.key = "ok", .type = ParamType::kInt},
      {.key = "CamelCase", .type = ParamType::kBool},
      {.key = "range", .type = ParamType::kInt, .min = 5, .max = 1},
      {.key = "e", .type = ParamType::kEnum},
      {.key = "e2", .type = ParamType::kEnum, .default_value = "b", .choices = kOne},
      {.key = "s", .type = ParamType::kString, .choices = kOne},
      {.key = "m", .type = ParamType::kMap},
      {.key = "i", .type = ParamType::kInt, .fields = kTlsFields},
      {.key = "r", .type = ParamType::kInt, .required = true, .default_value = "1"},
      {.key = "d", .type = ParamType::kSize, .default_value = "1KB"},
      {.key = "nested", .type = ParamType::kMap, .fields = kBadNested},
  };
  Errors errors;
  checkSchema(kBugs, "proto.x", errors);
  std::vector<std::string> formatted;
  for (const auto& e : errors) {
    formatted.push_back(e.format());
  }
  EXPECT_THAT(formatted,
              ElementsAre("proto.x.ok: schema: key \"ok\" is declared twice",
                          "proto.x.CamelCase: schema: key \"CamelCase\" is not snake_case",
                          "proto.x.range: schema: min 5 is greater than max 1",
                          "proto.x.e: schema: an enum needs choices",
                          "proto.x.e2: schema: invalid default \"b\" in the schema: \"b\" must "
                          "be one of a (did you mean \"a\"?)",
                          "proto.x.s: schema: choices are only for enums",
                          "proto.x.m: schema: a map needs fields (use kAny for free-form maps)",
                          "proto.x.i: schema: fields are only for kMap and kMapList",
                          "proto.x.r: schema: a required key cannot have a default",
                          "proto.x.d: schema: invalid default \"1KB\" in the schema: \"1KB\" is "
                          "ambiguous: write 1KiB (1024 bytes) or 1000",
                          "proto.x.nested.when: schema: invalid default \"soon\" in the schema: "
                          "\"soon\" is not a duration (like 30s)"));
  Errors clean;
  checkSchema(kSchema, "", clean);
  EXPECT_TRUE(clean.empty()) << formatErrors(clean);
}

// ---- Fingerprints and reload ------------------------------------------------------------------

TEST(ConfigSchemaCheckTest, FingerprintComparesEffectiveValues) {
  auto fp = [](const std::string& yaml, std::string_view key) {
    Checked c = check(yaml);
    EXPECT_THAT(c.formatted(), ElementsAre()) << yaml;
    return c.section->fingerprint(key);
  };
  EXPECT_EQ(fp("idle_timeout: 60s\n", "idle_timeout"), fp("idle_timeout: 1m\n", "idle_timeout"));
  EXPECT_EQ(fp("{}\n", "idle_timeout"), fp("idle_timeout: 2m\n", "idle_timeout"));
  EXPECT_NE(fp("idle_timeout: 61s\n", "idle_timeout"), fp("idle_timeout: 1m\n", "idle_timeout"));
  EXPECT_EQ(fp("max_message: 1024\n", "max_message"), fp("max_message: 1k\n", "max_message"));
  EXPECT_EQ(fp("tags: a\n", "tags"), fp("tags: [a]\n", "tags"));
  EXPECT_NE(fp("tags: [a, b]\n", "tags"), fp("tags: ['a,b']\n", "tags"));
  EXPECT_EQ(fp("{}\n", "tags"), "~");
  EXPECT_EQ(fp("{}\n", "not_a_key"), "");
  EXPECT_EQ(fp("limits: {}\n", "limits"), fp("limits: {max_conns: 100}\n", "limits"));
  EXPECT_NE(fp("limits: {}\n", "limits"), fp("limits: {max_conns: 101}\n", "limits"));
  EXPECT_NE(fp("extra: {a: 1}\n", "extra"), fp("extra: {a: '1'}\n", "extra"));
  EXPECT_EQ(fp("extra: {a: 1}\n", "extra"), fp("extra:\n  a: 1\n", "extra"));
  EXPECT_NE(fp("listeners: [{name: a, bind: b}]\n", "listeners"),
            fp("listeners: [{name: a, bind: c}]\n", "listeners"));
}

TEST(ConfigSchemaCheckTest, NonReloadableChangesAreRefusedAtTheNewValue) {
  Checked old_config = check("workers: 4\nname: a\nlimits: {backlog: 100}\n");
  Checked same = check("# reformatted\nworkers: 4\nname: b\nlimits:\n  backlog: 100\n");
  Checked changed = check("name: a\n\nworkers: 8\nlimits: {max_conns: 5, backlog: 200}\n");
  Checked defaulted = check("name: a\nlimits: {backlog: 100}\n");  // workers default is 4
  Errors errors;
  checkNonReloadable(*old_config.section, *same.section, kSchema, "", errors);
  EXPECT_TRUE(errors.empty()) << formatErrors(errors);
  checkNonReloadable(*old_config.section, *defaulted.section, kSchema, "", errors);
  EXPECT_TRUE(errors.empty()) << formatErrors(errors);

  checkNonReloadable(*old_config.section, *changed.section, kSchema, "", errors);
  std::vector<std::string> formatted;
  for (const auto& e : errors) {
    formatted.push_back(e.format());
  }
  EXPECT_THAT(formatted,
              ElementsAre("t.yaml:3:10: workers: workers cannot change on reload (requires "
                          "restart)",
                          "t.yaml:4:33: limits.backlog: backlog cannot change on reload "
                          "(requires restart)"));

  // A removed key is reported at the new section.
  Checked removed = check("name: a\nlimits: {}\nworkers: 4\n");
  errors.clear();
  checkNonReloadable(*old_config.section, *removed.section, kSchema, "", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].format(),
            "t.yaml:2:9: limits.backlog: backlog cannot change on reload (requires restart)");

  // List elements are paired by the caller.
  Checked l1 = check("listeners: [{name: a, bind: ':1'}, {name: b, bind: ':2'}]\n");
  Checked l2 = check("listeners: [{name: b, bind: ':3'}, {name: a, bind: ':1'}]\n");
  errors.clear();
  checkNonReloadable(*l1.section, *l2.section, kSchema, "", errors);
  EXPECT_TRUE(errors.empty());
  checkNonReloadable(*l1.section->sections("listeners")[1], *l2.section->sections("listeners")[0],
                     kListenerFields, "listeners[0]", errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].format(),
            "t.yaml:1:29: listeners[0].bind: bind cannot change on reload (requires restart)");
}

}  // namespace
}  // namespace imgate::core::config
