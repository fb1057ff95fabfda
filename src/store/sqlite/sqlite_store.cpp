#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <list>

#include "store/sqlite/checkpointer.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/operations.h"
#include "store/sqlite/reader_pool.h"
#include "store/sqlite/writer.h"
#include "util/log.h"
#include "util/thread_annotations.h"

namespace sendq::store {
namespace {

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

// Corruption if any row refers to a row that does not exist.
Status CheckForeignKeys(Db& db) {
  Result<Stmt*> check = db.Prepare("PRAGMA foreign_key_check");
  if (!check.ok()) return check.status();
  Result<bool> violation = (*check)->Step();
  if (!violation.ok()) return violation.status();
  if (!*violation) return Status::Ok();
  const std::string table = (*check)->Text(0);
  (*check)->Reset();
  return Status::Corruption(fmt::format("a row of {} refers to a row that does not exist", table));
}

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
  // A migration may rebuild a table that others refer to, so foreign keys are off while they
  // run (SQLite cannot switch them inside a transaction) and checked before each commit.
  if (Status st = db.Exec("PRAGMA foreign_keys=OFF"); !st.ok()) return st;
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    // Each migration is one transaction: a crash part way leaves the version before it, and
    // the next start applies it again.
    Transaction txn(&db, Transaction::Mode::kImmediate);
    if (!txn.begin_status().ok()) return txn.begin_status();
    Status st = db.Exec(m.sql);
    if (st.ok()) st = CheckForeignKeys(db);
    if (st.ok()) st = db.Exec(fmt::format("PRAGMA user_version = {}", m.version).c_str());
    if (st.ok()) st = txn.Commit();
    if (!st.ok()) {
      return Status::Internal(fmt::format("migration {} failed: {}", m.name, st.ToString()));
    }
    log::Info("schema_migrated", {{"version", m.version}, {"migration", m.name}});
  }
  return db.Exec("PRAGMA foreign_keys=ON");
}

// The listeners of a store, told of each commit on the writer thread.
class Subscribers {
 public:
  class Handle final : public Subscription {
   public:
    Handle(Subscribers* owner, std::list<ChangeListener>::iterator it) : owner_(owner), it_(it) {}
    ~Handle() override { owner_->Remove(it_); }

   private:
    Subscribers* owner_;
    std::list<ChangeListener>::iterator it_;
  };

  std::unique_ptr<Subscription> Add(ChangeListener listener) {
    MutexLock lock(&mu_);
    listeners_.push_back(std::move(listener));
    return std::make_unique<Handle>(this, std::prev(listeners_.end()));
  }

  void Tell(const Changes& changes) {
    if (changes.message_ids.empty() && !changes.work_added && !changes.callbacks_added) return;
    MutexLock lock(&mu_);
    for (const ChangeListener& listener : listeners_) listener(changes);
  }

 private:
  void Remove(std::list<ChangeListener>::iterator it) {
    MutexLock lock(&mu_);
    listeners_.erase(it);
  }

  Mutex mu_;
  std::list<ChangeListener> listeners_ GUARDED_BY(mu_);
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<LockFile> lock, std::unique_ptr<Checkpointer> checkpointer,
              std::unique_ptr<Db> write_db, std::string path, StoreOptions options,
              const Clock* clock)
      : clock_(clock),
        lock_(std::move(lock)),
        readers_(path, options.synchronous_full, options.max_readers),
        checkpointer_(std::move(checkpointer)),
        writer_(std::move(write_db),
                [this](const Changes& changes) { subscribers_.Tell(changes); }) {}

  Result<EnqueueResult> Enqueue(const NewMessage& nm) override {
    return writer_.Call<EnqueueResult>([&](Db& db) { return store::Enqueue(db, nm); });
  }

  Result<EnqueueResult> EnqueueAndClaim(const NewMessage& nm, const ClaimOptions& o) override {
    return writer_.Call<EnqueueResult>([&](Db& db) { return claimer_.InsertAndClaim(db, nm, o); });
  }

  void EnqueueAsync(NewMessage nm, std::optional<ClaimOptions> claim,
                    std::function<void(Result<EnqueueResult>)> done) override {
    auto out = std::make_shared<std::optional<Result<EnqueueResult>>>();
    writer_.Submit(
        [this, nm = std::move(nm), claim, out](Db& db) {
          out->emplace(claim ? claimer_.InsertAndClaim(db, nm, *claim) : store::Enqueue(db, nm));
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
            Result<EnqueueResult> one = store::Enqueue(db, nm);
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
    return store::ListAttempts(**db, producer, id);
  }

  Result<ListPage> List(const std::string& producer, const ListFilter& filter) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return ListMessages(**db, producer, filter);
  }

  Result<Message> Cancel(const std::string& producer, const std::string& id, TimeMs now) override {
    return writer_.Call<Message>([&](Db& db) { return CancelQueued(db, producer, id, now); });
  }

  Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now,
                        TimeMs expires_at) override {
    return writer_.Call<Message>(
        [&](Db& db) { return RetryFailed(db, producer, id, now, expires_at); });
  }

  Result<Message> Release(const std::string& producer, const std::string& id, TimeMs now) override {
    return writer_.Call<Message>([&](Db& db) { return ReleaseHeld(db, producer, id, now); });
  }

  Result<std::pair<int64_t, int64_t>> ResolveHeld(const std::string& producer,
                                                  const std::optional<std::string>& to_number,
                                                  const std::optional<std::string>& reason,
                                                  bool cancel, TimeMs now) override {
    return writer_.Call<std::pair<int64_t, int64_t>>(
        [&](Db& db) { return store::ResolveHeld(db, producer, to_number, reason, cancel, now); });
  }

  Result<std::vector<ClaimedMessage>> Claim(const ClaimOptions& o) override {
    return writer_.Call<std::vector<ClaimedMessage>>([&](Db& db) { return claimer_.Claim(db, o); });
  }

  Result<bool> Complete(const AttemptResult& r) override {
    return writer_.Call<bool>([&](Db& db) { return RecordResult(db, r); });
  }

  std::future<Result<CompleteAndClaimResult>> CompleteAndClaimAsync(AttemptResult result,
                                                                    ClaimOptions next) override {
    return writer_.CallAsync<CompleteAndClaimResult>(
        [this, result = std::move(result), next](Db& db) -> Result<CompleteAndClaimResult> {
          std::vector<std::string> released;
          Result<bool> recorded = RecordResult(db, result, &released);
          if (!recorded.ok()) return recorded.status();
          CompleteAndClaimResult out{*recorded, {}};
          if (next.limit > 0) {
            Result<std::vector<ClaimedMessage>> claimed = claimer_.Claim(db, next);
            if (!claimed.ok()) return claimed.status();
            out.claimed = std::move(*claimed);
          }
          // The next message of the conversation, released by this result, is usually leased
          // by the claim in the same commit and is at work already. Otherwise (moved for its
          // window or pacing, or beyond the claim) it is work the dispatcher must look at.
          for (const std::string& id : released) {
            const bool leased =
                std::any_of(out.claimed.begin(), out.claimed.end(),
                            [&](const ClaimedMessage& c) { return c.message.id == id; });
            if (!leased) db.NoteWorkAdded();
          }
          return out;
        });
  }

  Status Unclaim(const std::string& id, int64_t version, int attempt_number) override {
    return writer_.Run([&](Db& db) { return store::Unclaim(db, id, version, attempt_number); });
  }

  Result<Suppression> Suppress(const Suppression& suppression) override {
    return writer_.Call<Suppression>([&](Db& db) { return store::Suppress(db, suppression); });
  }

  Result<bool> Unsuppress(const std::string& producer, const std::string& number) override {
    return writer_.Call<bool>([&](Db& db) { return store::Unsuppress(db, producer, number); });
  }

  Result<std::optional<Suppression>> GetSuppression(const std::string& producer,
                                                    const std::string& number) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::GetSuppression(**db, producer, number);
  }

  Result<std::vector<Suppression>> ListSuppressions(const std::string& producer,
                                                    const std::string& after_number,
                                                    int limit) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::ListSuppressions(**db, producer, after_number, limit);
  }

  Result<bool> ApplyInboundWebhook(
      const std::string& webhook_id, TimeMs now, const std::vector<Suppression>& suppress,
      const std::vector<std::pair<std::string, std::string>>& lift) override {
    return writer_.Call<bool>(
        [&](Db& db) { return store::ApplyInboundWebhook(db, webhook_id, now, suppress, lift); });
  }

  Result<Webhook> AddWebhook(const Webhook& webhook) override {
    return writer_.Call<Webhook>([&](Db& db) { return store::AddWebhook(db, webhook); });
  }

  Result<std::vector<Webhook>> ListWebhooks(const std::string& producer) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::ListWebhooks(**db, producer);
  }

  Result<std::optional<Webhook>> GetWebhook(const std::string& producer,
                                            const std::string& id) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::GetWebhook(**db, producer, id);
  }

  Result<bool> DeleteWebhook(const std::string& producer, const std::string& id) override {
    return writer_.Call<bool>([&](Db& db) { return store::DeleteWebhook(db, producer, id); });
  }

  Result<std::vector<CallbackDeliveryRecord>> ListCallbackDeliveries(const std::string& producer,
                                                                     const std::string& webhook_id,
                                                                     int limit) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::ListCallbackDeliveries(**db, producer, webhook_id, limit);
  }

  Result<std::vector<CallbackDelivery>> ClaimCallbacks(
      TimeMs now, int limit, DurationMs lease, const std::vector<std::string>& busy) override {
    return writer_.Call<std::vector<CallbackDelivery>>(
        [&](Db& db) { return store::ClaimCallbacks(db, now, limit, lease, busy); });
  }

  Status RecordCallback(const CallbackDelivery& delivery, const CallbackTry& attempt,
                        bool delivered, std::optional<TimeMs> next_attempt_at) override {
    return writer_.Run([&](Db& db) {
      return store::RecordCallback(db, delivery, attempt, delivered, next_attempt_at);
    });
  }

  Result<std::optional<TimeMs>> NextCallbackAt() override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::NextCallbackAt(**db);
  }

  Result<std::optional<std::string>> FindByProviderId(const std::string& provider_message_id,
                                                      const std::string& except_id) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::FindByProviderId(**db, provider_message_id, except_id);
  }

  Result<std::optional<TimeMs>> NextWakeAt() override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::NextWakeAt(**db);
  }

  Result<Stats> GetStats(TimeMs now) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return ReadStats(**db, now);
  }

  Result<Stats> GetProducerStats(const std::string& producer) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return ReadProducerStats(**db, producer);
  }

  Result<std::optional<std::string>> OwnerOf(const std::string& id) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::OwnerOf(**db, id);
  }

  Result<BulkResult> Bulk(BulkAction action, const AdminFilter& filter, bool dry_run, TimeMs now,
                          TimeMs expires_at, int batch, int64_t limit) override {
    BulkResult result;
    std::string after;
    for (;;) {
      const int take =
          limit > 0 ? static_cast<int>(std::min<int64_t>(batch, limit - result.matched)) : batch;
      if (take <= 0) break;
      // Selected on a reader, changed in a writer transaction of its own: enqueues and
      // deliveries go on between batches.
      Result<std::vector<std::pair<std::string, std::string>>> selected =
          [&]() -> Result<std::vector<std::pair<std::string, std::string>>> {
        Result<ReaderPool::Lease> db = readers_.Acquire();
        if (!db.ok()) return db.status();
        auto ids = SelectForAdmin(**db, filter, after, take);
        (*db)->ResetAll();
        return ids;
      }();
      if (!selected.ok()) return selected.status();
      if (selected->empty()) break;
      result.matched += static_cast<int64_t>(selected->size());
      after = selected->back().first;
      if (!dry_run) {
        Result<int64_t> changed = writer_.Call<int64_t>(
            [&](Db& db) { return ApplyBulk(db, action, *selected, now, expires_at); });
        if (!changed.ok()) return changed.status();
        result.changed += *changed;
      }
      if (selected->size() < static_cast<size_t>(take)) break;
    }
    return result;
  }

  Result<PauseState> LoadPauses() override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::LoadPauses(**db);
  }

  Result<PauseState> SetPause(const std::string& sender, bool paused, const std::string& actor,
                              TimeMs now) override {
    return writer_.Call<PauseState>(
        [&](Db& db) { return store::SetPause(db, sender, paused, actor, now); });
  }

  Status AppendAudit(const AuditEntry& entry) override {
    return writer_.Run([&](Db& db) { return store::AppendAudit(db, entry); });
  }

  Result<std::vector<AuditEntry>> ListAudit(int64_t before_id, int limit) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::ListAudit(**db, before_id, limit);
  }

  Result<std::vector<Message>> ListChanges(const std::string& producer, const ChangeCursor& after,
                                           int limit) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return store::ListChanges(**db, producer, after, limit);
  }

  Status Export(
      const std::string& producer, const ListFilter& filter, bool with_attempts,
      const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    Status st = ExportMessages(**db, producer, filter, with_attempts, sink);
    (*db)->ResetAll();
    return st;
  }

  Status Backup(const std::string& path) override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return BackupInto(**db, path);
  }

  Result<MaintenanceStep> DeleteFinalBefore(TimeMs cutoff, int limit) override {
    return writer_.Call<MaintenanceStep>(
        [&](Db& db) { return store::DeleteFinalBefore(db, cutoff, limit); });
  }

  Result<MaintenanceStep> RedactFinalBefore(TimeMs cutoff, int limit, TimeMs now,
                                            const RecipientRedactor& recipient,
                                            const std::string& after) override {
    return writer_.Call<MaintenanceStep>(
        [&](Db& db) { return store::RedactFinalBefore(db, cutoff, limit, now, recipient, after); });
  }

  Status ReclaimSpace(int pages) override {
    if (Status st = writer_.Run([&](Db& db) { return IncrementalVacuum(db, pages); }); !st.ok()) {
      return st;
    }
    // The log is emptied from a reader connection, outside any transaction, and only when no
    // reader still needs what it holds (otherwise it waits for the next call).
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return (*db)->TruncateLog();
  }

  Result<SpaceUsage> GetSpaceUsage() override {
    Result<ReaderPool::Lease> db = readers_.Acquire();
    if (!db.ok()) return db.status();
    return ReadSpaceUsage(**db);
  }

  Status CheckWritable() override {
    return writer_.Run([](Db& db) { return db.Exec("PRAGMA user_version"); });
  }

  std::unique_ptr<Subscription> Subscribe(ChangeListener listener) override {
    return subscribers_.Add(std::move(listener));
  }

  Status VoidLeasesAtOpen() {
    const TimeMs now = clock_->NowMs();
    return writer_.Run([now](Db& db) { return VoidLeases(db, now); });
  }

 private:
  const Clock* const clock_;
  Claimer claimer_;  // used on the writer thread only
  Subscribers subscribers_;
  std::unique_ptr<LockFile> lock_;
  ReaderPool readers_;
  std::unique_ptr<Checkpointer> checkpointer_;  // told by the writer's commits
  Writer writer_;  // last: stopped (and its tasks finished) before the rest goes
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, StoreOptions options,
                                               const Clock* clock) {
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
  // A new database gives freed pages back to the file system on request (retention); the
  // mode can only be chosen before the first table is made.
  if (Status st = (*db)->Exec("PRAGMA auto_vacuum = INCREMENTAL"); !st.ok()) return st;
  // Deleted and overwritten content is zeroed, so redacted data is gone from the file.
  if (options.secure_delete) {
    if (Status st = (*db)->Exec("PRAGMA secure_delete = ON"); !st.ok()) return st;
  }
  if (Status st = ApplyMigrations(**db); !st.ok()) return st;
  // The writer's commits leave the log's checkpoints to a thread of their own.
  Result<std::unique_ptr<Checkpointer>> checkpointer =
      Checkpointer::Start(path, options.synchronous_full);
  if (!checkpointer.ok()) return checkpointer.status();
  // After a burst, a log longer than 8 MiB is cut back to that when it starts over.
  if (Status st = (*db)->Exec("PRAGMA journal_size_limit = 8388608"); !st.ok()) return st;
  (*checkpointer)->Attach(db->get());
  auto store = std::make_unique<SqliteStore>(std::move(*lock), std::move(*checkpointer),
                                             std::move(*db), path, options, clock);
  if (Status st = store->VoidLeasesAtOpen(); !st.ok()) return st;
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
