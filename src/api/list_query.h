// The query string of GET /v1/messages, turned into a ListFilter.
//
// Every problem is reported as a FieldError located at ["query", <name>], in the same shape as
// body validation errors, so a producer gets one kind of 422 from sendq. Unknown parameters are
// ignored. A parameter given more than once is an error, except status (any of them); an empty
// value is an error.
//
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "queue/message.h"
#include "queue/validation.h"

namespace sendq {

struct ParsedListQuery {
  ListFilter filter;
  std::vector<FieldError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses status, agent_id, to_number, provider_message_id, created_after, created_before
// (RFC 3339 or integer milliseconds since the Unix epoch), limit and cursor. Never throws, for
// any input.
// ordering_key, priority and scheduled (true or false). to_number is read like an enqueue's, in
// `default_region`, and a leading space stands for the "+" of an unencoded query.
ParsedListQuery ParseListQuery(const std::multimap<std::string, std::string>& params,
                               const std::string& default_region = "US");

// The cursor for the page after the one that ended with message `last_id`. Clients must treat
// it as opaque; it is base64url (no padding) of "v1:" + id, and the version lets the format
// change without misreading old cursors.
std::string EncodeCursor(const std::string& last_id);

// Opaque text for other cursors (base64url, no padding), and back; nullopt if not one.
std::string EncodeOpaque(std::string_view text);
std::optional<std::string> DecodeOpaque(std::string_view text);

// The message id inside a cursor, or nullopt when `cursor` is not one that EncodeCursor made.
std::optional<std::string> DecodeCursor(const std::string& cursor);

}  // namespace sendq
