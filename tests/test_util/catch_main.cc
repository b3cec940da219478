// Catch2's main(), compiled once for every test binary.
// Shoal's own logging is off so that it does not bury Catch's report; set SHOAL_TEST_LOG to a
// spdlog level ("info", "debug") to see it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  const char* level = std::getenv("SHOAL_TEST_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
  return Catch::Session().run(argc, argv);
}
