// The core worker: the library in every driver and worker process (DESIGN.md section 2).
//
// As an owner it submits tasks (leasing workers from its raylet and pushing tasks straight to
// them, reusing a lease for further tasks of the same shape), keeps the values or locations of
// the objects its tasks return, retries tasks whose worker or node dies, and answers Get, Put
// and Wait. As a worker it serves PushTask: resolves arguments, exports the granted GPUs as
// CUDA_VISIBLE_DEVICES, runs the registered function and replies (results up to 100 KiB
// inline, larger ones in this node's object store).
// Threading: every public method may be called from any thread.
// Errors: absl::Status; a task's own failure is the object's value (an rpc::ErrorInfo, see below).
//
// Lease reuse: tasks queue per shape (resources, strategy, worker command); a lease takes the
// next task of its shape as soon as its task finishes, goes back at once when its shape has
// nothing queued but another shape waits, and otherwise after 10 ms idle (task_submitter.h).
// Internals: memory_store.h (owned values), reference_counter.h, task_submitter.h (leases,
// retries), task_executor.h (worker side), store_access.h (object store), grpc_transport.h.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "src/common/error_info.h"
#include "src/common/ids.h"
#include "src/common/resources.h"

namespace shoal {

class PlacementGroupClient;

// What a task raised, or what the runtime broke, is stored as its result: an rpc::ErrorInfo
// (src/common/error_info.h). Get answers it as ErrorStatus(info): the code follows the error's
// type, and the ErrorInfo rides in the kErrorInfoUrl payload.

// A function the worker can run: serialized arguments in, serialized result out. A failure is
// answered as a status: one carrying an ErrorInfo (ErrorStatus) reaches the caller's Get as it
// is; any other is a TASK_EXCEPTION whose exception_type is the code's name ("INVALID_ARGUMENT").
// A C++ exception escaping the function is caught and answered as a TASK_EXCEPTION typed with
// the exception's (demangled) type name. An unknown function name fails the task with the
// TASK_EXCEPTION "function 'x' is not registered in this worker".
using TaskFunction = std::function<absl::StatusOr<std::string>(const std::vector<std::string>& args)>;

// Registers `fn` under `name` in this process (drivers and workers run the same registrations).
// Returns false if the name was taken. Safe in static initializers (also of libraries that
// shoal-worker loads with --library); a worker looks functions up when a task arrives, so
// registration must be done before CreateWorkerFromEnvironment returns.
bool RegisterTaskFunction(const std::string& name, TaskFunction fn);

// An object's bytes without a copy: inline values point into the owner's memory, store values
// into the node's shared memory (read-only; the store keeps the object while any copy of this
// buffer lives, and the mapping outlives the CoreWorker while buffers remain).
struct ObjectBuffer {
  const char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;  // keeps `data` valid
  std::string_view view() const { return {data, size}; }
};

// A task call for a TaskHandler (language layers whose functions are not registered by name).
struct TaskCall {
  std::string function_name;
  std::string actor_id;                 // hex; set for actor creation and method tasks
  bool actor_creation = false;          // the constructor: the worker is the actor's from now on
  std::string task_id;                  // hex
  uint32_t num_returns = 1;
  std::string cuda_visible_devices;     // as exported to the environment ("0,1"; "" for none)
  std::string retry_exception_filter;   // TaskOptions::retry_exception_filter of the caller
  std::string concurrency_group;        // method calls: the actor's group the call runs in ("": default)
  // A streaming generator: the handler reports each item (CoreWorker::ReportGeneratorItem) and
  // answers one result, the generator's completion.
  bool streaming = false;
  bool dynamic = false;                 // streaming for Ray's num_returns="dynamic" (TaskOptions)
  std::vector<ObjectBuffer> args;       // zero-copy where the argument is in the store
};
// Answers exactly `num_returns` serialized results, or a failure as for TaskFunction (an
// ErrorInfo with the language's serialized exception in `data` reaches the caller).
using TaskHandler = std::function<absl::StatusOr<std::vector<std::string>>(const TaskCall& call)>;
// What an AsyncTaskHandler calls, once, with what a TaskHandler would answer. From any thread;
// a call that comes after the core worker began to shut down is dropped.
using TaskCompletion = std::function<void(absl::StatusOr<std::vector<std::string>>)>;
// Starts a call of an async actor (ActorOptions::is_asyncio) and returns without waiting for it;
// `done` is called when it ended. The handler keeps what it needs of `call` (copies of its
// buffers keep them alive).
using AsyncTaskHandler = std::function<void(const TaskCall& call, TaskCompletion done)>;

// Options of an actor (CreateActor); its resources and scheduling come in TaskOptions.
struct ActorOptions {
  std::string class_name;         // for errors and listings
  std::string name;               // "" for an unnamed actor
  std::string ray_namespace = "default";
  bool detached = false;          // outlives its creator (else it dies with it)
  bool get_if_exists = false;     // a named actor that exists is answered instead of an error
  int max_restarts = 0;           // -1: no limit
  int max_task_retries = 0;       // method calls cut by a restart are retried this often (-1: always)
  int max_concurrency = 1;        // method calls outside every concurrency group run on this many threads
  // Ray's concurrency groups: name -> how many of its calls run at once (each >= 1). A call
  // names its group in TaskOptions::concurrency_group.
  std::map<std::string, int> concurrency_groups;
  // An async actor: its calls (streaming ones aside) run through the AsyncTaskHandler, without
  // a thread each (TaskSpec.is_asyncio).
  bool is_asyncio = false;
  std::string handle_data;        // opaque, for the language layer (GetNamedActor answers it)
};

// What the GCS knows of an actor (GetActorInfo, GetNamedActor).
struct ActorDescription {
  ActorId id;
  std::string class_name;
  std::string state;              // "PENDING", "ALIVE", "RESTARTING", "DEAD"
  std::string death_cause;
  std::string handle_data;
  std::string worker_address;
  std::string node_id;
  int num_restarts = 0;
  bool existed = false;           // CreateActor with get_if_exists found it
};

// The task the calling thread's worker is running (worker mode, inside a task).
struct CurrentTaskInfo {
  std::string task_id;        // hex; empty outside a task
  std::string function_name;
  std::string owner_address;  // who submitted it
  int attempt = 0;
  // The placement group the task (or, for a method, its actor) runs in; empty when none.
  std::string placement_group_id;  // hex
  int bundle_index = -1;
  bool capture_child_tasks = false;
  // The resources the task (or, for a method, its actor) holds, as requested (in a placement
  // group: the request, not the bundle's formatted names). Ray's get_assigned_resources().
  std::map<std::string, double> resources;
};

struct CoreWorkerOptions {
  enum class Mode { kDriver, kWorker };
  Mode mode = Mode::kDriver;
  std::string gcs_address;       // host:port
  std::string raylet_address;    // this node's raylet; empty: the head node's (driver only)
  // argv a raylet runs to start a worker for this job (the driver's own executable by default,
  // as the real path of /proc/self/exe). The process must detect SHOAL_WORKER_MODE=1 and run
  // CreateWorkerFromEnvironment + RunTaskLoop; or use {".../shoal-worker", "--library", "x.so"}.
  // A worker submitting nested tasks uses the command it was started with.
  std::vector<std::string> worker_command;
  // The cluster's token (src/common/auth.h); empty: found by cluster::FindClusterToken
  // ($SHOAL_AUTH_TOKEN, $SHOAL_AUTH_TOKEN_FILE, or the cluster started on this machine).
  std::string auth_token;
};

struct TaskOptions {
  ResourceSet resources;          // empty: {CPU: 1} (unless use_default_resources is false)
  bool use_default_resources = true;
  int max_retries = 3;            // system failures (worker or node died); -1: no limit
  bool retry_exceptions = false;  // also retry application errors
  // With retry_exceptions: the language layer's description of which exceptions to retry,
  // handed to its TaskHandler (TaskCall::retry_exception_filter), which marks any other
  // exception not_retryable. Empty: every exception is retried.
  std::string retry_exception_filter;
  // The worker that runs this function exits after this many calls of it (0: no limit), so that
  // what the function leaked (GPU memory, say) goes back. Ignored for actors.
  int max_calls = 0;
  // Where it may run, as the scheduler reads it (src/scheduler/scheduling_policy.h); copied
  // into the task spec as it is. Empty: DEFAULT. A PLACEMENT_GROUP strategy is checked against
  // its group first (PlacementGroupClient::CheckRequest) and becomes bundle resources.
  rpc::SchedulingStrategy strategy;
  // The caller named a strategy (even DEFAULT). When it did not, a task or actor submitted from
  // inside a placement group whose capture_child_tasks is set runs in that group (any bundle).
  bool explicit_strategy = false;
  uint32_t num_returns = 1;       // 1..kMaxReturns
  // A streaming generator (Ray's num_returns="streaming"; num_returns must be 1): the function
  // reports what it yields with ReportGeneratorItem, and the caller reads the items with
  // GeneratorNext while the task runs. The one return id completes when the generator ends.
  bool streaming = false;
  // Streaming: the generator waits while this many of its items are not yet taken by
  // GeneratorNext (Ray's _generator_backpressure_num_objects); -1: no limit.
  int64_t generator_backpressure_num_objects = -1;
  // With streaming: Ray's num_returns="dynamic", handed to the executor's TaskHandler
  // (TaskCall::dynamic); the core treats the task as any streaming one.
  bool generator_dynamic = false;
  // Objects referenced inside argument values (not resolved, passed as refs): kept alive
  // until the task finishes. Each must be owned or borrowed by this worker.
  std::vector<ObjectId> nested_refs;
  // argv of the worker that runs it; empty: this driver's. Tasks with different commands
  // never share workers.
  std::vector<std::string> worker_command;
  // Where it runs (packages uploaded, see src/common/runtime_env.h); `has_runtime_env` false:
  // the submitter's own (a driver's SetDefaultRuntimeEnv, a worker's the one it was started
  // in). Tasks in different environments never share workers. Ignored for actor methods.
  rpc::RuntimeEnv runtime_env;
  bool has_runtime_env = false;
  // Actor method calls: the actor's concurrency group the call runs in ("": the default group).
  std::string concurrency_group;
  // Actor method calls: refuse the call (PENDING_CALLS_LIMIT_EXCEEDED: Ray's
  // PendingCallsLimitExceeded) when this caller already has this many calls to the actor not finished; -1: no limit.
  int max_pending_calls = -1;
};
inline constexpr uint32_t kMaxReturns = 1000;

// One argument of a task: a serialized value, or a reference whose value the callee receives.
struct TaskArg {
  static TaskArg Value(std::string bytes) { return {std::move(bytes), ObjectId::Nil(), false}; }
  static TaskArg Ref(const ObjectId& id) { return {{}, id, true}; }
  std::string value;
  ObjectId ref;
  bool is_ref = false;
};

class CoreWorker {
 public:
  // Driver mode: finds the raylet (options.raylet_address, else the alive head node) in the
  // GCS's node table, waiting up to 10 s for the GCS and the node; starts this process's
  // CoreWorkerService (borrowers ask owners for values), registers a job (AddJob) and connects
  // to the node's object store. Unavailable when no GCS answers; NotFound when no such node.
  static absl::StatusOr<std::unique_ptr<CoreWorker>> Create(const CoreWorkerOptions& options);
  // Worker mode: options from the SHOAL_* environment the raylet set (InvalidArgument naming
  // a missing variable); serves on SHOAL_NODE_IP:0 and registers with the raylet.
  static absl::StatusOr<std::unique_ptr<CoreWorker>> CreateWorkerFromEnvironment();
  // Returns every lease (workers still running a task as failed), answers waiting borrowers,
  // stops serving and, for a driver, marks the job finished. REQUIRES: no other thread is in
  // a method of this object (RunTaskLoop included).
  ~CoreWorker();
  CoreWorker(const CoreWorker&) = delete;
  CoreWorker& operator=(const CoreWorker&) = delete;

  // Submits `function_name(args...)`; answers the id of its (single) return object at once.
  // InvalidArgument for bad options (e.g. 1.5 GPUs) or an unknown ref argument. Ref arguments
  // are resolved before the push (the callee receives the value): inline when small, by store
  // location when large; a ref whose value is an error fails the task with that error without
  // running it. Values above 100 KiB passed by value travel through the object store.
  // Whether the function exists is checked by the worker (an application error at Get).
  absl::StatusOr<ObjectId> SubmitTask(const std::string& function_name, std::vector<TaskArg> args,
                                      const TaskOptions& options);
  // As SubmitTask, answering the ids of all options.num_returns return objects.
  absl::StatusOr<std::vector<ObjectId>> SubmitTaskReturns(const std::string& function_name,
                                                          std::vector<TaskArg> args, const TaskOptions& options);
  // Cancels the task that returns `return_id` (one this worker submitted): a task not yet
  // pushed to a worker fails with TASK_CANCELLED at once and never runs; a running one is
  // interrupted (the worker's interrupt hook, see SetInterruptHandler) or, with `force`, its
  // worker is killed; either way it is not retried and its returns hold TASK_CANCELLED.
  // A finished task is left alone. NotFound for ids this worker did not submit. With
  // `recursive` (Ray's default), the tasks and actor calls a running task submitted from its
  // own thread and that are still pending are cancelled too, and theirs in turn.
  absl::Status CancelTask(const ObjectId& return_id, bool force, bool recursive = true);
  // Actors (DESIGN.md section 2). CreateActor waits for the constructor's ref arguments, then
  // registers the actor with the GCS, which creates it (see gcs.proto ActorService); answers
  // at once after that, before the actor is alive. AlreadyExists for a taken name (unless
  // get_if_exists), InvalidArgument for bad options. The function runs as the constructor on
  // the actor's worker (a TaskFunction or the TaskHandler, with TaskCall::actor_creation set).
  absl::StatusOr<ActorDescription> CreateActor(const std::string& function_name, std::vector<TaskArg> args,
                                               const TaskOptions& options, const ActorOptions& actor);
  // Starts following an actor this process got a handle to (not created here).
  void AddActorHandle(const ActorId& actor, int max_task_retries);
  // Calls `method` on the actor (see actor_submitter.h for order, restarts and failures);
  // answers its options.num_returns return ids at once. Resources in `options` are ignored.
  absl::StatusOr<std::vector<ObjectId>> SubmitActorTask(const ActorId& actor, const std::string& method,
                                                        std::vector<TaskArg> args, const TaskOptions& options);
  // Streaming generators (TaskOptions::streaming), by the id SubmitTask answered for the task:
  // GeneratorNext answers the next item's id (the caller adds a local reference for its handle)
  // waiting up to `timeout` (negative: forever), or nullopt once every item was taken; a
  // generator that raised has its error as the last item's value. DeadlineExceeded
  // (GET_TIMEOUT) when none came in time; NotFound for a task that is not a streaming generator
  // of this worker (or was released). ReleaseGenerator: the caller is done with it (items not
  // taken are freed, later ones dropped); every generator must be released once.
  absl::StatusOr<std::optional<ObjectId>> GeneratorNext(const ObjectId& generator, absl::Duration timeout);
  bool GeneratorIsFinished(const ObjectId& generator);
  bool GeneratorNextReady(const ObjectId& generator);  // GeneratorNext would not wait
  void ReleaseGenerator(const ObjectId& generator);
  // Worker mode, inside a streaming generator task (`task`: CurrentTask() of the thread that
  // runs it): sends the value it yielded as item `index` (0, 1, ... in order) to the task's
  // owner, through this node's store when larger than 100 KiB. Blocks until the owner wants
  // more (backpressure). Unavailable when the owner is gone.
  absl::Status ReportGeneratorItem(const CurrentTaskInfo& task, int64_t index, std::string value);
  // Kills the actor (through the GCS): no_restart = false lets it restart if it may.
  absl::Status KillActor(const ActorId& actor, bool no_restart);
  // NotFound when no live actor has that name in that namespace.
  absl::StatusOr<ActorDescription> GetNamedActor(const std::string& name, const std::string& ray_namespace);
  // The GCS's entry for the actor now. NotFound for unknown actors.
  absl::StatusOr<ActorDescription> GetActorInfo(const ActorId& actor);
  // The actor this worker serves (nil when it is not an actor's worker).
  ActorId CurrentActor() const;

  // Stores `value` as a new object owned by this worker: up to 100 KiB in this process's
  // memory, larger in this node's object store (ResourceExhausted "ObjectStoreFull..." when it
  // does not fit).
  absl::StatusOr<ObjectId> Put(std::string value);
  // As Put, for a value made of several pieces, copied straight into the store (no
  // concatenated copy in between) when the whole is too large to keep inline.
  absl::StatusOr<ObjectId> PutParts(const std::vector<std::string_view>& parts);
  // Waits up to `timeout` (negative: forever) for every id. Answers one entry per id: the
  // value, or the task's error (ErrorStatus, see above). DeadlineExceeded if not all were ready.
  // InvalidArgument for an id this worker neither owns nor borrows (or one already freed).
  // Values in another node's store are first copied to this node's store, then read.
  absl::StatusOr<std::vector<absl::StatusOr<std::string>>> Get(const std::vector<ObjectId>& ids,
                                                               absl::Duration timeout);
  // As Get, answering buffers instead of copies (see ObjectBuffer). While it waits for values,
  // `interrupted` (when set) is asked every 100 ms whether the caller gave up (a signal handler
  // raised); then it answers Cancelled at once.
  absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> GetBuffers(
      const std::vector<ObjectId>& ids, absl::Duration timeout, std::function<bool()> interrupted = nullptr);
  // Waits until `num_ready` of `ids` are ready or `timeout` passes; answers a ready flag per id.
  // A failed task's object counts as ready. With `fetch_local` (Ray's default), a value in
  // another node's store counts once it is copied to this node's (the copy starts at once, and
  // goes on after a timeout, so a later wait may find it). InvalidArgument for num_ready
  // outside 0..ids.size() or an unknown id.
  absl::StatusOr<std::vector<bool>> Wait(const std::vector<ObjectId>& ids, int num_ready,
                                         absl::Duration timeout, bool fetch_local = true);
  // Reference counting by the language layer (ObjectRef copies). When an owned object's count
  // drops to zero and no pending task needs it, its value and store copies are freed.
  // The ids answered by SubmitTask and Put start with no local reference: the language layer
  // adds one for its handle. An object is freed only when a count drops to zero, so one that
  // was never referenced (nor used as an argument) stays until this CoreWorker goes. A result
  // whose last reference went before the task finished is freed when it arrives. Unknown ids
  // are ignored. Borrowers do not report back: an owner frees an object when its own counts
  // reach zero, even if a borrower still holds the id (the borrower then gets OBJECT_LOST).
  void AddLocalReference(const ObjectId& id);
  void RemoveLocalReference(const ObjectId& id);

  // Borrowed references (a ref that reached this process inside a value rather than as a task
  // argument): tells the core worker which worker owns `id`, so that Get, Wait and SubmitTask
  // can ask that owner (CoreWorkerService.GetObject). No change for ids already known.
  void RegisterBorrowedObject(const ObjectId& id, const std::string& owner_address);
  // The address of `id`'s owner (address() for objects this worker owns), to ship with a
  // serialized ref. NotFound for unknown ids.
  absl::StatusOr<std::string> GetOwnerAddress(const ObjectId& id) const;

  // Worker mode: serves pushed tasks until the raylet goes away or Exit is called, running
  // them one at a time on the calling thread. OK after Exit (or destruction); Unavailable when
  // the raylet missed 5 health checks in a row (one a second); FailedPrecondition for a driver.
  absl::Status RunTaskLoop();
  // Worker mode: runs tasks whose function is not registered by name (set before RunTaskLoop).
  void SetTaskHandler(TaskHandler handler);
  // Worker mode: starts the method calls of an async actor (see AsyncTaskHandler); without one,
  // they run through the TaskHandler on threads of their own.
  void SetAsyncTaskHandler(AsyncTaskHandler handler);
  // Worker mode: called (on a gRPC thread) when the owner cancels the running task without
  // force; it should make the task stop soon (e.g. raise in the interpreter).
  void SetInterruptHandler(std::function<void(const std::string& task_id)> handler);
  // The task being run, if any (worker mode).
  CurrentTaskInfo CurrentTask() const;
  // Placement groups: create, remove, look up, wait (src/worker/placement_group_client.h).
  PlacementGroupClient& placement_groups();

  // Output of tasks, forwarded to their owners. SendLogs delivers `lines` (each a complete
  // line, already prefixed) to the worker at `owner_address` and waits for it (up to 5 s).
  // The receiver hands them to the log handler, or writes them to its own stdout/stderr.
  absl::Status SendLogs(const std::string& owner_address, const std::vector<std::string>& lines, bool is_stderr);
  void SetLogHandler(std::function<void(const std::vector<std::string>& lines, bool is_stderr)> handler);

  // The GCS's key-value store (namespaced), for language layers' function tables and collective
  // groups' rendezvous. KvPut answers whether the key is new (with overwrite=false an existing
  // value is kept).
  absl::StatusOr<bool> KvPut(const std::string& ns, const std::string& key, const std::string& value, bool overwrite);
  // NotFound when the key is absent.
  absl::StatusOr<std::string> KvGet(const std::string& ns, const std::string& key);
  absl::Status KvDel(const std::string& ns, const std::string& key);
  // Watched objects (this worker's own) are reported to the freed handler once freed; the
  // handler runs on the core's loop and must not block (see OwnedObjects::WatchFree).
  void WatchFree(const ObjectId& id);
  void SetFreedHandler(std::function<void(std::vector<ObjectId>)> handler);
  // The runtime environment of tasks and actors submitted without one (TaskOptions::runtime_env):
  // a driver sets its job's here; a worker starts with the one it was started in.
  void SetDefaultRuntimeEnv(rpc::RuntimeEnv env);

  const std::string& gcs_address() const;
  const JobId& job_id() const;
  const NodeId& node_id() const;
  const WorkerId& worker_id() const;
  std::string address() const;  // host:port of this worker's CoreWorkerService

 private:
  class Impl;
  explicit CoreWorker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal
