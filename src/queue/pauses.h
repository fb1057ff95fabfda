// Pauses: sending held back by an admin, for everything or for one sender (a number_id,
// from_number or agent_id, as a message's sender names it). The store keeps them across
// restarts; this is the copy the dispatcher, the claim and the API read on every decision.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <set>
#include <string>

#include "util/thread_annotations.h"

namespace sendq {

// The sender that stands for everything in the store's table of pauses.
inline constexpr const char* kPauseEverything = "*";

struct PauseState {
  bool global = false;
  std::set<std::string> senders;

  bool Covers(const std::string& sender) const { return global || senders.count(sender) > 0; }
};

class Pauses {
 public:
  void Set(PauseState state);
  PauseState Get() const;
  bool global() const;
  // Paused by name (a global pause aside).
  bool SenderPaused(const std::string& sender) const;
  // Paused globally or by name.
  bool Covers(const std::string& sender) const;

 private:
  mutable Mutex mu_;
  PauseState state_ GUARDED_BY(mu_);
};

}  // namespace sendq
