// SPDX-License-Identifier: Apache-2.0
// SDK versions (Semantic Versioning precedence) and version ranges.
#include "modules/behavior/lbs/version_range.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace imgate::mod::lbs {
namespace {

int cmp(std::string_view a, std::string_view b) {
  auto x = parseSdkVersion(a);
  auto y = parseSdkVersion(b);
  EXPECT_TRUE(x) << a;
  EXPECT_TRUE(y) << b;
  return x && y ? SdkVersion::compare(*x, *y) : 99;
}

bool in(std::string_view range, std::string_view version) {
  auto r = VersionRange::parse(range);
  EXPECT_TRUE(r) << range << ": " << (r ? "" : r.error().message);
  auto v = parseSdkVersion(version);
  EXPECT_TRUE(v) << version;
  return r && v && r->contains(*v);
}

TEST(LbsVersionTest, Precedence) {
  EXPECT_EQ(cmp("1.4.2", "1.4.2"), 0);
  EXPECT_EQ(cmp("1.4", "1.4.0"), 0);
  EXPECT_EQ(cmp("1", "1.0.0.0"), 0);
  EXPECT_EQ(cmp("v2.0.0", "2.0.0"), 0);
  EXPECT_EQ(cmp("1.4.10", "1.4.9"), 1) << "numeric, not text";
  EXPECT_EQ(cmp("1.10", "1.9.9"), 1);
  EXPECT_EQ(cmp("1.2.3.4", "1.2.3"), 1);
  EXPECT_EQ(cmp("2.0.0-beta", "2.0.0"), -1) << "a pre-release is below its release";
  EXPECT_EQ(cmp("2.0.0-alpha", "2.0.0-alpha.1"), -1);
  EXPECT_EQ(cmp("2.0.0-alpha.1", "2.0.0-alpha.beta"), -1) << "numeric ids sort first";
  EXPECT_EQ(cmp("2.0.0-beta.2", "2.0.0-beta.11"), -1);
  EXPECT_EQ(cmp("2.0.0-beta.11", "2.0.0-rc.1"), -1);
  EXPECT_EQ(cmp("2.0.0-rc.1", "1.9.9"), 1);
  EXPECT_EQ(cmp("2.0.0+build.5", "2.0.0"), 0) << "build metadata is ignored";
}

TEST(LbsVersionTest, RefusesWhatIsNotAVersion) {
  for (const char* bad :
       {"", "v", "1.", ".1", "1..2", "1.2.3.4.5", "1.x", "abc", "1.2-", "1.2-beta..1", "1.2+",
        "1.2.3 ", " 1.2.3", "-1.0", "1000000000.0", "1.2-b\xc3\xa9ta", "99999999999999999999"}) {
    EXPECT_FALSE(parseSdkVersion(bad)) << bad;
  }
  EXPECT_FALSE(parseSdkVersion(std::string(65, '1')));
  EXPECT_TRUE(parseSdkVersion("999999999.0.0"));
}

TEST(LbsVersionTest, Ranges) {
  EXPECT_TRUE(in(">=2.0.0 <3.0.0", "2.0.0"));
  EXPECT_TRUE(in(">=2.0.0 <3.0.0", "2.9.99"));
  EXPECT_FALSE(in(">=2.0.0 <3.0.0", "3.0.0"));
  EXPECT_FALSE(in(">=2.0.0 <3.0.0", "1.9.9"));
  EXPECT_TRUE(in(">=2.0.0 <3.0.0", "3.0.0-beta")) << "pre-releases of 3.0.0 are below it...";
  EXPECT_TRUE(in(">=2.0.0 <3.0.0-0", "2.5.0")) << "...so exclude them with <3.0.0-0";
  EXPECT_FALSE(in(">=2.0.0 <3.0.0-0", "3.0.0-beta"));
  EXPECT_TRUE(in(">1.4", "1.4.1"));
  EXPECT_FALSE(in(">1.4", "1.4.0"));
  EXPECT_TRUE(in("<=1.4", "1.4.0"));
  EXPECT_TRUE(in("1.4.2", "1.4.2"));
  EXPECT_TRUE(in("=1.4.2", "v1.4.2"));
  EXPECT_FALSE(in("1.4.2", "1.4.3"));
  EXPECT_TRUE(in(">= 2.0  < 3", "2.1")) << "a space may follow the operator";
  EXPECT_TRUE(in("*", "0.0.1"));
  EXPECT_TRUE(in("<1.0 || >=2.0 <2.1", "0.9"));
  EXPECT_TRUE(in("<1.0 || >=2.0 <2.1", "2.0.5"));
  EXPECT_FALSE(in("<1.0 || >=2.0 <2.1", "1.5"));
  EXPECT_FALSE(in("<1.0 || >=2.0 <2.1", "2.1"));
}

TEST(LbsVersionTest, BadRangesExplainThemselves) {
  const auto error = [](std::string_view text) {
    auto r = VersionRange::parse(text);
    EXPECT_FALSE(r) << text;
    if (r) {
      return std::string();
    }
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    return r.error().message;
  };
  EXPECT_NE(error("").find("empty"), std::string::npos);
  EXPECT_NE(error("   ").find("empty"), std::string::npos);
  EXPECT_NE(error(">=2.x").find("\"2.x\" is not a version"), std::string::npos);
  EXPECT_NE(error(">=").find("is not a version"), std::string::npos);
  EXPECT_NE(error("~2.0").find("is not a version"), std::string::npos);
  EXPECT_NE(error("|| 2.0").find("empty alternative"), std::string::npos);
  EXPECT_NE(error("2.0 ||").find("empty alternative"), std::string::npos);
  EXPECT_NE(error("1.0 || || 2.0").find("empty alternative"), std::string::npos);
}

}  // namespace
}  // namespace imgate::mod::lbs
