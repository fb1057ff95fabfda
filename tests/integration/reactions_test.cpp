// Reactions and replies to messages that may still be queued.
#include <doctest/doctest.h>

#include "scenario.h"

namespace sendq::test {
namespace {

using Flags = std::vector<std::string>;

nlohmann::json FakeReactions(FakeUpstream& upstream) {
  HttpResult r = Request("GET", "127.0.0.1", upstream.port(), "/__fake/reactions");
  REQUIRE(r.status == 200);
  return r.json;
}

// A well-formed sq_ id that names no message.
std::string OtherId(std::string id) {
  id.back() = id.back() == 'a' ? 'b' : 'a';
  return id;
}

nlohmann::json SentEntry(FakeUpstream& upstream, const std::string& key) {
  const nlohmann::json sent = upstream.Sent();
  for (const auto& s : sent.at("sends")) {
    if (s.at("idempotency_key") == key) return s;
  }
  return nullptr;
}

TEST_CASE("reactions: a reaction to a queued sq_ message goes after it, with its msg_ id") {
  // Every request fails twice first: the parent is still queued when the reaction arrives.
  Scenario s(Flags{"--fail-first", "2"});
  const std::string parent = Enqueue(*s.sendq);
  HttpResult queued = s.sendq->Post("/v1/messages/" + parent + "/reactions", {{"reaction", "love"}},
                                    {{"Idempotency-Key", "react-1"}});
  REQUIRE(queued.status == 202);
  const std::string reaction = queued.json.at("id");
  CHECK(queued.json.at("reaction_type") == "love");
  CHECK(queued.json.at("message_id") == parent);
  // A replay of the same key and body is the same reaction.
  HttpResult replay = s.sendq->Post("/v1/messages/" + parent + "/reactions", {{"reaction", "love"}},
                                    {{"Idempotency-Key", "react-1"}});
  CHECK(replay.status == 200);
  CHECK(replay.json.at("id") == reaction);

  nlohmann::json parent_record = WaitFinal(*s.sendq, parent);
  REQUIRE(parent_record.at("status") == "sent");
  nlohmann::json reaction_record = WaitFinal(*s.sendq, reaction);
  CHECK(reaction_record.at("status") == "sent");
  CHECK(reaction_record.at("provider_message_id").get<std::string>().rfind("rxn_", 0) == 0);
  nlohmann::json reactions = FakeReactions(*s.upstream);
  REQUIRE(reactions.at("count") == 1);
  const nlohmann::json& got = reactions.at("reactions")[0];
  CHECK(got.at("message_id") == parent_record.at("provider_message_id"));
  CHECK(got.at("reaction") == "love");
  CHECK(got.at("idempotency_key") == reaction);
  CHECK(got.at("received_at_ms") >= SentEntry(*s.upstream, parent).at("received_at_ms"));
}

TEST_CASE("reactions: to a msg_ id it goes at once; bad reactions and ids are refused") {
  Scenario s;
  const std::string parent = Enqueue(*s.sendq);
  const std::string msg_id = WaitFinal(*s.sendq, parent).at("provider_message_id");
  HttpResult emoji = s.sendq->Post("/v1/messages/" + msg_id + "/reactions", {{"reaction", "🔥"}});
  REQUIRE(emoji.status == 202);
  CHECK(WaitFinal(*s.sendq, emoji.json.at("id")).at("status") == "sent");
  CHECK(FakeReactions(*s.upstream).at("reactions")[0].at("message_id") == msg_id);

  for (const nlohmann::json& bad :
       {nlohmann::json{{"reaction", "LOVE it"}}, nlohmann::json{{"reaction", ""}},
        nlohmann::json{{"reaction", 3}}, nlohmann::json::object()}) {
    CAPTURE(bad.dump());
    HttpResult r = s.sendq->Post("/v1/messages/" + msg_id + "/reactions", bad);
    CHECK(r.status == 422);
    CHECK(r.json.at("detail")[0].at("loc") == nlohmann::json({"body", "reaction"}));
  }
  CHECK(s.sendq->Post("/v1/messages/nope/reactions", {{"reaction", "like"}}).status == 422);
  CHECK(s.sendq->Post("/v1/messages/" + OtherId(parent) + "/reactions", {{"reaction", "like"}})
            .status == 404);
}

TEST_CASE("reactions: when its message fails, the reaction fails with that reason") {
  Scenario s;
  s.upstream->SetConfig({{"force_status", 422}});
  const std::string parent = Enqueue(*s.sendq);
  HttpResult queued =
      s.sendq->Post("/v1/messages/" + parent + "/reactions", {{"reaction", "like"}});
  REQUIRE(queued.status == 202);
  CHECK(WaitFinal(*s.sendq, parent).at("status") == "failed");
  nlohmann::json record = WaitFinal(*s.sendq, queued.json.at("id"));
  CHECK(record.at("status") == "failed");
  CHECK(record.at("last_error").get<std::string>().find("was not sent") != std::string::npos);
  CHECK(FakeReactions(*s.upstream).at("count") == 0);
}

TEST_CASE("reactions: a reaction waiting for its message can be canceled") {
  Scenario s;
  const std::string parent = Enqueue(
      *s.sendq, ExampleRequest(), {{"Sendq-Send-At", "2099-01-01T00:00:00Z"}, {"Sendq-Ttl", "1h"}});
  HttpResult queued =
      s.sendq->Post("/v1/messages/" + parent + "/reactions", {{"reaction", "laugh"}});
  REQUIRE(queued.status == 202);
  HttpResult canceled = s.sendq->Post(
      "/v1/messages/" + queued.json.at("id").get<std::string>() + "/cancel", nlohmann::json{});
  CHECK(canceled.status == 200);
  CHECK(canceled.json.at("status") == "canceled");
}

TEST_CASE("replies: reply_to_message_id may name a sq_ message, sent with its msg_ id") {
  Scenario s(Flags{"--fail-first", "1"});
  const std::string parent = Enqueue(*s.sendq);
  nlohmann::json reply = ExampleRequest("And one more thing");
  reply["reply_to_message_id"] = parent;
  const std::string child = Enqueue(*s.sendq, reply);
  const std::string msg_id = WaitFinal(*s.sendq, parent).at("provider_message_id");
  CHECK(WaitFinal(*s.sendq, child).at("status") == "sent");
  nlohmann::json sent = SentEntry(*s.upstream, child);
  REQUIRE(sent.is_object());
  CHECK(sent.at("body").at("reply_to_message_id") == msg_id);

  reply["reply_to_message_id"] = OtherId(parent);
  HttpResult unknown = s.sendq->Post("/v1/messages", reply);
  CHECK(unknown.status == 422);
  CHECK(unknown.json.at("detail")[0].at("loc") == nlohmann::json({"body", "reply_to_message_id"}));
  // In a batch too: that item is refused, nothing stored for it.
  HttpResult batch = s.sendq->Post("/v1/messages/batch", {{"messages", {reply}}});
  REQUIRE(batch.status == 200);
  CHECK(batch.json.at("accepted") == 0);
  CHECK(batch.json.at("results")[0].at("status") == 422);
  CHECK(batch.json.at("results")[0].at("detail")[0].at("loc") ==
        nlohmann::json({"body", "messages", 0, "reply_to_message_id"}));
}

TEST_CASE("reactions: a reaction to a message a guard held waits until it is released") {
  Scenario s(Flags{}, {"--duplicate-cap", "1"});
  CHECK(WaitFinal(*s.sendq, Enqueue(*s.sendq)).at("status") == "sent");
  HttpResult held = s.sendq->Post("/v1/messages", ExampleRequest());
  REQUIRE(held.json.at("status") == "held");
  const std::string parent = held.json.at("id");
  HttpResult reaction =
      s.sendq->Post("/v1/messages/" + parent + "/reactions", {{"reaction", "like"}});
  REQUIRE(reaction.status == 202);
  CHECK(
      s.sendq->Get("/v1/messages/" + reaction.json.at("id").get<std::string>()).json.at("status") ==
      "queued");
  REQUIRE(s.sendq->Post("/v1/messages/" + parent + "/release", nlohmann::json{}).status == 200);
  const std::string msg_id = WaitFinal(*s.sendq, parent).at("provider_message_id");
  CHECK(WaitFinal(*s.sendq, reaction.json.at("id")).at("status") == "sent");
  CHECK(FakeReactions(*s.upstream).at("reactions")[0].at("message_id") == msg_id);
}

}  // namespace
}  // namespace sendq::test
