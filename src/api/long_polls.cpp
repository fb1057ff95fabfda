#include "api/long_polls.h"

#include <chrono>

namespace sendq::api {

LongPolls::LongPolls(Clock* clock, int max_per_producer)
    : clock_(clock), max_per_producer_(max_per_producer) {
  timer_ = std::thread([this] { TimerLoop(); });
}

LongPolls::~LongPolls() {
  Close();
  {
    MutexLock guard(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  timer_.join();
}

bool LongPolls::Begin(const std::string& producer) {
  MutexLock guard(&mu_);
  int& open = open_per_producer_[producer];
  if (open >= max_per_producer_) return false;
  ++open;
  return true;
}

void LongPolls::End(const std::string& producer) {
  MutexLock guard(&mu_);
  auto it = open_per_producer_.find(producer);
  if (it != open_per_producer_.end() && --it->second <= 0) open_per_producer_.erase(it);
}

uint64_t LongPolls::Arm(const std::string& id, TimeMs deadline, std::function<void()> wake) {
  uint64_t ticket = 0;
  bool earliest = false;
  {
    MutexLock guard(&mu_);
    if (!closed_) {
      ticket = next_ticket_++;
      earliest = by_deadline_.empty() || deadline < by_deadline_.begin()->first;
      by_id_.emplace(id, ticket);
      by_deadline_.emplace(deadline, ticket);
      waiters_.emplace(ticket, Waiter{id, deadline, std::move(wake)});
      wake = nullptr;
    }
  }
  if (wake) {
    wake();
  } else if (earliest) {
    cv_.notify_all();
  }
  return ticket;
}

std::function<void()> LongPolls::TakeLocked(uint64_t ticket) {
  auto it = waiters_.find(ticket);
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  auto [first, last] = by_id_.equal_range(waiter.id);
  for (auto i = first; i != last; ++i) {
    if (i->second == ticket) {
      by_id_.erase(i);
      break;
    }
  }
  auto [dfirst, dlast] = by_deadline_.equal_range(waiter.deadline);
  for (auto i = dfirst; i != dlast; ++i) {
    if (i->second == ticket) {
      by_deadline_.erase(i);
      break;
    }
  }
  return std::move(waiter.wake);
}

void LongPolls::Cancel(uint64_t ticket) {
  std::function<void()> dropped;  // destroyed outside the lock
  MutexLock guard(&mu_);
  if (waiters_.count(ticket) > 0) dropped = TakeLocked(ticket);
}

void LongPolls::Notify(const std::vector<std::string>& ids, bool other_change) {
  std::vector<std::function<void()>> wakes;
  {
    MutexLock guard(&mu_);
    if (by_id_.empty()) return;
    if (!ids.empty() || other_change) {
      for (;;) {
        auto it = by_id_.find(kAnyMessage);
        if (it == by_id_.end()) break;
        wakes.push_back(TakeLocked(it->second));
      }
    }
    for (const std::string& id : ids) {
      for (;;) {
        auto it = by_id_.find(id);
        if (it == by_id_.end()) break;
        wakes.push_back(TakeLocked(it->second));
      }
    }
  }
  for (auto& wake : wakes) wake();
}

void LongPolls::Close() {
  std::vector<std::function<void()>> wakes;
  {
    MutexLock guard(&mu_);
    closed_ = true;
    while (!waiters_.empty()) wakes.push_back(TakeLocked(waiters_.begin()->first));
  }
  for (auto& wake : wakes) wake();
}

bool LongPolls::closed() const {
  MutexLock guard(&mu_);
  return closed_;
}

size_t LongPolls::armed() const {
  MutexLock guard(&mu_);
  return waiters_.size();
}

void LongPolls::TimerLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    if (by_deadline_.empty()) {
      lock.Wait(cv_);
      continue;
    }
    const TimeMs now = clock_->NowMs();
    const TimeMs next = by_deadline_.begin()->first;
    if (next > now) {
      cv_.wait_for(lock.native(), std::chrono::milliseconds(next - now));
      continue;
    }
    std::vector<std::function<void()>> wakes;
    while (!by_deadline_.empty() && by_deadline_.begin()->first <= now) {
      wakes.push_back(TakeLocked(by_deadline_.begin()->second));
    }
    lock.Unlock();
    for (auto& wake : wakes) wake();
    lock.Lock();
  }
}

}  // namespace sendq::api
