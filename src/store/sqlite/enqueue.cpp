#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/duration.h"
#include "util/ids.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// Requests are stored as the producer wrote them, so the same request may differ in white
// space or key order: it is the same when its JSON is. Parsing runs on the writer, inside the
// group transaction, so only small requests (all real ones) are compared that way; larger
// ones must match byte for byte.
constexpr size_t kMaxParsedComparison = 64 << 10;

bool SameRequest(const std::string& a, const std::string& b) {
  if (a == b) return true;
  if (a.size() > kMaxParsedComparison || b.size() > kMaxParsedComparison) return false;
  const nlohmann::json pa = nlohmann::json::parse(a, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json pb = nlohmann::json::parse(b, nullptr, /*allow_exceptions=*/false);
  return !pa.is_discarded() && pa == pb;
}

// The earlier message with this producer's idempotency key, and the controls it was given.
Result<std::optional<std::pair<Message, std::string>>> FindByKey(Db& db,
                                                                 const std::string& producer,
                                                                 const std::string& key) {
  Result<Stmt*> find = db.Prepare("SELECT " SENDQ_MESSAGE_COLUMNS ", controls" SENDQ_MESSAGES_FROM
                                  " WHERE producer = ?1 AND idempotency_key = ?2");
  if (!find.ok()) return find.status();
  (*find)->Bind(1, producer).Bind(2, key);
  Result<bool> found = (*find)->Step();
  if (!found.ok()) return found.status();
  if (!*found) return std::optional<std::pair<Message, std::string>>();
  Message earlier = ReadMessage(**find);
  std::string controls = (*find)->OptText(kMessageColumnCount).value_or("{}");
  (*find)->Reset();
  return std::optional<std::pair<Message, std::string>>(
      std::make_pair(std::move(earlier), std::move(controls)));
}

// Counts at most `cap` of the producer's messages to `to_number` created after `since` that a
// guard did not hold (with the same body, when `body_hash` is given).
Result<int64_t> CountRecent(Db& db, const std::string& producer, const std::string& to_number,
                            TimeMs since, std::optional<int64_t> body_hash, int cap) {
  static const std::string sql =
      Sql("SELECT count(*) FROM (SELECT 1 FROM messages INDEXED BY messages_recipient "
          "WHERE producer = ?1 AND to_number = ?2 AND created_at > ?3 AND status != "
          "{held_status} AND (?4 IS NULL OR body_hash = ?4) LIMIT ?5)");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, producer)
      .Bind(2, to_number)
      .Bind(3, since)
      .Bind(4, body_hash)
      .Bind(5, static_cast<int64_t>(cap));
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  const int64_t n = (*stmt)->Int(0);
  (*stmt)->Reset();
  return n;
}

// Why a runaway guard holds this new message (reason, text), or nothing.
struct Hold {
  std::string reason;
  std::string text;
};
Result<std::optional<Hold>> RunawayHold(Db& db, const NewMessage& nm, TimeMs now) {
  const RunawayGuards& g = nm.guards;
  if (!g.enabled() || !nm.to_number) return std::optional<Hold>();
  if (g.duplicate_cap > 0 && nm.body_hash) {
    Result<int64_t> same = CountRecent(db, nm.producer, *nm.to_number, now - g.duplicate_window,
                                       nm.body_hash, g.duplicate_cap);
    if (!same.ok()) return same.status();
    if (*same >= g.duplicate_cap) {
      return std::optional<Hold>(
          Hold{kDuplicateBodyReason,
               fmt::format("held: the same body went to this recipient {} times within {} "
                           "(--duplicate-cap); release or cancel it",
                           g.duplicate_cap, FormatDuration(g.duplicate_window))});
    }
  }
  if (g.recipient_cap > 0) {
    Result<int64_t> recent = CountRecent(db, nm.producer, *nm.to_number, now - g.recipient_window,
                                         std::nullopt, g.recipient_cap);
    if (!recent.ok()) return recent.status();
    if (*recent >= g.recipient_cap) {
      return std::optional<Hold>(Hold{
          kRecipientCapReason, fmt::format("held: {} messages went to this recipient within {} "
                                           "(--recipient-cap); release or cancel it",
                                           g.recipient_cap, FormatDuration(g.recipient_window))});
    }
  }
  return std::optional<Hold>();
}

}  // namespace

Result<EnqueueResult> InsertOrReplay(Db& db, const NewMessage& nm) {
  if (nm.idempotency_key) {
    auto earlier = FindByKey(db, nm.producer, *nm.idempotency_key);
    if (!earlier.ok()) return earlier.status();
    if (*earlier) {
      auto& [message, controls] = **earlier;
      if (!SameRequest(message.request_json, nm.request_json) || controls != nm.controls) {
        return Status::Conflict(
            "this Idempotency-Key was already used with a different request body or queue "
            "controls; use a new key for a new message");
      }
      return EnqueueResult{std::move(message), true, std::nullopt};
    }
  }
  if (nm.to_number) {
    Result<bool> suppressed = IsSuppressed(db, nm.producer, *nm.to_number);
    if (!suppressed.ok()) return suppressed.status();
    if (*suppressed) {
      EnqueueResult refused;
      refused.suppressed = true;
      return refused;
    }
  }
  const TimeMs created_at = MessageIdTime(nm.id);
  const TimeMs due = std::max(created_at, nm.first_due);
  Result<std::optional<Hold>> hold = RunawayHold(db, nm, created_at);
  if (!hold.ok()) return hold.status();
  const MessageStatus status = *hold ? MessageStatus::kHeld : MessageStatus::kQueued;
  // A reaction or reply to one of the producer's messages goes in that message's lane, or in
  // the lane of those waiting for it when it has none.
  std::optional<std::string> ordering_key = nm.ordering_key;
  bool parent_pending = false;
  if (nm.parent_id) {
    Result<std::optional<Message>> parent = FindMessage(db, nm.producer, *nm.parent_id);
    if (!parent.ok()) return parent.status();
    if (!*parent) {
      EnqueueResult refused;
      refused.parent_missing = true;
      return refused;
    }
    // A parent held by a runaway guard is outside its lane until it is released.
    if ((*parent)->ordering_key && (*parent)->status != MessageStatus::kHeld) {
      ordering_key = (*parent)->ordering_key;
    } else {
      ordering_key = AfterLane(*nm.parent_id);
      parent_pending = !IsTerminal((*parent)->status);
    }
  }
  LanePlace lane;
  // A held message stays out of its lane until it is released.
  if (ordering_key && !*hold) {
    Result<LanePlace> tail = LaneTail(db, nm.producer, *ordering_key);
    if (!tail.ok()) return tail.status();
    lane = *tail;
    lane.held = lane.held || parent_pending;
  }
  static const std::string insert_sql =
      Sql("INSERT INTO messages (id, producer, idempotency_key, agent_id, to_number, status, "
          "created_at, updated_at, next_attempt_at, expires_at, ordering_key, lane_seq, held, "
          "priority, sender, send_at, send_window, window_zones, body_hash, status_reason, "
          "last_error, reaction_to, parent_id, callback_url) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?17, ?6, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, "
          "?16, ?18, ?19, ?20, ?21, ?22, ?23)");
  Result<Stmt*> insert = db.Prepare(insert_sql.c_str());
  if (!insert.ok()) return insert.status();
  (*insert)
      ->Bind(1, nm.id)
      .Bind(2, nm.producer)
      .Bind(3, nm.idempotency_key)
      .Bind(4, nm.agent_id)
      .Bind(5, nm.to_number)
      .Bind(6, created_at)
      .Bind(7, due)
      .Bind(8, nm.expires_at)
      .Bind(9, ordering_key)
      .Bind(10, lane.seq)
      .Bind(11, int64_t{lane.held ? 1 : 0})
      .Bind(12, static_cast<int64_t>(nm.priority))
      .Bind(13, nm.sender)
      .Bind(14, nm.send_at)
      .Bind(15, nm.send_window)
      .Bind(16, nm.window_zones)
      .Bind(17, static_cast<int64_t>(status))
      .Bind(18, nm.body_hash)
      .Bind(19, *hold ? std::optional<std::string>((*hold)->reason) : std::nullopt)
      .Bind(20, *hold ? std::optional<std::string>((*hold)->text) : std::nullopt)
      .Bind(21, nm.reaction_to)
      .Bind(22, nm.parent_id)
      .Bind(23, nm.callback_url);
  Status st = (*insert)->Run();
  if (st.ok()) {
    Result<Stmt*> request =
        db.Prepare("INSERT INTO requests (id, request, controls) VALUES (?1, ?2, ?3)");
    if (!request.ok()) return request.status();
    (*request)->Bind(1, nm.id).Bind(2, nm.request_json).Bind(3, nm.controls);
    st = (*request)->Run();
  }
  // Conflict is reserved for a reused idempotency key; a constraint failure here is a bug.
  if (st.IsConflict()) return Status::Internal("insert refused: " + st.message());
  if (!st.ok()) return st;
  Message m;
  m.id = nm.id;
  m.producer = nm.producer;
  m.idempotency_key = nm.idempotency_key;
  m.request_json = nm.request_json;
  m.status = status;
  if (*hold) {
    m.status_reason = (*hold)->reason;
    m.last_error = (*hold)->text;
    log::Info("message_held", {{"message_id", nm.id}, {"reason", (*hold)->reason}});
  }
  m.version = 1;
  m.created_at = m.updated_at = created_at;
  m.next_attempt_at = due;
  m.expires_at = nm.expires_at;
  m.ordering_key = ordering_key;
  m.reaction_to = nm.reaction_to;
  m.parent_id = nm.parent_id;
  m.callback_url = nm.callback_url;
  m.priority = nm.priority;
  m.send_at = nm.send_at;
  m.send_window = nm.send_window;
  m.window_zones = nm.window_zones;
  m.sender = nm.sender;
  m.held = lane.held;
  return EnqueueResult{std::move(m), false, std::nullopt};
}

Result<EnqueueResult> Enqueue(Db& db, const NewMessage& message) {
  Result<EnqueueResult> stored = InsertOrReplay(db, message);
  if (stored.ok() && stored->added() && !stored->message.held &&
      stored->message.status == MessageStatus::kQueued) {
    db.NoteWorkAdded();
  }
  return stored;
}

}  // namespace sendq::store
