#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"

namespace sendq::store {

// A lane's messages that are not final are in messages_lanes (WHERE status < {sent}), in commit
// order: its head is the first. Both statements below are O(log n) in the lane's length.

Result<LanePlace> LaneTail(Db& db, const std::string& producer, const std::string& key) {
  static const std::string sql =
      Sql("SELECT max(lane_seq) FROM messages INDEXED BY messages_lanes "
          "WHERE producer = ?1 AND ordering_key = ?2 AND status < {sent}");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, key);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<int64_t> last = (*stmt)->OptInt(0);
  (*stmt)->Reset();
  return LanePlace{last.value_or(0) + 1, last.has_value()};
}

Status ReleaseLane(Db& db, const std::string& producer, const std::optional<std::string>& key,
                   std::vector<std::string>* released) {
  if (!key) return Status::Ok();
  static const std::string sql =
      Sql("UPDATE messages SET held = 0 WHERE id = (SELECT id FROM messages INDEXED BY "
          "messages_lanes WHERE producer = ?1 AND ordering_key = ?2 AND status < {sent} "
          "ORDER BY lane_seq LIMIT 1) AND held = 1 RETURNING id");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, *key);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Ok();
  if (released != nullptr) {
    released->push_back((*stmt)->Text(0));
  } else {
    db.NoteWorkAdded();
  }
  (*stmt)->Reset();
  return Status::Ok();
}

std::string AfterLane(const std::string& parent_id) { return "after:" + parent_id; }

Status ReleaseAfterFinal(Db& db, const std::string& producer, const std::string& id,
                         const std::optional<std::string>& key,
                         std::vector<std::string>* released) {
  if (key) {
    if (Status st = ReleaseLane(db, producer, key, released); !st.ok()) return st;
  }
  // Reactions and replies to it that could not join its lane (it had none, or was held).
  return ReleaseLane(db, producer, AfterLane(id), released);
}

}  // namespace sendq::store
