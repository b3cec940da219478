// The raylets' own figures (GetNodeStats: workers, object store, GPU devices) for `shoal status
// -v` and the dashboard: one call per alive node of the GCS's status reply.
// Threading: any thread; blocks up to `timeout` per node.
#pragma once

#include <map>
#include <string>

#include "absl/time/time.h"
#include "shoal/gcs.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/rpc_client.h"

namespace shoal::cluster {

// GetNodeStats of every alive node in `status` that answers within `timeout`, by node id,
// through `raylets`' stubs (a caller that asks again keeps its cache; the CLI makes one).
std::map<std::string, rpc::GetNodeStatsReply> FetchNodeStats(const rpc::GetClusterStatusReply& status,
                                                              absl::Duration timeout,
                                                              StubCache<rpc::LeaseService>& raylets);

}  // namespace shoal::cluster
