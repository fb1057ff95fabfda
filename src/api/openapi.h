// The OpenAPI 3.1 document of the whole API (docs/openapi.json, embedded at build time), and
// the routes the server registers, for the test that keeps the two the same.
#pragma once

#include <string>
#include <vector>

namespace sendq::api {

const std::string& OpenApiDocument();

// Every route as "METHOD /path/{param}", in the order they are matched.
std::vector<std::string> RegisteredRoutes();

}  // namespace sendq::api
