#include "src/worker/worker_config.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "src/gcs/gcs_server.h"
#include "src/gcs/store_client.h"
#include "src/gcs_client/gcs_client.h"
#include "tests/test_util/status_matchers.h"

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

// A GCS in this process listing one alive head node and one other node.
struct DriverCluster {
  DriverCluster() {
    GcsOptions options;
    options.port = 0;
    server = std::make_unique<GcsServer>(std::make_unique<InMemoryStoreClient>(), options);
    REQUIRE_OK(server->Start());
    address = absl::StrCat("127.0.0.1:", server->port());
    GcsClient gcs({.address = address});
    REQUIRE_OK(gcs.RegisterNode(Node(head, 7001, true)));
    REQUIRE_OK(gcs.RegisterNode(Node(other, 7002, false)));
  }
  static rpc::NodeInfo Node(const NodeId& id, int port, bool is_head) {
    rpc::NodeInfo node;
    node.set_node_id(id.Hex());
    node.set_address("127.0.0.1");
    node.set_raylet_port(port);
    node.set_is_head(is_head);
    node.set_object_store_socket(absl::StrCat("/tmp/store-", port, ".sock"));
    return node;
  }
  std::unique_ptr<GcsServer> server;
  std::string address;
  NodeId head = NodeId::FromRandom(), other = NodeId::FromRandom();
  RealClock clock;
};

TEST_CASE("worker config: a driver joins the head node, or the raylet it names", "[worker_config]") {
  DriverCluster cluster;
  CoreWorkerOptions options;
  options.gcs_address = cluster.address;
  options.worker_command = {"my-worker", "--flag"};
  auto config = WorkerConfig::ForDriver(options, cluster.clock, absl::Seconds(10));
  REQUIRE_OK(config);
  CHECK(config->mode == CoreWorkerOptions::Mode::kDriver);
  CHECK(config->node_id == cluster.head);
  CHECK(config->raylet_address == "127.0.0.1:7001");
  CHECK(config->node_ip == "127.0.0.1");
  CHECK(config->store_socket == "/tmp/store-7001.sock");
  CHECK(config->gcs_address == cluster.address);
  CHECK(config->worker_command == options.worker_command);
  CHECK_FALSE(config->worker_id.IsNil());

  options.raylet_address = "127.0.0.1:7002";
  config = WorkerConfig::ForDriver(options, cluster.clock, absl::Seconds(10));
  REQUIRE_OK(config);
  CHECK(config->node_id == cluster.other);

  options.raylet_address = "127.0.0.1:7999";  // no such node: NotFound once the wait ran out
  REQUIRE_CODE(WorkerConfig::ForDriver(options, cluster.clock, absl::Milliseconds(300)), kNotFound);
  options.gcs_address = "no port";
  REQUIRE_CODE(WorkerConfig::ForDriver(options, cluster.clock, absl::Seconds(10)), kInvalidArgument);
}

}  // namespace
}  // namespace shoal
