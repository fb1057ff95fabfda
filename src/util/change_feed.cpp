#include "util/change_feed.h"

namespace sendq {

uint64_t ChangeFeed::Generation() const {
  std::lock_guard<std::mutex> guard(mu_);
  return generation_;
}

void ChangeFeed::Publish() {
  {
    std::lock_guard<std::mutex> guard(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

uint64_t ChangeFeed::WaitForChange(uint64_t seen, TimeMs deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  clock_->WaitUntil(cv_, lock, deadline, [&] { return generation_ != seen || closed_; });
  return generation_;
}

void ChangeFeed::Close() {
  {
    std::lock_guard<std::mutex> guard(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool ChangeFeed::closed() const {
  std::lock_guard<std::mutex> guard(mu_);
  return closed_;
}

}  // namespace sendq
