#include "store/sqlite/writer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "testutil.h"

namespace sendq::store {
namespace {

// Spins (bounded) until `done()`; for hand-offs between threads that take microseconds.
template <typename Pred>
bool SpinUntil(Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

struct WriterFixture {
  // Occupies the writer thread until `waiting` more tasks are queued behind it, so that they
  // all land in the next transaction together. Returns once the writer is occupied.
  std::thread BlockUntilPending(size_t waiting) {
    std::atomic<bool> inside{false};
    std::thread blocker([this, waiting, &inside] {
      CHECK(writer
                ->Run([&](Db&) {
                  inside = true;
                  CHECK(SpinUntil([&] { return writer->TEST_Pending() >= waiting; }));
                  return Status::Ok();
                })
                .ok());
    });
    REQUIRE(SpinUntil([&] { return inside.load(); }));
    return blocker;
  }

  WriterFixture() {
    auto db = Db::Open(dir.File("w.db"), true);
    REQUIRE(db.ok());
    REQUIRE((*db)->Exec("CREATE TABLE t (v INTEGER)").ok());
    writer = std::make_unique<Writer>(std::move(*db), [this](const Changes& changes) {
      std::lock_guard<std::mutex> guard(mu);
      ++commits;
      changed.insert(changed.end(), changes.message_ids.begin(), changes.message_ids.end());
    });
  }

  std::vector<std::string> Changed() {
    std::lock_guard<std::mutex> guard(mu);
    return changed;
  }

  test::TempDir dir;
  std::atomic<int> commits{0};
  std::mutex mu;
  std::vector<std::string> changed;  // GUARDED_BY(mu): ids the commits reported
  std::unique_ptr<Writer> writer;
};

Status Insert(Db& db, int v) {
  Result<Stmt*> stmt = db.Prepare("INSERT INTO t (v) VALUES (?1)");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, static_cast<int64_t>(v));
  return (*stmt)->Run();
}

Result<int64_t> Count(Db& db) {
  Result<Stmt*> stmt = db.Prepare("SELECT count(*) FROM t");
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  return (*stmt)->Int(0);
}

TEST_CASE("writer: concurrent writes share one commit (group commit)") {
  WriterFixture f;
  constexpr int kWriters = 32;
  std::thread blocker = f.BlockUntilPending(kWriters);
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back(
        [&, i] { CHECK(f.writer->Run([i](Db& db) { return Insert(db, i); }).ok()); });
  }
  for (auto& t : writers) t.join();
  blocker.join();
  CHECK(f.commits == 2);  // the blocker's transaction, then all 32 writes in one
  auto count = f.writer->Call<int64_t>([](Db& db) { return Count(db); });
  REQUIRE(count.ok());
  CHECK(*count == kWriters);
}

TEST_CASE("writer: a failing write is rolled back alone; the rest of its batch commits") {
  WriterFixture f;
  std::thread blocker = f.BlockUntilPending(3);
  Status good1, bad, good2;
  std::thread a([&] {
    good1 = f.writer->Run([](Db& db) {
      db.NoteChanged("one");
      return Insert(db, 1);
    });
  });
  std::thread b([&] {
    bad = f.writer->Run([](Db& db) {
      db.NoteChanged("two");      // forgotten with the rollback: nothing changed
      Status st = Insert(db, 2);  // written, then undone with its savepoint
      return st.ok() ? Status::Conflict("refused") : st;
    });
  });
  std::thread c([&] {
    good2 = f.writer->Run([](Db& db) {
      db.NoteChanged("three");
      return Insert(db, 3);
    });
  });
  a.join();
  b.join();
  c.join();
  blocker.join();
  CHECK(good1.ok());
  CHECK(bad.IsConflict());
  CHECK(good2.ok());
  // The commit reports the messages its kept tasks changed, so only their long polls wake. The
  // writer answers its callers before it reports the commit: wait for the report.
  REQUIRE(SpinUntil([&] { return f.commits.load() >= 2; }));
  std::vector<std::string> changed = f.Changed();
  std::sort(changed.begin(), changed.end());
  CHECK(changed == std::vector<std::string>{"one", "three"});
  auto count = f.writer->Call<int64_t>([](Db& db) { return Count(db); });
  REQUIRE(count.ok());
  CHECK(*count == 2);
}

}  // namespace
}  // namespace sendq::store
