// POST /v1/messages/batch end to end: sendq and the fake AgentPhone as real processes.
#include <doctest/doctest.h>

#include <set>

#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

// Nothing listens there, and the probe interval is long: messages stay `queued`.
std::string UnreachableUrlForBatch() {
  return "http://127.0.0.1:" + std::to_string(FreeLoopbackPort());
}

json Batch(std::vector<json> messages) { return {{"messages", std::move(messages)}}; }

json WithKey(json request, const std::string& key) {
  request["idempotency_key"] = key;
  return request;
}

TEST_CASE("batch: each item gets its own answer, and the accepted ones are delivered") {
  Scenario s;
  json bad = ExampleRequest();
  bad["to_number"] = "not-a-number";
  const json batch = Batch({ExampleRequest("first"), bad, WithKey(ExampleRequest("third"), "k-3"),
                            WithKey(ExampleRequest("third"), "k-3")});
  HttpResult r = s.sendq->Post("/v1/messages/batch", batch);
  INFO("answer: " << r.body);
  REQUIRE(r.status == 200);
  CHECK(r.json.at("accepted") == 2);
  CHECK(r.json.at("replayed") == 1);
  CHECK(r.json.at("rejected") == 1);
  const json& results = r.json.at("results");
  REQUIRE(results.size() == 4);
  for (size_t i = 0; i < results.size(); ++i) CHECK(results[i].at("index") == i);

  CHECK(results[0].at("status") == 202);
  CHECK(results[0].at("message").at("status") == "queued");

  CHECK(results[1].at("status") == 422);
  REQUIRE(results[1].at("detail").size() == 1);
  CHECK(results[1]["detail"][0].at("loc") == json::array({"body", "messages", 1, "to_number"}));
  CHECK_FALSE(results[1].contains("message"));

  CHECK(results[2].at("status") == 202);
  CHECK(results[2].at("message").at("idempotency_key") == "k-3");
  // The second use of a key in the same batch is a replay of the first.
  CHECK(results[3].at("status") == 200);
  CHECK(results[3].at("replayed") == true);
  CHECK(results[3].at("message").at("id") == results[2].at("message").at("id"));

  const std::string first = results[0]["message"]["id"];
  const std::string third = results[2]["message"]["id"];
  // One log line for the batch names every new message.
  std::optional<std::string> logged = s.sendq->process().WaitForLine(
      Stream::kStderr,
      [](const std::string& l) { return l.find("batch_enqueued") != std::string::npos; }, 10'000);
  REQUIRE(logged.has_value());
  CHECK(logged->find(first) != std::string::npos);
  CHECK(logged->find(third) != std::string::npos);
  CHECK(WaitFinal(*s.sendq, first).at("status") == "sent");
  CHECK(WaitFinal(*s.sendq, third).at("status") == "sent");
  const json sent = s.upstream->Sent(2, 10'000);
  REQUIRE(sent.at("count") == 2);
  for (const json& send : sent.at("sends")) {
    // The key is sendq's, not part of the request AgentPhone gets.
    CHECK_FALSE(send.at("body").contains("idempotency_key"));
  }
  CHECK(s.sendq->Get("/v1/messages").json.at("data").size() == 2);
}

TEST_CASE("batch: an item key reused with another request is a 409 for that item only") {
  Scenario s;
  REQUIRE(
      s.sendq->Post("/v1/messages/batch", Batch({WithKey(ExampleRequest("one"), "k")})).status ==
      200);
  HttpResult r = s.sendq->Post("/v1/messages/batch",
                               Batch({WithKey(ExampleRequest("two"), "k"), ExampleRequest("ok")}));
  REQUIRE(r.status == 200);
  CHECK(r.json.at("results")[0].at("status") == 409);
  CHECK(r.json.at("results")[0].at("code") == "idempotency_key_reused");
  CHECK(r.json.at("results")[1].at("status") == 202);
  CHECK(r.json.at("accepted") == 1);
  CHECK(r.json.at("rejected") == 1);
}

TEST_CASE("batch: a batch of the largest size is stored whole") {
  Scenario s(UnreachableUrlForBatch(), {"--backoff-base", "10m", "--backoff-max", "10m"});
  std::vector<json> messages;
  for (int i = 0; i < 500; ++i) {
    messages.push_back(WithKey(ExampleRequest("n" + std::to_string(i)), "b-" + std::to_string(i)));
  }
  HttpResult r = s.sendq->Post("/v1/messages/batch", Batch(messages));
  REQUIRE(r.status == 200);
  CHECK(r.json.at("accepted") == 500);
  std::set<std::string> ids;
  for (const json& item : r.json.at("results"))
    ids.insert(item["message"]["id"].get<std::string>());
  CHECK(ids.size() == 500);
  std::set<std::string> listed;
  std::string cursor;
  for (int page_number = 0; page_number < 10; ++page_number) {
    HttpResult page = s.sendq->Get("/v1/messages?status=queued&limit=200" +
                                   (cursor.empty() ? "" : "&cursor=" + cursor));
    REQUIRE(page.status == 200);
    for (const json& m : page.json.at("data")) listed.insert(m.at("id").get<std::string>());
    if (page.json.at("next_cursor").is_null()) break;
    cursor = page.json.at("next_cursor").get<std::string>();
  }
  CHECK(listed == ids);
}

TEST_CASE("batch: a malformed envelope is one 422 and stores nothing") {
  Scenario s(UnreachableUrlForBatch(), {"--backoff-base", "10m", "--backoff-max", "10m"});
  auto expect_422 = [&](const std::string& body, const json& loc,
                        const std::map<std::string, std::string>& headers = {}) {
    HttpResult r = s.sendq->Send("POST", "/v1/messages/batch", body, headers);
    INFO("body " << body.substr(0, 80) << " answered " << r.status << ": " << r.body);
    CHECK(r.status == 422);
    REQUIRE(r.json.contains("detail"));
    CHECK(r.json["detail"][0].at("loc") == loc);
  };
  expect_422("not json", json::array({"body"}));
  expect_422("[]", json::array({"body"}));
  expect_422("{}", json::array({"body", "messages"}));
  expect_422(R"({"messages": {}})", json::array({"body", "messages"}));
  expect_422(R"({"messages": []})", json::array({"body", "messages"}));
  std::vector<json> too_many(501, ExampleRequest());
  expect_422(Batch(too_many).dump(), json::array({"body", "messages"}));
  expect_422(std::string(100, '[') + std::string(100, ']'), json::array({"body"}));
  expect_422(Batch({ExampleRequest()}).dump(), json::array({"header", "Idempotency-Key"}),
             {{"Idempotency-Key", "whole-batch"}});

  HttpResult bad_key = s.sendq->Post(
      "/v1/messages/batch",
      Batch({WithKey(ExampleRequest(), std::string(300, 'k')), WithKey(ExampleRequest(), "")}));
  REQUIRE(bad_key.status == 200);
  CHECK(bad_key.json.at("rejected") == 2);
  CHECK(bad_key.json["results"][0]["detail"][0].at("loc") ==
        json::array({"body", "messages", 0, "idempotency_key"}));

  CHECK(s.sendq->Get("/v1/messages").json.at("data").empty());
  CHECK(s.sendq->Get("/metrics").body.find("sendq_enqueued_total 0") != std::string::npos);
}

TEST_CASE("batch: needs a producer token, and refuses a body over its limit") {
  Scenario s(UnreachableUrlForBatch(), {"--backoff-base", "10m", "--backoff-max", "10m"});
  HttpResult anonymous = s.sendq->Send("POST", "/v1/messages/batch",
                                       Batch({ExampleRequest()}).dump(), {{"Authorization", ""}});
  CHECK(anonymous.status == 401);
  std::vector<json> big(500, ExampleRequest(std::string(20'000, 'x')));
  HttpResult r = s.sendq->Post("/v1/messages/batch", Batch(big));
  CHECK(r.status == 413);
  CHECK(s.sendq->Get("/v1/messages").json.at("data").empty());
}

}  // namespace
}  // namespace sendq::test
