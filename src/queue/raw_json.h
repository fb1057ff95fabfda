// Byte spans of an already-validated JSON text, so that sendq can forward the fields it does
// not change exactly as the producer wrote them: key order, number literals (integers beyond
// 64 bits, 1.10, 1e3) and string escapes survive, where a parse and re-serialisation would
// rewrite them.
//
// REQUIRES for every function: `text` is valid JSON (nlohmann::json accepted it).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/validation.h"

namespace sendq {

struct RawMember {
  std::string key;              // decoded
  std::string_view raw_member;  // "key": value, as written (without the surrounding commas)
  std::string_view raw_value;   // the value as written
};

// The members of the object `text` in their order; nullopt when `text` is not an object.
std::optional<std::vector<RawMember>> RawObjectMembers(std::string_view text);

// The elements of the array `text` as written; nullopt when it is not an array.
std::optional<std::vector<std::string_view>> RawArrayElements(std::string_view text);

// The request to store and forward, from the producer's own bytes `raw_object` and the
// normalised `request` made from them: every member that `request` kept, as written; what
// validation rewrote or added (media_urls, an empty body, phone numbers in E.164) from
// `request`. Falls back to
// `request.dump()` when the object repeats a key.
std::string ForwardedRequest(std::string_view raw_object, const nlohmann::json& request);

}  // namespace sendq
