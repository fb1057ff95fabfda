// Connections for reads, handed out one per caller and returned when done.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/sqlite/db.h"
#include "util/thread_annotations.h"

namespace sendq::store {

class ReaderPool {
 public:
  ReaderPool(std::string path, bool synchronous_full, int max_readers);

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
  Result<Lease> Acquire();

 private:
  void Return(std::unique_ptr<Db> db);

  const std::string path_;
  const bool synchronous_full_;
  const size_t max_readers_;
  Mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Db>> idle_ GUARDED_BY(mu_);
  size_t open_ GUARDED_BY(mu_) = 0;  // connections opened
};

}  // namespace sendq::store
