// The core worker's RPCs to raylets, workers and the GCS: the TaskTransport calls, plus
// GetObject (a borrower asking an owner) and FreeObjects (an owner dropping store copies), over
// the generic client pieces (src/common/rpc_client.h): one channel per address, kept for the
// transport's lifetime. The GCS's calls (actor long polls) go through the GcsClient it is given.
// Calls that may wait forever (lease requests, pushes, GetObject) are cancelled by Shutdown,
// which then waits for every outstanding callback.
// Threading: any thread; callbacks run on gRPC's threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.grpc.pb.h"
#include "src/common/ids.h"
#include "src/common/rpc_client.h"
#include "src/gcs_client/gcs_client.h"
#include "src/worker/actor_submitter.h"
#include "src/worker/direct_push.h"
#include "src/worker/owned_objects.h"
#include "src/worker/push_streams.h"
#include "src/worker/task_transport.h"

namespace shoal {

class GrpcTransport : public TaskTransport, public ActorTransport, public ObjectTransport {
 public:
  using GetObjectCallback = ObjectTransport::GetObjectCallback;
  using PushCallback = TaskTransport::PushCallback;  // the same type as ActorTransport's

  // `gcs` answers GetActorInfo; its copy shares the caller's connection.
  explicit GrpcTransport(GcsClient gcs);
  ~GrpcTransport() override;  // Shutdown(2 s)
  // InvalidArgument, naming it, when $SHOAL_PUSH_STREAMS holds none of the values below.
  static absl::Status CheckEnvironment();
  GrpcTransport(const GrpcTransport&) = delete;
  GrpcTransport& operator=(const GrpcTransport&) = delete;

  void RequestWorkerLease(const std::string& raylet_address, rpc::RequestWorkerLeaseRequest request,
                          LeaseCallback done) override;
  void ReturnWorker(const std::string& raylet_address, const std::string& lease_id, bool worker_failed) override;
  // With a 5 s deadline: a raylet that does not answer by then is taken to know nothing.
  void ReturnFailedWorker(const std::string& raylet_address, const std::string& lease_id,
                          ReturnCallback done) override;
  void PushTask(const std::string& worker_address, SharedPushRequest request, PushCallback done) override;

  // Asks the owner at `owner_address` for `id`'s value, waiting until it is ready.
  void GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) override;
  // Asks the raylet at `raylet_address` to delete `ids` from its store; fire and forget.
  void FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) override;

  // Cancels the calls that may wait forever (the GcsClient's long polls too) and waits up to
  // `timeout` until no callback is outstanding. Calls made afterwards are dropped (their
  // callbacks never run). Idempotent.
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
  // Reports a streaming generator's item to its owner at `address`; blocks until the owner
  // answers (it holds the answer back while its consumer is behind: backpressure).
  absl::Status ReportGeneratorItem(const std::string& address, const rpc::ReportGeneratorItemRequest& request);
  // Long poll of the GCS for an actor's entry (GcsClient::AsyncGetActorInfo).
  void GetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration wait, InfoCallback done) override;
  // Asks the worker at `address` to cancel the task it runs. Blocks up to `timeout`.
  absl::Status CancelTask(const std::string& address, const TaskId& task, bool force, bool recursive,
                          absl::Duration timeout);
  // Asks `owner` to cancel the task it owns that returns `return_id` (this process borrows it).
  absl::Status CancelOwnedTask(const std::string& owner, const ObjectId& return_id, bool force, bool recursive,
                               absl::Duration timeout);

 private:
  // The worker's DirectPushPort answer (blocks up to 5 s).
  absl::StatusOr<int> DirectPushPort(const std::string& address);

  GcsClient gcs_;
  ChannelCache channels_;
  StubCache<rpc::LeaseService> raylets_{channels_};
  StubCache<rpc::CoreWorkerService> workers_{channels_};
  // How pushes go, by $SHOAL_PUSH_STREAMS (kept to compare them in benchmarks): unset or
  // "direct": over plain sockets (DirectPushes) where the worker takes them, else over its
  // PushTasks stream; "grpc": always over the stream; "0": one PushTask RPC each.
  enum class PushMode { kDirect, kStreams, kUnary };
  static absl::StatusOr<PushMode> PushModeFromEnvironment();
  const PushMode push_mode_;
  PushStreams pushes_{[this](const std::string& address) { return workers_.Get(address); }};
  DirectPushes direct_{[this](const std::string& address) { return DirectPushPort(address); },
                       [this](const std::string& address, SharedPushRequest request, PushCallback done) {
                         pushes_.Push(address, *request, std::move(done));
                       }};
  AsyncCalls calls_;  // last: destroyed first, while the stubs are still there
};

}  // namespace shoal
