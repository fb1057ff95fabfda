// `sendq <command>`: the operator commands (send, get, attempts, list, cancel, retry, tail,
// stats, export, backup, admin, help). Each talks to a running sendq over its HTTP API; only
// `serve` (main.cpp, cli/config.h) runs the service itself.
//
// Thread-safety: RunCommand belongs to the main thread and may change the process's signal
// mask while a command runs (tail, export, backup), before any other thread exists.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sendq::cli {

// Runs `sendq ARGS...` for every command but serve; `args` is argv without the program name.
// `env` is the environment (SENDQ_URL, SENDQ_TOKEN). `serve_help` makes the text of
// `sendq serve --help`, for `sendq help serve`. Returns the exit code (ExitCode in output.h).
int RunCommand(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const std::function<std::string()>& serve_help);

// The text of `sendq help`: every command, the common options and the exit codes.
std::string MainHelp();

// The names of the commands, in the order `sendq help` lists them (serve included).
std::vector<std::string> CommandNames();

}  // namespace sendq::cli
