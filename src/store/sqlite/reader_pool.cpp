#include "store/sqlite/reader_pool.h"

#include <algorithm>

namespace sendq::store {

ReaderPool::ReaderPool(std::string path, bool synchronous_full, int max_readers)
    : path_(std::move(path)),
      synchronous_full_(synchronous_full),
      max_readers_(static_cast<size_t>(std::max(max_readers, 1))) {}

Result<ReaderPool::Lease> ReaderPool::Acquire() {
  {
    MutexLock lock(&mu_);
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return !idle_.empty() || open_ < max_readers_; });
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
      MutexLock lock(&mu_);
      --open_;
    }
    cv_.notify_one();
    return db.status();
  }
  return Lease(this, std::move(*db));
}

void ReaderPool::Return(std::unique_ptr<Db> db) {
  db->ResetAll();  // end any read transaction a half-read statement holds open
  {
    MutexLock lock(&mu_);
    idle_.push_back(std::move(db));
  }
  cv_.notify_one();
}

}  // namespace sendq::store
