#include "queue/validation.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <string>

namespace sendq {
namespace {

using nlohmann::json;

json Minimal() {
  return json{{"agent_id", "agent_12345abcde"}, {"to_number", "+14155552671"}, {"body", "Hi"}};
}

// The single error a request produces; fails the test when there is not exactly one.
FieldError OnlyError(const ValidatedRequest& result) {
  REQUIRE(result.errors.size() == 1);
  return result.errors[0];
}

bool HasError(const ValidatedRequest& result, const json& loc, const std::string& type) {
  for (const auto& error : result.errors) {
    if (error.loc == loc && error.type == type) return true;
  }
  return false;
}

ValidatedRequest With(const std::string& key, json value) {
  json body = Minimal();
  body[key] = std::move(value);
  return ValidateSendRequest(body);
}

ValidatedRequest Without(const std::string& key) {
  json body = Minimal();
  body.erase(key);
  return ValidateSendRequest(body);
}

TEST_CASE("validation: a minimal request passes and round-trips") {
  auto result = ParseAndValidateSendRequest(Minimal().dump());
  REQUIRE(result.ok());
  CHECK(result.request == Minimal());
}

TEST_CASE("validation: body that is not JSON") {
  auto error = OnlyError(ParseAndValidateSendRequest("{\"agent_id\": "));
  CHECK(error.loc == json{"body"});
  CHECK(error.type == "json_invalid");

  CHECK(OnlyError(ParseAndValidateSendRequest("")).type == "json_invalid");
  CHECK(OnlyError(ParseAndValidateSendRequest("{} trailing")).type == "json_invalid");
  CHECK(OnlyError(ParseAndValidateSendRequest("{\"a\": 1e999}")).type == "json_invalid");
}

TEST_CASE("validation: invalid UTF-8 is json_invalid, not a crash") {
  std::string text = "{\"agent_id\":\"a\",\"to_number\":\"+14155552671\",\"body\":\"\xff\xfe\"}";
  auto error = OnlyError(ParseAndValidateSendRequest(text));
  CHECK(error.loc == json{"body"});
  CHECK(error.type == "json_invalid");

  std::string truncated = "{\"body\":\"\xe2\x82\"}";  // a cut-off 3-byte sequence
  CHECK(OnlyError(ParseAndValidateSendRequest(truncated)).type == "json_invalid");
}

// The JSON parser stops at a NUL byte; what follows one must not be silently dropped.
TEST_CASE("validation: a NUL byte anywhere is json_invalid") {
  const std::string valid = Minimal().dump();
  REQUIRE(ParseAndValidateSendRequest(valid).ok());
  for (const std::string& text :
       {valid + std::string(1, '\0'), valid + std::string("\0trailing", 9),
        std::string("\0", 1) + valid, std::string("{}\0", 3) + valid,
        std::string(valid).insert(1, 1, '\0')}) {
    CAPTURE(json(text).dump(-1, ' ', true));
    auto error = OnlyError(ParseAndValidateSendRequest(text));
    CHECK(error.loc == json{"body"});
    CHECK(error.type == "json_invalid");
  }
  // An escaped NUL inside a string is JSON.
  CHECK(With("body", std::string("a\0b", 3)).ok());
  CHECK(ParseAndValidateSendRequest(
            R"({"agent_id":"a","to_number":"+14155552671","body":"a\u0000b"})")
            .ok());
}

TEST_CASE("validation: deep nesting is json_invalid without exhausting the stack") {
  auto error = OnlyError(ParseAndValidateSendRequest(std::string(100000, '[')));
  CHECK(error.loc == json{"body"});
  CHECK(error.type == "json_invalid");
  CHECK(error.msg.find("deep") != std::string::npos);

  std::string closed = std::string(100000, '[') + std::string(100000, ']');
  CHECK(OnlyError(ParseAndValidateSendRequest(closed)).type == "json_invalid");

  // Nesting within an unknown field counts too.
  std::string nested = Minimal().dump();
  nested.pop_back();
  nested += ",\"extra\":" + std::string(40, '[') + std::string(40, ']') + "}";
  CHECK(OnlyError(ParseAndValidateSendRequest(nested)).type == "json_invalid");

  // Brackets inside strings are text, not nesting.
  json body = Minimal();
  body["body"] = std::string(1000, '[') + "\\\"{";
  CHECK(ParseAndValidateSendRequest(body.dump()).ok());
}

TEST_CASE("validation: the depth limit also applies to an already-parsed value") {
  json deep = json::array();
  for (int i = 0; i < kMaxJsonDepth + 5; ++i) deep = json::array({deep});
  json body = Minimal();
  body["extra"] = deep;
  auto error = OnlyError(ValidateSendRequest(body));
  CHECK(error.type == "json_invalid");

  json shallow = json::array();
  for (int i = 0; i < kMaxJsonDepth - 3; ++i) shallow = json::array({shallow});
  body["extra"] = shallow;
  CHECK(ValidateSendRequest(body).ok());
}

TEST_CASE("validation: body that is not an object") {
  for (const char* text : {"[]", "\"text\"", "42", "null", "true"}) {
    CAPTURE(text);
    auto error = OnlyError(ParseAndValidateSendRequest(text));
    CHECK(error.loc == json{"body"});
    CHECK(error.type == "model_attributes_type");
    CHECK(error.msg.find("valid dictionary") != std::string::npos);
  }
}

TEST_CASE("validation: wrong types") {
  SUBCASE("strings") {
    for (const char* key : {"agent_id", "to_number", "body", "media_url", "number_id",
                            "from_number", "reply_to_message_id"}) {
      CAPTURE(key);
      auto result = With(key, 42);
      CHECK(HasError(result, {"body", key}, "string_type"));
      CHECK(result.request.is_null());
    }
  }
  SUBCASE("lists") {
    json body = Minimal();
    body["media_urls"] = "https://example.com/a.png";
    auto error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "media_urls"});
    CHECK(error.type == "list_type");

    body = Minimal();
    body.erase("to_number");
    body["recipients"] = "+14155552671";
    error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "recipients"});
    CHECK(error.type == "list_type");
  }
  SUBCASE("list items carry their index") {
    json body = Minimal();
    body.erase("to_number");
    body["recipients"] = {"+14155552671", 7, "+14155552672"};
    auto error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "recipients", 1});
    CHECK(error.type == "string_type");

    body = Minimal();
    body["media_urls"] = {"https://example.com/a.png", nullptr};
    error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "media_urls", 1});
    CHECK(error.type == "string_type");
  }
}

TEST_CASE("validation: null means omitted and is removed") {
  json body = Minimal();
  body["media_url"] = nullptr;
  body["media_urls"] = nullptr;
  body["number_id"] = nullptr;
  body["send_style"] = nullptr;
  body["reply_to_message_id"] = nullptr;
  body["recipients"] = nullptr;
  auto result = ValidateSendRequest(body);
  REQUIRE(result.ok());
  CHECK(result.request == Minimal());

  // A null required field is as good as absent.
  body = Minimal();
  body["agent_id"] = nullptr;
  auto error = OnlyError(ValidateSendRequest(body));
  CHECK(error.loc == json{"body", "agent_id"});
  CHECK(error.type == "missing");
}

TEST_CASE("validation: exactly one of to_number and recipients") {
  SUBCASE("neither") {
    auto error = OnlyError(Without("to_number"));
    CHECK(error.loc == json{"body", "to_number"});
    CHECK(error.type == "value_error");
    CHECK(error.msg.find("recipients") != std::string::npos);
  }
  SUBCASE("both") {
    auto error = OnlyError(With("recipients", {"+14155552671", "+14155552672"}));
    CHECK(error.loc == json{"body", "to_number"});
    CHECK(error.type == "value_error");
    CHECK(error.msg.find("not both") != std::string::npos);
  }
  SUBCASE("recipients alone") {
    json body = Minimal();
    body.erase("to_number");
    body["recipients"] = {"+14155552671", "friend@example.com"};
    CHECK(ValidateSendRequest(body).ok());
  }
}

TEST_CASE("validation: one of agent_id, number_id or from_number") {
  auto error = OnlyError(Without("agent_id"));
  CHECK(error.loc == json{"body", "agent_id"});
  CHECK(error.type == "missing");
  CHECK(error.msg.find("agent_id, number_id or from_number") != std::string::npos);

  for (const char* key : {"number_id", "from_number"}) {
    CAPTURE(key);
    json body = Minimal();
    body.erase("agent_id");
    body[key] = "num_1";
    CHECK(ValidateSendRequest(body).ok());
  }

  for (const char* key : {"agent_id", "number_id", "from_number"}) {
    CAPTURE(key);
    auto result = With(key, "");
    auto only = OnlyError(result);
    CHECK(only.loc == json{"body", key});
    CHECK(only.type == "value_error");
  }
}

TEST_CASE("validation: to_number formats; phone numbers are normalised to E.164") {
  struct Case {
    const char* given;
    const char* stored;
  };
  for (Case c : {Case{"+14155552671", "+14155552671"}, Case{"14155552671", "+14155552671"},
                 Case{"(415) 555-2671", "+14155552671"}, Case{"415.555.2671", "+14155552671"},
                 Case{"+44 20 7946 0958", "+442079460958"}, Case{"12345", "12345"},
                 Case{"123456", "123456"}, Case{"someone@example.com", "someone@example.com"},
                 Case{"grp_abc-DEF_123", "grp_abc-DEF_123"}, Case{"grp_x", "grp_x"}}) {
    CAPTURE(c.given);
    ValidatedRequest result = With("to_number", c.given);
    REQUIRE(result.ok());
    CHECK(result.request.at("to_number") == c.stored);
    CHECK(json::parse(result.forwarded).at("to_number") == c.stored);
  }
  for (const char* bad : {"", "+0123456", "+1", "+44", "+1234567890123456", "+1 415", "1234",
                          "555-0100", "grp_", "grp_a b", "grp_a.b", "GRP_abc", "@x.com", "a@@b.com",
                          "a@b", "a b@c.com", "a@b.", "a@.b", "not a number"}) {
    CAPTURE(bad);
    auto error = OnlyError(With("to_number", bad));
    CHECK(error.loc == json{"body", "to_number"});
    CHECK(error.type == "value_error");
  }
}

TEST_CASE("validation: --default-region reads national numbers") {
  json body = Minimal();
  body["to_number"] = "020 7946 0958";
  CHECK_FALSE(ValidateSendRequest(body).ok());  // not a US number
  ValidationOptions gb;
  gb.default_region = "GB";
  ValidatedRequest result = ValidateSendRequest(body, {"body"}, gb);
  REQUIRE(result.ok());
  CHECK(result.request.at("to_number") == "+442079460958");
}

TEST_CASE("validation: the sendq member is kept apart and never forwarded") {
  json body = Minimal();
  body["sendq"] = {{"priority", "high"}};
  ValidatedRequest result = ValidateSendRequest(body);
  REQUIRE(result.ok());
  CHECK(result.controls_member == json{{"priority", "high"}});
  CHECK_FALSE(result.request.contains("sendq"));
  CHECK(ParseAndValidateSendRequest(body.dump()).forwarded.find("sendq") == std::string::npos);
}

TEST_CASE("validation: recipients") {
  json body = Minimal();
  body.erase("to_number");

  SUBCASE("fewer than two") {
    body["recipients"] = {"+14155552671"};
    auto error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "recipients"});
    CHECK(error.type == "too_short");

    body["recipients"] = json::array();
    CHECK(OnlyError(ValidateSendRequest(body)).type == "too_short");
  }
  SUBCASE("each must be a phone number or an email") {
    body["recipients"] = {"+14155552671", "12345", "grp_abc"};
    auto result = ValidateSendRequest(body);
    REQUIRE(result.errors.size() == 2);
    CHECK(result.errors[0].loc == json{"body", "recipients", 1});
    CHECK(result.errors[0].type == "value_error");
    CHECK(result.errors[1].loc == json{"body", "recipients", 2});
    CHECK(result.errors[1].type == "value_error");
  }
  SUBCASE("at most kMaxRecipients, refused with one error") {
    json list = json::array();
    for (size_t i = 0; i < kMaxRecipients; ++i) list.push_back(fmt::format("+1415555{:04}", i));
    body["recipients"] = list;
    CHECK(ValidateSendRequest(body).ok());

    list.push_back("+14155559999");
    body["recipients"] = list;
    auto error = OnlyError(ValidateSendRequest(body));
    CHECK(error.loc == json{"body", "recipients"});
    CHECK(error.type == "too_long");
    CHECK(error.msg.find("at most 100 items") != std::string::npos);
    CHECK(error.msg.find("not 101") != std::string::npos);
    CHECK(error.msg.find("group message") != std::string::npos);

    // The items of a list that is too long are not looked at.
    body["recipients"] = json::array();
    for (size_t i = 0; i <= kMaxRecipients; ++i) body["recipients"].push_back(i);
    CHECK(OnlyError(ValidateSendRequest(body)).type == "too_long");
  }
}

TEST_CASE("validation: media_url is folded into media_urls") {
  SUBCASE("alone") {
    auto result = With("media_url", "https://example.com/a.png");
    REQUIRE(result.ok());
    CHECK_FALSE(result.request.contains("media_url"));
    CHECK(result.request["media_urls"] == json{"https://example.com/a.png"});
  }
  SUBCASE("first, ahead of media_urls") {
    json body = Minimal();
    body.erase("body");
    body["media_url"] = "https://example.com/a.png";
    body["media_urls"] = {"https://example.com/b.png"};
    auto result = ValidateSendRequest(body);
    REQUIRE(result.ok());
    CHECK_FALSE(result.request.contains("media_url"));
    CHECK(result.request["media_urls"] ==
          json{"https://example.com/a.png", "https://example.com/b.png"});
  }
  SUBCASE("not repeated when media_urls already has it") {
    json body = Minimal();
    body["media_url"] = "https://example.com/a.png";
    body["media_urls"] = {"https://example.com/a.png"};
    auto result = ValidateSendRequest(body);
    REQUIRE(result.ok());
    CHECK(result.request["media_urls"] == json{"https://example.com/a.png"});
  }
  SUBCASE("a bad media_url is reported under its own name") {
    auto error = OnlyError(With("media_url", "http://example.com/a.png"));
    CHECK(error.loc == json{"body", "media_url"});
    CHECK(error.type == "value_error");
  }
}

TEST_CASE("validation: media URLs must be https with a host") {
  for (const char* good :
       {"https://example.com", "HTTPS://example.com/a.png", "https://example.com:8443/a?b=c#d",
        "https://user:pw@example.com/a.png", "https://[2001:db8::1]:443/a.png",
        "https://example.com?x", "https://example.com#x"}) {
    CAPTURE(good);
    CHECK(IsHttpsUrlWithHost(good));
  }
  for (const char* bad : {"", "http://example.com/a.png", "https://", "https:///a.png",
                          "https://:443/a.png", "https://example.com:/a", "https://example.com:x",
                          "https://user@/a", "https://exa mple.com/a", "https://example.com/\n",
                          "ftp://example.com/a", "example.com/a.png", "https://[::1/a",
                          "https://[::1]x/a", "//example.com/a.png", "https://?q", "https://#f"}) {
    CAPTURE(bad);
    CHECK_FALSE(IsHttpsUrlWithHost(bad));
  }

  auto result = With("media_urls", {"https://example.com/a.png", "file:///etc/passwd"});
  REQUIRE(result.errors.size() == 2);  // the bad URL, and text alongside a carousel
  CHECK(HasError(result, {"body", "media_urls", 1}, "value_error"));
}

TEST_CASE("validation: at most 20 media URLs") {
  json body = Minimal();
  body.erase("body");
  json urls = json::array();
  for (size_t i = 0; i < kMaxMediaUrls; ++i) {
    urls.push_back("https://example.com/" + std::to_string(i) + ".png");
  }
  body["media_urls"] = urls;
  CHECK(ValidateSendRequest(body).ok());

  body["media_urls"].push_back("https://example.com/extra.png");
  auto error = OnlyError(ValidateSendRequest(body));
  CHECK(error.loc == json{"body", "media_urls"});
  CHECK(error.type == "too_long");

  // media_url counts after folding.
  body["media_urls"] = urls;
  body["media_url"] = "https://example.com/single.png";
  CHECK(OnlyError(ValidateSendRequest(body)).type == "too_long");

  // A media_urls list longer than the limit is refused as it stands, even if folding would
  // drop repeats of media_url, and its items are not looked at.
  body["media_urls"] = json::array();
  for (size_t i = 0; i <= kMaxMediaUrls; ++i) body["media_urls"].push_back(body["media_url"]);
  error = OnlyError(ValidateSendRequest(body));
  CHECK(error.loc == json{"body", "media_urls"});
  CHECK(error.type == "too_long");
  CHECK(error.msg.find("not 21") != std::string::npos);
  body.erase("media_url");
  body["media_urls"] = json::array();
  for (size_t i = 0; i <= kMaxMediaUrls; ++i) body["media_urls"].push_back("ftp://x");
  CHECK(OnlyError(ValidateSendRequest(body)).type == "too_long");

  // Still a carousel for the check on body.
  body["body"] = "caption";
  auto result = ValidateSendRequest(body);
  REQUIRE(result.errors.size() == 2);
  CHECK(HasError(result, {"body", "media_urls"}, "too_long"));
  CHECK(HasError(result, {"body", "body"}, "value_error"));
}

// A body of 1 MiB (the most the API reads) made of one huge list: the answer stays small
// instead of carrying one error per item.
TEST_CASE("validation: a huge list gets one error, not one per item") {
  for (const char* field : {"recipients", "media_urls"}) {
    CAPTURE(field);
    std::string text = fmt::format(R"({{"agent_id":"a","{}":[)", field);
    while (text.size() < (1 << 20) - 8) text += R"("x",)";
    text += R"("x"]})";
    auto result = ParseAndValidateSendRequest(text);
    REQUIRE(result.errors.size() <= 3);
    CHECK(HasError(result, {"body", field}, "too_long"));
    CHECK(ValidationErrorBody(result.errors).dump().size() < 1024);
  }
}

// Many fields cost time and memory in proportion to the body, and unknown ones are kept.
TEST_CASE("validation: a body with 100k fields is accepted whole") {
  json body = Minimal();
  for (int i = 0; i < 100'000; ++i) body[fmt::format("k{}", i)] = i;
  auto result = ParseAndValidateSendRequest(body.dump());
  REQUIRE(result.ok());
  CHECK(result.request.size() == body.size());
  CHECK(result.request["k99999"] == 99999);
}

TEST_CASE("validation: a carousel cannot carry text") {
  json urls = {"https://example.com/a.png", "https://example.com/b.png"};
  auto error = OnlyError(With("media_urls", urls));
  CHECK(error.loc == json{"body", "body"});
  CHECK(error.type == "value_error");

  CHECK(With("body", "").errors.size() == 1);  // no media either: missing
  json body = Minimal();
  body["body"] = "";
  body["media_urls"] = urls;
  CHECK(ValidateSendRequest(body).ok());

  // One attachment with text is fine.
  CHECK(With("media_urls", {"https://example.com/a.png"}).ok());
}

TEST_CASE("validation: body or media is required") {
  SUBCASE("absent") {
    auto error = OnlyError(Without("body"));
    CHECK(error.loc == json{"body", "body"});
    CHECK(error.type == "missing");
  }
  SUBCASE("null") {
    auto error = OnlyError(With("body", nullptr));
    CHECK(error.loc == json{"body", "body"});
    CHECK(error.type == "missing");
  }
  SUBCASE("empty") {
    auto error = OnlyError(With("body", ""));
    CHECK(error.loc == json{"body", "body"});
    CHECK(error.type == "missing");
  }

  // Media alone is enough; the stored request carries an empty body for AgentPhone.
  json body = Minimal();
  body.erase("body");
  body["media_urls"] = {"https://example.com/a.png"};
  auto result = ValidateSendRequest(body);
  REQUIRE(result.ok());
  CHECK(result.request["body"] == "");
}

TEST_CASE("validation: send_style") {
  for (const char* style : {"celebration", "fireworks", "lasers", "love", "confetti", "balloons",
                            "spotlight", "echo", "invisible", "gentle", "loud", "slam"}) {
    CAPTURE(style);
    CHECK(With("send_style", style).ok());
  }
  for (json bad : {json("Slam"), json("boom"), json(""), json(3)}) {
    CAPTURE(bad.dump());
    auto error = OnlyError(With("send_style", bad));
    CHECK(error.loc == json{"body", "send_style"});
    CHECK(error.type == "enum");
    CHECK(error.msg.find("'celebration'") != std::string::npos);
    CHECK(error.msg.find("'slam'") != std::string::npos);
  }
}

TEST_CASE("validation: reply_to_message_id") {
  CHECK(With("reply_to_message_id", "msg_12345abcde").ok());
  auto error = OnlyError(With("reply_to_message_id", ""));
  CHECK(error.loc == json{"body", "reply_to_message_id"});
  CHECK(error.type == "value_error");
}

TEST_CASE("validation: unknown fields are kept unchanged") {
  json body = Minimal();
  body["metadata"] = {{"order", 42}, {"tags", {"a", nullptr}}};
  body["future_flag"] = nullptr;
  auto result = ValidateSendRequest(body);
  REQUIRE(result.ok());
  CHECK(result.request["metadata"] == body["metadata"]);
  REQUIRE(result.request.contains("future_flag"));
  CHECK(result.request["future_flag"].is_null());
}

TEST_CASE("validation: every problem is reported at once") {
  json body = {{"to_number", "nope"},
               {"body", "Hi"},
               {"media_urls", {"http://a.example/1.png", "https://b.example/2.png"}},
               {"send_style", "boom"}};
  auto result = ValidateSendRequest(body);
  CHECK(result.request.is_null());
  CHECK(result.errors.size() == 5);
  CHECK(HasError(result, {"body", "agent_id"}, "missing"));
  CHECK(HasError(result, {"body", "to_number"}, "value_error"));
  CHECK(HasError(result, {"body", "media_urls", 0}, "value_error"));
  CHECK(HasError(result, {"body", "body"}, "value_error"));
  CHECK(HasError(result, {"body", "send_style"}, "enum"));
}

TEST_CASE("validation: a location prefix is honoured") {
  json prefix = {"body", "messages", 3};
  json body = Minimal();
  body.erase("agent_id");
  body["send_style"] = "boom";
  auto result = ValidateSendRequest(body, prefix);
  REQUIRE(result.errors.size() == 2);
  CHECK(result.errors[0].loc == json{"body", "messages", 3, "agent_id"});
  CHECK(result.errors[1].loc == json{"body", "messages", 3, "send_style"});

  auto not_object = OnlyError(ValidateSendRequest(json::array(), prefix));
  CHECK(not_object.loc == prefix);
  CHECK(not_object.type == "model_attributes_type");
}

TEST_CASE("validation: the 422 body has FastAPI's shape") {
  auto result = ValidateSendRequest(json{{"body", "Hi"}});
  json body = ValidationErrorBody(result.errors);
  REQUIRE(body["detail"].is_array());
  REQUIRE(body["detail"].size() == result.errors.size());
  for (const auto& item : body["detail"]) {
    CHECK(item["loc"].is_array());
    CHECK(item["msg"].is_string());
    CHECK(item["type"].is_string());
  }
  CHECK(ValidationErrorBody({}) == json{{"detail", json::array()}});
}

TEST_CASE("validation: recipient helpers") {
  CHECK(IsE164("+14155552671"));
  CHECK_FALSE(IsE164("+04155552671"));
  CHECK_FALSE(IsE164("+1415555267a"));
  CHECK(IsShortCode("55555"));
  CHECK_FALSE(IsShortCode("5555a"));
  CHECK(IsEmail("a.b+c@mail.example.com"));
  CHECK_FALSE(IsEmail("a@b@c.com"));
  CHECK(IsGroupId("grp_01HX"));
  CHECK_FALSE(IsGroupId("grp_é"));
}

}  // namespace
}  // namespace sendq

namespace sendq {
namespace {

TEST_CASE("validation: a reaction is a classic tapback or one custom emoji") {
  std::string reaction;
  for (const char* ok : {"love", "like", "dislike", "laugh", "emphasize", "question", "🔥",
                         "👍🏽", "👨‍👩‍👧"}) {
    CAPTURE(ok);
    CHECK(ValidateReaction({{"reaction", ok}}, &reaction).empty());
    CHECK(reaction == ok);
  }
  for (const nlohmann::json& bad :
       {nlohmann::json{{"reaction", "Love"}}, nlohmann::json{{"reaction", "🔥 fire"}},
        nlohmann::json{{"reaction", ""}}, nlohmann::json{{"reaction", "🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥🔥"}},
        nlohmann::json{{"reaction", nullptr}}, nlohmann::json{{"reaction", 1}}}) {
    CAPTURE(bad.dump());
    std::vector<FieldError> errors = ValidateReaction(bad, &reaction);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].loc == nlohmann::json({"body", "reaction"}));
  }
  CHECK(ValidateReaction(nlohmann::json::array(), &reaction)[0].type == "dict_type");
}

}  // namespace
}  // namespace sendq
