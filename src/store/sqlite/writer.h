// Writer: the one thread that writes to the database, with group commit.
//
// Callers from any thread hand it a function; it runs every function that is waiting in one
// transaction (each in its own savepoint, so one failure does not undo the others), commits
// once -- one fsync for the whole batch -- and only then tells each caller how it went. This is
// what lets sendq answer 202 only after the row is durable without capping throughput at one
// fsync per request.
//
// Thread-safety: Run() may be called from any thread, except from inside a function that is
// itself running on the writer (that would deadlock). The Db is touched only by the writer
// thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/db.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sendq::store {

class Writer {
 public:
  using Fn = std::function<Status(Db&)>;
  using Done = std::function<void(Status)>;

  // Called on the writer thread after each commit with what it changed.
  using OnCommit = std::function<void(const Changes& changes)>;

  // Takes the write connection.
  Writer(std::unique_ptr<Db> db, OnCommit on_commit);
  ~Writer();  // Finishes what was submitted, then stops.
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Runs `fn` inside the next group transaction and blocks until that transaction commits.
  // Returns fn's error (its savepoint rolled back), or the commit's error, or OK.
  Status Run(Fn fn);
  // Run() without waiting: `done` gets the same answer, on the writer thread, once the
  // transaction has committed (or at once if the writer is stopping). `done` must be quick and
  // must not call back into the writer.
  void Submit(Fn fn, Done done);

  // Tasks submitted and not yet taken into a transaction. For tests only.
  size_t TEST_Pending();

  // Run() for a function that produces a value.
  template <typename T>
  Result<T> Call(std::function<Result<T>(Db&)> fn) {
    std::optional<Result<T>> out;
    Status st = Run([&](Db& db) {
      out.emplace(fn(db));
      return out->ok() ? Status::Ok() : out->status();
    });
    if (!st.ok()) return st;
    return std::move(*out);
  }

  // Submit() for a function that produces a value.
  template <typename T>
  std::future<Result<T>> CallAsync(std::function<Result<T>(Db&)> fn) {
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto out = std::make_shared<std::optional<Result<T>>>();
    std::future<Result<T>> result = promise->get_future();
    Submit(
        [fn = std::move(fn), out](Db& db) {
          out->emplace(fn(db));
          return (*out)->ok() ? Status::Ok() : (*out)->status();
        },
        [promise, out](Status st) {
          if (st.ok()) {
            promise->set_value(std::move(**out));
          } else {
            promise->set_value(std::move(st));
          }
        });
    return result;
  }

 private:
  struct Task {
    Fn fn;
    Done done;
  };

  void Loop();
  void CommitBatch(std::deque<Task>& batch);

  // Constant after construction.
  const OnCommit on_commit_;
  std::unique_ptr<Db> db_;  // used only by thread_

  Mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> pending_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;

  std::thread thread_;
};

}  // namespace sendq::store
