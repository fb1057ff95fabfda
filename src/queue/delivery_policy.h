// What becomes of a message after an attempt: the pure decision the workers apply.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "queue/message.h"
#include "queue/retry_policy.h"

namespace sendq {

struct DeliveryPolicy {
  int max_attempts = 12;
  BackoffPolicy backoff;
  bool fail_unknown = false;  // --on-unknown=fail: at-most-once
};

struct AttemptDecision {
  AttemptOutcome outcome = AttemptOutcome::kRetryable;  // for the ledger
  MessageStatus new_status = MessageStatus::kQueued;    // queued, sent or failed
  TimeMs next_attempt_at = 0;                           // when queued
  std::string error;                                    // for the ledger; empty when sent
  std::optional<std::string> last_error;                // for the message
};

// `message` is the message as claimed (its `attempts` does not count this attempt yet);
// `charged` is what the upstream circuit said about this attempt.
AttemptDecision DecideAfterAttempt(const DeliveryPolicy& policy, const Message& message,
                                   OutcomeClass outcome, bool charged,
                                   const UpstreamResponse& response, TimeMs now,
                                   double unit_random);

// A `sending` message whose lease ran out before its result was recorded (its worker died or
// hung): the attempt's outcome is unknown and charged. What becomes of the message.
struct LostLeaseDecision {
  MessageStatus new_status = MessageStatus::kQueued;  // queued (due now) or failed
  std::string attempt_error;                          // for the ledger
  std::string last_error;                             // for the message
};
LostLeaseDecision DecideAfterLostLease(const DeliveryPolicy& policy, const Message& message,
                                       int attempt_number, TimeMs now);

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

}  // namespace sendq
