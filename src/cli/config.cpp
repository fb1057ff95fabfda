#include "cli/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "queue/phone.h"
#include "util/ascii.h"
#include "util/duration.h"
#include "util/process.h"

namespace sendq {
namespace {

// Secrets never come from the command line (where `ps` would show them), only from the
// environment or a file.
constexpr char kUpstreamTokenEnv[] = "SENDQ_UPSTREAM_TOKEN";
constexpr char kApiTokensEnv[] = "SENDQ_API_TOKENS";
constexpr char kAdminTokensEnv[] = "SENDQ_ADMIN_TOKENS";
constexpr size_t kMinApiTokenLength = 8;
constexpr size_t kMaxSecretFileBytes = 1 << 20;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

// Space, control characters and DEL: none of them can appear in a bearer token, and a newline
// would break the Authorization header.
bool IsSpaceOrControl(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

std::string Trim(const std::string& s) {
  size_t begin = 0;
  size_t end = s.size();
  while (begin < end && IsSpace(s[begin])) ++begin;
  while (end > begin && IsSpace(s[end - 1])) --end;
  return s.substr(begin, end - begin);
}

bool IsTokenName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool HasSpaceOrControl(const std::string& s) {
  for (char c : s) {
    if (IsSpaceOrControl(c)) return true;
  }
  return false;
}

bool StartsWithIgnoreCase(const std::string& s, const std::string& prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

// Digits only, saturating at INT64_MAX / 10 so that absurd values still fail a range check.
std::optional<int64_t> ParseNonNegative(const std::string& s) {
  if (s.empty()) return std::nullopt;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (n < INT64_MAX / 100) n = n * 10 + (c - '0');
  }
  return n;
}

// `url` fit to echo: credentials (anything up to the last '@' after the scheme) and the query
// become "***".
std::string RedactUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  std::string out = url;
  if (size_t query = out.find('?', start); query != std::string::npos) {
    size_t fragment = out.find('#', query);
    out.replace(query + 1, (fragment == std::string::npos ? out.size() : fragment) - query - 1,
                "***");
  }
  if (size_t at = out.rfind('@'); at != std::string::npos && at >= start) {
    out.replace(start, at - start, "***");
  }
  return out;
}

bool IsHostChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

// "host", "host:port", "[v6]" or "[v6]:port" -> the host without brackets.
bool ParseUrlAuthority(const std::string& authority, std::string* host) {
  std::string port;
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos || close == 1) return false;
    *host = authority.substr(1, close - 1);
    in6_addr address;
    if (inet_pton(AF_INET6, host->c_str(), &address) != 1) return false;
    std::string after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return false;
      port = after.substr(1);
      if (port.empty()) return false;
    }
  } else {
    size_t colon = authority.find(':');
    *host = authority.substr(0, colon);
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host->empty()) return false;
    for (char c : *host) {
      if (!IsHostChar(c)) return false;
    }
  }
  if (!port.empty()) {
    auto n = ParseNonNegative(port);
    if (!n || port.size() > 5 || *n < 1 || *n > 65535) return false;
  }
  return true;
}

// localhost, 127.0.0.0/8 and ::1 (also as an IPv4-mapped address).
bool IsLoopbackHost(const std::string& host) {
  const std::string lower = AsciiLower(host);
  if (lower == "localhost" || lower == "localhost.") return true;
  std::string bare = lower;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  in_addr v4;
  if (inet_pton(AF_INET, bare.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, bare.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

// Reads a secret from a file. Errors name the file, never its content.
Result<std::string> ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::InvalidArgument(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  }
  std::string content;
  char buffer[4096];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    content.append(buffer, static_cast<size_t>(in.gcount()));
    if (content.size() > kMaxSecretFileBytes) {
      return Status::InvalidArgument(fmt::format("'{}' is too large for a secrets file", path));
    }
  }
  if (in.bad()) return Status::InvalidArgument(fmt::format("error reading '{}'", path));
  return content;
}

// One setting: its flag, its environment variable, and what the flag received.
struct Setting {
  const char* flag;  // without the leading dashes
  const char* env;
  const char* type_name;
  std::string help;
  std::string default_text;
  std::string flag_value;
  CLI::Option* option = nullptr;
};

// A raw value and where it came from, for error messages.
struct Raw {
  std::string text;
  std::string origin;  // "--workers" or "SENDQ_WORKERS (--workers)"
};

class ServeParser {
 public:
  explicit ServeParser(const std::map<std::string, std::string>& env) : env_(env) {}

  // Declares every setting on `app`. The Setting objects must outlive parsing.
  void Declare(CLI::App& app) {
    Config d;
    Add("listen", "SENDQ_LISTEN", "HOST:PORT",
        "address to serve the API on; IPv6 as [::1]:8080; port 0 picks a free port",
        fmt::format("{}:{}", d.listen_host, d.listen_port));
    Add("db", "SENDQ_DB", "PATH", "SQLite database file", d.db_path);
    Add("upstream", "SENDQ_UPSTREAM_URL", "URL",
        "AgentPhone base URL, https://HOST[:PORT] without a path (http:// for a local test "
        "server)",
        d.upstream_url);
    Add("upstream-token-file", "SENDQ_UPSTREAM_TOKEN_FILE", "PATH",
        "file holding the AgentPhone API key (else SENDQ_UPSTREAM_TOKEN)", "");
    Add("api-tokens-file", "SENDQ_API_TOKENS_FILE", "PATH",
        "file holding producer tokens as name:token,name:token (else SENDQ_API_TOKENS)", "");
    Add("admin-tokens-file", "SENDQ_ADMIN_TOKENS_FILE", "PATH",
        "file holding admin tokens as name:token,name:token (else SENDQ_ADMIN_TOKENS); admins "
        "read every producer's messages and use /v1/admin/",
        "");
    Add("retain", "SENDQ_RETAIN", "DURATION|off",
        "delete final messages (and their ledgers) this long after they were created", "30d");
    Add("redact-after", "SENDQ_REDACT_AFTER", "DURATION|off",
        "replace the body, media, stored requests and answers of final messages this old with "
        "a marker, and the recipient with a keyed hash",
        "off");
    Add("workers", "SENDQ_WORKERS", "N", "concurrent deliveries, 1..1024",
        std::to_string(d.workers));
    Add("max-attempts", "SENDQ_MAX_ATTEMPTS", "N", "charged attempts before a message fails",
        std::to_string(d.max_attempts));
    Add("max-age", "SENDQ_MAX_AGE", "DURATION", "how long a message may wait before it fails",
        FormatDuration(d.max_age));
    Add("backoff-base", "SENDQ_BACKOFF_BASE", "DURATION", "first retry delay",
        FormatDuration(d.backoff_base));
    Add("backoff-max", "SENDQ_BACKOFF_MAX", "DURATION", "longest retry delay",
        FormatDuration(d.backoff_max));
    Add("lease", "SENDQ_LEASE", "DURATION",
        "how long a worker owns a message it is sending; must exceed --upstream-timeout",
        FormatDuration(d.lease));
    Add("upstream-timeout", "SENDQ_UPSTREAM_TIMEOUT", "DURATION",
        "timeout of one request to AgentPhone", FormatDuration(d.upstream_timeout));
    Add("drain-timeout", "SENDQ_DRAIN_TIMEOUT", "DURATION",
        "on shutdown, how long in-flight sends may take", FormatDuration(d.drain_timeout));
    Add("on-unknown", "SENDQ_ON_UNKNOWN", "retry|fail|reconcile-or-fail",
        "a send's outcome is unknown (no answer after sending) and looking it up at AgentPhone "
        "did not find it: send it again, fail it, or send again only when AgentPhone's complete "
        "list shows it was not sent",
        OnUnknownName(d.on_unknown));
    Add("agentphone-webhook-secret", "SENDQ_AGENTPHONE_WEBHOOK_SECRET", "SECRET",
        "the secret AgentPhone signs its webhooks with; enables POST /v1/agentphone/webhook "
        "(prefer the environment variable: a flag shows in the process list)",
        "");
    Add("number-owners", "SENDQ_NUMBER_OWNERS", "LIST",
        "NUMBER_ID_OR_AGENT_ID=PRODUCER,...: whose suppression list an inbound STOP to that "
        "number or agent changes (unowned: every producer's)",
        "");
    Add("recipient-cap", "SENDQ_RECIPIENT_CAP", "COUNT/WINDOW",
        "runaway guard: at most this many messages from one producer to one recipient in the "
        "window (e.g. 20/h); more are held (off unless set)",
        "");
    Add("duplicate-cap", "SENDQ_DUPLICATE_CAP", "N",
        "runaway guard: the same body to the same recipient at most N times in "
        "--duplicate-window; more are held (off unless set)",
        "");
    Add("duplicate-window", "SENDQ_DUPLICATE_WINDOW", "DURATION", "the window of --duplicate-cap",
        "10m");
    Add("allow-http-callbacks", "SENDQ_ALLOW_HTTP_CALLBACKS", "",
        "callback URLs may be http (for development and tests); else https only", "");
    Add("allow-private-callbacks", "SENDQ_ALLOW_PRIVATE_CALLBACKS", "",
        "callback URLs may resolve to loopback or private addresses", "");
    Add("callback-key-file", "SENDQ_CALLBACK_KEY_FILE", "PATH",
        "the key callback signing secrets derive from (made, 0600, if missing; keep it with "
        "backups)",
        "<db>.callback-key");
    Add("lookup-grace", "SENDQ_LOOKUP_GRACE", "DURATION",
        "after a send with an unknown outcome, how long to wait before looking for it in "
        "AgentPhone's list of sent messages",
        FormatDuration(d.lookup_grace));
    Add("synchronous", "SENDQ_SYNCHRONOUS", "full|normal",
        "SQLite synchronous mode; full survives power loss",
        d.synchronous_full ? "full" : "normal");
    Add("default-region", "SENDQ_DEFAULT_REGION", "REGION",
        "region (ISO 3166, e.g. US, GB) of phone numbers written without a country code",
        d.default_region);
    Add("default-send-window", "SENDQ_DEFAULT_SEND_WINDOW", "WINDOW",
        "send window of messages that set none: recipient (08:00-21:00 in the recipient's "
        "zones), HH:MM-HH:MM (in the recipient's zones) or HH:MM-HH:MM@ZONE",
        "none");
    Add("default-ordering", "SENDQ_DEFAULT_ORDERING", "conversation|none",
        "the lane of a message that sets no ordering_key: its conversation (sender and "
        "recipient; each sent only after the one before it is final) or none",
        "conversation");
    Add("sender-rate", "SENDQ_SENDER_RATE", "RATE",
        "sends per sender identity (number_id, from_number or agent_id): N/s, N/m or N/h, "
        "optionally :BURST",
        "unlimited");
    Add("sender-limits", "SENDQ_SENDER_LIMITS", "LIST",
        "per-sender rates, SENDER=RATE[:BURST],... or @FILE with one per line", "");
    Add("upstream-rate", "SENDQ_UPSTREAM_RATE", "RATE",
        "sends for the whole AgentPhone account: N/s, N/m or N/h, optionally :BURST", "unlimited");
    Add("http-threads", "SENDQ_HTTP_THREADS", "N",
        "threads that run requests, 1..4096 (connections and long polls hold none)",
        std::to_string(d.http_threads));
    Add("max-connections", "SENDQ_MAX_CONNECTIONS", "N",
        "open connections at most, 1..1000000; lowered to fit the file-descriptor limit; "
        "beyond it, new connections get 503",
        std::to_string(d.max_connections));
    Add("max-connections-per-client", "SENDQ_MAX_CONNECTIONS_PER_CLIENT", "N",
        "open connections from one client address at most",
        std::to_string(d.max_connections_per_client));
    Add("max-waits-per-producer", "SENDQ_MAX_WAITS_PER_PRODUCER", "N",
        "open long polls (?wait=) of one producer; beyond it, 429",
        std::to_string(d.max_waits_per_producer));
    Add("max-header-bytes", "SENDQ_MAX_HEADER_BYTES", "BYTES",
        "longest request line or header line; beyond it, 431", std::to_string(d.max_header_bytes));
    Add("max-head-bytes", "SENDQ_MAX_HEAD_BYTES", "BYTES", "largest request head; beyond it, 431",
        std::to_string(d.max_head_bytes));
    Add("max-headers", "SENDQ_MAX_HEADERS", "N", "most header fields in a request; beyond, 431",
        std::to_string(d.max_headers));
    Add("max-body-bytes", "SENDQ_MAX_BODY_BYTES", "BYTES",
        "largest body of POST /v1/messages; beyond it, 413", std::to_string(d.max_body_bytes));
    Add("max-batch-body-bytes", "SENDQ_MAX_BATCH_BODY_BYTES", "BYTES",
        "largest body of POST /v1/messages/batch; beyond it, 413",
        std::to_string(d.max_batch_body_bytes));
    Add("head-timeout", "SENDQ_HEAD_TIMEOUT", "DURATION",
        "time to receive a request head once it started; then 408", FormatDuration(d.head_timeout));
    Add("body-timeout", "SENDQ_BODY_TIMEOUT", "DURATION",
        "time to receive a request body; then 408", FormatDuration(d.body_timeout));
    Add("idle-timeout", "SENDQ_IDLE_TIMEOUT", "DURATION",
        "how long a kept-alive connection may wait for its next request",
        FormatDuration(d.idle_timeout));
    Add("log-level", "SENDQ_LOG_LEVEL", "LEVEL", "debug, info, warn or error", d.log_level);

    for (Setting& s : settings_) {
      std::string description = s.help + " [env: " + s.env + "]";
      if (std::string_view(s.type_name).empty()) {  // a flag without a value
        s.option = app.add_flag(std::string("--") + s.flag)->description(description);
        continue;
      }
      s.option = app.add_option(std::string("--") + s.flag, s.flag_value, description);
      s.option->type_name(s.type_name);
      if (!s.default_text.empty()) s.option->default_str(s.default_text);
    }
  }

  // Builds the Config from what was parsed, collecting every problem.
  Result<Config> Build() {
    Config config;
    ParseListen(config);
    if (auto raw = Get("db")) {
      if (raw->text.empty()) {
        Problem(raw->origin, "the database path is empty");
      } else {
        config.db_path = raw->text;
      }
    }
    ParseUpstreamUrl(config);
    ParseUpstreamToken(config);
    ParseApiTokenSetting(config);
    ParseAdminTokenSetting(config);
    OptionalDuration("retain", config.retain);
    OptionalDuration("redact-after", config.redact_after);
    if (config.retain > 0 && config.redact_after > 0 && config.redact_after >= config.retain) {
      config.warnings.push_back(
          "--redact-after is not shorter than --retain: messages are deleted before they would "
          "be redacted");
    }
    Int("workers", 1, 1024, config.workers);
    Int("max-attempts", 1, INT_MAX, config.max_attempts);
    Int("http-threads", 1, 4096, config.http_threads);
    Int("max-connections", 1, 1'000'000, config.max_connections);
    Int("max-connections-per-client", 1, 1'000'000, config.max_connections_per_client);
    Int("max-waits-per-producer", 1, 1'000'000, config.max_waits_per_producer);
    Int("max-header-bytes", 256, 1 << 20, config.max_header_bytes);
    Int("max-head-bytes", 1024, 16 << 20, config.max_head_bytes);
    Int("max-headers", 8, 10'000, config.max_headers);
    Int("max-body-bytes", 1024, 1 << 30, config.max_body_bytes);
    Int("max-batch-body-bytes", 1024, 1 << 30, config.max_batch_body_bytes);
    if (config.max_header_bytes > config.max_head_bytes) {
      problems_.push_back(
          fmt::format("--max-header-bytes ({}) must not exceed --max-head-bytes ({})",
                      config.max_header_bytes, config.max_head_bytes));
    }
    bool durations_ok = true;
    durations_ok &= Duration("max-age", config.max_age);
    durations_ok &= Duration("backoff-base", config.backoff_base);
    durations_ok &= Duration("backoff-max", config.backoff_max);
    durations_ok &= Duration("lease", config.lease);
    durations_ok &= Duration("upstream-timeout", config.upstream_timeout);
    durations_ok &= Duration("lookup-grace", config.lookup_grace);
    durations_ok &= Duration("drain-timeout", config.drain_timeout);
    durations_ok &= Duration("head-timeout", config.head_timeout);
    durations_ok &= Duration("body-timeout", config.body_timeout);
    durations_ok &= Duration("idle-timeout", config.idle_timeout);
    if (durations_ok) CheckDurationRelations(config);

    std::string on_unknown = "retry";
    if (Choice("on-unknown", {"retry", "fail", "reconcile-or-fail"}, on_unknown)) {
      for (OnUnknown mode : {OnUnknown::kRetry, OnUnknown::kFail, OnUnknown::kReconcileOrFail}) {
        if (on_unknown == OnUnknownName(mode)) config.on_unknown = mode;
      }
    }
    std::string synchronous = "full";
    if (Choice("synchronous", {"full", "normal"}, synchronous)) {
      config.synchronous_full = synchronous == "full";
    }
    Choice("log-level", {"debug", "info", "warn", "error"}, config.log_level);
    ParseQueueDefaults(config);

    if (problems_.empty()) return config;
    std::string message = problems_[0];
    for (size_t i = 1; i < problems_.size(); ++i) message += "; " + problems_[i];
    return Status::InvalidArgument(message);
  }

 private:
  void Add(const char* flag, const char* env, const char* type_name, std::string help,
           std::string default_text) {
    settings_.push_back(
        Setting{flag, env, type_name, std::move(help), std::move(default_text), "", nullptr});
  }

  void ParseQueueDefaults(Config& config) {
    if (auto raw = Get("default-region")) {
      if (!IsKnownRegion(raw->text)) {
        Problem(raw->origin, fmt::format("'{}' is not a region code such as US or GB", raw->text));
      } else {
        config.default_region = raw->text;
      }
    }
    if (auto raw = Get("default-send-window"); raw && raw->text != "none") {
      config.default_send_window = ParseWindowSetting(raw->text);
      if (!config.default_send_window) {
        Problem(raw->origin,
                fmt::format("expected none, recipient, HH:MM-HH:MM or HH:MM-HH:MM@ZONE (a tz "
                            "database zone), got '{}'",
                            raw->text));
      }
    }
    std::string ordering = "conversation";
    if (Choice("default-ordering", {"conversation", "none"}, ordering)) {
      config.order_conversations = ordering == "conversation";
    }
    for (const char* flag : {"sender-rate", "upstream-rate"}) {
      auto raw = Get(flag);
      if (!raw || raw->text == "unlimited") continue;
      Result<Rate> rate = ParseRate(raw->text);
      if (!rate.ok()) {
        Problem(raw->origin, rate.status().message());
      } else {
        (std::strcmp(flag, "sender-rate") == 0 ? config.pacing.sender_rate
                                               : config.pacing.upstream_rate) = *rate;
      }
    }
    if (auto raw = Get("recipient-cap")) {
      Result<CountPerWindow> cap = ParseCountPerWindow(raw->text);
      if (!cap.ok()) {
        Problem(raw->origin, cap.status().message());
      } else {
        config.guards.recipient_cap = cap->count;
        config.guards.recipient_window = cap->window;
      }
    }
    config.guards.duplicate_window = 10 * 60'000;
    if (auto raw = Get("duplicate-window")) {
      Result<DurationMs> window = ParseDuration(raw->text);
      if (!window.ok() || *window <= 0) {
        Problem(raw->origin, "not a positive duration, such as 10m");
      } else {
        config.guards.duplicate_window = *window;
      }
    }
    if (auto raw = Get("duplicate-cap")) {
      char* end = nullptr;
      const long cap = std::strtol(raw->text.c_str(), &end, 10);
      if (raw->text.empty() || *end != '\0' || cap < 1 || cap > 1'000'000) {
        Problem(raw->origin, "not a whole number from 1 to 1000000");
      } else {
        config.guards.duplicate_cap = static_cast<int>(cap);
      }
    }
    for (auto [flag, target] :
         {std::pair{"allow-http-callbacks", &config.allow_http_callbacks},
          std::pair{"allow-private-callbacks", &config.allow_private_callbacks}}) {
      if (auto raw = Get(flag)) {
        if (raw->text == "true" || raw->text == "1") {
          *target = true;
        } else if (raw->text != "false" && raw->text != "0") {
          Problem(raw->origin, "expected true or false");
        }
      }
    }
    if (auto raw = Get("callback-key-file")) config.callback_key_file = raw->text;
    if (auto raw = Get("agentphone-webhook-secret")) {
      config.agentphone_webhook_secret = Trim(raw->text);
    }
    if (auto raw = Get("number-owners")) {
      std::stringstream items(raw->text);
      for (std::string item; std::getline(items, item, ',');) {
        if (Trim(item).empty()) continue;
        const size_t eq = item.find('=');
        const std::string key = eq == std::string::npos ? "" : Trim(item.substr(0, eq));
        const std::string producer = eq == std::string::npos ? "" : Trim(item.substr(eq + 1));
        if (key.empty() || producer.empty()) {
          Problem(raw->origin, fmt::format("'{}' is not NUMBER_ID_OR_AGENT_ID=PRODUCER", item));
          continue;
        }
        config.number_owners[key] = producer;
      }
    }
    if (auto raw = Get("sender-limits")) {
      Result<std::map<std::string, Rate>> limits = ParseSenderLimits(raw->text);
      if (!limits.ok()) {
        Problem(raw->origin, limits.status().message());
      } else {
        config.pacing.sender_limits = std::move(*limits);
      }
    }
  }

  // "recipient", "HH:MM-HH:MM" or "HH:MM-HH:MM@ZONE".
  static std::optional<SendWindow> ParseWindowSetting(const std::string& text) {
    if (text == "recipient") return RecipientHours();
    const size_t dash = text.find('-');
    const size_t at = text.find('@');
    if (dash == std::string::npos) return std::nullopt;
    nlohmann::json value = {
        {"start", text.substr(0, dash)},
        {"end",
         text.substr(dash + 1, at == std::string::npos ? std::string::npos : at - dash - 1)}};
    if (at != std::string::npos) value["tz"] = text.substr(at + 1);
    std::string problem;
    return ParseSendWindow(value, &problem);
  }

  const Setting& Find(const char* flag) const {
    for (const Setting& s : settings_) {
      if (std::strcmp(s.flag, flag) == 0) return s;
    }
    std::abort();  // a typo in this file, not a user error
  }

  // The flag's value if given, else the environment's (an empty variable counts as unset,
  // as shells and compose files often export empty ones), else nullopt.
  std::optional<Raw> Get(const char* flag) const {
    const Setting& s = Find(flag);
    if (s.option != nullptr && s.option->count() > 0) {
      const bool is_flag = std::string_view(s.type_name).empty();
      return Raw{is_flag ? std::string("true") : s.flag_value, std::string("--") + s.flag};
    }
    auto it = env_.find(s.env);
    if (it != env_.end() && !it->second.empty()) {
      return Raw{it->second, fmt::format("{} (--{})", s.env, s.flag)};
    }
    return std::nullopt;
  }

  std::optional<std::string> Env(const char* name) const {
    auto it = env_.find(name);
    if (it == env_.end() || it->second.empty()) return std::nullopt;
    return it->second;
  }

  void Problem(const std::string& origin, const std::string& why) {
    problems_.push_back(origin + ": " + why);
  }

  void ParseListen(Config& config) {
    auto raw = Get("listen");
    if (!raw) return;
    if (Status st = ParseHostPort(raw->text, &config.listen_host, &config.listen_port); !st.ok()) {
      Problem(raw->origin, st.message());
    }
  }

  // Only scheme://host[:port] with a lower-case http or https scheme: the client adds the path
  // (/v1/messages), and the key goes in a header, never in the URL. Errors echo the URL with
  // any credentials and query masked.
  void ParseUpstreamUrl(Config& config) {
    auto raw = Get("upstream");
    if (!raw) return;
    const std::string& url = raw->text;
    constexpr char kExpected[] =
        "expected https://HOST[:PORT] (or http://HOST[:PORT] for a test server)";
    auto problem = [&](const std::string& why) {
      Problem(raw->origin, fmt::format("{}; {}, got '{}'", why, kExpected, RedactUrl(url)));
    };
    size_t scheme_length = 0;
    if (url.starts_with("https://")) {
      scheme_length = 8;
    } else if (url.starts_with("http://")) {
      scheme_length = 7;
    } else if (StartsWithIgnoreCase(url, "https://") || StartsWithIgnoreCase(url, "http://")) {
      problem("the scheme must be lower case");
      return;
    } else {
      problem("must start with http:// or https://");
      return;
    }
    if (HasSpaceOrControl(url)) {
      problem("contains whitespace or control characters");
      return;
    }
    const std::string rest = url.substr(scheme_length);
    if (rest.find('@') != std::string::npos) {
      problem(
          "must not contain credentials (user:password@); the AgentPhone key comes from "
          "SENDQ_UPSTREAM_TOKEN or --upstream-token-file");
      return;
    }
    const size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    const std::string authority = rest.substr(0, authority_end);
    const std::string tail = rest.substr(authority_end);
    if (tail.find_first_of("?#") != std::string::npos) {
      problem("must not have a query or fragment");
      return;
    }
    if (authority.empty()) {
      problem("has no host");
      return;
    }
    if (!tail.empty() && tail != "/") {
      problem("must not have a path (sendq adds /v1/messages itself)");
      return;
    }
    std::string host;
    if (!ParseUrlAuthority(authority, &host)) {
      problem("not a valid HOST[:PORT] (IPv6 in brackets, port 1 to 65535)");
      return;
    }
    if (scheme_length == 7 && !IsLoopbackHost(host)) {
      config.warnings.push_back(
          "--upstream uses http:// to a non-loopback host: the AgentPhone key goes over the "
          "network in cleartext");
    }
    config.upstream_url = url.substr(0, scheme_length) + authority;
  }

  void ParseUpstreamToken(Config& config) {
    std::string token;
    std::string origin;
    if (auto file = Get("upstream-token-file")) {
      auto content = ReadSecretFile(file->text);
      if (!content.ok()) {
        Problem(file->origin, content.status().message());
        return;
      }
      token = Trim(*content);
      origin = file->origin;
      config.secret_files.push_back(file->text);
      if (token.empty()) {
        Problem(origin, fmt::format("'{}' is empty", file->text));
        return;
      }
    } else if (auto env = Env(kUpstreamTokenEnv)) {
      token = Trim(*env);
      origin = kUpstreamTokenEnv;
    }
    if (token.empty()) {
      problems_.push_back("no AgentPhone key: set SENDQ_UPSTREAM_TOKEN or --upstream-token-file");
      return;
    }
    if (HasSpaceOrControl(token)) {
      Problem(origin, "the AgentPhone key contains whitespace or control characters");
      return;
    }
    config.upstream_token = token;
  }

  // A name:token list from the file named by `file_flag`, else from the variable `env`;
  // nullopt after reporting a problem.
  std::optional<std::map<std::string, std::string>> TokenList(const char* file_flag,
                                                              const char* env, Config& config) {
    std::string text;
    std::string origin;
    if (auto file = Get(file_flag)) {
      auto content = ReadSecretFile(file->text);
      if (!content.ok()) {
        Problem(file->origin, content.status().message());
        return std::nullopt;
      }
      text = *content;
      origin = fmt::format("{} '{}'", file->origin, file->text);
      config.secret_files.push_back(file->text);
    } else if (auto value = Env(env)) {
      text = *value;
      origin = env;
    }
    auto tokens = ParseApiTokens(text);
    if (!tokens.ok()) {
      Problem(origin, tokens.status().message());
      return std::nullopt;
    }
    return std::move(*tokens);
  }

  void ParseApiTokenSetting(Config& config) {
    auto tokens = TokenList("api-tokens-file", kApiTokensEnv, config);
    if (!tokens) return;
    if (tokens->empty()) {
      problems_.push_back(
          "no API tokens: set SENDQ_API_TOKENS (or --api-tokens-file) to name:token,... so that "
          "producers can authenticate; sendq does not serve an unauthenticated API");
      return;
    }
    config.api_tokens = std::move(*tokens);
  }

  void ParseAdminTokenSetting(Config& config) {
    auto tokens = TokenList("admin-tokens-file", kAdminTokensEnv, config);
    if (!tokens) return;
    for (const auto& [name, token] : *tokens) {
      for (const auto& [producer, producer_token] : config.api_tokens) {
        if (token == producer_token) {
          problems_.push_back(
              fmt::format("admin '{}' has the token of producer '{}': an admin "
                          "token must be its own",
                          name, producer));
          return;
        }
      }
    }
    config.admin_tokens = std::move(*tokens);
  }

  // A duration, or "off" (0).
  void OptionalDuration(const char* flag, DurationMs& out) {
    auto raw = Get(flag);
    if (!raw) return;
    if (raw->text == "off" || raw->text == "0") {
      out = 0;
      return;
    }
    Duration(flag, out);
  }

  void Int(const char* flag, int64_t min, int64_t max, int& out) {
    auto raw = Get(flag);
    if (!raw) return;
    auto n = ParseNonNegative(raw->text);
    if (!n || *n < min || *n > max) {
      Problem(raw->origin,
              max == INT_MAX
                  ? fmt::format("must be an integer of at least {}, got '{}'", min, raw->text)
                  : fmt::format("must be an integer from {} to {}, got '{}'", min, max, raw->text));
      return;
    }
    out = static_cast<int>(*n);
  }

  // False when the value is bad, so that relations between durations are not checked.
  bool Duration(const char* flag, DurationMs& out) {
    auto raw = Get(flag);
    if (!raw) return true;
    auto d = ParseDuration(raw->text);
    if (!d.ok()) {
      Problem(raw->origin, d.status().message());
      return false;
    }
    if (*d <= 0) {
      Problem(raw->origin, fmt::format("must be greater than zero, got '{}'", raw->text));
      return false;
    }
    out = *d;
    return true;
  }

  void CheckDurationRelations(const Config& config) {
    if (config.backoff_base > config.backoff_max) {
      problems_.push_back(fmt::format("--backoff-base ({}) must not exceed --backoff-max ({})",
                                      FormatDuration(config.backoff_base),
                                      FormatDuration(config.backoff_max)));
    }
    if (config.lease <= config.upstream_timeout) {
      problems_.push_back(fmt::format(
          "--lease ({}) must be longer than --upstream-timeout ({}): a lease that can run out "
          "while the request to AgentPhone is still in flight would let a second worker send "
          "the same message",
          FormatDuration(config.lease), FormatDuration(config.upstream_timeout)));
    }
  }

  bool Choice(const char* flag, std::initializer_list<const char*> allowed, std::string& out) {
    auto raw = Get(flag);
    if (!raw) return true;
    std::string list;
    for (const char* choice : allowed) {
      if (raw->text == choice) {
        out = raw->text;
        return true;
      }
      list += list.empty() ? choice : std::string("|") + choice;
    }
    Problem(raw->origin, fmt::format("must be one of {}, got '{}'", list, raw->text));
    return false;
  }

  const std::map<std::string, std::string>& env_;
  std::vector<Setting> settings_;
  std::vector<std::string> problems_;
};

}  // namespace

Result<Config> ParseServeConfig(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& env,
                                std::string* help_text) {
  CLI::App app("Run the sendq API and its delivery workers.", "sendq serve");
  app.set_help_flag("-h,--help", "show this help and exit");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.footer(
      "Secrets come from the environment or files, never from flags:\n"
      "  SENDQ_UPSTREAM_TOKEN  the AgentPhone API key (or --upstream-token-file)\n"
      "  SENDQ_API_TOKENS      producer tokens, name:token,name:token (or --api-tokens-file)\n"
      "  SENDQ_ADMIN_TOKENS    admin tokens, name:token,name:token (or --admin-tokens-file)\n"
      "A flag wins over its environment variable. Durations: 250ms, 30s, 5m, 24h, 1h30m.");
  ServeParser parser(env);
  parser.Declare(app);

  try {
    // CLI11 consumes its argument vector from the back.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    if (help_text != nullptr) *help_text = app.help();
    return Config{};
  } catch (const CLI::Error& e) {
    return Status::InvalidArgument(e.what());
  } catch (const std::exception& e) {
    return Status::InvalidArgument(e.what());
  }
  return parser.Build();
}

Result<std::map<std::string, std::string>> ParseApiTokens(const std::string& text) {
  std::map<std::string, std::string> tokens;
  std::map<std::string, int> position_of_name;
  std::map<std::string, int> position_of_token;
  int position = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find_first_of(",\n", start);
    if (end == std::string::npos) end = text.size();
    std::string entry = Trim(text.substr(start, end - start));
    start = end + 1;
    ++position;
    if (entry.empty()) continue;  // tolerate trailing commas and blank lines

    size_t colon = entry.find(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument(
          fmt::format("API token entry {}: expected name:token", position));
    }
    std::string name = Trim(entry.substr(0, colon));
    std::string token = Trim(entry.substr(colon + 1));
    // Until the token is known to be valid the name is not echoed either: the entry may be
    // written the wrong way round (token:name), and its "name" then is the secret.
    if (!IsTokenName(name)) {
      return Status::InvalidArgument(fmt::format(
          "API token entry {}: the name must be letters, digits, '_', '.' or '-'", position));
    }
    if (token.empty()) {
      return Status::InvalidArgument(
          fmt::format("API token entry {}: the token after the ':' is empty", position));
    }
    if (token.size() < kMinApiTokenLength) {
      return Status::InvalidArgument(fmt::format(
          "API token entry {}: the token after the ':' must be at least {} characters (entries "
          "are name:token)",
          position, kMinApiTokenLength));
    }
    if (HasSpaceOrControl(token)) {
      return Status::InvalidArgument(fmt::format(
          "API token entry {}: the token contains whitespace or control characters", position));
    }
    if (auto it = position_of_name.find(name); it != position_of_name.end()) {
      return Status::InvalidArgument(fmt::format(
          "API token entries {} and {} both use the name '{}'", it->second, position, name));
    }
    if (auto it = position_of_token.find(token); it != position_of_token.end()) {
      return Status::InvalidArgument(fmt::format(
          "API token entries {} and {} ('{}') have the same token", it->second, position, name));
    }
    position_of_name[name] = position;
    position_of_token[token] = position;
    tokens[name] = token;
  }
  return tokens;
}

}  // namespace sendq
