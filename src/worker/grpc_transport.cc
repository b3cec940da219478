#include "src/worker/grpc_transport.h"

#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/lease_rpc.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {
constexpr absl::Duration kShortCallTimeout = absl::Seconds(10);
}  // namespace

absl::StatusOr<GrpcTransport::PushMode> GrpcTransport::PushModeFromEnvironment() {
  const char* value = std::getenv("SHOAL_PUSH_STREAMS");
  if (value == nullptr || *value == '\0' || std::string_view(value) == "direct") return PushMode::kDirect;
  if (std::string_view(value) == "grpc") return PushMode::kStreams;
  if (std::string_view(value) == "0") return PushMode::kUnary;
  return absl::InvalidArgumentError(
      absl::StrCat("SHOAL_PUSH_STREAMS must be 'direct', 'grpc' or '0', got '", value, "'"));
}

absl::Status GrpcTransport::CheckEnvironment() { return PushModeFromEnvironment().status(); }

GrpcTransport::GrpcTransport(GcsClient gcs)
    : gcs_(std::move(gcs)), push_mode_(PushModeFromEnvironment().value_or(PushMode::kDirect)) {}

GrpcTransport::~GrpcTransport() { Shutdown(absl::Seconds(2)); }

void GrpcTransport::RequestWorkerLease(const std::string& raylet_address, rpc::RequestWorkerLeaseRequest request,
                                       LeaseCallback done) {
  calls_.Start(raylets_.Get(raylet_address), &rpc::LeaseService::Stub::async::RequestWorkerLease, std::move(request),
               {.cancel_on_shutdown = true}, std::move(done));
}

void GrpcTransport::ReturnWorker(const std::string& raylet_address, const std::string& lease_id,
                                 bool worker_failed) {
  ReturnLease(calls_, raylets_, raylet_address, lease_id, worker_failed);
}

void GrpcTransport::ReturnFailedWorker(const std::string& raylet_address, const std::string& lease_id,
                                       ReturnCallback done) {
  rpc::ReturnWorkerRequest request;
  request.set_lease_id(lease_id);
  request.set_worker_failed(true);
  calls_.Start(raylets_.Get(raylet_address), &rpc::LeaseService::Stub::async::ReturnWorker, std::move(request),
               {.timeout = absl::Seconds(5)}, std::move(done));
}

void GrpcTransport::PushTask(const std::string& worker_address, SharedPushRequest request,
                             TaskTransport::PushCallback done) {
  if (push_mode_ == PushMode::kDirect) {
    direct_.Push(worker_address, std::move(request), std::move(done));
    return;
  }
  // gRPC takes requests of its own: a copy.
  if (push_mode_ == PushMode::kStreams) {
    pushes_.Push(worker_address, *request, std::move(done));
    return;
  }
  rpc::PushTaskRequest copy = *request;
  calls_.Start(workers_.Get(worker_address), &rpc::CoreWorkerService::Stub::async::PushTask, std::move(copy),
               {.cancel_on_shutdown = true},
               [done = std::move(done)](absl::Status status, rpc::PushTaskReply reply) {
                 done(NeverConnected(status) ? Undelivered(std::move(status)) : std::move(status), std::move(reply));
               });
}

void GrpcTransport::GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) {
  rpc::GetObjectRequest request;
  request.set_object_id(id.Binary());
  request.set_timeout_ms(-1);
  calls_.Start(workers_.Get(owner_address), &rpc::CoreWorkerService::Stub::async::GetObject, std::move(request),
               {.cancel_on_shutdown = true}, std::move(done));
}

void GrpcTransport::FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) {
  rpc::FreeObjectsRequest request;
  for (const auto& id : ids) request.add_object_ids(id.Binary());
  calls_.Start(raylets_.Get(raylet_address), &rpc::LeaseService::Stub::async::FreeObjects, std::move(request),
               {.timeout = kShortCallTimeout}, nullptr);
}

void GrpcTransport::GetActorInfo(const ActorId& actor, int64_t after_version, absl::Duration wait,
                                 InfoCallback done) {
  gcs_.AsyncGetActorInfo(actor, after_version, wait, std::move(done));
}

absl::StatusOr<int> GrpcTransport::DirectPushPort(const std::string& address) {
  rpc::DirectPushPortReply reply;
  absl::Status s = UnaryCall(*workers_.Get(address), &rpc::CoreWorkerService::Stub::DirectPushPort,
                             rpc::DirectPushPortRequest(), &reply, {.timeout = absl::Seconds(5)});
  if (!s.ok()) return s;
  return reply.port();
}

void GrpcTransport::Shutdown(absl::Duration timeout) {
  direct_.Shutdown(timeout);  // first: it hands pushes to the streams
  pushes_.Shutdown(timeout);
  calls_.Shutdown(timeout);
  gcs_.Shutdown(timeout);
}

void GrpcTransport::ReleaseOwnerLeases(const std::string& owner_address, absl::Duration timeout) {
  rpc::ReleaseOwnerLeasesRequest request;
  request.set_owner_address(owner_address);
  for (const std::string& address : raylets_.Addresses()) {
    rpc::ReleaseOwnerLeasesReply reply;
    // Best effort: the raylet may be gone.
    (void)UnaryCall(*raylets_.Get(address), &rpc::LeaseService::Stub::ReleaseOwnerLeases, request, &reply,
                    {.timeout = timeout});
  }
}

void GrpcTransport::NotifyWorkerBlocked(const std::string& raylet_address, const WorkerId& worker, bool blocked,
                                        absl::Duration timeout) {
  rpc::NotifyWorkerBlockedRequest request;
  request.set_worker_id(worker.Hex());
  request.set_blocked(blocked);
  rpc::NotifyWorkerBlockedReply reply;
  (void)UnaryCall(*raylets_.Get(raylet_address), &rpc::LeaseService::Stub::NotifyWorkerBlocked, request, &reply,
                  {.timeout = timeout});
}

absl::Status GrpcTransport::PrintLogs(const std::string& address, const std::vector<std::string>& lines,
                                      bool is_stderr, absl::Duration timeout) {
  rpc::PrintLogsRequest request;
  for (const auto& line : lines) request.add_lines(line);
  request.set_is_stderr(is_stderr);
  rpc::PrintLogsReply reply;
  return UnaryCall(*workers_.Get(address), &rpc::CoreWorkerService::Stub::PrintLogs, request, &reply,
                   {.timeout = timeout});
}

absl::Status GrpcTransport::ReportGeneratorItem(const std::string& address,
                                                const rpc::ReportGeneratorItemRequest& request) {
  rpc::ReportGeneratorItemReply reply;
  return UnaryCall(*workers_.Get(address), &rpc::CoreWorkerService::Stub::ReportGeneratorItem, request, &reply, {});
}

absl::Status GrpcTransport::CancelTask(const std::string& address, const TaskId& task, bool force, bool recursive,
                                       absl::Duration timeout) {
  rpc::CancelTaskRequest request;
  request.set_task_id(task.Binary());
  request.set_force(force);
  request.set_recursive(recursive);
  rpc::CancelTaskReply reply;
  return UnaryCall(*workers_.Get(address), &rpc::CoreWorkerService::Stub::CancelTask, request, &reply,
                   {.timeout = timeout});
}

absl::Status GrpcTransport::CancelOwnedTask(const std::string& owner, const ObjectId& return_id, bool force,
                                            bool recursive, absl::Duration timeout) {
  rpc::CancelTaskRequest request;
  request.set_task_id(return_id.Task().Binary());
  request.set_owned_return_id(return_id.Binary());
  request.set_force(force);
  request.set_recursive(recursive);
  rpc::CancelTaskReply reply;
  return UnaryCall(*workers_.Get(owner), &rpc::CoreWorkerService::Stub::CancelTask, request, &reply,
                   {.timeout = timeout});
}

}  // namespace shoal
