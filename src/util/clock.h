// Clock: the one way sendq reads the time and waits for it, so that tests can drive time.
//
// Time is milliseconds since the Unix epoch (wall clock), which is also what the database
// stores. Waiting goes through WaitUntil on a condition variable, so a FakeClock can wake
// waiters when a test advances it.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "util/thread_annotations.h"

namespace sendq {

using TimeMs = int64_t;      // milliseconds since the Unix epoch
using DurationMs = int64_t;  // milliseconds

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs NowMs() const = 0;

  // Blocks on `cv` (whose mutex `lock` holds) until `pred()` is true or the clock reaches
  // `deadline`. Returns pred(). Spurious wake-ups are handled here.
  // REQUIRES: lock is held (MutexLock::native()): `pred` runs with it, which the analysis
  // cannot see through the standard lock.
  template <typename Pred>
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, TimeMs deadline,
                 Pred pred) NO_THREAD_SAFETY_ANALYSIS {
    while (!pred()) {
      TimeMs now = NowMs();
      if (now >= deadline) return pred();
      WaitFor(cv, lock, deadline - now);
    }
    return true;
  }

 protected:
  // One bounded wait; may return early.
  virtual void WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                       DurationMs ms) = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs NowMs() const override;
  static SystemClock* Default();

 protected:
  void WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
               DurationMs ms) override;
};

// A clock that moves only when told. Waiters re-check at least every few real milliseconds,
// so a test that calls Advance() sees its waiters react without any sleeping in the test.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimeMs start = 1'700'000'000'000) : now_(start) {}
  TimeMs NowMs() const override;
  void Advance(DurationMs ms);
  void Set(TimeMs t);

 protected:
  void WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
               DurationMs ms) override;

 private:
  mutable Mutex mu_;
  TimeMs now_ GUARDED_BY(mu_);
};

}  // namespace sendq
