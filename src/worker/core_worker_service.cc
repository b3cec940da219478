#include "src/worker/core_worker_service.h"

#include <stdio.h>
#include <unistd.h>

#include <deque>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/worker/push_streams.h"

namespace shoal {
namespace {

// Lets the reply of the RPC that asked for it leave before the process ends.
void ExitSoon() {
  std::thread([] {
    absl::SleepFor(absl::Milliseconds(50));
    _exit(1);
  }).detach();
}

// A stream that is refused at once (not authenticated; a driver, which runs no tasks).
class RefusedStream : public grpc::ServerBidiReactor<rpc::PushTaskBatch, rpc::PushTaskAnswers> {
 public:
  explicit RefusedStream(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// The worker's end of one PushTasks stream: each push read is handed to the receiver, and the
// answers are written back as they come, everything waiting going out in one message (at most
// PushStreams::kMaxBatchBytes) whenever no write is in flight. The stream is finished once the
// caller stopped sending and every push it sent was answered (a caller that went away gets no
// answers, but its pushes still run, as unary pushes do); gRPC then deletes it (OnDone).
class PushTasksReactor : public grpc::ServerBidiReactor<rpc::PushTaskBatch, rpc::PushTaskAnswers> {
 public:
  explicit PushTasksReactor(TaskReceiver& receiver) : receiver_(receiver) { StartRead(&reading_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool finish = false;
      {
        absl::MutexLock lock(&mu_);
        reading_done_ = true;
        finish = ShouldFinish();
      }
      if (finish) Finish(grpc::Status::OK);
      return;
    }
    rpc::PushTaskBatch batch;
    batch.Swap(&reading_);
    {
      absl::MutexLock lock(&mu_);
      outstanding_ += batch.items_size();  // before the next read can end the stream
    }
    StartRead(&reading_);
    for (rpc::PushTaskItem& item : *batch.mutable_items()) {
      auto* call = new Call;
      call->id = item.id();
      call->request.Swap(item.mutable_request());
      receiver_.Push(&call->request, &call->reply, [this, call](absl::Status status) { Answer(call, status); });
    }
  }

  void OnWriteDone(bool ok) override {
    bool finish = false;
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      if (!ok) {
        broken_ = true;  // the caller is gone: later answers are dropped
        answers_.clear();
      }
      if (answers_.empty()) {
        writing_ = false;
        finish = ShouldFinish();
      } else {
        FillBatch();  // writing_ stays set: sending_ is this thread's until handed over
        write = true;
      }
    }
    if (write) StartWrite(&sending_);
    if (finish) Finish(grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  struct Call {
    uint64_t id = 0;
    rpc::PushTaskRequest request;
    rpc::PushTaskReply reply;
  };

  void Answer(Call* call, const absl::Status& status) {
    bool write = false;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      --outstanding_;
      if (!broken_) {
        rpc::PushTaskAnswer& answer = answers_.emplace_back();
        answer.set_id(call->id);
        answer.set_code(static_cast<int32_t>(status.code()));
        if (!status.ok()) answer.set_message(std::string(status.message()));
        if (status.ok()) answer.mutable_reply()->Swap(&call->reply);
        if (!writing_) {
          writing_ = true;
          FillBatch();
          write = true;
        }
      }
      if (!write) finish = ShouldFinish();
    }
    delete call;
    if (write) StartWrite(&sending_);
    if (finish) Finish(grpc::Status::OK);
  }

  void FillBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { TakeAnswerBatch(answers_, sending_); }

  // Whether the stream is done (the caller stopped sending, everything answered and written):
  // then the caller calls Finish, outside mu_ (gRPC deletes the reactor after it).
  bool ShouldFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || !reading_done_ || outstanding_ > 0 || writing_) return false;
    finished_ = true;
    return true;
  }

  TaskReceiver& receiver_;
  rpc::PushTaskBatch reading_;    // the read in flight
  rpc::PushTaskAnswers sending_;  // the write in flight
  absl::Mutex mu_;
  std::deque<rpc::PushTaskAnswer> answers_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // pushes handed to the receiver, not answered
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

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

grpc::ServerBidiReactor<rpc::PushTaskBatch, rpc::PushTaskAnswers>* CoreWorkerService::PushTasks(
    grpc::CallbackServerContext* ctx) {
  if (grpc::Status denied = Authenticate(*ctx); !denied.ok()) return new RefusedStream(std::move(denied));
  if (!options_.runs_tasks) {
    return new RefusedStream(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this process is a driver; it runs no tasks"));
  }
  return new PushTasksReactor(receiver_);
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

grpc::ServerUnaryReactor* CoreWorkerService::DirectPushPort(grpc::CallbackServerContext* ctx,
                                                            const rpc::DirectPushPortRequest*,
                                                            rpc::DirectPushPortReply* reply) {
  SHOAL_AUTHENTICATE_REACTOR(ctx);
  reply->set_port(options_.runs_tasks ? direct_push_port_.load(std::memory_order_relaxed) : 0);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
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
