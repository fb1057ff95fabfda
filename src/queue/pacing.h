// Pacing: token buckets per sender identity (number_id, from_number or agent_id) and one for
// the whole upstream account, consulted by every claim.
//
// A message whose bucket is empty is not claimed: the claim books it the next free slot of its
// bucket and moves it there, so the dispatcher wakes then and nothing polls. A 429 from
// AgentPhone pauses its sender until Retry-After; other senders keep sending.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/clock.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sendq {

struct Rate {
  double per_second = 0;
  double burst = 1;  // tokens a bucket holds when full
};

// "2/s", "30/m", "1000/h", optionally with a burst: "2/s:10". The burst defaults to the
// tokens of one second (at least 1).
Result<Rate> ParseRate(std::string_view text);
// "number_id_or_from_or_agent=RATE[:BURST],...", or "@path" for a file with one per line
// (blank lines and # comments skipped).
Result<std::map<std::string, Rate>> ParseSenderLimits(const std::string& text);

class Pacer {
 public:
  struct Options {
    std::optional<Rate> sender_rate;            // --sender-rate: every sender without its own
    std::map<std::string, Rate> sender_limits;  // --sender-limits
    std::optional<Rate> upstream_rate;          // --upstream-rate: the whole account
  };

  explicit Pacer(Options options);

  // Books the next send of `sender` (and of the account): the time of its slot, `now` when a
  // token is there now. A later slot is reserved for this message: the caller moves it there
  // and sends it then without booking again, so each message is moved at most once. (A
  // generic cell rate algorithm: the bucket is a "theoretical arrival time".)
  TimeMs Book(const std::string& sender, TimeMs now);
  // When `sender` may send again after a 429; `now` when it is not paused.
  TimeMs PausedUntil(const std::string& sender, TimeMs now);
  // AgentPhone answered 429 for `sender`: no sends for it before `until`.
  void PauseSender(const std::string& sender, TimeMs until);

 private:
  struct SenderState {
    double next_free = 0;  // the theoretical arrival time of its next send (ms)
    TimeMs paused_until = 0;
  };

  // The rate for `sender`, or nullopt when it is unlimited.
  std::optional<Rate> RateFor(const std::string& sender) const;
  // Keeps the table bounded: forgets senders whose bucket is full and who are not paused.
  void ForgetIdleLocked(TimeMs now) REQUIRES(mu_);

  const Options options_;
  Mutex mu_;
  std::unordered_map<std::string, SenderState> senders_ GUARDED_BY(mu_);
  double account_next_free_ GUARDED_BY(mu_) = 0;
};

}  // namespace sendq
