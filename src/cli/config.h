// Configuration of `sendq serve`: every option is a flag and an environment variable, and the
// flag wins.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "util/clock.h"
#include "util/status.h"

namespace sendq {

enum class OnUnknown { kRetry, kFail };

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string db_path = "./sendq.db";
  std::string upstream_url = "https://api.agentphone.ai";
  std::string upstream_token;  // secret: never logged or echoed
  // producer name -> token. Secret values: never logged or echoed.
  std::map<std::string, std::string> api_tokens;
  int workers = 16;
  int max_attempts = 12;
  DurationMs max_age = 24 * 3'600'000LL;
  DurationMs backoff_base = 1000;
  DurationMs backoff_max = 300'000;
  DurationMs lease = 60'000;
  DurationMs upstream_timeout = 30'000;
  DurationMs drain_timeout = 20'000;  // graceful stop: how long in-flight sends may take
  OnUnknown on_unknown = OnUnknown::kRetry;
  bool synchronous_full = true;  // --synchronous=full|normal
  int http_threads = 64;         // HTTP threads kept ready
  int max_connections = 1024;    // connections served at once
  std::string log_level = "info";
};

// Parses `sendq serve` arguments (argv without the program name and the "serve" word) with
// `env` as the environment. Any bad value is an InvalidArgument whose message names the flag or
// variable. For --help, *help_text receives the help and the result is the default Config.
Result<Config> ParseServeConfig(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env,
                                std::string* help_text);

// "name:token,name:token" -> map. Errors name the offending entry by position, never the token.
Result<std::map<std::string, std::string>> ParseApiTokens(const std::string& text);

}  // namespace sendq
