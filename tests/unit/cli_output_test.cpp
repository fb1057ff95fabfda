// What the operator commands print: exit codes, local times, tables, errors, progress.
#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

#include "cli/output.h"

namespace sendq::cli {
namespace {

// Sets TZ for one test and puts the old value back.
class ScopedTz {
 public:
  explicit ScopedTz(const char* zone) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    setenv("TZ", zone, 1);
    tzset();
  }
  ~ScopedTz() {
    if (old_) {
      setenv("TZ", old_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }

 private:
  std::optional<std::string> old_;
};

TEST_CASE("ExitCodeForHttpStatus: the contract's codes") {
  CHECK(ExitCodeForHttpStatus(200) == kExitOk);
  CHECK(ExitCodeForHttpStatus(202) == kExitOk);
  CHECK(ExitCodeForHttpStatus(0) == kExitUnreachable);
  CHECK(ExitCodeForHttpStatus(500) == kExitUnreachable);
  CHECK(ExitCodeForHttpStatus(503) == kExitUnreachable);
  CHECK(ExitCodeForHttpStatus(507) == kExitUnreachable);
  CHECK(ExitCodeForHttpStatus(401) == kExitAuth);
  CHECK(ExitCodeForHttpStatus(403) == kExitAuth);
  CHECK(ExitCodeForHttpStatus(404) == kExitNotFound);
  for (int status : {400, 409, 413, 422}) CHECK(ExitCodeForHttpStatus(status) == kExitRefused);
  for (int status : {301, 405, 408, 415, 429, 431}) {
    CHECK(ExitCodeForHttpStatus(status) == kExitError);
  }
  // The values scripts rely on.
  CHECK(kExitUsage == 2);
  CHECK(kExitUnreachable == 3);
  CHECK(kExitAuth == 4);
  CHECK(kExitNotFound == 5);
  CHECK(kExitRefused == 6);
  CHECK(kExitMessageFailed == 7);
}

TEST_CASE("FormatLocalTime: RFC 3339 UTC in the zone TZ names") {
  {
    ScopedTz tz("America/New_York");
    CHECK(FormatLocalTime("2026-01-15T17:30:05.123Z") == "2026-01-15 12:30:05");
    CHECK(FormatLocalTime("2026-01-15T17:30:05.123Z", true) == "2026-01-15 12:30:05 EST");
    CHECK(FormatLocalTime("2026-07-15T17:30:05Z", true) == "2026-07-15 13:30:05 EDT");
    // Across midnight.
    CHECK(FormatLocalTime("2026-03-01T02:00:00.000Z") == "2026-02-28 21:00:00");
  }
  {
    ScopedTz tz("UTC");
    CHECK(FormatLocalTime("2026-11-27T09:30:00.000Z") == "2026-11-27 09:30:00");
    CHECK(FormatLocalTime("2026-11-27T10:30:00+01:00") == "2026-11-27 09:30:00");
  }
  {
    ScopedTz tz("Asia/Kolkata");
    CHECK(FormatLocalTime("2026-11-27T09:30:00.000Z") == "2026-11-27 15:00:00");
  }
  // Not a time: unchanged.
  CHECK(FormatLocalTime("") == "");
  CHECK(FormatLocalTime("soon") == "soon");
}

TEST_CASE("TimeArgumentForApi: local times become UTC; the rest passes") {
  ScopedTz tz("America/New_York");
  CHECK(TimeArgumentForApi("2026-01-15") == "2026-01-15T05:00:00.000Z");
  CHECK(TimeArgumentForApi("2026-01-15 12:30") == "2026-01-15T17:30:00.000Z");
  CHECK(TimeArgumentForApi("2026-07-15T12:30:10") == "2026-07-15T16:30:10.000Z");
  CHECK(TimeArgumentForApi("2026-01-15T12:30:00Z") == "2026-01-15T12:30:00Z");
  CHECK(TimeArgumentForApi("2026-01-15T12:30:00+02:00") == "2026-01-15T12:30:00+02:00");
  CHECK(TimeArgumentForApi("1767225600000") == "1767225600000");
  CHECK(TimeArgumentForApi("yesterday") == "yesterday");
  CHECK(TimeArgumentForApi("2026-02-30") == "2026-02-30");  // no such day: the server says so
  CHECK(TimeArgumentForApi("2026-01-15 25:00") == "2026-01-15 25:00");
}

TEST_CASE("FormatAge, HumanBytes") {
  CHECK(FormatAge(0) == "0s");
  CHECK(FormatAge(-5) == "0s");
  CHECK(FormatAge(45.9) == "45s");
  CHECK(FormatAge(192) == "3m12s");
  CHECK(FormatAge(7500) == "2h05m");
  CHECK(FormatAge(3 * 86400 + 4 * 3600 + 59) == "3d04h");
  CHECK(HumanBytes(0) == "0 B");
  CHECK(HumanBytes(1023) == "1023 B");
  CHECK(HumanBytes(1536) == "1.5 KiB");
  CHECK(HumanBytes(5 * 1024 * 1024) == "5.0 MiB");
  CHECK(HumanBytes(3ULL << 30) == "3.0 GiB");
}

TEST_CASE("CellText: one line, cut at a character boundary") {
  CHECK(CellText("short", 10) == "short");
  CHECK(CellText("exactly10!", 10) == "exactly10!");
  CHECK(CellText("eleven chars", 10) == "eleven ch\u2026");
  CHECK(DisplayWidth(CellText("eleven chars", 10)) == 10);
  CHECK(CellText("two\nlines\tand a tab", 0) == "two lines and a tab");
  // Multi-byte characters count once and are never split.
  CHECK(CellText("\u00e9\u00e9\u00e9\u00e9\u00e9", 3) == "\u00e9\u00e9\u2026");
  CHECK(DisplayWidth("\u00e9t\u00e9") == 3);
  CHECK(CellText("\U0001F525 hot", 3) == "\U0001F525 \u2026");
}

TEST_CASE("Table: columns as wide as their widest cell, two spaces apart") {
  Table table({{"ID", 10}, {"N", 5, true}, {"NOTE", 8}});
  table.AddRow({"a", "1", "first"});
  table.AddRow({"bbbbbbbbbbbbbb", "12345", "a long note"});
  table.AddRow({"c", "", ""});
  CHECK(table.Render() ==
        "ID              N  NOTE\n"
        "a               1  first\n"
        "bbbbbbbbb\u2026  12345  a long \u2026\n"
        "c\n");
  Table empty({{"A", 3}, {"B", 3}});
  CHECK(empty.empty());
  CHECK(empty.Render() == "A  B\n");
}

TEST_CASE("Suggest: the closest command") {
  const std::vector<std::string> commands = {"serve",  "send",  "get",  "attempts", "list",
                                             "cancel", "retry", "tail", "stats",    "export",
                                             "backup", "admin", "help"};
  CHECK(Suggest("stat", commands) == "stats");
  CHECK(Suggest("lsit", commands) == "list");
  CHECK(Suggest("sned", commands) == "send");
  CHECK(Suggest("atempts", commands) == "attempts");
  CHECK(Suggest("cancle", commands) == "cancel");
  CHECK(Suggest("STATS", commands) == "stats");
  CHECK(Suggest("exp", commands) == "export");  // a unique prefix
  CHECK(Suggest("ba", commands) == "backup");
  CHECK(Suggest("frobnicate", commands) == "");
  CHECK(Suggest("", commands) == "");
  CHECK(Suggest("x", commands) == "");
}

TEST_CASE("DescribeHttpError: detail, code, and a 422's list") {
  CHECK(DescribeHttpError(404, R"({"detail":"no such message","code":"not_found"})") ==
        "no such message (not_found, HTTP 404)");
  CHECK(DescribeHttpError(403, R"({"detail":"admins only"})") == "admins only (HTTP 403)");
  CHECK(DescribeHttpError(422, R"({"detail":[
          {"loc":["body","to_number"],"msg":"Value error, not a phone number","type":"value_error"},
          {"loc":["body","media_urls",0],"msg":"must be https","type":"value_error"},
          {"loc":["query","limit"],"msg":"too big","type":"less_than_equal"}]})") ==
        "the request was refused (HTTP 422):\n"
        "  body.to_number: Value error, not a phone number\n"
        "  body.media_urls[0]: must be https\n"
        "  query.limit: too big");
  CHECK(DescribeHttpError(502, "<html>Bad\ngateway</html>") ==
        "HTTP 502: <html>Bad gateway</html>");
  CHECK(DescribeHttpError(500, "") == "HTTP 500");
}

TEST_CASE("FormatProgress") {
  CHECK(FormatProgress(512, std::nullopt, std::nullopt) == "512 B");
  CHECK(FormatProgress(1536, std::nullopt, 4321) == "1.5 KiB, 4,321 lines");
  CHECK(FormatProgress(10, std::nullopt, 1) == "10 B, 1 line");
  CHECK(FormatProgress(512, 2048, std::nullopt) == "[#####...............]  25%  512 B / 2.0 KiB");
  CHECK(FormatProgress(4096, 2048, std::nullopt) ==
        "[####################] 100%  4.0 KiB / 2.0 KiB");
}

TEST_CASE("ProgressLine: nothing at all when disabled") {
  char buffer[256] = {};
  FILE* out = fmemopen(buffer, sizeof(buffer), "w");
  REQUIRE(out != nullptr);
  {
    ProgressLine quiet(out, false);
    quiet.Update(100, 1000, std::nullopt);
    quiet.Finish();
  }
  std::fflush(out);
  CHECK(std::string(buffer).empty());
  {
    ProgressLine shown(out, true);
    shown.Update(100, std::nullopt, 2);
    shown.Finish();
    shown.Finish();
  }
  std::fclose(out);
  CHECK(std::string(buffer) == "\r\033[K100 B, 2 lines\r\033[K100 B, 2 lines\n");
}

}  // namespace
}  // namespace sendq::cli
