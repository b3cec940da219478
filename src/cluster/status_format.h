// How `shoal status` and the dashboard show a cluster: a table for people and a JSON document for programs.
// Pure functions of the GCS's reply, so they are tested without a cluster.
//
// Quantities arrive in fixed point (10000 units == 1.0). `memory` and `object_store_memory`
// are bytes and print as GiB; `node:*` resources are internal and are left out of the table
// (the JSON keeps everything).
// Threading: any thread.
#pragma once

#include <string>

#include "nlohmann/json.hpp"
#include "shoal/gcs.pb.h"

namespace shoal::cluster {

// The human-readable report: nodes, cluster resources used/total, demands.
std::string FormatClusterStatus(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address);

// {"gcs_address", "storage", "nodes": [...], "total", "available", "used", "demands": [...]},
// quantities as floating-point numbers.
nlohmann::json ClusterStatusToJson(const rpc::GetClusterStatusReply& reply, const std::string& gcs_address);

}  // namespace shoal::cluster
