// The README's example, run as written, so it cannot rot.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "scenario.h"

namespace sendq::test {
namespace {

// The shell code between the readme-example markers, without the ``` fences.
std::string ReadmeExample() {
  std::ifstream in(SourceDir() + "/README.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  const std::string begin = "<!-- readme-example:begin -->";
  const std::string end = "<!-- readme-example:end -->";
  size_t from = readme.find(begin);
  size_t to = readme.find(end);
  REQUIRE(from != std::string::npos);
  REQUIRE(to != std::string::npos);
  std::string block = readme.substr(from + begin.size(), to - from - begin.size());
  size_t code = block.find('\n', block.find("```"));
  size_t code_end = block.rfind("```");
  REQUIRE(code != std::string::npos);
  REQUIRE(code_end > code);
  return block.substr(code + 1, code_end - code - 1);
}

TEST_CASE("readme: the documented curl example queues a message that gets sent") {
  Scenario s;
  const std::string script = ReadmeExample();
  REQUIRE(script.find("curl") != std::string::npos);
  ChildProcess shell({"/bin/bash", "-euo", "pipefail", "-c", script},
                     {{"SENDQ_URL", s.sendq->url()}, {"SENDQ_TOKEN", kTestApiToken}}, s.dir.path());
  auto status = shell.Wait(30'000);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  // curl prints the record without a trailing newline; the line completes when stdout closes.
  auto output = shell.WaitForLine(Stream::kStdout, "\"id\"", 30'000);
  REQUIRE(output.has_value());
  nlohmann::json record = nlohmann::json::parse(*output);
  CHECK(record.at("status") == "queued");
  CHECK(record.at("provider_message_id").is_null());
  const std::string id = record.at("id");
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
}

}  // namespace
}  // namespace sendq::test
