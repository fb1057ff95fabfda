// AgentPhone's webhooks to sendq (POST /v1/agentphone/webhook): how an inbound STOP becomes
// an opt-out.
//
// A delivery is authenticated by AgentPhone's own signature, not a producer token:
// X-Webhook-Signature: sha256=<hex HMAC-SHA256 of "{X-Webhook-Timestamp}.{raw body}"> under the
// secret from --agentphone-webhook-secret, compared in constant time, with a timestamp at most
// five minutes from now. X-Webhook-ID makes a repeated delivery recognisable.
//
// An `agent.message` whose data.message is an opt-out keyword (STOP, STOPALL, UNSUBSCRIBE,
// CANCEL, END, QUIT; case and surrounding spaces ignored) suppresses data.from for the producer
// that owns the number (data.numberId) or agent (agentId) by --number-owners, or for every
// producer when nobody owns it; START or UNSTOP lifts it. Anything else is acknowledged and
// ignored.
//
// Thread-safety: pure functions.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "store/store.h"
#include "util/clock.h"

namespace sendq::api {

struct InboundWebhookOptions {
  std::string secret;                         // empty: the endpoint refuses everything
  std::map<std::string, std::string> owners;  // number id or agent id -> producer
  std::vector<std::string> producers;         // every producer, for unowned numbers
  std::string default_region = "US";          // reads data.from
};

// How far a delivery's timestamp may be from now.
inline constexpr DurationMs kWebhookTolerance = 5 * 60'000;

struct InboundWebhook {
  int status = 200;    // 200, or 401 (bad signature or timestamp), 422 (not JSON)
  std::string error;   // why it is refused
  std::string id;      // X-Webhook-ID
  std::string event;   // "agent.message", ...
  std::string action;  // "suppress", "lift" or "ignore"
  std::vector<store::Suppression> suppress;
  std::vector<std::pair<std::string, std::string>> lift;  // (producer, number)
};

// Reads a delivery. `header` gives a request header's value (nullptr when absent).
InboundWebhook ReadInboundWebhook(const InboundWebhookOptions& options,
                                  const std::function<const std::string*(const char*)>& header,
                                  const std::string& body, TimeMs now);

// "STOP" and the other opt-out keywords -> "stop"; "START"/"UNSTOP" -> "start"; else "".
std::string OptOutKeyword(const std::string& message);

}  // namespace sendq::api
