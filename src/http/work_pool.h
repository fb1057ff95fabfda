// WorkPool: a fixed set of threads that runs jobs fairly between keys.
//
// The HTTP front parses on a few event-loop threads and hands each complete request to this
// pool, keyed by the producer that sent it. Jobs of one key run in the order they came, but the
// keys take turns: a producer with a thousand requests waiting delays another producer's
// request by at most one job per busy key, not by a thousand.
//
// Thread-safety: every method may be called from any thread; jobs may submit further jobs.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "util/thread_annotations.h"

namespace sendq::http {

class WorkPool {
 public:
  explicit WorkPool(int threads);
  ~WorkPool();  // Shutdown()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Runs `job` on a pool thread. After Shutdown() the job runs on the caller's thread.
  void Submit(const std::string& key, std::function<void()> job);
  // Runs everything queued, then joins the threads.
  void Shutdown();

 private:
  void Work();

  Mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, std::deque<std::function<void()>>> queues_ GUARDED_BY(mu_);
  std::deque<std::string> turns_ GUARDED_BY(mu_);  // keys with queued jobs, next first
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace sendq::http
