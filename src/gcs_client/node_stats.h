// The raylets' own figures (GetNodeStats: workers, object store, GPU devices), one call per
// alive node: for `shoal status -v`, the dashboard and the state API's worker list.
// Threading: any thread; blocks up to `timeout` per node.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "shoal/gcs.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/rpc_client.h"

namespace shoal {

// GetNodeStats of every alive node in `nodes` that answers within `timeout`, by node id, with
// each raylet's workers listed when `include_workers`; through `raylets`' stubs (a caller that
// asks again keeps its cache). A node that does not answer is missing from the map.
std::map<std::string, rpc::GetNodeStatsReply> FetchNodeStats(const std::vector<rpc::NodeInfo>& nodes,
                                                              absl::Duration timeout,
                                                              StubCache<rpc::LeaseService>& raylets,
                                                              bool include_workers = false);

}  // namespace shoal
