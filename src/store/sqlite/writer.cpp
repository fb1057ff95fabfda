#include "store/sqlite/writer.h"

#include "util/log.h"
#include "util/process.h"

namespace sendq::store {
namespace {

// Bounds the work (and latency) of one transaction. Far above what concurrent producers
// usually have waiting, so it rarely splits a batch.
constexpr size_t kMaxBatch = 2048;

}  // namespace

Writer::Writer(std::unique_ptr<Db> db, OnCommit on_commit)
    : on_commit_(std::move(on_commit)), db_(std::move(db)) {
  thread_ = std::thread([this] {
    NameThisThread("sendq-writer");
    Loop();
  });
}

Writer::~Writer() {
  {
    MutexLock guard(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status Writer::Run(Fn fn) {
  std::promise<Status> done;
  std::future<Status> result = done.get_future();
  Submit(std::move(fn), [&done](Status st) { done.set_value(std::move(st)); });
  return result.get();
}

void Writer::Submit(Fn fn, Done done) {
  {
    MutexLock guard(&mu_);
    if (!stopping_) {
      pending_.push_back(Task{std::move(fn), std::move(done)});
      done = nullptr;
    }
  }
  if (done) {
    done(Status::Unavailable("the store is shutting down"));
    return;
  }
  cv_.notify_one();
}

size_t Writer::TEST_Pending() {
  MutexLock guard(&mu_);
  return pending_.size();
}

void Writer::Loop() {
  for (;;) {
    std::deque<Task> batch;
    {
      MutexLock lock(&mu_);
      lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopping, and nothing left to do
      while (!pending_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    CommitBatch(batch);
  }
}

void Writer::CommitBatch(std::deque<Task>& batch) {
  std::vector<Status> results(batch.size());
  Changes& changes = db_->pending_changes();
  changes = Changes{};
  Status commit_status;
  {
    Transaction txn(db_.get(), Transaction::Mode::kImmediate);
    commit_status = txn.begin_status();
    if (commit_status.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        // Prepared once and cached: parsing these three statements again for every task
        // costs more than the savepoints themselves.
        Status st = db_->RunCached("SAVEPOINT task");
        if (st.ok()) {
          const size_t changed_before = changes.message_ids.size();
          const bool work_added_before = changes.work_added;
          const bool callbacks_added_before = changes.callbacks_added;
          st = batch[i].fn(*db_);
          db_->ResetAll();
          // A task that failed leaves nothing behind; the others in the batch keep their work.
          if (!st.ok()) {
            if (Status undo = db_->RunCached("ROLLBACK TO task"); !undo.ok()) st = undo;
            changes.message_ids.resize(changed_before);
            changes.work_added = work_added_before;
            changes.callbacks_added = callbacks_added_before;
          }
          if (Status release = db_->RunCached("RELEASE task"); !release.ok() && st.ok()) {
            st = release;
          }
        }
        results[i] = st;
      }
      commit_status = txn.Commit();
    }
  }
  if (!commit_status.ok()) {
    log::Error("store_commit_failed",
               {{"error", commit_status.ToString()}, {"batch", batch.size()}});
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].done(commit_status.ok() ? results[i] : commit_status);
  }
  if (commit_status.ok() && on_commit_) on_commit_(changes);
  changes = Changes{};
}

}  // namespace sendq::store
