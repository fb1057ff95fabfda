// Background upkeep: retention (final messages past --retain are deleted with their ledgers),
// redaction (their personal data past --redact-after is replaced), giving space back, and the
// online backup.
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/ids.h"

namespace sendq::store {
namespace {

constexpr char kRedactedThrough[] = "redacted_through";

Result<std::string> ReadMark(Db& db, const char* name) {
  Result<Stmt*> stmt = db.Prepare("SELECT value FROM maintenance WHERE name = ?1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, std::string_view(name));
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::string value = *row ? (*stmt)->Text(0) : std::string();
  (*stmt)->Reset();
  return value;
}

Status WriteMark(Db& db, const char* name, const std::string& value) {
  Result<Stmt*> stmt = db.Prepare(
      "INSERT INTO maintenance (name, value) VALUES (?1, ?2) "
      "ON CONFLICT (name) DO UPDATE SET value = excluded.value");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, std::string_view(name)).Bind(2, value);
  return (*stmt)->Run();
}

Status RunWithId(Db& db, const char* sql, const std::string& id) {
  Result<Stmt*> stmt = db.Prepare(sql);
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id);
  return (*stmt)->Run();
}

// The recipient members of a request (a number, or a group's list of them), rewritten.
void RedactRecipients(nlohmann::json* value, const RecipientRedactor& recipient) {
  if (value->is_string()) {
    *value = recipient(value->get<std::string>());
  } else if (value->is_array()) {
    for (nlohmann::json& item : *value) RedactRecipients(&item, recipient);
  }
}

// The stored request with its body, media and recipients replaced.
std::string RedactRequest(const std::string& request, const RecipientRedactor& recipient) {
  nlohmann::json j = nlohmann::json::parse(request, nullptr, false);
  if (!j.is_object()) return nlohmann::json(kRedactedMarker).dump();
  for (auto& [key, value] : j.items()) {
    if (key == "to_number" || key == "to_numbers" || key == "to") {
      RedactRecipients(&value, recipient);
    } else if (key == "body" || key == "text" || key == "message") {
      if (!value.is_null()) value = kRedactedMarker;
    } else if (key == "media_urls" || key == "media_url" || key == "media") {
      if (value.is_array()) {
        for (nlohmann::json& item : value) item = kRedactedMarker;
      } else if (!value.is_null()) {
        value = kRedactedMarker;
      }
    }
  }
  return j.dump();
}

std::optional<std::string> RedactOpt(const std::optional<std::string>& value,
                                     const RecipientRedactor& recipient) {
  if (!value) return std::nullopt;
  return recipient(*value);
}

Status RedactMessage(Db& db, const std::string& id, TimeMs now,
                     const RecipientRedactor& recipient) {
  Result<Stmt*> read = db.Prepare(
      "SELECT to_number, sent_to_number, ordering_key, request FROM messages "
      "JOIN requests USING (id) WHERE id = ?1");
  if (!read.ok()) return read.status();
  (*read)->Bind(1, id);
  Result<bool> row = (*read)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Ok();
  const std::optional<std::string> to = (*read)->OptText(0);
  const std::optional<std::string> sent_to = (*read)->OptText(1);
  const std::optional<std::string> lane = (*read)->OptText(2);
  const std::string request = (*read)->Text(3);
  (*read)->Reset();

  // Ids, times, statuses, sender and provider ids stay; a lane key often names the recipient.
  Result<Stmt*> message = db.Prepare(
      "UPDATE messages SET to_number = ?2, sent_to_number = ?3, ordering_key = ?4, "
      "last_error = CASE WHEN last_error IS NULL THEN NULL ELSE ?5 END, body_hash = NULL, "
      "redacted_at = ?6 WHERE id = ?1");
  if (!message.ok()) return message.status();
  (*message)
      ->Bind(1, id)
      .Bind(2, RedactOpt(to, recipient))
      .Bind(3, RedactOpt(sent_to, recipient))
      .Bind(4, RedactOpt(lane, recipient))
      .Bind(5, std::string_view(kRedactedMarker))
      .Bind(6, now);
  if (Status st = (*message)->Run(); !st.ok()) return st;

  Result<Stmt*> stored = db.Prepare("UPDATE requests SET request = ?2 WHERE id = ?1");
  if (!stored.ok()) return stored.status();
  (*stored)->Bind(1, id).Bind(2, RedactRequest(request, recipient));
  if (Status st = (*stored)->Run(); !st.ok()) return st;

  const std::string marker = nlohmann::json(kRedactedMarker).dump();
  Result<Stmt*> answer = db.Prepare("UPDATE answers SET upstream_response = ?2 WHERE id = ?1");
  if (!answer.ok()) return answer.status();
  (*answer)->Bind(1, id).Bind(2, marker);
  if (Status st = (*answer)->Run(); !st.ok()) return st;

  // The ledger keeps its numbers, times and outcomes; what AgentPhone answered goes.
  Result<Stmt*> ledger = db.Prepare(
      "UPDATE attempts SET "
      "response_body = CASE WHEN response_body IS NULL THEN NULL ELSE ?2 END, "
      "error = CASE WHEN error IS NULL THEN NULL ELSE ?3 END WHERE message_id = ?1");
  if (!ledger.ok()) return ledger.status();
  (*ledger)->Bind(1, id).Bind(2, marker).Bind(3, std::string_view(kRedactedMarker));
  return (*ledger)->Run();
}

}  // namespace

Result<MaintenanceStep> DeleteFinalBefore(Db& db, TimeMs cutoff, int limit) {
  static const std::string select =
      Sql("SELECT id FROM messages WHERE id < ?1 AND status IN ({sent}, {failed}, {canceled}) "
          "ORDER BY id LIMIT ?2");
  Result<Stmt*> stmt = db.Prepare(select.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, MinMessageIdAt(cutoff)).Bind(2, static_cast<int64_t>(limit));
  std::vector<std::string> ids;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back((*stmt)->Text(0));
  }
  for (const std::string& id : ids) {
    for (const char* sql :
         {"DELETE FROM attempts WHERE message_id = ?1", "DELETE FROM requests WHERE id = ?1",
          "DELETE FROM answers WHERE id = ?1", "DELETE FROM messages WHERE id = ?1"}) {
      if (Status st = RunWithId(db, sql, id); !st.ok()) return st;
    }
  }
  // Callback deliveries that are done, and AgentPhone's webhook ids, past the same age.
  Result<Stmt*> tries = db.Prepare(
      "DELETE FROM callback_attempts WHERE outbox_id IN (SELECT id FROM outbox WHERE "
      "created_at < ?1 AND state != 0 ORDER BY id LIMIT ?2)");
  if (!tries.ok()) return tries.status();
  (*tries)->Bind(1, cutoff).Bind(2, static_cast<int64_t>(limit));
  if (Status st = (*tries)->Run(); !st.ok()) return st;
  Result<Stmt*> outbox = db.Prepare(
      "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < ?1 AND "
      "state != 0 ORDER BY id LIMIT ?2)");
  if (!outbox.ok()) return outbox.status();
  (*outbox)->Bind(1, cutoff).Bind(2, static_cast<int64_t>(limit));
  if (Status st = (*outbox)->Run(); !st.ok()) return st;
  Result<Stmt*> inbound = db.Prepare(
      "DELETE FROM inbound_webhooks WHERE id IN (SELECT id FROM inbound_webhooks WHERE "
      "received_at < ?1 LIMIT ?2)");
  if (!inbound.ok()) return inbound.status();
  (*inbound)->Bind(1, cutoff).Bind(2, static_cast<int64_t>(limit));
  if (Status st = (*inbound)->Run(); !st.ok()) return st;
  MaintenanceStep step;
  step.messages = static_cast<int64_t>(ids.size());
  step.looked_at = step.messages;
  step.more = ids.size() == static_cast<size_t>(limit);
  return step;
}

Result<MaintenanceStep> RedactFinalBefore(Db& db, TimeMs cutoff, int limit, TimeMs now,
                                          const RecipientRedactor& recipient,
                                          const std::string& after) {
  // Messages are visited in id order from where the last pass stopped; the mark never passes a
  // message that is not final yet, so it is redacted once it is. Within a pass the steps go on
  // past such a message (`after`), so it holds back only the mark, not the redaction.
  Result<std::string> through = ReadMark(db, kRedactedThrough);
  if (!through.ok()) return through.status();
  const std::string start = std::max(*through, after);
  Result<Stmt*> stmt = db.Prepare(
      "SELECT id, status, redacted_at IS NOT NULL FROM messages WHERE id > ?1 AND id < ?2 "
      "ORDER BY id LIMIT ?3");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, start).Bind(2, MinMessageIdAt(cutoff)).Bind(3, static_cast<int64_t>(limit));
  std::vector<std::string> to_redact;
  std::string mark = *through;
  // A message not final yet holds the mark before it; so does one between the mark and `start`.
  bool mark_held = start != *through;
  MaintenanceStep step;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    ++step.looked_at;
    const std::string id = (*stmt)->Text(0);
    step.last_id = id;
    const bool final = IsTerminal(static_cast<MessageStatus>((*stmt)->Int(1)));
    if (final && (*stmt)->Int(2) == 0) to_redact.push_back(id);
    if (!final) mark_held = true;
    if (!mark_held) mark = id;
  }
  (*stmt)->Reset();
  for (const std::string& id : to_redact) {
    if (Status st = RedactMessage(db, id, now, recipient); !st.ok()) return st;
  }
  if (mark != *through) {
    if (Status st = WriteMark(db, kRedactedThrough, mark); !st.ok()) return st;
  }
  step.messages = static_cast<int64_t>(to_redact.size());
  step.more = step.looked_at == limit;
  return step;
}

Status IncrementalVacuum(Db& db, int pages) {
  return db.Exec(fmt::format("PRAGMA incremental_vacuum({})", pages).c_str());
}

Result<SpaceUsage> ReadSpaceUsage(Db& db) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT (SELECT page_count FROM pragma_page_count()), "
      "(SELECT freelist_count FROM pragma_freelist_count()), "
      "(SELECT page_size FROM pragma_page_size())");
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  SpaceUsage usage{(*stmt)->Int(0) * (*stmt)->Int(2), (*stmt)->Int(1) * (*stmt)->Int(2)};
  (*stmt)->Reset();
  return usage;
}

Status BackupInto(Db& db, const std::string& path) {
  Result<Stmt*> stmt = db.Prepare("VACUUM INTO ?1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, path);
  Status st = (*stmt)->Run();
  (*stmt)->Reset();
  return st;
}

}  // namespace sendq::store
