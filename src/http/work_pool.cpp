#include "http/work_pool.h"

#include <algorithm>

namespace sendq::http {

WorkPool::WorkPool(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Work(); });
}

WorkPool::~WorkPool() { Shutdown(); }

void WorkPool::Submit(const std::string& key, std::function<void()> job) {
  {
    MutexLock guard(&mu_);
    if (!stopping_) {
      std::deque<std::function<void()>>& queue = queues_[key];
      if (queue.empty()) turns_.push_back(key);
      queue.push_back(std::move(job));
      job = nullptr;
    }
  }
  if (job) {
    job();
    return;
  }
  cv_.notify_one();
}

void WorkPool::Shutdown() {
  std::vector<std::thread> threads;
  {
    MutexLock guard(&mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

void WorkPool::Work() {
  MutexLock lock(&mu_);
  for (;;) {
    lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_ || !turns_.empty(); });
    if (turns_.empty()) return;  // stopping, and everything queued has run
    std::string key = std::move(turns_.front());
    turns_.pop_front();
    auto it = queues_.find(key);
    std::function<void()> job = std::move(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) {
      queues_.erase(it);
    } else {
      turns_.push_back(std::move(key));  // its next job waits for the other keys' turns
    }
    lock.Unlock();
    job();
    lock.Lock();
  }
}

}  // namespace sendq::http
