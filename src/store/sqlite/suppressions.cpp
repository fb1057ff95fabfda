// Opt-outs: the suppression list, what it does to queued messages, and AgentPhone's inbound
// webhooks that change it.
#include <fmt/format.h>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// AgentPhone's webhook ids are kept this long, to recognise a repeated delivery.
constexpr DurationMs kWebhookIdRetention = 24 * 3'600'000LL;

Suppression ReadSuppression(const Stmt& s) {
  return Suppression{s.Text(0), s.Text(1), s.Int(2), s.Text(3), s.OptText(4)};
}

}  // namespace

Result<bool> IsSuppressed(Db& db, const std::string& producer, const std::string& number) {
  Result<Stmt*> stmt = db.Prepare("SELECT 1 FROM suppressions WHERE producer = ?1 AND number = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, number);
  Result<bool> row = (*stmt)->Step();
  (*stmt)->Reset();
  return row;
}

Status FailSuppressed(Db& db, const std::string& producer, const std::string& number, TimeMs now,
                      const std::optional<std::string>& only_id) {
  static const std::string sql =
      Sql("UPDATE messages SET status = {failed}, version = version + 1, updated_at = ?3, "
          "last_error = ?4, status_reason = ?5, lease_until = NULL WHERE producer = ?1 AND "
          "to_number = ?2 AND status IN ({queued}, {held_status}) AND (?6 IS NULL OR id = ?6) "
          "RETURNING id, ordering_key, callback_url");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, producer)
      .Bind(2, number)
      .Bind(3, now)
      .Bind(4, std::string("suppressed: the recipient opted out of this producer's messages"))
      .Bind(5, std::string(kSuppressedReason))
      .Bind(6, only_id);
  struct Failed {
    std::string id;
    std::optional<std::string> key;
    std::optional<std::string> callback_url;
  };
  std::vector<Failed> failed;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    db.NoteChanged((*stmt)->Text(0));
    log::Info("message_suppressed", {{"message_id", (*stmt)->Text(0)}});
    failed.push_back(Failed{(*stmt)->Text(0), (*stmt)->OptText(1), (*stmt)->OptText(2)});
  }
  (*stmt)->Reset();
  for (const Failed& f : failed) {
    if (Status st = ReleaseAfterFinal(db, producer, f.id, f.key); !st.ok()) return st;
    if (Status st = EmitEvent(db, f.id, producer, f.callback_url, "message.failed", now);
        !st.ok()) {
      return st;
    }
  }
  return Status::Ok();
}

Result<Suppression> Suppress(Db& db, const Suppression& s) {
  // A number suppressed again keeps its first date.
  Result<Stmt*> stmt = db.Prepare(
      "INSERT INTO suppressions (producer, number, created_at, source, reason) "
      "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (producer, number) DO UPDATE SET "
      "source = excluded.source, reason = excluded.reason "
      "RETURNING producer, number, created_at, source, reason");
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, s.producer)
      .Bind(2, s.number)
      .Bind(3, s.created_at)
      .Bind(4, s.source)
      .Bind(5, s.reason);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  Suppression stored = ReadSuppression(**stmt);
  (*stmt)->Reset();
  if (Status st = FailSuppressed(db, s.producer, s.number, s.created_at, std::nullopt); !st.ok()) {
    return st;
  }
  return stored;
}

Result<bool> Unsuppress(Db& db, const std::string& producer, const std::string& number) {
  Result<Stmt*> stmt = db.Prepare("DELETE FROM suppressions WHERE producer = ?1 AND number = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, number);
  if (Status st = (*stmt)->Run(); !st.ok()) return st;
  return db.RowsChanged() > 0;
}

Result<std::optional<Suppression>> GetSuppression(Db& db, const std::string& producer,
                                                  const std::string& number) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT producer, number, created_at, source, reason FROM suppressions "
      "WHERE producer = ?1 AND number = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, number);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<Suppression> out;
  if (*row) out = ReadSuppression(**stmt);
  (*stmt)->Reset();
  return out;
}

Result<std::vector<Suppression>> ListSuppressions(Db& db, const std::string& producer,
                                                  const std::string& after_number, int limit) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT producer, number, created_at, source, reason FROM suppressions "
      "WHERE producer = ?1 AND number > ?2 ORDER BY number LIMIT ?3");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, after_number).Bind(3, static_cast<int64_t>(limit));
  std::vector<Suppression> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadSuppression(**stmt));
  }
  return out;
}

Result<bool> ApplyInboundWebhook(Db& db, const std::string& webhook_id, TimeMs now,
                                 const std::vector<Suppression>& suppress,
                                 const std::vector<std::pair<std::string, std::string>>& lift) {
  Result<Stmt*> prune = db.Prepare("DELETE FROM inbound_webhooks WHERE received_at < ?1");
  if (!prune.ok()) return prune.status();
  (*prune)->Bind(1, now - kWebhookIdRetention);
  if (Status st = (*prune)->Run(); !st.ok()) return st;
  Result<Stmt*> record = db.Prepare(
      "INSERT INTO inbound_webhooks (id, received_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
  if (!record.ok()) return record.status();
  (*record)->Bind(1, webhook_id).Bind(2, now);
  if (Status st = (*record)->Run(); !st.ok()) return st;
  if (db.RowsChanged() == 0) return false;  // applied before
  for (const Suppression& s : suppress) {
    Result<Suppression> stored = Suppress(db, s);
    if (!stored.ok()) return stored.status();
  }
  for (const auto& [producer, number] : lift) {
    Result<bool> removed = Unsuppress(db, producer, number);
    if (!removed.ok()) return removed.status();
  }
  return true;
}

}  // namespace sendq::store
