// The one question the CLI asks a running cluster: its status, from the GCS.
// Threading: any thread; each call makes its own channel.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shoal/gcs.pb.h"

namespace shoal::cli {

// Calls ClusterStatusService.GetClusterStatus on the GCS at `address` ("host:port").
// Waits up to `timeout` for a GCS to answer, so one that is starting or restarting is not
// an error. InvalidArgument for a malformed address; Unavailable, naming the address, when
// none answers in time.
absl::StatusOr<rpc::GetClusterStatusReply> FetchClusterStatus(const std::string& address, absl::Duration timeout);

}  // namespace shoal::cli
