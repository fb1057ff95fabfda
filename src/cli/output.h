// What the operator commands (`sendq send`, `list`, `stats`, ...) show: exit codes, local
// times, tables, error texts and a progress line. Everything here but ProgressLine is a pure
// function of its arguments (and of TZ, for the local times), so it is unit-tested directly.
//
// Thread-safety: the free functions may be called from any thread (the local-time ones read
// the process's time zone, set once at start); a ProgressLine belongs to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sendq::cli {

// The exit codes of every client command; `sendq help` lists them. Scripts depend on these
// values: never renumber.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,          // anything else (a local file, an unexpected answer, --wait ran out)
  kExitUsage = 2,          // unknown command or option, bad or missing value
  kExitUnreachable = 3,    // no connection, no answer, or a 5xx
  kExitAuth = 4,           // 401 or 403
  kExitNotFound = 5,       // 404
  kExitRefused = 6,        // 400, 409, 413, 422
  kExitMessageFailed = 7,  // send --wait / get --wait: failed, canceled or expired
};

// The exit code for an HTTP answer; 0 stands for "no answer at all" (kExitUnreachable).
int ExitCodeForHttpStatus(int http_status);

// An RFC 3339 time from the API ("2026-11-27T09:30:00.123Z") in local time (TZ):
// "2026-11-27 10:30:00", with " CET" appended when `with_zone`. Anything that is not such a
// time comes back unchanged, and null-like input ("") as "".
std::string FormatLocalTime(const std::string& rfc3339, bool with_zone = false);

// A time given on the command line, as the API takes it. Values with a zone ("...Z",
// "...+02:00") and epoch milliseconds pass unchanged; "YYYY-MM-DD", "YYYY-MM-DD HH:MM" and
// "YYYY-MM-DD[T ]HH:MM:SS" are read in local time, as the tables show times, and become UTC.
// Anything else passes unchanged, for the server to refuse with its own message.
std::string TimeArgumentForApi(const std::string& text);

// A duration in seconds for people: "45s", "3m12s", "2h05m", "3d04h".
std::string FormatAge(double seconds);

// 1536 -> "1.5 KiB".
std::string HumanBytes(uint64_t bytes);

// Columns `text` takes on a terminal: code points, not bytes (wide characters count as one).
size_t DisplayWidth(std::string_view text);

// `text` fit for one table cell: control characters (newlines, tabs) become spaces, and text
// wider than `max_width` is cut at a character boundary and ends with "…".
std::string CellText(std::string_view text, size_t max_width);

// A plain-text table: a header row, then rows, columns two spaces apart, each as wide as its
// widest cell up to its max_width. The last column has no trailing padding.
class Table {
 public:
  struct Column {
    std::string header;
    size_t max_width = 40;
    bool align_right = false;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  // REQUIRES: cells.size() == the number of columns.
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  std::string Render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;  // cells already cut to their column's width
};

// The closest of `candidates` to what was typed ("stat" -> "stats"), or "" when none is close:
// a unique prefix match, else the smallest edit distance (with transpositions) if it is at
// most a third of the word's length (at least 1, at most 2).
std::string Suggest(const std::string& typed, const std::vector<std::string>& candidates);

// A server's error answer for stderr: the `detail` string with its `code`, or one line per
// item of a 422's detail list ("body.to_number: Value error, ..."); otherwise the HTTP status
// and the start of the body.
std::string DescribeHttpError(int http_status, const std::string& body);

// "[#######.......]  45%  1.2 MiB / 2.6 MiB" with a known total, else "1.2 MiB" and, when
// counted, ", 4,321 lines".
std::string FormatProgress(uint64_t bytes, std::optional<uint64_t> total,
                           std::optional<uint64_t> lines);
// "[#######.......]  45%  4,500 / 10,000 messages".
std::string FormatCountProgress(uint64_t done, uint64_t total, const char* unit);

// A progress line redrawn in place on a terminal (carriage return, erase line), at most ten
// times a second. Disabled, it writes nothing at all, so piped output has no escape codes.
class ProgressLine {
 public:
  ProgressLine(FILE* out, bool enabled) : out_(out), enabled_(enabled) {}
  ~ProgressLine() { Finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  void Update(uint64_t bytes, std::optional<uint64_t> total, std::optional<uint64_t> lines);
  // For a count of messages instead of bytes (a bulk operation).
  void UpdateCount(uint64_t done, uint64_t total, const char* unit);
  // Draws the final state and ends the line, if anything was drawn; later calls do nothing.
  void Finish();

 private:
  FILE* const out_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
  uint64_t bytes_ = 0;
  std::optional<uint64_t> total_;
  std::optional<uint64_t> lines_;
  const char* unit_ = nullptr;  // set: a count of these, not bytes

  void Draw();
};

}  // namespace sendq::cli
