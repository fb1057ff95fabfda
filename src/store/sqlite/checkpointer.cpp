#include "store/sqlite/checkpointer.h"

#include <chrono>

#include "util/log.h"
#include "util/process.h"

namespace sendq::store {
namespace {

// Unavailable: another connection is checkpointing (Db::TruncateLog, the checkpointer, or the
// writer past kCheckpointLogCapPages), which will do; the next commit past log_pages asks again.
void Checkpoint(Db& db) {
  if (Status st = db.CheckpointLog(); !st.ok() && !st.IsUnavailable()) {
    log::Error("checkpoint_failed", {{"error", st.ToString()}});
  }
}

}  // namespace

Result<std::unique_ptr<Checkpointer>> Checkpointer::Start(const std::string& path,
                                                          bool synchronous_full, int log_pages) {
  Result<std::unique_ptr<Db>> db = Db::Open(path, synchronous_full, kReaderCacheKib);
  if (!db.ok()) return db.status();
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(*db), log_pages));
}

Checkpointer::Checkpointer(std::unique_ptr<Db> db, int log_pages)
    : log_pages_(log_pages), db_(std::move(db)) {
  thread_ = std::thread([this] {
    NameThisThread("sendq-checkpt");
    Loop();
  });
}

Checkpointer::~Checkpointer() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Checkpointer::Attach(Db* writer) {
  writer->SetLogHook([this, writer](int frames) {
    if (LogGrew(frames)) Checkpoint(*writer);
  });
}

bool Checkpointer::LogGrew(int frames) {
  if (frames < log_pages_) return false;
  bool wake = false;
  {
    MutexLock lock(&mu_);
    wake = !wanted_;
    wanted_ = true;
  }
  if (wake) cv_.notify_all();
  return frames >= kCheckpointLogCapPages;
}

int64_t Checkpointer::checkpoints() {
  MutexLock lock(&mu_);
  return checkpoints_;
}

bool Checkpointer::WaitForCheckpoints(int64_t n) {
  MutexLock lock(&mu_);
  return cv_.wait_for(lock.native(), std::chrono::seconds(30),
                      [&]() REQUIRES(mu_) { return checkpoints_ >= n; });
}

void Checkpointer::Loop() {
  MutexLock lock(&mu_);
  for (;;) {
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_ || wanted_; });
    if (stopping_) return;
    wanted_ = false;
    lock.Unlock();
    Checkpoint(*db_);
    lock.Lock();
    ++checkpoints_;
    cv_.notify_all();
  }
}

}  // namespace sendq::store
