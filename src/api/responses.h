// The API's answers in JSON: the one place where a core Status becomes an HTTP status and body.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/server.h"
#include "queue/validation.h"
#include "util/status.h"

namespace sendq::api {

// Ordered, so records keep their natural field order (id, status, ...), as AgentPhone's do.
using Json = nlohmann::ordered_json;

http::Response JsonResponse(int status, const Json& body);
// Errors other than validation: FastAPI's {"detail": "..."} plus a stable machine code.
http::Response ErrorResponse(int status, std::string_view code, std::string_view msg);
// AgentPhone's 422: {"detail": [{"loc", "msg", "type"}, ...]}.
http::Response ValidationErrors(const std::vector<FieldError>& errors);
// The one mapping from a core Status to an HTTP answer.
http::Response StatusResponse(const Status& st);

// A request body that must be a JSON object (an empty body is {}): the 422 to answer when it is
// not.
std::optional<http::Response> ParseObjectBody(const std::string& text, nlohmann::json* out);

}  // namespace sendq::api
