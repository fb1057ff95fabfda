// What operators ask of the store: admin reads across producers, bulk changes by filter,
// pauses, the audit of admin actions and the feed of changes.
#include <fmt/format.h>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/ids.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// A LIKE pattern that matches `text` anywhere, with LIKE's own characters escaped by '\'.
std::string ContainsPattern(const std::string& text) {
  std::string out = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

}  // namespace

Result<std::optional<std::string>> OwnerOf(Db& db, const std::string& id) {
  Result<Stmt*> stmt = db.Prepare("SELECT producer FROM messages WHERE id = ?1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<std::string> owner;
  if (*row) owner = (*stmt)->Text(0);
  (*stmt)->Reset();
  return owner;
}

Result<std::vector<std::pair<std::string, std::string>>> SelectForAdmin(Db& db,
                                                                        const AdminFilter& f,
                                                                        const std::string& after_id,
                                                                        int limit) {
  // Walks the primary key from `after_id`: each batch starts where the last one ended.
  std::string sql = "SELECT id, producer FROM messages WHERE id > ?1";
  sql += StatusCondition(f.statuses);
  if (f.producer) sql += " AND producer = ?2";
  if (f.sender) sql += " AND sender = ?3";
  if (f.to_number) sql += " AND to_number = ?4";
  if (f.error_contains) sql += " AND last_error LIKE ?5 ESCAPE '\\'";
  if (f.created_after) sql += " AND id >= ?6";
  if (f.created_before) sql += " AND id < ?7";
  sql += " ORDER BY id LIMIT ?8";
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  Stmt& s = **stmt;
  s.Bind(1, after_id);
  if (f.producer) s.Bind(2, *f.producer);
  if (f.sender) s.Bind(3, *f.sender);
  if (f.to_number) s.Bind(4, *f.to_number);
  if (f.error_contains) s.Bind(5, ContainsPattern(*f.error_contains));
  if (f.created_after) s.Bind(6, MinMessageIdAt(*f.created_after));
  if (f.created_before) s.Bind(7, MinMessageIdAt(*f.created_before));
  s.Bind(8, static_cast<int64_t>(limit));
  std::vector<std::pair<std::string, std::string>> out;
  for (;;) {
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.emplace_back(s.Text(0), s.Text(1));
  }
  return out;
}

Result<int64_t> ApplyBulk(Db& db, BulkAction action,
                          const std::vector<std::pair<std::string, std::string>>& messages,
                          TimeMs now, TimeMs expires_at) {
  int64_t changed = 0;
  for (const auto& [id, producer] : messages) {
    Result<Message> done = action == BulkAction::kRetry
                               ? RetryFinal(db, producer, id, now, expires_at)
                               : CancelQueued(db, producer, id, now);
    // It changed state since it was selected (sent meanwhile, retried twice): left as it is.
    if (!done.ok() && (done.status().IsConflict() || done.status().IsNotFound())) continue;
    if (!done.ok()) return done.status();
    ++changed;
  }
  return changed;
}

Result<PauseState> LoadPauses(Db& db) {
  Result<Stmt*> stmt = db.Prepare("SELECT sender FROM pauses");
  if (!stmt.ok()) return stmt.status();
  PauseState state;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    std::string sender = (*stmt)->Text(0);
    if (sender == kPauseEverything) {
      state.global = true;
    } else {
      state.senders.insert(std::move(sender));
    }
  }
  return state;
}

Result<PauseState> SetPause(Db& db, const std::string& sender, bool paused,
                            const std::string& actor, TimeMs now) {
  if (paused) {
    Result<Stmt*> insert = db.Prepare(
        "INSERT INTO pauses (sender, created_at, actor) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (sender) DO NOTHING");
    if (!insert.ok()) return insert.status();
    (*insert)->Bind(1, sender).Bind(2, now).Bind(3, actor);
    if (Status st = (*insert)->Run(); !st.ok()) return st;
    return LoadPauses(db);
  }
  const bool everything = sender == kPauseEverything;
  Result<Stmt*> remove =
      db.Prepare(everything ? "DELETE FROM pauses" : "DELETE FROM pauses WHERE sender = ?1");
  if (!remove.ok()) return remove.status();
  if (!everything) (*remove)->Bind(1, sender);
  if (Status st = (*remove)->Run(); !st.ok()) return st;
  // What a pause moved off the due order is due now.
  static const std::string one =
      Sql("UPDATE messages INDEXED BY messages_status SET next_attempt_at = ?1, paced = 0 "
          "WHERE status = {queued} AND paced = 2 AND sender = ?2");
  static const std::string all =
      Sql("UPDATE messages INDEXED BY messages_status SET next_attempt_at = ?1, paced = 0 "
          "WHERE status = {queued} AND paced = 2");
  Result<Stmt*> due = db.Prepare(everything ? all.c_str() : one.c_str());
  if (!due.ok()) return due.status();
  (*due)->Bind(1, now);
  if (!everything) (*due)->Bind(2, sender);
  if (Status st = (*due)->Run(); !st.ok()) return st;
  db.NoteWorkAdded();
  return LoadPauses(db);
}

Status AppendAudit(Db& db, const AuditEntry& e) {
  Result<Stmt*> stmt = db.Prepare(
      "INSERT INTO audit_log (at, actor, action, details, matched, changed) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, e.at)
      .Bind(2, e.actor)
      .Bind(3, e.action)
      .Bind(4, e.details)
      .Bind(5, e.matched)
      .Bind(6, e.changed);
  return (*stmt)->Run();
}

Result<std::vector<AuditEntry>> ListAudit(Db& db, int64_t before_id, int limit) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id, at, actor, action, details, matched, changed FROM audit_log "
      "WHERE ?1 = 0 OR id < ?1 ORDER BY id DESC LIMIT ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, before_id).Bind(2, static_cast<int64_t>(limit));
  std::vector<AuditEntry> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Stmt& s = **stmt;
    out.push_back(
        AuditEntry{s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.Text(4), s.OptInt(5), s.OptInt(6)});
  }
  return out;
}

Result<std::vector<Message>> ListChanges(Db& db, const std::string& producer,
                                         const ChangeCursor& after, int limit) {
  // The index gives the order; a producer's feed reads past other producers' changes.
  std::string sql = "SELECT " SENDQ_MESSAGE_COLUMNS
                    " FROM messages INDEXED BY messages_updated JOIN requests USING (id) "
                    "LEFT JOIN answers USING (id) WHERE (updated_at, id) > (?1, ?2)";
  if (!producer.empty()) sql += " AND producer = ?3";
  sql += " ORDER BY updated_at, id LIMIT ?4";
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, after.updated_at).Bind(2, after.id).Bind(4, static_cast<int64_t>(limit));
  if (!producer.empty()) (*stmt)->Bind(3, producer);
  return CollectMessages(*stmt);
}

Result<Stats> ReadProducerStats(Db& db, const std::string& producer) {
  Transaction txn(&db);
  Stats stats;
  Result<Stmt*> counts = db.Prepare(
      "SELECT status, count(*) FROM messages INDEXED BY messages_producer WHERE producer = ?1 "
      "GROUP BY status");
  if (!counts.ok()) return counts.status();
  (*counts)->Bind(1, producer);
  for (;;) {
    Result<bool> row = (*counts)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    stats.by_status[static_cast<MessageStatus>((*counts)->Int(0))] = (*counts)->Int(1);
  }
  static const std::string oldest_sql =
      Sql("SELECT id FROM messages INDEXED BY messages_status WHERE status = {queued} AND "
          "producer = ?1 ORDER BY id LIMIT 1");
  Result<Stmt*> oldest = db.Prepare(oldest_sql.c_str());
  if (!oldest.ok()) return oldest.status();
  (*oldest)->Bind(1, producer);
  Result<bool> row = (*oldest)->Step();
  if (!row.ok()) return row.status();
  if (*row) stats.oldest_queued_created_at = MessageIdTime((*oldest)->Text(0));
  (*oldest)->Reset();
  return stats;
}

}  // namespace sendq::store
