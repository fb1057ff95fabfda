// Queue controls, send windows, pacing and the bulk share: the claim's rules, with fixed times.
#include "queue/controls.h"

#include <doctest/doctest.h>

#include "queue/pacing.h"
#include "queue/phone.h"
#include "queue/send_window.h"
#include "util/time_format.h"

namespace sendq {
namespace {

using nlohmann::json;

TimeMs At(const char* rfc3339) { return *ParseRfc3339(rfc3339); }

QueueControls Parse(const json& body, const std::vector<ControlHeader>& headers,
                    std::vector<FieldError>* errors) {
  return ParseQueueControls(body.is_null() ? nullptr : &body, headers, {"body"}, errors);
}

const json kRequest = {{"agent_id", "agent_1"}, {"to_number", "+13125550100"}, {"body", "hi"}};

TEST_CASE("controls: body fields and headers, validated, with their locations") {
  std::vector<FieldError> errors;
  QueueControls c = Parse({{"priority", "high"}, {"send_at", "2026-12-01T09:30:00-06:00"}},
                          {{"Sendq-Ordering-Key", "k1"}}, &errors);
  CHECK(errors.empty());
  CHECK(c.priority == Priority::kHigh);
  CHECK(c.send_at == At("2026-12-01T15:30:00Z"));
  CHECK(c.ordering_key == "k1");

  errors.clear();
  Parse({{"priority", "urgent"}, {"colour", 1}, {"ordering_key", ""}}, {}, &errors);
  REQUIRE(errors.size() == 3);
  for (const FieldError& e : errors) CHECK(e.loc[1] == "sendq");

  errors.clear();
  Parse({{"ttl", "2562047788000h"}}, {}, &errors);  // would overflow a time
  CHECK(errors.size() == 1);

  errors.clear();
  Parse(json(nullptr), {{"Sendq-Ordering-Key", std::string("k\xff\xfe", 3)}}, &errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].loc == json{"header", "Sendq-Ordering-Key"});

  errors.clear();
  Parse(json(nullptr), {{"Sendq-Send-At", "tomorrow"}}, &errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].loc == json{"header", "Sendq-Send-At"});
}

TEST_CASE("controls: a header that disagrees with the body is a 422; one that agrees is fine") {
  std::vector<FieldError> errors;
  Parse({{"priority", "bulk"}}, {{"Sendq-Priority", "high"}}, &errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].loc == json{"header", "Sendq-Priority"});
  errors.clear();
  // The same instant written with another offset agrees.
  Parse({{"send_at", "2026-12-01T15:30:00Z"}}, {{"Sendq-Send-At", "2026-12-01T09:30:00-06:00"}},
        &errors);
  CHECK(errors.empty());
}

TEST_CASE("controls: a problem found with a header's value is located at the header") {
  std::vector<FieldError> errors;
  QueueControls c =
      Parse(json(nullptr), {{"Sendq-Send-Window", R"({"start":"09:00","end":"10:00"})"}}, &errors);
  REQUIRE(errors.empty());
  ResolveControls(c, kRequest, At("2026-12-01T12:00:00Z"), {}, {"body"}, &errors);
  REQUIRE(errors.size() == 1);  // never open in all US zones at once
  CHECK(errors[0].loc == json{"header", "Sendq-Send-Window"});
}

TEST_CASE("controls: send_at after expires_at, or ttl with expires_at, is refused") {
  std::vector<FieldError> errors;
  Parse({{"send_at", "2026-12-02T00:00:00Z"}, {"expires_at", "2026-12-01T00:00:00Z"}}, {}, &errors);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].loc == json{"body", "sendq", "send_at"});
  errors.clear();
  Parse({{"ttl", "10m"}, {"expires_at", "2026-12-01T00:00:00Z"}}, {}, &errors);
  CHECK(errors.size() == 1);
}

TEST_CASE("controls: the fingerprint form is the same however the controls were written") {
  std::vector<FieldError> errors;
  QueueControls a = Parse({{"send_at", "2026-12-01T15:30:00Z"}, {"priority", "high"}}, {}, &errors);
  QueueControls b =
      Parse(json(nullptr),
            {{"Sendq-Send-At", "2026-12-01T09:30:00-06:00"}, {"Sendq-Priority", "high"}}, &errors);
  CHECK(errors.empty());
  CHECK(a.ToJson().dump() == b.ToJson().dump());
  QueueControls c = Parse({{"priority", "bulk"}}, {}, &errors);
  CHECK(a.ToJson().dump() != c.ToJson().dump());
}

TEST_CASE("controls: the default ordering key is the conversation; null opts out") {
  std::vector<FieldError> errors;
  const TimeMs now = At("2026-12-01T12:00:00Z");
  EffectiveControls d = ResolveControls({}, kRequest, now, {}, {"body"}, &errors);
  CHECK(d.ordering_key == "agent_1|+13125550100");
  CHECK(d.sender == "agent_1");
  json with_number = kRequest;
  with_number["number_id"] = "num_9";
  CHECK(ResolveControls({}, with_number, now, {}, {"body"}, &errors).ordering_key ==
        "num_9|+13125550100");
  json group = {{"agent_id", "a"}, {"recipients", {"+13125550102", "+13125550101"}}};
  CHECK(ResolveControls({}, group, now, {}, {"body"}, &errors).ordering_key ==
        "a|+13125550101,+13125550102");
  ControlDefaults unordered;
  unordered.order_conversations = false;  // --default-ordering=none
  CHECK_FALSE(ResolveControls({}, kRequest, now, unordered, {"body"}, &errors).ordering_key);
  QueueControls explicit_key;
  explicit_key.ordering_key_given = true;
  explicit_key.ordering_key = "k";
  CHECK(ResolveControls(explicit_key, kRequest, now, unordered, {"body"}, &errors).ordering_key ==
        "k");
  QueueControls opt_out;
  opt_out.ordering_key_given = true;
  CHECK_FALSE(ResolveControls(opt_out, kRequest, now, {}, {"body"}, &errors).ordering_key);
  CHECK(errors.empty());
}

TEST_CASE("controls: validity from expires_at, ttl or --max-age; send_at sets the first due time") {
  std::vector<FieldError> errors;
  const TimeMs now = At("2026-12-01T12:00:00Z");
  QueueControls given;
  given.ttl = 600'000;
  given.send_at = now + 60'000;
  EffectiveControls e = ResolveControls(given, kRequest, now, {}, {"body"}, &errors);
  CHECK(errors.empty());
  CHECK(e.expires_at == now + 600'000);
  CHECK(e.first_due == now + 60'000);
  given.send_at = now + 900'000;  // after the ttl runs out
  ResolveControls(given, kRequest, now, {}, {"body"}, &errors);
  CHECK(errors.size() == 1);
}

TEST_CASE("controls: a message scheduled past --max-age gets --max-age from its send_at") {
  std::vector<FieldError> errors;
  const TimeMs now = At("2026-12-01T12:00:00Z");
  ControlDefaults defaults;
  defaults.max_age = 24LL * 3'600'000;
  QueueControls given;
  given.send_at = At("2027-01-01T14:00:00Z");  // a month ahead, no validity of its own
  EffectiveControls e = ResolveControls(given, kRequest, now, defaults, {"body"}, &errors);
  CHECK(errors.empty());
  CHECK(e.first_due == At("2027-01-01T14:00:00Z"));
  CHECK(e.expires_at == At("2027-01-02T14:00:00Z"));
  // Without send_at, --max-age counts from now.
  e = ResolveControls(QueueControls{}, kRequest, now, defaults, {"body"}, &errors);
  CHECK(e.expires_at == now + defaults.max_age);
}

TEST_CASE("send window: one zone, across midnight, and across a DST change") {
  std::string problem;
  SendWindow w =
      *ParseSendWindow({{"start", "08:00"}, {"end", "21:00"}, {"tz", "America/Chicago"}}, &problem);
  const std::vector<std::string> chicago = {"America/Chicago"};
  // 07:00 CST is 13:00Z: opens at 08:00 CST = 14:00Z.
  CHECK(WindowOpenAt(w, chicago, At("2026-12-01T13:00:00Z")) == At("2026-12-01T14:00:00Z"));
  // Inside: at once.
  CHECK(WindowOpenAt(w, chicago, At("2026-12-01T20:00:00Z")) == At("2026-12-01T20:00:00Z"));
  // 21:30 CST: tomorrow at 08:00.
  CHECK(WindowOpenAt(w, chicago, At("2026-12-02T03:30:00Z")) == At("2026-12-02T14:00:00Z"));
  // The night before DST starts (2027-03-14), 08:00 CDT is 13:00Z.
  CHECK(WindowOpenAt(w, chicago, At("2027-03-14T04:00:00Z")) == At("2027-03-14T13:00:00Z"));

  SendWindow night =
      *ParseSendWindow({{"start", "22:00"}, {"end", "06:00"}, {"tz", "UTC"}}, &problem);
  CHECK(WindowOpenAt(night, {"UTC"}, At("2026-12-01T23:00:00Z")) == At("2026-12-01T23:00:00Z"));
  CHECK(WindowOpenAt(night, {"UTC"}, At("2026-12-01T12:00:00Z")) == At("2026-12-01T22:00:00Z"));

  // A start that falls in the spring-forward gap (02:30 does not exist on 2027-03-14 in
  // Chicago) opens when the gap ends, 03:00 CDT = 08:00Z.
  SendWindow gap =
      *ParseSendWindow({{"start", "02:30"}, {"end", "05:00"}, {"tz", "America/Chicago"}}, &problem);
  CHECK(WindowOpenAt(gap, chicago, At("2027-03-14T07:00:00Z")) == At("2027-03-14T08:00:00Z"));
}

TEST_CASE("send window: a multi-zone country must be inside the window in all its zones") {
  const std::vector<std::string> us = WindowZones(RecipientHours(), {"+13125550100"});
  CHECK(us.size() > 5);
  CHECK(std::find(us.begin(), us.end(), "America/New_York") != us.end());
  CHECK(std::find(us.begin(), us.end(), "Pacific/Honolulu") != us.end());
  // 08:00 in Honolulu (UTC-10) is 18:00Z; 21:00 in New York (UTC-5 in December) is 02:00Z.
  CHECK(WindowOpenAt(RecipientHours(), us, At("2026-12-01T12:00:00Z")) ==
        At("2026-12-01T18:00:00Z"));
  // One zone for a one-zone country: France.
  CHECK(WindowZones(RecipientHours(), {"+33142685300"}) ==
        std::vector<std::string>{"Europe/Paris"});
  // A window that can never hold everywhere at once.
  std::string problem;
  SendWindow narrow = *ParseSendWindow({{"start", "09:00"}, {"end", "10:00"}}, &problem);
  CHECK_FALSE(WindowOpenAt(narrow, us, At("2026-12-01T12:00:00Z")));
}

TEST_CASE("send window: bad windows are refused with a reason") {
  for (const json& bad : {json("sometimes"), json{{"start", "8:00"}, {"end", "21:00"}},
                          json{{"start", "08:00"}, {"end", "08:00"}},
                          json{{"start", "08:00"}, {"end", "21:00"}, {"tz", "Mars/Olympus"}},
                          json{{"start", "08:00"}, {"end", "25:00"}},
                          json{{"start", "08:00"}, {"end", "21:00"}, {"zone", "UTC"}}}) {
    CAPTURE(bad.dump());
    std::string problem;
    CHECK_FALSE(ParseSendWindow(bad, &problem));
    CHECK_FALSE(problem.empty());
  }
}

TEST_CASE("pacing: rates parse with units and bursts") {
  CHECK(ParseRate("2/s")->per_second == 2);
  CHECK(ParseRate("2/s")->burst == 2);
  CHECK(ParseRate("30/m")->per_second == doctest::Approx(0.5));
  CHECK(ParseRate("30/m")->burst == 1);
  CHECK(ParseRate("3600/h:10")->burst == 10);
  for (const char* bad : {"", "2", "2/d", "-1/s", "x/s", "2/s:0"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseRate(bad).ok());
  }
  auto limits = ParseSenderLimits("num_1=1/s, +14155550100=10/m:5");
  REQUIRE(limits.ok());
  CHECK(limits->at("num_1").per_second == 1);
  CHECK(limits->at("+14155550100").burst == 5);
  CHECK_FALSE(ParseSenderLimits("num_1").ok());
}

TEST_CASE("pacing: a sender's bucket books slots at its rate; other senders are not slowed") {
  Pacer::Options options;
  options.sender_limits["slow"] = *ParseRate("2/s");
  Pacer pacer(options);
  const TimeMs t = 1'000'000;
  CHECK(pacer.Book("slow", t) == t);  // the burst of two
  CHECK(pacer.Book("slow", t) == t);
  CHECK(pacer.Book("slow", t) == t + 500);  // then one every 500 ms, booked in turn
  CHECK(pacer.Book("slow", t) == t + 1000);
  CHECK(pacer.Book("fast", t) == t);  // unlimited
  // A 429 pauses one sender only.
  pacer.PauseSender("fast", t + 3000);
  CHECK(pacer.PausedUntil("fast", t) == t + 3000);
  CHECK(pacer.Book("fast", t) == t + 3000);
  CHECK(pacer.PausedUntil("other", t) == t);
}

TEST_CASE("pacing: the account's bucket applies to every sender together") {
  Pacer::Options options;
  options.upstream_rate = *ParseRate("1/s:1");
  Pacer pacer(options);
  CHECK(pacer.Book("a", 0) == 0);
  CHECK(pacer.Book("b", 0) == 1000);
  CHECK(pacer.Book("c", 0) == 2000);
}

TEST_CASE("priority share: high before normal before bulk, and bulk gets one claim in ten") {
  PriorityShare share;
  int bulk = 0;
  for (int i = 0; i < 100; ++i) {
    const Priority first = share.Order()[0];
    if (first == Priority::kBulk) ++bulk;
    share.Took(first);
  }
  CHECK(bulk == 10);
  PriorityShare fresh;
  CHECK(fresh.Order()[0] == Priority::kHigh);
  CHECK(fresh.Order()[1] == Priority::kNormal);
  CHECK(fresh.Order()[2] == Priority::kBulk);
}

TEST_CASE("phone: regions of numbers and known regions") {
  CHECK(RegionOfNumber("+14155550100") == "US");
  CHECK(RegionOfNumber("+442079460958") == "GB");
  CHECK_FALSE(RegionOfNumber("someone@example.com"));
  CHECK(IsKnownRegion("GB"));
  CHECK_FALSE(IsKnownRegion("XX"));
}

}  // namespace
}  // namespace sendq
