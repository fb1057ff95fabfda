// Changes producers ask for (cancel, retry), and the leases voided at open.
#include <fmt/format.h>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// The message if it is `producer`'s and in state `from`: NotFound or Conflict otherwise.
Result<Message> FindIn(Db& db, const std::string& producer, const std::string& id,
                       MessageStatus from) {
  Result<std::optional<Message>> current = FindMessage(db, producer, id);
  if (!current.ok()) return current.status();
  if (!*current) return NotFound(id);
  if ((*current)->status != from) {
    return Status::Conflict(fmt::format("message {} is {}", id, StatusName((*current)->status)));
  }
  return std::move(**current);
}

// Runs `update` (bound by the caller, fenced by the version) and reads the message again.
Result<Message> ApplyAndRead(Db& db, Stmt& update, const std::string& producer,
                             const std::string& id) {
  if (Status st = update.Run(); !st.ok()) return st;
  if (db.RowsChanged() == 0) return Status::Internal("message changed during a transition");
  db.NoteChanged(id);
  Result<std::optional<Message>> changed = FindMessage(db, producer, id);
  if (!changed.ok()) return changed.status();
  if (!*changed) return NotFound(id);
  return std::move(**changed);
}

}  // namespace

Result<Message> CancelQueued(Db& db, const std::string& producer, const std::string& id,
                             TimeMs now) {
  Result<Message> current = FindIn(db, producer, id, MessageStatus::kQueued);
  if (!current.ok()) return current.status();
  static const std::string sql =
      Sql("UPDATE messages SET status = {canceled}, version = version + 1, updated_at = ?3 "
          "WHERE id = ?1 AND version = ?2");
  Result<Stmt*> update = db.Prepare(sql.c_str());
  if (!update.ok()) return update.status();
  (*update)->Bind(1, id).Bind(2, current->version).Bind(3, now);
  Result<Message> canceled = ApplyAndRead(db, **update, producer, id);
  if (!canceled.ok()) return canceled;
  if (Status st = ReleaseLane(db, producer, canceled->ordering_key); !st.ok()) return st;
  return canceled;
}

Result<Message> RetryFailed(Db& db, const std::string& producer, const std::string& id, TimeMs now,
                            TimeMs expires_at) {
  Result<Message> current = FindIn(db, producer, id, MessageStatus::kFailed);
  if (!current.ok()) return current.status();
  // Retried by hand, a message joins the end of its lane again, like a new one.
  LanePlace lane;
  if (current->ordering_key) {
    Result<LanePlace> tail = LaneTail(db, producer, *current->ordering_key);
    if (!tail.ok()) return tail.status();
    lane = *tail;
  }
  static const std::string sql =
      Sql("UPDATE messages SET status = {queued}, version = version + 1, updated_at = ?3, "
          "next_attempt_at = ?3, expires_at = ?4, attempts = 0, last_error = NULL, "
          "lane_seq = ?5, held = ?6, paced = 0 WHERE id = ?1 AND version = ?2");
  Result<Stmt*> update = db.Prepare(sql.c_str());
  if (!update.ok()) return update.status();
  (*update)
      ->Bind(1, id)
      .Bind(2, current->version)
      .Bind(3, now)
      .Bind(4, expires_at)
      .Bind(5, lane.seq)
      .Bind(6, int64_t{lane.held ? 1 : 0});
  Result<Message> retried = ApplyAndRead(db, **update, producer, id);
  if (retried.ok() && !lane.held) db.NoteWorkAdded();
  return retried;
}

Status VoidLeases(Db& db, TimeMs now) {
  static const std::string sql =
      Sql("UPDATE messages SET lease_until = ?1 WHERE status = {sending} AND lease_until > ?1");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, now);
  Status st = (*stmt)->Run();
  if (st.ok() && db.RowsChanged() > 0) {
    log::Warn("leases_voided",
              {{"messages", db.RowsChanged()},
               {"reason", "left in sending by an earlier process; outcome unknown"}});
  }
  return st;
}

}  // namespace sendq::store
