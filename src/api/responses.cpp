#include "api/responses.h"

#include "util/log.h"

namespace sendq::api {

using http::Response;

Response JsonResponse(int status, const Json& body) {
  Response res;
  res.status = status;
  res.content_type = "application/json";
  res.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return res;
}

Response ErrorResponse(int status, std::string_view code, std::string_view msg) {
  return JsonResponse(status, {{"detail", msg}, {"code", code}});
}

Response ValidationErrors(const std::vector<FieldError>& errors) {
  return JsonResponse(422, Json(ValidationErrorBody(errors)));
}

Response StatusResponse(const Status& st) {
  switch (st.code()) {
    case Status::Code::kNotFound:
      return ErrorResponse(404, "not_found", st.message());
    case Status::Code::kConflict:
      return ErrorResponse(409, "conflict", st.message());
    case Status::Code::kNoSpace:
      return ErrorResponse(507, "insufficient_storage",
                           "the queue's disk is full; nothing was stored, retry later");
    case Status::Code::kUnavailable:
      return ErrorResponse(503, "unavailable", st.message());
    case Status::Code::kInvalidArgument:
      return ErrorResponse(400, "bad_request", st.message());
    default:
      log::Error("internal_error", {{"error", st.ToString()}});
      return ErrorResponse(500, "internal", "internal error; see the sendq log");
  }
}

std::optional<Response> ParseObjectBody(const std::string& text, nlohmann::json* out) {
  *out = nlohmann::json::object();
  if (!text.empty()) {
    if (std::optional<FieldError> problem = ParseJsonBody(text, out)) {
      return ValidationErrors({*problem});
    }
  }
  if (!out->is_object()) {
    return ValidationErrors(
        {FieldError{{"body"}, "Input should be a valid dictionary", "dict_type"}});
  }
  return std::nullopt;
}

}  // namespace sendq::api
