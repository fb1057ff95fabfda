#include <fmt/format.h>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"

namespace sendq::store {

Message ReadMessage(const Stmt& s) {
  Message m;
  m.id = s.Text(0);
  m.producer = s.Text(1);
  m.idempotency_key = s.OptText(2);
  m.request_json = s.OptText(3).value_or("");
  m.status = static_cast<MessageStatus>(s.Int(4));
  m.attempts = static_cast<int>(s.Int(5));
  m.version = s.Int(6);
  m.created_at = s.Int(7);
  m.updated_at = s.Int(8);
  m.next_attempt_at = s.Int(9);
  m.expires_at = s.Int(10);
  m.lease_until = s.OptInt(11);
  m.sent_at = s.OptInt(12);
  m.last_error = s.OptText(13);
  m.provider_message_id = s.OptText(14);
  m.channel = s.OptText(15);
  m.from_number = s.OptText(16);
  m.sent_to_number = s.OptText(17);
  m.conversation_id = s.OptText(18);
  if (auto v = s.OptInt(19)) m.reply_parent_unresolved = *v != 0;
  m.upstream_response = s.OptText(20);
  m.ordering_key = s.OptText(22);
  m.priority = static_cast<Priority>(s.Int(23));
  m.send_at = s.OptInt(24);
  m.send_window = s.OptText(25);
  m.window_zones = s.OptText(26);
  m.sender = s.OptText(27);
  m.held = s.Int(28) != 0;
  m.unknown_since = s.OptInt(29);
  m.status_reason = s.OptText(30);
  m.reaction_to = s.OptText(31);
  m.parent_id = s.OptText(32);
  m.callback_url = s.OptText(33);
  return m;
}

int AttemptCount(const Stmt& s) { return static_cast<int>(s.Int(21)); }

Result<std::vector<Message>> CollectMessages(Stmt* stmt) {
  std::vector<Message> out;
  for (;;) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadMessage(*stmt));
  }
  return out;
}

Result<std::optional<Message>> FindMessage(Db& db, const std::string& producer,
                                           const std::string& id) {
  Result<Stmt*> stmt = db.Prepare("SELECT " SENDQ_MESSAGE_COLUMNS SENDQ_MESSAGES_FROM
                                  " WHERE id = ?1 AND producer = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id).Bind(2, producer);
  Result<std::vector<Message>> rows = CollectMessages(*stmt);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<Message>();
  return std::optional<Message>(std::move(rows->front()));
}

Status AddRequests(Db& db, std::vector<ClaimedMessage>* claimed) {
  Result<Stmt*> stmt = db.Prepare("SELECT request FROM requests WHERE id = ?1");
  if (!stmt.ok()) return stmt.status();
  for (ClaimedMessage& c : *claimed) {
    (*stmt)->Reset();
    (*stmt)->Bind(1, c.message.id);
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Internal(fmt::format("message {} has no request", c.message.id));
    c.message.request_json = (*stmt)->Text(0);
  }
  (*stmt)->Reset();
  return Status::Ok();
}

Status NotFound(const std::string& id) {
  return Status::NotFound(fmt::format("no message {}", id));
}

}  // namespace sendq::store
