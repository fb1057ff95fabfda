#include "queue/message.h"

namespace sendq {

const char* StatusName(MessageStatus status) {
  switch (status) {
    case MessageStatus::kQueued:
      return "queued";
    case MessageStatus::kSending:
      return "sending";
    case MessageStatus::kSent:
      return "sent";
    case MessageStatus::kFailed:
      return "failed";
    case MessageStatus::kCanceled:
      return "canceled";
    case MessageStatus::kHeld:
      return "held";
  }
  return "unknown";
}

std::optional<MessageStatus> ParseStatus(std::string_view name) {
  for (MessageStatus s : {MessageStatus::kQueued, MessageStatus::kSending, MessageStatus::kSent,
                          MessageStatus::kFailed, MessageStatus::kCanceled, MessageStatus::kHeld}) {
    if (name == StatusName(s)) return s;
  }
  return std::nullopt;
}

const char* OutcomeName(AttemptOutcome outcome) {
  switch (outcome) {
    case AttemptOutcome::kSent:
      return "sent";
    case AttemptOutcome::kRetryable:
      return "retryable";
    case AttemptOutcome::kPermanent:
      return "permanent";
    case AttemptOutcome::kUnknown:
      return "unknown";
    case AttemptOutcome::kUpstreamPaused:
      return "upstream_paused";
    case AttemptOutcome::kReconciled:
      return "reconciled";
    case AttemptOutcome::kLookup:
      return "lookup";
  }
  return "unknown";
}

bool IsTerminal(MessageStatus status) {
  return status == MessageStatus::kSent || status == MessageStatus::kFailed ||
         status == MessageStatus::kCanceled;
}

bool CanTransition(MessageStatus from, MessageStatus to) {
  using S = MessageStatus;
  switch (from) {
    case S::kQueued:
      return to == S::kSending || to == S::kCanceled || to == S::kFailed;
    case S::kSending:
      return to == S::kSent || to == S::kQueued || to == S::kFailed;
    case S::kFailed:
      return to == S::kQueued;
    case S::kHeld:
      return to == S::kQueued || to == S::kCanceled;
    case S::kSent:
    case S::kCanceled:
      return false;
  }
  return false;
}

const char* PriorityName(Priority priority) {
  switch (priority) {
    case Priority::kHigh:
      return "high";
    case Priority::kNormal:
      return "normal";
    case Priority::kBulk:
      return "bulk";
  }
  return "normal";
}

std::optional<Priority> ParsePriority(std::string_view name) {
  for (Priority p : {Priority::kHigh, Priority::kNormal, Priority::kBulk}) {
    if (name == PriorityName(p)) return p;
  }
  return std::nullopt;
}

std::string TruncateStoredResponse(const std::string& body) {
  if (body.size() <= kMaxStoredResponseBytes) return body;
  size_t cut = kMaxStoredResponseBytes;
  while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) --cut;
  return body.substr(0, cut);
}

}  // namespace sendq
