// LongPolls: GET requests that wait for their message to change (?wait=), without a thread
// each.
//
// A waiting request arms a one-shot wake-up for its message id. The store's commit hook calls
// Notify() with the ids that commit changed, so a commit wakes only the waiters of those
// messages; a timer thread fires the wake-ups whose deadline passed. A wake-up only hands the
// request back to be looked at again (the caller re-reads the message and answers or re-arms).
//
// Thread-safety: every method may be called from any thread. Wake-ups are called without the
// lock held, on the thread that fires them, and must be quick (they hand work to a pool).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "util/clock.h"
#include "util/thread_annotations.h"

namespace sendq::api {

// Arm() for this id wakes on a change to any message (a follower of the feed of changes).
inline constexpr char kAnyMessage[] = "*";

class LongPolls {
 public:
  LongPolls(Clock* clock, int max_per_producer);
  ~LongPolls();
  LongPolls(const LongPolls&) = delete;
  LongPolls& operator=(const LongPolls&) = delete;

  // Counts a new long poll of `producer`: false when it already has max_per_producer open.
  bool Begin(const std::string& producer);
  // The long poll Begin() counted has answered.
  void End(const std::string& producer);

  // Calls `wake` once: after a commit changes message `id`, at `deadline`, or at Close()
  // (at once if closed already). The ticket cancels it.
  uint64_t Arm(const std::string& id, TimeMs deadline, std::function<void()> wake);
  // Forgets an armed wake-up; nothing if it has fired.
  void Cancel(uint64_t ticket);
  // A commit changed these messages (and, with `other_change`, added others). Wake-ups armed
  // for kAnyMessage fire on any change.
  void Notify(const std::vector<std::string>& ids, bool other_change = false);
  // Fires every armed wake-up now; later ones fire at once.
  void Close();
  bool closed() const;

  // Armed wake-ups now. For tests and metrics.
  size_t armed() const;

 private:
  struct Waiter {
    std::string id;
    TimeMs deadline = 0;
    std::function<void()> wake;
  };

  // Removes the waiter `ticket` and returns its wake-up. REQUIRES: mu_ held, ticket armed.
  std::function<void()> TakeLocked(uint64_t ticket) REQUIRES(mu_);
  void TimerLoop();

  Clock* const clock_;
  const int max_per_producer_;
  mutable Mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, Waiter> waiters_ GUARDED_BY(mu_);
  std::unordered_multimap<std::string, uint64_t> by_id_ GUARDED_BY(mu_);
  std::multimap<TimeMs, uint64_t> by_deadline_ GUARDED_BY(mu_);
  std::unordered_map<std::string, int> open_per_producer_ GUARDED_BY(mu_);
  uint64_t next_ticket_ GUARDED_BY(mu_) = 1;
  bool closed_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace sendq::api
