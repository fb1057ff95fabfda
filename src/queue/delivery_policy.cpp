#include "queue/delivery_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "util/json_fields.h"

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

}  // namespace

const char* OnUnknownName(OnUnknown mode) {
  switch (mode) {
    case OnUnknown::kRetry:
      return "retry";
    case OnUnknown::kFail:
      return "fail";
    case OnUnknown::kReconcileOrFail:
      return "reconcile-or-fail";
  }
  return "retry";
}

AttemptDecision DecideAfterAttempt(const DeliveryPolicy& policy, const Message& message,
                                   OutcomeClass outcome, bool charged,
                                   const UpstreamResponse& response, TimeMs now, double unit_random,
                                   const std::string& why_no_lookup) {
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
      if (why_no_lookup.empty()) {
        // It may have been sent: look before doing anything else with it.
        d.new_status = MessageStatus::kQueued;
        d.next_attempt_at = now + policy.lookup_grace;
        d.look_up = true;
        d.last_error = d.error + "; looking for it at AgentPhone";
        return d;
      }
      if (policy.on_unknown != OnUnknown::kRetry) {
        d.new_status = MessageStatus::kFailed;
        d.last_error = fmt::format(
            "{}; not sent again because --on-unknown={} (it cannot be "
            "looked up: {})",
            d.error, OnUnknownName(policy.on_unknown), why_no_lookup);
        return d;
      }
      d.error += fmt::format(" (it cannot be looked up: {})", why_no_lookup);
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
    d.expired = true;
    d.last_error = fmt::format(
        "expired: its validity (expires_at) runs out before the next attempt; last: {}", d.error);
    return d;
  }
  d.new_status = MessageStatus::kQueued;
  d.last_error = d.error;
  return d;
}

LostLeaseDecision DecideAfterLostLease(int attempt_number) {
  LostLeaseDecision d;
  d.attempt_error = fmt::format(
      "attempt {} outcome unknown: its lease expired before a result was recorded (process "
      "stopped or hung mid-request)",
      attempt_number);
  d.last_error = d.attempt_error + "; looking for it at AgentPhone";
  return d;
}

AttemptDecision DecideAfterLookup(const DeliveryPolicy& policy, const Message& message,
                                  const LookupResult& lookup, TimeMs now) {
  using Verdict = LookupResult::Verdict;
  AttemptDecision d;
  d.next_attempt_at = now;
  if (lookup.verdict == Verdict::kFound) {
    d.outcome = AttemptOutcome::kReconciled;
    d.new_status = MessageStatus::kSent;
    d.error = "found in AgentPhone's list of sent messages: " + lookup.detail;
    return d;
  }
  d.outcome = AttemptOutcome::kLookup;
  Verdict verdict = lookup.verdict;
  std::string detail = lookup.detail;
  if (verdict == Verdict::kFailed) {
    const TimeMs since = message.unknown_since.value_or(now);
    if (now - since < policy.lookup_patience && now < message.expires_at) {
      // Not the message's fault: look again later, uncharged. The wait grows with the time
      // spent looking: a quarter of it, at least a second, at most five minutes.
      DurationMs delay = std::clamp<DurationMs>((now - since) / 4, 1'000, 300'000);
      if (lookup.response.retry_after) {
        if (auto asked = ParseRetryAfter(*lookup.response.retry_after, now)) {
          delay = std::max(delay, *asked);
        }
      }
      d.new_status = MessageStatus::kQueued;
      d.next_attempt_at = now + delay;
      d.look_up = true;
      d.error = "look-up failed: " + detail;
      d.last_error = "outcome unknown; " + d.error + "; looking again";
      return d;
    }
    verdict = Verdict::kNoWay;
    detail = "the look-up kept failing: " + detail;
  }
  const bool proven_unsent = verdict == Verdict::kNotFound;
  const bool send_again = policy.on_unknown == OnUnknown::kRetry ||
                          (policy.on_unknown == OnUnknown::kReconcileOrFail && proven_unsent);
  const std::string mode = OnUnknownName(policy.on_unknown);
  if (!send_again) {
    d.new_status = MessageStatus::kFailed;
    d.error = fmt::format("{}; not sent again (--on-unknown={})", detail, mode);
    d.last_error = "outcome unknown: " + d.error;
    return d;
  }
  if (message.attempts >= policy.max_attempts) {
    d.new_status = MessageStatus::kFailed;
    d.error = fmt::format("{}; attempts exhausted ({} of {})", detail, message.attempts,
                          policy.max_attempts);
    d.last_error = "outcome unknown: " + d.error;
    return d;
  }
  if (now >= message.expires_at) {
    d.new_status = MessageStatus::kFailed;
    d.expired = true;
    d.error = detail + "; expired: its validity (expires_at) ran out";
    d.last_error =
        "expired: its validity (expires_at) ran out after a send whose outcome stayed "
        "unknown: " +
        detail;
    return d;
  }
  d.new_status = MessageStatus::kQueued;
  d.error = fmt::format("{}; sending again (--on-unknown={})", detail, mode);
  d.last_error = "outcome unknown: " + d.error;
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
  f.provider_message_id = StringMember(j, "id");
  f.channel = StringMember(j, "channel");
  f.from_number = StringMember(j, "from_number");
  f.to_number = StringMember(j, "to_number");
  f.conversation_id = StringMember(j, "conversation_id");
  if (auto it = j.find("reply_parent_unresolved"); it != j.end() && it->is_boolean()) {
    f.reply_parent_unresolved = it->get<bool>();
  }
  f.readable = f.provider_message_id.has_value();
  return f;
}

}  // namespace sendq
