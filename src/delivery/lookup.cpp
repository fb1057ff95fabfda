#include "delivery/lookup.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>
#include <set>

#include "queue/phone.h"
#include "util/json_fields.h"
#include "util/percent.h"
#include "util/time_format.h"

namespace sendq::delivery {
namespace {

using json = nlohmann::json;

constexpr int kPageLimit = 200;  // AgentPhone's largest page
// A number that sent more than this many messages since the attempt is not searched further.
constexpr int kMaxPages = 50;
constexpr int kMaxNumberPages = 20;  // of GET /v1/numbers, 100 numbers each

// A failed request of the look-up: worth trying again later (kFailed), or a sign that it cannot
// be looked up at all (kNoWay).
LookupResult FailedRequest(const std::string& what, const UpstreamResponse& response) {
  LookupResult r;
  r.response = response;
  if (response.transport != UpstreamResponse::Transport::kResponded) {
    r.verdict = LookupResult::Verdict::kFailed;
    r.detail = fmt::format("{}: {}", what, response.transport_error);
    return r;
  }
  const int status = response.http_status;
  const bool transient = status == 408 || status == 429 || status >= 500;
  r.verdict = transient ? LookupResult::Verdict::kFailed : LookupResult::Verdict::kNoWay;
  r.detail = fmt::format("{}: AgentPhone answered {}", what,
                         ParseUpstreamErrorMessage(status, response.body));
  return r;
}

LookupResult Unreadable(const std::string& what, const UpstreamResponse& response) {
  LookupResult r;
  r.response = response;
  r.verdict = LookupResult::Verdict::kNoWay;
  r.detail = what + ": AgentPhone's answer could not be read";
  return r;
}

}  // namespace

std::optional<MessagePage> ParseMessagePage(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto data = j.find("data");
  if (data == j.end() || !data->is_array()) return std::nullopt;
  MessagePage page;
  if (auto more = j.find("hasMore"); more != j.end() && more->is_boolean()) {
    page.has_more = more->get<bool>();
  }
  for (const json& item : *data) {
    if (!item.is_object()) continue;
    ListedMessage m;
    m.id = StringMember(item, "id").value_or("");
    if (m.id.empty()) continue;
    m.direction = StringMember(item, "direction").value_or("");
    m.to = StringMember(item, "to").value_or("");
    m.from = StringMember(item, "from_").value_or(StringMember(item, "from").value_or(""));
    m.body = StringMember(item, "body");
    m.channel = StringMember(item, "channel");
    if (auto at = StringMember(item, "receivedAt")) m.received_at = ParseRfc3339(*at);
    m.raw = item.dump();
    page.items.push_back(std::move(m));
  }
  return page;
}

std::string WhyNoLookup(const std::string& request_json) {
  json request = json::parse(request_json, nullptr, /*allow_exceptions=*/false);
  if (!request.is_object()) return "its request could not be read";
  if (auto r = request.find("recipients"); r != request.end() && !r->is_null()) {
    return "it starts a new group (recipients), which AgentPhone lists under a new grp_ id";
  }
  std::optional<std::string> to = StringMember(request, "to_number");
  if (!to || to->empty()) return "it has no to_number";
  std::optional<std::string> body = StringMember(request, "body");
  if (!body || body->find_first_not_of(" \t\r\n") == std::string::npos) {
    return "it has no text body (the list of sent messages shows no media)";
  }
  return "";
}

SendFinder::SendFinder(store::Store* store, DurationMs clock_skew, std::string default_region)
    : store_(store), clock_skew_(clock_skew), default_region_(std::move(default_region)) {}

LookupResult SendFinder::Find(UpstreamClient& client, const Message& message, TimeMs since,
                              bool* asked) {
  *asked = false;
  LookupResult result;
  if (std::string why = WhyNoLookup(message.request_json); !why.empty()) {
    result.verdict = LookupResult::Verdict::kNoWay;
    result.detail = why;
    return result;
  }
  const json request = json::parse(message.request_json);
  Target target;
  const std::string to = request["to_number"].get<std::string>();
  target.to_number = NormalisePhone(to, default_region_).value_or(to);
  target.body = request["body"].get<std::string>();
  std::optional<std::vector<std::string>> numbers = NumberIds(client, request, &result, asked);
  if (!numbers) return result;
  target.number_ids = std::move(*numbers);

  const TimeMs after = since - clock_skew_;
  std::map<std::string, ListedMessage> matches;
  for (const std::string& number_id : target.number_ids) {
    if (!Search(client, number_id, after, target, &matches, &result, asked)) return result;
  }
  // A listed send that another message was settled with (or sent as) is not this one.
  std::vector<const ListedMessage*> free;
  for (const auto& [id, listed] : matches) {
    Result<std::optional<std::string>> holder = store_->FindByProviderId(id, message.id);
    if (!holder.ok()) {
      result.verdict = LookupResult::Verdict::kFailed;
      result.detail = "reading the store: " + holder.status().ToString();
      return result;
    }
    if (!*holder) free.push_back(&listed);
  }
  const std::string where =
      fmt::format("number {} since {}", fmt::join(target.number_ids, ", "), FormatRfc3339(after));
  if (free.empty()) {
    result.verdict = LookupResult::Verdict::kNotFound;
    result.detail = fmt::format(
        "no outbound message with the same recipient and body is listed "
        "on {} ({} taken by other messages)",
        where, matches.size());
  } else if (free.size() > 1) {
    result.verdict = LookupResult::Verdict::kAmbiguous;
    result.detail = fmt::format(
        "{} outbound messages with the same recipient and body are listed on {}: it cannot "
        "tell which is this one",
        free.size(), where);
  } else {
    result.verdict = LookupResult::Verdict::kFound;
    const ListedMessage& listed = *free.front();
    result.found.provider_message_id = listed.id;
    result.found.channel = listed.channel;
    result.found.to_number = listed.to;
    if (!listed.from.empty()) result.found.from_number = listed.from;
    result.found.readable = true;
    result.listed = listed.raw;
    result.detail = fmt::format("{} on {}", free.front()->id, where);
  }
  return result;
}

std::optional<std::vector<std::string>> SendFinder::NumberIds(UpstreamClient& client,
                                                              const json& request,
                                                              LookupResult* failure, bool* asked) {
  if (auto id = StringMember(request, "number_id"); id && !id->empty()) {
    return std::vector<std::string>{*id};
  }
  if (auto from = StringMember(request, "from_number"); from && !from->empty()) {
    return ResolveFromNumber(client, *from, failure, asked);
  }
  if (auto agent = StringMember(request, "agent_id"); agent && !agent->empty()) {
    return ResolveAgent(client, *agent, failure, asked);
  }
  failure->verdict = LookupResult::Verdict::kNoWay;
  failure->detail = "it names no number_id, from_number or agent_id";
  return std::nullopt;
}

std::optional<std::vector<std::string>> SendFinder::ResolveFromNumber(UpstreamClient& client,
                                                                      const std::string& from,
                                                                      LookupResult* failure,
                                                                      bool* asked) {
  const std::string e164 = NormalisePhone(from, default_region_).value_or(from);
  const std::string key = "from:" + e164;
  {
    MutexLock guard(&mu_);
    if (auto it = numbers_.find(key); it != numbers_.end()) return it->second;
  }
  const std::string what = "resolving from_number to a number id (GET /v1/numbers)";
  for (int page = 0; page < kMaxNumberPages; ++page) {
    *asked = true;
    UpstreamResponse response =
        client.Get(fmt::format("/v1/numbers?limit=100&offset={}", page * 100));
    failure->response = response;
    if (response.transport != UpstreamResponse::Transport::kResponded ||
        response.http_status != 200) {
      *failure = FailedRequest(what, response);
      return std::nullopt;
    }
    json j = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("data") || !j["data"].is_array()) {
      *failure = Unreadable(what, response);
      return std::nullopt;
    }
    for (const json& number : j["data"]) {
      if (!number.is_object()) continue;
      std::optional<std::string> phone = StringMember(number, "phoneNumber");
      std::optional<std::string> id = StringMember(number, "id");
      if (!phone || !id) continue;
      if (NormalisePhone(*phone, default_region_).value_or(*phone) == e164) {
        std::vector<std::string> ids{*id};
        MutexLock guard(&mu_);
        numbers_[key] = ids;
        return ids;
      }
    }
    auto more = j.find("hasMore");
    if (more == j.end() || !more->is_boolean() || !more->get<bool>()) break;
  }
  failure->verdict = LookupResult::Verdict::kNoWay;
  failure->detail = "its from_number is not among the account's numbers (GET /v1/numbers)";
  return std::nullopt;
}

std::optional<std::vector<std::string>> SendFinder::ResolveAgent(UpstreamClient& client,
                                                                 const std::string& agent_id,
                                                                 LookupResult* failure,
                                                                 bool* asked) {
  const std::string key = "agent:" + agent_id;
  {
    MutexLock guard(&mu_);
    if (auto it = numbers_.find(key); it != numbers_.end()) return it->second;
  }
  const std::string what = "resolving agent_id to its numbers (GET /v1/agents/{agent_id})";
  *asked = true;
  UpstreamResponse response = client.Get("/v1/agents/" + PercentEncode(agent_id));
  failure->response = response;
  if (response.transport != UpstreamResponse::Transport::kResponded ||
      response.http_status != 200) {
    *failure = FailedRequest(what, response);
    return std::nullopt;
  }
  json j = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("numbers") || !j["numbers"].is_array()) {
    *failure = Unreadable(what, response);
    return std::nullopt;
  }
  std::vector<std::string> ids;
  for (const json& number : j["numbers"]) {
    if (!number.is_object()) continue;
    if (auto id = StringMember(number, "id")) ids.push_back(*id);
  }
  if (ids.empty()) {
    failure->verdict = LookupResult::Verdict::kNoWay;
    failure->detail = "its agent has no numbers (GET /v1/agents/{agent_id})";
    return std::nullopt;
  }
  MutexLock guard(&mu_);
  numbers_[key] = ids;
  return ids;
}

bool SendFinder::Search(UpstreamClient& client, const std::string& number_id, TimeMs after,
                        const Target& target, std::map<std::string, ListedMessage>* matches,
                        LookupResult* failure, bool* asked) {
  const std::string what = "listing the number's messages (GET /v1/numbers/{id}/messages)";
  // The order of the list is not documented: page on from the oldest (ascending) or the
  // newest (descending) item of the page, whichever way the page runs, and drop repeats.
  std::set<std::string> seen;
  TimeMs page_after = after;
  std::optional<TimeMs> page_before;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string path =
        fmt::format("/v1/numbers/{}/messages?limit={}&after={}", PercentEncode(number_id),
                    kPageLimit, PercentEncode(FormatRfc3339(page_after)));
    if (page_before) path += "&before=" + PercentEncode(FormatRfc3339(*page_before));
    *asked = true;
    UpstreamResponse response = client.Get(path);
    failure->response = response;
    if (response.transport != UpstreamResponse::Transport::kResponded ||
        response.http_status != 200) {
      *failure = FailedRequest(what, response);
      return false;
    }
    std::optional<MessagePage> listed = ParseMessagePage(response.body);
    if (!listed) {
      *failure = Unreadable(what, response);
      return false;
    }
    std::vector<ListedMessage>& items = listed->items;
    const bool descending = items.size() < 2 || !items.front().received_at ||
                            !items.back().received_at ||
                            *items.front().received_at >= *items.back().received_at;
    bool any_new = false;
    std::optional<TimeMs> oldest;
    std::optional<TimeMs> newest;
    for (ListedMessage& m : items) {
      if (!seen.insert(m.id).second) continue;
      any_new = true;
      if (m.received_at) {
        oldest = std::min(oldest.value_or(*m.received_at), *m.received_at);
        newest = std::max(newest.value_or(*m.received_at), *m.received_at);
      }
      if (m.direction != "outbound" || !m.body || *m.body != target.body) continue;
      if (NormalisePhone(m.to, default_region_).value_or(m.to) != target.to_number) continue;
      matches->emplace(m.id, std::move(m));
    }
    if (!listed->has_more) return true;
    if (!any_new || !oldest) break;
    // One millisecond of overlap, so that items sharing the boundary's time are not skipped.
    if (descending) {
      page_before = *oldest + 1;
    } else {
      page_after = *newest - 1;
    }
  }
  failure->verdict = LookupResult::Verdict::kNoWay;
  failure->detail = fmt::format("{}: the list could not be read to its end", what);
  return false;
}

}  // namespace sendq::delivery
