// CoreWorker: wires the memory store, reference counter, submitter, executor, object store
// access and the CoreWorkerService server together (see core_worker.h).
//
// Threads: one event loop (src/common/event_loop.h) runs the timers every 5 ms (idle lease
// returns, lease retries, GetObject deadlines) and every continuation: memory-store callbacks
// (argument resolution, GetObject replies), borrowed values and frees all land there, never on
// a gRPC thread or inside a language's finalizer. A task reply's bookkeeping (store the
// returns, release the arguments) runs on the gRPC thread that got it: it takes short locks
// only, and storing wakes a blocked Get without a second thread hop. In
// worker mode a raylet watcher (HealthCheck every second; the task loop ends after 5 failures in
// a row) and the thread running RunTaskLoop, which executes pushed tasks (task_receiver.h);
// gRPC's callback threads serve the RPCs without blocking (core_worker_service.h).
// Parts: worker_config.h (start-up), core_worker_service.h (the RPCs), task_receiver.h (pushed
// tasks), task_manager.h (the owner's tasks: arguments, resolution, results), task_submitter.h
// (normal tasks), actor_client.h and actor_submitter.h (actors), owned_objects.h (objects).
#include "src/worker/core_worker.h"

#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/cluster/token.h"
#include "src/common/auth.h"
#include "src/common/clock.h"
#include "src/common/environment.h"
#include "src/common/event_loop.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/common/spin.h"
#include "src/gcs_client/gcs_client.h"
#include "src/worker/actor_client.h"
#include "src/worker/placement_group_client.h"
#include "src/worker/running_tasks.h"
#include "src/worker/actor_submitter.h"
#include "src/worker/call_gate.h"
#include "src/worker/core_worker_service.h"
#include "src/common/tls.h"
#include "src/worker/direct_push.h"
#include "src/worker/dependency_resolver.h"
#include "src/worker/generator_streams.h"
#include "src/worker/grpc_transport.h"
#include "src/worker/memory_store.h"
#include "src/worker/object_recovery.h"
#include "src/worker/object_value.h"
#include "src/worker/owned_objects.h"
#include "src/worker/reference_counter.h"
#include "src/worker/store_access.h"
#include "src/worker/task_events.h"
#include "src/worker/task_executor.h"
#include "src/worker/task_manager.h"
#include "src/worker/task_spec.h"
#include "src/worker/task_receiver.h"
#include "src/worker/task_submitter.h"
#include "src/worker/worker_config.h"

namespace shoal {
namespace {

constexpr absl::Duration kTickPeriod = absl::Milliseconds(5);
constexpr absl::Duration kIdleTickPeriod = absl::Milliseconds(50);
// An idle core worker with nothing timed pending (no lease, retry, deadline or held call) ticks
// this rarely: a thousand idle actors' workers on one node woke 20,000 times a second between
// them at the idle period alone.
constexpr absl::Duration kQuietTickPeriod = absl::Seconds(1);
// How long a submission waits for placement-group calls sent without waiting
// (PlacementGroupClient::AwaitPending): normally they are answered in a millisecond.
constexpr absl::Duration kPlacementGroupSendWait = absl::Seconds(5);
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
// How long the key-value calls of the language layers (exporting a function, a worker loading
// it) ride out a GCS restart: Ray's gcs_rpc_server_reconnect_timeout_s, the raylets' own wait.
constexpr absl::Duration kGcsReconnectTimeout = absl::Seconds(60);
constexpr absl::Duration kShutdownRpcTimeout = absl::Seconds(2);
constexpr absl::Duration kRayletCheckPeriod = absl::Seconds(1);
constexpr int kRayletCheckFailures = 5;
constexpr int kMaxMessageSize = 64 << 20;

}  // namespace

class CoreWorker::Impl final {
 public:
  explicit Impl(WorkerConfig config) : config_(std::move(config)), worker_command_(config_.worker_command) {
    task_events_.SetWorker(config_.node_id.Hex(), config_.worker_id.Hex());  // on its RUNNING events
  }
  ~Impl();

  // Connects to the store, starts serving, then (driver) registers the job or (worker)
  // registers with the raylet.
  absl::Status Start();

  absl::StatusOr<std::vector<ObjectId>> SubmitTask(const std::string& function_name, std::vector<TaskArg> args,
                                                   const TaskOptions& options);
  absl::Status CancelTask(const ObjectId& return_id, bool force, bool recursive);
  // Cancels (recursively) what the running task `parent` submitted that is still pending.
  void CancelChildren(const TaskId& parent, bool force);
  // A task the running task of this thread submitted (nothing outside tasks).
  void AddChild(const ObjectId& first_return) { running_.AddChild(first_return); }
  absl::StatusOr<ActorDescription> CreateActor(const std::string& function_name, std::vector<TaskArg> args,
                                               const TaskOptions& options, const ActorOptions& actor) {
    placement_groups_->AwaitPending(kPlacementGroupSendWait);
    auto with_command = InPlacementGroup(options);
    if (!with_command.ok()) return with_command.status();
    if (with_command->worker_command.empty()) with_command->worker_command = CurrentWorkerCommand();
    if (!with_command->has_runtime_env) with_command->runtime_env = CurrentRuntimeEnv();
    return actors_->Create(function_name, std::move(args), *with_command, actor);
  }
  // `options` with the placement group it runs in (PlacementGroupClient::Resolve).
  absl::StatusOr<TaskOptions> InPlacementGroup(const TaskOptions& options) {
    return placement_groups_->Resolve(options, RunningTasks::ThisThread());
  }
  PlacementGroupClient& placement_groups() { return *placement_groups_; }
  GeneratorStreams& streams() { return *streams_; }
  absl::StatusOr<std::optional<ObjectId>> GeneratorNext(const ObjectId& generator, absl::Duration timeout) {
    // The stream waits on real time: clock_ is the RealClock.
    const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
    return streams_->Next(generator.Task(), deadline);
  }
  absl::Status ReportGeneratorItem(const CurrentTaskInfo& task, int64_t index, std::string value);
  ActorClient& actors() { return *actors_; }
  ActorId CurrentActor() const { return receiver_->actor(); }
  OwnedObjects& objects() { return *objects_; }
  void AddLocalReference(const ObjectId& id) { refs_.AddLocal(id); }
  // Often called from a language's finalizer (Python's __del__, with the GIL held): only the
  // count changes here; freeing the value and its store copies runs on the loop.
  void RemoveLocalReference(const ObjectId& id) { objects_->RemoveLocalReference(id); }
  void RegisterBorrowedObject(const ObjectId& id, const std::string& owner_address) {
    if (owner_address != address_) refs_.AddBorrowed(id, owner_address);
  }
  absl::StatusOr<std::string> GetOwnerAddress(const ObjectId& id) const {
    auto owner = refs_.OwnerAddress(id);
    if (!owner) return absl::NotFoundError(absl::StrCat("object ", id.Hex(), " is not known to this worker"));
    return owner->empty() ? address_ : *owner;
  }
  absl::Status RunTaskLoop();
  void SetTaskHandler(TaskHandler handler) { executor_->SetHandler(std::move(handler)); }
  void SetAsyncTaskHandler(AsyncTaskHandler handler) {
    executor_->SetAsyncHandler([gate = gate_, handler = std::move(handler)](const TaskCall& call, TaskCompletion done) {
      handler(call, [gate, done = std::move(done)](absl::StatusOr<std::vector<std::string>> results) {
        CallGate::Entry entry(*gate);
        if (entry) done(std::move(results));  // else the core is going: Drain answered the call
      });
    });
  }
  void SetInterruptHandler(CoreWorkerService::InterruptHandler handler) {
    service_->SetInterruptHandler(std::move(handler));
  }
  CurrentTaskInfo CurrentTask() {
    return running_.Current([this](CurrentTaskInfo info, const rpc::TaskSpec& spec) { return Describe(std::move(info), spec); });
  }
  // `info` with the resources the task `spec` (or its actor) holds.
  CurrentTaskInfo Describe(CurrentTaskInfo info, const rpc::TaskSpec& spec) {
    if (!spec.actor_id().empty() && !spec.actor_creation()) {
      absl::MutexLock lock(&mu_);
      info.resources = actor_placement_.resources;  // a method call holds the actor's
    } else {
      // In a placement group, the user's request rather than the bundle's formatted names.
      info.resources =
          ResourceSet::FromProto(spec.placement_group_id().empty() ? spec.resources() : spec.bundle_request())
              .ToDoubles();
    }
    return info;
  }
  absl::Status SendLogs(const std::string& owner, const std::vector<std::string>& lines, bool is_stderr) {
    return transport_.PrintLogs(owner, lines, is_stderr, absl::Seconds(5));
  }
  void SetLogHandler(CoreWorkerService::LogHandler handler) { service_->SetLogHandler(std::move(handler)); }
  const GcsClient& gcs() const { return gcs_; }

  const WorkerConfig& config() const { return config_; }
  const JobId& job_id() const { return job_id_; }
  const std::string& address() const { return address_; }

  void SetDefaultRuntimeEnv(rpc::RuntimeEnv env) {
    absl::MutexLock lock(&mu_);
    runtime_env_ = std::move(env);
  }
 private:

  absl::Status StartServer();
  void StartDirectPushes();
  absl::Status RegisterJob();
  absl::Status RegisterWithRaylet();
  // Every kTickPeriod on the loop: lease returns and retries, memory-store deadlines, actor
  // call gaps, task events.
  void Tick();
  // Runs `fn` on the loop: the one executor of continuations (memory-store callbacks, frees
  // asked for by a language's finalizer). Dropped once the loop stopped (shutdown).
  void OnLoop(std::function<void()> fn) { loop_.Post(std::move(fn)); }
  // Hands a task to the submitter, and brings a quiet loop back to its short ticks: the lease
  // the task gets is returned by a tick once idle (10 ms), which a quiet loop would see up to a
  // second late. (While the submitter holds anything, the loop does not go quiet again.)
  void SubmitToRaylet(rpc::TaskSpec spec) {
    submitter_->Submit(std::move(spec));
    loop_.Wake();
  }
  void WatchRaylet();
  void RequestExit(absl::Status why) {
    if (receiver_) receiver_->RequestExit(std::move(why));
  }
  // Runs one pushed task (the receiver's runner): the executor, with this thread's current
  // task, the worker command nested tasks use, and task events around it.
  rpc::PushTaskReply RunPushedTask(const rpc::PushTaskRequest& request);
  // An async actor's call (TaskReceiver::AsyncRunner): started here, `finished` when it ends.
  void StartPushedTask(const rpc::PushTaskRequest& request, std::function<void(rpc::PushTaskReply)> finished);
  // What every pushed task does on its thread before and after it runs (or starts).
  void BeginPushedTask(const rpc::TaskSpec& spec);
  void EndPushedTask(const TaskId& task);

  std::vector<std::string> CurrentWorkerCommand() {
    absl::MutexLock lock(&mu_);
    return worker_command_;
  }
  rpc::RuntimeEnv CurrentRuntimeEnv() {
    absl::MutexLock lock(&mu_);
    return runtime_env_;
  }

  const WorkerConfig config_;
  JobId job_id_;
  std::string address_;  // host:port of our CoreWorkerService
  RealClock clock_;
  // Async calls' starts and completions come from threads the core worker does not own (the
  // language layer's event loops): they enter the core through this gate, which the destructor
  // closes first.
  std::shared_ptr<CallGate> gate_ = std::make_shared<CallGate>();

  MemoryStore memory_store_{[this](std::function<void()> fn) { return loop_.Post(std::move(fn)); }};
  DependencyResolver resolver_{memory_store_};
  ReferenceCounter refs_;
  GcsClient gcs_{GcsClientOptions{.address = config_.gcs_address, .timeout = kConnectTimeout}};
  GrpcTransport transport_{gcs_};
  std::shared_ptr<ObjectStoreClient> store_client_;
  std::unique_ptr<NodeStoreAccess> store_access_;
  std::unique_ptr<ObjectRecovery> recovery_;  // before the parts that use it
  std::unique_ptr<OwnedObjects> objects_;
  std::unique_ptr<GeneratorStreams> streams_;
  std::unique_ptr<TaskManager> tasks_;
  std::unique_ptr<ActorClient> actors_;
  std::unique_ptr<PlacementGroupClient> placement_groups_;
  // The placement group of the actor this worker hosts (set by its creation task): its method
  // calls run in it.
  CurrentTaskInfo actor_placement_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TaskExecutor> executor_;
  std::unique_ptr<TaskSubmitter> submitter_;
  std::unique_ptr<ActorSubmitter> actor_submitter_;
  std::unique_ptr<TaskReceiver> receiver_;  // pushed tasks (a driver's stays empty)
  std::unique_ptr<CoreWorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<DirectPushServer> direct_server_;  // workers only; stopped right after server_
  bool job_registered_ = false;

  // An idle core worker ticks every kIdleTickPeriod, and every kQuietTickPeriod once nothing
  // timed is pending (hundreds of idle actors' workers on one node used to cost a CPU core
  // between them, ticking every 5 ms).
  EventLoop loop_{kTickPeriod, [this] { Tick(); }, kIdleTickPeriod};  // see OnLoop
  absl::Notification stop_;
  std::thread raylet_watcher_;

  absl::Mutex mu_;
  std::vector<std::string> worker_command_ ABSL_GUARDED_BY(mu_);
  // What tasks and actors submitted without a runtime_env of their own run in: the driver's
  // (SetDefaultRuntimeEnv), a worker's own (from the tasks it runs).
  rpc::RuntimeEnv runtime_env_ ABSL_GUARDED_BY(mu_);

  // Which task each thread runs (its lock is taken before mu_, never inside it).
  RunningTasks running_;

  TaskEventBuffer task_events_;
  absl::Time last_events_flush_ = absl::InfinitePast();  // loop thread only
  void FlushTaskEvents() {
    rpc::ReportTaskEventsRequest batch = task_events_.TakeBatch();
    if (batch.events_size() > 0 || batch.dropped() > 0) gcs_.AsyncReportTaskEvents(std::move(batch));
  }
};

// ---------------------------------------------------------------------------------------------
// Start-up and shut-down

absl::Status CoreWorker::Impl::Start() {
  if (absl::Status s = GrpcTransport::CheckEnvironment(); !s.ok()) return s;
  if (absl::Status s = SpinBudgetFromEnvironment().status(); !s.ok()) return s;
  auto store = ObjectStoreClient::Connect(config_.store_socket);
  if (!store.ok()) {
    return absl::Status(store.status().code(), absl::StrCat("cannot connect to the object store at ",
                                                            config_.store_socket, ": ", store.status().message()));
  }
  store_client_ = std::shared_ptr<ObjectStoreClient>(std::move(*store));
  store_access_ = std::make_unique<NodeStoreAccess>(store_client_, config_.raylet_address, config_.node_id);
  executor_ = std::make_unique<TaskExecutor>(*store_access_);
  memory_store_.SetTimedWaitHook([this] { loop_.Wake(); });  // before the service serves a GetObject
  receiver_ = std::make_unique<TaskReceiver>(
      clock_, [this](const rpc::PushTaskRequest& request) { return RunPushedTask(request); },
      TaskReceiver::Options{.on_held_call = [this] { loop_.Wake(); }},
      [this](const rpc::PushTaskRequest& request, std::function<void(rpc::PushTaskReply)> finished) {
        CallGate::Entry entry(*gate_);
        if (entry) StartPushedTask(request, std::move(finished));  // else Drain answers it
      });
  service_ = std::make_unique<CoreWorkerService>(
      *receiver_, memory_store_, refs_, clock_,
      CoreWorkerService::Options{
          .runs_tasks = config_.mode == CoreWorkerOptions::Mode::kWorker,
          .cancel_children = [this](const TaskId& parent, bool force) {
            if (force) {
              CancelChildren(parent, true);  // inline: the process exits after the reply
            } else {
              OnLoop([this, parent] { CancelChildren(parent, false); });
            }
          },
          .cancel_owned = [this](const ObjectId& return_id, bool force, bool recursive) {
            if (!refs_.Contains(return_id)) {
              return absl::NotFoundError(absl::StrCat("object ", return_id.Hex(), " is not known to its owner"));
            }
            // On the loop: cancelling a running task calls its worker (up to seconds).
            OnLoop([this, return_id, force, recursive] {
              absl::Status s = CancelTask(return_id, force, recursive);
              if (!s.ok()) spdlog::warn("cancel of {} for a borrower: {}", return_id.Hex(), s.ToString());
            });
            return absl::OkStatus();
          },
          .worker_id = config_.worker_id.Hex(),
          .node_id = config_.node_id.Hex(),
          .ip = config_.node_ip});
  if (auto s = StartServer(); !s.ok()) return s;
  if (config_.mode == CoreWorkerOptions::Mode::kDriver) {
    if (auto s = RegisterJob(); !s.ok()) return s;
  } else {
    job_id_ = config_.job_id;
  }
  OwnedObjects::Options object_options;
  object_options.address = address_;
  object_options.put_task = TaskId::ForNormalTask(job_id_);
  if (config_.mode == CoreWorkerOptions::Mode::kWorker) {
    object_options.set_blocked = [this](bool blocked) {
      transport_.NotifyWorkerBlocked(config_.raylet_address, config_.worker_id, blocked, absl::Seconds(2));
    };
  }
  object_options.post = [this](std::function<void()> fn) { OnLoop(std::move(fn)); };
  recovery_ = std::make_unique<ObjectRecovery>(
      memory_store_,
      ObjectRecovery::Options{.resubmit = [this](rpc::TaskSpec spec) { SubmitToRaylet(std::move(spec)); },
                              .dead_nodes = [this] { return gcs_.WithTimeout(absl::Seconds(5)).DeadNodeIds(); },
                              .rerun_stream = [this](const TaskId& task, int32_t attempt,
                                                     const std::vector<ObjectId>& items) {
                                streams_->Reconstruct(task, attempt, items);
                              }});
  object_options.recovery = recovery_.get();
  objects_ = std::make_unique<OwnedObjects>(memory_store_, refs_, *store_access_, transport_, clock_,
                                            std::move(object_options));
  // A task's returns are stored on the thread that got its reply: the store wakes a blocked Get
  // directly, and sends the callbacks it makes due to the loop (MemoryStore's dispatch). Posting
  // the whole Finish to the loop cost a thread hop per call (bench/README.md, 2026-12-04).
  auto finish = [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
    tasks_->Finish(spec, std::move(returns));
  };
  submitter_ = std::make_unique<TaskSubmitter>(
      transport_, clock_,
      TaskSubmitterOptions{.local_raylet_address = config_.raylet_address,
                           .owner_address = address_,
                           .task_oom_retries = config_.task_oom_retries,
                           .oom_retry_delay_base = config_.oom_retry_delay_base},
      finish);
  actor_submitter_ = std::make_unique<ActorSubmitter>(
      transport_, clock_,
      ActorSubmitterOptions{.caller_id = config_.worker_id.Hex(), .on_timed_work = [this] { loop_.Wake(); }}, finish);
  streams_ = std::make_unique<GeneratorStreams>(refs_, *objects_);
  service_->SetGeneratorItemHandler(
      [this](const rpc::ReportGeneratorItemRequest& request, std::function<void(absl::Status)> done) {
        streams_->ReportItem(request, std::move(done));
      });
  tasks_ = std::make_unique<TaskManager>(refs_, *objects_, resolver_, task_events_, recovery_.get(), streams_.get());
  actors_ = std::make_unique<ActorClient>(gcs_, *tasks_, *objects_, resolver_, *actor_submitter_,
                                          ActorClient::Owner{.job = job_id_, .address = address_});
  placement_groups_ = std::make_unique<PlacementGroupClient>(
      gcs_, PlacementGroupClient::Owner{.job = job_id_, .address = address_});
  loop_.SetQuietTicks(kQuietTickPeriod, [this] {
    return submitter_->Quiet() && actor_submitter_->Quiet() && memory_store_.Quiet() && objects_->Quiet() &&
           (config_.mode != CoreWorkerOptions::Mode::kWorker || receiver_->Quiet());
  });
  loop_.Start();
  if (config_.mode == CoreWorkerOptions::Mode::kWorker) {
    if (auto s = RegisterWithRaylet(); !s.ok()) return s;
    raylet_watcher_ = std::thread([this] { WatchRaylet(); });
  }
  return absl::OkStatus();
}

absl::Status CoreWorker::Impl::StartServer() {
  // Any free port, or (the raylet's --min/--max-worker-port, for firewalls) the first free one
  // of the range, tried from a random place in it so that workers starting together spread.
  std::vector<int> candidates = {0};
  if (config_.min_port > 0) {
    const int span = config_.max_port - config_.min_port + 1;
    const int first = static_cast<int>(absl::ToUnixNanos(absl::Now()) % span);
    candidates.clear();
    for (int i = 0; i < span; ++i) candidates.push_back(config_.min_port + (first + i) % span);
  }
  absl::Status last;
  for (int candidate : candidates) {
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    builder.SetMaxReceiveMessageSize(kMaxMessageSize);
    builder.SetMaxSendMessageSize(kMaxMessageSize);
    int port = 0;
    auto server = shoal::StartServer(builder, config_.node_ip, candidate, &port);
    if (!server.ok()) {
      last = server.status();
      continue;
    }
    server_ = std::move(*server);
    address_ = absl::StrCat(config_.node_ip, ":", port);
    StartDirectPushes();
    return absl::OkStatus();
  }
  if (config_.min_port > 0) {
    return absl::UnavailableError(absl::StrCat("no free worker port in ", config_.min_port, "..", config_.max_port,
                                               " on ", config_.node_ip, " (--min-worker-port/--max-worker-port)"));
  }
  return last;
}

void CoreWorker::Impl::StartDirectPushes() {
  // Not with TLS (the sockets are not encrypted) nor with a worker port range (its port would
  // not keep to it): callers then push over the PushTasks stream (direct_push.h).
  if (config_.mode != CoreWorkerOptions::Mode::kWorker || CurrentTlsFiles().enabled() || config_.min_port > 0) return;
  direct_server_ = std::make_unique<DirectPushServer>(*receiver_);
  absl::StatusOr<int> port = direct_server_->Start(config_.node_ip);
  if (!port.ok()) {
    spdlog::warn("direct pushes are off for this worker: {}", port.status().ToString());
    direct_server_.reset();
    return;
  }
  service_->SetDirectPushPort(*port);
}

absl::Status CoreWorker::Impl::RegisterJob() {
  rpc::JobInfo job;
  job.set_entrypoint(absl::StrJoin(SelfCommandLine(), " "));
  job.set_driver_address(address_);
  job.set_driver_pid(getpid());
  job.set_start_time_ms(absl::ToUnixMillis(absl::Now()));
  absl::StatusOr<JobId> id = gcs_.AddJob(job);
  if (!id.ok()) {
    return absl::Status(id.status().code(),
                        absl::StrCat("cannot register a job with the GCS: ", id.status().message()));
  }
  job_id_ = *id;
  job_registered_ = true;
  return absl::OkStatus();
}

absl::Status CoreWorker::Impl::RegisterWithRaylet() {
  auto stub = rpc::LeaseService::NewStub(MakeChannel(config_.raylet_address));
  rpc::RegisterWorkerRequest req;
  req.set_worker_id(config_.worker_id.Hex());
  auto port = ParseHostPort(address_);
  req.set_port(port.ok() ? port->second : 0);
  req.set_pid(getpid());
  rpc::RegisterWorkerReply reply;
  absl::Status s = UnaryCall(*stub, &rpc::LeaseService::Stub::RegisterWorker, req, &reply,
                             {.timeout = kConnectTimeout, .wait_for_ready = true});
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("cannot register with the raylet at ", config_.raylet_address,
                                               ": ", s.message()));
  }
  if (!reply.node_id().empty() && reply.node_id() != config_.node_id.Hex()) {
    spdlog::warn("raylet at {} answered node {}, but SHOAL_NODE_ID is {}", config_.raylet_address,
                 reply.node_id(), config_.node_id.Hex());
  }
  return absl::OkStatus();
}

void CoreWorker::Impl::Tick() {
  submitter_->Tick();
  actor_submitter_->Tick();
  memory_store_.Tick(clock_.Now());
  objects_->FreePending();
  if (config_.mode == CoreWorkerOptions::Mode::kWorker) receiver_->ReleaseSequenceGaps();
  if (clock_.Now() - last_events_flush_ >= absl::Seconds(1)) {
    last_events_flush_ = clock_.Now();
    FlushTaskEvents();
  }
}

void CoreWorker::Impl::WatchRaylet() {
  auto stub = rpc::NodeManagerService::NewStub(MakeChannel(config_.raylet_address));
  int failures = 0;
  while (!stop_.WaitForNotificationWithTimeout(kRayletCheckPeriod)) {
    rpc::HealthCheckReply reply;
    absl::Status s = UnaryCall(*stub, &rpc::NodeManagerService::Stub::HealthCheck, rpc::HealthCheckRequest(), &reply,
                               {.timeout = kRayletCheckPeriod});
    if (s.ok()) {
      failures = 0;
    } else if (++failures >= kRayletCheckFailures) {
      RequestExit(absl::UnavailableError(absl::StrCat("the raylet at ", config_.raylet_address, " did not answer ",
                                                      failures, " health checks in a row: ", s.message())));
      return;
    }
  }
}

CoreWorker::Impl::~Impl() {
  gate_->Close();  // async calls that finish from now on are answered by Drain
  RequestExit(absl::OkStatus());
  stop_.Notify();
  loop_.Stop();  // runs what was posted; continuations that come later are dropped
  if (objects_) objects_->FreePending();  // frees the last tick did not reach
  if (raylet_watcher_.joinable()) raylet_watcher_.join();
  if (submitter_) submitter_->Shutdown();
  if (actor_submitter_) actor_submitter_->Shutdown();
  FlushTaskEvents();
  transport_.Shutdown(kShutdownRpcTimeout);
  transport_.ReleaseOwnerLeases(address_, absl::Seconds(1));
  memory_store_.CancelAll();
  // The receiver stays alive until the server is gone: a push that arrives meanwhile is
  // answered Unavailable instead of reaching a destroyed object.
  if (receiver_) receiver_->Drain();  // joins a concurrent actor's threads; pushes not run: Unavailable
  if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (direct_server_) direct_server_->Stop();
  // Groups created or removed without waiting reach the GCS before the job's end removes the
  // job's groups (a creation landing after it would outlive the job).
  if (placement_groups_) placement_groups_->Flush();
  if (job_registered_) {
    absl::Status s = gcs_.WithTimeout(kShutdownRpcTimeout).MarkJobFinished(job_id_);
    if (!s.ok()) spdlog::warn("could not mark job {} finished: {}", job_id_.Hex(), s.ToString());
  }
  server_.reset();
  receiver_.reset();
  submitter_.reset();
}

// ---------------------------------------------------------------------------------------------
// Owner: submission, results, objects

absl::StatusOr<std::vector<ObjectId>> CoreWorker::Impl::SubmitTask(const std::string& function_name,
                                                                   std::vector<TaskArg> args,
                                                                   const TaskOptions& options) {
  placement_groups_->AwaitPending(kPlacementGroupSendWait);
  auto placed = InPlacementGroup(options);
  if (!placed.ok()) return placed.status();
  if (!placed->has_runtime_env) placed->runtime_env = CurrentRuntimeEnv();
  auto spec = BuildTaskSpec(job_id_, function_name, *placed, address_,
                            placed->worker_command.empty() ? CurrentWorkerCommand() : placed->worker_command);
  if (!spec.ok()) return spec.status();
  auto return_ids = tasks_->Prepare(*spec, args, options.nested_refs, /*pin_forever=*/false);
  if (!return_ids.ok()) return return_ids.status();
  tasks_->Resolve(std::move(*spec), std::move(args),
                  [this](rpc::TaskSpec resolved) { SubmitToRaylet(std::move(resolved)); }, nullptr);
  if (!return_ids->empty()) AddChild(return_ids->front());
  return return_ids;
}

absl::Status CoreWorker::Impl::ReportGeneratorItem(const CurrentTaskInfo& task, int64_t index, std::string value) {
  auto id = TaskId::FromHex(task.task_id);
  if (!id.ok()) return absl::InvalidArgumentError(absl::StrCat("not a task id: '", task.task_id, "'"));
  if (index < 0) return absl::InvalidArgumentError(absl::StrCat("generator item index ", index, " is negative"));
  const ObjectId item = ObjectId::FromTask(*id, static_cast<uint32_t>(index + 2));
  rpc::ReportGeneratorItemRequest request;
  request.set_task_id(id->Binary());
  request.set_index(index);
  request.set_attempt(task.attempt);
  if (value.size() <= kMaxInlineObjectSize) {
    *request.mutable_value() = InlineValue(item, std::move(value));
  } else {
    auto stored = store_access_->Write(item, value);
    if (!stored.ok()) return stored.status();
    *request.mutable_value() = std::move(*stored);
  }
  absl::Status s = transport_.ReportGeneratorItem(task.owner_address, request);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("generator item ", index, " could not reach the owner at ",
                                               task.owner_address, ": ", s.message()));
  }
  return s;
}

void CoreWorker::Impl::CancelChildren(const TaskId& parent, bool force) {
  for (const ObjectId& child : running_.TakeChildren(parent)) {
    // A child that finished (or an actor call with force) answers OK or an error: best effort.
    absl::Status s = CancelTask(child, force && !child.Task().IsForActor(), /*recursive=*/true);
    if (!s.ok()) spdlog::debug("cancelling child {} of {}: {}", child.Hex(), parent.Hex(), s.ToString());
  }
}

absl::Status CoreWorker::Impl::CancelTask(const ObjectId& return_id, bool force, bool recursive) {
  const TaskId task = return_id.Task();
  if (std::optional<std::string> owner = refs_.OwnerAddress(return_id);
      owner.has_value() && !owner->empty() && memory_store_.GetIfReady(return_id) == nullptr) {
    // Borrowed: the owner submitted the task and cancels it (as Ray forwards the cancel).
    return transport_.CancelOwnedTask(*owner, return_id, force, recursive, absl::Seconds(10));
  }
  if (!refs_.Contains(return_id) || memory_store_.GetIfReady(return_id) != nullptr) {
    return refs_.Contains(return_id) ? absl::OkStatus()  // finished: nothing to cancel
                                     : absl::NotFoundError(absl::StrCat("object ", return_id.Hex(),
                                                                        " is not known to this worker"));
  }
  if (task.IsForActor()) {
    // Ray's rules for actor calls: no force (the worker runs the actor); a call not yet run is
    // dropped; a running call of an async actor is cancelled at its next await.
    if (force) return absl::InvalidArgumentError("force=True is not supported for actor tasks.");
    ActorSubmitter::CancelResult call = actor_submitter_->Cancel(task);
    if (!call.found) {
      tasks_->CancelBeforeSubmit(task);  // still resolving its arguments
    } else if (call.pushed) {
      absl::Status s = transport_.CancelTask(call.worker_address, task, false, recursive, absl::Seconds(5));
      if (!s.ok()) spdlog::warn("cancelling actor call {} on {}: {}", task.Hex(), call.worker_address, s.ToString());
    }
    return absl::OkStatus();
  }
  auto result = submitter_->Cancel(task);
  if (!result.found) {
    tasks_->CancelBeforeSubmit(task);  // still resolving its arguments
    return absl::OkStatus();
  }
  if (result.running) {
    absl::Status s = transport_.CancelTask(result.worker_address, task, force, recursive, absl::Seconds(5));
    if (!s.ok()) spdlog::warn("cancelling task {} on {}: {}", task.Hex(), result.worker_address, s.ToString());
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Worker: the task loop

absl::Status CoreWorker::Impl::RunTaskLoop() {
  if (config_.mode != CoreWorkerOptions::Mode::kWorker) {
    return absl::FailedPreconditionError("RunTaskLoop needs a worker (CreateWorkerFromEnvironment)");
  }
  return receiver_->Run();
}

rpc::PushTaskReply CoreWorker::Impl::RunPushedTask(const rpc::PushTaskRequest& request) {
  BeginPushedTask(request.spec());
  rpc::PushTaskReply reply = executor_->Execute(request);
  EndPushedTask(SpecTaskId(request.spec()));
  return reply;
}

void CoreWorker::Impl::StartPushedTask(const rpc::PushTaskRequest& request,
                                       std::function<void(rpc::PushTaskReply)> finished) {
  const TaskId task = SpecTaskId(request.spec());  // `finished` may answer the push (and free it) at once
  BeginPushedTask(request.spec());  // the language layer reads the task while it starts it
  executor_->ExecuteAsync(request, std::move(finished));
  EndPushedTask(task);
}

void CoreWorker::Impl::BeginPushedTask(const rpc::TaskSpec& spec) {
  if (spec.worker_command_size() > 0) {
    absl::MutexLock lock(&mu_);
    worker_command_.assign(spec.worker_command().begin(), spec.worker_command().end());
  }
  if (spec.actor_id().empty() || spec.actor_creation()) {
    // The environment this worker was started in (method tasks carry none).
    absl::MutexLock lock(&mu_);
    runtime_env_ = spec.runtime_env();
  }
  CurrentTaskInfo info{SpecTaskId(spec).Hex(), spec.function_name(), spec.owner_address(), spec.attempt()};
  if (!spec.placement_group_id().empty()) {
    auto pg = PlacementGroupId::FromBinary(spec.placement_group_id());
    info.placement_group_id = pg.ok() ? pg->Hex() : std::string();
    info.bundle_index = spec.placement_group_bundle_index();
    info.capture_child_tasks = spec.placement_group_capture_child_tasks();
  }
  if (spec.actor_creation()) {
    running_.SetOneAtATime(spec.max_concurrency() <= 1 && spec.concurrency_groups().empty() && !spec.is_asyncio());
    CurrentTaskInfo placement = Describe(info, spec);  // with the actor's resources, once
    absl::MutexLock lock(&mu_);
    actor_placement_ = std::move(placement);
  } else if (!spec.actor_id().empty()) {
    absl::MutexLock lock(&mu_);
    info.placement_group_id = actor_placement_.placement_group_id;
    info.bundle_index = actor_placement_.bundle_index;
    info.capture_child_tasks = actor_placement_.capture_child_tasks;
  }
  running_.Enter(spec, std::move(info));
  task_events_.Add(spec, rpc::TaskEvent::RUNNING);
}

void CoreWorker::Impl::EndPushedTask(const TaskId&) { running_.Leave(); }

// ---------------------------------------------------------------------------------------------
// CoreWorker

CoreWorker::CoreWorker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoreWorker::~CoreWorker() = default;

// Every call this process makes carries the cluster's token, and its own server checks it.
absl::Status UseClusterToken(const std::string& gcs_address) {
  absl::StatusOr<std::string> token = cluster::FindClusterToken(gcs_address);
  if (!token.ok()) return token.status();
  SetClusterToken(*std::move(token));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CoreWorker>> CoreWorker::Create(const CoreWorkerOptions& options) {
  if (options.mode != CoreWorkerOptions::Mode::kDriver) {
    return absl::InvalidArgumentError("a worker is created with CreateWorkerFromEnvironment");
  }
  if (auto hp = ParseHostPort(options.gcs_address); !hp.ok()) return hp.status();
  KeepGrpcInitialized();  // a driver may be created and destroyed many times in one process
  if (options.auth_token.empty()) {
    if (auto s = UseClusterToken(options.gcs_address); !s.ok()) return s;
  } else {
    SetClusterToken(options.auth_token);
  }
  const RealClock clock;
  auto config = WorkerConfig::ForDriver(options, clock, kConnectTimeout);
  if (!config.ok()) return config.status();
  auto impl = std::make_unique<Impl>(*std::move(config));
  if (auto s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<CoreWorker>(new CoreWorker(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CoreWorker>> CoreWorker::CreateWorkerFromEnvironment() {
  PrepareEnvironment();  // tasks set variables while this worker's threads read them (environment.h)
  auto config = WorkerConfig::FromEnvironment();
  if (!config.ok()) return config.status();
  if (auto s = UseClusterToken(config->gcs_address); !s.ok()) return s;  // the raylet passes $SHOAL_AUTH_TOKEN
  auto impl = std::make_unique<Impl>(*std::move(config));
  if (auto s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<CoreWorker>(new CoreWorker(std::move(impl)));
}

absl::StatusOr<ObjectId> CoreWorker::SubmitTask(const std::string& function_name, std::vector<TaskArg> args,
                                                const TaskOptions& options) {
  auto ids = impl_->SubmitTask(function_name, std::move(args), options);
  if (!ids.ok()) return ids.status();
  return ids->front();
}
absl::StatusOr<std::vector<ObjectId>> CoreWorker::SubmitTaskReturns(const std::string& function_name,
                                                                    std::vector<TaskArg> args,
                                                                    const TaskOptions& options) {
  return impl_->SubmitTask(function_name, std::move(args), options);
}
absl::Status CoreWorker::CancelTask(const ObjectId& return_id, bool force, bool recursive) {
  return impl_->CancelTask(return_id, force, recursive);
}
absl::StatusOr<ObjectId> CoreWorker::Put(std::string value) { return impl_->objects().Put(std::move(value)); }
absl::StatusOr<ObjectId> CoreWorker::PutParts(const std::vector<std::string_view>& parts) {
  return impl_->objects().PutParts(parts);
}
absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> CoreWorker::GetBuffers(
    const std::vector<ObjectId>& ids, absl::Duration timeout, std::function<bool()> interrupted) {
  return impl_->objects().GetBuffers(ids, timeout, std::move(interrupted));
}
void CoreWorker::SetTaskHandler(TaskHandler handler) { impl_->SetTaskHandler(std::move(handler)); }
void CoreWorker::SetAsyncTaskHandler(AsyncTaskHandler handler) { impl_->SetAsyncTaskHandler(std::move(handler)); }
void CoreWorker::SetInterruptHandler(std::function<void(const std::string&)> handler) {
  impl_->SetInterruptHandler(std::move(handler));
}
CurrentTaskInfo CoreWorker::CurrentTask() const { return impl_->CurrentTask(); }
absl::StatusOr<std::optional<ObjectId>> CoreWorker::GeneratorNext(const ObjectId& generator, absl::Duration timeout) {
  return impl_->GeneratorNext(generator, timeout);
}
bool CoreWorker::GeneratorIsFinished(const ObjectId& generator) {
  return impl_->streams().IsFinished(generator.Task());
}
bool CoreWorker::GeneratorNextReady(const ObjectId& generator) {
  return impl_->streams().NextReady(generator.Task());
}
void CoreWorker::ReleaseGenerator(const ObjectId& generator) { impl_->streams().Release(generator.Task()); }
absl::Status CoreWorker::ReportGeneratorItem(const CurrentTaskInfo& task, int64_t index, std::string value) {
  return impl_->ReportGeneratorItem(task, index, std::move(value));
}
PlacementGroupClient& CoreWorker::placement_groups() { return impl_->placement_groups(); }
absl::Status CoreWorker::SendLogs(const std::string& owner_address, const std::vector<std::string>& lines,
                                  bool is_stderr) {
  return impl_->SendLogs(owner_address, lines, is_stderr);
}
void CoreWorker::SetLogHandler(std::function<void(const std::vector<std::string>&, bool)> handler) {
  impl_->SetLogHandler(std::move(handler));
}
void CoreWorker::SetDefaultRuntimeEnv(rpc::RuntimeEnv env) { impl_->SetDefaultRuntimeEnv(std::move(env)); }

absl::StatusOr<bool> CoreWorker::KvPut(const std::string& ns, const std::string& key, const std::string& value,
                                       bool overwrite) {
  return impl_->gcs().WithTimeout(kGcsReconnectTimeout).KvPut(ns, key, value, overwrite);
}
void CoreWorker::WatchFree(const ObjectId& id) { impl_->objects().WatchFree(id); }
void CoreWorker::SetFreedHandler(std::function<void(std::vector<ObjectId>)> handler) {
  impl_->objects().SetFreedHandler(std::move(handler));
}
absl::Status CoreWorker::KvDel(const std::string& ns, const std::string& key) {
  return impl_->gcs().WithTimeout(kGcsReconnectTimeout).KvDel(ns, key).status();
}
absl::StatusOr<std::string> CoreWorker::KvGet(const std::string& ns, const std::string& key) {
  return impl_->gcs().WithTimeout(kGcsReconnectTimeout).KvGet(ns, key);
}
const std::string& CoreWorker::gcs_address() const { return impl_->config().gcs_address; }
absl::StatusOr<ActorDescription> CoreWorker::CreateActor(const std::string& function_name, std::vector<TaskArg> args,
                                                         const TaskOptions& options, const ActorOptions& actor) {
  return impl_->CreateActor(function_name, std::move(args), options, actor);
}
void CoreWorker::AddActorHandle(const ActorId& actor, int max_task_retries) {
  impl_->actors().AddHandle(actor, max_task_retries);
}
absl::StatusOr<std::vector<ObjectId>> CoreWorker::SubmitActorTask(const ActorId& actor, const std::string& method,
                                                                  std::vector<TaskArg> args,
                                                                  const TaskOptions& options) {
  impl_->placement_groups().AwaitPending(kPlacementGroupSendWait);
  auto ids = impl_->actors().Call(actor, method, std::move(args), options);
  if (ids.ok() && !ids->empty()) impl_->AddChild(ids->front());
  return ids;
}
absl::Status CoreWorker::KillActor(const ActorId& actor, bool no_restart) {
  return impl_->actors().Kill(actor, no_restart);
}
absl::StatusOr<ActorDescription> CoreWorker::GetNamedActor(const std::string& name, const std::string& ray_namespace) {
  return impl_->actors().GetNamed(name, ray_namespace);
}
absl::StatusOr<ActorDescription> CoreWorker::GetActorInfo(const ActorId& actor) {
  return impl_->actors().GetInfo(actor);
}
ActorId CoreWorker::CurrentActor() const { return impl_->CurrentActor(); }
absl::StatusOr<std::vector<absl::StatusOr<std::string>>> CoreWorker::Get(const std::vector<ObjectId>& ids,
                                                                         absl::Duration timeout) {
  return impl_->objects().Get(ids, timeout);
}
absl::StatusOr<std::vector<bool>> CoreWorker::Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                   absl::Duration timeout, bool fetch_local) {
  return impl_->objects().Wait(ids, num_ready, timeout, fetch_local);
}
void CoreWorker::AddLocalReference(const ObjectId& id) { impl_->AddLocalReference(id); }
void CoreWorker::RemoveLocalReference(const ObjectId& id) { impl_->RemoveLocalReference(id); }
void CoreWorker::RegisterBorrowedObject(const ObjectId& id, const std::string& owner_address) {
  impl_->RegisterBorrowedObject(id, owner_address);
}
absl::StatusOr<std::string> CoreWorker::GetOwnerAddress(const ObjectId& id) const {
  return impl_->GetOwnerAddress(id);
}
absl::Status CoreWorker::RunTaskLoop() { return impl_->RunTaskLoop(); }
const JobId& CoreWorker::job_id() const { return impl_->job_id(); }
const NodeId& CoreWorker::node_id() const { return impl_->config().node_id; }
const WorkerId& CoreWorker::worker_id() const { return impl_->config().worker_id; }
std::string CoreWorker::address() const { return impl_->address(); }

}  // namespace shoal
