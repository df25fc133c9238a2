// SPDX-License-Identifier: Apache-2.0
#include "ip_match.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace imgate::mod::lbs {
namespace {

constexpr size_t kMaxAddressText = 45;  // INET6_ADDRSTRLEN - 1: longest IPv6 text with IPv4 tail
constexpr int kV4Offset = 96;           // IPv4 bits start after the ::ffff:0:0/96 prefix

std::string_view trimSpace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool parsePort(std::string_view text) {
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty() && port <= 65535;
}

// Bit `raw_index` (0 = most significant) of the 128-bit form.
bool rawBit(const std::array<uint8_t, 16>& bytes, int raw_index) {
  return (bytes[static_cast<size_t>(raw_index / 8)] >> (7 - raw_index % 8)) & 1;
}

}  // namespace

bool IpAddress::isV4() const {
  for (size_t i = 0; i < 10; ++i) {
    if (bytes[i] != 0) {
      return false;
    }
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

std::string IpAddress::toString() const {
  char text[64] = {};
  if (isV4()) {
    inet_ntop(AF_INET, bytes.data() + 12, text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  }
  return text;
}

Result<IpAddress> parseIp(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) {
    return fail(Errc::kBadRequest, "\"" + std::string(text) + "\" is not an IP address");
  }
  char buffer[kMaxAddressText + 1] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress address;
  if (text.find(':') == std::string_view::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, buffer, &v4) != 1) {
      return fail(Errc::kBadRequest, "\"" + std::string(text) + "\" is not an IP address");
    }
    address.bytes[10] = 0xff;
    address.bytes[11] = 0xff;
    std::memcpy(address.bytes.data() + 12, &v4, 4);
    return address;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buffer, &v6) != 1) {
    return fail(Errc::kBadRequest, "\"" + std::string(text) + "\" is not an IP address");
  }
  std::memcpy(address.bytes.data(), &v6, 16);
  return address;
}

std::optional<IpAddress> parseHostPort(std::string_view text) {
  text = trimSpace(text);
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return std::nullopt;
    }
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !parsePort(rest.substr(1)))) {
      return std::nullopt;
    }
    text = text.substr(1, close - 1);
    if (text.find(':') == std::string_view::npos) {
      return std::nullopt;  // brackets are for IPv6 only
    }
  } else if (const size_t colon = text.find(':');
             colon != std::string_view::npos &&
             text.find(':', colon + 1) == std::string_view::npos) {
    // Exactly one colon: IPv4 with a port (IPv6 text always has at least two).
    if (!parsePort(text.substr(colon + 1))) {
      return std::nullopt;
    }
    text = text.substr(0, colon);
  }
  auto address = parseIp(text);
  if (!address) {
    return std::nullopt;
  }
  return *address;
}

bool Cidr::contains(const IpAddress& address) const {
  if (address.isV4() != v4()) {
    return false;
  }
  const int offset = v4() ? kV4Offset : 0;
  const int bits = offset + prefix;
  const size_t whole = static_cast<size_t>(bits / 8);
  if (std::memcmp(address.bytes.data(), base.bytes.data(), whole) != 0) {
    return false;
  }
  const int rest = bits % 8;
  if (rest == 0) {
    return true;
  }
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (address.bytes[whole] & mask) == (base.bytes[whole] & mask);
}

std::string Cidr::toString() const { return base.toString() + "/" + std::to_string(prefix); }

Result<Cidr> parseCidr(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  const size_t slash = text.find('/');
  auto address = parseIp(text.substr(0, slash));
  if (!address) {
    return fail(Errc::kInvalidConfig,
                quoted + " is not a CIDR block (expected e.g. 10.0.0.0/8 or 2001:db8::/32)");
  }
  const bool mapped = address->isV4();
  const bool written_v4 = text.substr(0, slash).find(':') == std::string_view::npos;
  const int max_prefix = written_v4 ? 32 : 128;
  int prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || prefix < 0 ||
        prefix > max_prefix) {
      return fail(Errc::kInvalidConfig,
                  quoted + ": the prefix length must be 0.." + std::to_string(max_prefix));
    }
  }
  // Bits of the 128-bit form the block fixes.
  const int raw_prefix = written_v4 ? prefix + kV4Offset : prefix;
  for (int i = raw_prefix; i < 128; ++i) {
    if (rawBit(address->bytes, i)) {
      Cidr masked{*address, 0};
      for (int j = raw_prefix; j < 128; ++j) {
        masked.base.bytes[static_cast<size_t>(j / 8)] &= static_cast<uint8_t>(~(1u << (7 - j % 8)));
      }
      masked.prefix = masked.base.isV4() ? raw_prefix - kV4Offset : raw_prefix;
      return fail(Errc::kInvalidConfig, quoted +
                                            ": host bits are set below the prefix (did you "
                                            "mean " +
                                            masked.toString() + "?)");
    }
  }
  return Cidr{*address, mapped ? raw_prefix - kV4Offset : raw_prefix};
}

bool CidrList::contains(const IpAddress& address) const {
  return std::any_of(blocks_.begin(), blocks_.end(),
                     [&](const Cidr& c) { return c.contains(address); });
}

int CidrList::longestMatch(const IpAddress& address) const {
  int best = -1;
  for (const Cidr& c : blocks_) {
    if (c.prefix > best && c.contains(address)) {
      best = c.prefix;
    }
  }
  return best;
}

IpAddress clientAddress(const IpAddress& peer, std::span<const std::string_view> forwarded,
                        const CidrList& trusted) {
  if (!trusted.contains(peer)) {
    return peer;
  }
  IpAddress current = peer;
  for (auto header = forwarded.rbegin(); header != forwarded.rend(); ++header) {
    std::string_view list = *header;
    while (true) {
      const size_t comma = list.rfind(',');
      const std::string_view entry =
          trimSpace(comma == std::string_view::npos ? list : list.substr(comma + 1));
      if (!entry.empty()) {  // empty list elements are allowed by RFC 9110 §5.6.1
        const auto hop = parseHostPort(entry);
        if (!hop) {
          return current;
        }
        current = *hop;
        if (!trusted.contains(current)) {
          return current;
        }
      }
      if (comma == std::string_view::npos) {
        break;
      }
      list = list.substr(0, comma);
    }
  }
  return current;
}

}  // namespace imgate::mod::lbs
