// ParseRetryAfter: delta-seconds or an HTTP-date, relative to the injected time.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "queue/retry_policy.h"
#include "util/clock.h"

namespace sendq {
namespace {

constexpr DurationMs kDay = 24 * 3'600'000;

// Tue, 14 Nov 2023 22:13:20 GMT, FakeClock's default start.
constexpr TimeMs kNow = 1'700'000'000'000;

TEST_CASE("ParseRetryAfter: delta-seconds") {
  FakeClock clock;
  REQUIRE(clock.NowMs() == kNow);
  CHECK(ParseRetryAfter("0", clock.NowMs()) == 0);
  CHECK(ParseRetryAfter("1", clock.NowMs()) == 1000);
  CHECK(ParseRetryAfter("30", clock.NowMs()) == 30'000);
  CHECK(ParseRetryAfter("120", clock.NowMs()) == 120'000);
  CHECK(ParseRetryAfter("007", clock.NowMs()) == 7000);
  CHECK(ParseRetryAfter("3600", clock.NowMs()) == 3'600'000);
}

TEST_CASE("ParseRetryAfter: surrounding whitespace is ignored") {
  CHECK(ParseRetryAfter(" 5", kNow) == 5000);
  CHECK(ParseRetryAfter("5 ", kNow) == 5000);
  CHECK(ParseRetryAfter("\t 5 \t", kNow) == 5000);
  CHECK(ParseRetryAfter("  Tue, 14 Nov 2023 22:13:50 GMT  ", kNow) == 30'000);
  // Inner whitespace is not.
  CHECK(ParseRetryAfter("1 0", kNow) == std::nullopt);
}

TEST_CASE("ParseRetryAfter: huge numbers are capped at a day") {
  CHECK(ParseRetryAfter("86399", kNow) == 86'399'000);
  CHECK(ParseRetryAfter("86400", kNow) == kDay);
  CHECK(ParseRetryAfter("86401", kNow) == kDay);
  CHECK(ParseRetryAfter("9223372036854775807", kNow) == kDay);
  CHECK(ParseRetryAfter("99999999999999999999999999999999999999", kNow) == kDay);
  CHECK(ParseRetryAfter(std::string(10'000, '9'), kNow) == kDay);
}

TEST_CASE("ParseRetryAfter: IMF-fixdate") {
  CHECK(ParseRetryAfter("Tue, 14 Nov 2023 22:13:21 GMT", kNow) == 1000);
  CHECK(ParseRetryAfter("Tue, 14 Nov 2023 22:14:20 GMT", kNow) == 60'000);
  CHECK(ParseRetryAfter("Wed, 15 Nov 2023 00:13:20 GMT", kNow) == 2 * 3'600'000);
}

TEST_CASE("ParseRetryAfter: RFC 850 date") {
  CHECK(ParseRetryAfter("Tuesday, 14-Nov-23 22:14:20 GMT", kNow) == 60'000);
}

TEST_CASE("ParseRetryAfter: asctime date") {
  CHECK(ParseRetryAfter("Tue Nov 14 22:14:20 2023", kNow) == 60'000);
  // A one-digit day is padded with a space.
  const TimeMs nov6 = 1'699'260'577'000;  // Mon, 06 Nov 2023 08:49:37 GMT
  CHECK(ParseRetryAfter("Mon Nov  6 08:49:47 2023", nov6) == 10'000);
}

TEST_CASE("ParseRetryAfter: a date now or in the past is zero") {
  CHECK(ParseRetryAfter("Tue, 14 Nov 2023 22:13:20 GMT", kNow) == 0);
  CHECK(ParseRetryAfter("Tue, 14 Nov 2023 22:13:19 GMT", kNow) == 0);
  CHECK(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kNow) == 0);
  CHECK(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", kNow) == 0);
  CHECK(ParseRetryAfter("Sun Nov  6 08:49:37 1994", kNow) == 0);
}

TEST_CASE("ParseRetryAfter: a date far ahead is capped at a day") {
  CHECK(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", kNow) == kDay);
  CHECK(ParseRetryAfter("Thu, 16 Nov 2023 22:13:20 GMT", kNow) == kDay);
}

TEST_CASE("ParseRetryAfter: the result follows the injected time") {
  FakeClock clock;
  const std::string header = "Tue, 14 Nov 2023 22:15:20 GMT";
  CHECK(ParseRetryAfter(header, clock.NowMs()) == 120'000);
  clock.Advance(90'000);
  CHECK(ParseRetryAfter(header, clock.NowMs()) == 30'000);
  clock.Advance(60'000);
  CHECK(ParseRetryAfter(header, clock.NowMs()) == 0);
}

TEST_CASE("ParseRetryAfter: garbage is nullopt") {
  for (const char* value :
       {"", " ", "\t", "-1", "-0", "+5", "1.5", "5s", "0x10", "1e3", "soon", "abc", "٣",
        "Tue, 14 Nov 2023 22:13:20", "Tue, 14 Nov 2023 22:13:20 GMT junk", "14 Nov 2023",
        "2023-11-14T22:13:20Z", "Tue, 14 Foo 2023 22:13:20 GMT", "Tue, 14 Nov 2023 25:13:20 GMT"}) {
    CAPTURE(value);
    CHECK(ParseRetryAfter(value, kNow) == std::nullopt);
  }
}

}  // namespace
}  // namespace sendq
