// SPDX-License-Identifier: Apache-2.0
// Addresses, CIDR blocks (IPv4/IPv6 edges) and the client address behind trusted proxies.
#include "modules/behavior/lbs/ip_match.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace imgate::mod::lbs {
namespace {

IpAddress ip(std::string_view text) {
  auto a = parseIp(text);
  EXPECT_TRUE(a) << text;
  return a ? *a : IpAddress{};
}

Cidr cidr(std::string_view text) {
  auto c = parseCidr(text);
  EXPECT_TRUE(c) << text << ": " << (c ? "" : c.error().message);
  return c ? *c : Cidr{};
}

CidrList list(std::initializer_list<std::string_view> texts) {
  CidrList l;
  for (auto t : texts) {
    l.add(cidr(t));
  }
  return l;
}

TEST(LbsIpTest, ParsesBothFamiliesStrictly) {
  EXPECT_TRUE(ip("10.1.2.3").isV4());
  EXPECT_EQ(ip("10.1.2.3").toString(), "10.1.2.3");
  EXPECT_FALSE(ip("2001:db8::1").isV4());
  EXPECT_EQ(ip("2001:0db8:0000::0001").toString(), "2001:db8::1");
  // IPv4-mapped IPv6 is the IPv4 address.
  EXPECT_EQ(ip("::ffff:10.1.2.3"), ip("10.1.2.3"));
  EXPECT_EQ(ip("::ffff:a01:203"), ip("10.1.2.3"));
  // IPv4-compatible (deprecated) is not mapped: it stays IPv6.
  EXPECT_FALSE(ip("::10.1.2.3").isV4());
  for (const char* bad : {"", "10.1.2", "10.1.2.3.4", "256.1.1.1", "10.1.2.3:80", "[::1]",
                          "fe80::1%eth0", "2001:db8:::1", "01.2.3.4", " 10.1.2.3", "localhost",
                          "::ffff:1.2.3.4.5", "1:2:3:4:5:6:7:8:9"}) {
    auto r = parseIp(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Errc::kBadRequest);
    }
  }
  EXPECT_FALSE(parseIp(std::string(100, '1')));
}

TEST(LbsIpTest, HostPortForms) {
  EXPECT_EQ(parseHostPort("10.1.2.3"), ip("10.1.2.3"));
  EXPECT_EQ(parseHostPort("10.1.2.3:8080"), ip("10.1.2.3"));
  EXPECT_EQ(parseHostPort(" 10.1.2.3 "), ip("10.1.2.3"));
  EXPECT_EQ(parseHostPort("2001:db8::1"), ip("2001:db8::1"));
  EXPECT_EQ(parseHostPort("[2001:db8::1]"), ip("2001:db8::1"));
  EXPECT_EQ(parseHostPort("[2001:db8::1]:443"), ip("2001:db8::1"));
  EXPECT_EQ(parseHostPort("[::ffff:10.0.0.1]:1"), ip("10.0.0.1"));
  for (const char* bad :
       {"", "10.1.2.3:", "10.1.2.3:65536", "10.1.2.3:x", "[10.1.2.3]", "[2001:db8::1",
        "[2001:db8::1]x", "[2001:db8::1]:", "unknown", "_hidden", "unix"}) {
    EXPECT_FALSE(parseHostPort(bad)) << bad;
  }
}

TEST(LbsCidrTest, Ipv4Edges) {
  const Cidr zero = cidr("0.0.0.0/0");
  EXPECT_TRUE(zero.contains(ip("0.0.0.0")));
  EXPECT_TRUE(zero.contains(ip("255.255.255.255")));
  EXPECT_FALSE(zero.contains(ip("2001:db8::1"))) << "an IPv4 block never matches IPv6";
  const Cidr host = cidr("10.1.2.3");
  EXPECT_EQ(host.prefix, 32);
  EXPECT_TRUE(host.contains(ip("10.1.2.3")));
  EXPECT_FALSE(host.contains(ip("10.1.2.4")));
  const Cidr odd = cidr("10.1.2.128/25");
  EXPECT_TRUE(odd.contains(ip("10.1.2.128")));
  EXPECT_TRUE(odd.contains(ip("10.1.2.255")));
  EXPECT_FALSE(odd.contains(ip("10.1.2.127")));
  EXPECT_FALSE(odd.contains(ip("10.1.3.128")));
  const Cidr nine = cidr("10.128.0.0/9");
  EXPECT_TRUE(nine.contains(ip("10.255.255.255")));
  EXPECT_FALSE(nine.contains(ip("10.127.255.255")));
  EXPECT_TRUE(cidr("172.16.0.0/12").contains(ip("172.31.255.255")));
  EXPECT_FALSE(cidr("172.16.0.0/12").contains(ip("172.32.0.0")));
  EXPECT_TRUE(cidr("10.0.0.0/8").contains(ip("::ffff:10.9.9.9"))) << "mapped client";
  EXPECT_EQ(cidr("10.0.0.0/8").toString(), "10.0.0.0/8");
}

TEST(LbsCidrTest, Ipv6Edges) {
  const Cidr all6 = cidr("::/0");
  EXPECT_TRUE(all6.contains(ip("2001:db8::1")));
  EXPECT_TRUE(all6.contains(ip("::1")));
  EXPECT_FALSE(all6.contains(ip("10.1.2.3"))) << "::/0 is every IPv6 client, not everyone";
  const Cidr doc = cidr("2001:db8::/32");
  EXPECT_TRUE(doc.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(doc.contains(ip("2001:db9::")));
  const Cidr odd = cidr("2001:db8:8000::/33");
  EXPECT_TRUE(odd.contains(ip("2001:db8:8000::1")));
  EXPECT_FALSE(odd.contains(ip("2001:db8:7fff::1")));
  const Cidr host = cidr("2001:db8::1/128");
  EXPECT_TRUE(host.contains(ip("2001:db8::1")));
  EXPECT_FALSE(host.contains(ip("2001:db8::2")));
  EXPECT_EQ(cidr("2001:db8::1").prefix, 128);
  // A block written in mapped form is the IPv4 block.
  const Cidr mapped = cidr("::ffff:10.0.0.0/104");
  EXPECT_TRUE(mapped.v4());
  EXPECT_EQ(mapped.prefix, 8);
  EXPECT_EQ(mapped, cidr("10.0.0.0/8"));
  EXPECT_TRUE(mapped.contains(ip("10.200.0.1")));
  EXPECT_EQ(cidr("::ffff:0:0/96"), cidr("0.0.0.0/0"));
  EXPECT_EQ(cidr("2001:db8::/32").toString(), "2001:db8::/32");
}

TEST(LbsCidrTest, RefusesBadBlocksWithClearMessages) {
  const auto message = [](std::string_view text) {
    auto r = parseCidr(text);
    EXPECT_FALSE(r) << text;
    if (r) {
      return std::string();
    }
    EXPECT_EQ(r.error().code, Errc::kInvalidConfig);
    return r.error().message;
  };
  EXPECT_NE(message("10.0.0.1/8").find("did you mean 10.0.0.0/8?"), std::string::npos);
  EXPECT_NE(message("2001:db8::1/32").find("did you mean 2001:db8::/32?"), std::string::npos);
  EXPECT_NE(message("::ffff:0:0/80").find("did you mean ::/80?"), std::string::npos);
  EXPECT_NE(message("10.0.0.0/33").find("0..32"), std::string::npos);
  EXPECT_NE(message("2001:db8::/129").find("0..128"), std::string::npos);
  EXPECT_NE(message("10.0.0.0/").find("prefix length"), std::string::npos);
  EXPECT_NE(message("10.0.0.0/-1").find("prefix length"), std::string::npos);
  EXPECT_NE(message("10.0.0.0/8x").find("prefix length"), std::string::npos);
  EXPECT_NE(message("10.0.0/8").find("\"10.0.0/8\" is not a CIDR block"), std::string::npos);
  EXPECT_NE(message("example.com/8").find("not a CIDR block"), std::string::npos);
  EXPECT_FALSE(message("").empty());
}

TEST(LbsCidrTest, LongestMatch) {
  const CidrList l = list({"10.0.0.0/8", "10.1.0.0/16", "2001:db8::/32", "0.0.0.0/0"});
  EXPECT_EQ(l.longestMatch(ip("10.1.2.3")), 16);
  EXPECT_EQ(l.longestMatch(ip("10.2.0.1")), 8);
  EXPECT_EQ(l.longestMatch(ip("192.0.2.1")), 0);
  EXPECT_EQ(l.longestMatch(ip("2001:db8::5")), 32);
  EXPECT_EQ(l.longestMatch(ip("2001:db9::5")), -1);
  EXPECT_TRUE(l.contains(ip("8.8.8.8")));
  EXPECT_FALSE(CidrList().contains(ip("8.8.8.8")));
}

// ---- X-Forwarded-For ---------------------------------------------------------------------------

IpAddress client(std::string_view peer, std::vector<std::string_view> xff, const CidrList& trust) {
  return clientAddress(ip(peer), xff, trust);
}

TEST(LbsXffTest, UntrustedPeerIgnoresTheHeader) {
  const CidrList trusted = list({"127.0.0.1/32"});
  EXPECT_EQ(client("198.51.100.7", {"1.2.3.4"}, trusted), ip("198.51.100.7"));
  EXPECT_EQ(client("198.51.100.7", {"1.2.3.4"}, CidrList()), ip("198.51.100.7"));
}

TEST(LbsXffTest, TakesTheRightMostUntrustedAddress) {
  const CidrList trusted = list({"127.0.0.1/32", "10.0.0.0/8", "fd00::/8"});
  // client, then two proxies of ours: the nearest untrusted hop is the client.
  EXPECT_EQ(client("127.0.0.1", {"1.2.3.4, 10.0.0.5"}, trusted), ip("1.2.3.4"));
  // A forged left part is ignored: the right-most untrusted entry wins.
  EXPECT_EQ(client("127.0.0.1", {"6.6.6.6, 1.2.3.4, 10.0.0.5"}, trusted), ip("1.2.3.4"));
  // Several header lines are one list, in order.
  EXPECT_EQ(client("127.0.0.1", {"6.6.6.6", "1.2.3.4", "10.0.0.5"}, trusted), ip("1.2.3.4"));
  EXPECT_EQ(client("127.0.0.1", {"6.6.6.6, 1.2.3.4", "10.0.0.5"}, trusted), ip("1.2.3.4"));
  // Ports, brackets and IPv6.
  EXPECT_EQ(client("127.0.0.1", {"[2001:db8::9]:5000, 10.0.0.5:80"}, trusted), ip("2001:db8::9"));
  EXPECT_EQ(client("fd00::1", {"2001:db8::9"}, trusted), ip("2001:db8::9"));
  EXPECT_EQ(client("::ffff:127.0.0.1", {"1.2.3.4"}, trusted), ip("1.2.3.4"));
  // Empty elements are skipped.
  EXPECT_EQ(client("127.0.0.1", {"1.2.3.4,, 10.0.0.5,"}, trusted), ip("1.2.3.4"));
}

TEST(LbsXffTest, EdgeCases) {
  const CidrList trusted = list({"127.0.0.1/32", "10.0.0.0/8"});
  // Every hop trusted: the left-most one.
  EXPECT_EQ(client("127.0.0.1", {"10.0.0.9, 10.0.0.5"}, trusted), ip("10.0.0.9"));
  // No header: the (trusted) peer itself.
  EXPECT_EQ(client("127.0.0.1", {}, trusted), ip("127.0.0.1"));
  EXPECT_EQ(client("127.0.0.1", {""}, trusted), ip("127.0.0.1"));
  // A malformed entry stops the walk at the last trusted hop reached.
  EXPECT_EQ(client("127.0.0.1", {"1.2.3.4, unknown"}, trusted), ip("127.0.0.1"));
  EXPECT_EQ(client("127.0.0.1", {"1.2.3.4, garbage, 10.0.0.5"}, trusted), ip("10.0.0.5"));
  EXPECT_EQ(client("127.0.0.1", {"1.2.3.4, 10.0.0.5", "not an ip"}, trusted), ip("127.0.0.1"));
  // An entry left of the client is never reached.
  EXPECT_EQ(client("127.0.0.1", {"garbage, 1.2.3.4"}, trusted), ip("1.2.3.4"));
  // A long chain of trusted hops is walked to the end.
  std::string chain = "5.5.5.5";
  for (int i = 0; i < 200; ++i) {
    chain += ", 10.0.0." + std::to_string(i % 250);
  }
  EXPECT_EQ(client("127.0.0.1", {chain}, trusted), ip("5.5.5.5"));
}

}  // namespace
}  // namespace imgate::mod::lbs
