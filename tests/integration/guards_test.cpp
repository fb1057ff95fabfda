// Runaway guards: a producer in a loop is stopped before it floods one person's phone.
#include <doctest/doctest.h>

#include "scenario.h"

namespace sendq::test {
namespace {

using Flags = std::vector<std::string>;

int64_t MetricValue(const std::string& metrics, const std::string& line_start) {
  size_t at = metrics.find(line_start);
  if (at == std::string::npos) return -1;
  return std::stoll(metrics.substr(at + line_start.size()));
}

TEST_CASE("guards: a loop of 50 identical messages is held after the duplicate cap") {
  Scenario s(Flags{}, {"--duplicate-cap", "3", "--duplicate-window", "10m"});
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    HttpResult r = s.sendq->Post("/v1/messages", ExampleRequest("Are you there?"));
    REQUIRE(r.status == 202);
    ids.push_back(r.json.at("id"));
    if (i >= 3) {
      CHECK(r.json.at("status") == "held");
      CHECK(r.json.at("reason") == "duplicate_body");
    }
  }
  for (int i = 0; i < 3; ++i) CHECK(WaitFinal(*s.sendq, ids[i]).at("status") == "sent");
  HttpResult held = s.sendq->Get("/v1/messages?status=held&limit=200");
  REQUIRE(held.status == 200);
  CHECK(held.json.at("data").size() == 47);
  CHECK(MetricValue(s.sendq->Get("/metrics").body, "sendq_messages{status=\"held\"} ") == 47);
  CHECK(s.upstream->Sent().at("count") == 3);

  // One released by hand is sent; the rest canceled by filter.
  HttpResult released = s.sendq->Post("/v1/messages/" + ids[10] + "/release", nlohmann::json{});
  REQUIRE(released.status == 200);
  CHECK(released.json.at("status") == "queued");
  CHECK(WaitFinal(*s.sendq, ids[10]).at("status") == "sent");
  CHECK(s.sendq->Post("/v1/messages/" + ids[10] + "/release", nlohmann::json{}).status == 409);
  HttpResult canceled =
      s.sendq->Post("/v1/messages/cancel", {{"status", "held"}, {"reason", "duplicate_body"}});
  REQUIRE(canceled.status == 200);
  CHECK(canceled.json.at("matched") == 46);
  CHECK(canceled.json.at("changed") == 46);
  CHECK(s.sendq->Get("/v1/messages/" + ids[20]).json.at("status") == "canceled");
  CHECK(s.upstream->Sent().at("count") == 4);
}

TEST_CASE("guards: the recipient cap holds the next message; replays never count") {
  Scenario s(Flags{}, {"--recipient-cap", "3/h"});
  // One message, replayed four times under its key: one message counted.
  for (int i = 0; i < 5; ++i) {
    HttpResult r =
        s.sendq->Post("/v1/messages", ExampleRequest("Hello 0"), {{"Idempotency-Key", "same-key"}});
    CHECK(r.status == (i == 0 ? 202 : 200));
  }
  CHECK(s.sendq->Post("/v1/messages", ExampleRequest("Hello 1")).json.at("status") != "held");
  CHECK(s.sendq->Post("/v1/messages", ExampleRequest("Hello 2")).json.at("status") != "held");
  HttpResult fourth = s.sendq->Post("/v1/messages", ExampleRequest("Hello 3"));
  CHECK(fourth.json.at("status") == "held");
  CHECK(fourth.json.at("reason") == "recipient_cap");
  CHECK(fourth.json.at("last_error").get<std::string>().find("--recipient-cap") !=
        std::string::npos);
  // Another recipient is not capped.
  CHECK(s.sendq->Post("/v1/messages", ExampleRequestTo(7, "Hello")).json.at("status") != "held");
  // A held message can be canceled by id; released by filter, it goes.
  HttpResult fifth = s.sendq->Post("/v1/messages", ExampleRequest("Hello 4"));
  REQUIRE(fifth.json.at("status") == "held");
  const std::string fifth_id = fifth.json.at("id");
  CHECK(s.sendq->Post("/v1/messages/" + fifth_id + "/cancel", nlohmann::json{}).status == 200);
  HttpResult released = s.sendq->Post("/v1/messages/release", {{"to_number", "+14155552671"}});
  REQUIRE(released.status == 200);
  CHECK(released.json.at("matched") == 1);
  CHECK(WaitFinal(*s.sendq, fourth.json.at("id")).at("status") == "sent");
  CHECK(s.sendq->Post("/v1/messages/release", {{"status", "queued"}}).status == 422);
}

}  // namespace
}  // namespace sendq::test
