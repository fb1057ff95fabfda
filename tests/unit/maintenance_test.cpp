#include "delivery/maintenance.h"

#include <doctest/doctest.h>

namespace sendq::delivery {
namespace {

// A budget of 4 ms per batch, between 10 and 500 messages.
BatchSizer Sizer() { return BatchSizer(/*min_batch=*/10, /*max_batch=*/500, /*budget_us=*/4000); }

TEST_CASE("maintenance batches: a batch that held the writer too long makes the next smaller") {
  BatchSizer sizer = Sizer();
  const int first = sizer.size();
  CHECK(first >= 10);
  CHECK(first <= 500);
  sizer.Record(first, 16'000);  // four times the budget
  CHECK(sizer.size() < first);
  CHECK(sizer.size() >= first / 2);  // at most halved at a time
  for (int i = 0; i < 20; ++i) sizer.Record(sizer.size(), 50'000);
  CHECK(sizer.size() == 10);  // never below the least
}

TEST_CASE("maintenance batches: full batches well within the budget grow, up to the most") {
  BatchSizer sizer = Sizer();
  const int first = sizer.size();
  sizer.Record(first, 1'000);  // a quarter of the budget
  CHECK(sizer.size() > first);
  CHECK(sizer.size() <= first * 2);  // at most doubled at a time
  for (int i = 0; i < 20; ++i) sizer.Record(sizer.size(), 100);
  CHECK(sizer.size() == 500);
}

TEST_CASE("maintenance batches: a batch that found less than asked tells nothing about the size") {
  BatchSizer sizer = Sizer();
  const int first = sizer.size();
  sizer.Record(first / 4, 100);  // the work ran out: quick, but not because the batch was small
  CHECK(sizer.size() == first);
  sizer.Record(first / 4, 40'000);  // slow even so: smaller
  CHECK(sizer.size() < first);
}

TEST_CASE("maintenance batches: the pause after a batch is three times what it took, at least") {
  CHECK(PauseAfterBatch(/*elapsed_us=*/2'000, /*min_pause=*/10) == 10);
  CHECK(PauseAfterBatch(/*elapsed_us=*/8'000, /*min_pause=*/10) == 24);
  CHECK(PauseAfterBatch(/*elapsed_us=*/0, /*min_pause=*/10) == 10);
}

}  // namespace
}  // namespace sendq::delivery
