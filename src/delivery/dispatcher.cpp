#include "delivery/dispatcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "util/log.h"
#include "util/process.h"

namespace sendq::delivery {
namespace {

// With nothing due, the dispatcher still wakes this often. Purely defensive: with a store that
// tells of its changes, every event that can make work due wakes it directly (a store that
// cannot tell is polled every DispatcherOptions::poll_interval instead).
constexpr DurationMs kMaxIdleWait = 3'600'000;
// How often claims made along with results (one per message sent) look for expired messages
// and leases; the dispatcher's own claims always do.
constexpr DurationMs kHousekeepingInterval = 100;
// After a store error, wait this long before claiming again.
constexpr DurationMs kStoreErrorBackoff = 1000;
// A reaction or reply claimed before its message was final waits this long.
constexpr DurationMs kParentWait = 1000;

}  // namespace

Dispatcher::Dispatcher(store::Store* store, UpstreamCircuit* circuit, Metrics* metrics,
                       Clock* clock, UpstreamClientFactory client_factory,
                       DispatcherOptions options)
    : store_(store),
      circuit_(circuit),
      metrics_(metrics),
      clock_(clock),
      client_factory_(std::move(client_factory)),
      options_(options),
      pacer_(options.pacing),
      finder_(store, options.policy.clock_skew, options.default_region) {}

Dispatcher::~Dispatcher() {
  if (dispatcher_thread_.joinable()) Stop(clock_->NowMs() + options_.lease);
}

void Dispatcher::Start() {
  // Work added by an enqueue, a manual retry, a cancel or the end of a conversation's earlier
  // message: the store says so after its commit.
  subscription_ = store_->Subscribe([this](const store::Changes& changes) {
    if (changes.work_added) WakeUp();
  });
  MutexLock guard(&mu_);
  store_polled_ = subscription_ == nullptr;
  idle_wait_ = store_polled_ ? options_.poll_interval : kMaxIdleWait;
  if (store_polled_) log::Info("store_polled", {{"interval_ms", options_.poll_interval}});
  running_threads_ = options_.workers + 1;
  dispatcher_thread_ = std::thread([this] {
    NameThisThread("sendq-dispatch");
    DispatchLoop();
  });
  for (int i = 0; i < options_.workers; ++i) {
    worker_threads_.emplace_back([this, i] {
      NameThisThread("sendq-worker");
      WorkerLoop(i);
    });
  }
}

void Dispatcher::WakeUp() {
  bool notify = false;
  {
    MutexLock guard(&mu_);
    const TimeMs before = EffectiveWakeAtLocked();
    ++wake_generation_;  // a claim pass in progress may have read the store before this
    next_wake_at_ = std::min(next_wake_at_, clock_->NowMs());
    // Only when the dispatcher would now act sooner: not when it already knows work is due,
    // waits for a paused upstream's probe, or has no free worker (a worker finishing wakes
    // it). Under load this saves a thread switch per enqueue.
    notify = EffectiveWakeAtLocked() < before && in_flight_ < options_.workers;
  }
  if (notify) dispatch_cv_.notify_one();
}

void Dispatcher::OnPausesChanged() {
  {
    MutexLock guard(&mu_);
    ++wake_generation_;
    next_wake_at_ = std::min(next_wake_at_, clock_->NowMs());
  }
  dispatch_cv_.notify_one();
}

WorkerReservation::WorkerReservation(WorkerReservation&& other) noexcept
    : dispatcher_(std::exchange(other.dispatcher_, nullptr)), claim_(other.claim_) {}

WorkerReservation::~WorkerReservation() {
  if (dispatcher_ != nullptr) HandOff(std::nullopt);
}

void WorkerReservation::HandOff(std::optional<store::ClaimedMessage> claimed) {
  Dispatcher* dispatcher = std::exchange(dispatcher_, nullptr);
  if (dispatcher != nullptr) dispatcher->HandOff(std::move(claimed));
}

WorkerReservation Dispatcher::ReserveIdleWorker() {
  MutexLock guard(&mu_);
  if (stopping_ || circuit_->paused() || PausedByAdmin() || in_flight_ >= options_.workers) {
    return {};
  }
  ++in_flight_;
  return WorkerReservation(this, ClaimOptionsAt(clock_->NowMs(), 1));
}

void Dispatcher::HandOff(std::optional<store::ClaimedMessage> claimed) {
  {
    MutexLock guard(&mu_);
    if (claimed) {
      jobs_.push_back(Job{std::move(*claimed)});
    } else {
      --in_flight_;
    }
  }
  if (claimed) {
    work_cv_.notify_one();
  } else {
    dispatch_cv_.notify_one();
  }
}

int Dispatcher::Stop(TimeMs deadline) {
  // Not under mu_: a notice being delivered holds the store's listeners and waits for mu_.
  subscription_.reset();
  MutexLock lock(&mu_);
  stopping_ = true;
  dispatch_cv_.notify_all();
  work_cv_.notify_all();
  clock_->WaitUntil(idle_cv_, lock.native(), deadline,
                    [&]() REQUIRES(mu_) { return running_threads_ == 0; });
  int remaining = in_flight_;
  bool all_done = running_threads_ == 0;
  lock.Unlock();
  if (all_done) {
    dispatcher_thread_.join();
    for (auto& t : worker_threads_) t.join();
    worker_threads_.clear();
    return 0;
  }
  return std::max(remaining, 1);
}

uint64_t Dispatcher::TEST_Completions() {
  MutexLock guard(&mu_);
  return completions_;
}

store::ClaimOptions Dispatcher::ClaimOptionsAt(TimeMs now, int limit) {
  store::ClaimOptions o;
  o.now = now;
  o.limit = limit;
  o.lease = options_.lease;
  o.max_attempts = options_.policy.max_attempts;
  o.lost_send_settles_after = options_.upstream_timeout + options_.policy.lookup_grace;
  o.pacer = &pacer_;
  o.pauses = options_.pauses;
  return o;
}

bool Dispatcher::PausedByAdmin() const {
  return options_.pauses != nullptr && options_.pauses->global();
}

bool Dispatcher::TakeHousekeepingTurn(TimeMs now) {
  TimeMs last = last_housekeeping_.load(std::memory_order_relaxed);
  return now - last >= kHousekeepingInterval &&
         last_housekeeping_.compare_exchange_strong(last, now);
}

TimeMs Dispatcher::EffectiveWakeAtLocked() const {
  // Everything paused: nothing to claim until a resume wakes it.
  if (PausedByAdmin()) return std::numeric_limits<TimeMs>::max();
  if (circuit_->paused()) return std::max(next_wake_at_, circuit_->next_probe_at());
  return next_wake_at_;
}

void Dispatcher::DispatchLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    const TimeMs now = clock_->NowMs();
    const int free_workers = options_.workers - in_flight_;
    const TimeMs wake_at = EffectiveWakeAtLocked();
    if (free_workers <= 0 || now < wake_at) {
      // Sleep until the wake time, or until anything that could move it happens (a WakeUp, a
      // worker finishing or rescheduling, the circuit changing); then decide afresh.
      const TimeMs until =
          free_workers <= 0 ? now + idle_wait_ : std::min(wake_at, now + idle_wait_);
      const uint64_t seen_completions = completions_;
      const int seen_in_flight = in_flight_;
      const bool woken = clock_->WaitUntil(dispatch_cv_, lock.native(), until, [&]() REQUIRES(mu_) {
        return stopping_ || completions_ != seen_completions || in_flight_ != seen_in_flight ||
               EffectiveWakeAtLocked() != wake_at;
      });
      // Polling a store that cannot tell of changes: look for work at every interval.
      if (!woken && store_polled_) next_wake_at_ = std::min(next_wake_at_, clock_->NowMs());
      continue;
    }
    int limit = free_workers;
    bool is_probe = false;
    if (circuit_->paused()) {
      if (!circuit_->TryAcquire(&is_probe)) {
        // The probe is in flight; wait for it (or any send) to finish.
        const uint64_t seen = completions_;
        clock_->WaitUntil(dispatch_cv_, lock.native(), now + idle_wait_,
                          [&]() REQUIRES(mu_) { return stopping_ || completions_ != seen; });
        continue;
      }
      limit = 1;
    }
    const uint64_t generation = wake_generation_;
    lock.Unlock();
    last_housekeeping_.store(now, std::memory_order_relaxed);  // this claim does it
    Result<std::vector<store::ClaimedMessage>> claimed = store_->Claim(ClaimOptionsAt(now, limit));
    std::optional<TimeMs> next_due;
    bool store_failed = !claimed.ok();
    if (!store_failed && static_cast<int>(claimed->size()) < limit) {
      Result<std::optional<TimeMs>> wake = store_->NextWakeAt();
      if (wake.ok()) {
        next_due = *wake;
      } else {
        store_failed = true;
        claimed = wake.status();
      }
    }
    lock.Lock();
    if (store_failed) {
      log::Error("claim_failed", {{"error", claimed.status().ToString()}});
      if (is_probe) circuit_->Release(true);
      next_wake_at_ = now + kStoreErrorBackoff;
      continue;
    }
    if (claimed->empty() && is_probe) circuit_->Release(true);
    for (store::ClaimedMessage& c : *claimed) {
      jobs_.push_back(Job{std::move(c), is_probe});
      ++in_flight_;
    }
    work_cv_.notify_all();
    if (static_cast<int>(claimed->size()) < limit) {
      // Everything due was taken. Sleep until the store's next deadline, unless a WakeUp or a
      // rescheduled retry came while we were looking (our read may have missed it).
      next_wake_at_ = wake_generation_ != generation
                          ? now
                          : next_due.value_or(std::numeric_limits<TimeMs>::max());
    }
  }
  if (--running_threads_ == 0) idle_cv_.notify_all();
}

void Dispatcher::WorkerLoop(int index) {
  std::unique_ptr<UpstreamClient> client = client_factory_();
  std::mt19937_64 rng(std::random_device{}() + static_cast<uint64_t>(index));
  MutexLock lock(&mu_);
  for (;;) {
    lock.Wait(work_cv_, [&]() REQUIRES(mu_) { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) break;  // stopping, nothing left
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.Unlock();
    ServeChain(*client, std::move(job), rng);
    lock.Lock();
    --in_flight_;
    dispatch_cv_.notify_one();
  }
  if (--running_threads_ == 0) idle_cv_.notify_all();
}

void Dispatcher::ServeChain(UpstreamClient& client, Job first, std::mt19937_64& rng) {
  std::deque<Job> held;  // claimed for this worker, not yet sent
  held.push_back(std::move(first));
  std::optional<Recording> recording;  // the last result, on its way to the disk

  // Waits for the recording's commit, takes the messages it claimed, and reports the job done.
  auto settle = [&] {
    Result<store::CompleteAndClaimResult> outcome = recording->outcome.get();
    Result<bool> recorded = false;
    if (outcome.ok()) {
      recorded = outcome->recorded;
      for (store::ClaimedMessage& c : outcome->claimed) held.push_back(Job{std::move(c)});
    } else {
      // The claim may be what failed: record the result alone.
      recorded = store_->Complete(recording->result);
    }
    JobDone(Finish(*recording, recorded));
    recording.reset();
  };

  while (!held.empty() || recording) {
    if (held.empty()) {
      settle();
      continue;
    }
    Job job = std::move(held.front());
    held.pop_front();
    int busy_workers = 0;
    bool stopping = false;
    {
      MutexLock guard(&mu_);
      stopping = stopping_;
      busy_workers = in_flight_;
    }
    // No new sends once stopping, none but the probe while the upstream is paused, and none
    // whose lease could run out in flight: put the claim back untouched.
    const bool lease_too_short =
        job.claim.message.lease_until.value_or(0) <= clock_->NowMs() + options_.upstream_timeout;
    const bool paused_by_admin = options_.pauses != nullptr &&
                                 options_.pauses->Covers(job.claim.message.sender.value_or(""));
    if (stopping || (!job.is_probe && circuit_->paused()) || paused_by_admin || lease_too_short) {
      Status st = store_->Unclaim(job.claim.message.id, job.claim.message.version,
                                  job.claim.attempt_number);
      if (!st.ok()) {
        log::Error("unclaim_failed",
                   {{"message_id", job.claim.message.id}, {"error", st.ToString()}});
      }
      if (job.is_probe) circuit_->Release(true);
      JobDone(!stopping && st.ok() ? std::optional<TimeMs>(job.claim.message.next_attempt_at)
                                   : std::nullopt);
      continue;
    }
    Recording next = Attempt(client, std::move(job), rng);
    // The previous result's commit ran while this message was being sent; it is usually
    // done by now, and may have claimed the next message.
    if (recording) settle();
    // While every worker is busy the backlog is deep: keep one message in hand beyond the one
    // being recorded, so that the next send need not wait for this commit. Otherwise take
    // only the next message, and leave the rest to idle workers.
    int claim = 0;
    if (!stopping && !circuit_->paused() && !PausedByAdmin()) {
      const int in_hand = static_cast<int>(held.size());
      claim = busy_workers >= options_.workers ? std::max(0, 2 - in_hand) : (in_hand == 0 ? 1 : 0);
    }
    const TimeMs now = clock_->NowMs();
    store::ClaimOptions claim_options = ClaimOptionsAt(now, claim);
    claim_options.housekeeping = TakeHousekeepingTurn(now);
    next.outcome = store_->CompleteAndClaimAsync(next.result, claim_options);
    recording = std::move(next);
  }
}

void Dispatcher::JobDone(std::optional<TimeMs> due_again) {
  MutexLock guard(&mu_);
  ++completions_;
  if (due_again) {
    next_wake_at_ = std::min(next_wake_at_, *due_again);
    ++wake_generation_;  // a claim pass in progress may have read the store before this
  }
  // The result may also have resumed a paused upstream, which leaves idle workers for the
  // dispatcher to feed; while every worker is busy there is nothing for it to do.
  if (due_again || in_flight_ < options_.workers) dispatch_cv_.notify_one();
}

bool Dispatcher::ObserveUpstream(const Job& job, const UpstreamResponse& response, TimeMs finished,
                                 std::optional<TimeMs>* sender_paused_until) {
  const OutcomeClass outcome = Classify(response);
  std::string detail = response.transport == UpstreamResponse::Transport::kResponded
                           ? ParseUpstreamErrorMessage(response.http_status, response.body)
                           : response.transport_error;
  const bool was_paused = circuit_->paused();
  bool charged = circuit_->OnResult(outcome, job.is_probe, detail);
  // A 429 is about this sender's pace: it waits, uncharged, while other senders go on.
  *sender_paused_until = SenderPauseAfter(options_.policy, response, finished);
  if (*sender_paused_until) {
    charged = false;
    pacer_.PauseSender(job.claim.message.sender.value_or(""), **sender_paused_until);
  }
  if (was_paused != circuit_->paused()) {
    if (circuit_->paused()) {
      log::Warn("upstream_paused", {{"reason", circuit_->pause_reason()}});
    } else {
      log::Info("upstream_resumed");
    }
  }
  return charged;
}

store::AttemptResult Dispatcher::ResultOf(const Job& job, const AttemptDecision& decision,
                                          TimeMs finished, bool charged) {
  store::AttemptResult r;
  r.message_id = job.claim.message.id;
  r.version = job.claim.message.version;
  r.attempt_number = job.claim.attempt_number;
  r.finished_at = finished;
  r.outcome = decision.outcome;
  if (!decision.error.empty()) r.error = decision.error;
  r.charged = charged;
  r.new_status = decision.new_status;
  r.next_attempt_at = decision.next_attempt_at;
  r.last_error = decision.last_error;
  r.expired = decision.expired;
  return r;
}

Dispatcher::Recording Dispatcher::WithoutSending(Job job, AttemptOutcome outcome,
                                                 MessageStatus new_status, std::string error) {
  if (job.is_probe) circuit_->Release(true);
  metrics_->CountAttempt(outcome);
  AttemptDecision decision;
  decision.outcome = outcome;
  decision.new_status = new_status;
  decision.error = error;
  decision.last_error = std::move(error);
  const TimeMs now = clock_->NowMs();
  decision.next_attempt_at = now + kParentWait;
  store::AttemptResult r = ResultOf(job, decision, now, /*charged=*/false);
  return Recording{std::move(job), std::move(r), 0, {}};
}

Dispatcher::Recording Dispatcher::Attempt(UpstreamClient& client, Job job, std::mt19937_64& rng) {
  const Message& m = job.claim.message;
  if (m.unknown_since) return LookUp(client, std::move(job));
  // A reaction or reply to one of the producer's messages goes with that message's msg_ id.
  std::optional<std::string> parent_provider_id;
  if (m.parent_id) {
    Result<Message> parent = store_->Get(m.producer, *m.parent_id);
    if (!parent.ok() || !IsTerminal(parent->status)) {
      // Its lane keeps it behind the parent, so this is rare (a store error, a race with a
      // retry by hand): look again shortly, uncharged.
      return WithoutSending(std::move(job), AttemptOutcome::kRetryable, MessageStatus::kQueued,
                            fmt::format("waiting for {} to be sent", *m.parent_id));
    }
    if (parent->status != MessageStatus::kSent || !parent->provider_message_id) {
      return WithoutSending(
          std::move(job), AttemptOutcome::kPermanent, MessageStatus::kFailed,
          fmt::format("{} ({}) was not sent: it is {}{}",
                      m.reaction_to ? "the message it reacts to" : "the message it replies to",
                      *m.parent_id, StatusName(parent->status),
                      parent->last_error ? ": " + *parent->last_error : ""));
    }
    parent_provider_id = parent->provider_message_id;
  }
  const TimeMs started = clock_->NowMs();
  UpstreamResponse response;
  if (m.reaction_to) {
    response =
        client.SendReaction(m.id, parent_provider_id.value_or(*m.reaction_to), m.request_json);
  } else if (parent_provider_id) {
    nlohmann::json request = nlohmann::json::parse(m.request_json);
    request["reply_to_message_id"] = *parent_provider_id;
    response = client.Send(m.id, request.dump());
  } else {
    response = client.Send(m.id, m.request_json);
  }
  const TimeMs finished = clock_->NowMs();
  metrics_->ObserveUpstreamLatency(finished - started);

  std::optional<TimeMs> sender_paused_until;
  const bool charged = ObserveUpstream(job, response, finished, &sender_paused_until);
  const double unit_random = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const std::string why_no_lookup =
      client.CanLookUp() ? WhyNoLookup(m.request_json) : "the upstream lists nothing";
  AttemptDecision decision = DecideAfterAttempt(options_.policy, m, Classify(response), charged,
                                                response, finished, unit_random, why_no_lookup);
  if (sender_paused_until && decision.new_status == MessageStatus::kQueued && !decision.look_up) {
    decision.next_attempt_at = *sender_paused_until;
  }
  metrics_->CountAttempt(decision.outcome);

  store::AttemptResult r = ResultOf(job, decision, finished, charged);
  if (response.transport == UpstreamResponse::Transport::kResponded) {
    r.http_status = response.http_status;
    r.response_body = TruncateStoredResponse(response.body);
  }
  if (decision.look_up) r.unknown_since = started;
  if (decision.new_status == MessageStatus::kSent) {
    r.response = ParseSendResponse(response.body);
    r.upstream_response = response.body;
    if (!r.response.readable) {
      r.last_error =
          "AgentPhone accepted the message but its answer could not be read; the raw "
          "answer is kept in upstream_response";
    }
  }
  return Recording{std::move(job), std::move(r), finished - started, {}};
}

Dispatcher::Recording Dispatcher::LookUp(UpstreamClient& client, Job job) {
  const Message& m = job.claim.message;
  const TimeMs started = clock_->NowMs();
  bool asked = false;
  LookupResult lookup;
  if (client.CanLookUp()) {
    lookup = finder_.Find(client, m, *m.unknown_since, &asked);
  } else {
    lookup.verdict = LookupResult::Verdict::kNoWay;
    lookup.detail = "the upstream lists nothing";
  }
  const TimeMs finished = clock_->NowMs();
  std::optional<TimeMs> sender_paused_until;
  if (asked) {
    metrics_->ObserveUpstreamLatency(finished - started);
    // Charged or not, a look-up never counts against the message's attempts.
    ObserveUpstream(job, lookup.response, finished, &sender_paused_until);
  } else if (job.is_probe) {
    circuit_->Release(true);
  }
  AttemptDecision decision = DecideAfterLookup(options_.policy, m, lookup, finished);
  if (sender_paused_until && decision.new_status == MessageStatus::kQueued) {
    decision.next_attempt_at = std::max(decision.next_attempt_at, *sender_paused_until);
  }
  metrics_->CountAttempt(decision.outcome);
  log::Info("lookup_finished", {{"message_id", m.id},
                                {"outcome", OutcomeName(decision.outcome)},
                                {"status", StatusName(decision.new_status)}});

  store::AttemptResult r = ResultOf(job, decision, finished, /*charged=*/false);
  if (asked && lookup.response.transport == UpstreamResponse::Transport::kResponded) {
    r.http_status = lookup.response.http_status;
  }
  // Kept while it is still to be looked up, and in case the store finds the listed send taken
  // by another message when it records this one (it then looks again); cleared once sent.
  if (decision.look_up || decision.new_status == MessageStatus::kSent) {
    r.unknown_since = m.unknown_since;
  }
  if (decision.new_status == MessageStatus::kSent) {
    r.response = lookup.found;
    r.upstream_response = lookup.listed;
  }
  return Recording{std::move(job), std::move(r), finished - started, {}};
}

std::optional<TimeMs> Dispatcher::Finish(const Recording& done, const Result<bool>& recorded) {
  const store::AttemptResult& r = done.result;
  nlohmann::json fields = {{"message_id", r.message_id},
                           {"attempt", r.attempt_number},
                           {"outcome", OutcomeName(r.outcome)},
                           {"status", StatusName(r.new_status)},
                           {"charged", r.charged},
                           {"latency_ms", done.latency_ms}};
  if (r.http_status) fields["http_status"] = *r.http_status;
  if (r.response.provider_message_id) {
    fields["provider_message_id"] = *r.response.provider_message_id;
  }
  if (done.job.is_probe) fields["probe"] = true;
  if (r.error) fields["error"] = *r.error;
  if (!recorded.ok()) {
    fields["error"] = recorded.status().ToString();
    log::Error("attempt_record_failed", std::move(fields));
  } else if (!*recorded) {
    log::Warn("attempt_result_fenced", std::move(fields));
  } else {
    log::Info("attempt_finished", std::move(fields));
  }
  if (recorded.ok() && *recorded && r.new_status == MessageStatus::kQueued) {
    return r.next_attempt_at;
  }
  // A final message that released the next of its conversation wakes the dispatcher through
  // the store's notice of work added.
  return std::nullopt;
}

}  // namespace sendq::delivery
