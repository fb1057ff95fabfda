// Small RAII types over the SQLite C API. Only src/store/sqlite/*.cpp include <sqlite3.h>.
//
// Thread-safety: a Db and its statements are used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"
#include "util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sendq::store {

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Parameters are 1-based, as in SQLite.
  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view value);
  Stmt& Bind(int index, const std::string& value) { return Bind(index, std::string_view(value)); }
  Stmt& Bind(int index, const std::optional<std::string>& value);
  Stmt& Bind(int index, const std::optional<int64_t>& value);
  Stmt& BindNull(int index);

  // True while there is a row; false when done. Errors come back as a Status.
  Result<bool> Step();
  // Runs to completion (for statements that return no rows).
  Status Run();
  // Clears bindings and rewinds, ready for the next use.
  void Reset();

  int64_t Int(int column) const;
  std::string Text(int column) const;
  bool IsNull(int column) const;
  std::optional<int64_t> OptInt(int column) const;
  std::optional<std::string> OptText(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  Status bind_error_;
};

// Page cache sizes. The writer's pages are hot (the queue's indexes, the newest rows); a reader
// looks up scattered rows, which the OS's page cache keeps anyway, and there is a reader per
// concurrent request, so a small cache each keeps memory bounded however deep the backlog.
inline constexpr int kWriterCacheKib = 16'000;
inline constexpr int kReaderCacheKib = 2'000;

class Db {
 public:
  // Opens (creating if needed) the database at `path` with the pragmas sendq relies on.
  // `cache_kib`: the connection's page cache, in KiB.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool synchronous_full,
                                          int cache_kib = kWriterCacheKib);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Prepare(sql) and run it to completion: for a statement without results that is run often.
  Status RunCached(const char* sql);
  Status Exec(const char* sql);
  // A cached prepared statement, reset and ready. It stays owned by the Db.
  Result<Stmt*> Prepare(const char* sql);
  // Resets every cached statement. A statement left mid-result keeps its read transaction
  // (and so an old snapshot) open; call this whenever a unit of work is done.
  void ResetAll();
  int64_t RowsChanged() const;  // rows the last statement changed
  // Copies the write-ahead log into the database and truncates it to zero bytes, without
  // waiting: Unavailable when a reader still needs part of it (try again later).
  Status TruncateLog();
  // Copies what it can of the write-ahead log into the database, waiting for no one (PASSIVE).
  Status CheckpointLog();
  // From now on, this connection's commits do not checkpoint the log themselves (SQLite's
  // default, past 1,000 frames): each calls `hook` with the log's length in frames instead, on
  // the committing thread. See Checkpointer.
  void SetLogHook(std::function<void(int frames)> hook);
  bool InTransaction() const;

  // What the current transaction changed, for the store's subscribers (a commit wakes only
  // those messages' long polls). The writer undoes a task's notes when the task rolls back.
  void NoteChanged(std::string id) { changes_.message_ids.push_back(std::move(id)); }
  void NoteWorkAdded() { changes_.work_added = true; }
  void NoteCallbackAdded() { changes_.callbacks_added = true; }
  Changes& pending_changes() { return changes_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::function<void(int frames)> log_hook_;
  Changes changes_;
  std::map<std::string, std::unique_ptr<Stmt>, std::less<>> cache_;
};

// The one place where SQLite result codes become Status values.
Status SqliteStatus(sqlite3* db, int rc, std::string_view context);

// Begins in its constructor; rolls back in its destructor unless Commit() succeeded.
class Transaction {
 public:
  enum class Mode { kDeferred, kImmediate };
  explicit Transaction(Db* db, Mode mode = Mode::kDeferred);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const Status& begin_status() const { return begin_status_; }
  Status Commit();

 private:
  Db* db_;
  Status begin_status_;
  bool done_ = false;
};

}  // namespace sendq::store
