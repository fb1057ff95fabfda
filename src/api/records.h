// The JSON shapes the API answers with. The message record is a superset of AgentPhone's own
// Send Message response, so a producer can read either the same way.
#pragma once

#include <nlohmann/json.hpp>

#include "queue/message.h"

namespace sendq::api {

nlohmann::ordered_json MessageRecord(const Message& message);
nlohmann::ordered_json AttemptRecord(const Attempt& attempt);

}  // namespace sendq::api
