#include "src/worker/worker_config.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>

namespace shoal {
namespace {

struct Env {
  std::map<std::string, std::string> vars;
  WorkerConfig::Getenv Fn() const {
    return [this](const char* name) {
      auto it = vars.find(name);
      return it == vars.end() ? std::string() : it->second;
    };
  }
};

Env Complete() {
  Env env;
  env.vars = {{"SHOAL_WORKER_ID", WorkerId::FromRandom().Hex()},
              {"SHOAL_RAYLET_ADDRESS", "10.1.2.3:4567"},
              {"SHOAL_NODE_ID", NodeId::FromRandom().Hex()},
              {"SHOAL_STORE_SOCKET", "/tmp/store.sock"},
              {"SHOAL_JOB_ID", JobId::FromInt(9).Hex()},
              {"SHOAL_GCS_ADDRESS", "10.1.2.1:6379"}};
  return env;
}

TEST_CASE("worker config: read from the raylet's environment", "[worker_config]") {
  Env env = Complete();
  auto config = WorkerConfig::FromEnvironment(env.Fn());
  REQUIRE(config.ok());
  CHECK(config->mode == CoreWorkerOptions::Mode::kWorker);
  CHECK(config->raylet_address == "10.1.2.3:4567");
  CHECK(config->gcs_address == "10.1.2.1:6379");
  CHECK(config->node_ip == "10.1.2.3");  // the raylet's host by default
  CHECK(config->job_id == JobId::FromInt(9));
  CHECK(config->worker_id.Hex() == env.vars["SHOAL_WORKER_ID"]);
  CHECK_FALSE(config->worker_command.empty());  // this test binary's own command line

  env.vars["SHOAL_NODE_IP"] = "192.168.0.7";
  CHECK(WorkerConfig::FromEnvironment(env.Fn())->node_ip == "192.168.0.7");
}

TEST_CASE("worker config: a missing or malformed variable is named", "[worker_config]") {
  for (const char* name : {"SHOAL_WORKER_ID", "SHOAL_RAYLET_ADDRESS", "SHOAL_NODE_ID", "SHOAL_STORE_SOCKET",
                           "SHOAL_JOB_ID"}) {
    Env env = Complete();
    env.vars.erase(name);
    auto config = WorkerConfig::FromEnvironment(env.Fn());
    REQUIRE_FALSE(config.ok());
    CHECK(absl::IsInvalidArgument(config.status()));
    CHECK_THAT(std::string(config.status().message()), Catch::Contains(name));
  }
  for (const char* name : {"SHOAL_WORKER_ID", "SHOAL_RAYLET_ADDRESS", "SHOAL_NODE_ID", "SHOAL_JOB_ID"}) {
    Env env = Complete();
    env.vars[name] = "not-valid";
    auto config = WorkerConfig::FromEnvironment(env.Fn());
    REQUIRE_FALSE(config.ok());
    CHECK(absl::IsInvalidArgument(config.status()));
    CHECK_THAT(std::string(config.status().message()), Catch::Contains(name));
  }
}

}  // namespace
}  // namespace shoal
