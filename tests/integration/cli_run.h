// Runs the `sendq` binary as an operator would (sendq send, list, ...) and collects what it
// printed and how it exited.
//
// Thread-safety: RunCli may be called from any thread.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sendq::test {

struct CliOptions {
  std::string url;    // SENDQ_URL; empty: unset
  std::string token;  // SENDQ_TOKEN; empty: unset
  // What the command reads on stdin; nullopt: /dev/null.
  std::optional<std::string> stdin_text;
  std::map<std::string, std::string> env;  // more variables, on top
  // stderr on a pseudo-terminal (raw mode, so bytes arrive as written) instead of a pipe.
  bool stderr_tty = false;
  int timeout_ms = 60'000;
};

struct CliResult {
  int exit_code = -1;  // the exit code; 128 + N after signal N; -1 if it ran out of time
  std::string out;     // stdout
  std::string err;     // stderr

  // stdout as one JSON value (discarded when it is not one).
  nlohmann::json Json() const;
  // stdout as JSON lines, one value per non-empty line.
  std::vector<nlohmann::json> JsonLines() const;
  // stdout's first word ("sq_... queued" -> "sq_...").
  std::string FirstWord() const;
};

// `sendq ARGS...` with SENDQ_URL and SENDQ_TOKEN taken out of the inherited environment and
// set from `options`. Kills the process (SIGKILL) if it runs past options.timeout_ms.
CliResult RunCli(const std::vector<std::string>& args, const CliOptions& options = {});

// True when `text` has no terminal control sequences or carriage returns (what a progress
// bar writes): output fit for a pipe.
bool IsPlainText(const std::string& text);

}  // namespace sendq::test
