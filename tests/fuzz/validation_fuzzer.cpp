// Fuzz target for the Send Message request parser and validator.
//
// Each input is a request body as a producer would POST it. Besides "no crash, no exception,
// no sanitizer report", it checks the properties the API relies on:
//   - a body is rejected as a whole (one json_invalid error) exactly when it is not JSON or is
//     nested too deeply;
//   - the batch path (ValidateSendRequest on an already-parsed value, with a location prefix)
//     agrees with the single-message path, error for error, apart from the prefix;
//   - the number of errors is bounded whatever the size of the body, so a hostile body cannot
//     make the 422 answer much larger than itself;
//   - an accepted request serialises strictly (valid UTF-8) and, stored and validated again
//     (as the upstream does), is accepted unchanged;
//   - every 422 body serialises.
// A failed property aborts, so libFuzzer reports it with the input that caused it. Exceptions
// are not caught: the functions under test promise not to throw, and an uncaught exception
// ends the run at the throw site.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "queue/validation.h"

namespace {

using nlohmann::json;

// Errors one request can produce at most: one per recipient and media URL, plus a few per
// other field.
constexpr size_t kMaxErrors = sendq::kMaxRecipients + sendq::kMaxMediaUrls + 16;

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "validation_fuzzer: property violated: %s\n", what);
  std::abort();
}

bool IsWholeBodyError(const sendq::ValidatedRequest& result) {
  return result.errors.size() == 1 && result.errors[0].type == "json_invalid" &&
         result.errors[0].loc == json::array({"body"});
}

// The batch endpoint's view: the same body, parsed by the caller, located under its index.
void CheckPrefixedAgrees(const sendq::ValidatedRequest& single, const json& parsed) {
  const json prefix = json::array({"body", "messages", 7});
  sendq::ValidatedRequest batch = sendq::ValidateSendRequest(parsed, prefix);
  Require(batch.errors.size() <= kMaxErrors, "batch: error count is bounded");
  Require(!sendq::ValidationErrorBody(batch.errors).dump().empty(), "batch: 422 body dumps");

  if (IsWholeBodyError(single)) {
    // Too deep for the text scan: the parsed value must be refused as a whole too.
    Require(batch.errors.size() == 1 && batch.errors[0].loc == prefix,
            "batch: a body nested too deeply is refused as a whole");
    Require(
        batch.errors[0].type == "json_invalid" || batch.errors[0].type == "model_attributes_type",
        "batch: a body nested too deeply is json_invalid (or not an object)");
    return;
  }
  Require(batch.ok() == single.ok(), "batch and single agree on acceptance");
  Require(batch.request == single.request, "batch and single normalise alike");
  Require(batch.errors.size() == single.errors.size(), "batch and single report alike");
  for (size_t i = 0; i < single.errors.size(); ++i) {
    const sendq::FieldError& a = single.errors[i];
    const sendq::FieldError& b = batch.errors[i];
    Require(a.msg == b.msg && a.type == b.type, "batch and single messages agree");
    Require(a.loc.is_array() && !a.loc.empty() && a.loc[0] == "body", "single loc starts body");
    json expected = prefix;
    for (size_t j = 1; j < a.loc.size(); ++j) expected.push_back(a.loc[j]);
    Require(b.loc == expected, "batch loc is the prefix followed by the field path");
  }
}

void CheckAccepted(const sendq::ValidatedRequest& result) {
  const json& request = result.request;
  Require(request.is_object(), "accepted: request is an object");
  Require(!request.contains("media_url"), "accepted: media_url is folded away");
  Require(request.contains("body") && request["body"].is_string(), "accepted: body is a string");
  if (request.contains("media_urls")) {
    Require(request["media_urls"].is_array(), "accepted: media_urls is a list");
    Require(request["media_urls"].size() <= sendq::kMaxMediaUrls, "accepted: media_urls bound");
  }
  // What the API stores and forwards: the producer's own bytes for every field validation kept.
  const json forwarded = json::parse(result.forwarded, nullptr, /*allow_exceptions=*/false);
  Require(!forwarded.is_discarded(), "accepted: the forwarded request is JSON");
  Require(forwarded == request, "accepted: the forwarded request is the normalised one");
  sendq::ValidatedRequest again = sendq::ParseAndValidateSendRequest(result.forwarded);
  Require(again.ok(), "accepted: the stored request validates again");
  Require(again.request == request, "accepted: normalising is idempotent");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  sendq::ValidatedRequest single = sendq::ParseAndValidateSendRequest(text);
  Require(single.ok() || single.request.is_null(), "a refused request carries no request");
  Require(single.errors.size() <= kMaxErrors, "error count is bounded");
  for (const sendq::FieldError& error : single.errors) {
    Require(!error.msg.empty() && !error.type.empty(), "every error has a message and a type");
  }
  Require(!sendq::ValidationErrorBody(single.errors).dump().empty(), "422 body dumps");
  if (single.ok()) CheckAccepted(single);

  // Parsed the way a caller holding a larger document would: without a depth limit, which
  // ValidateSendRequest must then apply itself. Like ParseAndValidateSendRequest, a caller
  // must refuse a NUL byte itself, since json::parse takes one for the end of the input.
  json parsed = json::value_t::discarded;
  if (text.find('\0') == std::string_view::npos) {
    try {
      parsed = json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
    } catch (const json::exception&) {
      parsed = json::value_t::discarded;
    }
  }
  if (parsed.is_discarded()) {
    Require(IsWholeBodyError(single), "text that is not JSON is refused as a whole");
    return 0;
  }
  CheckPrefixedAgrees(single, parsed);
  return 0;
}
