// The JSON shapes the API answers with. The message record is a superset of AgentPhone's own
// Send Message response, so a producer can read either the same way.
#pragma once

#include <nlohmann/json.hpp>

#include "queue/message.h"

namespace sendq::api {

nlohmann::ordered_json MessageRecord(const Message& message);
// The same, with `request` the parsed form of message.request_json (saves parsing it again).
nlohmann::ordered_json MessageRecord(const Message& message, const nlohmann::json& request);
nlohmann::ordered_json AttemptRecord(const Attempt& attempt);

}  // namespace sendq::api
