#include "src/cluster/node_stats.h"

#include "absl/strings/str_cat.h"

namespace shoal::cluster {

std::map<std::string, rpc::GetNodeStatsReply> FetchNodeStats(const rpc::GetClusterStatusReply& status,
                                                              absl::Duration timeout,
                                                              StubCache<rpc::LeaseService>& raylets) {
  std::map<std::string, rpc::GetNodeStatsReply> out;
  for (const rpc::NodeInfo& node : status.nodes()) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    rpc::GetNodeStatsReply reply;
    absl::Status s = UnaryCall(*raylets.Get(absl::StrCat(node.address(), ":", node.raylet_port())),
                               &rpc::LeaseService::Stub::GetNodeStats, rpc::GetNodeStatsRequest(), &reply,
                               {.timeout = timeout});
    if (s.ok()) out[node.node_id()] = std::move(reply);
  }
  return out;
}

}  // namespace shoal::cluster
