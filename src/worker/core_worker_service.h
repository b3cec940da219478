// The core worker's RPC edge: CoreWorkerService (proto/shoal/worker.proto), served by every
// driver and worker. It holds no state of its own beyond two handlers; each RPC is handed to
// the part that does the job:
//   PushTask   -> the TaskReceiver (a driver answers FailedPrecondition: it runs no tasks)
//   PushTasks  -> the same, for a stream of pushes from one caller (answered as each ends)
//   GetObject  -> the memory store, for objects this worker owns (long poll up to timeout_ms;
//                 ready=false when the wait ran out; NotFound when not owned here or freed)
//   Exit       -> TaskReceiver::RequestExit
//   PrintLogs  -> the log handler (default: this process's stdout / stderr)
//   ReportGeneratorItem -> the generator handler (the owner's GeneratorStreams), which answers
//                 when the owner wants the next item (backpressure); Unavailable until it is set
//   CancelTask -> (recursive) Options::cancel_children, then the interrupt handler for a running task, or, with force, Options::force_exit
//   Ping       -> OK
//   DirectPushPort -> the port SetDirectPushPort set (0 until then: pushes go over PushTasks)
//   ListObjectRefs -> the reference counter's entries, with what the memory store knows of each
// Every handler starts with the same line (the reactor), so a check common to all RPCs goes
// right after it.
// Threading: gRPC's callback threads; handlers never block. The setters from any thread.
// Ownership: the receiver, memory store, reference counter and clock are the caller's and
// must outlive the service (and its server).
#pragma once

#include <atomic>

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "shoal/worker.grpc.pb.h"
#include "src/common/clock.h"
#include "src/worker/memory_store.h"
#include "src/worker/reference_counter.h"
#include "src/worker/task_receiver.h"

namespace shoal {

class CoreWorkerService final : public rpc::CoreWorkerService::CallbackService {
 public:
  using LogHandler = std::function<void(const std::vector<std::string>& lines, bool is_stderr)>;
  using InterruptHandler = std::function<void(const std::string& task_hex)>;
  using GeneratorItemHandler = std::function<void(const rpc::ReportGeneratorItemRequest& request,
                                                  std::function<void(absl::Status)> done)>;

  struct Options {
    bool runs_tasks = false;  // a worker; a driver refuses PushTask
    // Ends the process after a forced cancel of a running task; called before the reply is
    // sent, so it must not end the process at once. Default: _exit(1) 50 ms later.
    std::function<void()> force_exit;
    // Cancels what a running task submitted (CancelTask with recursive). Called on the gRPC
    // thread: it must not block, except with force (the process exits right after).
    std::function<void(const TaskId& parent, bool force)> cancel_children;
    // Cancels a task this process owns, for a borrower of its result (CancelTask with
    // owned_return_id). Called on the gRPC thread: it must not block for long.
    std::function<absl::Status(const ObjectId& return_id, bool force, bool recursive)> cancel_owned;
    // Who this process is, for ListObjectRefs.
    std::string worker_id;  // hex
    std::string node_id;    // hex
    std::string ip;
  };

  // GetObject deadlines are `clock` times (the memory store's Tick must use the same clock).
  CoreWorkerService(TaskReceiver& receiver, MemoryStore& memory, const ReferenceCounter& refs, const Clock& clock,
                    Options options);
  CoreWorkerService(const CoreWorkerService&) = delete;
  CoreWorkerService& operator=(const CoreWorkerService&) = delete;

  // Receives the lines PrintLogs brings (empty: print them).
  void SetLogHandler(LogHandler handler);
  // Interrupts a running task that a non-forced CancelTask names (empty: nothing happens).
  void SetInterruptHandler(InterruptHandler handler);
  // Receives the items of streaming generators this worker owns.
  void SetGeneratorItemHandler(GeneratorItemHandler handler);
  // Where this worker takes pushes over a plain socket (DirectPushServer).
  void SetDirectPushPort(int port) { direct_push_port_.store(port, std::memory_order_relaxed); }

  grpc::ServerUnaryReactor* PushTask(grpc::CallbackServerContext* ctx, const rpc::PushTaskRequest* request,
                                     rpc::PushTaskReply* reply) override;
  // PushTask's pushes, many to a stream (PushStreams is the caller's end).
  grpc::ServerBidiReactor<rpc::PushTaskBatch, rpc::PushTaskAnswers>* PushTasks(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* GetObject(grpc::CallbackServerContext* ctx, const rpc::GetObjectRequest* request,
                                      rpc::GetObjectReply* reply) override;
  grpc::ServerUnaryReactor* Exit(grpc::CallbackServerContext* ctx, const rpc::ExitRequest* request,
                                 rpc::ExitReply* reply) override;
  grpc::ServerUnaryReactor* PrintLogs(grpc::CallbackServerContext* ctx, const rpc::PrintLogsRequest* request,
                                      rpc::PrintLogsReply* reply) override;
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* ctx, const rpc::CancelTaskRequest* request,
                                       rpc::CancelTaskReply* reply) override;
  grpc::ServerUnaryReactor* ReportGeneratorItem(grpc::CallbackServerContext* ctx,
                                                const rpc::ReportGeneratorItemRequest* request,
                                                rpc::ReportGeneratorItemReply* reply) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const rpc::PingRequest* request,
                                 rpc::PingReply* reply) override;
  grpc::ServerUnaryReactor* DirectPushPort(grpc::CallbackServerContext* ctx, const rpc::DirectPushPortRequest* request,
                                           rpc::DirectPushPortReply* reply) override;
  grpc::ServerUnaryReactor* ListObjectRefs(grpc::CallbackServerContext* ctx, const rpc::ListObjectRefsRequest* request,
                                           rpc::ListObjectRefsReply* reply) override;

 private:
  TaskReceiver& receiver_;
  MemoryStore& memory_;
  const ReferenceCounter& refs_;
  const Clock& clock_;
  const Options options_;
  std::atomic<int> direct_push_port_{0};

  absl::Mutex mu_;
  LogHandler log_handler_ ABSL_GUARDED_BY(mu_);
  InterruptHandler interrupt_handler_ ABSL_GUARDED_BY(mu_);
  GeneratorItemHandler generator_item_handler_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
