// ComputeBackoff: exponential backoff with full jitter, bounded by the policy.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <set>

#include "queue/retry_policy.h"

namespace sendq {
namespace {

// Just below 1, the largest value a uniform [0, 1) source yields.
const double kAlmostOne = std::nextafter(1.0, 0.0);

TEST_CASE("ComputeBackoff: bounds grow by doubling up to the cap") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  // Upper bound per retry: 1s, 2s, 4s, ... 256s, then 300s.
  const DurationMs expected_high[] = {1000,   2000,    4000,    8000,    16'000,  32'000,
                                      64'000, 128'000, 256'000, 300'000, 300'000, 300'000};
  for (int retry = 1; retry <= 12; ++retry) {
    CAPTURE(retry);
    CHECK(ComputeBackoff(policy, retry, 0.0) == 1000);
    CHECK(ComputeBackoff(policy, retry, kAlmostOne) == expected_high[retry - 1]);
  }
}

TEST_CASE("ComputeBackoff: every value lies in [base, min(max, base * 2^(retry-1))]") {
  const BackoffPolicy policy{.base = 250, .max = 60'000};
  for (int retry = 1; retry <= 40; ++retry) {
    DurationMs high = 250;
    for (int i = 1; i < retry && high < 60'000; ++i) high = std::min<DurationMs>(high * 2, 60'000);
    for (double u : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999, kAlmostOne}) {
      CAPTURE(retry);
      CAPTURE(u);
      DurationMs d = ComputeBackoff(policy, retry, u);
      CHECK(d >= 250);
      CHECK(d <= high);
    }
  }
}

TEST_CASE("ComputeBackoff: the upper bound does not shrink as retries grow") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  DurationMs previous = 0;
  for (int retry = 1; retry <= 100; ++retry) {
    DurationMs d = ComputeBackoff(policy, retry, kAlmostOne);
    CHECK(d >= previous);
    previous = d;
  }
  CHECK(previous == 300'000);
}

TEST_CASE("ComputeBackoff: huge retry counts do not overflow") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  for (int retry : {63, 64, 65, 100, 1000, 1'000'000, std::numeric_limits<int>::max()}) {
    CAPTURE(retry);
    CHECK(ComputeBackoff(policy, retry, 0.0) == 1000);
    CHECK(ComputeBackoff(policy, retry, kAlmostOne) == 300'000);
  }
  // Even with a cap near the top of the range.
  const BackoffPolicy wide{.base = 1000, .max = std::numeric_limits<DurationMs>::max()};
  DurationMs d = ComputeBackoff(wide, 1000, kAlmostOne);
  CHECK(d >= 1000);
  CHECK(d <= std::numeric_limits<DurationMs>::max());
}

TEST_CASE("ComputeBackoff: a retry below 1 counts as the first") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  for (int retry : {0, -1, std::numeric_limits<int>::min()}) {
    CAPTURE(retry);
    CHECK(ComputeBackoff(policy, retry, 0.0) == 1000);
    CHECK(ComputeBackoff(policy, retry, kAlmostOne) == 1000);
  }
}

TEST_CASE("ComputeBackoff: out-of-range randomness is clamped to [0, 1)") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  CHECK(ComputeBackoff(policy, 3, -0.5) == 1000);
  CHECK(ComputeBackoff(policy, 3, 1.0) == 4000);
  CHECK(ComputeBackoff(policy, 3, 7.0) == 4000);
  CHECK(ComputeBackoff(policy, 3, std::nan("")) == 1000);
  CHECK(ComputeBackoff(policy, 3, std::numeric_limits<double>::infinity()) == 4000);
  CHECK(ComputeBackoff(policy, 3, -std::numeric_limits<double>::infinity()) == 1000);
}

TEST_CASE("ComputeBackoff: jitter spans the whole range") {
  const BackoffPolicy policy{.base = 1000, .max = 300'000};
  const int retry = 4;  // [1000, 8000]
  CHECK(ComputeBackoff(policy, retry, 0.5) == 4500);
  // One u in the middle of each of 7001 equal slices of [0, 1) hits every millisecond of the
  // range exactly once.
  std::set<DurationMs> seen;
  const int steps = 7001;
  for (int i = 0; i < steps; ++i) {
    seen.insert(ComputeBackoff(policy, retry, (i + 0.5) / steps));
  }
  CHECK(seen.size() == 7001);
  CHECK(*seen.begin() == 1000);
  CHECK(*seen.rbegin() == 8000);
}

TEST_CASE("ComputeBackoff: odd policies") {
  SUBCASE("base equal to max is a fixed delay") {
    const BackoffPolicy policy{.base = 5000, .max = 5000};
    for (int retry = 1; retry <= 10; ++retry) {
      CHECK(ComputeBackoff(policy, retry, 0.0) == 5000);
      CHECK(ComputeBackoff(policy, retry, kAlmostOne) == 5000);
    }
  }
  SUBCASE("base above max is cut to max") {
    const BackoffPolicy policy{.base = 10'000, .max = 3000};
    CHECK(ComputeBackoff(policy, 1, 0.0) == 3000);
    CHECK(ComputeBackoff(policy, 5, kAlmostOne) == 3000);
  }
  SUBCASE("zero base retries at once") {
    const BackoffPolicy policy{.base = 0, .max = 3000};
    CHECK(ComputeBackoff(policy, 1000, kAlmostOne) == 0);
  }
}

}  // namespace
}  // namespace sendq
