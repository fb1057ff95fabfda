#include "queue/guards.h"

#include <doctest/doctest.h>

namespace sendq {
namespace {

TEST_CASE("guards: a cap is COUNT/WINDOW") {
  auto hourly = ParseCountPerWindow("20/h");
  REQUIRE(hourly.ok());
  CHECK(hourly->count == 20);
  CHECK(hourly->window == 3'600'000);
  auto custom = ParseCountPerWindow("5/30m");
  REQUIRE(custom.ok());
  CHECK(custom->window == 1'800'000);
  CHECK(ParseCountPerWindow("100/d")->window == 86'400'000);
  for (const char* bad : {"", "20", "/h", "0/h", "20/", "20/x", "-1/h", "2.5/h", "20/h/h"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseCountPerWindow(bad).ok());
  }
}

TEST_CASE("guards: the body hash is FNV-1a, stable across builds (it is stored)") {
  CHECK(BodyHash("") == static_cast<int64_t>(14695981039346656037ULL));
  CHECK(BodyHash("a") == static_cast<int64_t>(0xaf63dc4c8601ec8cULL));
  CHECK(BodyHash("Hello") != BodyHash("hello"));
}

}  // namespace
}  // namespace sendq
