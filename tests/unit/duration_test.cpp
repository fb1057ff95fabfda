// Durations on the command line: parsing and the shortest exact spelling.
#include "util/duration.h"

#include <doctest/doctest.h>

#include <string>

namespace sendq {
namespace {

DurationMs Parsed(const std::string& text) {
  Result<DurationMs> r = ParseDuration(text);
  REQUIRE_MESSAGE(r.ok(), text, ": ", r.status().ToString());
  return *r;
}

void CheckRejected(const std::string& text) {
  CAPTURE(text);
  Result<DurationMs> r = ParseDuration(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Status::Code::kInvalidArgument);
  // The message names the input, so a bad flag is easy to find.
  CHECK(r.status().message().find("'" + text + "'") != std::string::npos);
}

TEST_CASE("ParseDuration: single units") {
  CHECK(Parsed("0ms") == 0);
  CHECK(Parsed("1ms") == 1);
  CHECK(Parsed("250ms") == 250);
  CHECK(Parsed("0s") == 0);
  CHECK(Parsed("1s") == 1000);
  CHECK(Parsed("30s") == 30'000);
  CHECK(Parsed("5m") == 300'000);
  CHECK(Parsed("90m") == 5'400'000);
  CHECK(Parsed("1h") == 3'600'000);
  CHECK(Parsed("24h") == 86'400'000);
  CHECK(Parsed("007s") == 7000);
}

TEST_CASE("ParseDuration: sums") {
  CHECK(Parsed("1h30m") == 5'400'000);
  CHECK(Parsed("30d") == 30 * 86'400'000LL);
  CHECK(Parsed("1d12h") == 36 * 3'600'000LL);
  CHECK(Parsed("1m30s") == 90'000);
  CHECK(Parsed("2s500ms") == 2500);
  CHECK(Parsed("1h1m1s1ms") == 3'661'001);
  CHECK(Parsed("30m1h") == 5'400'000);  // any order
  CHECK(Parsed("1s1s") == 2000);        // repeated units add up
}

TEST_CASE("ParseDuration: large but representable values") {
  CHECK(Parsed("2562047788015h") == 2'562'047'788'015 * DurationMs{3'600'000});
  CHECK(Parsed("9223372036854775ms") == 9'223'372'036'854'775);
  CHECK(Parsed("9223372036854775s") == 9'223'372'036'854'775'000);
}

TEST_CASE("ParseDuration: errors") {
  CheckRejected("");
  // No unit.
  CheckRejected("0");
  CheckRejected("10");
  CheckRejected("1h30");
  // No number.
  CheckRejected("s");
  CheckRejected("ms");
  CheckRejected("h1");
  // Unknown units.
  CheckRejected("10x");
  CheckRejected("5sec");
  CheckRejected("1w");
  CheckRejected("5S");
  CheckRejected("5H");
  CheckRejected("2us");
  CheckRejected("3mss");
  // Negative, signed, fractional, spaced.
  CheckRejected("-5s");
  CheckRejected("+5s");
  CheckRejected("1.5s");
  CheckRejected(" 5s");
  CheckRejected("5s ");
  CheckRejected("5 s");
  CheckRejected("1h 30m");
  CheckRejected("5s,");
}

TEST_CASE("ParseDuration: overflow is an error, not a wrap") {
  CheckRejected("99999999999999999999ms");
  CheckRejected("9999999999999999999999999999999999999999s");
  CheckRejected("2562047788016h");       // one hour more than int64 milliseconds hold
  CheckRejected("9223372036854776s");    // * 1000 overflows
  CheckRejected("9223372036854775s1s");  // the sum overflows
  CheckRejected("2562047788015h2562047788015h");
}

TEST_CASE("FormatDuration: the shortest exact spelling") {
  CHECK(FormatDuration(0) == "0ms");
  CHECK(FormatDuration(1) == "1ms");
  CHECK(FormatDuration(999) == "999ms");
  CHECK(FormatDuration(1000) == "1s");
  CHECK(FormatDuration(1500) == "1500ms");
  CHECK(FormatDuration(30'000) == "30s");
  CHECK(FormatDuration(60'000) == "1m");
  CHECK(FormatDuration(90'000) == "90s");
  CHECK(FormatDuration(300'000) == "5m");
  CHECK(FormatDuration(3'600'000) == "1h");
  CHECK(FormatDuration(5'400'000) == "90m");
  CHECK(FormatDuration(86'400'000) == "24h");
  CHECK(FormatDuration(3'661'001) == "3661001ms");
}

TEST_CASE("FormatDuration and ParseDuration round trip") {
  for (DurationMs ms :
       {DurationMs{0}, DurationMs{1}, DurationMs{250}, DurationMs{1000}, DurationMs{1500},
        DurationMs{59'999}, DurationMs{60'000}, DurationMs{61'000}, DurationMs{3'600'000},
        DurationMs{5'400'000}, DurationMs{86'400'000}, DurationMs{604'800'000},
        DurationMs{2'562'047'788'015} * 3'600'000}) {
    CAPTURE(ms);
    CHECK(Parsed(FormatDuration(ms)) == ms);
  }
}

}  // namespace
}  // namespace sendq
