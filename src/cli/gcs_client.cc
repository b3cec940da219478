// GetClusterStatus over gRPC; see gcs_client.h.
#include "src/cli/gcs_client.h"

#include "absl/strings/str_cat.h"
#include "shoal/gcs.grpc.pb.h"
#include "src/common/rpc.h"

namespace shoal::cli {

absl::StatusOr<rpc::GetClusterStatusReply> FetchClusterStatus(const std::string& address, absl::Duration timeout) {
  if (absl::StatusOr<std::pair<std::string, int>> parsed = ParseHostPort(address); !parsed.ok()) {
    return parsed.status();
  }
  auto stub = rpc::ClusterStatusService::NewStub(MakeChannel(address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(true);  // a GCS that is starting or restarting gets `timeout` to answer
  rpc::GetClusterStatusReply reply;
  grpc::Status status = stub->GetClusterStatus(&context, rpc::GetClusterStatusRequest(), &reply);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::UnavailableError(
        absl::StrCat("no GCS answers at ", address, " (waited ", absl::FormatDuration(timeout), ")"));
  }
  if (!status.ok()) {
    absl::Status error = FromGrpcStatus(status);
    return absl::Status(error.code(), absl::StrCat("the GCS at ", address, " failed: ", error.message()));
  }
  return reply;
}

}  // namespace shoal::cli
