// The main() of the integration test drivers (shoal_task_driver, shoal_actor_driver):
// `<driver> <scenario> [--address HOST:PORT] [flags]` runs one scenario against a cluster and
// prints its result as one JSON line; an exception becomes {"exception": what} and exit code 3,
// an unknown scenario or bad flag the usage and exit code 2.
#pragma once

#include <iostream>
#include <map>
#include <string>

#include "nlohmann/json.hpp"
#include "shoal/api.h"
#include "src/common/flags.h"

namespace driver {

// `flags` has the scenario flags registered; `f.address` is registered here.
template <typename F>
int RunDriver(int argc, char** argv, const std::string& name, shoal::FlagSet& flags, F& f,
              const std::map<std::string, int (*)(const F&)>& commands) {
  const std::string command = argc > 1 ? argv[1] : "";
  flags.AddString("address", &f.address, "GCS address (default: $SHOAL_ADDRESS, else a local cluster)");
  absl::Status parsed = flags.Parse(argc, argv, argc > 1 ? 2 : 1);
  try {
    shoal::InitOptions options;
    options.address = f.address;
    shoal::Init(options);
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"exception", e.what()}} << std::endl;
    return 3;
  }
  if (commands.count(command) == 0 || !parsed.ok()) {
    std::cerr << (parsed.ok() ? "" : std::string(parsed.message()) + "\n") << "usage: " << name << " <";
    for (const auto& [scenario, fn] : commands) std::cerr << scenario << "|";
    std::cerr << "> [--address HOST:PORT] [flags]\n" << flags.Usage();
    shoal::Shutdown();
    return 2;
  }
  try {
    int code = commands.at(command)(f);
    shoal::Shutdown();
    return code;
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"exception", e.what()}} << std::endl;
    shoal::Shutdown();
    return 3;
  }
}

}  // namespace driver
