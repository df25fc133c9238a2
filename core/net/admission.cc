// SPDX-License-Identifier: Apache-2.0
#include "net/admission.h"

#include <algorithm>
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

Admission::Shard& Admission::shard(std::string_view ip) {
  return shards_[std::hash<std::string_view>{}(ip) % kShards];
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
  Shard& s = shard(ip);
  std::lock_guard lock(s.mu);
  uint32_t& n = s.per_ip[std::string(ip)];
  if (limits.max_connections_per_ip != 0 && n >= limits.max_connections_per_ip) {
    if (n == 0) {
      s.per_ip.erase(std::string(ip));
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
  Shard& s = shard(ip);
  std::lock_guard lock(s.mu);
  auto it = s.per_ip.find(std::string(ip));
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
