// Parsing of enqueue requests beyond the AgentPhone body itself: idempotency keys, and the
// envelope of POST /v1/messages/batch.
//
// A batch is {"messages": [<Send Message request>, ...]}. Each item is validated exactly like a
// single enqueue, with its errors located under ["body", "messages", <index>], and may carry an
// `idempotency_key` field: it plays the part of the Idempotency-Key header for that item and
// is not part of the request sent to AgentPhone.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/validation.h"

namespace sendq::api {

inline constexpr size_t kMaxIdempotencyKeyLength = 255;
inline constexpr size_t kMaxBatchItems = 500;

// Why `key` cannot be an idempotency key, or nullopt when it can: 1 to 255 printable ASCII
// characters.
std::optional<std::string> IdempotencyKeyProblem(std::string_view key);

struct BatchItem {
  ValidatedRequest validated;
  std::optional<std::string> idempotency_key;
  bool ok() const { return validated.ok(); }
};

struct BatchRequest {
  // Errors in the envelope itself (not JSON, no `messages` array, too many items). When there
  // are any, `items` is empty and nothing may be queued.
  std::vector<FieldError> errors;
  std::vector<BatchItem> items;
};

BatchRequest ParseBatchRequest(std::string_view text, const ValidationOptions& options = {});

}  // namespace sendq::api
