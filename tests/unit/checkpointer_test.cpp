#include "store/sqlite/checkpointer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "store/sqlite/db.h"
#include "testutil.h"

namespace sendq::store {
namespace {

// Commits one row of `bytes` bytes in its own transaction.
void CommitRow(Db& db, size_t bytes) {
  Result<Stmt*> insert = db.Prepare("INSERT INTO t (v) VALUES (?1)");
  REQUIRE(insert.ok());
  (*insert)->Bind(1, std::string(bytes, 'x'));
  REQUIRE((*insert)->Run().ok());
}

TEST_CASE("checkpointer: with a log hook, the connection's commits never checkpoint the log") {
  test::TempDir dir;
  auto db = Db::Open(dir.File("c.db"), true);
  REQUIRE(db.ok());
  REQUIRE((*db)->Exec("CREATE TABLE t (v BLOB)").ok());
  std::vector<int> lengths;  // the log's length in frames after each commit
  (*db)->SetLogHook([&](int frames) { lengths.push_back(frames); });
  // About 3,000 frames of 4 KiB: SQLite's own automatic checkpoint would have started the log
  // over after 1,000.
  for (int i = 0; i < 1'000; ++i) CommitRow(**db, 8'000);
  REQUIRE(lengths.size() == 1'000);
  CHECK(lengths.back() > 2'000);
  CHECK(std::is_sorted(lengths.begin(), lengths.end()));
}

TEST_CASE("checkpointer: a log past its length is copied into the database by its own thread") {
  test::TempDir dir;
  const std::string path = dir.File("c.db");
  auto db = Db::Open(path, true);
  REQUIRE(db.ok());
  REQUIRE((*db)->Exec("CREATE TABLE t (v BLOB)").ok());
  Result<std::unique_ptr<Checkpointer>> checkpointer =
      Checkpointer::Start(path, /*synchronous_full=*/true, /*log_pages=*/100);
  REQUIRE(checkpointer.ok());
  (*checkpointer)->Attach(db->get());
  for (int i = 0; i < 10; ++i) CommitRow(**db, 4'000);  // under 100 frames: nothing to do
  CHECK((*checkpointer)->checkpoints() == 0);
  const uintmax_t size_before = std::filesystem::file_size(path);
  for (int i = 0; i < 100; ++i) CommitRow(**db, 4'000);
  REQUIRE((*checkpointer)->WaitForCheckpoints(1));
  // Rows are in the database file now, not only in the log: the first checkpoint came at 100
  // frames, so it copied tens of pages at least.
  CHECK(std::filesystem::file_size(path) >= size_before + 20 * 4096);
  // Closing with the log still long is fine (the last connection to close copies it); the writer
  // goes first, as Attach() asks.
  db->reset();
  checkpointer->reset();
}

TEST_CASE("checkpointer: past its cap the committing connection is told to checkpoint itself") {
  test::TempDir dir;
  Result<std::unique_ptr<Checkpointer>> checkpointer =
      Checkpointer::Start(dir.File("c.db"), /*synchronous_full=*/true, /*log_pages=*/100);
  REQUIRE(checkpointer.ok());
  CHECK_FALSE((*checkpointer)->LogGrew(99));
  CHECK_FALSE((*checkpointer)->LogGrew(kCheckpointLogCapPages - 1));
  CHECK((*checkpointer)->LogGrew(kCheckpointLogCapPages));
}

}  // namespace
}  // namespace sendq::store
