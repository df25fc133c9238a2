// SPDX-License-Identifier: Apache-2.0
#include "common/stats.h"

#include "common/log.h"
#include "net/admission.h"

namespace imgate::core {

void Histogram::observeUs(uint64_t us) {
  size_t i = 0;
  while (i < kBoundsUs.size() && us > kBoundsUs[i]) {
    ++i;
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(us, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" histogram\n");
  uint64_t cumulative = 0;
  char le[32];
  for (size_t i = 0; i < kBoundsUs.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    snprintf(le, sizeof(le), "%g", static_cast<double>(kBoundsUs[i]) / 1e6);
    out.append(name).append("_bucket{le=\"").append(le).append("\"} ");
    out.append(std::to_string(cumulative)).append("\n");
  }
  cumulative += buckets_[kBoundsUs.size()].load(std::memory_order_relaxed);
  out.append(name).append("_bucket{le=\"+Inf\"} ").append(std::to_string(cumulative)).append("\n");
  char sum[48];
  snprintf(sum, sizeof(sum), "%.6f", static_cast<double>(sum_us_.load()) / 1e6);
  out.append(name).append("_sum ").append(sum).append("\n");
  out.append(name).append("_count ").append(std::to_string(count_.load())).append("\n");
}

StatsRegistry& StatsRegistry::instance() {
  static StatsRegistry registry;
  return registry;
}

Counter& StatsRegistry::counter(std::string_view name, std::string_view instance) {
  std::lock_guard lock(mu_);
  auto& slot = named_[{std::string(name), std::string(instance)}];
  if (!slot) {
    slot = std::make_unique<Counter>();
  }
  return *slot;
}

namespace {

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            uint64_t value) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  out.append(name).append(" ").append(std::to_string(value)).append("\n");
}

}  // namespace

void StatsRegistry::render(std::string& out, uint64_t users, uint64_t rooms,
                           uint64_t log_errors) const {
  const auto& c = core_;
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  metric(out, "imgate_connections", "gauge", "Open TCP connections (all kinds).",
         v(c.connections_active));
  metric(out, "imgate_sessions", "gauge", "Open long-lived sessions (WebSocket, ...).",
         v(c.sessions_active));
  metric(out, "imgate_users", "gauge", "Users with at least one session.", users);
  metric(out, "imgate_rooms", "gauge", "Rooms with at least one member.", rooms);
  metric(out, "imgate_connections_accepted_total", "counter", "Accepted TCP connections.",
         v(c.connections_accepted));
  metric(out, "imgate_sessions_opened_total", "counter", "Sessions that passed the handshake.",
         v(c.sessions_opened));
  metric(out, "imgate_handshakes_rejected_total", "counter",
         "Handshakes refused by a stage (auth, limits).", v(c.handshakes_rejected));
  const Admission& admission = Admission::instance();
  metric(out, "imgate_handshakes_in_progress", "gauge",
         "Connections not yet past their handshake (limits.max_handshakes).",
         admission.handshakes());
  out.append("# HELP imgate_connections_refused_total Sockets reset at accept by admission "
             "control (config limits), by limit.\n");
  out.append("# TYPE imgate_connections_refused_total counter\n");
  for (auto r : {AdmissionRefusal::kMaxConnections, AdmissionRefusal::kPerIp,
                 AdmissionRefusal::kRate, AdmissionRefusal::kHandshakes}) {
    out.append("imgate_connections_refused_total{limit=\"").append(admissionRefusalName(r));
    out.append("\"} ").append(std::to_string(admission.refused(r))).append("\n");
  }
  metric(out, "imgate_messages_in_total", "counter", "Messages received from clients.",
         v(c.messages_in));
  metric(out, "imgate_messages_out_total", "counter", "Messages written to clients.",
         v(c.messages_out));
  metric(out, "imgate_bytes_in_total", "counter", "Bytes read from client sockets.", v(c.bytes_in));
  metric(out, "imgate_bytes_out_total", "counter", "Bytes written to client sockets.",
         v(c.bytes_out));
  metric(out, "imgate_http_requests_total", "counter", "HTTP requests handled.",
         v(c.http_requests));
  metric(out, "imgate_pushes_total", "counter", "Push operations accepted by the hub.",
         v(c.pushes));
  out.append("# HELP imgate_reloads_total Configuration reloads by result.\n");
  out.append("# TYPE imgate_reloads_total counter\n");
  out.append("imgate_reloads_total{result=\"ok\"} ").append(std::to_string(v(c.reloads_ok)));
  out.append("\nimgate_reloads_total{result=\"failed\"} ");
  out.append(std::to_string(v(c.reloads_failed))).append("\n");
  out.append("# HELP imgate_stage_verdicts_total Non-pass stage verdicts.\n");
  out.append("# TYPE imgate_stage_verdicts_total counter\n");
  out.append("imgate_stage_verdicts_total{verdict=\"drop\"} ").append(std::to_string(v(c.stage_dropped)));
  out.append("\nimgate_stage_verdicts_total{verdict=\"reject\"} ");
  out.append(std::to_string(v(c.stage_rejected)));
  out.append("\nimgate_stage_verdicts_total{verdict=\"pause\"} ").append(std::to_string(v(c.stage_paused)));
  out.append("\nimgate_stage_verdicts_total{verdict=\"pause_timeout\"} ");
  out.append(std::to_string(v(c.pause_timeouts))).append("\n");
  out.append("# HELP imgate_errors_total Errors by kind.\n# TYPE imgate_errors_total counter\n");
  out.append("imgate_errors_total{kind=\"bug\"} ").append(std::to_string(v(c.bugs)));
  out.append("\nimgate_errors_total{kind=\"tls_handshake\"} ");
  out.append(std::to_string(v(c.tls_handshake_errors)));
  out.append("\nimgate_errors_total{kind=\"outbound_overflow\"} ");
  out.append(std::to_string(v(c.outbound_overflows)));
  out.append("\nimgate_errors_total{kind=\"log_warn_or_worse\"} ").append(std::to_string(log_errors));
  out.append("\n# HELP imgate_outbound_dropped_total Pushes dropped for slow consumers "
             "(sessions.slow_consumer: drop_new).\n# TYPE imgate_outbound_dropped_total counter\n");
  out.append("imgate_outbound_dropped_total ").append(std::to_string(v(c.outbound_dropped)));
  out.append("\n");
  out.append("# HELP imgate_session_closes_total Session closes by reason.\n");
  out.append("# TYPE imgate_session_closes_total counter\n");
  for (uint16_t i = 0; i <= static_cast<uint16_t>(Errc::kSlowConsumer); ++i) {
    const uint64_t n = closes_[i].load(std::memory_order_relaxed);
    out.append("imgate_session_closes_total{reason=\"").append(errcName(static_cast<Errc>(i)));
    out.append("\"} ").append(std::to_string(n)).append("\n");
  }
  {
    const DeliveryCounters& d = delivery_;
    auto header = [&](std::string_view name, std::string_view help) {
      out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
      out.append(name).append(" counter\n");
    };
    auto sample = [&](std::string_view name, std::string_view labels, uint64_t value) {
      out.append(name).append(labels).append(" ").append(std::to_string(value)).append("\n");
    };
    auto counter = [&](std::string_view name, std::string_view help, uint64_t value) {
      header(name, help);
      sample(name, "", value);
    };
    counter("imgate_delivery_acks_total", "Acks of sequenced messages received from clients.",
            v(d.acks));
    counter("imgate_delivery_retransmits_total",
            "Reliable messages sent again after the ack timeout.", v(d.retransmits));
    counter("imgate_delivery_ack_timeouts_total",
            "Sessions closed because a reliable message was never acked.", v(d.ack_timeouts));
    header("imgate_delivery_resumes_total",
           "Streams a reconnecting client asked to resume, by outcome.");
    sample("imgate_delivery_resumes_total", "{outcome=\"recovered\"}", v(d.resumes_recovered));
    sample("imgate_delivery_resumes_total", "{outcome=\"impossible\"}",
           v(d.resumes_impossible));
    counter("imgate_delivery_replayed_total",
            "Messages sent from history at session open (resumed or stored offline).",
            v(d.replayed));
    counter("imgate_delivery_offline_delivered_total",
            "Messages stored while their user was offline, delivered at the next connect.",
            v(d.offline_delivered));
    counter("imgate_delivery_duplicates_total",
            "Live copies not sent because a replay had already sent them.", v(d.duplicates));
    header("imgate_delivery_gaps_total",
           "Out-of-order arrivals: filled from history, or lost (history gone).");
    sample("imgate_delivery_gaps_total", "{result=\"filled\"}", v(d.gaps_filled));
    sample("imgate_delivery_gaps_total", "{result=\"lost\"}", v(d.gaps_lost));
    counter("imgate_delivery_read_marks_total",
            "Read positions relayed to a user's other devices.", v(d.read_marks));
  }
  push_latency_.render(out, "imgate_push_latency_seconds",
                       "Push accepted by the API to written to the client socket.");
  std::lock_guard lock(mu_);
  std::string last;
  for (const auto& [key, counter] : named_) {
    const std::string name = "imgate_" + key.first + "_total";
    if (name != last) {
      out.append("# TYPE ").append(name).append(" counter\n");
      last = name;
    }
    out.append(name).append("{instance=").append(jsonQuote(key.second)).append("} ");
    out.append(std::to_string(counter->value())).append("\n");
  }
}

}  // namespace imgate::core
