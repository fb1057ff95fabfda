#include "util/clock.h"

#include <algorithm>

namespace sendq {

TimeMs SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

SystemClock* SystemClock::Default() {
  static SystemClock clock;
  return &clock;
}

void SystemClock::WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          DurationMs ms) {
  // steady_clock for the wait itself, so a wall-clock jump cannot stall a waiter.
  cv.wait_for(lock, std::chrono::milliseconds(ms));
}

TimeMs FakeClock::NowMs() const {
  MutexLock guard(&mu_);
  return now_;
}

void FakeClock::Advance(DurationMs ms) {
  MutexLock guard(&mu_);
  now_ += ms;
}

void FakeClock::Set(TimeMs t) {
  MutexLock guard(&mu_);
  now_ = t;
}

void FakeClock::WaitFor(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                        DurationMs ms) {
  cv.wait_for(lock, std::chrono::milliseconds(std::min<DurationMs>(ms, 2)));
}

}  // namespace sendq
