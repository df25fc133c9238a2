// SPDX-License-Identifier: Apache-2.0
#include "common/small_string.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace imgate::core {
namespace {

// Every length around the in-place limit, through each way of making and moving one.
TEST(SmallStringTest, KeepsEveryLengthAroundTheInPlaceLimit) {
  for (size_t n = 0; n <= SmallString::kInline + 3; ++n) {
    std::string text;
    for (size_t i = 0; i < n; ++i) {
      text.push_back(static_cast<char>('a' + i % 26));
    }
    SCOPED_TRACE(n);
    const SmallString s(text);
    EXPECT_EQ(s.view(), text);
    EXPECT_EQ(s.size(), n);
    EXPECT_EQ(s.empty(), n == 0);
    EXPECT_EQ(s.inlined(), n <= SmallString::kInline);

    SmallString copy(s);
    EXPECT_EQ(copy.view(), text);
    SmallString moved(std::move(copy));
    EXPECT_EQ(moved.view(), text);
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty

    SmallString assigned(std::string_view("something else entirely, and long"));
    assigned = s;
    EXPECT_EQ(assigned.view(), text);
    SmallString move_assigned(std::string_view("x"));
    move_assigned = std::move(assigned);
    EXPECT_EQ(move_assigned.view(), text);
    EXPECT_EQ(move_assigned.str(), text);
    EXPECT_EQ(std::string_view(move_assigned), text);
  }
}

TEST(SmallStringTest, PeerAddressesOfIpv4NeedNoAllocationIpv6MayTakeOne) {
  EXPECT_TRUE(SmallString(std::string_view("255.255.255.255:65535")).inlined());
  const SmallString v6(std::string_view("[2001:db8:85a3::8a2e:370:7334]:65535"));
  EXPECT_FALSE(v6.inlined());
  EXPECT_EQ(v6.view(), "[2001:db8:85a3::8a2e:370:7334]:65535");
}

TEST(SmallStringTest, HoldsAnyByteIncludingNul) {
  const std::string bytes("a\0b\xff", 4);
  EXPECT_EQ(SmallString(bytes).view(), bytes);
  const std::string long_bytes(40, '\0');
  EXPECT_EQ(SmallString(long_bytes).view(), long_bytes);
}

TEST(SmallStringTest, SelfAssignmentAndSwapKeepBoth) {
  SmallString a(std::string_view("short"));
  SmallString b(std::string_view("a string well past the twenty-three bytes"));
  const SmallString& alias = a;
  a = alias;
  EXPECT_EQ(a.view(), "short");
  a.swap(b);
  EXPECT_EQ(a.view(), "a string well past the twenty-three bytes");
  EXPECT_EQ(b.view(), "short");
  std::vector<SmallString> many(100, a);  // copies on the heap, each freed once
  many.emplace_back(std::string_view("x"));
  EXPECT_EQ(many.front().view(), a.view());
}

}  // namespace
}  // namespace imgate::core
