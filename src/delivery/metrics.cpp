#include "delivery/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

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

std::string LabelValue(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

// The senders /metrics names one by one; the rest are summed as sender="other".
constexpr size_t kMaxNamedSenders = 50;

}  // namespace

void Metrics::RenderQueue(const std::vector<store::QueueGroup>& groups, TimeMs now,
                          std::string* out) {
  // The deepest senders by name, the others together.
  std::map<std::string, int64_t> depth;
  for (const store::QueueGroup& g : groups) depth[g.sender] += g.queued;
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& [sender, n] : depth) ranked.emplace_back(-n, sender);
  std::sort(ranked.begin(), ranked.end());
  std::set<std::string> named;
  for (size_t i = 0; i < ranked.size() && i < kMaxNamedSenders; ++i) named.insert(ranked[i].second);
  std::map<std::pair<int, std::string>, store::QueueGroup> merged;
  for (const store::QueueGroup& g : groups) {
    const std::string label = named.count(g.sender) > 0 ? g.sender : "other";
    store::QueueGroup& m = merged[{static_cast<int>(g.priority), label}];
    m.priority = g.priority;
    m.sender = label;
    m.queued += g.queued;
    m.held_by_order += g.held_by_order;
    m.held_by_pacing += g.held_by_pacing;
    m.held_by_schedule += g.held_by_schedule;
    m.held_by_window += g.held_by_window;
    if (g.oldest_due_at && (!m.oldest_due_at || *g.oldest_due_at < *m.oldest_due_at)) {
      m.oldest_due_at = g.oldest_due_at;
    }
  }
  *out +=
      "# HELP sendq_queue_depth Queued messages, by priority and sender (the 50 deepest senders "
      "by name, the rest as other).\n"
      "# TYPE sendq_queue_depth gauge\n";
  for (const auto& [key, g] : merged) {
    *out += fmt::format("sendq_queue_depth{{priority=\"{}\",sender=\"{}\"}} {}\n",
                        PriorityName(g.priority), LabelValue(g.sender), g.queued);
  }
  *out +=
      "# HELP sendq_queue_held Queued messages that are not due, by why: order (an earlier "
      "message of the conversation is not final), pacing, schedule (send_at) or window.\n"
      "# TYPE sendq_queue_held gauge\n";
  for (const auto& [key, g] : merged) {
    const std::pair<const char*, int64_t> reasons[] = {{"order", g.held_by_order},
                                                       {"pacing", g.held_by_pacing},
                                                       {"schedule", g.held_by_schedule},
                                                       {"window", g.held_by_window}};
    for (const auto& [reason, n] : reasons) {
      *out += fmt::format("sendq_queue_held{{priority=\"{}\",sender=\"{}\",reason=\"{}\"}} {}\n",
                          PriorityName(g.priority), LabelValue(g.sender), reason, n);
    }
  }
  *out +=
      "# HELP sendq_queue_oldest_due_age_seconds How long the longest-due message has been due "
      "(0 if none is).\n"
      "# TYPE sendq_queue_oldest_due_age_seconds gauge\n";
  for (const auto& [key, g] : merged) {
    const double age =
        g.oldest_due_at ? std::max(0.0, static_cast<double>(now - *g.oldest_due_at) / 1000.0) : 0.0;
    *out +=
        fmt::format("sendq_queue_oldest_due_age_seconds{{priority=\"{}\",sender=\"{}\"}} {:.3f}\n",
                    PriorityName(g.priority), LabelValue(g.sender), age);
  }
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
                          MessageStatus::kFailed, MessageStatus::kCanceled, MessageStatus::kHeld}) {
    auto it = stats.by_status.find(s);
    append(fmt::format("sendq_messages{{status=\"{}\"}} {}\n", StatusName(s),
                       it == stats.by_status.end() ? 0 : it->second));
  }

  append(
      "# HELP sendq_attempts_total Upstream attempts since this process started, by outcome.\n"
      "# TYPE sendq_attempts_total counter\n");
  for (AttemptOutcome o :
       {AttemptOutcome::kSent, AttemptOutcome::kRetryable, AttemptOutcome::kPermanent,
        AttemptOutcome::kUnknown, AttemptOutcome::kUpstreamPaused, AttemptOutcome::kReconciled,
        AttemptOutcome::kLookup}) {
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

  RenderQueue(stats.queue, now, &out);

  append(
      "# HELP sendq_upstream_paused 1 while sending to AgentPhone is paused (auth, balance or "
      "outage).\n"
      "# TYPE sendq_upstream_paused gauge\n");
  append(fmt::format("sendq_upstream_paused {}\n", upstream_paused ? 1 : 0));
  return out;
}

}  // namespace sendq::delivery
