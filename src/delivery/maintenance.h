// Maintenance: retention and redaction in the background. Final messages older than --retain
// are deleted with their ledgers; those older than --redact-after lose their personal data
// (see Store::RedactFinalBefore). Each runs in small batches, one writer transaction each, with
// a pause between batches, so that enqueues and deliveries never wait behind a long one; freed
// pages go back to the file system a bounded number at a time.
//
// Thread-safety: Start() and Stop() from one thread; the rest from any.
#pragma once

#include <atomic>
#include <condition_variable>
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
  int batch = 200;              // messages per transaction
  DurationMs pause_between_batches = 20;
  int vacuum_pages = 2000;  // pages given back per pass, at most
};

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
  void Loop();

  store::Store* const store_;
  Clock* const clock_;
  const MaintenanceOptions options_;
  std::atomic<int64_t> deleted_{0};
  std::atomic<int64_t> redacted_{0};
  std::atomic<int64_t> passes_{0};
  // Redacted data may still be in the write-ahead log until it is emptied once.
  bool log_holds_redacted_ = false;  // Loop's thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sendq::delivery
