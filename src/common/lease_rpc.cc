#include "src/common/lease_rpc.h"

#include "spdlog/spdlog.h"

namespace shoal {

void ReturnLease(AsyncCalls& calls, StubCache<rpc::LeaseService>& raylets, const std::string& raylet_address,
                 const std::string& lease_id, bool worker_failed) {
  rpc::ReturnWorkerRequest request;
  request.set_lease_id(lease_id);
  request.set_worker_failed(worker_failed);
  calls.Start(raylets.Get(raylet_address), &rpc::LeaseService::Stub::async::ReturnWorker, std::move(request),
              {.timeout = absl::Seconds(10)}, [lease_id, raylet_address](absl::Status status, rpc::ReturnWorkerReply) {
                if (!status.ok() && !absl::IsNotFound(status)) {
                  spdlog::warn("returning lease {} to raylet {} failed: {}", lease_id, raylet_address,
                               status.ToString());
                }
              });
}

}  // namespace shoal
