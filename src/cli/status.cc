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

namespace shoal::cli {
namespace {

constexpr absl::Duration kStatusTimeout = absl::Seconds(5);

constexpr char kHelp[] = R"(
Shows the cluster's nodes, its resources (used/total) and the resource demands waiting for room.
The GCS address comes from --address, else $SHOAL_ADDRESS, else the cluster last started on
this machine with `shoal start --head`. The cluster's token: $SHOAL_AUTH_TOKEN, else the file
named by $SHOAL_AUTH_TOKEN_FILE, else (for the cluster started here) its session's auth_token.
)";

}  // namespace

int RunStatus(int argc, char** argv) {
  std::string address;
  bool json = false;
  FlagSet flags("shoal status");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddBool("json", &json, "print a JSON document instead of a table");
  if (std::optional<int> done = ParseCommandFlags(flags, argc, argv, kHelp)) return *done;

  absl::StatusOr<std::string> resolved = ConnectToCluster(flags, address);
  if (!resolved.ok()) return absl::IsInvalidArgument(resolved.status()) ? UsageError(resolved.status()) : Fail(resolved.status());
  absl::StatusOr<rpc::GetClusterStatusReply> reply = GcsClient({.address = *resolved, .timeout = kStatusTimeout}).GetClusterStatus();
  if (!reply.ok()) return Fail(reply.status());

  if (json) {
    std::cout << cluster::ClusterStatusToJson(*reply, *resolved).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  } else {
    std::cout << cluster::FormatClusterStatus(*reply, *resolved);
  }
  return kExitOk;
}

}  // namespace shoal::cli
