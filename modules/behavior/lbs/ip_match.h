// SPDX-License-Identifier: Apache-2.0
// IP addresses, CIDR blocks and the client address behind trusted proxies, for the LBS
// module's network rules. Pure functions; no sockets, no DNS.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "imgate/sdk/status.h"

namespace imgate::mod::lbs {

// An IPv4 or IPv6 address. IPv4 is held as IPv4-mapped IPv6 (::ffff:a.b.c.d), so the text
// "::ffff:10.1.2.3" and "10.1.2.3" give equal addresses: a client reaching a dual-stack socket
// over IPv4 is matched by IPv4 rules.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  bool isV4() const;
  // Dotted quad for IPv4, RFC 5952 text for IPv6.
  std::string toString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// Strict address text: "10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3". No brackets, ports,
// zone ids ("%eth0") or shortened IPv4 ("10.1"). Error: kBadRequest.
[[nodiscard]] Result<IpAddress> parseIp(std::string_view text);

// Address with an optional port, as peers and X-Forwarded-For entries are written:
// "10.1.2.3", "10.1.2.3:8080", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:8080".
// Surrounding spaces and tabs are ignored. nullopt when it is not an address.
std::optional<IpAddress> parseHostPort(std::string_view text);

// An address block. An IPv4 block matches only IPv4 addresses and an IPv6 block only IPv6
// ones ("::/0" is every IPv6 client, not everyone); a block written inside ::ffff:0:0/96 is
// taken as the IPv4 block it maps ("::ffff:10.0.0.0/104" is 10.0.0.0/8).
struct Cidr {
  IpAddress base;  // host bits are zero
  int prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6

  bool v4() const { return base.isV4(); }
  bool contains(const IpAddress& address) const;
  std::string toString() const;  // "10.0.0.0/8"

  friend bool operator==(const Cidr&, const Cidr&) = default;
};

// "10.0.0.0/8", "2001:db8::/32"; a bare address is a host block (/32 or /128). Refuses host
// bits set below the prefix ("10.0.0.1/8"), which is almost always a typo for another block.
// Error: kInvalidConfig with a message that quotes the text.
[[nodiscard]] Result<Cidr> parseCidr(std::string_view text);

// A set of blocks with longest-prefix lookup. Linear in the number of blocks: rule lists are
// bounded by the schema, and a scan of a few thousand 16-byte compares is far below the cost
// of the HTTP request that asks.
class CidrList {
 public:
  void add(const Cidr& cidr) { blocks_.push_back(cidr); }
  bool empty() const { return blocks_.empty(); }
  size_t size() const { return blocks_.size(); }
  bool contains(const IpAddress& address) const;
  // The longest prefix among blocks containing `address` (as written: 0..32 for IPv4 blocks),
  // or -1 when none does.
  int longestMatch(const IpAddress& address) const;

 private:
  std::vector<Cidr> blocks_;
};

// The client's address for a request that arrived from `peer` carrying the X-Forwarded-For
// header values `forwarded` (every such header, in order; each a comma-separated list).
// When `peer` is not in `trusted`, the header is ignored (anyone can write it) and the result
// is `peer`. Otherwise the list is walked from the right, the nearest hop first: trusted
// proxies are skipped and the first untrusted address is the client. If every entry is
// trusted, the left-most one is. An entry that is not an address stops the walk, and the
// last address reached (a trusted proxy) is the answer, because nothing left of a malformed
// entry can be believed.
IpAddress clientAddress(const IpAddress& peer, std::span<const std::string_view> forwarded,
                        const CidrList& trusted);

}  // namespace imgate::mod::lbs
