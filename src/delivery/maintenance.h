// Maintenance: retention and redaction in the background. Final messages older than --retain
// are deleted with their ledgers; those older than --redact-after lose their personal data
// (see Store::RedactFinalBefore). Each runs in small batches, one writer transaction each, with
// a pause between batches, so that enqueues and deliveries never wait behind a long one; freed
// pages go back to the file system a bounded number at a time.
//
// A batch's size follows how long the last one took (BatchSizer): about
// MaintenanceOptions::batch_budget_us each, and the pause after it is three times that
// (PauseAfterBatch). So maintenance has at most a quarter of the writer's time, and an enqueue
// that arrives during a batch waits about one budget longer than it would have.
//
// Thread-safety: Start() and Stop() from one thread; the rest from any.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "store/store.h"
#include "util/clock.h"

namespace sendq::delivery {

struct MaintenanceOptions {
  DurationMs retain = 0;        // 0: keep every message
  DurationMs redact_after = 0;  // 0: never redact
  std::string recipient_key;    // the key of RedactedRecipient
  int min_batch = 10;           // messages per transaction, at least
  int max_batch = 500;          // and at most
  int64_t batch_budget_us = 2'000;
  DurationMs min_pause = 10;  // between batches
  int vacuum_pages = 2000;    // pages given back per pass, at most
};

// The size of the next batch, from how long the last full one took: scaled towards the budget,
// by at most a factor of two at a time, within [min_batch, max_batch].
class BatchSizer {
 public:
  BatchSizer(int min_batch, int max_batch, int64_t budget_us);
  int size() const { return size_; }
  // A batch asked for size() messages and found `taken`; it took `elapsed_us`. One that found
  // fewer (the work ran out) only makes the size smaller, if it was slow even so.
  void Record(int64_t taken, int64_t elapsed_us);

 private:
  const int min_batch_;
  const int max_batch_;
  const int64_t budget_us_;
  int size_;
};

// How long to pause after a batch that took `elapsed_us`: three times that, at least min_pause.
DurationMs PauseAfterBatch(int64_t elapsed_us, DurationMs min_pause);

class Maintenance {
 public:
  Maintenance(store::Store* store, Clock* clock, MaintenanceOptions options);
  ~Maintenance();
  Maintenance(const Maintenance&) = delete;
  Maintenance& operator=(const Maintenance&) = delete;

  // Passes run every Interval() until Stop().
  void Start();
  void Stop();
  // One pass now, to the end of what is due (for tests).
  Status RunPass();

  // How often a pass runs: a quarter of the shorter period, from 100 ms to a minute.
  DurationMs Interval() const;
  // The /metrics lines: what was deleted and redacted since start, and the file's size.
  std::string RenderMetrics() const;

 private:
  using Step = std::function<Result<store::MaintenanceStep>(int limit)>;

  void Loop();
  // Batches of `step` until it has no more to do now (or Stop()); adds how many messages they
  // did to `*done` and `total`, also when one fails.
  Status RunBatches(BatchSizer& batches, std::atomic<int64_t>& total, int64_t* done,
                    const Step& step);
  bool Stopping();

  store::Store* const store_;
  Clock* const clock_;
  const MaintenanceOptions options_;
  std::atomic<int64_t> deleted_{0};
  std::atomic<int64_t> redacted_{0};
  std::atomic<int64_t> passes_{0};
  BatchSizer delete_batches_;  // Loop's thread only, as the two below
  BatchSizer redact_batches_;
  // Redacted data may still be in the write-ahead log until it is emptied once.
  bool log_holds_redacted_ = false;  // Loop's thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sendq::delivery
