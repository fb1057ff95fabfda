#include "delivery/metrics.h"

#include <fmt/format.h>

namespace sendq::delivery {

void Metrics::CountAttempt(AttemptOutcome outcome) {
  attempts_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::ObserveUpstreamLatency(DurationMs ms) {
  size_t i = 0;
  while (i < kLatencyBucketsSeconds.size() && ms > kLatencyBucketsSeconds[i] * 1000) ++i;
  latency_buckets_[i].fetch_add(1, std::memory_order_relaxed);
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_ms_.fetch_add(ms, std::memory_order_relaxed);
}

std::string Metrics::Render(const store::Stats& stats, bool upstream_paused, TimeMs now) const {
  std::string out;
  auto append = [&out](std::string text) { out += text; };
  append(
      "# HELP sendq_enqueued_total Messages accepted since this process started.\n"
      "# TYPE sendq_enqueued_total counter\n");
  append(fmt::format("sendq_enqueued_total {}\n", enqueued_.load()));

  append(
      "# HELP sendq_messages Messages in the database, by status.\n"
      "# TYPE sendq_messages gauge\n");
  for (MessageStatus s : {MessageStatus::kQueued, MessageStatus::kSending, MessageStatus::kSent,
                          MessageStatus::kFailed, MessageStatus::kCanceled}) {
    auto it = stats.by_status.find(s);
    append(fmt::format("sendq_messages{{status=\"{}\"}} {}\n", StatusName(s),
                       it == stats.by_status.end() ? 0 : it->second));
  }

  append(
      "# HELP sendq_attempts_total Upstream attempts since this process started, by outcome.\n"
      "# TYPE sendq_attempts_total counter\n");
  for (AttemptOutcome o :
       {AttemptOutcome::kSent, AttemptOutcome::kRetryable, AttemptOutcome::kPermanent,
        AttemptOutcome::kUnknown, AttemptOutcome::kUpstreamPaused}) {
    append(fmt::format("sendq_attempts_total{{outcome=\"{}\"}} {}\n", OutcomeName(o),
                       attempts_[static_cast<size_t>(o)].load()));
  }

  append(
      "# HELP sendq_upstream_latency_seconds Time from sending a request to AgentPhone to its "
      "answer or failure.\n"
      "# TYPE sendq_upstream_latency_seconds histogram\n");
  int64_t cumulative = 0;
  for (size_t i = 0; i < kLatencyBucketsSeconds.size(); ++i) {
    cumulative += latency_buckets_[i].load();
    append(fmt::format("sendq_upstream_latency_seconds_bucket{{le=\"{}\"}} {}\n",
                       kLatencyBucketsSeconds[i], cumulative));
  }
  cumulative += latency_buckets_.back().load();
  append(fmt::format("sendq_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative));
  append(fmt::format("sendq_upstream_latency_seconds_sum {:.3f}\n",
                     static_cast<double>(latency_sum_ms_.load()) / 1000.0));
  append(fmt::format("sendq_upstream_latency_seconds_count {}\n", latency_count_.load()));

  append(
      "# HELP sendq_oldest_queued_age_seconds Age of the oldest queued message (0 if none).\n"
      "# TYPE sendq_oldest_queued_age_seconds gauge\n");
  double age = stats.oldest_queued_created_at
                   ? static_cast<double>(now - *stats.oldest_queued_created_at) / 1000.0
                   : 0.0;
  append(fmt::format("sendq_oldest_queued_age_seconds {:.3f}\n", age < 0 ? 0.0 : age));

  append(
      "# HELP sendq_upstream_paused 1 while sending to AgentPhone is paused (auth, balance or "
      "outage).\n"
      "# TYPE sendq_upstream_paused gauge\n");
  append(fmt::format("sendq_upstream_paused {}\n", upstream_paused ? 1 : 0));
  return out;
}

}  // namespace sendq::delivery
