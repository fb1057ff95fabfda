#include <doctest/doctest.h>

#include "store_fixture.h"

namespace sendq {
namespace {

using test::StoreFixture;

TEST_CASE_TEMPLATE("batch: every item is stored in order and queued", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  std::vector<store::NewMessage> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(f.NewMessage("alice"));
  auto stored = f.store().EnqueueBatch(batch);
  REQUIRE(stored.ok());
  REQUIRE(stored->size() == 5);
  for (size_t i = 0; i < batch.size(); ++i) {
    REQUIRE((*stored)[i].ok());
    CHECK_FALSE((*stored)[i]->replayed);
    CHECK((*stored)[i]->message.id == batch[i].id);
    auto read = f.store().Get("alice", batch[i].id);
    REQUIRE(read.ok());
    CHECK(read->status == MessageStatus::kQueued);
  }
}

TEST_CASE_TEMPLATE("batch: a key used twice in one batch is a replay of its first use", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  std::vector<store::NewMessage> batch = {f.NewMessage("alice", "k"), f.NewMessage("alice", "k")};
  auto stored = f.store().EnqueueBatch(batch);
  REQUIRE(stored.ok());
  REQUIRE((*stored)[1].ok());
  CHECK((*stored)[1]->replayed);
  CHECK((*stored)[1]->message.id == batch[0].id);
  CHECK(f.store().List("alice", ListFilter{})->messages.size() == 1);
}

TEST_CASE_TEMPLATE("batch: a reused key with another body fails that item only", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  REQUIRE(f.store().Enqueue(f.NewMessage("alice", "k", "+14155552671", "one")).ok());
  std::vector<store::NewMessage> batch = {f.NewMessage("alice", "k", "+14155552671", "two"),
                                          f.NewMessage("alice")};
  auto stored = f.store().EnqueueBatch(batch);
  REQUIRE(stored.ok());
  CHECK((*stored)[0].status().IsConflict());
  REQUIRE((*stored)[1].ok());
  CHECK_FALSE((*stored)[1]->replayed);
  CHECK(f.store().List("alice", ListFilter{})->messages.size() == 2);
}

TEST_CASE_TEMPLATE("batch: a failing item stores none of the batch", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  std::vector<store::NewMessage> batch = {f.NewMessage("alice"), f.NewMessage("alice")};
  batch[1].id = batch[0].id;  // the primary key refuses the second row
  auto stored = f.store().EnqueueBatch(batch);
  CHECK_FALSE(stored.ok());
  CHECK(f.store().Get("alice", batch[0].id).status().IsNotFound());
}

TEST_CASE_TEMPLATE("batch: the stored batch survives a restart", Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  std::vector<store::NewMessage> batch = {f.NewMessage("alice"), f.NewMessage("alice")};
  REQUIRE(f.store().EnqueueBatch(batch).ok());
  f.Reopen();
  for (const auto& nm : batch) CHECK(f.store().Get("alice", nm.id).ok());
}

}  // namespace
}  // namespace sendq
