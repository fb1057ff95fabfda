// Opt-outs: the suppression list, and AgentPhone's signed inbound webhook that changes it.
#include <doctest/doctest.h>

#include "scenario.h"
#include "util/hmac.h"

namespace sendq::test {
namespace {

using Flags = std::vector<std::string>;
constexpr char kNumber[] = "+14155552671";  // ExampleRequest's recipient
constexpr char kWebhookSecret[] = "whsec_test_secret";

// AgentPhone's inbound-message webhook, signed as AgentPhone signs it.
HttpResult DeliverWebhook(SendqProcess& sendq, const nlohmann::json& payload, const std::string& id,
                          int64_t timestamp, const std::string& secret = kWebhookSecret) {
  const std::string body = payload.dump();
  const std::string ts = std::to_string(timestamp);
  const std::string signature = "sha256=" + HmacSha256Hex(secret, ts + "." + body);
  return Request("POST", "127.0.0.1", sendq.port(), "/v1/agentphone/webhook", body,
                 {{"Content-Type", "application/json"},
                  {"X-Webhook-Signature", signature},
                  {"X-Webhook-Timestamp", ts},
                  {"X-Webhook-ID", id}});
}

nlohmann::json InboundMessage(const std::string& text, const std::string& number_id = "num_1") {
  return {{"event", "agent.message"},
          {"channel", "sms"},
          {"timestamp", "2026-12-01T12:00:00Z"},
          {"agentId", "agent_12345abcde"},
          {"data",
           {{"conversationId", "conv_1"},
            {"numberId", number_id},
            {"from", kNumber},
            {"to", "+14155550001"},
            {"message", text},
            {"direction", "inbound"},
            {"receivedAt", "2026-12-01T12:00:00Z"}}}};
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_CASE("optouts: a suppressed recipient is refused at enqueue; DELETE lifts it") {
  Scenario s;
  HttpResult put =
      s.sendq->Send("PUT", "/v1/suppressions/%2B14155552671", R"({"reason":"asked by phone"})");
  REQUIRE(put.status == 200);
  CHECK(put.json.at("number") == kNumber);
  CHECK(put.json.at("source") == "api");
  CHECK(put.json.at("reason") == "asked by phone");
  // National format in the default region names the same number.
  CHECK(s.sendq->Get("/v1/suppressions/(415)%20555-2671").status == 200);
  CHECK(s.sendq->Get("/v1/suppressions/+14155550000").status == 404);
  CHECK(s.sendq->Get("/v1/suppressions/not-a-number").status == 422);

  HttpResult refused = s.sendq->Post("/v1/messages", ExampleRequest());
  CHECK(refused.status == 422);
  CHECK(refused.json.at("detail")[0].at("loc") == nlohmann::json({"body", "to_number"}));
  CHECK(refused.json.at("detail")[0].at("msg").get<std::string>().find("opted out") !=
        std::string::npos);
  HttpResult list = s.sendq->Get("/v1/suppressions");
  REQUIRE(list.status == 200);
  REQUIRE(list.json.at("data").size() == 1);
  CHECK(list.json.at("has_more") == false);

  CHECK(s.sendq->Send("DELETE", "/v1/suppressions/" + std::string(kNumber), "").status == 200);
  CHECK(s.sendq->Send("DELETE", "/v1/suppressions/" + std::string(kNumber), "").status == 404);
  std::string id = Enqueue(*s.sendq);
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
}

TEST_CASE("optouts: the list pages with a cursor") {
  Scenario s;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(
        s.sendq->Send("PUT", fmt::format("/v1/suppressions/+1415555{:04}", 100 + i), "").status ==
        200);
  }
  std::vector<std::string> seen;
  std::string path = "/v1/suppressions?limit=2";
  for (int page = 0; page < 5; ++page) {
    HttpResult r = s.sendq->Get(path);
    REQUIRE(r.status == 200);
    for (const auto& item : r.json.at("data")) seen.push_back(item.at("number"));
    if (r.json.at("next_cursor").is_null()) break;
    path = "/v1/suppressions?limit=2&cursor=" + r.json.at("next_cursor").get<std::string>();
  }
  CHECK(seen == std::vector<std::string>{"+14155550100", "+14155550101", "+14155550102",
                                         "+14155550103", "+14155550104"});
}

TEST_CASE("optouts: a queued message whose recipient becomes suppressed fails as suppressed") {
  Scenario s;
  std::string id = Enqueue(*s.sendq, ExampleRequest(),
                           {{"Sendq-Send-At", "2099-01-01T00:00:00Z"}, {"Sendq-Ttl", "1h"}});
  REQUIRE(s.sendq->Send("PUT", "/v1/suppressions/" + std::string(kNumber), "").status == 200);
  HttpResult record = s.sendq->Get("/v1/messages/" + id);
  CHECK(record.json.at("status") == "failed");
  CHECK(record.json.at("reason") == "suppressed");
  CHECK(s.upstream->Received().at("count") == 0);
}

TEST_CASE("optouts: an inbound STOP signed by AgentPhone suppresses, and START lifts it") {
  Scenario s(Flags{}, {"--agentphone-webhook-secret", kWebhookSecret, "--number-owners",
                       "num_other=someone-else"});
  const int64_t now = NowSeconds();
  // Refused: a wrong secret, a timestamp too old, no signature at all.
  CHECK(DeliverWebhook(*s.sendq, InboundMessage("STOP"), "wh_1", now, "wrong").status == 401);
  CHECK(DeliverWebhook(*s.sendq, InboundMessage("STOP"), "wh_1", now - 600).status == 401);
  CHECK(Request("POST", "127.0.0.1", s.sendq->port(), "/v1/agentphone/webhook",
                InboundMessage("STOP").dump(), {{"Content-Type", "application/json"}})
            .status == 401);
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 404);

  // A number another producer owns changes only that producer's list.
  HttpResult other = DeliverWebhook(*s.sendq, InboundMessage("stop", "num_other"), "wh_0", now);
  CHECK(other.status == 200);
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 404);

  // Unowned: every producer's list. Case and spaces do not matter.
  HttpResult stop = DeliverWebhook(*s.sendq, InboundMessage("  Stop \n"), "wh_1", now);
  REQUIRE(stop.status == 200);
  CHECK(stop.json.at("action") == "suppress");
  CHECK(stop.json.at("duplicate") == false);
  HttpResult listed = s.sendq->Get("/v1/suppressions/" + std::string(kNumber));
  REQUIRE(listed.status == 200);
  CHECK(listed.json.at("source") == "inbound");
  CHECK(s.sendq->Post("/v1/messages", ExampleRequest()).status == 422);

  // A repeated delivery is acknowledged, not applied again: after a DELETE it stays lifted.
  REQUIRE(s.sendq->Send("DELETE", "/v1/suppressions/" + std::string(kNumber), "").status == 200);
  HttpResult again = DeliverWebhook(*s.sendq, InboundMessage("  Stop \n"), "wh_1", now);
  CHECK(again.status == 200);
  CHECK(again.json.at("duplicate") == true);
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 404);

  // STOP again, then START lifts it; other events are acknowledged and ignored.
  REQUIRE(DeliverWebhook(*s.sendq, InboundMessage("UNSUBSCRIBE"), "wh_2", now).status == 200);
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 200);
  HttpResult start = DeliverWebhook(*s.sendq, InboundMessage("start"), "wh_3", now);
  CHECK(start.json.at("action") == "lift");
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 404);
  HttpResult hello = DeliverWebhook(*s.sendq, InboundMessage("STOP by later?"), "wh_4", now);
  CHECK(hello.json.at("action") == "ignore");
  nlohmann::json reaction = {{"event", "agent.reaction"}, {"data", {{"reactionType", "love"}}}};
  CHECK(DeliverWebhook(*s.sendq, reaction, "wh_5", now).json.at("action") == "ignore");
  CHECK(s.sendq->Get("/v1/suppressions/" + std::string(kNumber)).status == 404);
}

}  // namespace
}  // namespace sendq::test
