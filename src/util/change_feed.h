// ChangeFeed: a generation counter that waiters can block on. The store bumps it after each
// commit; long-polling API requests wait on it instead of sleeping.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "util/clock.h"

namespace sendq {

class ChangeFeed {
 public:
  explicit ChangeFeed(Clock* clock) : clock_(clock) {}

  uint64_t Generation() const;
  void Publish();
  // Blocks until the generation differs from `seen`, the feed is closed, or `deadline`.
  // Returns the current generation.
  uint64_t WaitForChange(uint64_t seen, TimeMs deadline);
  // Wakes every waiter for good (shutdown).
  void Close();
  bool closed() const;

 private:
  Clock* const clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // GUARDED_BY(mu_)
  bool closed_ = false;      // GUARDED_BY(mu_)
};

}  // namespace sendq
