// Validation of AgentPhone Send Message requests, before anything is queued.
//
// Every problem is reported (not just the first), each with a FastAPI-style location such as
// ["body", "media_urls", 2], so the 422 a producer gets from sendq reads like AgentPhone's.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sendq {

struct FieldError {
  nlohmann::json loc;  // array of strings and integers, starting with "body" or "query"
  std::string msg;
  std::string type;  // pydantic v2 style: missing, string_type, list_type, value_error, ...
};

// What validation needs beyond the body.
struct ValidationOptions {
  // The region a phone number without a country code is read in (--default-region).
  std::string default_region = "US";
};

struct ValidatedRequest {
  // The normalised request, to be stored and sent upstream: null fields omitted, `media_url`
  // folded into `media_urls`, unknown fields kept unchanged. Empty when errors is not.
  nlohmann::json request;
  // What is stored and sent upstream: `request` with the producer's own bytes for every field
  // that validation did not change (see raw_json.h).
  std::string forwarded;
  // The body's `sendq` member (null when absent), for ParseQueueControls.
  nlohmann::json controls_member;
  std::vector<FieldError> errors;
  bool ok() const { return errors.empty(); }
};

// Limits on untrusted JSON, so that hostile bodies cannot exhaust the stack or memory.
inline constexpr int kMaxJsonDepth = 32;
// AgentPhone's own limit for a carousel. A longer media_urls list is refused with one error,
// before its items are looked at.
inline constexpr size_t kMaxMediaUrls = 20;
// A group message goes to a handful of people; this bound is far above any real group and
// keeps the work and the 422 answer for a hostile list small (one error per bad item would
// otherwise turn a 1 MiB body into a 30 MiB answer). A longer list is refused with one error,
// before its items are looked at.
inline constexpr size_t kMaxRecipients = 100;

// Parses an untrusted body: refuses one nested deeper than kMaxJsonDepth (before parsing, so
// the recursive parser cannot overflow the stack), a raw NUL byte, and anything that is not
// JSON in UTF-8. The error, located at ["body"], or nullopt with the value in `out`.
std::optional<FieldError> ParseJsonBody(std::string_view text, nlohmann::json* out);

// Parses `text` as JSON and validates it. A body that is not JSON, too deeply nested, or not
// an object is reported as a single error.
ValidatedRequest ParseAndValidateSendRequest(std::string_view text,
                                             const ValidationOptions& options = {});

// Validates an already-parsed body. `loc_prefix` is prepended to every location (the batch
// endpoint uses ["body", "messages", i]).
// Phone numbers in `to_number` and `recipients` are normalised to E.164 (see phone.h); the
// reserved member `sendq` (queue controls) is copied to controls_member and never forwarded.
ValidatedRequest ValidateSendRequest(const nlohmann::json& body,
                                     const nlohmann::json& loc_prefix = {"body"},
                                     const ValidationOptions& options = {});

// {"detail": [{"loc": [...], "msg": "...", "type": "..."}, ...]}: FastAPI's 422 body.
nlohmann::json ValidationErrorBody(const std::vector<FieldError>& errors);

// Recipient and media checks, exposed for tests and for the fake upstream.
bool IsE164(std::string_view s);
bool IsShortCode(std::string_view s);
bool IsEmail(std::string_view s);
bool IsGroupId(std::string_view s);
bool IsHttpsUrlWithHost(std::string_view s);

// The classic iMessage tapbacks, which every iMessage line takes.
inline constexpr const char* kTapbacks[] = {"love",  "like",      "dislike",
                                            "laugh", "emphasize", "question"};
// A Send Reaction body ({"reaction": ...}): a classic tapback, or one custom emoji (one emoji,
// possibly a sequence joined by ZWJ or with modifiers: no ASCII, at most 10 code points).
// Errors are located under `loc_prefix`; the reaction goes to `*reaction`.
std::vector<FieldError> ValidateReaction(const nlohmann::json& body, std::string* reaction,
                                         const nlohmann::json& loc_prefix = {"body"});

}  // namespace sendq
