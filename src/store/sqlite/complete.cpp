// Recording how an attempt ended: the message's new state, the ledger row, and the answer.
#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"

namespace sendq::store {
namespace {

std::optional<int64_t> OptBool(const std::optional<bool>& b) {
  if (!b) return std::nullopt;
  return *b ? 1 : 0;
}

// The callback events a recorded attempt raises.
std::vector<const char*> EventsOf(const AttemptResult& r) {
  std::vector<const char*> events;
  if (r.outcome == AttemptOutcome::kUnknown) events.push_back("message.unknown");
  if (r.new_status == MessageStatus::kSent) events.push_back("message.sent");
  if (r.new_status == MessageStatus::kFailed) {
    events.push_back(r.expired ? "message.expired" : "message.failed");
  }
  return events;
}

}  // namespace

Result<bool> RecordResult(Db& db, const AttemptResult& result, std::vector<std::string>* released) {
  // A look-up read which listed sends other messages hold before this transaction: another
  // look-up may have settled with the same one since. Then this message is looked up again.
  std::optional<AttemptResult> retaken;
  if (result.outcome == AttemptOutcome::kReconciled && result.response.provider_message_id) {
    Result<std::optional<std::string>> holder =
        FindByProviderId(db, *result.response.provider_message_id, result.message_id);
    if (!holder.ok()) return holder.status();
    if (*holder) {
      retaken = result;
      retaken->outcome = AttemptOutcome::kLookup;
      retaken->new_status = MessageStatus::kQueued;
      retaken->next_attempt_at = result.finished_at + 1000;
      retaken->error = "the listed send " + *result.response.provider_message_id +
                       " was settled for " + **holder + " meanwhile; looking again";
      retaken->last_error = "outcome unknown; " + *retaken->error;
      retaken->response = SendResponseFields{};
      retaken->upstream_response.reset();
    }
  }
  const AttemptResult& r = retaken ? *retaken : result;
  static const std::string update_sql =
      Sql("UPDATE messages SET status = ?3, attempts = attempts + ?4, version = version + 1, "
          "updated_at = ?5, next_attempt_at = ?6, lease_until = NULL, last_error = ?7, "
          "sent_at = CASE WHEN ?3 = {sent} THEN ?5 ELSE sent_at END, "
          "provider_message_id = coalesce(?8, provider_message_id), "
          "channel = coalesce(?9, channel), from_number = coalesce(?10, from_number), "
          "sent_to_number = coalesce(?11, sent_to_number), "
          "conversation_id = coalesce(?12, conversation_id), "
          "reply_parent_unresolved = coalesce(?13, reply_parent_unresolved), "
          "unknown_since = CASE WHEN ?3 = {sent} THEN NULL ELSE ?14 END "
          "WHERE id = ?1 AND version = ?2 AND status = {sending} RETURNING producer, ordering_key, "
          "callback_url");
  Result<Stmt*> update = db.Prepare(update_sql.c_str());
  if (!update.ok()) return update.status();
  (*update)
      ->Bind(1, r.message_id)
      .Bind(2, r.version)
      .Bind(3, static_cast<int64_t>(r.new_status))
      .Bind(4, static_cast<int64_t>(r.charged ? 1 : 0))
      .Bind(5, r.finished_at)
      .Bind(6, r.next_attempt_at)
      .Bind(7, r.last_error)
      .Bind(8, r.response.provider_message_id)
      .Bind(9, r.response.channel)
      .Bind(10, r.response.from_number)
      .Bind(11, r.response.to_number)
      .Bind(12, r.response.conversation_id)
      .Bind(13, OptBool(r.response.reply_parent_unresolved))
      .Bind(14, r.unknown_since);
  Result<bool> row = (*update)->Step();
  if (!row.ok()) return row.status();
  // Fenced: the lease was taken over; the newer state wins.
  if (!*row) return false;
  const std::string producer = (*update)->Text(0);
  const std::optional<std::string> ordering_key = (*update)->OptText(1);
  const std::optional<std::string> callback_url = (*update)->OptText(2);
  (*update)->Reset();
  db.NoteChanged(r.message_id);
  for (const char* event : EventsOf(r)) {
    if (Status st = EmitEvent(db, r.message_id, producer, callback_url, event, r.finished_at);
        !st.ok()) {
      return st;
    }
  }
  // Queued again, it is due when the worker tells the dispatcher; final, it may release the
  // next message of its lane (work added).
  if (IsTerminal(r.new_status)) {
    if (Status st = ReleaseAfterFinal(db, producer, r.message_id, ordering_key, released);
        !st.ok()) {
      return st;
    }
  }
  // AgentPhone's answer is kept once, in `answers`; the ledger reads it from there.
  const bool answer_kept = r.upstream_response.has_value();
  if (answer_kept) {
    Result<Stmt*> answer =
        db.Prepare("INSERT OR REPLACE INTO answers (id, upstream_response) VALUES (?1, ?2)");
    if (!answer.ok()) return answer.status();
    (*answer)->Bind(1, r.message_id).Bind(2, *r.upstream_response);
    if (Status st = (*answer)->Run(); !st.ok()) return st;
  }
  Result<Stmt*> attempt = db.Prepare(
      "UPDATE attempts SET finished_at = ?3, outcome = ?4, http_status = ?5, error = ?6, "
      "response_body = ?7, charged = ?8 WHERE message_id = ?1 AND number = ?2");
  if (!attempt.ok()) return attempt.status();
  std::optional<int64_t> http_status;
  if (r.http_status) http_status = *r.http_status;
  (*attempt)
      ->Bind(1, r.message_id)
      .Bind(2, static_cast<int64_t>(r.attempt_number))
      .Bind(3, r.finished_at)
      .Bind(4, static_cast<int64_t>(r.outcome))
      .Bind(5, http_status)
      .Bind(6, r.error)
      .Bind(7, answer_kept ? std::optional<std::string>() : r.response_body)
      .Bind(8, static_cast<int64_t>(r.charged ? 1 : 0));
  if (Status st = (*attempt)->Run(); !st.ok()) return st;
  return true;
}

Status Unclaim(Db& db, const std::string& id, int64_t version, int attempt_number) {
  static const std::string update_sql =
      Sql("UPDATE messages SET status = {queued}, version = version + 1, lease_until = NULL, "
          "attempt_count = attempt_count - 1 WHERE id = ?1 AND version = ?2 AND "
          "status = {sending}");
  Result<Stmt*> update = db.Prepare(update_sql.c_str());
  if (!update.ok()) return update.status();
  (*update)->Bind(1, id).Bind(2, version);
  if (Status st = (*update)->Run(); !st.ok()) return st;
  if (db.RowsChanged() == 0) return Status::Ok();
  db.NoteChanged(id);
  db.NoteWorkAdded();
  Result<Stmt*> remove = db.Prepare("DELETE FROM attempts WHERE message_id = ?1 AND number = ?2");
  if (!remove.ok()) return remove.status();
  (*remove)->Bind(1, id).Bind(2, static_cast<int64_t>(attempt_number));
  return (*remove)->Run();
}

}  // namespace sendq::store
