#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>

#include "util/log.h"

int main(int argc, char** argv) {
  // Unit tests exercise failure paths on purpose; their warnings are noise unless asked for.
  sendq::log::Level level = sendq::log::Level::kError;
  if (const char* env = std::getenv("SENDQ_TEST_LOG_LEVEL")) sendq::log::ParseLevel(env, &level);
  sendq::log::SetLevel(level);
  doctest::Context context(argc, argv);
  return context.run();
}
