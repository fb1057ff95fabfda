// The client's pure parts: --url, the token sources, and list filters as a query.
#include <doctest/doctest.h>

#include <fstream>

#include "cli/client.h"
#include "cli/command_runs.h"
#include "testutil.h"

namespace sendq::cli {
namespace {

TEST_CASE("ParseBaseUrl") {
  Result<BaseUrl> plain = ParseBaseUrl("http://127.0.0.1:8080");
  REQUIRE(plain.ok());
  CHECK(plain->origin == "http://127.0.0.1:8080");
  CHECK(plain->prefix == "");
  Result<BaseUrl> prefixed = ParseBaseUrl("https://queue.example.com/sendq/");
  REQUIRE(prefixed.ok());
  CHECK(prefixed->origin == "https://queue.example.com");
  CHECK(prefixed->prefix == "/sendq");
  CHECK(ParseBaseUrl("http://[::1]:9090").ok());
  for (const char* bad : {"127.0.0.1:8080", "ftp://host", "http://", "http://:80", "http://host:0",
                          "http://host:99999", "http://host:", "http://u:p@host",
                          "http://host/?q=1", "http://[::1", "http://ho st"}) {
    Result<BaseUrl> parsed = ParseBaseUrl(bad);
    CHECK_MESSAGE(!parsed.ok(), bad);
    if (!parsed.ok()) CHECK(parsed.status().message().find("--url") != std::string::npos);
  }
}

TEST_CASE("ConnectClient: the token's sources, and errors that never show it") {
  test::TempDir dir;
  const std::string secret = "s3cret-token-value";
  {
    std::ofstream(dir.File("token")) << "  " << secret << "\t\nsecond line\n";
    std::ofstream(dir.File("empty")) << "\n";
  }
  CommonOptions options;
  // The environment, the flag, the file.
  CHECK(ConnectClient(options, {{"SENDQ_TOKEN", secret}}).ok());
  options.token = secret;
  CHECK(ConnectClient(options, {}).ok());
  options.token.clear();
  options.token_file = dir.File("token");
  Result<std::unique_ptr<ApiClient>> from_file = ConnectClient(options, {});
  REQUIRE(from_file.ok());
  CHECK((*from_file)->url() == kDefaultUrl);
  options.url = "http://10.0.0.1:9000";
  CHECK((*ConnectClient(options, {{"SENDQ_URL", "http://x:1"}}))->url() == "http://10.0.0.1:9000");
  options.url.clear();
  CHECK((*ConnectClient(options, {{"SENDQ_URL", "http://x:1"}}))->url() == "http://x:1");

  auto error_of = [](const CommonOptions& o, const std::map<std::string, std::string>& env) {
    Result<std::unique_ptr<ApiClient>> r = ConnectClient(o, env);
    REQUIRE(!r.ok());
    return r.status().message();
  };
  CommonOptions none;
  CHECK(error_of(none, {}).find("no token") != std::string::npos);
  CommonOptions both;
  both.token = secret;
  both.token_file = dir.File("token");
  CHECK(error_of(both, {}).find("not both") != std::string::npos);
  CommonOptions empty_file;
  empty_file.token_file = dir.File("empty");
  CHECK(error_of(empty_file, {}).find("no token") != std::string::npos);
  CommonOptions missing_file;
  missing_file.token_file = dir.File("missing");
  CHECK(error_of(missing_file, {}).find("cannot read") != std::string::npos);
  CommonOptions spaced;
  spaced.token = "two words";
  const std::string spaced_error = error_of(spaced, {});
  CHECK(spaced_error.find("white space") != std::string::npos);
  CHECK(spaced_error.find("two words") == std::string::npos);
  CommonOptions bad_url;
  bad_url.token = secret;
  bad_url.url = "localhost:8080";
  const std::string url_error = error_of(bad_url, {});
  CHECK(url_error.find("--url") != std::string::npos);
  CHECK(url_error.find(secret) == std::string::npos);
}

TEST_CASE("FilterQuery: every filter, percent-encoded") {
  CHECK(FilterQuery({}) == "");
  ListFilters f;
  f.status = {"queued", "failed"};
  f.agent_id = "agent 1";
  f.to = "+14155552671";
  f.provider_message_id = "msg_1";
  f.ordering_key = "a|b";
  f.priority = "high";
  f.scheduled = "true";
  f.created_after = "2026-01-15T12:00:00Z";
  f.created_before = "1767225600000";
  f.producer = "shop";
  CHECK(FilterQuery(f) ==
        "status=queued&status=failed&agent_id=agent%201&to_number=%2B14155552671&"
        "provider_message_id=msg_1&ordering_key=a%7Cb&priority=high&scheduled=true&"
        "created_after=2026-01-15T12%3A00%3A00Z&created_before=1767225600000&producer=shop");
}

}  // namespace
}  // namespace sendq::cli
