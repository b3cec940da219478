// The core worker's asynchronous RPCs over gRPC's callback API: the TaskTransport calls, plus
// GetObject (a borrower asking an owner) and FreeObjects (an owner dropping store copies).
// Keeps one channel and stub per address, for the transport's lifetime. Calls that may wait forever (lease requests, pushes,
// GetObject) are cancelled by Shutdown, which then waits for every outstanding callback.
// Threading: any thread; callbacks run on gRPC's threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.grpc.pb.h"
#include "src/common/ids.h"
#include "src/worker/actor_submitter.h"
#include "src/worker/owned_objects.h"
#include "src/worker/task_transport.h"

namespace shoal {

class GrpcTransport : public TaskTransport, public ActorTransport, public ObjectTransport {
 public:
  using GetObjectCallback = ObjectTransport::GetObjectCallback;
  using PushCallback = TaskTransport::PushCallback;  // the same type as ActorTransport's

  GrpcTransport() = default;
  ~GrpcTransport() override;  // Shutdown(2 s)
  GrpcTransport(const GrpcTransport&) = delete;
  GrpcTransport& operator=(const GrpcTransport&) = delete;

  void RequestWorkerLease(const std::string& raylet_address, rpc::RequestWorkerLeaseRequest request,
                          LeaseCallback done) override;
  void ReturnWorker(const std::string& raylet_address, const std::string& lease_id, bool worker_failed) override;
  void PushTask(const std::string& worker_address, rpc::PushTaskRequest request, PushCallback done) override;

  // Asks the owner at `owner_address` for `id`'s value, waiting until it is ready.
  void GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) override;
  // Asks the raylet at `raylet_address` to delete `ids` from its store; fire and forget.
  void FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) override;

  // Cancels the calls that may wait forever and waits up to `timeout` until no callback is
  // outstanding. Calls made afterwards are dropped (their callbacks never run). Idempotent.
  void Shutdown(absl::Duration timeout);

  // At shutdown, after Shutdown(): asks every raylet this transport talked to to end the leases
  // and drop the queued requests of `owner_address` (grants that raced with cancellation).
  // Blocks up to `timeout` per raylet.
  void ReleaseOwnerLeases(const std::string& owner_address, absl::Duration timeout);
  // Tells the raylet that this leased worker starts (or stops) waiting for objects, so that it
  // can lend the lease's CPUs meanwhile. Blocks up to `timeout`; best effort.
  void NotifyWorkerBlocked(const std::string& raylet_address, const WorkerId& worker, bool blocked,
                           absl::Duration timeout);
  // Delivers output lines to the worker at `address` (PrintLogs). Blocks up to `timeout`.
  absl::Status PrintLogs(const std::string& address, const std::vector<std::string>& lines, bool is_stderr,
                         absl::Duration timeout);
  // Long poll of the GCS at `gcs_address` for an actor's entry (ActorService.GetActorInfo).
  void GetActorInfo(const std::string& gcs_address, const ActorId& actor, int64_t after_version,
                    absl::Duration wait, std::function<void(absl::Status, rpc::GetActorInfoReply)> done) override;
  // Sends task events to the GCS; fire and forget.
  void ReportTaskEvents(const std::string& gcs_address, rpc::ReportTaskEventsRequest request);
  // Asks the worker at `address` to cancel the task it runs. Blocks up to `timeout`.
  absl::Status CancelTask(const std::string& address, const TaskId& task, bool force, absl::Duration timeout);

 private:
  // Stubs live as long as the transport (calls in flight use them).
  rpc::LeaseService::Stub* Raylet(const std::string& address);
  rpc::CoreWorkerService::Stub* Worker(const std::string& address);
  rpc::ActorService::Stub* Actors(const std::string& address);
  rpc::TaskEventService::Stub* TaskEvents(const std::string& address);
  // Starts one unary call: `start(ctx, request, reply, on_done)` issues it on a stub.
  template <typename Request, typename Reply, typename Start>
  void Issue(Start start, Request request, absl::Duration timeout, bool cancel_on_shutdown,
             std::function<void(absl::Status, Reply)> done);

  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_call_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, grpc::ClientContext*> cancellable_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<rpc::LeaseService::Stub>> raylets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<rpc::CoreWorkerService::Stub>> workers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<rpc::ActorService::Stub>> actor_services_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<rpc::TaskEventService::Stub>> task_event_services_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
