// Queue controls: what a producer says about *when* and *in which order* a message goes out.
//
// They travel in a reserved top-level object `sendq` of the request body (never forwarded to
// AgentPhone), or as Sendq-* headers on POST /v1/messages:
//   ordering_key  Sendq-Ordering-Key  the message's lane; null opts out of ordering
//   send_at       Sendq-Send-At       RFC 3339: not handed upstream before it
//   expires_at    Sendq-Expires-At    RFC 3339: not sent after it (replaces --max-age)
//   ttl           (body only)         a duration ("10m", or seconds): expires_at = now + ttl
//   priority      Sendq-Priority      high, normal (default) or bulk
//   send_window   Sendq-Send-Window   local hours; "recipient" or {"start","end","tz"}
//   callback_url  (body only)         where this message's events go (as well as the
//                                     producer's registered webhooks)
// ResolveControls() turns them, with the request and the queue's defaults, into what the store
// keeps: the ordering key, the sender (the pacing identity), the first due time and so on.
//
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/message.h"
#include "queue/send_window.h"
#include "queue/validation.h"
#include "util/clock.h"

namespace sendq {

inline constexpr int kPriorityCount = 3;
inline constexpr size_t kMaxOrderingKeyLength = 255;

// What the producer gave; empty optionals were not given.
struct QueueControls {
  bool ordering_key_given = false;
  std::optional<std::string> ordering_key;  // when given: nullopt opts out of ordering
  std::optional<TimeMs> send_at;
  std::optional<TimeMs> expires_at;
  std::optional<DurationMs> ttl;
  std::optional<Priority> priority;
  std::optional<SendWindow> send_window;
  std::optional<std::string> callback_url;
  // Fields that came from a header rather than the body: field -> header name, so that a
  // problem found later is located where the producer wrote it.
  std::map<std::string, std::string> from_header;

  // The canonical form of what was given, part of the idempotency fingerprint: the same
  // controls written differently (a header or the body, another offset) compare equal.
  nlohmann::json ToJson() const;
};

struct ControlHeader {
  std::string name;  // as named in the table above
  std::string value;
};

// "http(s)://host[:port][/path]": a scheme, a host, and no spaces or control characters.
bool IsCallbackUrl(const std::string& url);

// The names of the headers ParseQueueControls reads.
const std::vector<std::string>& QueueControlHeaderNames();

// Parses the body's `sendq` member (nullptr or null: none) and the control headers given.
// Problems go to `errors`, located at loc_prefix + ["sendq", field] or ["header", name]; a
// header that disagrees with the body's field is one of them.
QueueControls ParseQueueControls(const nlohmann::json* body_controls,
                                 const std::vector<ControlHeader>& headers,
                                 const nlohmann::json& loc_prefix, std::vector<FieldError>* errors);

// The queue's defaults, from the command line.
struct ControlDefaults {
  DurationMs max_age = 24LL * 3600 * 1000;  // validity when neither expires_at nor ttl is given
  std::optional<SendWindow> send_window;    // --default-send-window
  // --default-ordering: a message without an ordering_key is in its conversation's lane
  // (true) or in none (false).
  bool order_conversations = true;
  // --allow-http-callbacks, --allow-private-callbacks: what a callback_url may be.
  bool allow_http_callbacks = false;
  bool allow_private_callbacks = false;
};

// What the store keeps for a message.
struct EffectiveControls {
  std::optional<std::string> ordering_key;  // nullopt: not ordered
  std::string sender;                       // number_id, else from_number, else agent_id
  Priority priority = Priority::kNormal;
  std::optional<TimeMs> send_at;
  TimeMs expires_at = 0;
  std::optional<SendWindow> send_window;  // only when it applies (its zones are known)
  std::vector<std::string> window_zones;  // the zones send_window is read in
  TimeMs first_due = 0;                   // send_at or creation, moved into the window

  // As the message record shows it (the `sendq` object of GET /v1/messages/{id}).
  nlohmann::json ToJson() const;
};

// The sender identity and the conversation of a validated request: number_id, else
// from_number, else agent_id; and the recipient (to_number, or the sorted recipients).
std::string SenderOf(const nlohmann::json& request);
std::string ConversationKey(const nlohmann::json& request);
// The E.164 numbers a message goes to, for its time zones.
std::vector<std::string> RecipientNumbers(const nlohmann::json& request);

// Applies defaults to `given` for `request` created at `created_at`. Problems that depend on
// the request (a send_at after expires_at, a window that never opens for this recipient) go
// to `errors` under loc_prefix + ["sendq", field].
EffectiveControls ResolveControls(const QueueControls& given, const nlohmann::json& request,
                                  TimeMs created_at, const ControlDefaults& defaults,
                                  const nlohmann::json& loc_prefix,
                                  std::vector<FieldError>* errors);

// Bulk's share of claims: while `bulk` has due work, at least one claim in kBulkShareEvery
// goes to it, so a stream of `high` and `normal` cannot starve it.
inline constexpr int kBulkShareEvery = 10;

class PriorityShare {
 public:
  // The priorities to look in for the next claim, in order.
  std::array<Priority, kPriorityCount> Order() const;
  // Claims of other priorities that may go before bulk is owed one.
  int UntilBulkOwed() const { return kBulkShareEvery - 1 - since_bulk_; }
  // A claim took a message of `priority`.
  void Took(Priority priority);

 private:
  int since_bulk_ = 0;  // claims of other priorities since bulk's last, up to kBulkShareEvery - 1
};

}  // namespace sendq
