#include "queue/upstream_circuit.h"

#include <algorithm>
#include <utility>

namespace sendq {
namespace {

// True for the answers that show the upstream takes requests: a 2xx, or a 4xx about the
// message itself.
bool ShowsUpstreamWorks(OutcomeClass outcome) {
  return outcome == OutcomeClass::kSent || outcome == OutcomeClass::kPermanent;
}

}  // namespace

UpstreamCircuit::UpstreamCircuit(const Clock* clock, Options options)
    : clock_(clock), options_(options) {}

bool UpstreamCircuit::TryAcquire(bool* is_probe) {
  MutexLock guard(&mu_);
  *is_probe = false;
  if (!open_) return true;
  if (probe_in_flight_ || clock_->NowMs() < next_probe_at_) return false;
  probe_in_flight_ = true;
  *is_probe = true;
  return true;
}

bool UpstreamCircuit::OnResult(OutcomeClass outcome, bool was_probe, const std::string& detail) {
  MutexLock guard(&mu_);
  const TimeMs now = clock_->NowMs();

  if (was_probe) {
    probe_in_flight_ = false;
    if (ShowsUpstreamWorks(outcome)) {
      open_ = false;
      consecutive_failures_ = 0;
      probe_interval_ = 0;
      reason_.clear();
      return true;
    }
    // The probe failed: wait twice as long before the next one. A probe is only handed out
    // while open, so the circuit is open here; OpenLocked covers the impossible case cheaply.
    if (!open_) {
      OpenLocked(detail, now);
      return false;
    }
    probe_interval_ =
        probe_interval_ > options_.probe_max / 2 ? options_.probe_max : probe_interval_ * 2;
    next_probe_at_ = now + probe_interval_;
    reason_ = detail.empty() ? "upstream unavailable" : detail;
    return false;
  }

  switch (outcome) {
    case OutcomeClass::kSent:
    case OutcomeClass::kPermanent:
      // A definite answer about the message. It is charged even if the circuit opened while
      // it was in flight, but only a probe closes the circuit: a send that left before the
      // circuit opened says little about the upstream now.
      consecutive_failures_ = 0;
      return true;

    case OutcomeClass::kRetryable:
    case OutcomeClass::kUnknown:
      // A send that was in flight when another result opened the circuit failed because of
      // the same outage; the message is not charged and the count is not advanced.
      if (open_) return false;
      if (++consecutive_failures_ >= std::max(1, options_.trip_after)) OpenLocked(detail, now);
      return true;

    case OutcomeClass::kUpstreamPaused:
    case OutcomeClass::kUnreachable:
      // The account or the network, not the message.
      OpenLocked(detail, now);
      return false;
  }
  return false;
}

void UpstreamCircuit::Release(bool was_probe) {
  MutexLock guard(&mu_);
  // The probe time stays as it was: the next send that is due may probe at once.
  if (was_probe) probe_in_flight_ = false;
}

bool UpstreamCircuit::paused() const {
  MutexLock guard(&mu_);
  return open_;
}

std::string UpstreamCircuit::pause_reason() const {
  MutexLock guard(&mu_);
  return open_ ? reason_ : std::string();
}

TimeMs UpstreamCircuit::next_probe_at() const {
  MutexLock guard(&mu_);
  return next_probe_at_;
}

void UpstreamCircuit::OpenLocked(std::string reason, TimeMs now) {
  // The latest failure is the most useful explanation, so the reason is always updated.
  reason_ = reason.empty() ? "upstream unavailable" : std::move(reason);
  if (open_) return;  // already open: keep the probe schedule, or an outage would reset it
  open_ = true;
  consecutive_failures_ = 0;
  probe_interval_ = std::min(options_.probe_base, options_.probe_max);
  next_probe_at_ = now + probe_interval_;
}

}  // namespace sendq
