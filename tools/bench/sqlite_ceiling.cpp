// bench-sqlite-ceiling: how fast bare SQLite can store enqueues on this disk.
//
// It opens a fresh database with the connection settings of sendq's store (src/store/sqlite.cpp:
// WAL, synchronous FULL or NORMAL, foreign keys, in-memory temp store, 16 MB cache, 5 s busy
// timeout), applies the schema file read at run time, and inserts rows shaped like sendq's
// enqueue (the same INSERT, ids from sendq's IdGenerator, the example request normalised by
// sendq's validation) in transactions of --txn-rows. With --txn-rows 1 each row pays its own
// commit, as an enqueue would without group commit. There is no HTTP, no JSON parsing of
// requests, no thread hand-off and no savepoint per row unless --savepoints asks for one (sendq's
// writer runs each task in its own savepoint), so the rate is a ceiling for one writer.
//
// Prints one JSON line with messages_per_s.

#include <sqlite3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "queue/validation.h"
#include "util/clock.h"
#include "util/ids.h"

namespace {

// The example request of AgentPhone's Send Message page, as a producer would send it.
constexpr char kExampleRequest[] =
    R"({"agent_id":"agent_12345abcde","to_number":"+14155552671",)"
    R"("body":"Hello! Your appointment is confirmed for tomorrow at 3 PM."})";
constexpr int64_t kMaxAgeMs = 24 * 3'600'000LL;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

[[noreturn]] void Fail(const std::string& what, sqlite3* db = nullptr) {
  nlohmann::json line = {{"tool", "bench-sqlite-ceiling"}, {"error", what}};
  if (db != nullptr) line["sqlite"] = sqlite3_errmsg(db);
  std::printf("%s\n", line.dump().c_str());
  std::exit(1);
}

void Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Fail("exec failed: " + message);
  }
}

void BindText(sqlite3_stmt* stmt, int index, const std::string& value) {
  sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-sqlite-ceiling: bare SQLite inserts shaped like sendq's enqueue"};
  std::string db_path;
  std::string schema_path;
  std::string synchronous = "full";
  int64_t rows = 100'000;
  int64_t txn_rows = 500;
  double max_seconds = 30;
  bool savepoints = false;
  app.add_option("--db", db_path, "Database file; it and its -wal/-shm are deleted first")
      ->required();
  app.add_option("--schema", schema_path, "schema/0001_initial.sql")->required();
  app.add_option("--synchronous", synchronous, "full or normal")
      ->check(CLI::IsMember({"full", "normal"}))
      ->capture_default_str();
  app.add_option("--rows", rows, "Rows to insert")
      ->check(CLI::Range(1LL, 100'000'000LL))
      ->capture_default_str();
  app.add_option("--txn-rows", txn_rows, "Rows per transaction (1: one commit per row)")
      ->check(CLI::Range(1LL, 1'000'000LL))
      ->capture_default_str();
  app.add_option("--max-seconds", max_seconds, "Stop after this long even if rows remain")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_flag("--savepoints", savepoints, "Wrap each row in a savepoint, as sendq's writer does");
  CLI11_PARSE(app, argc, argv);

  std::ifstream schema_file(schema_path);
  if (!schema_file) Fail("cannot read " + schema_path);
  std::stringstream schema;
  schema << schema_file.rdbuf();

  for (const char* suffix : {"", "-wal", "-shm"}) unlink((db_path + suffix).c_str());
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    Fail("cannot open " + db_path, raw);
  }
  DbPtr db(raw);
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), 5000);
  Exec(db.get(), "PRAGMA journal_mode=WAL; PRAGMA synchronous=" +
                     std::string(synchronous == "full" ? "FULL" : "NORMAL") +
                     "; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
                     "PRAGMA cache_size=-16000;");
  Exec(db.get(), schema.str());

  sendq::ValidatedRequest validated = sendq::ParseAndValidateSendRequest(kExampleRequest);
  if (!validated.ok()) Fail("the example request does not validate");
  const std::string request_json = validated.request.dump();
  const std::string agent_id = validated.request["agent_id"].get<std::string>();
  const std::string to_number = validated.request["to_number"].get<std::string>();

  sqlite3_stmt* raw_stmt = nullptr;
  if (sqlite3_prepare_v3(db.get(),
                         "INSERT INTO messages (id, producer, idempotency_key, request, agent_id, "
                         "to_number, status, created_at, updated_at, next_attempt_at, expires_at) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?7, ?8)",
                         -1, SQLITE_PREPARE_PERSISTENT, &raw_stmt, nullptr) != SQLITE_OK) {
    Fail("prepare", db.get());
  }
  StmtPtr insert(raw_stmt);

  sendq::IdGenerator ids(sendq::SystemClock::Default());
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t done = 0;
  int64_t transactions = 0;
  while (done < rows && elapsed() < max_seconds) {
    Exec(db.get(), "BEGIN IMMEDIATE");
    for (int64_t i = 0; i < txn_rows && done < rows; ++i, ++done) {
      if (savepoints) Exec(db.get(), "SAVEPOINT task");
      const std::string id = ids.Next();
      const sendq::TimeMs created_at = sendq::MessageIdTime(id);
      BindText(insert.get(), 1, id);
      BindText(insert.get(), 2, "bench");
      sqlite3_bind_null(insert.get(), 3);
      BindText(insert.get(), 4, request_json);
      BindText(insert.get(), 5, agent_id);
      BindText(insert.get(), 6, to_number);
      sqlite3_bind_int64(insert.get(), 7, created_at);
      sqlite3_bind_int64(insert.get(), 8, created_at + kMaxAgeMs);
      if (sqlite3_step(insert.get()) != SQLITE_DONE) Fail("insert", db.get());
      sqlite3_reset(insert.get());
      if (savepoints) Exec(db.get(), "RELEASE task");
    }
    Exec(db.get(), "COMMIT");
    ++transactions;
  }
  const double seconds = elapsed();

  nlohmann::ordered_json line = nlohmann::ordered_json::object();
  line["tool"] = "bench-sqlite-ceiling";
  line["synchronous"] = synchronous;
  line["txn_rows"] = txn_rows;
  line["savepoints"] = savepoints;
  line["rows"] = done;
  line["transactions"] = transactions;
  line["request_bytes"] = request_json.size();
  line["seconds"] = seconds;
  line["messages_per_s"] = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  line["stopped_by_time"] = done < rows;
  std::printf("%s\n", line.dump().c_str());
  return 0;
}
