// Conversation order as the upstream saw it: shared by the chaos harness's checker and the
// integration suite's SIGKILL test.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sendq::chaos {

// One send the upstream accepted, in the order it accepted them.
struct AcceptedSend {
  std::string conversation;  // e.g. the request's to_number
  std::string message_id;    // the sendq id (the send's Idempotency-Key)
};

struct OrderCheck {
  int64_t conversations = 0;
  int64_t checked_sends = 0;  // first acceptances of messages whose place is known
  // A message accepted (for the first time) after a message enqueued later in the same
  // conversation.
  int64_t violations = 0;
  // Of those, the ones where the late message has an unknown attempt: its first attempt may
  // have reached the upstream late, after sendq had given up on it and moved on.
  int64_t violations_with_unknown_attempt = 0;
  std::vector<std::string> examples;  // at most 5
};

// `place`: each message's position in its conversation's enqueue order (any increasing
// numbers). Sends of ids without a place are not judged; repeats of an id (resends after an
// unknown outcome) are judged by their first acceptance only.
inline OrderCheck CheckConversationOrder(const std::vector<AcceptedSend>& accepted,
                                         const std::map<std::string, int64_t>& place,
                                         const std::set<std::string>& with_unknown_attempt) {
  OrderCheck out;
  std::map<std::string, int64_t> latest_place;  // conversation -> highest place accepted
  std::set<std::string> seen;
  for (const AcceptedSend& send : accepted) {
    auto it = place.find(send.message_id);
    if (it == place.end() || !seen.insert(send.message_id).second) continue;
    ++out.checked_sends;
    auto [latest, first] = latest_place.emplace(send.conversation, it->second);
    if (first) {
      ++out.conversations;
      continue;
    }
    if (it->second < latest->second) {
      ++out.violations;
      if (with_unknown_attempt.count(send.message_id)) ++out.violations_with_unknown_attempt;
      if (out.examples.size() < 5) {
        out.examples.push_back(send.message_id + " accepted after a later message of " +
                               send.conversation);
      }
    } else {
      latest->second = it->second;
    }
  }
  return out;
}

}  // namespace sendq::chaos
