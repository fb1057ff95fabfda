#include <doctest/doctest.h>

#include <string>

#include "store_fixture.h"

namespace sendq {
namespace {

using test::StoreFixture;

// Redacts in steps of `limit`, each going on after the last (as one pass of Maintenance does);
// returns how many messages were redacted.
int64_t RedactInSteps(StoreFixture& f, TimeMs cutoff, int limit) {
  const store::RecipientRedactor recipient = [](const std::string&) {
    return std::string("redacted:00");
  };
  int64_t redacted = 0;
  std::string after;
  for (int steps = 0; steps < 100; ++steps) {
    auto step = f.store().RedactFinalBefore(cutoff, limit, f.clock().NowMs(), recipient, after);
    REQUIRE(step.ok());
    CHECK(step->looked_at <= limit);
    redacted += step->messages;
    after = step->last_id;
    if (!step->more) return redacted;
  }
  FAIL("the steps did not come to an end");
  return redacted;
}

TEST_CASE("redaction: a message not final yet holds back the mark, not the redaction after it") {
  StoreFixture f;
  const Message waiting = f.Enqueue();  // stays queued (a scheduled message, say)
  for (int i = 0; i < 12; ++i) {
    const Message m = f.Enqueue();
    REQUIRE(f.store().Cancel("alice", m.id, f.clock().NowMs()).ok());
  }
  f.clock().Advance(60'000);
  const TimeMs cutoff = f.clock().NowMs();
  // All 12 final ones, in steps of 5, although the first message holds the mark.
  CHECK(RedactInSteps(f, cutoff, 5) == 12);
  // A later pass starts from the mark again: nothing new until the waiting one is final.
  CHECK(RedactInSteps(f, cutoff, 5) == 0);
  REQUIRE(f.store().Cancel("alice", waiting.id, f.clock().NowMs()).ok());
  CHECK(RedactInSteps(f, cutoff, 5) == 1);
  CHECK(RedactInSteps(f, cutoff, 5) == 0);
}

TEST_CASE("maintenance steps tell what they looked at and where to go on") {
  StoreFixture f;
  const Message m = f.Enqueue();
  REQUIRE(f.store().Cancel("alice", m.id, f.clock().NowMs()).ok());
  f.clock().Advance(60'000);
  auto step = f.store().RedactFinalBefore(
      f.clock().NowMs(), 10, f.clock().NowMs(), [](const std::string&) { return std::string("x"); },
      "");
  REQUIRE(step.ok());
  CHECK(step->messages == 1);
  CHECK(step->looked_at == 1);
  CHECK(step->last_id == m.id);
  auto deleted = f.store().DeleteFinalBefore(f.clock().NowMs(), 10);
  REQUIRE(deleted.ok());
  CHECK(deleted->messages == 1);
  CHECK(deleted->looked_at == 1);
}

TEST_CASE("redaction: a redacted message cannot be retried, by id or in bulk") {
  StoreFixture f;
  const Message m = f.Enqueue();
  REQUIRE(f.store().Cancel("alice", m.id, f.clock().NowMs()).ok());
  f.clock().Advance(60'000);
  REQUIRE(RedactInSteps(f, f.clock().NowMs(), 10) == 1);
  store::AdminFilter canceled;
  canceled.statuses = {MessageStatus::kCanceled};
  auto bulk = f.store().Bulk(store::BulkAction::kRetry, canceled, /*dry_run=*/false,
                             f.clock().NowMs(), f.clock().NowMs() + 3'600'000, 50, 0);
  REQUIRE(bulk.ok());
  CHECK(bulk->matched == 1);
  CHECK(bulk->changed == 0);
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kCanceled);
}

}  // namespace
}  // namespace sendq
