// The JSON shapes the API answers with. The message record is a superset of AgentPhone's own
// Send Message response, so a producer can read either the same way.
#pragma once

#include <nlohmann/json.hpp>

#include "queue/message.h"
#include "queue/pauses.h"

namespace sendq::api {

// `sendq.paused` is true while one of `pauses` (an admin's) holds the queued message.
nlohmann::ordered_json MessageRecord(const Message& message, const Pauses* pauses = nullptr);
// The same, with `request` the parsed form of message.request_json (saves parsing it again).
nlohmann::ordered_json MessageRecord(const Message& message, const nlohmann::json& request,
                                     const Pauses* pauses = nullptr);
nlohmann::ordered_json AttemptRecord(const Attempt& attempt);

}  // namespace sendq::api
