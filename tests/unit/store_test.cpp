#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include "store/sqlite/migrations.h"
#include "store_fixture.h"

namespace sendq {
namespace {

using test::StoreFixture;

TEST_CASE("sqlite store: a new database gets the latest schema version") {
  StoreFixture f;
  auto version = store::SchemaVersion(f.path());
  REQUIRE(version.ok());
  CHECK(*version == store::EmbeddedMigrations().back().version);
}

TEST_CASE_TEMPLATE("store: an enqueued message survives closing and reopening the file", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  CHECK(m.status == MessageStatus::kQueued);
  f.Reopen();
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->id == m.id);
  CHECK(got->status == MessageStatus::kQueued);
  CHECK(got->request_json == m.request_json);
  CHECK(got->created_at == m.created_at);
  CHECK(got->attempts == 0);
}

TEST_CASE_TEMPLATE("store: another producer's message is not found", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue("alice");
  auto got = f.store().Get("bob", m.id);
  CHECK(got.status().IsNotFound());
  CHECK(f.store().ListAttempts("bob", m.id).status().IsNotFound());
  CHECK(f.store().Cancel("bob", m.id, f.clock().NowMs()).status().IsNotFound());
}

TEST_CASE("sqlite store: a second process cannot open the same database") {
  StoreFixture f;
  FakeClock clock;
  auto second = store::OpenSqliteStore(f.path(), {}, &clock);
  CHECK(second.status().IsUnavailable());
}

TEST_CASE("sqlite store: a database from a newer sendq is refused") {
  StoreFixture f;
  f.Close();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.path().c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  FakeClock clock;
  auto reopened = store::OpenSqliteStore(f.path(), {}, &clock);
  REQUIRE_FALSE(reopened.ok());
  CHECK(reopened.status().message().find("newer") != std::string::npos);
}

TEST_CASE_TEMPLATE("store: cancel works on queued messages only", Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto canceled = f.store().Cancel("alice", m.id, f.clock().NowMs());
  REQUIRE(canceled.ok());
  CHECK(canceled->status == MessageStatus::kCanceled);
  CHECK(canceled->version > m.version);
  auto again = f.store().Cancel("alice", m.id, f.clock().NowMs());
  CHECK(again.status().IsConflict());
  // A canceled message is never claimed.
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  CHECK(claimed->empty());
}

TEST_CASE_TEMPLATE("store: retry brings a failed message back with a fresh validity", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  CHECK(f.store().Retry("alice", m.id, f.clock().NowMs(), 0).status().IsConflict());
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  store::AttemptResult r;
  r.message_id = m.id;
  r.version = claimed->front().message.version;
  r.attempt_number = claimed->front().attempt_number;
  r.finished_at = f.clock().NowMs();
  r.outcome = AttemptOutcome::kPermanent;
  r.http_status = 422;
  r.charged = true;
  r.new_status = MessageStatus::kFailed;
  r.last_error = "rejected";
  REQUIRE(f.store().Complete(r).ok());
  f.clock().Advance(1000);
  const TimeMs new_expiry = f.clock().NowMs() + 86'400'000;
  auto retried = f.store().Retry("alice", m.id, f.clock().NowMs(), new_expiry);
  REQUIRE(retried.ok());
  CHECK(retried->status == MessageStatus::kQueued);
  CHECK(retried->expires_at == new_expiry);
  CHECK(retried->next_attempt_at == f.clock().NowMs());
  CHECK(retried->attempts == 0);
  CHECK_FALSE(retried->last_error.has_value());
}

TEST_CASE_TEMPLATE("store: list pages newest first with filters and a cursor", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(
        f.store()
            .Enqueue(f.NewMessage("alice", std::nullopt, "+1415555000" + std::to_string(i)))
            ->message.id);
    f.clock().Advance(10);
  }
  f.Enqueue("bob");
  ListFilter filter;
  filter.limit = 2;
  auto page = f.store().List("alice", filter);
  REQUIRE(page.ok());
  REQUIRE(page->messages.size() == 2);
  CHECK(page->has_more);
  CHECK(page->messages[0].id == ids[4]);
  CHECK(page->messages[1].id == ids[3]);
  filter.before_id = page->messages[1].id;
  page = f.store().List("alice", filter);
  REQUIRE(page.ok());
  CHECK(page->messages[0].id == ids[2]);
  filter.before_id = ids[1];
  page = f.store().List("alice", filter);
  REQUIRE(page.ok());
  CHECK(page->messages.size() == 1);
  CHECK_FALSE(page->has_more);

  ListFilter by_to;
  by_to.to_number = "+14155550003";
  page = f.store().List("alice", by_to);
  REQUIRE(page.ok());
  REQUIRE(page->messages.size() == 1);
  CHECK(page->messages[0].id == ids[3]);

  ListFilter by_time;
  by_time.created_after = MessageIdTime(ids[1]);
  by_time.created_before = MessageIdTime(ids[3]);
  page = f.store().List("alice", by_time);
  REQUIRE(page.ok());
  REQUIRE(page->messages.size() == 2);
  CHECK(page->messages[0].id == ids[2]);
  CHECK(page->messages[1].id == ids[1]);

  ListFilter by_status;
  by_status.statuses = {MessageStatus::kSent};
  page = f.store().List("alice", by_status);
  REQUIRE(page.ok());
  CHECK(page->messages.empty());
}

TEST_CASE_TEMPLATE("store: stats count by status and find the oldest queued message", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message first = f.Enqueue();
  f.clock().Advance(500);
  Message second = f.Enqueue();
  REQUIRE(f.store().Cancel("alice", second.id, f.clock().NowMs()).ok());
  auto stats = f.store().GetStats(f.clock().NowMs());
  REQUIRE(stats.ok());
  CHECK(stats->by_status[MessageStatus::kQueued] == 1);
  CHECK(stats->by_status[MessageStatus::kCanceled] == 1);
  REQUIRE(stats->oldest_queued_created_at.has_value());
  CHECK(*stats->oldest_queued_created_at == first.created_at);
}

TEST_CASE_TEMPLATE("store: the next wake time is the soonest due message, expiry or lease", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  auto empty = f.store().NextWakeAt();
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->has_value());
  Message m = f.Enqueue();
  auto wake = f.store().NextWakeAt();
  REQUIRE(wake.ok());
  CHECK(**wake == m.next_attempt_at);
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  wake = f.store().NextWakeAt();
  REQUIRE(wake.ok());
  CHECK(**wake == f.clock().NowMs() + 60'000);  // the lease
}

TEST_CASE_TEMPLATE("store: a queued message whose validity ran out fails at the next claim",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  f.clock().Advance(3'600'000);
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  CHECK(claimed->empty());
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kFailed);
  REQUIRE(got->last_error.has_value());
  CHECK(got->last_error->find("expired") != std::string::npos);
}

TEST_CASE("sqlite store: the database passes an integrity check after use") {
  StoreFixture f;
  for (int i = 0; i < 50; ++i) f.Enqueue();
  REQUIRE(f.store().Claim(f.ClaimAt(20)).ok());
  f.Close();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(f.path().c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "ok");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

}  // namespace
}  // namespace sendq

namespace sendq {
namespace {

TEST_CASE_TEMPLATE("store: a read after a half-read query still sees newer commits", Backend,
                   SENDQ_STORE_BACKENDS) {
  // NextWakeAt reads one row of a query; a pooled connection that kept that statement open
  // would keep its old snapshot and miss everything committed since.
  test::StoreFixtureFor<Backend> f;
  f.Enqueue();
  REQUIRE(f.store().NextWakeAt().ok());
  Message later = f.Enqueue();
  auto got = f.store().Get("alice", later.id);
  REQUIRE(got.ok());
  CHECK(got->id == later.id);
  ListFilter all;
  CHECK(f.store().List("alice", all)->messages.size() == 2);
}

}  // namespace
}  // namespace sendq

namespace sendq {
namespace {

TEST_CASE(
    "sqlite store: a version-1 database is upgraded in place to the latest, messages and ledger "
    "intact") {
  test::TempDir dir;
  const std::string path = dir.path() + "/v1.db";
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(store::EmbeddedMigrations().front().version == 1);
  REQUIRE(sqlite3_exec(db, store::EmbeddedMigrations().front().sql, nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  const char* rows =
      "PRAGMA user_version = 1;"
      "INSERT INTO messages (id, producer, request, agent_id, to_number, status, attempts, "
      "attempt_count, version, created_at, updated_at, next_attempt_at, expires_at) VALUES "
      "('sq_01m8rydtcn3r8k5nzt941b0fqe', 'alice', '{\"agent_id\":\"a\",\"to_number\":"
      "\"+14155552671\",\"body\":\"q\"}', 'a', '+14155552671', 0, 1, 1, 3, 1000, 2000, 3000, "
      "9000000000000);"
      "INSERT INTO messages (id, producer, request, status, attempts, attempt_count, version, "
      "created_at, updated_at, next_attempt_at, expires_at, sent_at, provider_message_id, "
      "upstream_response) VALUES "
      "('sq_01m8rydtcp3vx3ta2nczfq6bve', 'alice', '{\"number_id\":\"n\",\"to_number\":"
      "\"+14155552672\",\"body\":\"s\"}', 2, 1, 1, 4, 1000, 2500, 1000, 9000000000000, 2500, "
      "'msg_1', '{\"id\":\"msg_1\",\"status\":\"sent\"}');"
      "INSERT INTO attempts (message_id, number, started_at, finished_at, outcome, http_status, "
      "response_body, charged) VALUES "
      "('sq_01m8rydtcn3r8k5nzt941b0fqe', 1, 1500, 1600, 1, 503, '{\"detail\":\"busy\"}', 1), "
      "('sq_01m8rydtcp3vx3ta2nczfq6bve', 1, 2400, 2500, 0, 200, "
      "'{\"id\":\"msg_1\",\"status\":\"sent\"}', 1);";
  REQUIRE(sqlite3_exec(db, rows, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  FakeClock clock;
  clock.Set(5000);
  auto opened = store::OpenSqliteStore(path, {}, &clock);
  REQUIRE(opened.ok());
  CHECK(*store::SchemaVersion(path) == store::EmbeddedMigrations().back().version);
  store::Store& s = **opened;
  auto queued = s.Get("alice", "sq_01m8rydtcn3r8k5nzt941b0fqe");
  REQUIRE(queued.ok());
  CHECK(queued->status == MessageStatus::kQueued);
  CHECK(queued->attempts == 1);
  CHECK(queued->version == 3);
  CHECK(queued->next_attempt_at == 3000);
  CHECK(queued->priority == Priority::kNormal);
  CHECK_FALSE(queued->ordering_key);  // queued before ordering: not held by anything
  CHECK(queued->sender == "a");
  auto sent = s.Get("alice", "sq_01m8rydtcp3vx3ta2nczfq6bve");
  REQUIRE(sent.ok());
  CHECK(sent->status == MessageStatus::kSent);
  CHECK(sent->provider_message_id == "msg_1");
  CHECK(sent->sent_at == 2500);
  CHECK(sent->request_json == R"({"number_id":"n","to_number":"+14155552672","body":"s"})");
  CHECK(sent->upstream_response == R"({"id":"msg_1","status":"sent"})");
  auto ledger = s.ListAttempts("alice", "sq_01m8rydtcn3r8k5nzt941b0fqe");
  REQUIRE(ledger.ok());
  REQUIRE(ledger->size() == 1);
  CHECK((*ledger)[0].http_status == 503);
  CHECK((*ledger)[0].response_body == R"({"detail":"busy"})");
  // Version 3 keeps AgentPhone's answer once: the sending attempt reads it from the message.
  auto sent_ledger = s.ListAttempts("alice", "sq_01m8rydtcp3vx3ta2nczfq6bve");
  REQUIRE(sent_ledger.ok());
  REQUIRE(sent_ledger->size() == 1);
  CHECK((*sent_ledger)[0].response_body == R"({"id":"msg_1","status":"sent"})");
  sqlite3* upgraded = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &upgraded) == SQLITE_OK);
  sqlite3_stmt* copies = nullptr;
  REQUIRE(sqlite3_prepare_v2(upgraded,
                             "SELECT count(*) FROM attempts WHERE response_body IS NOT NULL", -1,
                             &copies, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(copies) == SQLITE_ROW);
  CHECK(sqlite3_column_int(copies, 0) == 1);  // the 503's body; the answer is not copied
  sqlite3_finalize(copies);
  sqlite3_close(upgraded);
  // The upgraded message is claimed like any other.
  store::ClaimOptions claim;
  claim.now = 5000;
  claim.limit = 5;
  auto claimed = s.Claim(claim);
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  CHECK((*claimed)[0].message.id == "sq_01m8rydtcn3r8k5nzt941b0fqe");
  CHECK((*claimed)[0].attempt_number == 2);
  CHECK((*claimed)[0].message.request_json ==
        R"({"agent_id":"a","to_number":"+14155552671","body":"q"})");
}

}  // namespace
}  // namespace sendq

namespace sendq {
namespace {

TEST_CASE_TEMPLATE("store: one claim of many gives bulk its one in ten, not the whole claim",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  for (int i = 0; i < 60; ++i) {
    for (Priority p : {Priority::kHigh, Priority::kBulk}) {
      store::NewMessage nm = f.NewMessage("alice", std::nullopt, fmt::format("+1415555{:04}", i));
      nm.priority = p;
      REQUIRE(f.store().Enqueue(nm).ok());
    }
  }
  int high = 0, bulk = 0;
  for (int round = 0; round < 2; ++round) {
    auto claimed = f.store().Claim(f.ClaimAt(20));
    REQUIRE(claimed.ok());
    for (const store::ClaimedMessage& c : *claimed) {
      (c.message.priority == Priority::kBulk ? bulk : high)++;
    }
  }
  CHECK(high + bulk == 40);
  CHECK(bulk >= 3);  // at least one in ten of the 40
  CHECK(bulk <= 5);  // and not a whole claim
}

TEST_CASE_TEMPLATE("store: pacing books a slot once; a message moved for a 429 books again",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Pacer::Options options;
  options.sender_rate = *ParseRate("1/s:1");
  Pacer pacer(options);
  for (int i = 0; i < 3; ++i) {
    store::NewMessage nm = f.NewMessage("alice", std::nullopt, fmt::format("+1415555{:04}", i));
    nm.sender = "agent_1";
    REQUIRE(f.store().Enqueue(nm).ok());
  }
  store::ClaimOptions claim = f.ClaimAt(10);
  claim.pacer = &pacer;
  auto first = f.store().Claim(claim);
  REQUIRE(first.ok());
  CHECK(first->size() == 1);  // the other two are booked at +1 s and +2 s
  f.clock().Advance(1'000);
  claim = f.ClaimAt(10);
  claim.pacer = &pacer;
  pacer.PauseSender("agent_1", f.clock().NowMs() + 5'000);  // a 429 meanwhile
  auto paused = f.store().Claim(claim);
  REQUIRE(paused.ok());
  CHECK(paused->empty());    // booked, but the sender is paused: moved, not leased
  f.clock().Advance(1'000);  // the second one's slot, still inside the pause
  claim = f.ClaimAt(10);
  claim.pacer = &pacer;
  REQUIRE(f.store().Claim(claim)->empty());
  f.clock().Advance(4'000);  // the pause is over
  claim = f.ClaimAt(10);
  claim.pacer = &pacer;
  auto after = f.store().Claim(claim);
  REQUIRE(after.ok());
  CHECK(after->size() == 1);  // they book again: one now, the other a second later
}

}  // namespace
}  // namespace sendq
