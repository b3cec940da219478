#include "src/cluster/status_format.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "tests/test_util/resource_helpers.h"

namespace shoal::cluster {
namespace {

using test_util::ResourceMapOf;

rpc::GetClusterStatusReply TwoNodes() {
  rpc::GetClusterStatusReply reply;
  reply.set_storage("memory");
  rpc::NodeInfo* head = reply.add_nodes();
  head->set_node_id("aaaaaaaaaaaaaaaaaaaa");
  head->set_address("127.0.0.1");
  head->set_raylet_port(7001);
  head->set_is_head(true);
  head->set_state(rpc::NodeInfo::ALIVE);
  *head->mutable_resources_total() = ResourceMapOf({{"CPU", 4}, {"memory", 2.0 * (1 << 30)}, {"node:127.0.0.1", 1}});
  *head->mutable_resources_available() = ResourceMapOf({{"CPU", 1.5}, {"memory", 1.0 * (1 << 30)}, {"node:127.0.0.1", 1}});
  rpc::NodeInfo* gone = reply.add_nodes();
  gone->set_node_id("bbbbbbbbbbbbbbbbbbbb");
  gone->set_address("127.0.0.2");
  gone->set_raylet_port(7002);
  gone->set_state(rpc::NodeInfo::DEAD);
  gone->set_death_reason("health checks failed");
  *gone->mutable_resources_total() = ResourceMapOf({{"GPU", 2}});
  *reply.mutable_total() = head->resources_total();
  *reply.mutable_available() = head->resources_available();
  rpc::ResourceDemand* demand = reply.add_demands();
  *demand->mutable_shape() = ResourceMapOf({{"GPU", 4}});
  demand->set_count(3);
  demand->set_infeasible(true);
  return reply;
}

TEST_CASE("FormatClusterStatus: nodes, used/total and demands for people", "[status_format]") {
  const std::string text = FormatClusterStatus(TwoNodes(), "127.0.0.1:6379");
  CHECK(absl::StartsWith(text, "Shoal cluster at 127.0.0.1:6379 (GCS storage: memory)\n"));
  CHECK(absl::StrContains(text, "Nodes: 1 alive, 1 dead"));
  CHECK(absl::StrContains(text, "aaaaaaaaaaaa  127.0.0.1:7001  ALIVE"));
  CHECK(absl::StrContains(text, "CPU 2.5/4, memory 1.00/2.00 GiB"));  // used/total, bytes as GiB
  CHECK(absl::StrContains(text, "DEAD (health checks failed)"));
  CHECK(absl::StrContains(text, "GPU 2"));                            // a dead node: its totals
  CHECK_FALSE(absl::StrContains(text, "node:127.0.0.1"));            // internal resources left out
  CHECK(absl::StrContains(text, "  2.5/4 CPU\n"));
  CHECK(absl::StrContains(text, " * 3 infeasible"));
  // The head comes first.
  CHECK(text.find("aaaaaaaaaaaa") < text.find("bbbbbbbbbbbb"));
}

TEST_CASE("FormatClusterStatus: an empty cluster says so", "[status_format]") {
  const std::string text = FormatClusterStatus(rpc::GetClusterStatusReply(), "h:1");
  CHECK(absl::StrContains(text, "(no nodes)"));
  CHECK(absl::StrContains(text, "(no resources)"));
  CHECK(absl::StrContains(text, "(no resource demands)"));
}

TEST_CASE("ClusterStatusToJson keeps everything, quantities as numbers", "[status_format]") {
  nlohmann::json json = ClusterStatusToJson(TwoNodes(), "127.0.0.1:6379");
  CHECK(json["gcs_address"] == "127.0.0.1:6379");
  CHECK(json["storage"] == "memory");
  REQUIRE(json["nodes"].size() == 2);
  CHECK(json["nodes"][0]["is_head"] == true);
  CHECK(json["nodes"][1]["state"] == "DEAD");
  CHECK(json["total"]["CPU"] == 4.0);
  CHECK(json["used"]["CPU"] == 2.5);
  CHECK(json["total"]["node:127.0.0.1"] == 1.0);
  REQUIRE(json["demands"].size() == 1);
  CHECK(json["demands"][0]["count"] == 3);
  CHECK(json["demands"][0]["infeasible"] == true);
}

// TwoNodes with a created group's bundle on the head and two groups waiting.
rpc::GetClusterStatusReply WithPlacementGroups() {
  rpc::GetClusterStatusReply reply = TwoNodes();
  const std::string pg_hex = std::string(36, 'c');
  const std::string bundle_cpu = "CPU_group_0_" + pg_hex;
  rpc::NodeInfo* head = reply.mutable_nodes(0);
  (*head->mutable_resources_total()->mutable_amounts())[bundle_cpu] = 10000;
  (*head->mutable_resources_available()->mutable_amounts())[bundle_cpu] = 10000;
  (*reply.mutable_total()->mutable_amounts())["bundle_group_" + pg_hex] = 10000000;
  (*reply.mutable_placement_groups_by_state())["CREATED"] = 1;
  (*reply.mutable_placement_groups_by_state())["PENDING"] = 2;
  (*reply.mutable_placement_groups_by_state())["REMOVED"] = 0;
  rpc::PlacementGroupInfo* waiting = reply.add_pending_placement_groups();
  waiting->set_placement_group_id(std::string(18, '\x01'));
  waiting->set_name("trainers");
  waiting->set_strategy(rpc::PlacementGroupInfo::STRICT_SPREAD);
  for (int i = 0; i < 2; ++i) {
    rpc::Bundle* b = waiting->add_bundles();
    b->set_bundle_index(i);
    *b->mutable_resources() = ResourceMapOf({{"CPU", 1}});
  }
  rpc::PlacementGroupInfo* infeasible = reply.add_pending_placement_groups();
  infeasible->set_placement_group_id(std::string(18, '\x02'));
  infeasible->set_infeasible(true);
  *infeasible->add_bundles()->mutable_resources() = ResourceMapOf({{"GPU", 8}});
  return reply;
}

TEST_CASE("FormatClusterStatus: placement groups by state, pending ones with their bundles", "[status_format]") {
  const std::string text = FormatClusterStatus(WithPlacementGroups(), "127.0.0.1:6379");
  CHECK_FALSE(absl::StrContains(text, "_group_"));  // bundle resources are shown as the groups
  CHECK(absl::StrContains(text, "CPU 2.5/4, memory 1.00/2.00 GiB"));
  CHECK(absl::StrContains(text, "Placement groups:\n  1 CREATED, 2 PENDING, 0 RESCHEDULING, 0 REMOVED\n"));
  CHECK(absl::StrContains(text, "  010101010101 'trainers' PENDING STRICT_SPREAD: {CPU: 1}, {CPU: 1}\n"));
  CHECK(absl::StrContains(text, "  020202020202 PENDING PACK: {GPU: 8} (infeasible)\n"));
  // No groups: no section.
  CHECK_FALSE(absl::StrContains(FormatClusterStatus(TwoNodes(), "h:1"), "Placement groups"));
}

TEST_CASE("ClusterStatusToJson lists placement groups", "[status_format]") {
  nlohmann::json json = ClusterStatusToJson(WithPlacementGroups(), "127.0.0.1:6379");
  CHECK(json["placement_groups"]["by_state"]["PENDING"] == 2);
  REQUIRE(json["placement_groups"]["pending"].size() == 2);
  const auto& first = json["placement_groups"]["pending"][0];
  CHECK(first["placement_group_id"] == "010101010101010101010101010101010101");
  CHECK(first["name"] == "trainers");
  CHECK(first["strategy"] == "STRICT_SPREAD");
  CHECK(first["bundles"][1]["resources"]["CPU"] == 1.0);
  CHECK(json["placement_groups"]["pending"][1]["infeasible"] == true);
}

TEST_CASE("FormatNodeDetails: each node's resources, GPU devices, store and workers", "[status_format]") {
  rpc::GetNodeStatsReply stats;
  stats.set_num_workers(3);
  stats.set_num_leased_workers(2);
  stats.set_num_idle_workers(1);
  stats.set_num_queued_leases(4);
  stats.set_store_capacity_bytes(int64_t{2} << 30);
  stats.set_store_used_bytes(int64_t{1} << 29);
  stats.set_store_num_objects(7);
  stats.set_store_spilled_bytes(0);
  stats.add_gpu_free(2500);   // a quarter of device 0 free
  stats.add_gpu_free(10000);  // device 1 free
  const std::string text = FormatNodeDetails(TwoNodes(), {{"aaaaaaaaaaaaaaaaaaaa", stats}});
  INFO(text);
  CHECK(absl::StrContains(text, "Node aaaaaaaaaaaaaaaaaaaa (127.0.0.1:7001, head, ALIVE)\n    2.5/4 CPU\n"));
  CHECK(absl::StrContains(text, "    GPU0: 0.75/1 in use\n    GPU1: 0.00/1 in use\n"));
  CHECK(absl::StrContains(text, "object store: 0.50/2.00 GiB, 7 objects, 0.00 GiB spilled (0 objects)"));
  CHECK(absl::StrContains(text, "workers: 3 (2 leased, 1 idle), 4 lease requests queued"));
  // The dead node: its totals, no raylet figures; an alive node that did not answer says so.
  CHECK(absl::StrContains(text, "Node bbbbbbbbbbbbbbbbbbbb (127.0.0.2:7002, worker, DEAD"));
  CHECK_FALSE(absl::StrContains(text, "no answer"));
  CHECK(absl::StrContains(FormatNodeDetails(TwoNodes(), {}), "(no answer from its raylet)"));
  const nlohmann::json json = NodeStatsToJson(stats);
  CHECK(json["workers"]["queued_leases"] == 4);
  CHECK(json["object_store"]["objects"] == 7);
  CHECK(json["gpu_used_per_device"][0] == 0.75);
}

}  // namespace
}  // namespace shoal::cluster
