#include "store/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "queue/controls.h"
#include "queue/send_window.h"
#include "store/migrations.h"
#include "store/sqlite.h"
#include "store/writer.h"
#include "util/ids.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// The queue's hot queries name their partial index with INDEXED BY. Left to itself, the planner
// prefers messages_status for `status = 0` and then walks every queued row, which makes each
// claim cost as much as the backlog is long. INDEXED BY either uses the index or fails.

// The column order ReadMessage() expects.
#define SENDQ_MESSAGE_COLUMNS                                                           \
  "id, producer, idempotency_key, request, status, attempts, version, created_at, "     \
  "updated_at, next_attempt_at, expires_at, lease_until, sent_at, last_error, "         \
  "provider_message_id, channel, from_number, sent_to_number, conversation_id, "        \
  "reply_parent_unresolved, upstream_response, attempt_count, ordering_key, priority, " \
  "send_at, send_window, window_zones, sender, held"

// The start of every claim: an UPDATE that leases the rows its WHERE clause picks (?1 the time,
// ?2 the lease end, both bound by Lease()). Callers add the WHERE clause and RETURNING.
#define SENDQ_LEASE_UPDATE                                                    \
  "UPDATE messages SET status = 1, lease_until = ?2, version = version + 1, " \
  "attempt_count = attempt_count + 1, updated_at = ?1, paced = 0 "

Message ReadMessage(const Stmt& s) {
  Message m;
  m.id = s.Text(0);
  m.producer = s.Text(1);
  m.idempotency_key = s.OptText(2);
  m.request_json = s.Text(3);
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
  return m;
}

int AttemptCount(const Stmt& s) { return static_cast<int>(s.Int(21)); }

std::optional<int64_t> OptBool(const std::optional<bool>& b) {
  if (!b) return std::nullopt;
  return *b ? 1 : 0;
}

// Holds an exclusive advisory lock on a file for the life of the store.
class LockFile {
 public:
  static Result<std::unique_ptr<LockFile>> Acquire(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::IOError(fmt::format("open {}: {}", path, strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Status::Unavailable(
          fmt::format("another sendq process is using this database (lock {} is held)", path));
    }
    return std::unique_ptr<LockFile>(new LockFile(fd));
  }
  ~LockFile() { ::close(fd_); }

 private:
  explicit LockFile(int fd) : fd_(fd) {}
  int fd_;
};

Status ApplyMigrations(Db& db) {
  Result<Stmt*> version_stmt = db.Prepare("PRAGMA user_version");
  if (!version_stmt.ok()) return version_stmt.status();
  Result<bool> row = (*version_stmt)->Step();
  if (!row.ok()) return row.status();
  int current = static_cast<int>((*version_stmt)->Int(0));
  (*version_stmt)->Reset();
  const auto& migrations = EmbeddedMigrations();
  int latest = migrations.empty() ? 0 : migrations.back().version;
  if (current > latest) {
    return Status::InvalidArgument(
        fmt::format("the database is at schema version {}, newer than this sendq knows ({}); "
                    "upgrade sendq",
                    current, latest));
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    Transaction txn(&db, Transaction::Mode::kImmediate);
    if (!txn.begin_status().ok()) return txn.begin_status();
    Status st = db.Exec(m.sql);
    if (st.ok()) st = db.Exec(fmt::format("PRAGMA user_version = {}", m.version).c_str());
    if (st.ok()) st = txn.Commit();
    if (!st.ok()) {
      return Status::Internal(fmt::format("migration {} failed: {}", m.name, st.ToString()));
    }
    log::Info("schema_migrated", {{"version", m.version}, {"migration", m.name}});
  }
  return Status::Ok();
}

// Connections for reads, handed out one per caller and returned when done.
class ReaderPool {
 public:
  ReaderPool(std::string path, bool synchronous_full, int max_readers)
      : path_(std::move(path)),
        synchronous_full_(synchronous_full),
        max_readers_(static_cast<size_t>(std::max(max_readers, 1))) {}

  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<Db> db) : pool_(pool), db_(std::move(db)) {}
    ~Lease() {
      if (db_) pool_->Return(std::move(db_));
    }
    Lease(Lease&&) = default;
    Db& operator*() { return *db_; }
    Db* operator->() { return db_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Db> db_;
  };

  // Waits while max_readers connections are in use.
  Result<Lease> Acquire() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_readers_; });
      if (!idle_.empty()) {
        std::unique_ptr<Db> db = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(db));
      }
      ++open_;
    }
    Result<std::unique_ptr<Db>> db = Db::Open(path_, synchronous_full_, kReaderCacheKib);
    if (!db.ok()) {
      {
        std::lock_guard<std::mutex> guard(mu_);
        --open_;
      }
      cv_.notify_one();
      return db.status();
    }
    return Lease(this, std::move(*db));
  }

 private:
  void Return(std::unique_ptr<Db> db) {
    db->ResetAll();  // end any read transaction a half-read statement holds open
    {
      std::lock_guard<std::mutex> guard(mu_);
      idle_.push_back(std::move(db));
    }
    cv_.notify_one();
  }

  const std::string path_;
  const bool synchronous_full_;
  const size_t max_readers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Db>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                        // GUARDED_BY(mu_): connections opened
};

// Runs a prepared statement that returns message rows.
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
  Result<Stmt*> stmt =
      db.Prepare("SELECT " SENDQ_MESSAGE_COLUMNS " FROM messages WHERE id = ?1 AND producer = ?2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id).Bind(2, producer);
  Result<std::vector<Message>> rows = CollectMessages(*stmt);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return std::optional<Message>();
  return std::optional<Message>(std::move(rows->front()));
}

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

// Where a message joins its lane: after every message there that is not final. `held` when
// there is one (it is not the lane's head).
struct LanePlace {
  int64_t seq = 0;
  bool held = false;
};

Result<LanePlace> LaneTail(Db& db, const std::string& producer, const std::string& key) {
  Result<Stmt*> stmt = db.Prepare(
      "SELECT max(lane_seq) FROM messages INDEXED BY messages_lanes "
      "WHERE producer = ?1 AND ordering_key = ?2 AND status < 2");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, key);
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  std::optional<int64_t> last = (*stmt)->OptInt(0);
  (*stmt)->Reset();
  return LanePlace{last.value_or(0) + 1, last.has_value()};
}

// A message of this lane became final: its first message that is not final may go now.
Status ReleaseLane(Db& db, const std::string& producer, const std::optional<std::string>& key) {
  if (!key) return Status::Ok();
  Result<Stmt*> stmt = db.Prepare(
      "UPDATE messages SET held = 0 WHERE id = (SELECT id FROM messages INDEXED BY "
      "messages_lanes WHERE producer = ?1 AND ordering_key = ?2 AND status < 2 "
      "ORDER BY lane_seq LIMIT 1) AND held = 1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, producer).Bind(2, *key);
  return (*stmt)->Run();
}

// Inserts a new message, or finds the earlier one with the same idempotency key: the same
// request with the same controls is a replay, anything else is Conflict. Runs on the writer.
Result<EnqueueResult> InsertOrReplay(Db& db, const NewMessage& nm) {
  if (nm.idempotency_key) {
    Result<Stmt*> find = db.Prepare("SELECT " SENDQ_MESSAGE_COLUMNS
                                    ", controls FROM messages WHERE producer = ?1 AND "
                                    "idempotency_key = ?2");
    if (!find.ok()) return find.status();
    (*find)->Bind(1, nm.producer).Bind(2, *nm.idempotency_key);
    Result<bool> found = (*find)->Step();
    if (!found.ok()) return found.status();
    if (*found) {
      Message earlier = ReadMessage(**find);
      const std::string earlier_controls = (*find)->OptText(29).value_or("{}");
      (*find)->Reset();
      if (!SameRequest(earlier.request_json, nm.request_json) || earlier_controls != nm.controls) {
        return Status::Conflict(
            "this Idempotency-Key was already used with a different request body or queue "
            "controls; use a new key for a new message");
      }
      return EnqueueResult{std::move(earlier), true, std::nullopt};
    }
  }
  const TimeMs created_at = MessageIdTime(nm.id);
  const TimeMs due = std::max(created_at, nm.first_due);
  LanePlace lane;
  if (nm.ordering_key) {
    Result<LanePlace> tail = LaneTail(db, nm.producer, *nm.ordering_key);
    if (!tail.ok()) return tail.status();
    lane = *tail;
  }
  Result<Stmt*> insert = db.Prepare(
      "INSERT INTO messages (id, producer, idempotency_key, request, agent_id, to_number, "
      "status, created_at, updated_at, next_attempt_at, expires_at, ordering_key, lane_seq, "
      "held, priority, sender, send_at, send_window, window_zones, controls) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?9, ?8, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
      "?17, ?18)");
  if (!insert.ok()) return insert.status();
  (*insert)
      ->Bind(1, nm.id)
      .Bind(2, nm.producer)
      .Bind(3, nm.idempotency_key)
      .Bind(4, nm.request_json)
      .Bind(5, nm.agent_id)
      .Bind(6, nm.to_number)
      .Bind(7, created_at)
      .Bind(8, nm.expires_at)
      .Bind(9, due)
      .Bind(10, nm.ordering_key)
      .Bind(11, lane.seq)
      .Bind(12, static_cast<int64_t>(lane.held ? 1 : 0))
      .Bind(13, static_cast<int64_t>(nm.priority))
      .Bind(14, nm.sender)
      .Bind(15, nm.send_at)
      .Bind(16, nm.send_window)
      .Bind(17, nm.window_zones)
      .Bind(18, nm.controls);
  Status st = (*insert)->Run();
  // Conflict is reserved for a reused idempotency key; a constraint failure here is a bug.
  if (st.IsConflict()) return Status::Internal("insert refused: " + st.message());
  if (!st.ok()) return st;
  Message m;
  m.id = nm.id;
  m.producer = nm.producer;
  m.idempotency_key = nm.idempotency_key;
  m.request_json = nm.request_json;
  m.status = MessageStatus::kQueued;
  m.version = 1;
  m.created_at = m.updated_at = created_at;
  m.next_attempt_at = due;
  m.expires_at = nm.expires_at;
  m.ordering_key = nm.ordering_key;
  m.priority = nm.priority;
  m.send_at = nm.send_at;
  m.send_window = nm.send_window;
  m.window_zones = nm.window_zones;
  m.sender = nm.sender;
  m.held = lane.held;
  return EnqueueResult{std::move(m), false, std::nullopt};
}

Status NotFound(const std::string& id) {
  return Status::NotFound(fmt::format("no message {}", id));
}

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<LockFile> lock, std::unique_ptr<Db> write_db, std::string path,
              StoreOptions options, const Clock* clock, OnCommit on_commit)
      : clock_(clock),
        lock_(std::move(lock)),
        readers_(path, options.synchronous_full, options.max_readers),
        writer_(std::move(write_db), std::move(on_commit)) {}

  Result<EnqueueResult> Enqueue(const NewMessage& nm) override {
    return writer_.Call<EnqueueResult>([&](Db& db) { return InsertOrReplay(db, nm); });
  }

  Result<EnqueueResult> EnqueueAndClaim(const NewMessage& nm, const ClaimOptions& o) override {
    return writer_.Call<EnqueueResult>([&](Db& db) { return InsertAndClaim(db, nm, o); });
  }

  void EnqueueAsync(NewMessage nm, std::optional<ClaimOptions> claim,
                    std::function<void(Result<EnqueueResult>)> done) override {
    auto out = std::make_shared<std::optional<Result<EnqueueResult>>>();
    writer_.Submit(
        [this, nm = std::move(nm), claim, out](Db& db) {
          out->emplace(claim ? InsertAndClaim(db, nm, *claim) : InsertOrReplay(db, nm));
          return (*out)->ok() ? Status::Ok() : (*out)->status();
        },
        [out, done = std::move(done)](Status st) {
          if (st.ok()) {
            done(std::move(**out));
          } else {
            done(std::move(st));
          }
        });
  }

  Result<std::vector<Result<EnqueueResult>>> EnqueueBatch(
      const std::vector<NewMessage>& batch) override {
    return writer_.Call<std::vector<Result<EnqueueResult>>>(
        [&](Db& db) -> Result<std::vector<Result<EnqueueResult>>> {
          std::vector<Result<EnqueueResult>> out;
          out.reserve(batch.size());
          for (const NewMessage& nm : batch) {
            Result<EnqueueResult> one = InsertOrReplay(db, nm);
            // A reused key is that item's answer; anything else (a full disk) fails them all.
            if (!one.ok() && !one.status().IsConflict()) return one.status();
            out.push_back(std::move(one));
          }
          return out;
        });
  }

  Result<Message> Get(const std::string& producer, const std::string& id) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    Result<std::optional<Message>> m = FindMessage(**db, producer, id);
    if (!m.ok()) return m.status();
    if (!*m) return NotFound(id);
    return std::move(**m);
  }

  Result<std::vector<Attempt>> ListAttempts(const std::string& producer,
                                            const std::string& id) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    // One read transaction, so the message and its ledger agree.
    Transaction txn(&**db);
    Result<std::optional<Message>> m = FindMessage(**db, producer, id);
    if (!m.ok()) return m.status();
    if (!*m) return NotFound(id);
    Result<Stmt*> stmt = (*db)->Prepare(
        "SELECT number, started_at, finished_at, outcome, http_status, error, response_body, "
        "charged FROM attempts WHERE message_id = ?1 ORDER BY number");
    if (!stmt.ok()) return stmt.status();
    (*stmt)->Bind(1, id);
    std::vector<Attempt> out;
    for (;;) {
      Result<bool> row = (*stmt)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Stmt& s = **stmt;
      Attempt a;
      a.message_id = id;
      a.number = static_cast<int>(s.Int(0));
      a.started_at = s.Int(1);
      a.finished_at = s.OptInt(2);
      if (auto o = s.OptInt(3)) a.outcome = static_cast<AttemptOutcome>(*o);
      if (auto h = s.OptInt(4)) a.http_status = static_cast<int>(*h);
      a.error = s.OptText(5);
      a.response_body = s.OptText(6);
      a.charged = s.Int(7) != 0;
      out.push_back(std::move(a));
    }
    return out;
  }

  Result<ListPage> List(const std::string& producer, const ListFilter& f) override {
    std::string sql = "SELECT " SENDQ_MESSAGE_COLUMNS " FROM messages WHERE producer = ?1";
    // Every filter has a fixed parameter number, so the SQL text (and its cached statement)
    // depends only on which filters are present.
    if (!f.statuses.empty()) {
      // At most five statuses: each list of them is its own cached statement.
      sql += " AND status IN (";
      for (size_t i = 0; i < f.statuses.size(); ++i) {
        sql += fmt::format("{}{}", i == 0 ? "" : ", ", static_cast<int>(f.statuses[i]));
      }
      sql += ")";
    }
    if (f.ordering_key) sql += " AND ordering_key = ?10";
    if (f.priority) sql += " AND priority = ?11";
    if (f.scheduled) {
      sql += *f.scheduled ? " AND status = 0 AND send_at > ?12"
                          : " AND NOT (status = 0 AND coalesce(send_at > ?12, 0))";
    }
    if (f.agent_id) sql += " AND agent_id = ?3";
    if (f.to_number) sql += " AND to_number = ?4";
    if (f.provider_message_id) sql += " AND provider_message_id = ?5";
    // Ids begin with their creation time, so time bounds are id bounds and use the index.
    if (f.created_after) sql += " AND id >= ?6";
    if (f.created_before) sql += " AND id < ?7";
    if (f.before_id) sql += " AND id < ?8";
    sql += " ORDER BY id DESC LIMIT ?9";
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    Result<Stmt*> stmt = (*db)->Prepare(sql.c_str());
    if (!stmt.ok()) return stmt.status();
    Stmt& s = **stmt;
    s.Bind(1, producer);
    if (f.ordering_key) s.Bind(10, *f.ordering_key);
    if (f.priority) s.Bind(11, static_cast<int64_t>(*f.priority));
    if (f.scheduled) s.Bind(12, f.now);
    if (f.agent_id) s.Bind(3, *f.agent_id);
    if (f.to_number) s.Bind(4, *f.to_number);
    if (f.provider_message_id) s.Bind(5, *f.provider_message_id);
    if (f.created_after) s.Bind(6, MinMessageIdAt(*f.created_after));
    if (f.created_before) s.Bind(7, MinMessageIdAt(*f.created_before));
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

  Result<Message> Cancel(const std::string& producer, const std::string& id, TimeMs now) override {
    return Transition(producer, id, MessageStatus::kQueued,
                      "UPDATE messages SET status = 4, version = version + 1, updated_at = ?3 "
                      "WHERE id = ?1 AND version = ?2 RETURNING " SENDQ_MESSAGE_COLUMNS,
                      now, 0);
  }

  Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now,
                        TimeMs expires_at) override {
    // Retried by hand, a message joins the end of its lane again, like a new one.
    return Transition(producer, id, MessageStatus::kFailed,
                      "UPDATE messages SET status = 0, version = version + 1, updated_at = ?3, "
                      "next_attempt_at = ?3, expires_at = ?4, attempts = 0, last_error = NULL, "
                      "lane_seq = ?5, held = ?6, paced = 0 "
                      "WHERE id = ?1 AND version = ?2 RETURNING " SENDQ_MESSAGE_COLUMNS,
                      now, expires_at);
  }

  Result<std::vector<ClaimedMessage>> Claim(const ClaimOptions& o) override {
    return writer_.Call<std::vector<ClaimedMessage>>([&](Db& db) { return ClaimDue(db, o); });
  }

  Result<bool> Complete(const AttemptResult& r) override {
    return writer_.Call<bool>([&](Db& db) { return RecordResult(db, r); });
  }

  std::future<Result<CompleteAndClaimResult>> CompleteAndClaimAsync(AttemptResult result,
                                                                    ClaimOptions next) override {
    return writer_.CallAsync<CompleteAndClaimResult>(
        [this, result = std::move(result), next](Db& db) -> Result<CompleteAndClaimResult> {
          Result<bool> recorded = RecordResult(db, result);
          if (!recorded.ok()) return recorded.status();
          CompleteAndClaimResult out{*recorded, {}};
          if (next.limit > 0) {
            Result<std::vector<ClaimedMessage>> claimed = ClaimDue(db, next);
            if (!claimed.ok()) return claimed.status();
            out.claimed = std::move(*claimed);
          }
          return out;
        });
  }

  Status Unclaim(const std::string& id, int64_t version, int attempt_number) override {
    return writer_.Run([&](Db& db) -> Status {
      Result<Stmt*> update = db.Prepare(
          "UPDATE messages SET status = 0, version = version + 1, lease_until = NULL, "
          "attempt_count = attempt_count - 1 WHERE id = ?1 AND version = ?2 AND status = 1");
      if (!update.ok()) return update.status();
      (*update)->Bind(1, id).Bind(2, version);
      if (Status st = (*update)->Run(); !st.ok()) return st;
      if (db.Changes() == 0) return Status::Ok();
      db.NoteChanged(id);
      Result<Stmt*> remove =
          db.Prepare("DELETE FROM attempts WHERE message_id = ?1 AND number = ?2");
      if (!remove.ok()) return remove.status();
      (*remove)->Bind(1, id).Bind(2, static_cast<int64_t>(attempt_number));
      return (*remove)->Run();
    });
  }

  Result<std::optional<TimeMs>> NextWakeAt() override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    // One due time per priority (each is the head of its own range of messages_due), the
    // soonest expiry of a waiting message, and the soonest lease end.
    Result<Stmt*> stmt = (*db)->Prepare(
        "SELECT (SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
        "WHERE status = 0 AND held = 0 AND priority = 0), "
        "(SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
        "WHERE status = 0 AND held = 0 AND priority = 1), "
        "(SELECT min(next_attempt_at) FROM messages INDEXED BY messages_due "
        "WHERE status = 0 AND held = 0 AND priority = 2), "
        "(SELECT min(expires_at) FROM messages INDEXED BY messages_expiry WHERE status = 0), "
        "(SELECT min(lease_until) FROM messages INDEXED BY messages_leases WHERE status = 1)");
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

  Result<Stats> GetStats(TimeMs now) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    Transaction txn(&**db);
    Stats stats;
    Result<Stmt*> counts = (*db)->Prepare("SELECT status, count(*) FROM messages GROUP BY status");
    if (!counts.ok()) return counts.status();
    for (;;) {
      Result<bool> row = (*counts)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      stats.by_status[static_cast<MessageStatus>((*counts)->Int(0))] = (*counts)->Int(1);
    }
    Result<Stmt*> oldest =
        (*db)->Prepare("SELECT id FROM messages WHERE status = 0 ORDER BY id LIMIT 1");
    if (!oldest.ok()) return oldest.status();
    Result<bool> row = (*oldest)->Step();
    if (!row.ok()) return row.status();
    if (*row) stats.oldest_queued_created_at = MessageIdTime((*oldest)->Text(0));
    (*oldest)->Reset();
    // One pass over the queued messages (messages_due and the held ones), grouped.
    Result<Stmt*> groups = (*db)->Prepare(
        "SELECT priority, coalesce(sender, ''), count(*), sum(held), "
        "sum(held = 0 AND paced = 1 AND next_attempt_at > ?1), "
        "sum(held = 0 AND paced = 0 AND send_at > ?1), "
        "sum(held = 0 AND paced = 0 AND coalesce(send_at <= ?1, 1) AND send_window IS NOT NULL "
        "AND next_attempt_at > ?1), "
        "min(CASE WHEN held = 0 AND next_attempt_at <= ?1 THEN next_attempt_at END) "
        "FROM messages INDEXED BY messages_expiry WHERE status = 0 GROUP BY priority, sender");
    if (!groups.ok()) return groups.status();
    (*groups)->Bind(1, now);
    for (;;) {
      Result<bool> g = (*groups)->Step();
      if (!g.ok()) return g.status();
      if (!*g) break;
      Stmt& r = **groups;
      stats.queue.push_back(QueueGroup{static_cast<Priority>(r.Int(0)), r.Text(1), r.Int(2),
                                       r.Int(3), r.Int(4), r.Int(5), r.Int(6), r.OptInt(7)});
    }
    return stats;
  }

  Status CheckWritable() override {
    return writer_.Run([](Db& db) { return db.Exec("PRAGMA user_version"); });
  }

  // Voids every lease: called once at open, when no other process can hold one.
  Status VoidLeases() {
    TimeMs now = clock_->NowMs();
    return writer_.Run([now](Db& db) -> Status {
      Result<Stmt*> stmt =
          db.Prepare("UPDATE messages SET lease_until = ?1 WHERE status = 1 AND lease_until > ?1");
      if (!stmt.ok()) return stmt.status();
      (*stmt)->Bind(1, now);
      Status st = (*stmt)->Run();
      if (st.ok() && db.Changes() > 0) {
        log::Warn("leases_voided",
                  {{"messages", db.Changes()},
                   {"reason", "left in sending by an earlier process; outcome unknown"}});
      }
      return st;
    });
  }

 private:
  // A producer-initiated state change that is legal only from `from`. The version check keeps
  // it atomic against a worker that claims the message in between.
  Result<Message> Transition(const std::string& producer, const std::string& id, MessageStatus from,
                             const char* sql, TimeMs now, TimeMs expires_at) {
    return writer_.Call<Message>([&](Db& db) -> Result<Message> {
      Result<std::optional<Message>> current = FindMessage(db, producer, id);
      if (!current.ok()) return current.status();
      if (!*current) return NotFound(id);
      if ((*current)->status != from) {
        return Status::Conflict(
            fmt::format("message {} is {}", id, StatusName((*current)->status)));
      }
      LanePlace lane;
      if (expires_at != 0 && (*current)->ordering_key) {
        Result<LanePlace> tail = LaneTail(db, producer, *(*current)->ordering_key);
        if (!tail.ok()) return tail.status();
        lane = *tail;
      }
      Result<Stmt*> stmt = db.Prepare(sql);
      if (!stmt.ok()) return stmt.status();
      (*stmt)->Bind(1, id).Bind(2, (*current)->version).Bind(3, now);
      if (expires_at != 0) {
        (*stmt)->Bind(4, expires_at).Bind(5, lane.seq).Bind(6, int64_t{lane.held ? 1 : 0});
      }
      Result<std::vector<Message>> rows = CollectMessages(*stmt);
      if (!rows.ok()) return rows.status();
      if (rows->empty()) return Status::Internal("message changed during a transition");
      db.NoteChanged(id);
      Message& changed = rows->front();
      if (IsTerminal(changed.status)) {
        if (Status st = ReleaseLane(db, producer, changed.ordering_key); !st.ok()) return st;
      }
      return std::move(changed);
    });
  }

  // Inserts (or replays) a message and, if it may go now, leases it: EnqueueAndClaim, on the
  // writer.
  Result<EnqueueResult> InsertAndClaim(Db& db, const NewMessage& nm, const ClaimOptions& o) {
    Result<EnqueueResult> stored = InsertOrReplay(db, nm);
    if (!stored.ok() || stored->replayed) return stored;
    const Message& m = stored->message;
    if (m.held || m.next_attempt_at > o.now) return stored;
    Candidate candidate{m.id, m.sender.value_or(""), m.send_window, m.window_zones, false};
    Result<std::vector<ClaimedMessage>> claimed = AdmitAndLease(db, {candidate}, o);
    if (!claimed.ok()) return claimed.status();
    if (!claimed->empty()) {
      share_.Took(m.priority);
      stored->claimed = std::move(claimed->front());
    }
    return stored;
  }

  // A due message the claim looked at.
  struct Candidate {
    std::string id;
    std::string sender;
    std::optional<std::string> send_window;
    std::optional<std::string> window_zones;
    bool paced = false;  // its due time is a pacing slot booked for it
  };

  // Claim(), on the writer. Each priority's due messages come from messages_due in due order;
  // a lane's later messages are not in it (held), so nothing is scanned to keep order.
  Result<std::vector<ClaimedMessage>> ClaimDue(Db& db, const ClaimOptions& o) {
    if (o.housekeeping) {
      Status st = ExpireQueued(db, o.now);
      if (st.ok()) st = RecoverExpiredLeases(db, o);
      if (!st.ok()) return st;
    }
    std::vector<ClaimedMessage> out;
    // Each round claims from the first priority that has an admissible due message, as many
    // as the bulk share allows, then looks at the order again.
    for (int round = 0; static_cast<int>(out.size()) < o.limit && round < kMaxClaimRounds;
         ++round) {
      bool took_any = false;
      for (Priority p : share_.Order()) {
        int want = o.limit - static_cast<int>(out.size());
        if (p != Priority::kBulk) {
          want = std::min(want, std::max(1, share_.UntilBulkOwed()));
        } else if (share_.UntilBulkOwed() <= 0) {
          want = 1;  // owed one claim, not all of them
        }
        Result<std::vector<Candidate>> due = DueCandidates(db, p, o.now, want);
        if (!due.ok()) return due.status();
        if (due->empty()) continue;
        Result<std::vector<ClaimedMessage>> claimed = AdmitAndLease(db, *due, o);
        if (!claimed.ok()) return claimed.status();
        for (ClaimedMessage& c : *claimed) {
          share_.Took(p);
          out.push_back(std::move(c));
        }
        if (!claimed->empty()) {
          took_any = true;
          break;
        }
      }
      if (!took_any) break;
    }
    return out;
  }

  // Up to `limit` due messages of priority `p` that nothing holds, soonest first.
  static Result<std::vector<Candidate>> DueCandidates(Db& db, Priority p, TimeMs now, int limit) {
    Result<Stmt*> stmt = db.Prepare(
        "SELECT id, sender, send_window, window_zones, paced FROM messages INDEXED BY "
        "messages_due WHERE status = 0 AND held = 0 AND priority = ?1 AND next_attempt_at <= ?2 "
        "AND expires_at > ?2 ORDER BY next_attempt_at LIMIT ?3");
    if (!stmt.ok()) return stmt.status();
    (*stmt)->Bind(1, static_cast<int64_t>(p)).Bind(2, now).Bind(3, static_cast<int64_t>(limit));
    std::vector<Candidate> out;
    for (;;) {
      Result<bool> row = (*stmt)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Stmt& r = **stmt;
      out.push_back(Candidate{r.Text(0), r.OptText(1).value_or(""), r.OptText(2), r.OptText(3),
                              r.Int(4) != 0});
    }
    return out;
  }

  // Leases the candidates that may go now; moves each of the others to the time it may (outside
  // its send window: when the window opens; without a pacing token: to the slot booked for it).
  static Result<std::vector<ClaimedMessage>> AdmitAndLease(Db& db,
                                                           const std::vector<Candidate>& candidates,
                                                           const ClaimOptions& o) {
    Result<Stmt*> lease = db.Prepare(
        SENDQ_LEASE_UPDATE "WHERE id = ?3 AND status = 0 RETURNING " SENDQ_MESSAGE_COLUMNS);
    if (!lease.ok()) return lease.status();
    std::vector<std::string> admitted;
    for (const Candidate& c : candidates) {
      TimeMs allowed = o.now;
      bool booked = false;  // `allowed` is a pacing slot booked for this message
      if (c.send_window && c.window_zones) {
        std::string problem;
        std::optional<SendWindow> window =
            ParseSendWindow(nlohmann::json::parse(*c.send_window, nullptr, false), &problem);
        if (window) {
          std::optional<TimeMs> opens = WindowOpenAt(*window, SplitZones(*c.window_zones), o.now);
          // A window that never opens again (the zone rules changed) no longer applies.
          if (opens) allowed = *opens;
        }
      }
      // A slot booked earlier is used only now, at its time; a message moved for its window or
      // a 429 pause books again when it comes due.
      if (allowed == o.now && o.pacer != nullptr) {
        allowed = std::max(allowed, o.pacer->PausedUntil(c.sender, o.now));
        if (allowed == o.now && !c.paced) {
          allowed = o.pacer->Book(c.sender, o.now);
          booked = allowed > o.now;
        }
      }
      if (allowed > o.now) {
        if (Status st = Postpone(db, c.id, allowed, booked); !st.ok()) return st;
        continue;
      }
      admitted.push_back(c.id);
    }
    std::vector<ClaimedMessage> out;
    for (const std::string& id : admitted) {
      (*lease)->Reset();
      (*lease)->Bind(3, id);
      Result<std::vector<ClaimedMessage>> one = Lease(db, **lease, o);
      if (!one.ok()) return one.status();
      for (ClaimedMessage& c : *one) out.push_back(std::move(c));
    }
    return out;
  }

  static std::vector<std::string> SplitZones(const std::string& zones) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < zones.size()) {
      size_t comma = zones.find(',', start);
      if (comma == std::string::npos) comma = zones.size();
      out.push_back(zones.substr(start, comma - start));
      start = comma + 1;
    }
    return out;
  }

  // Not now: due at `at` instead, without an attempt. `booked`: `at` is its pacing slot.
  static Status Postpone(Db& db, const std::string& id, TimeMs at, bool booked) {
    Result<Stmt*> stmt =
        db.Prepare("UPDATE messages SET next_attempt_at = ?2, paced = ?3 WHERE id = ?1");
    if (!stmt.ok()) return stmt.status();
    (*stmt)->Bind(1, id).Bind(2, at).Bind(3, int64_t{booked ? 1 : 0});
    return (*stmt)->Run();
  }

  // Runs `claim`, a SENDQ_LEASE_UPDATE with its own parameters (from ?3) bound, leasing the
  // rows until o.now + o.lease, and writes the open attempt row of each.
  static Result<std::vector<ClaimedMessage>> Lease(Db& db, Stmt& claim, const ClaimOptions& o) {
    claim.Bind(1, o.now).Bind(2, o.now + o.lease);
    std::vector<ClaimedMessage> out;
    for (;;) {
      Result<bool> row = claim.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back(ClaimedMessage{ReadMessage(claim), AttemptCount(claim)});
    }
    claim.Reset();
    Result<Stmt*> insert =
        db.Prepare("INSERT INTO attempts (message_id, number, started_at) VALUES (?1, ?2, ?3)");
    if (!insert.ok()) return insert.status();
    for (const ClaimedMessage& c : out) {
      db.NoteChanged(c.message.id);
      (*insert)->Reset();
      (*insert)->Bind(1, c.message.id).Bind(2, c.attempt_number).Bind(3, o.now);
      if (Status ins = (*insert)->Run(); !ins.ok()) return ins;
    }
    return out;
  }

  // Complete(), on the writer.
  static Result<bool> RecordResult(Db& db, const AttemptResult& r) {
    Result<Stmt*> update = db.Prepare(
        "UPDATE messages SET status = ?3, attempts = attempts + ?4, version = version + 1, "
        "updated_at = ?5, next_attempt_at = ?6, lease_until = NULL, last_error = ?7, "
        "sent_at = CASE WHEN ?3 = 2 THEN ?5 ELSE sent_at END, "
        "provider_message_id = coalesce(?8, provider_message_id), "
        "channel = coalesce(?9, channel), from_number = coalesce(?10, from_number), "
        "sent_to_number = coalesce(?11, sent_to_number), "
        "conversation_id = coalesce(?12, conversation_id), "
        "reply_parent_unresolved = coalesce(?13, reply_parent_unresolved), "
        "upstream_response = coalesce(?14, upstream_response) "
        "WHERE id = ?1 AND version = ?2 AND status = 1 RETURNING producer, ordering_key");
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
        .Bind(14, r.upstream_response);
    Result<bool> row = (*update)->Step();
    if (!row.ok()) return row.status();
    // Fenced: the lease was taken over; the newer state wins.
    if (!*row) return false;
    const std::string producer = (*update)->Text(0);
    const std::optional<std::string> ordering_key = (*update)->OptText(1);
    (*update)->Reset();
    db.NoteChanged(r.message_id);
    if (IsTerminal(r.new_status)) {
      if (Status st = ReleaseLane(db, producer, ordering_key); !st.ok()) return st;
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
        .Bind(7, r.response_body)
        .Bind(8, static_cast<int64_t>(r.charged ? 1 : 0));
    if (Status st = (*attempt)->Run(); !st.ok()) return st;
    return true;
  }

  static Status ExpireQueued(Db& db, TimeMs now) {
    Result<Stmt*> stmt = db.Prepare(
        "UPDATE messages INDEXED BY messages_expiry SET status = 3, version = version + 1, "
        "updated_at = ?1, last_error = ?2 WHERE status = 0 AND expires_at <= ?1 "
        "RETURNING id, producer, ordering_key");
    if (!stmt.ok()) return stmt.status();
    (*stmt)->Bind(1, now).Bind(2, std::string(kExpiredWhileQueued));
    std::vector<std::pair<std::string, std::optional<std::string>>> lanes;
    for (;;) {
      Result<bool> row = (*stmt)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      db.NoteChanged((*stmt)->Text(0));
      log::Info("message_expired", {{"message_id", (*stmt)->Text(0)}});
      if (auto key = (*stmt)->OptText(2)) lanes.emplace_back((*stmt)->Text(1), std::move(key));
    }
    (*stmt)->Reset();
    for (const auto& [producer, key] : lanes) {
      if (Status st = ReleaseLane(db, producer, key); !st.ok()) return st;
    }
    return Status::Ok();
  }

  // A `sending` message whose lease ran out: its worker died or hung, so the attempt's outcome
  // is unknown. It is charged, then retried or failed as --on-unknown says.
  static Status RecoverExpiredLeases(Db& db, const ClaimOptions& o) {
    Result<Stmt*> select = db.Prepare(
        "SELECT " SENDQ_MESSAGE_COLUMNS
        " FROM messages INDEXED BY messages_leases WHERE status = 1 AND lease_until <= ?1");
    if (!select.ok()) return select.status();
    (*select)->Bind(1, o.now);
    std::vector<std::pair<Message, int>> expired;
    for (;;) {
      Result<bool> row = (*select)->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      expired.emplace_back(ReadMessage(**select), AttemptCount(**select));
    }
    (*select)->Reset();
    DeliveryPolicy policy;
    policy.max_attempts = o.max_attempts;
    policy.fail_unknown = o.fail_unknown;
    for (auto& [m, attempt_number] : expired) {
      const LostLeaseDecision decision = DecideAfterLostLease(policy, m, attempt_number, o.now);
      const MessageStatus next = decision.new_status;
      Result<Stmt*> close_attempt = db.Prepare(
          "UPDATE attempts SET finished_at = ?3, outcome = 3, error = ?4, charged = 1 "
          "WHERE message_id = ?1 AND number = ?2 AND outcome IS NULL");
      if (!close_attempt.ok()) return close_attempt.status();
      (*close_attempt)->Bind(1, m.id).Bind(2, static_cast<int64_t>(attempt_number)).Bind(3, o.now);
      (*close_attempt)->Bind(4, decision.attempt_error);
      if (Status st = (*close_attempt)->Run(); !st.ok()) return st;
      Result<Stmt*> update = db.Prepare(
          "UPDATE messages SET status = ?3, attempts = attempts + 1, version = version + 1, "
          "updated_at = ?4, next_attempt_at = ?4, lease_until = NULL, last_error = ?5 "
          "WHERE id = ?1 AND version = ?2");
      if (!update.ok()) return update.status();
      (*update)
          ->Bind(1, m.id)
          .Bind(2, m.version)
          .Bind(3, static_cast<int64_t>(next))
          .Bind(4, o.now)
          .Bind(5, decision.last_error);
      if (Status st = (*update)->Run(); !st.ok()) return st;
      db.NoteChanged(m.id);
      // Outcome unknown and retried, it still holds its lane; failed, it lets the next go.
      if (next == MessageStatus::kFailed) {
        if (Status st = ReleaseLane(db, m.producer, m.ordering_key); !st.ok()) return st;
      }
      log::Warn("lease_expired",
                {{"message_id", m.id}, {"attempt", attempt_number}, {"status", StatusName(next)}});
    }
    return Status::Ok();
  }

  // Claims look at this many rounds of priorities at most, so one claim stays short.
  static constexpr int kMaxClaimRounds = 16;

  const Clock* const clock_;
  PriorityShare share_;  // used on the writer thread only
  std::unique_ptr<LockFile> lock_;
  ReaderPool readers_;
  Writer writer_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, StoreOptions options,
                                               const Clock* clock, OnCommit on_commit) {
  Result<std::unique_ptr<LockFile>> lock = LockFile::Acquire(path + ".lock");
  if (!lock.ok()) return lock.status();
  // Bodies and phone numbers are for this user alone. SQLite gives the WAL and shared-memory
  // files the database file's permissions, so creating it 0600 covers all three.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
  } else if (errno != EEXIST) {
    return Status::IOError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  }
  Result<std::unique_ptr<Db>> db = Db::Open(path, options.synchronous_full);
  if (!db.ok()) return db.status();
  if (Status st = ApplyMigrations(**db); !st.ok()) return st;
  auto store = std::make_unique<SqliteStore>(std::move(*lock), std::move(*db), path, options, clock,
                                             std::move(on_commit));
  if (Status st = store->VoidLeases(); !st.ok()) return st;
  return std::unique_ptr<Store>(std::move(store));
}

Result<int> SchemaVersion(const std::string& path) {
  Result<std::unique_ptr<Db>> db = Db::Open(path, true);
  if (!db.ok()) return db.status();
  Result<Stmt*> stmt = (*db)->Prepare("PRAGMA user_version");
  if (!stmt.ok()) return stmt.status();
  Result<bool> row = (*stmt)->Step();
  if (!row.ok()) return row.status();
  return static_cast<int>((*stmt)->Int(0));
}

}  // namespace sendq::store
