#include "api/long_polls.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>

#include "util/clock.h"

namespace sendq {
namespace {

TEST_CASE("long polls: a commit wakes only the waiters of the messages it changed") {
  api::LongPolls polls(SystemClock::Default(), 10);
  const TimeMs far = SystemClock::Default()->NowMs() + 3'600'000;
  std::atomic<int> woke_a{0}, woke_b{0};
  polls.Arm("sq_a", far, [&] { ++woke_a; });
  polls.Arm("sq_a", far, [&] { ++woke_a; });
  polls.Arm("sq_b", far, [&] { ++woke_b; });
  polls.Notify({"sq_a", "sq_other"});
  CHECK(woke_a == 2);
  CHECK(woke_b == 0);
  CHECK(polls.armed() == 1);
  polls.Notify({"sq_a"});  // one-shot: nothing left for sq_a
  CHECK(woke_a == 2);
}

TEST_CASE("long polls: a deadline fires its wake-up; a canceled one never fires") {
  api::LongPolls polls(SystemClock::Default(), 10);
  std::promise<void> fired;
  std::atomic<int> canceled_fired{0};
  const TimeMs now = SystemClock::Default()->NowMs();
  const uint64_t ticket = polls.Arm("sq_x", now + 10, [&] { ++canceled_fired; });
  polls.Cancel(ticket);
  polls.Arm("sq_y", now + 20, [&] { fired.set_value(); });
  fired.get_future().wait();  // the timer thread fired it
  CHECK(canceled_fired == 0);
  CHECK(polls.armed() == 0);
}

TEST_CASE("long polls: Close fires every wake-up, and later ones at once") {
  api::LongPolls polls(SystemClock::Default(), 10);
  const TimeMs far = SystemClock::Default()->NowMs() + 3'600'000;
  std::atomic<int> woke{0};
  polls.Arm("sq_a", far, [&] { ++woke; });
  polls.Arm("sq_b", far, [&] { ++woke; });
  polls.Close();
  CHECK(woke == 2);
  CHECK(polls.closed());
  polls.Arm("sq_c", far, [&] { ++woke; });
  CHECK(woke == 3);
}

TEST_CASE("long polls: each producer has at most max_per_producer open") {
  api::LongPolls polls(SystemClock::Default(), 2);
  CHECK(polls.Begin("a"));
  CHECK(polls.Begin("a"));
  CHECK_FALSE(polls.Begin("a"));
  CHECK(polls.Begin("b"));  // another producer is not affected
  polls.End("a");
  CHECK(polls.Begin("a"));
}

}  // namespace
}  // namespace sendq
