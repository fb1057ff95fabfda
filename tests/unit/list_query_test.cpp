#include "api/list_query.h"

#include <doctest/doctest.h>

#include <random>
#include <string>

#include "util/clock.h"
#include "util/ids.h"

namespace sendq {
namespace {

using nlohmann::json;
using Params = std::multimap<std::string, std::string>;

FieldError OnlyError(const ParsedListQuery& parsed) {
  REQUIRE(parsed.errors.size() == 1);
  return parsed.errors[0];
}

void CheckError(const Params& params, const std::string& name, const std::string& type) {
  auto error = OnlyError(ParseListQuery(params));
  CHECK(error.loc == json{"query", name});
  CHECK(error.type == type);
  CHECK_FALSE(error.msg.empty());
}

TEST_CASE("list query: no parameters gives the defaults") {
  auto parsed = ParseListQuery({});
  REQUIRE(parsed.ok());
  CHECK(parsed.filter.statuses.empty());
  CHECK_FALSE(parsed.filter.agent_id);
  CHECK_FALSE(parsed.filter.to_number);
  CHECK_FALSE(parsed.filter.provider_message_id);
  CHECK_FALSE(parsed.filter.created_after);
  CHECK_FALSE(parsed.filter.created_before);
  CHECK_FALSE(parsed.filter.before_id);
  CHECK(parsed.filter.limit == kDefaultListLimit);
}

TEST_CASE("list query: status") {
  struct Case {
    const char* text;
    MessageStatus status;
  };
  for (Case c : {Case{"queued", MessageStatus::kQueued}, Case{"sending", MessageStatus::kSending},
                 Case{"sent", MessageStatus::kSent}, Case{"failed", MessageStatus::kFailed},
                 Case{"canceled", MessageStatus::kCanceled}}) {
    CAPTURE(c.text);
    auto parsed = ParseListQuery({{"status", c.text}});
    REQUIRE(parsed.ok());
    CHECK(parsed.filter.statuses == std::vector<MessageStatus>{c.status});
  }
  for (const char* bad : {"QUEUED", "cancelled", "delivered", " sent", "sent,failed"}) {
    CAPTURE(bad);
    CheckError({{"status", bad}}, "status", "enum");
  }
  CheckError({{"status", ""}}, "status", "value_error");
}

TEST_CASE("list query: string filters") {
  for (const char* name : {"agent_id", "to_number", "provider_message_id"}) {
    CAPTURE(name);
    auto parsed = ParseListQuery({{name, "+1 value/with spaces"}});
    REQUIRE(parsed.ok());
    const auto& f = parsed.filter;
    std::optional<std::string> got = std::string(name) == "agent_id"    ? f.agent_id
                                     : std::string(name) == "to_number" ? f.to_number
                                                                        : f.provider_message_id;
    CHECK(got == "+1 value/with spaces");
    CheckError({{name, ""}}, name, "value_error");
  }
}

TEST_CASE("list query: created_after and created_before") {
  SUBCASE("RFC 3339") {
    auto parsed = ParseListQuery({{"created_after", "2023-11-14T22:13:20Z"},
                                  {"created_before", "2023-11-15T00:13:20+01:00"}});
    REQUIRE(parsed.ok());
    CHECK(parsed.filter.created_after == 1'700'000'000'000);
    CHECK(parsed.filter.created_before == 1'700'003'600'000);
  }
  SUBCASE("milliseconds") {
    auto parsed =
        ParseListQuery({{"created_after", "1700000000000"}, {"created_before", "1700000000500"}});
    REQUIRE(parsed.ok());
    CHECK(parsed.filter.created_after == 1'700'000'000'000);
    CHECK(parsed.filter.created_before == 1'700'000'000'500);
    CHECK(ParseListQuery({{"created_after", "0"}}).filter.created_after == 0);
  }
  SUBCASE("invalid") {
    for (const char* name : {"created_after", "created_before"}) {
      for (const char* bad :
           {"yesterday", "2023-11-14", "2023-11-14T22:13:20", "2023-02-30T00:00:00Z", "-5", "1.5",
            "1e12", "99999999999999999999999", "253402300800000", " 1700000000000"}) {
        CAPTURE(name);
        CAPTURE(bad);
        CheckError({{name, bad}}, name, "datetime_parsing");
      }
      CheckError({{name, ""}}, name, "value_error");
    }
  }
  SUBCASE("an empty or reversed range") {
    CheckError({{"created_after", "1700000000000"}, {"created_before", "1700000000000"}},
               "created_before", "value_error");
    CheckError({{"created_after", "1700000000001"}, {"created_before", "1700000000000"}},
               "created_before", "value_error");
  }
}

TEST_CASE("list query: limit") {
  CHECK(ParseListQuery({{"limit", "1"}}).filter.limit == 1);
  CHECK(ParseListQuery({{"limit", "75"}}).filter.limit == 75);
  CHECK(ParseListQuery({{"limit", std::to_string(kMaxListLimit)}}).filter.limit == kMaxListLimit);
  CheckError({{"limit", "0"}}, "limit", "greater_than_equal");
  CheckError({{"limit", "-3"}}, "limit", "greater_than_equal");
  CheckError({{"limit", std::to_string(kMaxListLimit + 1)}}, "limit", "less_than_equal");
  CheckError({{"limit", "99999999999999999999999999"}}, "limit", "less_than_equal");
  for (const char* bad : {"ten", "1.0", "5x", " 5", "+", "-", "0x10"}) {
    CAPTURE(bad);
    CheckError({{"limit", bad}}, "limit", "int_parsing");
  }
  CheckError({{"limit", ""}}, "limit", "value_error");
}

TEST_CASE("list query: cursor round trip") {
  FakeClock clock;
  IdGenerator ids(&clock);
  for (int i = 0; i < 50; ++i) {
    std::string id = ids.Next();
    clock.Advance(i * 997);
    std::string cursor = EncodeCursor(id);
    CAPTURE(cursor);
    for (char c : cursor) {
      bool url_safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      CHECK(url_safe);
    }
    CHECK(DecodeCursor(cursor) == id);
    auto parsed = ParseListQuery({{"cursor", cursor}});
    REQUIRE(parsed.ok());
    CHECK(parsed.filter.before_id == id);
  }
}

TEST_CASE("list query: garbage cursors are rejected") {
  std::string id = MinMessageIdAt(1'700'000'000'000);
  std::string good = EncodeCursor(id);
  for (const std::string& bad :
       {std::string("garbage"), std::string("!!!!"), good + "=", good + "A", good.substr(1),
        std::string("a"), EncodeCursor("sq_short"), EncodeCursor("not an id"),
        EncodeCursor("v2-" + id), EncodeCursor(""), std::string(10000, 'A'), id}) {
    CAPTURE(bad);
    CHECK_FALSE(DecodeCursor(bad));
    CheckError({{"cursor", bad}}, "cursor", "value_error");
  }
  CheckError({{"cursor", ""}}, "cursor", "value_error");
}

TEST_CASE("list query: a repeated status is any of them; another repeated parameter is a 422") {
  Params params;
  params.emplace("status", "queued");
  params.emplace("status", "failed");
  auto parsed = ParseListQuery(params);
  REQUIRE(parsed.ok());
  CHECK(parsed.filter.statuses ==
        std::vector<MessageStatus>{MessageStatus::kQueued, MessageStatus::kFailed});
  for (const char* name : {"limit", "to_number", "agent_id", "priority", "ordering_key"}) {
    CAPTURE(name);
    Params twice;
    twice.emplace(name, "10");
    twice.emplace(name, "20");
    CheckError(twice, name, "value_error");
  }
}

TEST_CASE("list query: to_number is normalised, and an unencoded + (a space) still matches") {
  CHECK(ParseListQuery({{"to_number", " 14155550100"}}).filter.to_number == "+14155550100");
  CHECK(ParseListQuery({{"to_number", "(415) 555-0100"}}).filter.to_number == "+14155550100");
  CHECK(ParseListQuery({{"to_number", "+14155550100"}}).filter.to_number == "+14155550100");
}

TEST_CASE("list query: ordering_key, priority and scheduled") {
  auto parsed =
      ParseListQuery({{"ordering_key", "k1"}, {"priority", "bulk"}, {"scheduled", "true"}});
  REQUIRE(parsed.ok());
  CHECK(parsed.filter.ordering_key == "k1");
  CHECK(parsed.filter.priority == Priority::kBulk);
  CHECK(parsed.filter.scheduled == true);
  CheckError({{"priority", "urgent"}}, "priority", "enum");
  CheckError({{"scheduled", "yes"}}, "scheduled", "bool_parsing");
}

TEST_CASE("list query: unknown parameters are ignored") {
  auto parsed = ParseListQuery({{"wait", "30s"}, {"after_version", "x"}, {"foo", ""}});
  CHECK(parsed.ok());
}

TEST_CASE("list query: every problem is reported") {
  auto parsed = ParseListQuery(
      {{"status", "nope"}, {"limit", "0"}, {"cursor", "zzz"}, {"created_after", "soon"}});
  CHECK(parsed.errors.size() == 4);
}

TEST_CASE("list query: random input never crashes") {
  std::mt19937 rng(12345);
  const char* names[] = {"status",        "agent_id",       "to_number", "provider_message_id",
                         "created_after", "created_before", "limit",     "cursor",
                         "other"};
  for (int i = 0; i < 5000; ++i) {
    Params params;
    int count = static_cast<int>(rng() % 4);
    for (int j = 0; j < count; ++j) {
      std::string value(rng() % 48, '\0');
      for (char& c : value) c = static_cast<char>(rng() % 256);
      params.emplace(names[rng() % 9], value);
    }
    auto parsed = ParseListQuery(params);
    CHECK(parsed.filter.limit >= 1);
    CHECK(parsed.filter.limit <= kMaxListLimit);
    if (parsed.filter.before_id) CHECK(IsMessageId(*parsed.filter.before_id));
  }
}

}  // namespace
}  // namespace sendq
