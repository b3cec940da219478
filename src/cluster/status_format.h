// How `shoal status` and the dashboard show a cluster: a table for people and a JSON document for programs.
// Pure functions of the GCS's reply, so they are tested without a cluster.
//
// Quantities arrive in fixed point (10000 units == 1.0). `memory` and `object_store_memory`
// are bytes and print as GiB; `node:*` resources are internal and are left out of the table
// (the JSON keeps everything).
// Threading: any thread.
#pragma once

#include <map>
#include <string>

#include "nlohmann/json.hpp"
#include "shoal/gcs.pb.h"
#include "shoal/raylet.pb.h"

namespace shoal::cluster {

// The human-readable report: nodes, cluster resources used/total (without the bundle-formatted
// names of placement groups), demands, and placement groups (counts by state, then each group not
// created yet with the bundles it waits for, "(infeasible)" when no nodes could hold it).
std::string FormatClusterStatus(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address);

// `shoal status -v`: for each node, its resources used/total, each GPU device's share in use,
// its object store (used/capacity, objects, spilled) and workers (leased, idle, queued lease
// requests), from the raylets' GetNodeStats (`stats`, by node id; a node missing there is
// shown as "(no answer)").
std::string FormatNodeDetails(const rpc::GetClusterStatusReply& reply,
                              const std::map<std::string, rpc::GetNodeStatsReply>& stats);
// One raylet's GetNodeStats as JSON ("gpu_used_per_device", "object_store", "workers").
nlohmann::json NodeStatsToJson(const rpc::GetNodeStatsReply& stats);

// {"gcs_address", "storage", "nodes": [...], "total", "available", "used", "demands": [...],
//  "placement_groups": {"by_state": {...}, "pending": [...]}},
// quantities as floating-point numbers.
nlohmann::json ClusterStatusToJson(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address);

// One placement group: {"placement_group_id" (hex), "name", "namespace", "state", "strategy",
// "bundles": [{"bundle_index", "resources", "label_selector", "node_id"}], "job_id",
// "creator_address", "detached", "create_time_ms", "created_time_ms", "remove_time_ms",
// "pending_reason", "infeasible"}; quantities as floating-point numbers.
nlohmann::json PlacementGroupToJson(const rpc::PlacementGroupInfo& group);

}  // namespace shoal::cluster
