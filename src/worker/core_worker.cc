// CoreWorker: wires the memory store, reference counter, submitter, executor, object store
// access and the CoreWorkerService server together (see core_worker.h).
//
// Threads: a ticker (every 5 ms: idle lease returns, lease retries, GetObject deadlines); in
// worker mode a raylet watcher (HealthCheck every second; the task loop ends after 5 failures in
// a row) and the thread running RunTaskLoop, which executes pushed tasks one at a time; gRPC's
// callback threads answer RPC completions and serve GetObject/PushTask/Exit without blocking.
#include "src/worker/core_worker.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.grpc.pb.h"
#include "shoal/raylet.grpc.pb.h"
#include "shoal/worker.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "src/common/clock.h"
#include "src/common/rpc.h"
#include "src/worker/actor_submitter.h"
#include "src/worker/call_order.h"
#include "src/worker/grpc_transport.h"
#include "src/worker/memory_store.h"
#include "src/worker/object_value.h"
#include "src/worker/reference_counter.h"
#include "src/worker/store_access.h"
#include "src/worker/task_events.h"
#include "src/worker/task_executor.h"
#include "src/worker/task_spec.h"
#include "src/worker/task_submitter.h"

namespace shoal {
namespace {

constexpr absl::Duration kTickPeriod = absl::Milliseconds(5);
constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
constexpr absl::Duration kShutdownRpcTimeout = absl::Seconds(2);
constexpr absl::Duration kRayletCheckPeriod = absl::Seconds(1);
constexpr int kRayletCheckFailures = 5;
constexpr int kMaxMessageSize = 64 << 20;
constexpr absl::Duration kSequenceGapTimeout = absl::Seconds(2);

// The task the calling thread runs (worker mode).
thread_local CurrentTaskInfo tls_current_task;

// argv of this process, from /proc/self/cmdline.
std::vector<std::string> SelfCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == '\0') {
      argv.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < all.size()) argv.push_back(all.substr(start));
  return argv;
}

std::string SelfExecutable() {
  char buf[PATH_MAX];
  if (realpath("/proc/self/exe", buf) != nullptr) return buf;
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : std::string("/proc/self/exe");
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

// What a CoreWorker needs to start, from CoreWorkerOptions (driver) or the environment (worker).
struct Config {
  CoreWorkerOptions::Mode mode = CoreWorkerOptions::Mode::kDriver;
  std::string gcs_address;
  std::string raylet_address;
  std::string node_ip;
  std::string store_socket;
  NodeId node_id;
  WorkerId worker_id;
  JobId job_id;  // worker mode; a driver gets its job from the GCS
  std::vector<std::string> worker_command;
};

}  // namespace

class CoreWorker::Impl final : public rpc::CoreWorkerService::CallbackService {
 public:
  explicit Impl(Config config)
      : config_(std::move(config)), worker_command_(config_.worker_command) {}
  ~Impl() override;

  // Connects to the store, starts serving, then (driver) registers the job or (worker)
  // registers with the raylet.
  absl::Status Start();

  absl::StatusOr<std::vector<ObjectId>> SubmitTask(const std::string& function_name, std::vector<TaskArg> args,
                                                   const TaskOptions& options);
  absl::Status CancelTask(const ObjectId& return_id, bool force);
  absl::StatusOr<std::vector<ObjectId>> SubmitActorTask(const ActorId& actor, const std::string& method,
                                                        std::vector<TaskArg> args, const TaskOptions& options);
  absl::StatusOr<ActorDescription> CreateActor(const std::string& function_name, std::vector<TaskArg> args,
                                               const TaskOptions& options, const ActorOptions& actor);
  void AddActorHandle(const ActorId& actor, int max_task_retries);
  absl::Status KillActor(const ActorId& actor, bool no_restart);
  absl::StatusOr<ActorDescription> GetNamedActor(const std::string& name, const std::string& ray_namespace);
  absl::StatusOr<ActorDescription> GetActorInfo(const ActorId& actor);
  ActorId CurrentActor() const {
    absl::MutexLock lock(&task_mu_);
    return actor_id_;
  }
  absl::StatusOr<ObjectId> Put(std::string value);
  absl::StatusOr<ObjectId> PutParts(const std::vector<std::string_view>& parts);
  absl::StatusOr<std::vector<absl::StatusOr<std::string>>> Get(const std::vector<ObjectId>& ids,
                                                               absl::Duration timeout);
  absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> GetBuffers(const std::vector<ObjectId>& ids,
                                                                      absl::Duration timeout);
  absl::StatusOr<std::vector<bool>> Wait(const std::vector<ObjectId>& ids, int num_ready, absl::Duration timeout);
  void AddLocalReference(const ObjectId& id) { refs_.AddLocal(id); }
  void RemoveLocalReference(const ObjectId& id) {
    if (auto gone = refs_.RemoveLocal(id)) Free({*gone});
  }
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
  void SetInterruptHandler(std::function<void(const std::string&)> handler) {
    absl::MutexLock lock(&mu_);
    interrupt_handler_ = std::move(handler);
  }
  CurrentTaskInfo CurrentTask() const { return tls_current_task; }
  absl::Status SendLogs(const std::string& owner, const std::vector<std::string>& lines, bool is_stderr) {
    return transport_.PrintLogs(owner, lines, is_stderr, absl::Seconds(5));
  }
  void SetLogHandler(std::function<void(const std::vector<std::string>&, bool)> handler) {
    absl::MutexLock lock(&mu_);
    log_handler_ = std::move(handler);
  }
  absl::Status KvPut(const std::string& ns, const std::string& key, const std::string& value, bool overwrite);
  absl::StatusOr<std::string> KvGet(const std::string& ns, const std::string& key);

  const Config& config() const { return config_; }
  const JobId& job_id() const { return job_id_; }
  const std::string& address() const { return address_; }

  // CoreWorkerService.
  grpc::ServerUnaryReactor* PushTask(grpc::CallbackServerContext* ctx, const rpc::PushTaskRequest* request,
                                     rpc::PushTaskReply* reply) override;
  grpc::ServerUnaryReactor* GetObject(grpc::CallbackServerContext* ctx, const rpc::GetObjectRequest* request,
                                      rpc::GetObjectReply* reply) override;
  grpc::ServerUnaryReactor* Exit(grpc::CallbackServerContext* ctx, const rpc::ExitRequest* request,
                                 rpc::ExitReply* reply) override;
  grpc::ServerUnaryReactor* PrintLogs(grpc::CallbackServerContext* ctx, const rpc::PrintLogsRequest* request,
                                      rpc::PrintLogsReply* reply) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const rpc::PingRequest*, rpc::PingReply*) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* ctx, const rpc::CancelTaskRequest* request,
                                       rpc::CancelTaskReply* reply) override;

 private:
  class BlockedScope;
  struct PushedTask {
    const rpc::PushTaskRequest* request;
    rpc::PushTaskReply* reply;
    grpc::ServerUnaryReactor* reactor;
  };

  absl::Status StartServer();
  absl::Status RegisterJob();
  absl::Status RegisterWithRaylet();
  void TickLoop();
  void WatchRaylet();
  void RequestExit(absl::Status why);

  ObjectId NewPutId() { return ObjectId::FromTask(put_task_id_, put_index_.fetch_add(1) + 1); }
  // Stores `bytes` as a new owned object (inline or in this node's store).
  absl::StatusOr<ObjectId> PutOwned(std::string bytes);
  // Checks the arguments, moves large values to the store, counts the references the task
  // holds (released when it finishes, or never with `pin_forever`) and its returns.
  absl::StatusOr<std::vector<ObjectId>> PrepareTask(const rpc::TaskSpec& spec, std::vector<TaskArg>& args,
                                                    const TaskOptions& options, bool pin_forever);
  // Fills the spec's arguments once every ref argument has a value, then calls `submit`; when
  // an argument failed, finishes the task with that error and calls `on_failed` (if set).
  void ResolveAndSubmit(rpc::TaskSpec spec, std::vector<TaskArg> args, std::function<void(rpc::TaskSpec)> submit,
                        std::function<void()> on_failed);
  // A task finished for good: stores its returns and releases its arguments.
  void OnTaskDone(const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns);
  // Stores a value for an object, unless it went out of scope meanwhile (then drops it and,
  // when `owned`, its store copy).
  void StoreResult(const ObjectId& id, rpc::ObjectValue value, bool owned);
  // Asks a borrowed object's owner for its value (once at a time per object).
  void StartBorrowedFetch(const ObjectId& id, const std::string& owner);
  // Drops objects that went out of scope: memory-store values and owned store copies.
  void Free(const std::vector<ReferenceCounter::OutOfScope>& gone);
  absl::StatusOr<std::string> ToBytes(const rpc::ObjectValue& value);
  absl::StatusOr<ObjectBuffer> ToBuffer(const ValuePtr& value);
  // Waits for the values of `ids` (owned or borrowed) as Get does.
  absl::StatusOr<std::vector<ValuePtr>> WaitForValues(const std::vector<ObjectId>& ids, absl::Duration timeout);
  // Stores a new owned object made of `parts`.
  absl::StatusOr<ObjectId> PutOwnedParts(const std::vector<std::string_view>& parts);
  std::vector<std::string> CurrentWorkerCommand() {
    absl::MutexLock lock(&mu_);
    return worker_command_;
  }

  const Config config_;
  JobId job_id_;
  TaskId put_task_id_;
  std::atomic<uint32_t> put_index_{0};
  std::string address_;  // host:port of our CoreWorkerService
  RealClock clock_;

  MemoryStore memory_store_;
  ReferenceCounter refs_;
  GrpcTransport transport_;
  std::shared_ptr<ObjectStoreClient> store_client_;
  std::unique_ptr<NodeStoreAccess> store_access_;
  std::unique_ptr<TaskExecutor> executor_;
  std::unique_ptr<TaskSubmitter> submitter_;
  std::unique_ptr<rpc::JobInfoService::Stub> gcs_jobs_;
  std::unique_ptr<rpc::KVService::Stub> gcs_kv_;
  std::unique_ptr<rpc::ActorService::Stub> gcs_actors_;
  std::unique_ptr<ActorSubmitter> actor_submitter_;
  std::unique_ptr<grpc::Server> server_;
  bool job_registered_ = false;

  absl::Notification stop_;
  std::thread ticker_;
  std::thread raylet_watcher_;

  absl::Mutex mu_;
  std::vector<std::string> worker_command_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TaskId, std::vector<ObjectId>> task_arg_refs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<ObjectId> borrowed_fetches_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<TaskId> cancelled_before_submit_ ABSL_GUARDED_BY(mu_);  // cancelled while resolving
  std::function<void(const std::string&)> interrupt_handler_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::vector<std::string>&, bool)> log_handler_ ABSL_GUARDED_BY(mu_);

  TaskEventBuffer task_events_;
  absl::Time last_events_flush_ = absl::InfinitePast();  // ticker thread only
  void FlushTaskEvents() {
    rpc::ReportTaskEventsRequest batch = task_events_.TakeBatch();
    if (batch.events_size() > 0 || batch.dropped() > 0) transport_.ReportTaskEvents(config_.gcs_address, std::move(batch));
  }

  mutable absl::Mutex current_mu_;
  absl::flat_hash_set<std::string> running_ ABSL_GUARDED_BY(current_mu_);  // task ids (hex) being run

  // Runs pushed tasks until exiting (RunTaskLoop, and the extra threads of a concurrent actor).
  absl::Status TaskLoop();
  // Queues a pushed task for the loop, in caller order for actor method tasks.
  void EnqueuePushed(PushedTask task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(task_mu_);
  // A call whose predecessor never came (its push broke and was not retried) runs after a
  // while instead of waiting forever.
  void ReleaseSequenceGaps();

  mutable absl::Mutex task_mu_;
  std::deque<PushedTask> pushed_ ABSL_GUARDED_BY(task_mu_);
  CallOrder<PushedTask> call_order_ ABSL_GUARDED_BY(task_mu_){kSequenceGapTimeout};  // method calls
  ActorId actor_id_ ABSL_GUARDED_BY(task_mu_);
  std::vector<std::thread> extra_loops_;  // joined at destruction
  bool exiting_ ABSL_GUARDED_BY(task_mu_) = false;
  absl::Status exit_status_ ABSL_GUARDED_BY(task_mu_);
};

// ---------------------------------------------------------------------------------------------
// Start-up and shut-down

absl::Status CoreWorker::Impl::Start() {
  auto store = ObjectStoreClient::Connect(config_.store_socket);
  if (!store.ok()) {
    return absl::Status(store.status().code(), absl::StrCat("cannot connect to the object store at ",
                                                            config_.store_socket, ": ", store.status().message()));
  }
  store_client_ = std::shared_ptr<ObjectStoreClient>(std::move(*store));
  store_access_ = std::make_unique<NodeStoreAccess>(store_client_, config_.raylet_address, config_.node_id);
  gcs_kv_ = rpc::KVService::NewStub(MakeChannel(config_.gcs_address));
  gcs_actors_ = rpc::ActorService::NewStub(MakeChannel(config_.gcs_address));
  executor_ = std::make_unique<TaskExecutor>(*store_access_);
  if (auto s = StartServer(); !s.ok()) return s;
  if (config_.mode == CoreWorkerOptions::Mode::kDriver) {
    if (auto s = RegisterJob(); !s.ok()) return s;
  } else {
    job_id_ = config_.job_id;
  }
  put_task_id_ = TaskId::ForNormalTask(job_id_);
  submitter_ = std::make_unique<TaskSubmitter>(
      transport_, clock_,
      TaskSubmitterOptions{.local_raylet_address = config_.raylet_address, .owner_address = address_},
      [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
        OnTaskDone(spec, std::move(returns));
      });
  actor_submitter_ = std::make_unique<ActorSubmitter>(
      transport_, clock_,
      ActorSubmitterOptions{.gcs_address = config_.gcs_address, .caller_id = config_.worker_id.Hex()},
      [this](const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
        OnTaskDone(spec, std::move(returns));
      });
  ticker_ = std::thread([this] { TickLoop(); });
  if (config_.mode == CoreWorkerOptions::Mode::kWorker) {
    if (auto s = RegisterWithRaylet(); !s.ok()) return s;
    raylet_watcher_ = std::thread([this] { WatchRaylet(); });
  }
  return absl::OkStatus();
}

absl::Status CoreWorker::Impl::StartServer() {
  grpc::ServerBuilder builder;
  builder.RegisterService(this);
  builder.SetMaxReceiveMessageSize(kMaxMessageSize);
  builder.SetMaxSendMessageSize(kMaxMessageSize);
  int port = 0;
  auto server = shoal::StartServer(builder, config_.node_ip, 0, &port);
  if (!server.ok()) return server.status();
  server_ = std::move(*server);
  address_ = absl::StrCat(config_.node_ip, ":", port);
  return absl::OkStatus();
}

absl::Status CoreWorker::Impl::RegisterJob() {
  gcs_jobs_ = rpc::JobInfoService::NewStub(MakeChannel(config_.gcs_address));
  rpc::AddJobRequest req;
  rpc::JobInfo* job = req.mutable_job();
  job->set_entrypoint(absl::StrJoin(SelfCommandLine(), " "));
  job->set_driver_address(address_);
  job->set_driver_pid(getpid());
  job->set_start_time_ms(absl::ToUnixMillis(absl::Now()));
  rpc::AddJobReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  ctx.set_wait_for_ready(true);
  absl::Status s = FromGrpcStatus(gcs_jobs_->AddJob(&ctx, req, &reply));
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat("cannot register a job with the GCS: ", s.message()));
  auto id = JobId::FromHex(reply.job_id());
  if (!id.ok()) return absl::InternalError(absl::StrCat("the GCS answered a bad job id: ", id.status().message()));
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
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  ctx.set_wait_for_ready(true);
  absl::Status s = FromGrpcStatus(stub->RegisterWorker(&ctx, req, &reply));
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

void CoreWorker::Impl::TickLoop() {
  while (!stop_.WaitForNotificationWithTimeout(kTickPeriod)) {
    submitter_->Tick();
    actor_submitter_->Tick();
    memory_store_.Tick(absl::Now());
    if (config_.mode == CoreWorkerOptions::Mode::kWorker) ReleaseSequenceGaps();
    if (absl::Now() - last_events_flush_ >= absl::Seconds(1)) {
      last_events_flush_ = absl::Now();
      FlushTaskEvents();
    }
  }
}

void CoreWorker::Impl::WatchRaylet() {
  auto stub = rpc::NodeManagerService::NewStub(MakeChannel(config_.raylet_address));
  int failures = 0;
  while (!stop_.WaitForNotificationWithTimeout(kRayletCheckPeriod)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRayletCheckPeriod));
    rpc::HealthCheckRequest req;
    rpc::HealthCheckReply reply;
    grpc::Status s = stub->HealthCheck(&ctx, req, &reply);
    if (s.ok()) {
      failures = 0;
    } else if (++failures >= kRayletCheckFailures) {
      RequestExit(absl::UnavailableError(absl::StrCat("the raylet at ", config_.raylet_address, " did not answer ",
                                                      failures, " health checks in a row: ", s.error_message())));
      return;
    }
  }
}

void CoreWorker::Impl::RequestExit(absl::Status why) {
  absl::MutexLock lock(&task_mu_);
  if (exiting_) return;
  exiting_ = true;
  exit_status_ = std::move(why);
}

CoreWorker::Impl::~Impl() {
  RequestExit(absl::OkStatus());
  stop_.Notify();
  if (ticker_.joinable()) ticker_.join();
  for (auto& t : extra_loops_) {
    if (t.joinable()) t.join();
  }
  if (raylet_watcher_.joinable()) raylet_watcher_.join();
  if (submitter_) submitter_->Shutdown();
  if (actor_submitter_) actor_submitter_->Shutdown();
  FlushTaskEvents();
  transport_.Shutdown(kShutdownRpcTimeout);
  transport_.ReleaseOwnerLeases(address_, absl::Seconds(1));
  memory_store_.CancelAll();
  {
    absl::MutexLock lock(&task_mu_);
    for (auto& t : pushed_) t.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is exiting"));
    pushed_.clear();
  }
  if (server_) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (job_registered_) {
    rpc::MarkJobFinishedRequest req;
    req.set_job_id(job_id_.Hex());
    rpc::MarkJobFinishedReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kShutdownRpcTimeout));
    grpc::Status s = gcs_jobs_->MarkJobFinished(&ctx, req, &reply);
    if (!s.ok()) spdlog::warn("could not mark job {} finished: {}", job_id_.Hex(), s.error_message());
  }
  server_.reset();
  submitter_.reset();
}

// ---------------------------------------------------------------------------------------------
// Owner: submission, results, objects

absl::StatusOr<std::vector<ObjectId>> CoreWorker::Impl::PrepareTask(const rpc::TaskSpec& spec,
                                                                    std::vector<TaskArg>& args,
                                                                    const TaskOptions& options, bool pin_forever) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].is_ref && !refs_.Contains(args[i].ref)) {
      return absl::InvalidArgumentError(absl::StrCat("argument ", i, " of '", spec.function_name(),
                                                     "' refers to object ", args[i].ref.Hex(),
                                                     ", which this worker neither owns nor borrows"));
    }
  }
  for (const ObjectId& id : options.nested_refs) {
    if (!refs_.Contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat("an argument of '", spec.function_name(), "' contains object ",
                                                     id.Hex(), ", which this worker neither owns nor borrows"));
    }
  }
  // Large values passed by value travel through the store, like Put objects.
  std::vector<ObjectId> puts;
  for (auto& arg : args) {
    if (arg.is_ref || arg.value.size() <= kMaxInlineObjectSize) continue;
    auto id = PutOwned(std::move(arg.value));
    if (!id.ok()) {
      refs_.AddSubmitted(puts);
      Free(refs_.RemoveSubmitted(puts));
      return id.status();
    }
    puts.push_back(*id);
    arg = TaskArg::Ref(*id);
  }
  std::vector<ObjectId> arg_refs;
  for (const auto& arg : args) {
    if (arg.is_ref) arg_refs.push_back(arg.ref);
  }
  arg_refs.insert(arg_refs.end(), options.nested_refs.begin(), options.nested_refs.end());
  std::vector<ObjectId> return_ids;
  for (uint32_t i = 1; i <= spec.num_returns(); ++i) {
    return_ids.push_back(ReturnObjectId(spec, i));
    refs_.AddOwned(return_ids.back());
  }
  refs_.AddSubmitted(arg_refs);
  if (!arg_refs.empty() && !pin_forever) {
    absl::MutexLock lock(&mu_);
    task_arg_refs_[SpecTaskId(spec)] = std::move(arg_refs);
  }
  return return_ids;
}

absl::StatusOr<std::vector<ObjectId>> CoreWorker::Impl::SubmitTask(const std::string& function_name,
                                                                   std::vector<TaskArg> args,
                                                                   const TaskOptions& options) {
  auto spec = BuildTaskSpec(job_id_, function_name, options, address_,
                            options.worker_command.empty() ? CurrentWorkerCommand() : options.worker_command);
  if (!spec.ok()) return spec.status();
  auto return_ids = PrepareTask(*spec, args, options, /*pin_forever=*/false);
  if (!return_ids.ok()) return return_ids.status();
  ResolveAndSubmit(std::move(*spec), std::move(args),
                   [this](rpc::TaskSpec resolved) { submitter_->Submit(std::move(resolved)); }, nullptr);
  return return_ids;
}

absl::StatusOr<std::vector<ObjectId>> CoreWorker::Impl::SubmitActorTask(const ActorId& actor,
                                                                        const std::string& method,
                                                                        std::vector<TaskArg> args,
                                                                        const TaskOptions& options) {
  TaskOptions call_options = options;
  call_options.resources = ResourceSet();
  call_options.use_default_resources = true;
  call_options.strategy = TaskOptions::Strategy::kDefault;
  auto spec = BuildTaskSpec(job_id_, method, call_options, address_, {});
  if (!spec.ok()) return spec.status();
  spec->set_task_id(TaskId::ForActorTask(actor).Binary());
  spec->set_actor_id(actor.Binary());
  spec->clear_resources();
  actor_submitter_->AddActor(actor, 0);  // no-op when known (the handle's retries stay)
  auto return_ids = PrepareTask(*spec, args, options, /*pin_forever=*/false);
  if (!return_ids.ok()) return return_ids.status();
  const uint64_t order = actor_submitter_->Reserve(actor);
  ResolveAndSubmit(
      std::move(*spec), std::move(args),
      [this, order](rpc::TaskSpec resolved) { actor_submitter_->Submit(order, std::move(resolved)); },
      [this, actor, order] { actor_submitter_->Abandon(actor, order); });
  return return_ids;
}

namespace {
ActorDescription Describe(const rpc::ActorInfo& info) {
  ActorDescription d;
  auto id = ActorId::FromBinary(info.actor_id());
  if (id.ok()) d.id = *id;
  d.class_name = info.class_name();
  d.state = rpc::ActorInfo::State_Name(info.state());
  d.death_cause = info.death_cause();
  d.handle_data = info.handle_data();
  d.worker_address = info.worker_address();
  d.node_id = info.node_id();
  d.num_restarts = info.num_restarts();
  return d;
}
}  // namespace

absl::StatusOr<ActorDescription> CoreWorker::Impl::CreateActor(const std::string& function_name,
                                                               std::vector<TaskArg> args, const TaskOptions& options,
                                                               const ActorOptions& actor_options) {
  if (actor_options.max_concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_concurrency must be at least 1, got ", actor_options.max_concurrency));
  }
  if (actor_options.max_restarts < -1 || actor_options.max_task_retries < -1) {
    return absl::InvalidArgumentError("max_restarts and max_task_retries must be -1 (no limit) or more");
  }
  auto spec = BuildTaskSpec(job_id_, function_name, options, address_,
                            options.worker_command.empty() ? CurrentWorkerCommand() : options.worker_command);
  if (!spec.ok()) return spec.status();
  const ActorId actor = ActorId::Of(job_id_);
  spec->set_task_id(TaskId::ForActorTask(actor).Binary());
  spec->set_actor_id(actor.Binary());
  spec->set_actor_creation(true);
  spec->set_max_concurrency(actor_options.max_concurrency);
  spec->set_max_retries(0);
  // The arguments stay pinned for the actor's life: a restart runs the constructor again.
  auto return_ids = PrepareTask(*spec, args, options, /*pin_forever=*/true);
  if (!return_ids.ok()) return return_ids.status();
  std::vector<ObjectId> refs;
  for (const auto& arg : args) {
    if (arg.is_ref) refs.push_back(arg.ref);
  }
  std::vector<ValuePtr> values;
  if (!refs.empty()) {
    auto got = WaitForValues(refs, absl::Seconds(-1));
    if (!got.ok()) return got.status();
    values = std::move(*got);
  }
  size_t next_ref = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    rpc::TaskArg* arg = spec->add_args();
    if (!args[i].is_ref) {
      arg->set_inline_value(std::move(args[i].value));
      continue;
    }
    const ValuePtr& value = values[next_ref++];
    if (value->is_error()) {
      absl::Status s = ErrorValueToStatus(*value);
      return absl::Status(s.code(), absl::StrCat("argument ", i, " of the constructor of ", actor_options.class_name,
                                                 " failed: ", s.message()));
    }
    if (value->in_store()) {
      *arg->mutable_object() = *value;
    } else {
      arg->set_inline_value(value->inline_data());
    }
  }
  rpc::RegisterActorRequest req;
  *req.mutable_creation_spec() = *spec;
  rpc::ActorInfo* info = req.mutable_info();
  info->set_actor_id(actor.Binary());
  info->set_job_id(job_id_.Hex());
  info->set_class_name(actor_options.class_name);
  info->set_owner_address(actor_options.detached ? std::string() : address_);
  info->set_name(actor_options.name);
  info->set_ray_namespace(actor_options.ray_namespace);
  info->set_detached(actor_options.detached);
  info->set_max_restarts(actor_options.max_restarts);
  info->set_handle_data(actor_options.handle_data);
  *info->mutable_resources() = spec->resources();
  req.set_get_if_exists(actor_options.get_if_exists);
  rpc::RegisterActorReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  ctx.set_wait_for_ready(true);
  absl::Status s = FromGrpcStatus(gcs_actors_->RegisterActor(&ctx, req, &reply));
  if (!s.ok()) return s;
  auto id = ActorId::FromBinary(reply.actor_id());
  if (!id.ok()) return absl::InternalError("the GCS answered a bad actor id");
  actor_submitter_->AddActor(*id, actor_options.max_task_retries);
  ActorDescription d;
  d.id = *id;
  d.class_name = actor_options.class_name;
  d.state = "PENDING";
  d.existed = reply.existed();
  if (reply.existed()) {
    auto existing = GetActorInfo(*id);
    if (existing.ok()) {
      d = *existing;
      d.existed = true;
    }
  }
  return d;
}

void CoreWorker::Impl::AddActorHandle(const ActorId& actor, int max_task_retries) {
  actor_submitter_->AddActor(actor, max_task_retries);
}

absl::Status CoreWorker::Impl::KillActor(const ActorId& actor, bool no_restart) {
  rpc::KillActorRequest req;
  req.set_actor_id(actor.Binary());
  req.set_no_restart(no_restart);
  rpc::KillActorReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  absl::Status s = FromGrpcStatus(gcs_actors_->KillActor(&ctx, req, &reply));
  if (s.ok() && no_restart) actor_submitter_->MarkKilled(actor, "killed by shoal.kill()");
  return s;
}

absl::StatusOr<ActorDescription> CoreWorker::Impl::GetNamedActor(const std::string& name,
                                                                 const std::string& ray_namespace) {
  rpc::GetNamedActorRequest req;
  req.set_name(name);
  req.set_ray_namespace(ray_namespace);
  rpc::GetNamedActorReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  absl::Status s = FromGrpcStatus(gcs_actors_->GetNamedActor(&ctx, req, &reply));
  if (!s.ok()) {
    if (absl::IsNotFound(s)) {
      return absl::NotFoundError(absl::StrCat("Failed to look up actor with name '", name, "' in namespace '",
                                              ray_namespace, "'"));
    }
    return s;
  }
  return Describe(reply.info());
}

absl::StatusOr<ActorDescription> CoreWorker::Impl::GetActorInfo(const ActorId& actor) {
  rpc::GetActorInfoRequest req;
  req.set_actor_id(actor.Binary());
  req.set_after_version(-1);
  req.set_wait_ms(0);
  rpc::GetActorInfoReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  absl::Status s = FromGrpcStatus(gcs_actors_->GetActorInfo(&ctx, req, &reply));
  if (!s.ok()) return s;
  return Describe(reply.info());
}

absl::Status CoreWorker::Impl::CancelTask(const ObjectId& return_id, bool force) {
  const TaskId task = return_id.Task();
  if (!refs_.Contains(return_id) || memory_store_.GetIfReady(return_id) != nullptr) {
    return refs_.Contains(return_id) ? absl::OkStatus()  // finished: nothing to cancel
                                     : absl::NotFoundError(absl::StrCat("object ", return_id.Hex(),
                                                                        " is not known to this worker"));
  }
  auto result = submitter_->Cancel(task);
  if (!result.found) {
    // Still resolving its arguments: it is dropped when they are ready.
    absl::MutexLock lock(&mu_);
    cancelled_before_submit_.insert(task);
    return absl::OkStatus();
  }
  if (result.running) {
    absl::Status s = transport_.CancelTask(result.worker_address, task, force, absl::Seconds(5));
    if (!s.ok()) spdlog::warn("cancelling task {} on {}: {}", task.Hex(), result.worker_address, s.ToString());
  }
  return absl::OkStatus();
}

void CoreWorker::Impl::ResolveAndSubmit(rpc::TaskSpec spec, std::vector<TaskArg> args,
                                        std::function<void(rpc::TaskSpec)> submit, std::function<void()> on_failed) {
  task_events_.Add(spec, rpc::TaskEvent::PENDING);
  struct Resolution {
    absl::Mutex mu;
    rpc::TaskSpec spec;
    int remaining = 0;
    std::optional<rpc::ObjectValue> error;  // the first argument that failed
  };
  auto res = std::make_shared<Resolution>();
  std::vector<std::pair<int, ObjectId>> pending;
  for (size_t i = 0; i < args.size(); ++i) {
    rpc::TaskArg* arg = spec.add_args();
    if (args[i].is_ref) {
      pending.emplace_back(static_cast<int>(i), args[i].ref);
    } else {
      arg->set_inline_value(std::move(args[i].value));
    }
  }
  if (pending.empty()) {
    submit(std::move(spec));
    return;
  }
  // (A task cancelled while its arguments resolve is dropped in SubmitResolved below.)
  res->spec = std::move(spec);
  res->remaining = static_cast<int>(pending.size());
  for (const auto& [index, id] : pending) {
    if (auto owner = refs_.OwnerAddress(id); owner && !owner->empty()) StartBorrowedFetch(id, *owner);
    memory_store_.GetAsync(id, absl::InfiniteFuture(), [this, res, index = index, id = id, submit,
                                                        on_failed](ValuePtr value) {
      bool done = false;
      {
        absl::MutexLock lock(&res->mu);
        rpc::TaskArg* arg = res->spec.mutable_args(index);
        if (value == nullptr) {
          if (!res->error) {
            res->error = ErrorValue(id, kObjectLostError,
                                    absl::StrCat("argument ", index, " (object ", id.Hex(),
                                                 ") was freed or its owner shut down before it was ready"));
          }
        } else if (value->is_error()) {
          if (!res->error) res->error = *value;
        } else if (value->in_store()) {
          *arg->mutable_object() = *value;
        } else {
          arg->set_inline_value(value->inline_data());
        }
        done = --res->remaining == 0;
      }
      if (!done) return;
      bool cancelled = false;
      {
        absl::MutexLock lock(&mu_);
        cancelled = cancelled_before_submit_.erase(SpecTaskId(res->spec)) > 0;
      }
      if (cancelled) {
        res->error = ErrorValue(ObjectId::Nil(), kTaskCancelledError,
                                absl::StrCat(DescribeTask(res->spec), " was cancelled before it ran"));
      }
      if (res->error) {
        // A failed argument fails the task with the same error, without running it.
        std::vector<rpc::ObjectValue> returns;
        for (uint32_t i = 1; i <= std::max<uint32_t>(res->spec.num_returns(), 1); ++i) {
          rpc::ObjectValue v = *res->error;
          v.set_object_id(ReturnObjectId(res->spec, i).Binary());
          returns.push_back(std::move(v));
        }
        OnTaskDone(res->spec, std::move(returns));
        if (on_failed) on_failed();
      } else {
        submit(std::move(res->spec));
      }
    });
  }
}

void CoreWorker::Impl::OnTaskDone(const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
  std::string error_type;
  for (const auto& value : returns) {
    if (value.is_error()) {
      error_type = value.error_type();
      break;
    }
  }
  task_events_.Add(spec, error_type.empty() ? rpc::TaskEvent::FINISHED : rpc::TaskEvent::FAILED, "", "", error_type);
  for (auto& value : returns) {
    auto id = ObjectId::FromBinary(value.object_id());
    if (id.ok()) StoreResult(*id, std::move(value), /*owned=*/true);
  }
  std::vector<ObjectId> arg_refs;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = task_arg_refs_.find(SpecTaskId(spec)); it != task_arg_refs_.end()) {
      arg_refs = std::move(it->second);
      task_arg_refs_.erase(it);
    }
  }
  if (!arg_refs.empty()) Free(refs_.RemoveSubmitted(arg_refs));
}

void CoreWorker::Impl::StoreResult(const ObjectId& id, rpc::ObjectValue value, bool owned) {
  const bool in_store = value.in_store();
  const std::string holder = value.raylet_address();
  memory_store_.Put(id, std::move(value));
  // Checked after the put: a concurrent Free either saw the value or we see the entry gone.
  if (!refs_.Contains(id)) {
    memory_store_.Erase(id);
    if (in_store && owned) transport_.FreeObjects(holder, {id});
  }
}

void CoreWorker::Impl::Free(const std::vector<ReferenceCounter::OutOfScope>& gone) {
  for (const auto& g : gone) {
    ValuePtr value = memory_store_.GetIfReady(g.id);
    memory_store_.Erase(g.id);
    if (g.owned && value != nullptr && value->in_store()) transport_.FreeObjects(value->raylet_address(), {g.id});
  }
}

absl::StatusOr<ObjectId> CoreWorker::Impl::PutOwned(std::string bytes) {
  const ObjectId id = NewPutId();
  rpc::ObjectValue value;
  if (bytes.size() <= kMaxInlineObjectSize) {
    value = InlineValue(id, std::move(bytes));
  } else {
    auto stored = store_access_->Write(id, bytes);
    if (!stored.ok()) return stored.status();
    value = std::move(*stored);
  }
  refs_.AddOwned(id);
  memory_store_.Put(id, std::move(value));
  return id;
}

absl::StatusOr<ObjectId> CoreWorker::Impl::Put(std::string value) { return PutOwned(std::move(value)); }

absl::StatusOr<ObjectId> CoreWorker::Impl::PutParts(const std::vector<std::string_view>& parts) {
  size_t total = 0;
  for (auto part : parts) total += part.size();
  if (total <= kMaxInlineObjectSize) {
    std::string all;
    all.reserve(total);
    for (auto part : parts) all.append(part);
    return PutOwned(std::move(all));
  }
  const ObjectId id = NewPutId();
  auto stored = store_access_->WriteParts(id, parts);
  if (!stored.ok()) return stored.status();
  refs_.AddOwned(id);
  memory_store_.Put(id, std::move(*stored));
  return id;
}

absl::Status CoreWorker::Impl::KvPut(const std::string& ns, const std::string& key, const std::string& value,
                                     bool overwrite) {
  rpc::KVPutRequest req;
  req.set_ns(ns);
  req.set_key(key);
  req.set_value(value);
  req.set_overwrite(overwrite);
  rpc::KVPutReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  ctx.set_wait_for_ready(true);
  return FromGrpcStatus(gcs_kv_->Put(&ctx, req, &reply));
}

absl::StatusOr<std::string> CoreWorker::Impl::KvGet(const std::string& ns, const std::string& key) {
  rpc::KVGetRequest req;
  req.set_ns(ns);
  req.set_key(key);
  rpc::KVGetReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kConnectTimeout));
  ctx.set_wait_for_ready(true);
  absl::Status s = FromGrpcStatus(gcs_kv_->Get(&ctx, req, &reply));
  if (!s.ok()) return s;
  if (!reply.found()) return absl::NotFoundError(absl::StrCat("no key '", key, "' in namespace '", ns, "'"));
  return reply.value();
}

void CoreWorker::Impl::StartBorrowedFetch(const ObjectId& id, const std::string& owner) {
  if (memory_store_.GetIfReady(id) != nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    if (!borrowed_fetches_.insert(id).second) return;
  }
  transport_.GetObject(owner, id, [this, id, owner](absl::Status s, rpc::GetObjectReply reply) {
    rpc::ObjectValue value;
    if (s.ok() && reply.ready()) {
      value = std::move(*reply.mutable_value());
      value.set_object_id(id.Binary());
    } else if (absl::IsNotFound(s)) {
      value = ErrorValue(id, kObjectLostError,
                         absl::StrCat("object ", id.Hex(), " was freed by its owner at ", owner));
    } else if (!absl::IsCancelled(s)) {
      value = ErrorValue(id, kOwnerDiedError,
                         absl::StrCat("the owner of object ", id.Hex(), " at ", owner, " is unreachable: ",
                                      s.ok() ? "it answered without the value" : s.message()));
    }
    {
      absl::MutexLock lock(&mu_);
      borrowed_fetches_.erase(id);
    }
    if (!absl::IsCancelled(s)) StoreResult(id, std::move(value), /*owned=*/false);
  });
}

absl::StatusOr<std::string> CoreWorker::Impl::ToBytes(const rpc::ObjectValue& value) {
  if (value.is_error()) return ErrorValueToStatus(value);
  if (!value.in_store()) return value.inline_data();
  auto bytes = store_access_->Read(value);
  if (bytes.ok()) return bytes;
  return ErrorValueToStatus(ErrorValue(ObjectId::Nil(), kObjectLostError, std::string(bytes.status().message())));
}

// While a task waits for objects, its worker's lease lends its CPUs back to the raylet, so that
// tasks waiting on their own children cannot hold every CPU (drivers hold no lease: no-op).
class CoreWorker::Impl::BlockedScope {
 public:
  explicit BlockedScope(Impl& impl) : impl_(impl), active_(impl.config_.mode == CoreWorkerOptions::Mode::kWorker) {
    if (active_) impl_.transport_.NotifyWorkerBlocked(impl_.config_.raylet_address, impl_.config_.worker_id, true, kBlockedNoticeTimeout);
  }
  ~BlockedScope() {
    if (active_) impl_.transport_.NotifyWorkerBlocked(impl_.config_.raylet_address, impl_.config_.worker_id, false, kBlockedNoticeTimeout);
  }
  BlockedScope(const BlockedScope&) = delete;
  BlockedScope& operator=(const BlockedScope&) = delete;

 private:
  static constexpr absl::Duration kBlockedNoticeTimeout = absl::Seconds(2);
  Impl& impl_;
  const bool active_;
};

absl::StatusOr<std::vector<ValuePtr>> CoreWorker::Impl::WaitForValues(const std::vector<ObjectId>& ids,
                                                                       absl::Duration timeout) {
  for (const auto& id : ids) {
    auto owner = refs_.OwnerAddress(id);
    if (!owner) {
      return absl::InvalidArgumentError(
          absl::StrCat("object ", id.Hex(), " is neither owned nor borrowed by this worker (freed, or never known)"));
    }
    if (!owner->empty()) StartBorrowedFetch(id, *owner);
  }
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  std::vector<ValuePtr> values = memory_store_.Get(ids, absl::InfinitePast());
  if (std::count(values.begin(), values.end(), nullptr) > 0) {
    BlockedScope blocked(*this);
    values = memory_store_.Get(ids, deadline);
  }
  size_t missing = 0;
  for (const auto& v : values) missing += v == nullptr ? 1 : 0;
  if (missing > 0) {
    return absl::DeadlineExceededError(absl::StrCat(missing, " of ", ids.size(), " objects were not ready within ",
                                                    absl::FormatDuration(timeout)));
  }
  return values;
}

absl::StatusOr<std::vector<absl::StatusOr<std::string>>> CoreWorker::Impl::Get(const std::vector<ObjectId>& ids,
                                                                               absl::Duration timeout) {
  auto values = WaitForValues(ids, timeout);
  if (!values.ok()) return values.status();
  std::vector<absl::StatusOr<std::string>> out;
  out.reserve(values->size());
  for (const auto& v : *values) out.push_back(ToBytes(*v));
  return out;
}

absl::StatusOr<ObjectBuffer> CoreWorker::Impl::ToBuffer(const ValuePtr& value) {
  if (value->is_error()) return ErrorValueToStatus(*value);
  if (!value->in_store()) {
    // Points into the value the memory store keeps; `value` keeps it alive.
    return ObjectBuffer{value->inline_data().data(), value->inline_data().size(), value};
  }
  auto buffer = store_access_->ReadBuffer(*value);
  if (buffer.ok()) return buffer;
  return ErrorValueToStatus(ErrorValue(ObjectId::Nil(), kObjectLostError, std::string(buffer.status().message())));
}

absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> CoreWorker::Impl::GetBuffers(
    const std::vector<ObjectId>& ids, absl::Duration timeout) {
  auto values = WaitForValues(ids, timeout);
  if (!values.ok()) return values.status();
  std::vector<absl::StatusOr<ObjectBuffer>> out;
  out.reserve(values->size());
  for (const auto& v : *values) out.push_back(ToBuffer(v));
  return out;
}

absl::StatusOr<std::vector<bool>> CoreWorker::Impl::Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                         absl::Duration timeout) {
  if (num_ready < 0 || static_cast<size_t>(num_ready) > ids.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_ready must be between 0 and the number of ids (", ids.size(), "), got ", num_ready));
  }
  for (const auto& id : ids) {
    auto owner = refs_.OwnerAddress(id);
    if (!owner) {
      return absl::InvalidArgumentError(
          absl::StrCat("object ", id.Hex(), " is neither owned nor borrowed by this worker (freed, or never known)"));
    }
    if (!owner->empty()) StartBorrowedFetch(id, *owner);
  }
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  std::vector<bool> ready = memory_store_.Wait(ids, static_cast<size_t>(num_ready), absl::InfinitePast());
  if (std::count(ready.begin(), ready.end(), true) >= num_ready) return ready;
  BlockedScope blocked(*this);
  return memory_store_.Wait(ids, static_cast<size_t>(num_ready), deadline);
}

// ---------------------------------------------------------------------------------------------
// Worker: the task loop and the service

absl::Status CoreWorker::Impl::RunTaskLoop() {
  if (config_.mode != CoreWorkerOptions::Mode::kWorker) {
    return absl::FailedPreconditionError("RunTaskLoop needs a worker (CreateWorkerFromEnvironment)");
  }
  return TaskLoop();
}

absl::Status CoreWorker::Impl::TaskLoop() {
  while (true) {
    PushedTask task;
    {
      absl::MutexLock lock(&task_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(task_mu_) { return exiting_ || !pushed_.empty(); };
      task_mu_.Await(absl::Condition(&ready));
      if (exiting_) {
        for (auto& t : pushed_) t.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is exiting"));
        pushed_.clear();
        for (auto& t : call_order_.TakeAll()) {
          t.reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is exiting"));
        }
        return exit_status_;
      }
      task = pushed_.front();
      pushed_.pop_front();
    }
    const rpc::TaskSpec& spec = task.request->spec();
    if (spec.worker_command_size() > 0) {
      absl::MutexLock lock(&mu_);
      worker_command_.assign(spec.worker_command().begin(), spec.worker_command().end());
    }
    auto task_id = TaskId::FromBinary(spec.task_id());
    tls_current_task = CurrentTaskInfo{task_id.ok() ? task_id->Hex() : std::string(), spec.function_name(),
                                       spec.owner_address(), spec.attempt()};
    {
      absl::MutexLock lock(&current_mu_);
      running_.insert(tls_current_task.task_id);
    }
    task_events_.Add(spec, rpc::TaskEvent::RUNNING, config_.node_id.Hex(), config_.worker_id.Hex());
    *task.reply = executor_->Execute(*task.request);
    {
      absl::MutexLock lock(&current_mu_);
      running_.erase(tls_current_task.task_id);
    }
    tls_current_task = CurrentTaskInfo{};
    if (spec.actor_creation() && !task.reply->application_error()) {
      auto actor = ActorId::FromBinary(spec.actor_id());
      {
        absl::MutexLock lock(&task_mu_);
        if (actor.ok()) actor_id_ = *actor;
      }
      // A concurrent actor runs its calls on max_concurrency threads (this one included).
      for (int i = 1; i < spec.max_concurrency(); ++i) {
        extra_loops_.emplace_back([this] { (void)TaskLoop(); });
      }
    }
    task.reactor->Finish(grpc::Status::OK);
  }
}

void CoreWorker::Impl::EnqueuePushed(PushedTask task) {
  const rpc::TaskSpec& spec = task.request->spec();
  if (spec.actor_id().empty() || spec.actor_creation()) {
    pushed_.push_back(task);
    return;
  }
  for (auto& ready : call_order_.Add(spec.caller_id(), spec.sequence_number(), task, absl::Now())) {
    pushed_.push_back(ready);
  }
}

void CoreWorker::Impl::ReleaseSequenceGaps() {
  absl::MutexLock lock(&task_mu_);
  std::vector<PushedTask> ready = call_order_.ReleaseGaps(absl::Now());
  if (!ready.empty()) spdlog::warn("method calls waited too long for earlier ones that never came; running them");
  for (auto& t : ready) pushed_.push_back(t);
}

grpc::ServerUnaryReactor* CoreWorker::Impl::PushTask(grpc::CallbackServerContext* ctx,
                                                     const rpc::PushTaskRequest* request,
                                                     rpc::PushTaskReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (config_.mode != CoreWorkerOptions::Mode::kWorker) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this process is a driver; it runs no tasks"));
    return reactor;
  }
  absl::MutexLock lock(&task_mu_);
  if (exiting_) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the worker is exiting"));
  } else {
    EnqueuePushed({request, reply, reactor});
  }
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorker::Impl::GetObject(grpc::CallbackServerContext* ctx,
                                                      const rpc::GetObjectRequest* request,
                                                      rpc::GetObjectReply* reply) {
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
                                                        : absl::Now() + absl::Milliseconds(request->timeout_ms());
  memory_store_.GetAsync(*id, deadline, [reactor, reply, deadline, id = *id](ValuePtr value) {
    if (value != nullptr) {
      reply->set_ready(true);
      *reply->mutable_value() = *value;
      reactor->Finish(grpc::Status::OK);
    } else if (absl::Now() >= deadline) {
      reply->set_ready(false);
      reactor->Finish(grpc::Status::OK);
    } else {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("object ", id.Hex(), " was freed, or its owner is shutting down")));
    }
  });
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorker::Impl::Exit(grpc::CallbackServerContext* ctx, const rpc::ExitRequest*,
                                                 rpc::ExitReply*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  RequestExit(absl::OkStatus());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* CoreWorker::Impl::PrintLogs(grpc::CallbackServerContext* ctx,
                                                      const rpc::PrintLogsRequest* request, rpc::PrintLogsReply*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::function<void(const std::vector<std::string>&, bool)> handler;
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

grpc::ServerUnaryReactor* CoreWorker::Impl::CancelTask(grpc::CallbackServerContext* ctx,
                                                       const rpc::CancelTaskRequest* request,
                                                       rpc::CancelTaskReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto task = TaskId::FromBinary(request->task_id());
  if (!task.ok()) {
    reactor->Finish(ToGrpcStatus(task.status()));
    return reactor;
  }
  bool running = false;
  {
    absl::MutexLock lock(&current_mu_);
    running = running_.contains(task->Hex());
  }
  reply->set_running(running);
  if (running && request->force()) {
    // Killed once the reply is on its way; the owner sees the push fail and does not retry.
    spdlog::warn("task {} cancelled with force: this worker exits", task->Hex());
    std::thread([] {
      absl::SleepFor(absl::Milliseconds(50));
      _exit(1);
    }).detach();
  } else if (running) {
    std::function<void(const std::string&)> handler;
    {
      absl::MutexLock lock(&mu_);
      handler = interrupt_handler_;
    }
    if (handler) handler(task->Hex());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// ---------------------------------------------------------------------------------------------
// CoreWorker

namespace {

// Finds the raylet a driver uses: `raylet_address`, or the alive head node's.
absl::StatusOr<rpc::NodeInfo> FindRaylet(const std::string& gcs_address, const std::string& raylet_address) {
  auto stub = rpc::NodeInfoService::NewStub(MakeChannel(gcs_address));
  const absl::Time deadline = absl::Now() + kConnectTimeout;
  absl::Status last;
  while (true) {
    rpc::GetAllNodeInfoRequest req;
    req.set_alive_only(true);
    rpc::GetAllNodeInfoReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.set_wait_for_ready(true);
    last = FromGrpcStatus(stub->GetAllNodeInfo(&ctx, req, &reply));
    if (last.ok()) {
      for (const auto& node : reply.nodes()) {
        if (node.state() != rpc::NodeInfo::ALIVE) continue;
        const std::string address = absl::StrCat(node.address(), ":", node.raylet_port());
        if (raylet_address.empty() ? node.is_head() : address == raylet_address) return node;
      }
      last = absl::NotFoundError(raylet_address.empty()
                                     ? absl::StrCat("no alive head node is registered with the GCS at ", gcs_address)
                                     : absl::StrCat("no alive node with raylet ", raylet_address,
                                                    " is registered with the GCS at ", gcs_address));
    }
    if (absl::Now() + absl::Milliseconds(100) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));  // the node may still be registering
  }
  if (absl::IsDeadlineExceeded(last)) {
    return absl::UnavailableError(absl::StrCat("no GCS answered at ", gcs_address, " within ",
                                               absl::FormatDuration(kConnectTimeout)));
  }
  return last;
}

}  // namespace

CoreWorker::CoreWorker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CoreWorker::~CoreWorker() = default;

absl::StatusOr<std::unique_ptr<CoreWorker>> CoreWorker::Create(const CoreWorkerOptions& options) {
  if (options.mode != CoreWorkerOptions::Mode::kDriver) {
    return absl::InvalidArgumentError("a worker is created with CreateWorkerFromEnvironment");
  }
  if (auto hp = ParseHostPort(options.gcs_address); !hp.ok()) return hp.status();
  auto node = FindRaylet(options.gcs_address, options.raylet_address);
  if (!node.ok()) return node.status();
  auto node_id = NodeId::FromHex(node->node_id());
  if (!node_id.ok()) return node_id.status();
  Config config;
  config.mode = CoreWorkerOptions::Mode::kDriver;
  config.gcs_address = options.gcs_address;
  config.raylet_address = absl::StrCat(node->address(), ":", node->raylet_port());
  config.node_ip = node->address();
  config.store_socket = node->object_store_socket();
  config.node_id = *node_id;
  config.worker_id = WorkerId::FromRandom();
  config.worker_command = options.worker_command.empty() ? std::vector<std::string>{SelfExecutable()}
                                                         : options.worker_command;
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<CoreWorker>(new CoreWorker(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<CoreWorker>> CoreWorker::CreateWorkerFromEnvironment() {
  Config config;
  config.mode = CoreWorkerOptions::Mode::kWorker;
  struct Var {
    const char* name;
    std::string* out;
  };
  std::string worker_id, node_id, job_id;
  for (const Var& v : {Var{"SHOAL_WORKER_ID", &worker_id}, Var{"SHOAL_RAYLET_ADDRESS", &config.raylet_address},
                       Var{"SHOAL_NODE_ID", &node_id}, Var{"SHOAL_STORE_SOCKET", &config.store_socket},
                       Var{"SHOAL_JOB_ID", &job_id}}) {
    *v.out = Env(v.name);
    if (v.out->empty()) return absl::InvalidArgumentError(absl::StrCat(v.name, " is not set; is this a worker?"));
  }
  config.gcs_address = Env("SHOAL_GCS_ADDRESS");
  auto raylet = ParseHostPort(config.raylet_address);
  if (!raylet.ok()) return raylet.status();
  config.node_ip = Env("SHOAL_NODE_IP");
  if (config.node_ip.empty()) config.node_ip = raylet->first;
  auto wid = WorkerId::FromHex(worker_id);
  if (!wid.ok()) return wid.status();
  auto nid = NodeId::FromHex(node_id);
  if (!nid.ok()) return nid.status();
  auto jid = JobId::FromHex(job_id);
  if (!jid.ok()) return jid.status();
  config.worker_id = *wid;
  config.node_id = *nid;
  config.job_id = *jid;
  config.worker_command = SelfCommandLine();
  auto impl = std::make_unique<Impl>(std::move(config));
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
absl::Status CoreWorker::CancelTask(const ObjectId& return_id, bool force) {
  return impl_->CancelTask(return_id, force);
}
absl::StatusOr<ObjectId> CoreWorker::Put(std::string value) { return impl_->Put(std::move(value)); }
absl::StatusOr<ObjectId> CoreWorker::PutParts(const std::vector<std::string_view>& parts) {
  return impl_->PutParts(parts);
}
absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> CoreWorker::GetBuffers(const std::vector<ObjectId>& ids,
                                                                                  absl::Duration timeout) {
  return impl_->GetBuffers(ids, timeout);
}
void CoreWorker::SetTaskHandler(TaskHandler handler) { impl_->SetTaskHandler(std::move(handler)); }
void CoreWorker::SetInterruptHandler(std::function<void(const std::string&)> handler) {
  impl_->SetInterruptHandler(std::move(handler));
}
CurrentTaskInfo CoreWorker::CurrentTask() const { return impl_->CurrentTask(); }
absl::Status CoreWorker::SendLogs(const std::string& owner_address, const std::vector<std::string>& lines,
                                  bool is_stderr) {
  return impl_->SendLogs(owner_address, lines, is_stderr);
}
void CoreWorker::SetLogHandler(std::function<void(const std::vector<std::string>&, bool)> handler) {
  impl_->SetLogHandler(std::move(handler));
}
absl::Status CoreWorker::KvPut(const std::string& ns, const std::string& key, const std::string& value,
                               bool overwrite) {
  return impl_->KvPut(ns, key, value, overwrite);
}
absl::StatusOr<std::string> CoreWorker::KvGet(const std::string& ns, const std::string& key) {
  return impl_->KvGet(ns, key);
}
const std::string& CoreWorker::gcs_address() const { return impl_->config().gcs_address; }
absl::StatusOr<ActorDescription> CoreWorker::CreateActor(const std::string& function_name, std::vector<TaskArg> args,
                                                         const TaskOptions& options, const ActorOptions& actor) {
  return impl_->CreateActor(function_name, std::move(args), options, actor);
}
void CoreWorker::AddActorHandle(const ActorId& actor, int max_task_retries) {
  impl_->AddActorHandle(actor, max_task_retries);
}
absl::StatusOr<std::vector<ObjectId>> CoreWorker::SubmitActorTask(const ActorId& actor, const std::string& method,
                                                                  std::vector<TaskArg> args,
                                                                  const TaskOptions& options) {
  return impl_->SubmitActorTask(actor, method, std::move(args), options);
}
absl::Status CoreWorker::KillActor(const ActorId& actor, bool no_restart) { return impl_->KillActor(actor, no_restart); }
absl::StatusOr<ActorDescription> CoreWorker::GetNamedActor(const std::string& name, const std::string& ray_namespace) {
  return impl_->GetNamedActor(name, ray_namespace);
}
absl::StatusOr<ActorDescription> CoreWorker::GetActorInfo(const ActorId& actor) { return impl_->GetActorInfo(actor); }
ActorId CoreWorker::CurrentActor() const { return impl_->CurrentActor(); }
absl::StatusOr<std::vector<absl::StatusOr<std::string>>> CoreWorker::Get(const std::vector<ObjectId>& ids,
                                                                         absl::Duration timeout) {
  return impl_->Get(ids, timeout);
}
absl::StatusOr<std::vector<bool>> CoreWorker::Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                   absl::Duration timeout) {
  return impl_->Wait(ids, num_ready, timeout);
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
