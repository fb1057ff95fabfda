// Reads: the ledger, lists, the next deadline and the counts. Each runs on a reader connection.
#include <fmt/format.h>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/ids.h"

namespace sendq::store {

Result<std::vector<Attempt>> ReadAttempts(Db& db, const Message& m) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT number, started_at, finished_at, outcome, http_status, error, response_body, "
      "charged FROM attempts WHERE message_id = ?1 ORDER BY number");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, m.id);
  std::vector<Attempt> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Stmt& s = **stmt;
    Attempt a;
    a.message_id = m.id;
    a.number = static_cast<int>(s.Int(0));
    a.started_at = s.Int(1);
    a.finished_at = s.OptInt(2);
    if (auto o = s.OptInt(3)) a.outcome = static_cast<AttemptOutcome>(*o);
    if (auto h = s.OptInt(4)) a.http_status = static_cast<int>(*h);
    a.error = s.OptText(5);
    a.response_body = s.OptText(6);
    a.charged = s.Int(7) != 0;
    // The answer of the attempt that sent (or found) the message is kept once, in `answers`.
    if ((a.outcome == AttemptOutcome::kSent || a.outcome == AttemptOutcome::kReconciled) &&
        !a.response_body && m.upstream_response) {
      a.response_body = TruncateStoredResponse(*m.upstream_response);
    }
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<Attempt>> ListAttempts(Db& db, const std::string& producer,
                                          const std::string& id) {
  // One read transaction, so the message and its ledger agree.
  Transaction txn(&db);
  Result<std::optional<Message>> m = FindMessage(db, producer, id);
  if (!m.ok()) return m.status();
  if (!*m) return NotFound(id);
  return ReadAttempts(db, **m);
}

namespace {

// The conditions of a list's filters, for `producer` ("": every producer). Every filter has a
// fixed parameter number, so the SQL text (and its cached statement) depends only on which
// filters are present.
std::string ListConditions(const std::string& producer, const ListFilter& f) {
  std::string sql = producer.empty() ? " WHERE 1" : " WHERE producer = ?1";
  sql += StatusCondition(f.statuses);
  if (f.ordering_key) sql += " AND ordering_key = ?10";
  if (f.priority) sql += " AND priority = ?11";
  if (f.scheduled) {
    static const std::string scheduled = Sql(" AND status = {queued} AND send_at > ?12");
    static const std::string not_scheduled =
        Sql(" AND NOT (status = {queued} AND coalesce(send_at > ?12, 0))");
    sql += *f.scheduled ? scheduled : not_scheduled;
  }
  if (f.agent_id) sql += " AND agent_id = ?3";
  if (f.to_number)
    sql += f.to_number_redacted ? " AND to_number IN (?4, ?13)" : " AND to_number = ?4";
  if (f.provider_message_id) sql += " AND provider_message_id = ?5";
  // Ids begin with their creation time, so time bounds are id bounds and use the index.
  if (f.created_after) sql += " AND id >= ?6";
  if (f.created_before) sql += " AND id < ?7";
  return sql;
}

void BindListFilter(Stmt& s, const std::string& producer, const ListFilter& f) {
  if (!producer.empty()) s.Bind(1, producer);
  if (f.ordering_key) s.Bind(10, *f.ordering_key);
  if (f.priority) s.Bind(11, static_cast<int64_t>(*f.priority));
  if (f.scheduled) s.Bind(12, f.now);
  if (f.agent_id) s.Bind(3, *f.agent_id);
  if (f.to_number) s.Bind(4, *f.to_number);
  if (f.to_number && f.to_number_redacted) s.Bind(13, *f.to_number_redacted);
  if (f.provider_message_id) s.Bind(5, *f.provider_message_id);
  if (f.created_after) s.Bind(6, MinMessageIdAt(*f.created_after));
  if (f.created_before) s.Bind(7, MinMessageIdAt(*f.created_before));
}

}  // namespace

Result<ListPage> ListMessages(Db& db, const std::string& producer, const ListFilter& f) {
  std::string sql = "SELECT " SENDQ_MESSAGE_COLUMNS SENDQ_MESSAGES_FROM;
  sql += ListConditions(producer, f);
  if (f.before_id) sql += " AND id < ?8";
  sql += " ORDER BY id DESC LIMIT ?9";
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  Stmt& s = **stmt;
  BindListFilter(s, producer, f);
  if (f.before_id) s.Bind(8, *f.before_id);
  s.Bind(9, static_cast<int64_t>(f.limit) + 1);
  Result<std::vector<Message>> rows = CollectMessages(&s);
  if (!rows.ok()) return rows.status();
  ListPage page;
  page.messages = std::move(*rows);
  if (page.messages.size() > static_cast<size_t>(f.limit)) {
    page.has_more = true;
    page.messages.resize(f.limit);
  }
  return page;
}

Status ExportMessages(
    Db& db, const std::string& producer, const ListFilter& f, bool with_attempts,
    const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink) {
  // One read transaction: every page comes from the same snapshot.
  Transaction txn(&db);
  if (!txn.begin_status().ok()) return txn.begin_status();
  std::string sql = "SELECT " SENDQ_MESSAGE_COLUMNS SENDQ_MESSAGES_FROM;
  sql += ListConditions(producer, f);
  sql += " AND id > ?8 ORDER BY id LIMIT ?9";
  constexpr int kPage = 500;
  std::string after;  // below every id
  const std::vector<Attempt> none;
  for (;;) {
    Result<Stmt*> stmt = db.Prepare(sql.c_str());
    if (!stmt.ok()) return stmt.status();
    BindListFilter(**stmt, producer, f);
    (*stmt)->Bind(8, after).Bind(9, int64_t{kPage});
    Result<std::vector<Message>> page = CollectMessages(*stmt);
    if (!page.ok()) return page.status();
    for (const Message& m : *page) {
      if (with_attempts) {
        Result<std::vector<Attempt>> attempts = ReadAttempts(db, m);
        if (!attempts.ok()) return attempts.status();
        if (Status st = sink(m, *attempts); !st.ok()) return st;
      } else if (Status st = sink(m, none); !st.ok()) {
        return st;
      }
    }
    if (page->size() < static_cast<size_t>(kPage)) break;
    after = page->back().id;
  }
  return Status::Ok();
}

Result<std::optional<std::string>> FindByProviderId(Db& db, const std::string& provider_message_id,
                                                    const std::string& except_id) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id FROM messages INDEXED BY messages_provider_id WHERE provider_message_id = ?1 "
      "AND id != ?2 LIMIT 1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, provider_message_id).Bind(2, except_id);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<std::string> id;
  if (*row) id = (*stmt)->Text(0);
  (*stmt)->Reset();
  return id;
}

Result<std::optional<TimeMs>> NextWakeAt(Db& db) {
  // One due time per priority (each is the head of its own range of messages_due), the
  // soonest expiry of a waiting message, and the soonest lease end: O(log n) each.
  static const std::string sql =
      Sql("SELECT (SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
          "WHERE status = {queued} AND held = 0 AND priority = {high}), "
          "(SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
          "WHERE status = {queued} AND held = 0 AND priority = {normal}), "
          "(SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
          "WHERE status = {queued} AND held = 0 AND priority = {bulk}), "
          "(SELECT min(expires_at) FROM messages INDEXED BY messages_expiry "
          "WHERE status = {queued} AND unknown_since IS NULL), "
          "(SELECT min(lease_until) FROM messages INDEXED BY messages_leases "
          "WHERE status = {sending})");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<TimeMs> soonest;
  for (int i = 0; i < 5; ++i) {
    if (std::optional<TimeMs> t = (*stmt)->OptInt(i); t && (!soonest || *t < *soonest)) {
      soonest = t;
    }
  }
  return soonest;
}

Result<Stats> ReadStats(Db& db, TimeMs now) {
  Transaction txn(&db);
  Stats stats;
  Result<Stmt*> counts = db.Prepare("SELECT status, count(*) FROM messages GROUP BY status");
  if (!counts.ok()) return counts.status();
  for (;;) {
    Result<bool> row = (*counts)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    stats.by_status[static_cast<MessageStatus>((*counts)->Int(0))] = (*counts)->Int(1);
  }
  static const std::string oldest_sql =
      Sql("SELECT id FROM messages WHERE status = {queued} ORDER BY id LIMIT 1");
  Result<Stmt*> oldest = db.Prepare(oldest_sql.c_str());
  if (!oldest.ok()) return oldest.status();
  Result<bool> row = (*oldest)->Step();
  if (!row.ok()) return row.status();
  if (*row) stats.oldest_queued_created_at = MessageIdTime((*oldest)->Text(0));
  (*oldest)->Reset();
  // One pass over the queued messages, grouped.
  static const std::string groups_sql =
      Sql("SELECT priority, coalesce(sender, ''), count(*), sum(held), "
          "sum(held = 0 AND paced = 1 AND next_attempt_at > ?1), "
          "sum(held = 0 AND paced = 0 AND send_at > ?1), "
          "sum(held = 0 AND paced = 0 AND coalesce(send_at <= ?1, 1) AND send_window IS NOT NULL "
          "AND next_attempt_at > ?1), "
          "min(CASE WHEN held = 0 AND next_attempt_at <= ?1 THEN next_attempt_at END) "
          "FROM messages INDEXED BY messages_status WHERE status = {queued} "
          "GROUP BY priority, sender");
  Result<Stmt*> groups = db.Prepare(groups_sql.c_str());
  if (!groups.ok()) return groups.status();
  (*groups)->Bind(1, now);
  for (;;) {
    Result<bool> g = (*groups)->Step();
    if (!g.ok()) return g.status();
    if (!*g) break;
    Stmt& r = **groups;
    stats.queue.push_back(QueueGroup{static_cast<Priority>(r.Int(0)), r.Text(1), r.Int(2), r.Int(3),
                                     r.Int(4), r.Int(5), r.Int(6), r.OptInt(7)});
  }
  return stats;
}

}  // namespace sendq::store
