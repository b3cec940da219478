// The RPCs a task submitter makes: worker leases from raylets (LeaseService) and task pushes
// to leased workers (CoreWorkerService). A seam: GrpcTaskTransport in production,
// FakeTaskTransport (fake_task_transport.h) in tests.
// Threading: calls from any thread; each answers once through its callback, on a transport
// thread, never inside the call itself.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "shoal/raylet.pb.h"
#include "shoal/worker.pb.h"

namespace shoal {

// A push's request, shared by the submitter that made it (which keeps it for the answer, a
// retry or a failure) and the transport (which reads it until it is written, or copies it):
// no copy of the task's spec per push. Nobody changes it once made.
using SharedPushRequest = std::shared_ptr<const rpc::PushTaskRequest>;

class TaskTransport {
 public:
  using LeaseCallback = std::function<void(absl::Status, rpc::RequestWorkerLeaseReply)>;
  using PushCallback = std::function<void(absl::Status, rpc::PushTaskReply)>;

  virtual ~TaskTransport() = default;
  // Asks the raylet at `raylet_address` for a lease. A request the raylet queues answers only
  // when granted; a broken raylet answers an error status.
  virtual void RequestWorkerLease(const std::string& raylet_address, rpc::RequestWorkerLeaseRequest request,
                                  LeaseCallback done) = 0;
  using ReturnCallback = std::function<void(absl::Status, rpc::ReturnWorkerReply)>;

  // Gives a lease back; fire and forget.
  virtual void ReturnWorker(const std::string& raylet_address, const std::string& lease_id, bool worker_failed) = 0;
  // Gives back a lease whose worker failed mid-task and answers the raylet's reply, whose
  // `failure` says why when the raylet killed the worker itself (its memory monitor). An error
  // status when the raylet did not answer.
  virtual void ReturnFailedWorker(const std::string& raylet_address, const std::string& lease_id,
                                  ReturnCallback done) = 0;
  // Runs a task on the worker at `worker_address`. An error status means the worker (or the
  // way to it) broke; the task's own failures come back in the reply. A push that never left
  // this process (no connection to the worker could be made) fails with a status for which
  // IsUndelivered is true: sending it again is not a new attempt.
  virtual void PushTask(const std::string& worker_address, SharedPushRequest request, PushCallback done) = 0;
};

// Marks a failed push as never delivered (the transport knows; callers decide on the mark).
inline constexpr char kUndeliveredUrl[] = "shoal.io/undelivered";
inline absl::Status Undelivered(absl::Status status) {
  status.SetPayload(kUndeliveredUrl, absl::Cord("1"));
  return status;
}
inline bool IsUndelivered(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kUndeliveredUrl).has_value();
}

}  // namespace shoal
