// Dispatcher: leases due messages and delivers them to AgentPhone with a pool of workers.
//
// One dispatcher thread claims work when a worker is free and work is due; it sleeps on a
// condition variable until the soonest of: the store telling of work added (an enqueue, a
// retry, a conversation's next message released), a worker finishing, the next retry or lease
// or validity deadline in the store, or the next probe of a paused upstream. It polls only a
// store that cannot tell of its changes. Workers each own an upstream client, write nothing before
// the claim has put the attempt row on disk, and record the result fenced by the claim's version.
//
// Thread-safety: WakeUp and Stop may be called from any thread. Start once, Stop once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "delivery/agentphone_client.h"
#include "delivery/lookup.h"
#include "delivery/metrics.h"
#include "queue/delivery_policy.h"
#include "queue/pacing.h"
#include "queue/pauses.h"
#include "queue/upstream_circuit.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/thread_annotations.h"

namespace sendq::delivery {

struct DispatcherOptions {
  int workers = 16;
  DeliveryPolicy policy;
  DurationMs lease = 60'000;
  // The longest a send may take. A message held for later is sent only while its lease has at
  // least this long left, so that the lease cannot run out while the send is in flight.
  DurationMs upstream_timeout = 30'000;
  // Token buckets per sender and for the account (--sender-rate, --sender-limits,
  // --upstream-rate). A 429 pauses its sender whatever the rates.
  Pacer::Options pacing;
  // How often to look for work when the store cannot tell of changes (Store::Subscribe gave
  // nullptr). A store that can wakes the dispatcher itself.
  DurationMs poll_interval = 1000;
  // How listed numbers without a country code are read when looking up unknown outcomes.
  std::string default_region = "US";
  // An admin's pauses (none when null): a paused sender's messages are not claimed.
  const Pauses* pauses = nullptr;
};

class Dispatcher;

// An idle worker held for a message being enqueued (Dispatcher::ReserveIdleWorker), so that
// the claim can share the enqueue's commit. It ends exactly once: HandOff gives the worker the
// claimed message (or, with none, frees it); destroyed without a hand-off, it frees the worker.
class WorkerReservation {
 public:
  WorkerReservation() = default;  // no worker was idle
  WorkerReservation(WorkerReservation&& other) noexcept;
  WorkerReservation& operator=(WorkerReservation&&) = delete;
  ~WorkerReservation();

  explicit operator bool() const { return dispatcher_ != nullptr; }
  // How to claim the new message. REQUIRES: a worker is held.
  const store::ClaimOptions& claim() const { return claim_; }
  // The claimed message goes to the worker; with none (the enqueue failed, was a replay, or
  // the message may not go yet), the worker is free again.
  void HandOff(std::optional<store::ClaimedMessage> claimed);

 private:
  friend class Dispatcher;
  WorkerReservation(Dispatcher* dispatcher, store::ClaimOptions claim)
      : dispatcher_(dispatcher), claim_(std::move(claim)) {}

  Dispatcher* dispatcher_ = nullptr;
  store::ClaimOptions claim_;
};

class Dispatcher {
 public:
  Dispatcher(store::Store* store, UpstreamCircuit* circuit, Metrics* metrics, Clock* clock,
             UpstreamClientFactory client_factory, DispatcherOptions options);
  ~Dispatcher();  // REQUIRES: Stop() returned 0, or Start() was never called.
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();
  // The admin's pauses changed: look for work afresh (a resume may have made much due).
  void OnPausesChanged();
  // New work may be due now (the store's subscription calls this when work was added).
  void WakeUp();
  // For an enqueue that can go straight to a worker: when a worker is idle (and the upstream
  // is taking sends), holds it; otherwise an empty reservation.
  WorkerReservation ReserveIdleWorker();
  // Stops claiming and starting sends; sends already in flight may finish and are recorded
  // until `deadline`. Returns how many were still in flight then (0 means all threads joined).
  int Stop(TimeMs deadline);

  // Jobs finished (sent, rescheduled or handed back) so far. For tests only.
  uint64_t TEST_Completions();

 private:
  struct Job {
    store::ClaimedMessage claim;
    bool is_probe = false;
  };

  // A sent message whose result is being recorded.
  struct Recording {
    Job job;
    store::AttemptResult result;
    DurationMs latency_ms = 0;
    std::future<Result<store::CompleteAndClaimResult>> outcome;
  };

  friend class WorkerReservation;
  // Ends a reservation (WorkerReservation::HandOff and its destructor).
  void HandOff(std::optional<store::ClaimedMessage> claimed);
  void DispatchLoop();
  void WorkerLoop(int index);
  // Sends `first`, then each message claimed along with a result, until none is due. The
  // worker's result commits run while it sends its next message.
  void ServeChain(UpstreamClient& client, Job first, std::mt19937_64& rng);
  // Sends one claimed message and decides what becomes of it; recording is the caller's. A
  // message whose last send's outcome is unknown is looked up instead (LookUp).
  Recording Attempt(UpstreamClient& client, Job job, std::mt19937_64& rng);
  Recording LookUp(UpstreamClient& client, Job job);
  // The record of `job`'s attempt as `decision` has it (what the answer adds is the caller's).
  static store::AttemptResult ResultOf(const Job& job, const AttemptDecision& decision,
                                       TimeMs finished, bool charged);
  // A result reached without asking AgentPhone (a reaction whose message failed, ...); queued,
  // it is due again after kParentWait.
  Recording WithoutSending(Job job, AttemptOutcome outcome, MessageStatus new_status,
                           std::string error);
  // Tells the circuit (and the pacer, for a 429) how an upstream request went. Returns whether
  // the circuit charges it.
  bool ObserveUpstream(const Job& job, const UpstreamResponse& response, TimeMs finished,
                       std::optional<TimeMs>* sender_paused_until);
  // Logs a recorded attempt. Returns when the message is due again if it went back to the
  // queue.
  std::optional<TimeMs> Finish(const Recording& done, const Result<bool>& recorded);
  // Counts a finished job and tells the dispatcher what it needs to know.
  void JobDone(std::optional<TimeMs> due_again);
  store::ClaimOptions ClaimOptionsAt(TimeMs now, int limit);
  // Whether a claim made along with a result at `now` should do the housekeeping (at most one
  // every kHousekeepingInterval).
  bool TakeHousekeepingTurn(TimeMs now);
  // The time from which claiming makes sense. REQUIRES: mu_ held.
  TimeMs EffectiveWakeAtLocked() const REQUIRES(mu_);
  // Everything is paused by an admin.
  bool PausedByAdmin() const;

  // Constant after construction.
  store::Store* const store_;
  UpstreamCircuit* const circuit_;
  Metrics* const metrics_;
  Clock* const clock_;
  const UpstreamClientFactory client_factory_;
  const DispatcherOptions options_;
  Pacer pacer_;        // thread-safe itself
  SendFinder finder_;  // thread-safe itself

  Mutex mu_;
  std::condition_variable dispatch_cv_;   // the dispatcher waits on it
  std::condition_variable work_cv_;       // workers wait on it
  std::condition_variable idle_cv_;       // Stop waits on it for in-flight sends
  std::deque<Job> jobs_ GUARDED_BY(mu_);  // claimed, not yet picked up
  int in_flight_ GUARDED_BY(mu_) = 0;     // jobs handed to workers, not done
  TimeMs next_wake_at_ GUARDED_BY(mu_) = 0;
  uint64_t wake_generation_ GUARDED_BY(mu_) = 0;  // bumped by WakeUp and reschedules
  uint64_t completions_ GUARDED_BY(mu_) = 0;      // bumped when a job is done
  bool stopping_ GUARDED_BY(mu_) = false;
  int running_threads_ GUARDED_BY(mu_) = 0;

  std::atomic<TimeMs> last_housekeeping_{0};  // when a claim last did the housekeeping

  // Set by Start, reset by Stop (by the thread that calls them): the store's notices of added
  // work, or nullptr when it cannot tell of changes.
  std::unique_ptr<store::Subscription> subscription_;
  bool store_polled_ GUARDED_BY(mu_) = false;  // the store cannot tell: look every poll_interval
  DurationMs idle_wait_ GUARDED_BY(mu_) = 0;   // the longest sleep with nothing due

  std::thread dispatcher_thread_;
  std::vector<std::thread> worker_threads_;
};

}  // namespace sendq::delivery
