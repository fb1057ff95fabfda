#include "queue/raw_json.h"

#include <doctest/doctest.h>

#include "api/enqueue_request.h"
#include "queue/validation.h"

namespace sendq {
namespace {

TEST_CASE("raw json: members and elements are the bytes as written") {
  auto members = RawObjectMembers(R"( { "b" : [1, {"x":"]}"}] , "a\u0041":1.10,"c":"q\"}"} )");
  REQUIRE(members.has_value());
  REQUIRE(members->size() == 3);
  CHECK((*members)[0].key == "b");
  CHECK((*members)[0].raw_value == R"([1, {"x":"]}"}])");
  CHECK((*members)[1].key == "aA");
  CHECK((*members)[1].raw_member == R"("a\u0041":1.10)");
  CHECK((*members)[2].raw_value == R"("q\"}")");
  auto elements = RawArrayElements(R"([ {"a":1} , 2,"x" ])");
  REQUIRE(elements.has_value());
  CHECK(*elements == std::vector<std::string_view>{R"({"a":1})", "2", R"("x")"});
  CHECK_FALSE(RawObjectMembers("[1]").has_value());
}

TEST_CASE("raw json: unknown fields are forwarded byte for byte, in the producer's order") {
  const std::string text =
      R"({"to_number":"+14155552671","zeta":123456789012345678901234567890,)"
      R"("agent_id":"agent_1","ratio":1.10,"body":"hi","nested":{"b":1,"a":2e3}})";
  ValidatedRequest v = ParseAndValidateSendRequest(text);
  REQUIRE(v.ok());
  CHECK(v.forwarded == text);
}

TEST_CASE("raw json: what validation drops or rewrites comes from the normalised request") {
  ValidatedRequest v = ParseAndValidateSendRequest(
      R"({"agent_id":"agent_1","to_number":"+14155552671","from_number":null,"big":18446744073709551616,)"
      R"("media_url":"https://example.com/a.jpg"})");
  REQUIRE(v.ok());
  CHECK(v.forwarded ==
        R"({"agent_id":"agent_1","to_number":"+14155552671","big":18446744073709551616,)"
        R"("body":"","media_urls":["https://example.com/a.jpg"]})");
  // A repeated key is forwarded as the normalised request (its last value), never twice.
  ValidatedRequest twice = ParseAndValidateSendRequest(
      R"({"agent_id":"agent_1","to_number":"+14155552671","body":"a","body":"b"})");
  REQUIRE(twice.ok());
  CHECK(nlohmann::json::parse(twice.forwarded).at("body") == "b");
  CHECK(twice.forwarded.find("\"a\"") == std::string::npos);
}

TEST_CASE("raw json: batch items are forwarded as written, without their idempotency_key") {
  api::BatchRequest batch = api::ParseBatchRequest(
      R"({"messages":[{"agent_id":"agent_1","idempotency_key":"k1","to_number":"+14155552671",)"
      R"("body":"x","n":1.50}, {"agent_id":"agent_1","to_number":"+14155552672","body":"y"}]})");
  REQUIRE(batch.errors.empty());
  REQUIRE(batch.items.size() == 2);
  CHECK(batch.items[0].idempotency_key == "k1");
  CHECK(batch.items[0].validated.forwarded ==
        R"({"agent_id":"agent_1","to_number":"+14155552671","body":"x","n":1.50})");
  CHECK(batch.items[1].validated.forwarded ==
        R"({"agent_id":"agent_1","to_number":"+14155552672","body":"y"})");
}

}  // namespace
}  // namespace sendq
