// UpstreamCircuit: whether AgentPhone as a whole can take sends right now.
//
// Closed: send freely. An auth/permission/balance answer (401, 402, 403), an unreachable
// upstream, or `trip_after` retryable failures in a row with no success open the circuit.
// Open: no sends, except one probe at a time once the probe time comes; the probe interval
// starts at `probe_base` and doubles per failed probe up to `probe_max`. Any answer that shows
// the upstream works (2xx, or a permanent 4xx about the message) closes it.
//
// Failures while open, and failures that are the upstream's fault (paused, unreachable), are
// not charged to messages: an outage must not use up their attempts.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <mutex>
#include <string>

#include "queue/retry_policy.h"
#include "util/clock.h"
#include "util/thread_annotations.h"

namespace sendq {

class UpstreamCircuit {
 public:
  struct Options {
    DurationMs probe_base = 1000;
    DurationMs probe_max = 60'000;
    int trip_after = 5;
  };

  UpstreamCircuit(const Clock* clock, Options options);

  // May a send start now? When closed, always. When open, only if the probe time has come and
  // no probe is in flight; a true answer marks the probe as in flight and sets *is_probe.
  bool TryAcquire(bool* is_probe);
  // The result of a send that TryAcquire allowed. Returns whether it is charged to the message.
  // `detail` (e.g. "upstream returned 401: invalid key") becomes the pause reason if this
  // result opens the circuit.
  bool OnResult(OutcomeClass outcome, bool was_probe, const std::string& detail);
  // A send that was acquired but not made (nothing was due after all).
  void Release(bool was_probe);

  bool paused() const;
  // Why the circuit is open ("upstream returned 401", ...); empty when closed.
  std::string pause_reason() const;
  // When the next probe may go; meaningful only while paused.
  TimeMs next_probe_at() const;

 private:
  void OpenLocked(std::string reason, TimeMs now) REQUIRES(mu_);

  const Clock* const clock_;
  const Options options_;
  mutable Mutex mu_;
  bool open_ GUARDED_BY(mu_) = false;
  bool probe_in_flight_ GUARDED_BY(mu_) = false;
  int consecutive_failures_ GUARDED_BY(mu_) = 0;
  DurationMs probe_interval_ GUARDED_BY(mu_) = 0;
  TimeMs next_probe_at_ GUARDED_BY(mu_) = 0;
  std::string reason_ GUARDED_BY(mu_);
};

}  // namespace sendq
