#include "src/gcs_client/node_stats.h"

#include "absl/strings/str_cat.h"

namespace shoal {

std::map<std::string, rpc::GetNodeStatsReply> FetchNodeStats(const std::vector<rpc::NodeInfo>& nodes,
                                                              absl::Duration timeout,
                                                              StubCache<rpc::LeaseService>& raylets,
                                                              bool include_workers) {
  rpc::GetNodeStatsRequest request;
  request.set_include_workers(include_workers);
  std::map<std::string, rpc::GetNodeStatsReply> out;
  for (const rpc::NodeInfo& node : nodes) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    rpc::GetNodeStatsReply reply;
    absl::Status s = UnaryCall(*raylets.Get(absl::StrCat(node.address(), ":", node.raylet_port())),
                               &rpc::LeaseService::Stub::GetNodeStats, request, &reply, {.timeout = timeout});
    if (s.ok()) out[node.node_id()] = std::move(reply);
  }
  return out;
}

}  // namespace shoal
