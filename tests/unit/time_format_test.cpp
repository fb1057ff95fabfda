// RFC 3339 for the API and HTTP-date for Retry-After.
#include "util/time_format.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>

namespace sendq {
namespace {

constexpr TimeMs kT = 1'700'000'000'000;  // 2023-11-14T22:13:20Z

TEST_CASE("FormatRfc3339") {
  CHECK(FormatRfc3339(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatRfc3339(kT) == "2023-11-14T22:13:20.000Z");
  CHECK(FormatRfc3339(kT + 123) == "2023-11-14T22:13:20.123Z");
  CHECK(FormatRfc3339(kT + 7) == "2023-11-14T22:13:20.007Z");
  CHECK(FormatRfc3339(1'709'164'800'000) == "2024-02-29T00:00:00.000Z");
  CHECK(FormatRfc3339(4'102'444'799'999) == "2099-12-31T23:59:59.999Z");
  // Before the epoch the milliseconds still count forwards within the second.
  CHECK(FormatRfc3339(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatRfc3339(-1000) == "1969-12-31T23:59:59.000Z");
  CHECK(FormatRfc3339(-1001) == "1969-12-31T23:59:58.999Z");
}

TEST_CASE("ParseRfc3339: UTC forms") {
  CHECK(ParseRfc3339("2023-11-14T22:13:20Z") == kT);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.000Z") == kT);
  CHECK(ParseRfc3339("2023-11-14t22:13:20z") == kT);
  CHECK(ParseRfc3339("2023-11-14 22:13:20Z") == kT);
  CHECK(ParseRfc3339("2023-11-14T22:13:20+00:00") == kT);
  CHECK(ParseRfc3339("2023-11-14T22:13:20-00:00") == kT);
  CHECK(ParseRfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339("1969-12-31T23:59:59.999Z") == -1);
}

TEST_CASE("ParseRfc3339: fractions") {
  CHECK(ParseRfc3339("2023-11-14T22:13:20.1Z") == kT + 100);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.12Z") == kT + 120);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.123Z") == kT + 123);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.007Z") == kT + 7);
  // Digits past the millisecond are dropped, not rounded.
  CHECK(ParseRfc3339("2023-11-14T22:13:20.123456Z") == kT + 123);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.999999999Z") == kT + 999);
  CHECK(ParseRfc3339("2023-11-14T22:13:20.5+01:00") == kT + 500 - 3'600'000);
}

TEST_CASE("ParseRfc3339: offsets") {
  // The same instant written in other zones.
  CHECK(ParseRfc3339("2023-11-14T23:13:20+01:00") == kT);
  CHECK(ParseRfc3339("2023-11-14T17:13:20-05:00") == kT);
  CHECK(ParseRfc3339("2023-11-15T03:43:20+05:30") == kT);
  CHECK(ParseRfc3339("2023-11-14T12:58:20-09:15") == kT);
  CHECK(ParseRfc3339("2023-11-15T22:12:20+23:59") == kT);
  // Crossing a year boundary.
  CHECK(ParseRfc3339("2024-01-01T01:00:00+02:00") == *ParseRfc3339("2023-12-31T23:00:00Z"));
}

TEST_CASE("FormatRfc3339 and ParseRfc3339 round trip") {
  for (TimeMs t : {TimeMs{0}, TimeMs{1}, TimeMs{999}, TimeMs{-1}, TimeMs{-86'400'001}, kT, kT + 1,
                   kT + 999, TimeMs{951'782'400'000} /* 2000-02-29 */,
                   TimeMs{1'709'251'199'999} /* 2024-02-29T23:59:59.999 */,
                   TimeMs{4'102'444'800'000}, TimeMs{253'402'300'799'999} /* 9999-12-31 */}) {
    CAPTURE(t);
    CHECK(ParseRfc3339(FormatRfc3339(t)) == t);
  }
  for (TimeMs t = kT; t < kT + 400LL * 86'400'000; t += 86'400'000 + 3'600'000 + 61'001) {
    CAPTURE(t);
    CHECK(ParseRfc3339(FormatRfc3339(t)) == t);
  }
}

TEST_CASE("ParseRfc3339: leap years and impossible dates") {
  CHECK(ParseRfc3339("2024-02-29T00:00:00Z").has_value());
  CHECK(ParseRfc3339("2000-02-29T00:00:00Z").has_value());
  CHECK(ParseRfc3339("2023-02-28T23:59:59Z").has_value());
  CHECK(ParseRfc3339("2023-01-31T00:00:00Z").has_value());
  CHECK(ParseRfc3339("2023-02-29T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("1900-02-29T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-02-30T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2024-02-30T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-04-31T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-31T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-00-10T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-13-10T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-00T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-32T00:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-14T24:00:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-14T23:60:00Z") == std::nullopt);
  CHECK(ParseRfc3339("2023-11-14T23:59:61Z") == std::nullopt);
}

TEST_CASE("ParseRfc3339: rejects garbage") {
  for (const char* s : {"",
                        "now",
                        "2023",
                        "2023-11-14",
                        "2023-11-14T",
                        "2023-11-14T22:13",
                        "2023-11-14T22:13:20",       // no zone
                        "2023-11-14T22:13:20.Z",     // empty fraction
                        "2023-11-14T22:13:20,5Z",    // comma fraction
                        "2023-11-14T22:13:20+0100",  // offset without colon
                        "2023-11-14T22:13:20+01",    // short offset
                        "2023-11-14T22:13:20+24:00",
                        "2023-11-14T22:13:20+01:60",
                        "2023-11-14T22:13:20ZZ",
                        "2023-11-14T22:13:20Z ",
                        " 2023-11-14T22:13:20Z",
                        "2023-11-14X22:13:20Z",
                        "2023/11/14T22:13:20Z",
                        "23-11-14T22:13:20Z",
                        "2023-1-14T22:13:20Z",
                        "2023-11-14T2:13:20Z",
                        "+2023-11-14T22:13:20Z",
                        "2023-11-14T22:13:20UTC",
                        "1700000000000"}) {
    CAPTURE(s);
    CHECK(ParseRfc3339(s) == std::nullopt);
  }
}

TEST_CASE("ParseHttpDate: the three forms") {
  const TimeMs expected = 784'111'777'000;  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT") == expected);
  CHECK(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT") == expected);
  CHECK(ParseHttpDate("Sun Nov  6 08:49:37 1994") == expected);
  CHECK(ParseHttpDate("Tue, 14 Nov 2023 22:13:20 GMT") == kT);
}

TEST_CASE("ParseHttpDate: rejects garbage") {
  for (const char* s :
       {"", "0", "120", "soon", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 GMT extra",
        "Sun, 06 Xyz 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT", "2023-11-14T22:13:20Z"}) {
    CAPTURE(s);
    CHECK(ParseHttpDate(s) == std::nullopt);
  }
}

}  // namespace
}  // namespace sendq

TEST_CASE("ParseRfc3339: a leap second stays in its own minute and day") {
  auto leap = sendq::ParseRfc3339("2016-12-31T23:59:60Z");
  auto before = sendq::ParseRfc3339("2016-12-31T23:59:59Z");
  REQUIRE(leap.has_value());
  REQUIRE(before.has_value());
  CHECK(*leap == *before);
}

TEST_CASE("ParseHttpDate: impossible dates are rejected") {
  CHECK_FALSE(sendq::ParseHttpDate("Thu, 30 Feb 2023 00:00:00 GMT").has_value());
  CHECK_FALSE(sendq::ParseHttpDate("Thu, 02 Mar 2023 23:59:61 GMT").has_value());
  CHECK(sendq::ParseHttpDate("Thu, 02 Mar 2023 23:59:59 GMT").has_value());
}
