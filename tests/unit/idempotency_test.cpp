#include <doctest/doctest.h>

#include <set>
#include <thread>

#include "store_fixture.h"

namespace sendq {
namespace {

using test::StoreFixture;

TEST_CASE_TEMPLATE("idempotency: the same key and body return the original message", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  auto first = f.store().Enqueue(f.NewMessage("alice", "key-1"));
  REQUIRE(first.ok());
  CHECK_FALSE(first->replayed);
  auto second = f.store().Enqueue(f.NewMessage("alice", "key-1"));
  REQUIRE(second.ok());
  CHECK(second->replayed);
  CHECK(second->message.id == first->message.id);
  ListFilter all;
  CHECK(f.store().List("alice", all)->messages.size() == 1);
}

TEST_CASE_TEMPLATE("idempotency: the same key with a different body is a conflict", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  REQUIRE(f.store().Enqueue(f.NewMessage("alice", "key-1", "+14155552671", "one")).ok());
  auto second = f.store().Enqueue(f.NewMessage("alice", "key-1", "+14155552671", "two"));
  CHECK(second.status().IsConflict());
  ListFilter all;
  CHECK(f.store().List("alice", all)->messages.size() == 1);
}

TEST_CASE_TEMPLATE("idempotency: keys are scoped to the producer", Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  auto alice = f.store().Enqueue(f.NewMessage("alice", "shared-key"));
  auto bob = f.store().Enqueue(f.NewMessage("bob", "shared-key"));
  REQUIRE(alice.ok());
  REQUIRE(bob.ok());
  CHECK_FALSE(bob->replayed);
  CHECK(alice->message.id != bob->message.id);
}

TEST_CASE_TEMPLATE("idempotency: the key survives a restart", Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  auto first = f.store().Enqueue(f.NewMessage("alice", "key-1"));
  REQUIRE(first.ok());
  f.Reopen();
  auto second = f.store().Enqueue(f.NewMessage("alice", "key-1"));
  REQUIRE(second.ok());
  CHECK(second->replayed);
  CHECK(second->message.id == first->message.id);
}

TEST_CASE_TEMPLATE("idempotency: concurrent duplicates create exactly one message", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  constexpr int kThreads = 16;
  std::vector<store::NewMessage> requests;
  for (int i = 0; i < kThreads; ++i) requests.push_back(f.NewMessage("alice", "race"));
  std::vector<std::optional<store::EnqueueResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto r = f.store().Enqueue(requests[i]);
      if (r.ok()) results[i] = *r;
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  int created = 0;
  for (const auto& r : results) {
    REQUIRE(r.has_value());
    ids.insert(r->message.id);
    if (!r->replayed) ++created;
  }
  CHECK(ids.size() == 1);
  CHECK(created == 1);
  ListFilter all;
  CHECK(f.store().List("alice", all)->messages.size() == 1);
}

}  // namespace
}  // namespace sendq
