// Checkpointer: copies the write-ahead log into the database on a thread and a connection of
// its own.
//
// SQLite's default has the committing connection do it, inside the commit, once the log is past
// 1,000 frames: a few thousand pages written and an fsync of the database file, with the
// writer's thread (and every enqueue waiting behind it) held meanwhile. Here the writer's
// connection only reports the log's length after each commit (Db::SetLogHook); past
// `log_pages` frames that wakes this thread, which runs a PASSIVE checkpoint: it waits for
// neither readers nor the writer, which goes on committing to the log meanwhile. Once the whole
// log is copied and no reader needs it, the writer's next commit starts it over.
//
// A writer that never pauses would keep the log from starting over (each checkpoint ends
// behind its newest frames), so past kCheckpointLogCapPages frames the writer's commit
// checkpoints it itself after all, as SQLite's default would have much earlier; most of it is
// copied by then.
//
// Thread-safety: LogGrew() from any thread (the writer's, in practice, through the hook Attach()
// installs); the rest from the owner's.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "store/sqlite/db.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sendq::store {

inline constexpr int kCheckpointLogPages = 1'000;
inline constexpr int kCheckpointLogCapPages = 10'000;

class Checkpointer {
 public:
  // Opens its connection to the database at `path` and starts its thread.
  static Result<std::unique_ptr<Checkpointer>> Start(const std::string& path, bool synchronous_full,
                                                     int log_pages = kCheckpointLogPages);
  ~Checkpointer();  // stops the thread (a checkpoint under way finishes first)
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Makes `writer`'s commits report to LogGrew() instead of checkpointing themselves, and
  // checkpoint after all past kCheckpointLogCapPages. `writer` must be closed before this goes.
  void Attach(Db* writer);

  // The log is `frames` long after a commit: a checkpoint follows if that is past log_pages.
  // True if it is past kCheckpointLogCapPages: the committing connection should checkpoint it
  // now (Db::CheckpointLog) rather than let it grow further.
  bool LogGrew(int frames);

  // Checkpoints finished since Start(). For tests and metrics.
  int64_t checkpoints();
  // Waits (at most 30 s) until `n` checkpoints have finished; false if they have not. For tests.
  bool WaitForCheckpoints(int64_t n);

 private:
  Checkpointer(std::unique_ptr<Db> db, int log_pages);
  void Loop();

  const int log_pages_;
  std::unique_ptr<Db> db_;  // used only by thread_

  Mutex mu_;
  std::condition_variable cv_;
  bool wanted_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  int64_t checkpoints_ GUARDED_BY(mu_) = 0;

  std::thread thread_;
};

}  // namespace sendq::store
