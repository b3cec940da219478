// A job's entrypoint, run on the node whose raylet granted the job's entrypoint resources.
//
// The dashboard holds those resources as a worker lease whose worker is `shoal-dashboard
// --lease-holder` (cluster_client.h). That holder serves EntrypointService (proto/shoal/
// raylet.proto, authenticated like every Shoal RPC): RunOnHolder asks it to run the entrypoint,
// and it streams the output back into the job's log on the head. The raylet started the holder
// inside the lease's runtime environment (the job's working_dir as its directory, its env_vars,
// a virtualenv first on PATH), so the entrypoint runs in it too, with the lease's GPUs in
// CUDA_VISIBLE_DEVICES, and its driver joins that node's raylet.
//
// Ending: a stop cancels the call (SIGTERM to the entrypoint's process group, SIGKILL after the
// grace); the dashboard's death breaks the call, which does the same; the holder's death (the
// lease returned, the node gone) is seen by a guard process that kills the group.
// Threading: EntrypointRunner serves one Run at a time (a holder runs one entrypoint);
// RunOnHolder blocks its caller until the entrypoint ends.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "shoal/raylet.grpc.pb.h"

namespace shoal::dashboard {

// The holder's side.
class EntrypointRunner final : public rpc::EntrypointService::Service {
 public:
  grpc::Status Run(grpc::ServerContext* context, const rpc::RunEntrypointRequest* request,
                   grpc::ServerWriter<rpc::EntrypointOutput>* writer) override;
  bool started() const { return running_; }
  // True once a Run has ended: the holder's work is done.
  bool finished() const { return finished_; }

 private:
  std::atomic<bool> running_{false};
  std::atomic<bool> finished_{false};
};

// How a remote entrypoint ended.
struct EntrypointExit {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;
};

// The dashboard's side: runs `request` on the holder at `address`, appending its output to
// `log_fd`; `on_started` gets the entrypoint's pid on its node. `context` is the caller's, so
// that another thread can stop the entrypoint with context->TryCancel() (the answer is then
// Cancelled). Unavailable when the holder cannot be reached or goes away mid-run.
absl::StatusOr<EntrypointExit> RunOnHolder(const std::string& address, const rpc::RunEntrypointRequest& request,
                                           int log_fd, grpc::ClientContext* context,
                                           const std::function<void(int64_t pid)>& on_started);

}  // namespace shoal::dashboard
