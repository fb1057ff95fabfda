// Settling unknown outcomes: a send that got no answer is looked up in the fake AgentPhone's
// list of the number's messages before anything else happens to it.
#include <doctest/doctest.h>

#include "scenario.h"

namespace sendq::test {
namespace {

using Flags = std::vector<std::string>;
const std::vector<std::string> kQuickLookup = {"--lookup-grace", "50ms"};

std::vector<std::string> With(std::vector<std::string> extra) {
  std::vector<std::string> args = kQuickLookup;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

size_t CountSends(FakeUpstream& upstream, const std::string& id, const char* list) {
  nlohmann::json all = std::string(list) == "sent" ? upstream.Sent() : upstream.Received();
  size_t n = 0;
  for (const auto& s : all.at("sends")) n += s.at("idempotency_key") == id ? 1 : 0;
  return n;
}

std::string OnlySendId(FakeUpstream& upstream, const std::string& id) {
  const nlohmann::json sent = upstream.Sent();
  for (const auto& s : sent.at("sends")) {
    if (s.at("idempotency_key") == id) return s.at("id");
  }
  return "";
}

// Sends `request` to the fake directly, as another client of the same account would.
void SendDirectly(FakeUpstream& upstream, const nlohmann::json& request) {
  HttpResult r = Request("POST", "127.0.0.1", upstream.port(), "/v1/messages", request.dump(),
                         {{"Authorization", std::string("Bearer ") + kTestUpstreamToken},
                          {"Content-Type", "application/json"}});
  REQUIRE(r.status == 200);
}

nlohmann::json Ledger(SendqProcess& sendq, const std::string& id) {
  HttpResult ledger = sendq.Get("/v1/messages/" + id + "/attempts");
  REQUIRE(ledger.status == 200);
  return ledger.json.at("data");
}

TEST_CASE("settle: a send accepted then dropped is found, recorded sent, and never sent twice") {
  Scenario s(Flags{"--accept-then-drop-rate", "1"}, kQuickLookup);
  std::string id = Enqueue(*s.sendq);  // by agent_id: resolved through GET /v1/agents/{id}
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("provider_message_id") == OnlySendId(*s.upstream, id));
  CHECK(CountSends(*s.upstream, id, "received") == 1);
  nlohmann::json ledger = Ledger(*s.sendq, id);
  REQUIRE(ledger.size() == 2);
  CHECK(ledger[0].at("outcome") == "unknown");
  CHECK(ledger[1].at("outcome") == "reconciled");
  CHECK(ledger[1].at("charged") == false);
  CHECK(ledger[1].at("error").get<std::string>().find(record.at("provider_message_id")) !=
        std::string::npos);
  // Found by its provider id like any sent message.
  HttpResult by_provider = s.sendq->Get("/v1/messages?provider_message_id=" +
                                        record.at("provider_message_id").get<std::string>());
  REQUIRE(by_provider.json.at("data").size() == 1);
  CHECK(by_provider.json["data"][0].at("id") == id);
}

TEST_CASE("settle: a from_number is resolved to its number id through GET /v1/numbers") {
  Scenario s(Flags{"--accept-then-drop-rate", "1"}, With({"--on-unknown", "reconcile-or-fail"}));
  nlohmann::json request = {
      {"from_number", "+14155550123"}, {"to_number", "+14155552671"}, {"body", "Hi there"}};
  std::string id = Enqueue(*s.sendq, request);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("provider_message_id") == OnlySendId(*s.upstream, id));
  CHECK(CountSends(*s.upstream, id, "received") == 1);
}

TEST_CASE("settle: a listed send that another message holds is not this one") {
  Scenario s(Flags{}, kQuickLookup);
  nlohmann::json request = ExampleRequest("Same words");
  std::string first = Enqueue(*s.sendq, request);
  CHECK(WaitFinal(*s.sendq, first).at("status") == "sent");
  s.upstream->SetConfig({{"accept_then_drop_rate", 1}});
  std::string second = Enqueue(*s.sendq, request);
  nlohmann::json record = WaitFinal(*s.sendq, second);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("provider_message_id") == OnlySendId(*s.upstream, second));
  CHECK(CountSends(*s.upstream, second, "received") == 1);
}

TEST_CASE("settle: two equal candidates fall back to --on-unknown, with the reason") {
  Scenario s(Flags{}, With({"--on-unknown", "fail"}));
  nlohmann::json request = ExampleRequest("Twice the same");
  SendDirectly(*s.upstream, request);  // not sendq's: listed, held by no message
  s.upstream->SetConfig({{"accept_then_drop_rate", 1}});
  std::string id = Enqueue(*s.sendq, request);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("last_error").get<std::string>().find("--on-unknown=fail") != std::string::npos);
  nlohmann::json ledger = Ledger(*s.sendq, id);
  REQUIRE(ledger.size() == 2);
  CHECK(ledger[1].at("outcome") == "lookup");
  CHECK(ledger[1].at("error").get<std::string>().find("2 outbound messages") != std::string::npos);
  CHECK(CountSends(*s.upstream, id, "received") == 1);
}

TEST_CASE("settle: reconcile-or-fail sends again only what the complete list shows unsent") {
  Scenario s(Flags{"--drop-rate", "1"}, With({"--on-unknown", "reconcile-or-fail"}));
  std::string id = Enqueue(*s.sendq);
  nlohmann::json first = WaitAttempts(*s.sendq, id, 2);  // dropped before it was accepted
  CHECK(first[0].at("outcome") == "unknown");
  CHECK(first[1].at("outcome") == "lookup");
  CHECK(first[1].at("error").get<std::string>().find("sending again") != std::string::npos);
  s.upstream->SetConfig({{"drop_rate", 0}});
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(CountSends(*s.upstream, id, "sent") == 1);
}

TEST_CASE("settle: a send that starts a group cannot be looked up and follows the policy") {
  Scenario s(Flags{"--accept-then-drop-rate", "1"}, With({"--on-unknown", "reconcile-or-fail"}));
  nlohmann::json request = {{"agent_id", "agent_12345abcde"},
                            {"recipients", {"+14155552671", "+14155552672"}},
                            {"body", "Group hello"}};
  std::string id = Enqueue(*s.sendq, request);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("last_error").get<std::string>().find("new group") != std::string::npos);
  CHECK(CountSends(*s.upstream, id, "received") == 1);
}

TEST_CASE("settle: a failing list is tried again, uncharged, and the send is then found") {
  Scenario s(Flags{"--accept-then-drop-rate", "1"}, With({"--on-unknown", "fail"}));
  s.upstream->SetConfig({{"list_status", 503}});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json attempts = WaitAttempts(*s.sendq, id, 2);
  CHECK(attempts[1].at("outcome") == "lookup");
  CHECK(attempts[1].at("charged") == false);
  CHECK(attempts[1].at("error").get<std::string>().find("look-up failed") != std::string::npos);
  s.upstream->SetConfig({{"list_status", 0}});
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("attempts") == 1);
  CHECK(CountSends(*s.upstream, id, "received") == 1);
}

}  // namespace
}  // namespace sendq::test
