// Dispatcher: leases due messages and delivers them to AgentPhone with a pool of workers.
//
// One dispatcher thread claims work when a worker is free and work is due; it sleeps on a
// condition variable until the soonest of: an enqueue (WakeUp), a worker finishing, the next
// retry or lease or validity deadline in the store, or the next probe of a paused upstream.
// It never polls. Workers each own an upstream client, write nothing before the claim has put
// the attempt row on disk, and record the result fenced by the claim's version.
//
// Thread-safety: WakeUp and Stop may be called from any thread. Start once, Stop once.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "delivery/agentphone_client.h"
#include "delivery/metrics.h"
#include "queue/delivery_policy.h"
#include "queue/upstream_circuit.h"
#include "store/store.h"
#include "util/clock.h"

namespace sendq::delivery {

struct DispatcherOptions {
  int workers = 16;
  DeliveryPolicy policy;
  DurationMs lease = 60'000;
};

class Dispatcher {
 public:
  Dispatcher(store::Store* store, UpstreamCircuit* circuit, Metrics* metrics, Clock* clock,
             UpstreamClientFactory client_factory, DispatcherOptions options);
  ~Dispatcher();  // REQUIRES: Stop() returned 0, or Start() was never called.
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  void Start();
  // New work may be due now (an enqueue or a manual retry committed).
  void WakeUp();
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

  void DispatchLoop();
  void WorkerLoop(int index);
  // Sends one claimed message and records the result. Returns when the message is due again
  // if it went back to the queue.
  std::optional<TimeMs> Deliver(UpstreamClient& client, Job& job, std::mt19937_64& rng);
  // The time from which claiming makes sense. REQUIRES: mu_ held.
  TimeMs EffectiveWakeAtLocked() const;

  // Constant after construction.
  store::Store* const store_;
  UpstreamCircuit* const circuit_;
  Metrics* const metrics_;
  Clock* const clock_;
  const UpstreamClientFactory client_factory_;
  const DispatcherOptions options_;

  std::mutex mu_;
  std::condition_variable dispatch_cv_;  // the dispatcher waits on it
  std::condition_variable work_cv_;      // workers wait on it
  std::condition_variable idle_cv_;      // Stop waits on it for in-flight sends
  std::deque<Job> jobs_;                 // GUARDED_BY(mu_): claimed, not yet picked up
  int in_flight_ = 0;                    // GUARDED_BY(mu_): claimed and not yet recorded
  TimeMs next_wake_at_ = 0;              // GUARDED_BY(mu_)
  uint64_t wake_generation_ = 0;         // GUARDED_BY(mu_): bumped by WakeUp and reschedules
  uint64_t completions_ = 0;             // GUARDED_BY(mu_): bumped when a job is done
  bool stopping_ = false;                // GUARDED_BY(mu_)
  int running_threads_ = 0;              // GUARDED_BY(mu_)

  std::thread dispatcher_thread_;
  std::vector<std::thread> worker_threads_;
};

}  // namespace sendq::delivery
