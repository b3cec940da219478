// `shoal status`: asks the GCS for the cluster's nodes, resources and demands and prints them.
//
// The GCS address comes from --address, else $SHOAL_ADDRESS, else the current-cluster file
// written by `shoal start --head` on this machine.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "src/cli/commands.h"
#include "src/cluster/local_state.h"
#include "src/cluster/status_format.h"
#include "src/cluster/token.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/gcs_client/gcs_client.h"
#include "src/gcs_client/node_stats.h"

namespace shoal::cli {
namespace {

constexpr absl::Duration kStatusTimeout = absl::Seconds(5);

constexpr char kHelp[] = R"(
Shows the cluster's nodes, its resources (used/total) and the resource demands waiting for room.
With -v (--verbose), also each node's resources, GPU devices, object store and workers, as its
raylet reports them.
The GCS address comes from --address, else $SHOAL_ADDRESS, else the cluster last started on
this machine with `shoal start --head`. The cluster's token: $SHOAL_AUTH_TOKEN, else the file
named by $SHOAL_AUTH_TOKEN_FILE, else (for the cluster started here) its session's auth_token.
)";

}  // namespace

int RunStatus(int argc, char** argv) {
  std::string address;
  bool json = false;
  bool verbose = false;
  FlagSet flags("shoal status");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddBool("json", &json, "print a JSON document instead of a table");
  flags.AddBool("verbose", &verbose, "also each node's details from its raylet (-v, as Ray's `ray status -v`)");
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& arg : args) {
    if (arg == "-v") arg = "--verbose";  // Ray's short form
  }
  std::vector<char*> arg_ptrs;
  for (std::string& arg : args) arg_ptrs.push_back(arg.data());
  if (std::optional<int> done = ParseCommandFlags(flags, argc, arg_ptrs.data(), kHelp)) return *done;

  absl::StatusOr<std::string> resolved = ConnectToCluster(flags, address);
  if (!resolved.ok()) return absl::IsInvalidArgument(resolved.status()) ? UsageError(resolved.status()) : Fail(resolved.status());
  absl::StatusOr<rpc::GetClusterStatusReply> reply = GcsClient({.address = *resolved, .timeout = kStatusTimeout}).GetClusterStatus();
  if (!reply.ok()) return Fail(reply.status());

  std::map<std::string, rpc::GetNodeStatsReply> stats;
  if (verbose) {
    ChannelCache channels;
    StubCache<rpc::LeaseService> raylets(channels);
    stats = FetchNodeStats({reply->nodes().begin(), reply->nodes().end()}, kStatusTimeout, raylets);
  }
  if (json) {
    nlohmann::json out = cluster::ClusterStatusToJson(*reply, *resolved);
    if (verbose) {
      out["node_stats"] = nlohmann::json::object();
      for (const auto& [node_id, s] : stats) out["node_stats"][node_id] = cluster::NodeStatsToJson(s);
    }
    std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else {
    std::cout << cluster::FormatClusterStatus(*reply, *resolved);
    if (verbose) std::cout << "\n" << cluster::FormatNodeDetails(*reply, stats);
  }
  return kExitOk;
}

}  // namespace shoal::cli
