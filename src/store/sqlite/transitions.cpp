// Changes producers ask for (cancel, retry), and the leases voided at open.
#include <fmt/format.h>

#include <algorithm>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// The message if it is `producer`'s and in one of the states `from`: NotFound or Conflict
// otherwise.
Result<Message> FindIn(Db& db, const std::string& producer, const std::string& id,
                       std::initializer_list<MessageStatus> from) {
  Result<std::optional<Message>> current = FindMessage(db, producer, id);
  if (!current.ok()) return current.status();
  if (!*current) return NotFound(id);
  if (std::find(from.begin(), from.end(), (*current)->status) == from.end()) {
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

// Back to the queue, due now, at the end of its lane like a new message; valid until
// `expires_at`. `reset_attempts` for a retry by hand.
Result<Message> Requeue(Db& db, const Message& current, TimeMs now, TimeMs expires_at,
                        bool reset_attempts) {
  LanePlace lane;
  if (current.ordering_key) {
    Result<LanePlace> tail = LaneTail(db, current.producer, *current.ordering_key);
    if (!tail.ok()) return tail.status();
    lane = *tail;
  }
  static const std::string sql =
      Sql("UPDATE messages SET status = {queued}, version = version + 1, updated_at = ?3, "
          "next_attempt_at = ?3, expires_at = ?4, attempts = CASE WHEN ?7 THEN 0 ELSE attempts "
          "END, last_error = NULL, status_reason = NULL, lane_seq = ?5, held = ?6, paced = 0 "
          "WHERE id = ?1 AND version = ?2");
  Result<Stmt*> update = db.Prepare(sql.c_str());
  if (!update.ok()) return update.status();
  (*update)
      ->Bind(1, current.id)
      .Bind(2, current.version)
      .Bind(3, now)
      .Bind(4, expires_at)
      .Bind(5, lane.seq)
      .Bind(6, int64_t{lane.held ? 1 : 0})
      .Bind(7, int64_t{reset_attempts ? 1 : 0});
  Result<Message> requeued = ApplyAndRead(db, **update, current.producer, current.id);
  if (requeued.ok() && !lane.held) db.NoteWorkAdded();
  return requeued;
}

}  // namespace

Result<Message> CancelQueued(Db& db, const std::string& producer, const std::string& id,
                             TimeMs now) {
  Result<Message> current =
      FindIn(db, producer, id, {MessageStatus::kQueued, MessageStatus::kHeld});
  if (!current.ok()) return current.status();
  static const std::string sql =
      Sql("UPDATE messages SET status = {canceled}, version = version + 1, updated_at = ?3 "
          "WHERE id = ?1 AND version = ?2");
  Result<Stmt*> update = db.Prepare(sql.c_str());
  if (!update.ok()) return update.status();
  (*update)->Bind(1, id).Bind(2, current->version).Bind(3, now);
  Result<Message> canceled = ApplyAndRead(db, **update, producer, id);
  if (!canceled.ok()) return canceled;
  if (Status st = ReleaseAfterFinal(db, producer, id, canceled->ordering_key); !st.ok()) return st;
  if (Status st = EmitEvent(db, id, producer, canceled->callback_url, "message.canceled", now);
      !st.ok()) {
    return st;
  }
  return canceled;
}

// A redacted message has lost its text and its recipient: it cannot be sent again.
Status RefuseRedacted(Db& db, const std::string& id) {
  Result<Stmt*> stmt = db.Prepare("SELECT redacted_at IS NOT NULL FROM messages WHERE id = ?1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  const bool redacted = *row && (*stmt)->Int(0) != 0;
  (*stmt)->Reset();
  if (redacted) return Status::Conflict(fmt::format("message {} is redacted", id));
  return Status::Ok();
}

Result<Message> RetryFailed(Db& db, const std::string& producer, const std::string& id, TimeMs now,
                            TimeMs expires_at) {
  Result<Message> current = FindIn(db, producer, id, {MessageStatus::kFailed});
  if (!current.ok()) return current.status();
  if (Status st = RefuseRedacted(db, id); !st.ok()) return st;
  return Requeue(db, *current, now, expires_at, /*reset_attempts=*/true);
}

Result<Message> RetryFinal(Db& db, const std::string& producer, const std::string& id, TimeMs now,
                           TimeMs expires_at) {
  Result<Message> current =
      FindIn(db, producer, id, {MessageStatus::kFailed, MessageStatus::kCanceled});
  if (!current.ok()) return current.status();
  if (Status st = RefuseRedacted(db, id); !st.ok()) return st;
  return Requeue(db, *current, now, expires_at, /*reset_attempts=*/true);
}

Result<Message> ReleaseHeld(Db& db, const std::string& producer, const std::string& id,
                            TimeMs now) {
  Result<Message> current = FindIn(db, producer, id, {MessageStatus::kHeld});
  if (!current.ok()) return current.status();
  log::Info("message_released", {{"message_id", id}, {"producer", producer}});
  return Requeue(db, *current, now, current->expires_at, /*reset_attempts=*/false);
}

Result<std::pair<int64_t, int64_t>> ResolveHeld(Db& db, const std::string& producer,
                                                const std::optional<std::string>& to_number,
                                                const std::optional<std::string>& reason,
                                                bool cancel, TimeMs now) {
  static const std::string sql =
      Sql("SELECT id FROM messages INDEXED BY messages_status WHERE status = {held_status} AND "
          "producer = ?1 AND (?2 IS NULL OR to_number = ?2) AND "
          "(?3 IS NULL OR status_reason = ?3) ORDER BY id");
  Result<Stmt*> select = db.Prepare(sql.c_str());
  if (!select.ok()) return select.status();
  (*select)->Bind(1, producer).Bind(2, to_number).Bind(3, reason);
  std::vector<std::string> ids;
  for (;;) {
    Result<bool> row = (*select)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back((*select)->Text(0));
  }
  (*select)->Reset();
  int64_t changed = 0;
  for (const std::string& id : ids) {
    Result<Message> done =
        cancel ? CancelQueued(db, producer, id, now) : ReleaseHeld(db, producer, id, now);
    if (!done.ok()) return done.status();
    ++changed;
  }
  return std::make_pair(static_cast<int64_t>(ids.size()), changed);
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
  if (!st.ok()) return st;
  // Callback deliveries in flight in the earlier process are due again now.
  Result<Stmt*> callbacks = db.Prepare(
      "UPDATE outbox SET next_attempt_at = ?1, lease_until = NULL "
      "WHERE state = 0 AND lease_until > ?1");
  if (!callbacks.ok()) return callbacks.status();
  (*callbacks)->Bind(1, now);
  return (*callbacks)->Run();
}

}  // namespace sendq::store
