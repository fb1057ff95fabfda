// Redacting secrets and bearer credentials from text an upstream may echo.
#include "util/redact.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace sendq {
namespace {

TEST_CASE("RedactSecrets: every occurrence of every secret") {
  CHECK(RedactSecrets("key=ap_secret_1 again ap_secret_1 and tok-2.", {"ap_secret_1", "tok-2"}) ==
        "key=*** again *** and ***.");
  CHECK(RedactSecrets("ap_secret_1ap_secret_1", {"ap_secret_1"}) == "******");
}

TEST_CASE("RedactSecrets: text without secrets is unchanged") {
  const std::string text = "{\"error\":{\"message\":\"Service temporarily unavailable\"}}";
  CHECK(RedactSecrets(text, {"ap_secret_1"}) == text);
  CHECK(RedactSecrets(text, {}) == text);
  CHECK(RedactSecrets("", {"ap_secret_1"}).empty());
}

TEST_CASE("RedactSecrets: empty secrets are ignored") {
  CHECK(RedactSecrets("abc", {""}) == "abc");
  CHECK(RedactSecrets("abc secret_x", {"", "secret_x"}) == "abc ***");
}

TEST_CASE("RedactSecrets: a secret containing another is replaced whole") {
  CHECK(RedactSecrets("tok_abc_long", {"tok_abc", "tok_abc_long"}) == "***");
  CHECK(RedactSecrets("tok_abc_long", {"tok_abc_long", "tok_abc"}) == "***");
  CHECK(RedactSecrets("tok_abc tok_abc_long", {"tok_abc", "tok_abc_long"}) == "*** ***");
}

TEST_CASE("RedactSecrets: bearer credentials, whatever the token") {
  CHECK(RedactSecrets("Authorization: Bearer sk_live_9f8e7d", {}) == "Authorization: Bearer ***");
  CHECK(RedactSecrets("authorization: bearer abc.DEF-123_~+/=", {}) == "authorization: Bearer ***");
  CHECK(RedactSecrets("BEARER\tabc def", {}) == "Bearer *** def");
  CHECK(RedactSecrets("Bearer    abc", {}) == "Bearer ***");
  CHECK(RedactSecrets("x Bearer a\nBearer b", {}) == "x Bearer ***\nBearer ***");
}

TEST_CASE("RedactSecrets: a bearer token ends at a quote or separator") {
  CHECK(RedactSecrets(R"({"authorization":"Bearer abc123","x":1})", {}) ==
        R"({"authorization":"Bearer ***","x":1})");
  CHECK(RedactSecrets(R"({"m":"got \"Bearer abc123\" here"})", {}) ==
        R"({"m":"got \"Bearer ***\" here"})");
  CHECK(RedactSecrets("<td>Bearer abc123</td>", {}) == "<td>Bearer ***</td>");
  CHECK(RedactSecrets("Bearer abc, Bearer def;", {}) == "Bearer ***, Bearer ***;");
}

TEST_CASE("RedactSecrets: 'Bearer' without a token is left alone") {
  CHECK(RedactSecrets("Bearer", {}) == "Bearer");
  CHECK(RedactSecrets("Bearer ", {}) == "Bearer ");
  CHECK(RedactSecrets("Bearer \"", {}) == "Bearer \"");
  CHECK(RedactSecrets("Bearertoken", {}) == "Bearertoken");
  CHECK(RedactSecrets("bear abc", {}) == "bear abc");
}

TEST_CASE("RedactSecrets: a configured secret after Bearer goes whole, odd characters and all") {
  CHECK(RedactSecrets("Bearer ab,cd\"ef rest", {"ab,cd\"ef"}) == "Bearer *** rest");
}

TEST_CASE("RedactSecrets: a second pass changes nothing") {
  const std::vector<std::string> secrets = {"ap_secret_1"};
  std::string once = RedactSecrets("Bearer ap_secret_1 and ap_secret_1", secrets);
  CHECK(once == "Bearer *** and ***");
  CHECK(RedactSecrets(once, secrets) == once);
}

}  // namespace
}  // namespace sendq
