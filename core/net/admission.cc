// SPDX-License-Identifier: Apache-2.0
#include "net/admission.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>

namespace imgate::core {

std::string_view admissionRefusalName(AdmissionRefusal r) {
  switch (r) {
    case AdmissionRefusal::kNone: return "none";
    case AdmissionRefusal::kMaxConnections: return "max_connections";
    case AdmissionRefusal::kPerIp: return "max_connections_per_ip";
    case AdmissionRefusal::kRate: return "connect_rate";
    case AdmissionRefusal::kHandshakes: return "max_handshakes";
  }
  return "?";
}

Admission& Admission::instance() {
  static Admission admission;
  return admission;
}

Admission::IpKey Admission::ipKey(std::string_view ip) {
  IpKey key;
  char text[INET6_ADDRSTRLEN + 2];
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
    ip = ip.substr(1, ip.size() - 2);  // peerName() brackets IPv6
  }
  if (ip.empty() || ip.size() >= sizeof(text)) {
    return key;
  }
  std::memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  unsigned char bytes[16] = {};
  if (inet_pton(AF_INET, text, bytes + 12) == 1) {
    bytes[10] = bytes[11] = 0xff;
  } else if (inet_pton(AF_INET6, text, bytes) != 1) {
    return key;
  }
  std::memcpy(&key.hi, bytes, 8);
  std::memcpy(&key.lo, bytes + 8, 8);
  return key;
}

size_t Admission::IpKeyHash::operator()(const IpKey& k) const noexcept {
  uint64_t h = k.hi * 0x9e3779b97f4a7c15ULL ^ k.lo;  // then the murmur3 finaliser
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return static_cast<size_t>(h);
}

Admission::Shard& Admission::shard(const IpKey& key) {
  return shards_[(IpKeyHash{}(key) >> 7) % kShards];  // bits the table's bucket index uses less
}

bool Admission::takeToken(const AdmissionLimits& limits, int64_t now_us) {
  const double rate = limits.connect_rate;
  const double burst = limits.connect_burst != 0 ? limits.connect_burst : rate;
  std::lock_guard lock(rate_mu_);
  if (tokens_ < 0) {
    tokens_ = burst;
    last_us_ = now_us;
  }
  if (now_us > last_us_) {
    tokens_ = std::min(burst, tokens_ + rate * static_cast<double>(now_us - last_us_) / 1e6);
    last_us_ = now_us;
  }
  tokens_ = std::min(tokens_, burst);  // a reload may have lowered the burst
  if (tokens_ < 1) {
    return false;
  }
  tokens_ -= 1;
  return true;
}

AdmissionRefusal Admission::admit(const AdmissionLimits& limits, std::string_view ip,
                                  int64_t now_us) {
  auto refuse = [this](AdmissionRefusal r) {
    refused_[static_cast<size_t>(r)].fetch_add(1, std::memory_order_relaxed);
    return r;
  };
  // Cheapest checks first; each takes its slot and gives it back if a later one refuses.
  if (limits.max_connections != 0 &&
      connections_.fetch_add(1, std::memory_order_relaxed) >= limits.max_connections) {
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(AdmissionRefusal::kMaxConnections);
  }
  if (limits.max_connections == 0) {
    connections_.fetch_add(1, std::memory_order_relaxed);
  }
  if (limits.max_handshakes != 0 &&
      handshakes_.fetch_add(1, std::memory_order_relaxed) >= limits.max_handshakes) {
    handshakes_.fetch_sub(1, std::memory_order_relaxed);
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(AdmissionRefusal::kHandshakes);
  }
  if (limits.max_handshakes == 0) {
    handshakes_.fetch_add(1, std::memory_order_relaxed);
  }
  if (limits.connect_rate != 0 && !takeToken(limits, now_us)) {
    handshakes_.fetch_sub(1, std::memory_order_relaxed);
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(AdmissionRefusal::kRate);
  }
  // Per-IP counts are kept whether or not a cap is set, so a reload that sets one applies to
  // connections already open.
  const IpKey key = ipKey(ip);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  uint32_t& n = s.per_ip[key];
  if (limits.max_connections_per_ip != 0 && n >= limits.max_connections_per_ip) {
    if (n == 0) {
      s.per_ip.erase(key);
    }
    handshakes_.fetch_sub(1, std::memory_order_relaxed);
    connections_.fetch_sub(1, std::memory_order_relaxed);
    return refuse(AdmissionRefusal::kPerIp);
  }
  ++n;
  return AdmissionRefusal::kNone;
}

void Admission::handshakeDone() { handshakes_.fetch_sub(1, std::memory_order_relaxed); }

void Admission::connectionClosed(std::string_view ip) {
  connections_.fetch_sub(1, std::memory_order_relaxed);
  const IpKey key = ipKey(ip);
  Shard& s = shard(key);
  std::lock_guard lock(s.mu);
  auto it = s.per_ip.find(key);
  if (it != s.per_ip.end() && --it->second == 0) {
    s.per_ip.erase(it);
  }
}

void Admission::resetForTest() {
  connections_ = 0;
  handshakes_ = 0;
  {
    std::lock_guard lock(rate_mu_);
    tokens_ = -1;
    last_us_ = 0;
  }
  for (auto& s : shards_) {
    std::lock_guard lock(s.mu);
    s.per_ip.clear();
  }
  for (auto& r : refused_) {
    r = 0;
  }
}

}  // namespace imgate::core
