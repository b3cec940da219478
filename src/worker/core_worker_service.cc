#include "src/worker/core_worker_service.h"

#include <stdio.h>
#include <unistd.h>

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {

// Lets the reply of the RPC that asked for it leave before the process ends.
void ExitSoon() {
  std::thread([] {
    absl::SleepFor(absl::Milliseconds(50));
    _exit(1);
  }).detach();
}

}  // namespace

CoreWorkerService::CoreWorkerService(TaskReceiver& receiver, MemoryStore& memory, const ReferenceCounter& refs,
                                     const Clock& clock, Options options)
    : receiver_(receiver), memory_(memory), refs_(refs), clock_(clock), options_(std::move(options)) {}

void CoreWorkerService::SetLogHandler(LogHandler handler) {
  absl::MutexLock lock(&mu_);
  log_handler_ = std::move(handler);
}

void CoreWorkerService::SetInterruptHandler(InterruptHandler handler) {
  absl::MutexLock lock(&mu_);
  interrupt_handler_ = std::move(handler);
}

void CoreWorkerService::SetGeneratorItemHandler(GeneratorItemHandler handler) {
  absl::MutexLock lock(&mu_);
  generator_item_handler_ = std::move(handler);
}

grpc::ServerUnaryReactor* CoreWorkerService::PushTask(grpc::CallbackServerContext* ctx,
                                                      const rpc::PushTaskRequest* request,
                                                      rpc::PushTaskReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!options_.runs_tasks) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this process is a driver; it runs no tasks"));
    return reactor;
  }
  receiver_.Push(request, reply, [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::GetObject(grpc::CallbackServerContext* ctx,
                                                       const rpc::GetObjectRequest* request,
                                                       rpc::GetObjectReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto id = ObjectId::FromBinary(request->object_id());
  if (!id.ok()) {
    reactor->Finish(ToGrpcStatus(id.status()));
    return reactor;
  }
  auto owner = refs_.OwnerAddress(*id);
  if (!owner || !owner->empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("object ", id->Hex(), " is not owned by this worker (or was freed)")));
    return reactor;
  }
  const absl::Time deadline = request->timeout_ms() < 0 ? absl::InfiniteFuture()
                                                        : clock_.Now() + absl::Milliseconds(request->timeout_ms());
  memory_.GetAsync(*id, deadline, [this, reactor, reply, deadline, id = *id](ValuePtr value) {
    if (value != nullptr) {
      reply->set_ready(true);
      *reply->mutable_value() = *value;
      reactor->Finish(grpc::Status::OK);
    } else if (clock_.Now() >= deadline) {
      reply->set_ready(false);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("object ", id.Hex(), " was freed, or its owner is shutting down")));
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::Exit(grpc::CallbackServerContext* ctx, const rpc::ExitRequest*,
                                                  rpc::ExitReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  receiver_.RequestExit(absl::OkStatus());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::PrintLogs(grpc::CallbackServerContext* ctx,
                                                       const rpc::PrintLogsRequest* request, rpc::PrintLogsReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  LogHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = log_handler_;
  }
  std::vector<std::string> lines(request->lines().begin(), request->lines().end());
  if (handler) {
    handler(lines, request->is_stderr());
  } else {
    std::string text;
    for (const auto& line : lines) absl::StrAppend(&text, line, "\n");
    FILE* out = request->is_stderr() ? stderr : stdout;
    fwrite(text.data(), 1, text.size(), out);
    fflush(out);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::ReportGeneratorItem(grpc::CallbackServerContext* ctx,
                                                                 const rpc::ReportGeneratorItemRequest* request,
                                                                 rpc::ReportGeneratorItemReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  GeneratorItemHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = generator_item_handler_;
  }
  if (!handler) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "this worker is not ready for generator items yet"));
    return reactor;
  }
  handler(*request, [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::CancelTask(grpc::CallbackServerContext* ctx,
                                                        const rpc::CancelTaskRequest* request,
                                                        rpc::CancelTaskReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto task = TaskId::FromBinary(request->task_id());
  if (!task.ok()) {
    reactor->Finish(ToGrpcStatus(task.status()));
    return reactor;
  }
  if (!request->owned_return_id().empty()) {
    auto id = ObjectId::FromBinary(request->owned_return_id());
    absl::Status s = !id.ok() ? id.status()
                     : options_.cancel_owned ? options_.cancel_owned(*id, request->force(), request->recursive())
                                             : absl::FailedPreconditionError("this process owns no tasks");
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  const bool running = receiver_.IsRunning(*task);
  reply->set_running(running);
  if (!running && receiver_.CancelQueued(*task)) {
    reactor->Finish(grpc::Status::OK);  // dropped before it ran: its push is answered Cancelled
    return reactor;
  }
  if (running && request->recursive() && options_.cancel_children) {
    options_.cancel_children(*task, request->force());
  }
  if (running && request->force()) {
    // Killed once the reply is on its way; the owner sees the push fail and does not retry.
    spdlog::warn("task {} cancelled with force: this worker exits", task->Hex());
    if (options_.force_exit) {
      options_.force_exit();
    } else {
      ExitSoon();
    }
  } else if (running) {
    InterruptHandler handler;
    {
      absl::MutexLock lock(&mu_);
      handler = interrupt_handler_;
    }
    if (handler) handler(task->Hex());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::Ping(grpc::CallbackServerContext* ctx, const rpc::PingRequest*,
                                                  rpc::PingReply*) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorkerService::ListObjectRefs(grpc::CallbackServerContext* ctx,
                                                            const rpc::ListObjectRefsRequest*,
                                                            rpc::ListObjectRefsReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reply->set_worker_id(options_.worker_id);
  reply->set_pid(getpid());
  reply->set_is_driver(!options_.runs_tasks);
  reply->set_node_id(options_.node_id);
  reply->set_ip(options_.ip);
  for (const ReferenceCounter::Reference& r : refs_.Snapshot()) {
    rpc::ObjectRefInfo& info = *reply->add_refs();
    info.set_object_id(r.id.Binary());
    info.set_owner_address(r.owner_address);
    info.set_local_refs(r.local);
    info.set_submitted_task_refs(r.submitted);
    info.set_size(-1);
    ValuePtr value = memory_.GetIfReady(r.id);
    if (value == nullptr) continue;
    info.set_ready(true);
    info.set_is_error(value->has_error());
    info.set_in_store(value->in_store());
    if (value->in_store()) {
      info.set_stored_on_node(value->node_id());
      if (value->size() > 0) info.set_size(value->size());
    } else {
      info.set_size(static_cast<int64_t>(value->inline_data().size()));
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace shoal
