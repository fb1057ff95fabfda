#include "queue/pauses.h"

#include <utility>

namespace sendq {

void Pauses::Set(PauseState state) {
  MutexLock lock(&mu_);
  state_ = std::move(state);
}

PauseState Pauses::Get() const {
  MutexLock lock(&mu_);
  return state_;
}

bool Pauses::global() const {
  MutexLock lock(&mu_);
  return state_.global;
}

bool Pauses::SenderPaused(const std::string& sender) const {
  MutexLock lock(&mu_);
  return state_.senders.count(sender) > 0;
}

bool Pauses::Covers(const std::string& sender) const {
  MutexLock lock(&mu_);
  return state_.Covers(sender);
}

}  // namespace sendq
