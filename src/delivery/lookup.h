// Looking up a send whose outcome is unknown in what AgentPhone lists as sent.
//
// AgentPhone answers no GET for one message, but lists a number's messages
// (GET /v1/numbers/{number_id}/messages, cursored by time). A send that went out without an
// answer is found there as an `outbound` item after the attempt's start (less a clock skew),
// with the same recipient (E.164) and the same body, whose id no other sendq message holds.
// The number is the request's number_id, or resolved once (and cached) from its from_number
// (GET /v1/numbers) or agent_id (GET /v1/agents/{agent_id}, every number of the agent).
//
// Some sends cannot be looked up: one without a text body (the list shows no media), one that
// starts a new group (`recipients`: AgentPhone lists it under a new grp_ id), one without a
// to_number. WhyNoLookup says so before anything is asked.
//
// Thread-safety: SendFinder may be used by many workers at once; each passes its own client.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "delivery/agentphone_client.h"
#include "queue/delivery_policy.h"
#include "queue/message.h"
#include "store/store.h"
#include "util/thread_annotations.h"

namespace sendq::delivery {

// One item of a number's message list, as far as matching needs it.
struct ListedMessage {
  std::string id;
  std::string direction;
  std::string to;
  std::string from;
  std::optional<std::string> body;
  std::optional<std::string> channel;
  std::optional<TimeMs> received_at;
  std::string raw;  // the item as JSON
};

struct MessagePage {
  std::vector<ListedMessage> items;
  bool has_more = false;
};

// Reads a list answer ({"data": [...], "hasMore": bool}); nullopt when it is not one. The
// sender may be spelled `from_` or `from`.
std::optional<MessagePage> ParseMessagePage(const std::string& body);

// Why a send of the request `request_json` cannot be looked up if its outcome is unknown;
// empty when it can.
std::string WhyNoLookup(const std::string& request_json);

class SendFinder {
 public:
  // `default_region` reads listed numbers without a country code (--default-region).
  SendFinder(store::Store* store, DurationMs clock_skew, std::string default_region);

  // Looks for `message`'s send that started at `since`, asking through `client`. `asked`
  // tells whether anything was asked upstream (its last answer is in the result's response).
  LookupResult Find(UpstreamClient& client, const Message& message, TimeMs since, bool* asked);

 private:
  struct Target {
    std::vector<std::string> number_ids;
    std::string to_number;  // E.164
    std::string body;
  };
  // The number ids to search, from the request; a result that is not kFound-like on failure.
  std::optional<std::vector<std::string>> NumberIds(UpstreamClient& client,
                                                    const nlohmann::json& request,
                                                    LookupResult* failure, bool* asked);
  std::optional<std::vector<std::string>> ResolveFromNumber(UpstreamClient& client,
                                                            const std::string& from_number,
                                                            LookupResult* failure, bool* asked);
  std::optional<std::vector<std::string>> ResolveAgent(UpstreamClient& client,
                                                       const std::string& agent_id,
                                                       LookupResult* failure, bool* asked);
  // Appends the matching listed sends of `number_id` since `after` to `matches` (by id).
  bool Search(UpstreamClient& client, const std::string& number_id, TimeMs after,
              const Target& target, std::map<std::string, ListedMessage>* matches,
              LookupResult* failure, bool* asked);

  store::Store* const store_;
  const DurationMs clock_skew_;
  const std::string default_region_;

  Mutex mu_;
  // "from:+1415..." or "agent:<id>" -> the number ids it sends from.
  std::map<std::string, std::vector<std::string>> numbers_ GUARDED_BY(mu_);
};

}  // namespace sendq::delivery
