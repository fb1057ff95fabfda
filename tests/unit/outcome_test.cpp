// Classify and ParseUpstreamErrorMessage: what an upstream answer means for a message.
#include <doctest/doctest.h>

#include <string>

#include "queue/retry_policy.h"

namespace sendq {
namespace {

UpstreamResponse Responded(int status, std::string body = "") {
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kResponded;
  r.http_status = status;
  r.body = std::move(body);
  return r;
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

TEST_CASE("Classify: transport failures") {
  UpstreamResponse not_sent;
  not_sent.transport = UpstreamResponse::Transport::kNotSent;
  not_sent.transport_error = "connection refused";
  CHECK(Classify(not_sent) == OutcomeClass::kUnreachable);

  UpstreamResponse no_response;
  no_response.transport = UpstreamResponse::Transport::kNoResponse;
  no_response.transport_error = "read timeout";
  CHECK(Classify(no_response) == OutcomeClass::kUnknown);

  // The transport decides, whatever status field happens to hold.
  not_sent.http_status = 200;
  CHECK(Classify(not_sent) == OutcomeClass::kUnreachable);
  no_response.http_status = 200;
  CHECK(Classify(no_response) == OutcomeClass::kUnknown);
}

TEST_CASE("Classify: 2xx is sent") {
  for (int status : {200, 201, 202, 204, 299}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kSent);
  }
}

TEST_CASE("Classify: the statuses AgentPhone advises retrying") {
  for (int status : {408, 429, 500, 502, 503, 504}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kRetryable);
  }
}

TEST_CASE("Classify: other 5xx are retryable") {
  for (int status : {501, 505, 507, 511, 599}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kRetryable);
  }
}

TEST_CASE("Classify: auth, permission and balance pause the upstream") {
  for (int status : {401, 402, 403}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kUpstreamPaused);
  }
}

TEST_CASE("Classify: other 4xx are permanent") {
  for (int status : {400, 404, 405, 409, 410, 413, 415, 422, 499}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kPermanent);
  }
}

TEST_CASE("Classify: 1xx and 3xx are permanent") {
  for (int status : {100, 101, 199, 300, 301, 302, 304, 307, 308, 399}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kPermanent);
  }
}

TEST_CASE("Classify: a status outside HTTP's range is an unknown outcome") {
  for (int status : {0, -1, 99, 600, 999}) {
    CAPTURE(status);
    CHECK(Classify(Responded(status)) == OutcomeClass::kUnknown);
  }
}

TEST_CASE("ParseUpstreamErrorMessage: detail as a string") {
  CHECK(ParseUpstreamErrorMessage(404, R"({"detail":"Agent not found"})") == "Agent not found");
  CHECK(ParseUpstreamErrorMessage(401, R"({"detail": "Invalid API key"})") == "Invalid API key");
}

TEST_CASE("ParseUpstreamErrorMessage: FastAPI validation list") {
  SUBCASE("one entry") {
    CHECK(
        ParseUpstreamErrorMessage(
            422,
            R"({"detail":[{"loc":["body","to_number"],"msg":"field required","type":"value_error.missing"}]})") ==
        "to_number: field required");
  }
  SUBCASE("several entries, nested and indexed locations") {
    const std::string body = R"({"detail":[
        {"loc":["body","to_number"],"msg":"field required","type":"missing"},
        {"loc":["body","recipients",2],"msg":"invalid phone","type":"value_error"},
        {"loc":["body","send_style","kind"],"msg":"bad enum","type":"enum"}]})";
    CHECK(ParseUpstreamErrorMessage(422, body) ==
          "to_number: field required; recipients.2: invalid phone; send_style.kind: bad enum");
  }
  SUBCASE("a location outside the body keeps its first element") {
    CHECK(ParseUpstreamErrorMessage(
              422, R"({"detail":[{"loc":["query","limit"],"msg":"not an integer"}]})") ==
          "query.limit: not an integer");
  }
  SUBCASE("no loc, or just body") {
    CHECK(ParseUpstreamErrorMessage(422, R"({"detail":[{"msg":"bad request"}]})") == "bad request");
    CHECK(ParseUpstreamErrorMessage(422, R"({"detail":[{"loc":["body"],"msg":"invalid json"}]})") ==
          "invalid json");
  }
  SUBCASE("entries without a msg are skipped") {
    CHECK(ParseUpstreamErrorMessage(
              422,
              R"({"detail":[{"loc":["body","x"]},"junk",{"loc":["body","y"],"msg":"bad y"}]})") ==
          "y: bad y");
  }
  SUBCASE("an empty list falls back to the body") {
    CHECK(ParseUpstreamErrorMessage(422, R"({"detail":[]})") == R"(HTTP 422: {"detail":[]})");
  }
}

TEST_CASE("ParseUpstreamErrorMessage: error envelope") {
  CHECK(
      ParseUpstreamErrorMessage(
          402,
          R"({"error":{"message":"Insufficient balance","code":"INSUFFICIENT_BALANCE","type":"billing"}})") ==
      "INSUFFICIENT_BALANCE: Insufficient balance");
  CHECK(
      ParseUpstreamErrorMessage(
          400,
          R"({"error":{"message":"Invalid number","code":"VALIDATION_ERROR","details":[{"field":"to_number","message":"bad","type":"x"}]}})") ==
      "VALIDATION_ERROR: Invalid number");
  CHECK(ParseUpstreamErrorMessage(502, R"({"error":{"message":"Carrier rejected"}})") ==
        "Carrier rejected");
  CHECK(ParseUpstreamErrorMessage(502, R"({"error":{"message":"Carrier rejected","code":42}})") ==
        "Carrier rejected");
}

TEST_CASE("ParseUpstreamErrorMessage: unreadable bodies fall back to a prefix") {
  CHECK(ParseUpstreamErrorMessage(500, "") == "HTTP 500");
  CHECK(ParseUpstreamErrorMessage(502, "Bad Gateway") == "HTTP 502: Bad Gateway");
  CHECK(ParseUpstreamErrorMessage(500, "{not json") == "HTTP 500: {not json");
  CHECK(ParseUpstreamErrorMessage(500, R"({"detail": )") == R"(HTTP 500: {"detail":)");
  // Valid JSON, but not one of the shapes.
  CHECK(ParseUpstreamErrorMessage(500, "[1,2,3]") == "HTTP 500: [1,2,3]");
  CHECK(ParseUpstreamErrorMessage(500, "\"oops\"") == "HTTP 500: \"oops\"");
  CHECK(ParseUpstreamErrorMessage(500, "42") == "HTTP 500: 42");
  CHECK(ParseUpstreamErrorMessage(500, "null") == "HTTP 500: null");
  CHECK(ParseUpstreamErrorMessage(500, R"({"message":"x"})") == R"(HTTP 500: {"message":"x"})");
  CHECK(ParseUpstreamErrorMessage(500, R"({"detail":42})") == R"(HTTP 500: {"detail":42})");
  CHECK(ParseUpstreamErrorMessage(500, R"({"detail":""})") == R"(HTTP 500: {"detail":""})");
  CHECK(ParseUpstreamErrorMessage(500, R"({"error":"boom"})") == R"(HTTP 500: {"error":"boom"})");
  CHECK(ParseUpstreamErrorMessage(500, R"({"error":{"code":"X"}})") ==
        R"(HTTP 500: {"error":{"code":"X"}})");
}

TEST_CASE("ParseUpstreamErrorMessage: whitespace-only and control characters") {
  CHECK(ParseUpstreamErrorMessage(503, "   \r\n") == "HTTP 503");
  CHECK(ParseUpstreamErrorMessage(503, "<html>\r\n<b>down</b>\n</html>\n") ==
        "HTTP 503: <html>  <b>down</b> </html>");
}

TEST_CASE("ParseUpstreamErrorMessage: a huge body is cut to 200 bytes") {
  const std::string body(100'000, 'x');
  const std::string message = ParseUpstreamErrorMessage(500, body);
  CHECK(message == "HTTP 500: " + std::string(200, 'x'));
}

TEST_CASE("ParseUpstreamErrorMessage: the cut does not split a UTF-8 sequence") {
  // 199 ASCII bytes then a 2-byte character that would end at byte 201.
  const std::string two_byte = std::string(199, 'a') + "\xC3\xA9" + "tail";
  CHECK(ParseUpstreamErrorMessage(500, two_byte) == "HTTP 500: " + std::string(199, 'a'));
  // 198 ASCII bytes then a 4-byte character.
  const std::string four_byte = std::string(198, 'a') + "\xF0\x9F\x98\x80" + "tail";
  CHECK(ParseUpstreamErrorMessage(500, four_byte) == "HTTP 500: " + std::string(198, 'a'));
  // A character that fits exactly is kept.
  const std::string fits = std::string(198, 'a') + "\xC3\xA9" + "tail";
  CHECK(ParseUpstreamErrorMessage(500, fits) == "HTTP 500: " + std::string(198, 'a') + "\xC3\xA9");
  // Many 3-byte characters: 66 fit in 200 bytes.
  std::string euros;
  for (int i = 0; i < 1000; ++i) euros += "\xE2\x82\xAC";
  std::string expected_euros;
  for (int i = 0; i < 66; ++i) expected_euros += "\xE2\x82\xAC";
  CHECK(ParseUpstreamErrorMessage(500, euros) == "HTTP 500: " + expected_euros);
}

TEST_CASE("ParseUpstreamErrorMessage: bytes that are not UTF-8 become U+FFFD") {
  const std::string message = ParseUpstreamErrorMessage(500, "bad \xFF\xC0 byte \xE2\x82");
  CHECK(message == "HTTP 500: bad \xEF\xBF\xBD\xEF\xBF\xBD byte \xEF\xBF\xBD\xEF\xBF\xBD");
  CHECK(IsValidUtf8(message));
  // Binary garbage of any length stays valid UTF-8 and within the limit.
  std::string binary;
  for (int i = 0; i < 5000; ++i) binary.push_back(static_cast<char>((i * 37) & 0xFF));
  const std::string m = ParseUpstreamErrorMessage(500, binary);
  CHECK(IsValidUtf8(m));
  CHECK(m.size() <= std::string("HTTP 500: ").size() + 200);
}

TEST_CASE("ParseUpstreamErrorMessage: deeply nested JSON does not crash") {
  const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
  const std::string message = ParseUpstreamErrorMessage(500, deep);
  CHECK(message == "HTTP 500: " + std::string(200, '['));
}

}  // namespace
}  // namespace sendq
