// Counters and histograms for /metrics, and their Prometheus text rendering.
//
// Thread-safety: all methods may be called from any thread (atomics, no locks).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "queue/message.h"
#include "store/store.h"

namespace sendq::delivery {

// A label value in the exposition format: backslash, quote and newline escaped.
std::string LabelValue(const std::string& s);

class Metrics {
 public:
  void CountEnqueued(int64_t n = 1) { enqueued_.fetch_add(n, std::memory_order_relaxed); }
  void CountAttempt(AttemptOutcome outcome);
  void ObserveUpstreamLatency(DurationMs ms);

  // Everything in the Prometheus text exposition format. `stats` comes from the store.
  std::string Render(const store::Stats& stats, bool upstream_paused, TimeMs now) const;
  // The per-priority and per-sender queue gauges, appended to `out`.
  static void RenderQueue(const std::vector<store::QueueGroup>& groups, TimeMs now,
                          std::string* out);

 private:
  static constexpr std::array<double, 12> kLatencyBucketsSeconds = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  std::atomic<int64_t> enqueued_{0};
  std::array<std::atomic<int64_t>, 7> attempts_{};  // by AttemptOutcome
  std::array<std::atomic<int64_t>, kLatencyBucketsSeconds.size() + 1> latency_buckets_{};
  std::atomic<int64_t> latency_count_{0};
  std::atomic<int64_t> latency_sum_ms_{0};
};

}  // namespace sendq::delivery
