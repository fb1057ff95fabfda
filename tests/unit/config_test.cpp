#include "cli/config.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "testutil.h"

namespace sendq {
namespace {

using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

constexpr char kUpstreamToken[] = "ap_live_upstream_secret";
constexpr char kProducerToken[] = "producer-secret-123";

// The smallest environment sendq starts with.
Env BaseEnv() {
  return {{"SENDQ_UPSTREAM_TOKEN", kUpstreamToken},
          {"SENDQ_API_TOKENS", std::string("billing:") + kProducerToken}};
}

Result<Config> Parse(const Args& args, const Env& env = BaseEnv()) {
  std::string help;
  return ParseServeConfig(args, env, &help);
}

// Parses and expects an error whose message contains every one of `needles`.
std::string ExpectError(const Args& args, const Env& env = BaseEnv()) {
  auto result = Parse(args, env);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Status::Code::kInvalidArgument);
  return result.status().message();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

TEST_CASE("config: defaults") {
  auto result = Parse({});
  REQUIRE(result.ok());
  const Config& c = *result;
  Config d;
  CHECK(c.listen_host == "127.0.0.1");
  CHECK(c.listen_port == 8080);
  CHECK(c.db_path == d.db_path);
  CHECK(c.upstream_url == "https://api.agentphone.ai");
  CHECK(c.upstream_token == kUpstreamToken);
  CHECK(c.api_tokens == std::map<std::string, std::string>{{"billing", kProducerToken}});
  CHECK(c.workers == d.workers);
  CHECK(c.max_attempts == d.max_attempts);
  CHECK(c.max_age == d.max_age);
  CHECK(c.backoff_base == d.backoff_base);
  CHECK(c.backoff_max == d.backoff_max);
  CHECK(c.lease == d.lease);
  CHECK(c.upstream_timeout == d.upstream_timeout);
  CHECK(c.drain_timeout == d.drain_timeout);
  CHECK(c.on_unknown == OnUnknown::kRetry);
  CHECK(c.synchronous_full);
  CHECK(c.http_threads == d.http_threads);
  CHECK(c.max_connections == d.max_connections);
  CHECK(c.log_level == "info");
}

TEST_CASE("config: every option by flag") {
  test::TempDir dir;
  auto result = Parse({"--listen",
                       "0.0.0.0:0",
                       "--db=/var/lib/sendq/q.db",
                       "--upstream",
                       "http://127.0.0.1:9000/",
                       "--workers",
                       "4",
                       "--max-attempts",
                       "3",
                       "--max-age",
                       "1h30m",
                       "--backoff-base",
                       "250ms",
                       "--backoff-max",
                       "2m",
                       "--lease",
                       "45s",
                       "--upstream-timeout",
                       "10s",
                       "--drain-timeout",
                       "5s",
                       "--on-unknown=fail",
                       "--synchronous",
                       "normal",
                       "--http-threads",
                       "8",
                       "--max-connections",
                       "100",
                       "--log-level",
                       "debug"});
  REQUIRE(result.ok());
  const Config& c = *result;
  CHECK(c.listen_host == "0.0.0.0");
  CHECK(c.listen_port == 0);
  CHECK(c.db_path == "/var/lib/sendq/q.db");
  CHECK(c.upstream_url == "http://127.0.0.1:9000");
  CHECK(c.workers == 4);
  CHECK(c.max_attempts == 3);
  CHECK(c.max_age == 90 * 60'000);
  CHECK(c.backoff_base == 250);
  CHECK(c.backoff_max == 120'000);
  CHECK(c.lease == 45'000);
  CHECK(c.upstream_timeout == 10'000);
  CHECK(c.drain_timeout == 5'000);
  CHECK(c.on_unknown == OnUnknown::kFail);
  CHECK_FALSE(c.synchronous_full);
  CHECK(c.http_threads == 8);
  CHECK(c.max_connections == 100);
  CHECK(c.log_level == "debug");
}

TEST_CASE("config: --on-unknown takes reconcile-or-fail, and refuses what it does not know") {
  auto result = Parse({"--on-unknown", "reconcile-or-fail"});
  REQUIRE(result.ok());
  CHECK(result->on_unknown == OnUnknown::kReconcileOrFail);
  CHECK_FALSE(Parse({"--on-unknown", "maybe"}).ok());
}

TEST_CASE("config: every option by environment") {
  Env env = BaseEnv();
  env["SENDQ_LISTEN"] = "[::1]:9090";
  env["SENDQ_DB"] = "/tmp/x.db";
  env["SENDQ_UPSTREAM_URL"] = "https://api.agentphone.to";
  env["SENDQ_WORKERS"] = "2";
  env["SENDQ_MAX_ATTEMPTS"] = "7";
  env["SENDQ_MAX_AGE"] = "2h";
  env["SENDQ_BACKOFF_BASE"] = "2s";
  env["SENDQ_BACKOFF_MAX"] = "2s";
  env["SENDQ_LEASE"] = "31s";
  env["SENDQ_UPSTREAM_TIMEOUT"] = "30s";
  env["SENDQ_DRAIN_TIMEOUT"] = "1m";
  env["SENDQ_ON_UNKNOWN"] = "fail";
  env["SENDQ_SYNCHRONOUS"] = "normal";
  env["SENDQ_HTTP_THREADS"] = "4096";
  env["SENDQ_MAX_CONNECTIONS"] = "8192";
  env["SENDQ_LOG_LEVEL"] = "warn";
  auto result = Parse({}, env);
  REQUIRE(result.ok());
  const Config& c = *result;
  CHECK(c.listen_host == "::1");
  CHECK(c.listen_port == 9090);
  CHECK(c.db_path == "/tmp/x.db");
  CHECK(c.upstream_url == "https://api.agentphone.to");
  CHECK(c.workers == 2);
  CHECK(c.max_attempts == 7);
  CHECK(c.max_age == 2 * 3'600'000);
  CHECK(c.backoff_base == 2000);
  CHECK(c.backoff_max == 2000);
  CHECK(c.lease == 31'000);
  CHECK(c.upstream_timeout == 30'000);
  CHECK(c.drain_timeout == 60'000);
  CHECK(c.on_unknown == OnUnknown::kFail);
  CHECK_FALSE(c.synchronous_full);
  CHECK(c.http_threads == 4096);
  CHECK(c.max_connections == 8192);
  CHECK(c.log_level == "warn");
}

TEST_CASE("config: a flag beats its environment variable") {
  Env env = BaseEnv();
  env["SENDQ_WORKERS"] = "2";
  env["SENDQ_LISTEN"] = "10.0.0.1:1";
  env["SENDQ_LEASE"] = "not a duration";  // ignored: the flag is given
  auto result = Parse({"--workers", "9", "--listen", "127.0.0.1:7000", "--lease", "90s"}, env);
  REQUIRE(result.ok());
  CHECK(result->workers == 9);
  CHECK(result->listen_port == 7000);
  CHECK(result->lease == 90'000);
}

TEST_CASE("config: an empty environment variable counts as unset") {
  Env env = BaseEnv();
  env["SENDQ_WORKERS"] = "";
  auto result = Parse({}, env);
  REQUIRE(result.ok());
  CHECK(result->workers == Config().workers);
}

TEST_CASE("config: the last of a repeated flag wins") {
  auto result = Parse({"--workers", "3", "--workers", "5"});
  REQUIRE(result.ok());
  CHECK(result->workers == 5);
}

TEST_CASE("config: --help") {
  std::string help;
  auto result = ParseServeConfig({"--help"}, {}, &help);
  REQUIRE(result.ok());
  CHECK(Contains(help, "--workers"));
  CHECK(Contains(help, "SENDQ_WORKERS"));
  CHECK(Contains(help, "SENDQ_API_TOKENS"));
  CHECK(result->workers == Config().workers);
  CHECK(result->api_tokens.empty());
}

TEST_CASE("config: bad values name the option") {
  struct Case {
    Args args;
    const char* needle;
  };
  const Case cases[] = {
      {{"--listen", "localhost"}, "--listen"},
      {{"--listen", "::1:8080"}, "--listen"},
      {{"--listen", "host:99999"}, "--listen"},
      {{"--listen", "host:-1"}, "--listen"},
      {{"--listen", ":8080"}, "--listen"},
      {{"--listen", "[::1]8080"}, "--listen"},
      {{"--db", ""}, "--db"},
      {{"--upstream", "ftp://x"}, "--upstream"},
      {{"--upstream", "api.agentphone.ai"}, "--upstream"},
      {{"--upstream", "https://"}, "--upstream"},
      {{"--workers", "0"}, "--workers"},
      {{"--workers", "1025"}, "--workers"},
      {{"--workers", "many"}, "--workers"},
      {{"--workers", "-4"}, "--workers"},
      {{"--max-attempts", "0"}, "--max-attempts"},
      {{"--max-attempts", "99999999999999999999"}, "--max-attempts"},
      {{"--http-threads", "4097"}, "--http-threads"},
      {{"--max-connections", "1000001"}, "--max-connections"},
      {{"--max-header-bytes", "9000", "--max-head-bytes", "4096"}, "--max-header-bytes"},
      {{"--max-age", "0s"}, "--max-age"},
      {{"--max-age", "10"}, "--max-age"},
      {{"--backoff-base", "1d"}, "--backoff-base"},
      {{"--backoff-max", "fast"}, "--backoff-max"},
      {{"--lease", ""}, "--lease"},
      {{"--upstream-timeout", "-5s"}, "--upstream-timeout"},
      {{"--drain-timeout", "0ms"}, "--drain-timeout"},
      {{"--on-unknown", "ignore"}, "--on-unknown"},
      {{"--synchronous", "off"}, "--synchronous"},
      {{"--log-level", "trace"}, "--log-level"},
      {{"--no-such-flag"}, "--no-such-flag"},
      {{"--workers"}, "--workers"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args[0]);
    CAPTURE(c.args.size() > 1 ? c.args[1] : "");
    CHECK(Contains(ExpectError(c.args), c.needle));
  }
}

TEST_CASE("config: bad environment values name the variable") {
  for (const char* name : {"SENDQ_WORKERS", "SENDQ_LEASE", "SENDQ_LISTEN", "SENDQ_ON_UNKNOWN",
                           "SENDQ_UPSTREAM_URL", "SENDQ_HTTP_THREADS", "SENDQ_LOG_LEVEL"}) {
    CAPTURE(name);
    Env env = BaseEnv();
    env[name] = "bogus";
    CHECK(Contains(ExpectError({}, env), name));
  }
}

TEST_CASE("config: every problem is reported") {
  std::string message = ExpectError({"--workers", "0", "--log-level", "loud"});
  CHECK(Contains(message, "--workers"));
  CHECK(Contains(message, "--log-level"));
}

TEST_CASE("config: durations relate") {
  SUBCASE("backoff base may equal but not exceed the maximum") {
    CHECK(Parse({"--backoff-base", "5s", "--backoff-max", "5s"}).ok());
    std::string message = ExpectError({"--backoff-base", "10s", "--backoff-max", "5s"});
    CHECK(Contains(message, "--backoff-base"));
    CHECK(Contains(message, "--backoff-max"));
  }
  SUBCASE("the lease must outlast the upstream timeout") {
    CHECK(Parse({"--lease", "31s", "--upstream-timeout", "30s"}).ok());
    for (const char* lease : {"30s", "10s"}) {
      CAPTURE(lease);
      std::string message = ExpectError({"--lease", lease, "--upstream-timeout", "30s"});
      CHECK(Contains(message, "--lease"));
      CHECK(Contains(message, "--upstream-timeout"));
      CHECK(Contains(message, "second worker"));
    }
    // The default lease against a longer timeout.
    CHECK(Contains(ExpectError({"--upstream-timeout", "2m"}), "--lease"));
  }
}

TEST_CASE("config: the AgentPhone key") {
  test::TempDir dir;
  SUBCASE("missing") {
    Env env = BaseEnv();
    env.erase("SENDQ_UPSTREAM_TOKEN");
    std::string message = ExpectError({}, env);
    CHECK(Contains(message, "SENDQ_UPSTREAM_TOKEN"));
    CHECK(Contains(message, "--upstream-token-file"));
  }
  SUBCASE("from a file, trailing newline trimmed, winning over the environment") {
    WriteFile(dir.File("key"), "ap_from_file\n");
    auto result = Parse({"--upstream-token-file", dir.File("key")});
    REQUIRE(result.ok());
    CHECK(result->upstream_token == "ap_from_file");
  }
  SUBCASE("file by environment") {
    WriteFile(dir.File("key"), "ap_from_env_file \r\n");
    Env env = BaseEnv();
    env.erase("SENDQ_UPSTREAM_TOKEN");
    env["SENDQ_UPSTREAM_TOKEN_FILE"] = dir.File("key");
    auto result = Parse({}, env);
    REQUIRE(result.ok());
    CHECK(result->upstream_token == "ap_from_env_file");
  }
  SUBCASE("unreadable file") {
    std::string message = ExpectError({"--upstream-token-file", dir.File("absent")});
    CHECK(Contains(message, "--upstream-token-file"));
    CHECK(Contains(message, dir.File("absent")));
  }
  SUBCASE("empty file") {
    WriteFile(dir.File("key"), "\n\n");
    CHECK(Contains(ExpectError({"--upstream-token-file", dir.File("key")}), "empty"));
  }
  SUBCASE("a key with a line break inside is refused without echoing it") {
    WriteFile(dir.File("key"), "ap_first\nap_second\n");
    std::string message = ExpectError({"--upstream-token-file", dir.File("key")});
    CHECK_FALSE(Contains(message, "ap_first"));
    CHECK_FALSE(Contains(message, "ap_second"));
  }
}

TEST_CASE("config: API tokens are required") {
  Env env = BaseEnv();
  env.erase("SENDQ_API_TOKENS");
  CHECK(Contains(ExpectError({}, env), "SENDQ_API_TOKENS"));
  env["SENDQ_API_TOKENS"] = " , ";
  CHECK(Contains(ExpectError({}, env), "SENDQ_API_TOKENS"));
}

TEST_CASE("config: API tokens from a file win over the environment") {
  test::TempDir dir;
  WriteFile(dir.File("tokens"), "alpha:alpha-token-1,\nbeta:beta-token-22\n");
  auto result = Parse({"--api-tokens-file", dir.File("tokens")});
  REQUIRE(result.ok());
  CHECK(result->api_tokens ==
        std::map<std::string, std::string>{{"alpha", "alpha-token-1"}, {"beta", "beta-token-22"}});

  WriteFile(dir.File("bad"), "alpha:short\n");
  std::string message = ExpectError({"--api-tokens-file", dir.File("bad")});
  CHECK(Contains(message, "--api-tokens-file"));
  CHECK_FALSE(Contains(message, "short"));
}

TEST_CASE("config: ParseApiTokens") {
  SUBCASE("valid, with whitespace around entries") {
    auto tokens = ParseApiTokens(" billing:tok_billing_1 , ops.team-2 : tok_ops_22 ,");
    REQUIRE(tokens.ok());
    CHECK(*tokens == std::map<std::string, std::string>{{"billing", "tok_billing_1"},
                                                        {"ops.team-2", "tok_ops_22"}});
  }
  SUBCASE("a token may contain a colon") {
    auto tokens = ParseApiTokens("a:abc:defgh");
    REQUIRE(tokens.ok());
    CHECK(tokens->at("a") == "abc:defgh");
  }
  SUBCASE("empty text gives no tokens") {
    auto tokens = ParseApiTokens("");
    REQUIRE(tokens.ok());
    CHECK(tokens->empty());
  }
  SUBCASE("errors identify the entry and never contain the token") {
    struct Case {
      std::string text;
      std::string secret;
      std::string needle;
    };
    const Case cases[] = {
        {"ok:tok_ok_valid,secretvaluewithoutcolon", "secretvaluewithoutcolon", "entry 2"},
        {"bad name:tok_secret_1", "tok_secret_1", "entry 1"},
        {"tok/secret_2:billing-token", "tok/secret_2", "entry 1"},
        {"a/b:tok_secret_3", "tok_secret_3", "entry 1"},
        {"billing:", "", "entry 1"},
        {"billing:s3cr3t", "s3cr3t", "entry 1"},
        {"billing:tok secret", "tok secret", "entry 1"},
        {"billing:tok_secret_4,billing:tok_secret_5", "tok_secret_", "'billing'"},
        {"a:tok_secret_6,b:tok_secret_6", "tok_secret_6", "entries 1 and 2"},
    };
    for (const Case& c : cases) {
      CAPTURE(c.needle);
      auto tokens = ParseApiTokens(c.text);
      REQUIRE_FALSE(tokens.ok());
      const std::string& message = tokens.status().message();
      CHECK(Contains(message, c.needle));
      if (!c.secret.empty()) CHECK_FALSE(Contains(message, c.secret));
    }
  }
  SUBCASE("an entry written token:name does not echo the token") {
    for (const char* text : {"longsecrettoken123:demo", "ok:tok_ok_valid,longsecrettoken123:demo",
                             "longsecrettoken123:", "longsecrettoken123:de mo"}) {
      CAPTURE(text);
      auto tokens = ParseApiTokens(text);
      REQUIRE_FALSE(tokens.ok());
      CHECK_FALSE(Contains(tokens.status().message(), "longsecrettoken123"));
      CHECK(Contains(tokens.status().message(), "entry"));
    }
  }
}

TEST_CASE("config: --upstream accepts scheme://host[:port] with an optional trailing slash") {
  struct Case {
    const char* url;
    const char* stored;
  };
  const Case cases[] = {
      {"https://api.agentphone.ai", "https://api.agentphone.ai"},
      {"https://api.agentphone.ai/", "https://api.agentphone.ai"},
      {"https://api.agentphone.ai:8443", "https://api.agentphone.ai:8443"},
      {"http://127.0.0.1:1234", "http://127.0.0.1:1234"},
      {"http://127.0.0.1:1234/", "http://127.0.0.1:1234"},
      {"http://localhost:9000", "http://localhost:9000"},
      {"http://[::1]:9000", "http://[::1]:9000"},
      {"https://[2001:db8::1]", "https://[2001:db8::1]"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    auto result = Parse({"--upstream", c.url});
    REQUIRE(result.ok());
    CHECK(result->upstream_url == c.stored);
    CHECK(result->warnings.empty());
  }
}

TEST_CASE("config: --upstream refuses paths, credentials, queries and upper-case schemes") {
  struct Case {
    const char* url;
    const char* needle;
  };
  const Case cases[] = {
      {"https://api.agentphone.ai/v1/messages", "path"},
      {"https://api.agentphone.ai/v1", "path"},
      {"https://api.agentphone.ai//", "path"},
      {"https://api.agentphone.ai?x=1", "query"},
      {"https://api.agentphone.ai/?x=1", "query"},
      {"https://api.agentphone.ai#frag", "fragment"},
      {"HTTPS://api.agentphone.ai", "lower case"},
      {"Http://127.0.0.1:9000", "lower case"},
      {"https://api.agentphone.ai:0", "HOST[:PORT]"},
      {"https://api.agentphone.ai:65536", "HOST[:PORT]"},
      {"https://api.agentphone.ai:https", "HOST[:PORT]"},
      {"https://api.agentphone.ai:", "HOST[:PORT]"},
      {"http://::1:9000", "HOST[:PORT]"},
      {"http://[::1", "HOST[:PORT]"},
      {"http://[nothex]:80", "HOST[:PORT]"},
      {"https:///v1", "no host"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    std::string message = ExpectError({"--upstream", c.url});
    CHECK(Contains(message, "--upstream"));
    CHECK(Contains(message, c.needle));
    // Every refusal says what is expected, in lower case.
    CHECK(Contains(message, "https://HOST[:PORT]"));
  }
}

TEST_CASE("config: --upstream with credentials is refused without echoing them") {
  const char* urls[] = {
      "https://user:hunter2secret@api.agentphone.ai",
      "https://hunter2secret@api.agentphone.ai",
      "https://user:hunter2secret@api.agentphone.ai/v1/messages",
      "https://user:hun/ter2secret@api.agentphone.ai",
      "HTTPS://user:hunter2secret@api.agentphone.ai",
      "ftp://user:hunter2secret@api.agentphone.ai",
      "user:hunter2secret@api.agentphone.ai",
      "https://user:hunter2 secret@api.agentphone.ai",
      "https://api.agentphone.ai/?key=hunter2secret",
  };
  for (const char* url : urls) {
    CAPTURE(url);
    std::string message = ExpectError({"--upstream", url});
    CHECK_FALSE(Contains(message, "hunter2"));
  }
  std::string message = ExpectError({"--upstream", "https://user:hunter2secret@api.agentphone.ai"});
  CHECK(Contains(message, "credentials"));
  CHECK(Contains(message, "https://***@api.agentphone.ai"));
  Env env = BaseEnv();
  env["SENDQ_UPSTREAM_URL"] = "https://user:hunter2secret@api.agentphone.ai";
  message = ExpectError({}, env);
  CHECK(Contains(message, "SENDQ_UPSTREAM_URL"));
  CHECK_FALSE(Contains(message, "hunter2secret"));
}

TEST_CASE("config: --upstream over http:// to a non-loopback host is a warning") {
  for (const char* url :
       {"http://api.agentphone.ai", "http://10.0.0.5:8080", "http://[2001:db8::1]",
        "http://128.0.0.1", "http://localhost.example.com"}) {
    CAPTURE(url);
    auto result = Parse({"--upstream", url});
    REQUIRE(result.ok());
    REQUIRE(result->warnings.size() == 1);
    CHECK(Contains(result->warnings[0], "cleartext"));
    CHECK(Contains(result->warnings[0], "--upstream"));
  }
  for (const char* url :
       {"http://127.0.0.1:9000", "http://127.8.9.10", "http://localhost", "http://LOCALHOST:80",
        "http://[::1]:9000", "https://api.agentphone.ai"}) {
    CAPTURE(url);
    auto result = Parse({"--upstream", url});
    REQUIRE(result.ok());
    CHECK(result->warnings.empty());
  }
}

}  // namespace
}  // namespace sendq

TEST_CASE("ParseApiTokens: a token may contain '%', kept as written (headers are not decoded)") {
  auto tokens = sendq::ParseApiTokens("alice:abc%41defgh");
  REQUIRE(tokens.ok());
  CHECK(tokens->at("alice") == "abc%41defgh");
}
