// The message and its attempt ledger, as the domain sees them, and the state machine.
//
// Lifecycle:  queued -> sending -> sent                (AgentPhone accepted it)
//                       sending -> queued              (retry later, or upstream paused)
//                       sending -> failed              (permanent, exhausted or expired)
//             queued  -> canceled                      (by the producer)
//             queued  -> failed                        (validity ran out while waiting)
//             failed  -> queued                        (retried by hand)
//             queued  -> held                          (a runaway guard stopped it at enqueue)
//             held    -> queued | canceled             (released or canceled by hand)
// A send whose outcome is unknown (no answer; or its lease expired) leaves the message queued
// with unknown_since set: its next claim looks for it at AgentPhone before anything else.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/clock.h"

namespace sendq {

// Persisted in messages.status. These numbers are stored on disk: never renumber them, and
// keep docs/schema.md in step.
enum class MessageStatus : int {
  kQueued = 0,
  kSending = 1,
  kSent = 2,
  kFailed = 3,
  kCanceled = 4,
  kHeld = 5,  // stopped by a runaway guard; waits for a release or a cancel
};

// Persisted in attempts.outcome. Stored on disk: never renumber.
enum class AttemptOutcome : int {
  kSent = 0,
  kRetryable = 1,
  kPermanent = 2,
  kUnknown = 3,
  kUpstreamPaused = 4,
  kReconciled = 5,  // a look-up found the unknown send in AgentPhone's list: sent, not resent
  kLookup = 6,      // a look-up that settled nothing by itself (see the attempt's error)
};

// Persisted in messages.priority, and claimed in this order. Stored on disk: never renumber.
enum class Priority : int {
  kHigh = 0,
  kNormal = 1,
  kBulk = 2,
};
const char* PriorityName(Priority priority);
std::optional<Priority> ParsePriority(std::string_view name);

const char* StatusName(MessageStatus status);
std::optional<MessageStatus> ParseStatus(std::string_view name);
const char* OutcomeName(AttemptOutcome outcome);
bool IsTerminal(MessageStatus status);
// True when the state machine above has an edge from `from` to `to`.
bool CanTransition(MessageStatus from, MessageStatus to);

struct Message {
  std::string id;
  std::string producer;
  std::optional<std::string> idempotency_key;
  std::string request_json;  // the normalised AgentPhone request, sent upstream as is
  MessageStatus status = MessageStatus::kQueued;
  int attempts = 0;     // charged attempts (what --max-attempts counts)
  int64_t version = 0;  // bumped on every change; also the lease's fencing token
  TimeMs created_at = 0;
  TimeMs updated_at = 0;
  TimeMs next_attempt_at = 0;
  TimeMs expires_at = 0;
  std::optional<TimeMs> lease_until;
  std::optional<TimeMs> sent_at;
  std::optional<std::string> last_error;
  // From AgentPhone's 2xx response.
  std::optional<std::string> provider_message_id;
  std::optional<std::string> channel;
  std::optional<std::string> from_number;
  std::optional<std::string> sent_to_number;  // AgentPhone's normalised to_number
  std::optional<std::string> conversation_id;
  std::optional<bool> reply_parent_unresolved;
  std::optional<std::string> upstream_response;  // raw 2xx body, kept even when unreadable
  // Queue controls, as in force (see queue/controls.h).
  std::optional<std::string> ordering_key;  // empty: not ordered
  Priority priority = Priority::kNormal;
  std::optional<TimeMs> send_at;
  std::optional<std::string> send_window;   // {"start","end","tz"} as JSON
  std::optional<std::string> window_zones;  // the zones it is read in, comma-separated
  std::optional<std::string> sender;        // number_id, from_number or agent_id
  bool held = false;  // an earlier message with its ordering key is not final yet
  // Set while the outcome of the attempt that started then is unknown and not yet looked up.
  std::optional<TimeMs> unknown_since;
  // Why a rule held it or failed it: "recipient_cap", "duplicate_body" or "suppressed".
  std::optional<std::string> status_reason;
  // A reaction: the message it is for (AgentPhone's msg_ id, or a sendq sq_ id). Its request is
  // the Send Reaction body.
  std::optional<std::string> reaction_to;
  // The sendq message this one (a reaction, or a reply by reply_to_message_id) waits for and
  // takes AgentPhone's id from.
  std::optional<std::string> parent_id;
  std::optional<std::string> callback_url;  // its own callback endpoint (sendq.callback_url)
};

struct Attempt {
  std::string message_id;
  int number = 0;  // 1, 2, ... over every attempt, charged or not
  TimeMs started_at = 0;
  std::optional<TimeMs> finished_at;
  std::optional<AttemptOutcome> outcome;  // empty while the request is in flight
  std::optional<int> http_status;
  std::optional<std::string> error;
  std::optional<std::string> response_body;  // truncated to kMaxStoredResponseBytes
  bool charged = false;                      // counts towards --max-attempts
};

inline constexpr size_t kMaxStoredResponseBytes = 4096;
// `body` cut to kMaxStoredResponseBytes, without splitting a UTF-8 sequence.
std::string TruncateStoredResponse(const std::string& body);

inline constexpr int kDefaultListLimit = 50;
inline constexpr int kMaxListLimit = 200;

// A page request for GET /v1/messages. Results are newest first (descending id).
struct ListFilter {
  std::optional<std::string> agent_id;
  std::optional<std::string> to_number;  // in E.164, as stored
  // The same recipient as redaction stores it (a keyed hash): found as well, when set.
  std::optional<std::string> to_number_redacted;
  std::vector<MessageStatus> statuses;  // any of them (repeated ?status= is an OR)
  std::optional<std::string> ordering_key;
  std::optional<Priority> priority;
  std::optional<bool> scheduled;  // queued with a send_at still ahead (at `now`)
  TimeMs now = 0;
  std::optional<std::string> provider_message_id;
  std::optional<TimeMs> created_after;   // inclusive
  std::optional<TimeMs> created_before;  // exclusive
  std::optional<std::string> before_id;  // from the cursor: only ids < before_id
  int limit = kDefaultListLimit;
};

}  // namespace sendq
