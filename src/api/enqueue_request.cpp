#include "api/enqueue_request.h"

#include <fmt/format.h>

#include "queue/raw_json.h"

namespace sendq::api {

using nlohmann::json;

std::optional<std::string> IdempotencyKeyProblem(std::string_view key) {
  bool printable = true;
  for (char c : key) printable = printable && c >= 0x21 && c <= 0x7e;
  if (key.empty() || key.size() > kMaxIdempotencyKeyLength || !printable) {
    return fmt::format("must be 1 to {} printable ASCII characters", kMaxIdempotencyKeyLength);
  }
  return std::nullopt;
}

BatchRequest ParseBatchRequest(std::string_view text, const ValidationOptions& options) {
  BatchRequest batch;
  json body;
  if (std::optional<FieldError> error = ParseJsonBody(text, &body)) {
    batch.errors.push_back(std::move(*error));
    return batch;
  }
  if (!body.is_object()) {
    batch.errors.push_back({json::array({"body"}),
                            "Input should be a valid dictionary or object to extract fields from",
                            "model_attributes_type"});
    return batch;
  }
  auto messages = body.find("messages");
  if (messages == body.end()) {
    batch.errors.push_back({json::array({"body", "messages"}), "Field required", "missing"});
    return batch;
  }
  if (!messages->is_array()) {
    batch.errors.push_back(
        {json::array({"body", "messages"}), "Input should be a valid list", "list_type"});
    return batch;
  }
  if (messages->empty() || messages->size() > kMaxBatchItems) {
    batch.errors.push_back(
        {json::array({"body", "messages"}),
         fmt::format("must hold 1 to {} messages, not {}", kMaxBatchItems, messages->size()),
         messages->empty() ? "too_short" : "too_long"});
    return batch;
  }
  // Each item is forwarded as the producer wrote it (see raw_json.h).
  const std::optional<std::vector<RawMember>> members = RawObjectMembers(text);
  std::optional<std::vector<std::string_view>> raw_items;
  for (const RawMember& m : members ? *members : std::vector<RawMember>()) {
    if (m.key == "messages") raw_items = RawArrayElements(m.raw_value);
  }
  batch.items.reserve(messages->size());
  for (size_t i = 0; i < messages->size(); ++i) {
    json& item = (*messages)[i];
    const json loc = json::array({"body", "messages", i});
    BatchItem parsed;
    std::optional<FieldError> key_error;
    if (item.is_object()) {
      auto key = item.find("idempotency_key");
      if (key != item.end()) {
        json key_loc = loc;
        key_loc.push_back("idempotency_key");
        if (!key->is_null() && !key->is_string()) {
          key_error = FieldError{key_loc, "Input should be a valid string", "string_type"};
        } else if (key->is_string()) {
          if (std::optional<std::string> problem = IdempotencyKeyProblem(key->get<std::string>())) {
            key_error = FieldError{key_loc, *problem, "value_error"};
          } else {
            parsed.idempotency_key = key->get<std::string>();
          }
        }
        item.erase(key);
      }
    }
    parsed.validated = ValidateSendRequest(item, loc, options);
    if (parsed.validated.ok() && raw_items && raw_items->size() == messages->size()) {
      parsed.validated.forwarded = ForwardedRequest((*raw_items)[i], parsed.validated.request);
    }
    if (key_error) {
      parsed.validated.request = json();
      parsed.validated.errors.insert(parsed.validated.errors.begin(), std::move(*key_error));
    }
    batch.items.push_back(std::move(parsed));
  }
  return batch;
}

}  // namespace sendq::api
