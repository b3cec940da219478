// Lease calls that every holder of worker leases makes alike: core workers (task owners) and
// the GCS's actor manager.
// Threading: any thread.
#pragma once

#include <string>

#include "shoal/raylet.grpc.pb.h"
#include "src/common/rpc_client.h"

namespace shoal {

// Gives the lease `lease_id` back to the raylet at `raylet_address` (LeaseService.ReturnWorker);
// fire and forget, with a 10 s deadline. Not cancelled by `calls`' Shutdown: a lease granted
// while its request was being cancelled still goes back. A failure is logged, except NotFound
// (the raylet already ended the lease).
void ReturnLease(AsyncCalls& calls, StubCache<rpc::LeaseService>& raylets, const std::string& raylet_address,
                 const std::string& lease_id, bool worker_failed);

}  // namespace shoal
