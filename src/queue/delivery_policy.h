// What becomes of a message after an attempt: the pure decision the workers apply.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "queue/message.h"
#include "queue/retry_policy.h"

namespace sendq {

// What to do with a send whose outcome is unknown once a look-up at AgentPhone did not find it
// (--on-unknown). Found, it is sent whatever the mode.
enum class OnUnknown {
  kRetry,            // send again (same idempotency key) unless found
  kFail,             // fail unless found
  kReconcileOrFail,  // send again only when a complete listing showed it was not sent
};
const char* OnUnknownName(OnUnknown mode);

struct DeliveryPolicy {
  int max_attempts = 12;
  BackoffPolicy backoff;
  OnUnknown on_unknown = OnUnknown::kRetry;
  // How long after a send with an unknown outcome the look-up starts (AgentPhone lists what
  // it accepted a moment after answering), and how far before the attempt's start it looks
  // (the two clocks may disagree).
  DurationMs lookup_grace = 2'000;
  DurationMs clock_skew = 120'000;
  // How long look-ups that fail (the list endpoint down, a 5xx) are tried again before the
  // message is treated as one that cannot be looked up.
  DurationMs lookup_patience = 6 * 3'600'000;
};

struct AttemptDecision {
  AttemptOutcome outcome = AttemptOutcome::kRetryable;  // for the ledger
  MessageStatus new_status = MessageStatus::kQueued;    // queued, sent or failed
  TimeMs next_attempt_at = 0;                           // when queued
  std::string error;                                    // for the ledger; empty when sent
  std::optional<std::string> last_error;                // for the message
  // Queued to be looked up at AgentPhone first: its outcome is unknown (unknown_since stays,
  // or is set to the attempt's start).
  bool look_up = false;
  bool expired = false;  // failed because its validity (expires_at) ran out
};

// `message` is the message as claimed (its `attempts` does not count this attempt yet);
// `charged` is what the upstream circuit said about this attempt. `why_no_lookup` is empty
// when a send of this message whose outcome is unknown can be looked up at AgentPhone, and
// otherwise says why not (a media-only body, a new group, ...).
AttemptDecision DecideAfterAttempt(const DeliveryPolicy& policy, const Message& message,
                                   OutcomeClass outcome, bool charged,
                                   const UpstreamResponse& response, TimeMs now, double unit_random,
                                   const std::string& why_no_lookup);

// AgentPhone's 2xx answer. Fields it lacks stay empty; a body that is not JSON gives all empty.
struct SendResponseFields {
  std::optional<std::string> provider_message_id;
  std::optional<std::string> channel;
  std::optional<std::string> from_number;
  std::optional<std::string> to_number;
  std::optional<std::string> conversation_id;
  std::optional<bool> reply_parent_unresolved;
  bool readable = false;  // the body was a JSON object with an id
};
SendResponseFields ParseSendResponse(const std::string& body);

// What a look-up at AgentPhone for a send with an unknown outcome found.
struct LookupResult {
  enum class Verdict {
    kFound,      // exactly one listed send matches: `found` and `listed`
    kNotFound,   // the listing is complete up to now and holds no match
    kAmbiguous,  // several listed sends match equally
    kNoWay,      // it cannot be looked up (`detail` says why)
    kFailed,     // the look-up itself failed (`response` is the failing answer); try again
  };
  Verdict verdict = Verdict::kNoWay;
  std::string detail;        // for the ledger
  SendResponseFields found;  // what the listed send tells, as a send's answer would
  std::string listed;        // the matching list item, as JSON
  UpstreamResponse response;
};

// What becomes of a message whose unknown send was looked up at `now`. `message` as claimed.
AttemptDecision DecideAfterLookup(const DeliveryPolicy& policy, const Message& message,
                                  const LookupResult& lookup, TimeMs now);

// A `sending` message whose lease ran out before its result was recorded (its worker died or
// hung): the attempt's outcome is unknown and charged. The message goes back to the queue, due
// now, to be looked up at AgentPhone first (DecideAfterLookup then decides).
struct LostLeaseDecision {
  std::string attempt_error;  // for the ledger
  std::string last_error;     // for the message
};
LostLeaseDecision DecideAfterLostLease(int attempt_number);

// The last_error of a queued message whose validity ran out before it could be delivered.
inline constexpr const char* kExpiredWhileQueued =
    "expired: its validity (expires_at) ran out before it could be delivered";

// What becomes of a queued message whose validity (expires_at) ran out before it could be
// delivered: the same for every such message, so the store applies it to all of them at once.
struct ValidityEndDecision {
  MessageStatus new_status = MessageStatus::kFailed;
  std::string last_error;
};
ValidityEndDecision DecideAfterValidityEnded();

// After a 429 (too many requests): the time until which the message's sender waits, from
// Retry-After or else the first backoff step; nullopt for any other answer. The attempt is
// not charged: the sender is being paced, the message is fine.
std::optional<TimeMs> SenderPauseAfter(const DeliveryPolicy& policy,
                                       const UpstreamResponse& response, TimeMs now);

}  // namespace sendq
