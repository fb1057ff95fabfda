#include "queue/delivery_policy.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace sendq {
namespace {

std::string DescribeFailure(const UpstreamResponse& r) {
  if (r.transport != UpstreamResponse::Transport::kResponded) {
    return r.transport == UpstreamResponse::Transport::kNotSent
               ? "could not reach AgentPhone: " + r.transport_error
               : "no response from AgentPhone (outcome unknown): " + r.transport_error;
  }
  return ParseUpstreamErrorMessage(r.http_status, r.body);
}

std::optional<std::string> OptString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

AttemptDecision DecideAfterAttempt(const DeliveryPolicy& policy, const Message& message,
                                   OutcomeClass outcome, bool charged,
                                   const UpstreamResponse& response, TimeMs now,
                                   double unit_random) {
  AttemptDecision d;
  d.next_attempt_at = now;
  if (outcome == OutcomeClass::kSent) {
    d.outcome = AttemptOutcome::kSent;
    d.new_status = MessageStatus::kSent;
    return d;
  }
  d.error = DescribeFailure(response);
  switch (outcome) {
    case OutcomeClass::kPermanent:
      d.outcome = AttemptOutcome::kPermanent;
      d.new_status = MessageStatus::kFailed;
      d.last_error = fmt::format("rejected by AgentPhone: {}", d.error);
      return d;
    case OutcomeClass::kUpstreamPaused:
      d.outcome = AttemptOutcome::kUpstreamPaused;
      break;
    case OutcomeClass::kUnknown:
      d.outcome = AttemptOutcome::kUnknown;
      if (policy.fail_unknown) {
        d.new_status = MessageStatus::kFailed;
        d.last_error = d.error + "; not retried because --on-unknown=fail";
        return d;
      }
      break;
    default:
      d.outcome = AttemptOutcome::kRetryable;
      break;
  }
  // Not charged: the upstream as a whole is paused or down. The message waits, due at once,
  // for the circuit to close; only its validity can end it.
  if (!charged) {
    d.new_status = MessageStatus::kQueued;
    d.last_error = "waiting for AgentPhone: " + d.error;
    return d;
  }
  const int used = message.attempts + 1;
  if (used >= policy.max_attempts) {
    d.new_status = MessageStatus::kFailed;
    d.last_error =
        fmt::format("attempts exhausted ({} of {}); last: {}", used, policy.max_attempts, d.error);
    return d;
  }
  DurationMs delay = ComputeBackoff(policy.backoff, used, unit_random);
  if (response.retry_after) {
    std::optional<DurationMs> asked = ParseRetryAfter(*response.retry_after, now);
    if (asked && *asked > delay) delay = *asked;
  }
  d.next_attempt_at = now + delay;
  if (d.next_attempt_at >= message.expires_at) {
    d.new_status = MessageStatus::kFailed;
    d.last_error = fmt::format(
        "expired: its validity (expires_at) runs out before the next attempt; last: {}", d.error);
    return d;
  }
  d.new_status = MessageStatus::kQueued;
  d.last_error = d.error;
  return d;
}

LostLeaseDecision DecideAfterLostLease(const DeliveryPolicy& policy, const Message& message,
                                       int attempt_number, TimeMs now) {
  LostLeaseDecision d;
  d.attempt_error = fmt::format(
      "attempt {} outcome unknown: its lease expired before a result was recorded (process "
      "stopped or hung mid-request)",
      attempt_number);
  d.last_error = d.attempt_error;
  const int charged = message.attempts + 1;
  if (policy.fail_unknown) {
    d.new_status = MessageStatus::kFailed;
    d.last_error += "; not retried because --on-unknown=fail";
  } else if (charged >= policy.max_attempts) {
    d.new_status = MessageStatus::kFailed;
    d.last_error = fmt::format("attempts exhausted ({} of {}); last: {}", charged,
                               policy.max_attempts, d.attempt_error);
  } else if (message.expires_at <= now) {
    d.new_status = MessageStatus::kFailed;
    d.last_error = "expired: its validity (expires_at) ran out; last: " + d.attempt_error;
  }
  return d;
}

ValidityEndDecision DecideAfterValidityEnded() {
  return ValidityEndDecision{MessageStatus::kFailed, kExpiredWhileQueued};
}

std::optional<TimeMs> SenderPauseAfter(const DeliveryPolicy& policy,
                                       const UpstreamResponse& response, TimeMs now) {
  if (response.transport != UpstreamResponse::Transport::kResponded ||
      response.http_status != 429) {
    return std::nullopt;
  }
  DurationMs wait = policy.backoff.base;
  if (response.retry_after) {
    if (std::optional<DurationMs> asked = ParseRetryAfter(*response.retry_after, now)) {
      wait = *asked;
    }
  }
  return now + std::max<DurationMs>(wait, 1);
}

SendResponseFields ParseSendResponse(const std::string& body) {
  SendResponseFields f;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return f;
  f.provider_message_id = OptString(j, "id");
  f.channel = OptString(j, "channel");
  f.from_number = OptString(j, "from_number");
  f.to_number = OptString(j, "to_number");
  f.conversation_id = OptString(j, "conversation_id");
  if (auto it = j.find("reply_parent_unresolved"); it != j.end() && it->is_boolean()) {
    f.reply_parent_unresolved = it->get<bool>();
  }
  f.readable = f.provider_message_id.has_value();
  return f;
}

}  // namespace sendq
