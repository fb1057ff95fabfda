// Configuration of `sendq serve`: every option is a flag and an environment variable, and the
// flag wins.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "queue/delivery_policy.h"
#include "queue/guards.h"
#include "queue/pacing.h"
#include "queue/send_window.h"
#include "util/clock.h"
#include "util/status.h"

namespace sendq {

struct Config {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;
  std::string db_path = "./sendq.db";
  std::string upstream_url = "https://api.agentphone.ai";
  std::string upstream_token;  // secret: never logged or echoed
  // producer name -> token. Secret values: never logged or echoed.
  std::map<std::string, std::string> api_tokens;
  // admin name -> token (secret): admins read every producer's messages and use /v1/admin/.
  std::map<std::string, std::string> admin_tokens;
  DurationMs retain = 30 * 86'400'000LL;  // --retain: final messages are deleted after; 0 off
  DurationMs redact_after = 0;            // --redact-after: their personal data replaced; 0 off
  int workers = 16;
  int max_attempts = 12;
  DurationMs max_age = 24 * 3'600'000LL;
  DurationMs backoff_base = 1000;
  DurationMs backoff_max = 300'000;
  DurationMs lease = 60'000;
  DurationMs upstream_timeout = 30'000;
  DurationMs drain_timeout = 20'000;  // graceful stop: how long in-flight sends may take
  OnUnknown on_unknown = OnUnknown::kRetry;
  DurationMs lookup_grace = 2'000;  // after an unknown outcome, before looking it up
  bool synchronous_full = true;     // --synchronous=full|normal
  int http_threads = 64;            // threads that run requests
  int max_connections = 10'000;     // open connections, at most (lowered to fit the fd limit)
  int max_connections_per_client = 4'096;  // open connections from one address
  int max_waits_per_producer = 100;        // open long polls (?wait=) of one producer
  int max_header_bytes = 8 << 10;          // the request line, and each header line
  int max_head_bytes = 64 << 10;           // a request's whole head
  int max_headers = 100;                   // header fields in one request
  int max_body_bytes = 1 << 20;            // POST /v1/messages
  int max_batch_body_bytes = 8 << 20;      // POST /v1/messages/batch
  DurationMs head_timeout = 10'000;        // first byte of a request to the end of its head
  DurationMs body_timeout = 30'000;        // to receive a whole body
  DurationMs idle_timeout = 60'000;        // a kept-alive connection between requests
  std::string log_level = "info";
  std::string default_region = "US";  // phone numbers without a country code
  std::optional<SendWindow> default_send_window;
  bool order_conversations = true;  // --default-ordering=conversation|none
  Pacer::Options pacing;            // --sender-rate, --sender-limits, --upstream-rate
  // The files the secrets came from (--upstream-token-file, --api-tokens-file).
  std::vector<std::string> secret_files;
  RunawayGuards guards;                  // --recipient-cap, --duplicate-cap, --duplicate-window
  bool allow_http_callbacks = false;     // --allow-http-callbacks
  bool allow_private_callbacks = false;  // --allow-private-callbacks
  std::string callback_key_file;         // empty: <db>.callback-key
  // Checks the signature of AgentPhone's webhooks (POST /v1/agentphone/webhook). Secret.
  std::string agentphone_webhook_secret;
  // number id or agent id -> the producer whose suppression list an inbound STOP changes.
  std::map<std::string, std::string> number_owners;
  // Settings that work but are risky (e.g. the AgentPhone key in cleartext over the network),
  // one sentence each, for the caller to log at start.
  std::vector<std::string> warnings;
};

// Parses `sendq serve` arguments (argv without the program name and the "serve" word) with
// `env` as the environment. Any bad value is an InvalidArgument whose message names the flag or
// variable. For --help, *help_text receives the help and the result is the default Config.
Result<Config> ParseServeConfig(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env,
                                std::string* help_text);

// "name:token,name:token" -> map. Names are letters, digits, '_', '.' and '-'; tokens at least
// 8 characters without whitespace or control characters. Errors name the offending entry by
// position, never its token (nor its name while the entry may be written token:name).
Result<std::map<std::string, std::string>> ParseApiTokens(const std::string& text);

}  // namespace sendq
