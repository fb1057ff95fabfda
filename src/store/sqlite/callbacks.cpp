// Producer callbacks: the registered endpoints, and the outbox of events written with the
// changes that raise them.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/hmac.h"

namespace sendq::store {
namespace {

std::vector<std::string> SplitEvents(const std::string& events) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= events.size()) {
    size_t comma = events.find(',', start);
    if (comma == std::string::npos) comma = events.size();
    if (comma > start) out.push_back(events.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Webhook ReadWebhook(const Stmt& s) {
  return Webhook{s.Text(0), s.Text(1), s.Text(2), SplitEvents(s.Text(3)), s.Int(4)};
}

Status InsertOutbox(Db& db, const std::optional<std::string>& webhook_id,
                    const std::string& producer, const std::string& url, const char* event,
                    const std::string& message_id, TimeMs now) {
  Result<Stmt*> insert = db.Prepare(
      "INSERT INTO outbox (event_id, webhook_id, producer, url, event, message_id, created_at, "
      "next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)");
  if (!insert.ok()) return insert.status();
  (*insert)
      ->Bind(1, "evt_" + RandomHex(12))
      .Bind(2, webhook_id)
      .Bind(3, producer)
      .Bind(4, url)
      .Bind(5, std::string(event))
      .Bind(6, message_id)
      .Bind(7, now);
  return (*insert)->Run();
}

}  // namespace

Status EmitEvent(Db& db, const std::string& message_id, const std::string& producer,
                 const std::optional<std::string>& callback_url, const char* event, TimeMs now) {
  Result<Stmt*> select = db.Prepare(
      "SELECT id, url FROM webhooks INDEXED BY webhooks_producer WHERE producer = ?1 AND "
      "instr(',' || events || ',', ',' || ?2 || ',') > 0");
  if (!select.ok()) return select.status();
  (*select)->Bind(1, producer).Bind(2, std::string(event));
  std::vector<std::pair<std::string, std::string>> endpoints;
  for (;;) {
    Result<bool> row = (*select)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    endpoints.emplace_back((*select)->Text(0), (*select)->Text(1));
  }
  (*select)->Reset();
  for (const auto& [id, url] : endpoints) {
    if (Status st = InsertOutbox(db, id, producer, url, event, message_id, now); !st.ok()) {
      return st;
    }
  }
  if (callback_url) {
    if (Status st = InsertOutbox(db, std::nullopt, producer, *callback_url, event, message_id, now);
        !st.ok()) {
      return st;
    }
  }
  if (!endpoints.empty() || callback_url) db.NoteCallbackAdded();
  return Status::Ok();
}

Result<Webhook> AddWebhook(Db& db, const Webhook& w) {
  std::string events;
  for (const std::string& e : w.events) events += (events.empty() ? "" : ",") + e;
  Result<Stmt*> insert = db.Prepare(
      "INSERT INTO webhooks (id, producer, url, events, created_at) VALUES (?1, ?2, ?3, ?4, ?5)");
  if (!insert.ok()) return insert.status();
  (*insert)->Bind(1, w.id).Bind(2, w.producer).Bind(3, w.url).Bind(4, events).Bind(5, w.created_at);
  if (Status st = (*insert)->Run(); !st.ok()) return st;
  return w;
}

Result<std::vector<Webhook>> ListWebhooks(Db& db, const std::string& producer) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id, producer, url, events, created_at FROM webhooks WHERE producer = ?1 "
      "ORDER BY created_at, id");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer);
  std::vector<Webhook> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadWebhook(**stmt));
  }
  return out;
}

Result<std::optional<Webhook>> GetWebhook(Db& db, const std::string& producer,
                                          const std::string& id) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id, producer, url, events, created_at FROM webhooks WHERE id = ?1 AND "
      "producer = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id).Bind(2, producer);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<Webhook> out;
  if (*row) out = ReadWebhook(**stmt);
  (*stmt)->Reset();
  return out;
}

Result<bool> DeleteWebhook(Db& db, const std::string& producer, const std::string& id) {
  Result<Stmt*> remove = db.Prepare("DELETE FROM webhooks WHERE id = ?1 AND producer = ?2");
  if (!remove.ok()) return remove.status();
  (*remove)->Bind(1, id).Bind(2, producer);
  if (Status st = (*remove)->Run(); !st.ok()) return st;
  if (db.RowsChanged() == 0) return false;
  static const std::string drop_sql =
      "UPDATE outbox SET state = 2, last_error = 'the webhook was deleted' "
      "WHERE webhook_id = ?1 AND state = 0";
  Result<Stmt*> drop = db.Prepare(drop_sql.c_str());
  if (!drop.ok()) return drop.status();
  (*drop)->Bind(1, id);
  if (Status st = (*drop)->Run(); !st.ok()) return st;
  return true;
}

Result<std::vector<CallbackDeliveryRecord>> ListCallbackDeliveries(Db& db,
                                                                   const std::string& producer,
                                                                   const std::string& webhook_id,
                                                                   int limit) {
  Transaction txn(&db);
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id, event_id, webhook_id, producer, url, event, message_id, created_at, attempts, "
      "state, next_attempt_at, last_error FROM outbox INDEXED BY outbox_webhook "
      "WHERE webhook_id = ?1 AND producer = ?2 ORDER BY id DESC LIMIT ?3");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, webhook_id).Bind(2, producer).Bind(3, static_cast<int64_t>(limit));
  std::vector<CallbackDeliveryRecord> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const Stmt& s = **stmt;
    CallbackDeliveryRecord r;
    r.delivery = CallbackDelivery{s.Int(0),  s.Text(1), s.OptText(2),
                                  s.Text(3), s.Text(4), s.Text(5),
                                  s.Text(6), s.Int(7),  static_cast<int>(s.Int(8)),
                                  0};
    static constexpr const char* kStates[] = {"pending", "delivered", "failed"};
    r.state = kStates[std::clamp<int64_t>(s.Int(9), 0, 2)];
    if (s.Int(9) == 0) r.next_attempt_at = s.Int(10);
    r.last_error = s.OptText(11);
    out.push_back(std::move(r));
  }
  (*stmt)->Reset();
  Result<Stmt*> tries = db.Prepare(
      "SELECT number, started_at, finished_at, http_status, error FROM callback_attempts "
      "WHERE outbox_id = ?1 ORDER BY number");
  if (!tries.ok()) return tries.status();
  for (CallbackDeliveryRecord& r : out) {
    (*tries)->Bind(1, r.delivery.outbox_id);
    for (;;) {
      Result<bool> row = (*tries)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      const Stmt& s = **tries;
      CallbackTry t{static_cast<int>(s.Int(0)), s.Int(1), s.Int(2), std::nullopt, s.OptText(4)};
      if (auto status = s.OptInt(3)) t.http_status = static_cast<int>(*status);
      r.tries.push_back(std::move(t));
    }
    (*tries)->Reset();
  }
  return out;
}

Result<std::vector<CallbackDelivery>> ClaimCallbacks(Db& db, TimeMs now, int limit,
                                                     DurationMs lease,
                                                     const std::vector<std::string>& busy) {
  Result<Stmt*> stmt = db.Prepare(
      "UPDATE outbox SET lease_until = ?2, next_attempt_at = ?2 WHERE id IN (SELECT id FROM "
      "outbox INDEXED BY outbox_due WHERE state = 0 AND next_attempt_at <= ?1 AND url NOT IN "
      "(SELECT value FROM json_each(?4)) ORDER BY next_attempt_at LIMIT ?3) RETURNING id, "
      "event_id, webhook_id, producer, url, event, message_id, created_at, attempts");
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, now)
      .Bind(2, now + lease)
      .Bind(3, static_cast<int64_t>(limit))
      .Bind(4, nlohmann::json(busy).dump());
  std::vector<CallbackDelivery> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    const Stmt& s = **stmt;
    out.push_back(CallbackDelivery{s.Int(0), s.Text(1), s.OptText(2), s.Text(3), s.Text(4),
                                   s.Text(5), s.Text(6), s.Int(7), static_cast<int>(s.Int(8)),
                                   now + lease});
  }
  return out;
}

Status RecordCallback(Db& db, const CallbackDelivery& d, const CallbackTry& t, bool delivered,
                      std::optional<TimeMs> next_attempt_at) {
  const int64_t state = delivered ? 1 : (next_attempt_at ? 0 : 2);
  // Fenced by the lease: a try that outlived it (and was claimed again) records nothing.
  Result<Stmt*> update = db.Prepare(
      "UPDATE outbox SET attempts = ?2, state = ?3, next_attempt_at = ?4, lease_until = NULL, "
      "last_error = ?5 WHERE id = ?1 AND state = 0 AND lease_until = ?6");
  if (!update.ok()) return update.status();
  (*update)
      ->Bind(1, d.outbox_id)
      .Bind(2, static_cast<int64_t>(t.number))
      .Bind(3, state)
      .Bind(4, next_attempt_at.value_or(t.finished_at))
      .Bind(5, delivered ? std::optional<std::string>() : t.error)
      .Bind(6, d.lease_until);
  if (Status st = (*update)->Run(); !st.ok()) return st;
  if (db.RowsChanged() == 0) return Status::Ok();
  Result<Stmt*> attempt = db.Prepare(
      "INSERT INTO callback_attempts (outbox_id, number, started_at, finished_at, http_status, "
      "error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (!attempt.ok()) return attempt.status();
  std::optional<int64_t> status;
  if (t.http_status) status = *t.http_status;
  (*attempt)
      ->Bind(1, d.outbox_id)
      .Bind(2, static_cast<int64_t>(t.number))
      .Bind(3, t.started_at)
      .Bind(4, t.finished_at)
      .Bind(5, status)
      .Bind(6, t.error);
  return (*attempt)->Run();
}

Result<std::optional<TimeMs>> NextCallbackAt(Db& db) {
  Result<Stmt*> stmt =
      db.Prepare("SELECT min(next_attempt_at) FROM outbox INDEXED BY outbox_due WHERE state = 0");
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<TimeMs> at = (*stmt)->OptInt(0);
  (*stmt)->Reset();
  return at;
}

}  // namespace sendq::store
