// The runtime under the C++ task API (include/shoal/api.h): one core worker per process, made
// by Init, and the conversions between the API's types and the core worker's.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "shoal/api.h"
#include "src/api/function_registry.h"
#include "src/api/local_cluster.h"
#include "src/cluster/local_state.h"
#include "src/common/bundle_resources.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/common/session.h"
#include "src/common/system.h"
#include "src/scheduler/scheduling_policy.h"
#include "src/api/current_core.h"
#include "src/worker/core_worker.h"
#include "src/worker/placement_group_client.h"

namespace shoal {
namespace {

static_assert(internal::kObjectIdSize == ObjectId::kSize);

struct Runtime {
  std::unique_ptr<api::LocalCluster> cluster;  // when Init started one
  std::unique_ptr<CoreWorker> core;
};

absl::Mutex g_init_mu;
Runtime* g_runtime ABSL_GUARDED_BY(g_init_mu) = nullptr;
// Read without the lock on every call; set and cleared by Init and Shutdown, which no other call
// may overlap (see api.h).
std::atomic<CoreWorker*> g_core{nullptr};
std::atomic<uint64_t> g_epoch{0};  // the current session's epoch; 0 between sessions
uint64_t g_last_epoch ABSL_GUARDED_BY(g_init_mu) = 0;

CoreWorker& Core() {
  CoreWorker* core = g_core.load(std::memory_order_acquire);
  if (core == nullptr) throw Error("Shoal is not initialized: call shoal::Init() first");
  return *core;
}

}  // namespace

namespace api {
CoreWorker& CurrentCore() { return Core(); }
CoreWorker* CurrentCoreOrNull() { return g_core.load(std::memory_order_acquire); }
}  // namespace api

namespace {

ObjectId ToObjectId(const internal::ObjectIdBytes& id) {
  return *ObjectId::FromBinary(std::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
}

internal::ObjectIdBytes ToBytes(const ObjectId& id) {
  internal::ObjectIdBytes out;
  std::memcpy(out.data(), id.data(), out.size());
  return out;
}

// Counts the caller's first reference to a new object.
internal::NewObject Adopt(CoreWorker& core, const ObjectId& id) {
  core.AddLocalReference(id);
  return {ToBytes(id), g_epoch.load(std::memory_order_relaxed)};
}

absl::Duration ToDuration(int64_t timeout_us) {
  return timeout_us < 0 ? absl::Seconds(-1) : absl::Microseconds(timeout_us);
}

std::string Describe(int64_t timeout_us) {
  return absl::FormatDuration(absl::Microseconds(timeout_us));
}

// A task's failure, as Get answers it, as the exception the API promises: the one table from
// error types to C++ exceptions.
[[noreturn]] void ThrowTaskFailure(const absl::Status& status) {
  const rpc::ErrorInfo info = ToErrorInfo(status, rpc::SYSTEM_ERROR);
  const std::string message(status.message());
  switch (info.type()) {
    case rpc::TASK_EXCEPTION:
      throw TaskError(info.exception_type(), info.message());
    case rpc::WORKER_DIED:
    case rpc::NODE_DIED:
      throw WorkerCrashedError(message);
    case rpc::OUT_OF_MEMORY:
      throw OutOfMemoryError(message);
    case rpc::ACTOR_DIED:
      throw ActorDiedError(message);
    case rpc::ACTOR_UNSCHEDULABLE:
      throw ActorUnschedulableError(message);
    case rpc::OBJECT_LOST:
    case rpc::OWNER_DIED:
      throw ObjectLostError(message);
    case rpc::TASK_CANCELLED:
      throw TaskCancelledError(message);
    case rpc::GET_TIMEOUT:
      throw GetTimeoutError(message);
    default:  // the runtime's other failures (no node fits, store full, ...)
      throw Error(absl::StrCat(ErrorTypeName(info), ": ", message));
  }
}

ActorId ToActorId(const internal::ActorIdBytes& id) {
  return *ActorId::FromBinary(std::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
}

internal::ActorIdBytes ToBytes(const ActorId& id) {
  internal::ActorIdBytes out;
  std::memcpy(out.data(), id.data(), out.size());
  return out;
}

std::vector<TaskArg> ToTaskArgs(std::vector<internal::TaskArgument> args) {
  std::vector<TaskArg> task_args;
  task_args.reserve(args.size());
  for (internal::TaskArgument& arg : args) {
    task_args.push_back(arg.is_ref ? TaskArg::Ref(ToObjectId(arg.ref)) : TaskArg::Value(std::move(arg.value)));
  }
  return task_args;
}

// The public strategy as the one internal type, rpc::SchedulingStrategy: the only place the C++
// API converts it.
rpc::SchedulingStrategy KindToProto(const std::string& name, const SchedulingStrategy& strategy) {
  switch (strategy.kind) {
    case SchedulingStrategy::Kind::kDefault:
      return DefaultStrategy();
    case SchedulingStrategy::Kind::kSpread:
      return SpreadStrategy();
    case SchedulingStrategy::Kind::kPlacementGroup: {
      rpc::SchedulingStrategy out;
      out.set_kind(rpc::SchedulingStrategy::PLACEMENT_GROUP);
      out.set_placement_group_id(strategy.placement_group_id);
      out.set_placement_group_bundle_index(strategy.bundle_index);
      out.set_placement_group_capture_child_tasks(strategy.capture_child_tasks);
      return out;
    }
    case SchedulingStrategy::Kind::kNodeAffinity: {
      absl::StatusOr<NodeId> node = NodeId::FromHex(strategy.node_id);
      if (!node.ok()) throw Error(absl::StrCat("bad node id for ", name, ": ", node.status().message()));
      return NodeAffinityStrategy(*node, strategy.soft);
    }
  }
  throw Error(absl::StrCat("bad scheduling strategy for ", name));
}

rpc::SchedulingStrategy ToProto(const std::string& name, const SchedulingStrategy& strategy) {
  rpc::SchedulingStrategy out = KindToProto(name, strategy);
  if (strategy.label_selector.empty()) return out;
  out.mutable_label_selector()->insert(strategy.label_selector.begin(), strategy.label_selector.end());
  if (auto selector = LabelSelector::Parse(strategy.label_selector); !selector.ok()) {
    throw Error(absl::StrCat("bad label_selector for ", name, ": ", selector.status().message()));
  }
  return out;
}

TaskOptions ToTaskOptions(const std::string& name, const internal::CallOptions& call) {
  TaskOptions options;
  if (call.resources_set) {
    std::map<std::string, double> amounts = call.resources;
    amounts.emplace(kCPU, 1.0);  // a task takes one CPU unless it says otherwise
    absl::StatusOr<ResourceSet> resources = ResourceSet::FromDoubles(amounts);
    if (!resources.ok()) {
      throw Error(absl::StrCat("bad resources for ", name, ": ", resources.status().message()));
    }
    double gpus = resources->Get(kGPU).ToDouble();
    if (gpus > 1 && !resources->Get(kGPU).IsInteger()) {
      throw Error(absl::StrCat("bad resources for ", name, ": ", gpus,
                               " GPUs; a request above 1 GPU must be a whole number of devices"));
    }
    options.resources = *std::move(resources);
  }
  if (call.max_retries < 0) {
    throw Error(absl::StrCat("bad max_retries for ", name, ": ", call.max_retries, " (must be >= 0)"));
  }
  options.max_retries = call.max_retries;
  options.retry_exceptions = call.retry_exceptions;
  options.streaming = call.streaming;
  options.strategy = ToProto(name, call.strategy);
  options.explicit_strategy = call.strategy_set;
  return options;
}

// The GCS address a driver should use; empty: start a local cluster.
std::string ResolveAddress(const InitOptions& options) {
  std::string address = options.address;
  for (const char* name : {"SHOAL_ADDRESS", "RAY_ADDRESS"}) {
    if (!address.empty()) break;
    if (const char* value = std::getenv(name); value != nullptr) address = value;
  }
  if (address == "auto") {
    absl::StatusOr<std::string> current = cluster::ReadCurrentCluster(ShoalTempRoot());
    if (!current.ok()) {
      throw Error(absl::StrCat("address \"auto\": no cluster was started on this machine under ",
                               ShoalTempRoot(), " (run `shoal start --head`)"));
    }
    address = *current;
  }
  return address;
}

void ShutdownAtExit() { Shutdown(); }

// Worker mode: serve tasks until the raylet lets this process go, then exit.
[[noreturn]] void RunWorker() {
  InstallCrashHandler();
  // The log goes to the session's logs/, as shoal-worker's does.
  if (const char* session = std::getenv("SHOAL_SESSION_DIR"); session != nullptr && *session != '\0') {
    const char* id = std::getenv("SHOAL_WORKER_ID");
    (void)InitLogging(absl::StrCat("worker-", id != nullptr ? std::string(id).substr(0, 8) : "", "-", getpid()),
                      absl::StrCat(session, "/logs"));
  }
  absl::StatusOr<std::unique_ptr<CoreWorker>> core = CoreWorker::CreateWorkerFromEnvironment();
  if (!core.ok()) {
    std::fprintf(stderr, "error: shoal worker cannot start: %s\n", std::string(core.status().message()).c_str());
    std::exit(1);
  }
  g_epoch.store(1, std::memory_order_relaxed);
  g_core.store(core->get(), std::memory_order_release);
  absl::Status status = (*core)->RunTaskLoop();
  g_core.store(nullptr, std::memory_order_release);
  g_epoch.store(0, std::memory_order_relaxed);
  core->reset();
  if (!status.ok()) std::fprintf(stderr, "error: shoal worker: %s\n", std::string(status.message()).c_str());
  std::fflush(nullptr);
  std::exit(status.ok() ? 0 : 1);
}

// A driver is the user's program: Shoal's own log lines go to stderr, warnings and errors only,
// unless the program set up spdlog itself (a default logger with a name).
void QuietDriverLogging() {
  if (!spdlog::default_logger()->name().empty()) return;
  auto logger = spdlog::stderr_color_mt("shoal");
  logger->set_level(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

bool WorkerMode() {
  const char* mode = std::getenv("SHOAL_WORKER_MODE");
  return mode != nullptr && std::strcmp(mode, "1") == 0;
}

}  // namespace

void Init(const InitOptions& options) {
  if (absl::Status s = api::CheckRegistrations(); !s.ok()) {
    throw Error(absl::StrCat("shoal::Init: ", s.message()));
  }
  ConfigureMutexChecks();
  if (WorkerMode()) RunWorker();

  absl::MutexLock lock(&g_init_mu);
  if (g_runtime != nullptr) throw Error("shoal::Init was already called; call shoal::Shutdown first");
  QuietDriverLogging();
  auto runtime = std::make_unique<Runtime>();
  std::string address = ResolveAddress(options);
  if (address.empty()) {
    absl::StatusOr<std::string> bin_dir = api::FindBinDir();
    if (!bin_dir.ok()) throw Error(absl::StrCat("shoal::Init: ", bin_dir.status().message()));
    absl::StatusOr<std::unique_ptr<api::LocalCluster>> cluster = api::LocalCluster::Start(
        {.bin_dir = *bin_dir, .num_cpus = options.num_cpus, .num_gpus = options.num_gpus, .resources = options.resources});
    if (!cluster.ok()) throw Error(absl::StrCat("shoal::Init: cannot start a local cluster: ", cluster.status().message()));
    runtime->cluster = *std::move(cluster);
    address = runtime->cluster->address();
  }

  CoreWorkerOptions core_options;
  core_options.mode = CoreWorkerOptions::Mode::kDriver;
  core_options.gcs_address = address;
  core_options.worker_command = options.worker_command;  // empty: this executable
  if (runtime->cluster) core_options.auth_token = runtime->cluster->auth_token();
  absl::StatusOr<std::unique_ptr<CoreWorker>> core = CoreWorker::Create(core_options);
  if (!core.ok()) {
    throw Error(absl::StrCat("shoal::Init: cannot connect to the Shoal cluster at ", address, ": ",
                             core.status().message()));
  }
  runtime->core = *std::move(core);
  g_runtime = runtime.release();
  g_epoch.store(++g_last_epoch, std::memory_order_relaxed);
  g_core.store(g_runtime->core.get(), std::memory_order_release);
  static const bool at_exit = (std::atexit(ShutdownAtExit), true);
  (void)at_exit;
}

void Shutdown() {
  absl::MutexLock lock(&g_init_mu);
  if (g_runtime == nullptr) return;
  g_core.store(nullptr, std::memory_order_release);
  g_epoch.store(0, std::memory_order_relaxed);
  std::unique_ptr<Runtime> runtime(g_runtime);
  g_runtime = nullptr;
  runtime->core.reset();     // returns leases, frees owned objects
  runtime->cluster.reset();  // then stops the local cluster, if any
}

bool IsInitialized() { return g_core.load(std::memory_order_acquire) != nullptr; }

std::string CurrentNodeId() { return Core().node_id().Hex(); }

namespace internal {

std::string Hex(const ObjectIdBytes& id) { return ToObjectId(id).Hex(); }

void AddReference(const ObjectIdBytes& id, uint64_t epoch) {
  CoreWorker* core = g_core.load(std::memory_order_acquire);
  if (core != nullptr && epoch == g_epoch.load(std::memory_order_relaxed)) core->AddLocalReference(ToObjectId(id));
}

void RemoveReference(const ObjectIdBytes& id, uint64_t epoch) {
  CoreWorker* core = g_core.load(std::memory_order_acquire);
  if (core != nullptr && epoch == g_epoch.load(std::memory_order_relaxed)) {
    core->RemoveLocalReference(ToObjectId(id));
  }
}

NewObject SubmitTask(const std::string& name, std::vector<TaskArgument> args, const CallOptions& call) {
  TaskOptions options = ToTaskOptions(name, call);
  CoreWorker& core = Core();
  absl::StatusOr<ObjectId> id = core.SubmitTask(name, ToTaskArgs(std::move(args)), options);
  if (!id.ok()) throw Error(absl::StrCat("cannot submit ", name, ": ", id.status().message()));
  return Adopt(core, *id);
}

NewObject PutBytes(std::string bytes) {
  CoreWorker& core = Core();
  absl::StatusOr<ObjectId> id = core.Put(std::move(bytes));
  if (!id.ok()) throw Error(absl::StrCat("shoal::Put: ", id.status().message()));
  return Adopt(core, *id);
}

std::vector<std::string> GetBytes(const std::vector<ObjectIdBytes>& ids, int64_t timeout_us) {
  CoreWorker& core = Core();
  std::vector<ObjectId> object_ids;
  object_ids.reserve(ids.size());
  for (const ObjectIdBytes& id : ids) object_ids.push_back(ToObjectId(id));
  auto results = core.Get(object_ids, ToDuration(timeout_us));
  if (!results.ok()) {
    if (absl::IsDeadlineExceeded(results.status())) {
      throw GetTimeoutError(absl::StrCat("shoal::Get timed out after ", Describe(timeout_us), " (",
                                         results.status().message(), ")"));
    }
    throw Error(absl::StrCat("shoal::Get: ", results.status().message()));
  }
  std::vector<std::string> values;
  values.reserve(results->size());
  for (absl::StatusOr<std::string>& result : *results) {
    if (!result.ok()) ThrowTaskFailure(result.status());
    values.push_back(*std::move(result));
  }
  return values;
}

std::vector<bool> WaitReady(const std::vector<ObjectIdBytes>& ids, int num_ready, int64_t timeout_us) {
  if (num_ready <= 0 || static_cast<size_t>(num_ready) > ids.size()) {
    throw Error(absl::StrCat("shoal::Wait: num_ready must be in 1..", ids.size(), ", got ", num_ready));
  }
  CoreWorker& core = Core();
  std::vector<ObjectId> object_ids;
  object_ids.reserve(ids.size());
  for (const ObjectIdBytes& id : ids) object_ids.push_back(ToObjectId(id));
  absl::StatusOr<std::vector<bool>> ready = core.Wait(object_ids, num_ready, ToDuration(timeout_us));
  if (!ready.ok()) throw Error(absl::StrCat("shoal::Wait: ", ready.status().message()));
  return *std::move(ready);
}

NextItem GeneratorNext(const ObjectIdBytes& generator, uint64_t epoch, int64_t timeout_us) {
  if (epoch == 0 || epoch != g_epoch.load(std::memory_order_relaxed)) {
    throw Error("shoal::ObjectRefGenerator::Next: the generator is empty (moved from) or from a session that ended");
  }
  CoreWorker& core = Core();
  absl::StatusOr<std::optional<ObjectId>> next = core.GeneratorNext(ToObjectId(generator), ToDuration(timeout_us));
  if (!next.ok()) {
    if (absl::IsDeadlineExceeded(next.status())) {
      throw GetTimeoutError(absl::StrCat("shoal::ObjectRefGenerator::Next timed out after ", Describe(timeout_us)));
    }
    throw Error(absl::StrCat("shoal::ObjectRefGenerator::Next: ", next.status().message()));
  }
  if (!next->has_value()) return {};
  return {true, Adopt(core, **next)};
}

void ReleaseGenerator(const ObjectIdBytes& generator, uint64_t epoch) noexcept {
  CoreWorker* core = g_core.load(std::memory_order_acquire);
  if (core != nullptr && epoch == g_epoch.load(std::memory_order_relaxed)) core->ReleaseGenerator(ToObjectId(generator));
}

void ReportGeneratorItem(int64_t index, std::string packed) {
  CoreWorker& core = Core();
  absl::Status s = core.ReportGeneratorItem(core.CurrentTask(), index, std::move(packed));
  if (!s.ok()) throw Error(absl::StrCat("shoal::Yield: ", s.message()));
}

std::string Hex(const ActorIdBytes& id) { return ToActorId(id).Hex(); }

ActorIdBytes CreateActor(const std::string& factory, std::vector<TaskArgument> args, const ActorCallOptions& call) {
  TaskOptions options = ToTaskOptions(factory, call.call);
  if (!call.call.resources_set) {
    // As in Ray: an actor that names no resources holds none while it lives.
    options.resources = ResourceSet();
    options.use_default_resources = false;
  }
  ActorOptions actor;
  actor.class_name = call.class_name;
  actor.name = call.name;
  actor.ray_namespace = call.ray_namespace;
  actor.detached = call.detached;
  actor.get_if_exists = call.get_if_exists;
  actor.max_restarts = call.max_restarts;
  actor.max_task_retries = call.max_task_retries;
  actor.max_concurrency = call.max_concurrency;
  actor.concurrency_groups = call.concurrency_groups;
  actor.handle_data = ActorHandleData(call.max_task_retries);
  CoreWorker& core = Core();
  absl::StatusOr<ActorDescription> created = core.CreateActor(factory, ToTaskArgs(std::move(args)), options, actor);
  if (!created.ok()) {
    if (absl::IsAlreadyExists(created.status())) {
      throw Error(absl::StrCat("cannot create actor ", call.class_name, ": an actor named '", call.name,
                               "' already exists in namespace '", call.ray_namespace, "'"));
    }
    throw Error(absl::StrCat("cannot create actor ", call.class_name, " (", factory, "): ", created.status().message()));
  }
  return ToBytes(created->id);
}

NewObject SubmitActorTask(const ActorIdBytes& actor, const std::string& method, std::vector<TaskArgument> args,
                          const std::string& concurrency_group, bool streaming) {
  CoreWorker& core = Core();
  TaskOptions options;
  options.concurrency_group = concurrency_group;
  options.streaming = streaming;
  absl::StatusOr<std::vector<ObjectId>> ids =
      core.SubmitActorTask(ToActorId(actor), method, ToTaskArgs(std::move(args)), options);
  if (!ids.ok()) throw Error(absl::StrCat("cannot call ", method, ": ", ids.status().message()));
  return Adopt(core, ids->front());
}

void KillActor(const ActorIdBytes& actor, bool no_restart) {
  absl::Status s = Core().KillActor(ToActorId(actor), no_restart);
  if (!s.ok()) throw Error(absl::StrCat("cannot kill actor ", Hex(actor), ": ", s.message()));
}

NamedActor GetNamedActor(const std::string& name, const std::string& ray_namespace) {
  absl::StatusOr<ActorDescription> found = Core().GetNamedActor(name, ray_namespace);
  if (!found.ok()) throw Error(absl::StrCat("shoal::GetActor: ", found.status().message()));
  NamedActor out{ToBytes(found->id), found->class_name, 0};
  if (!found->handle_data.empty()) {
    try {
      auto data = Unpack<std::map<std::string, int>>(found->handle_data, [] { return std::string("handle data"); });
      out.max_task_retries = data["max_task_retries"];
    } catch (const Error&) {
      // Not a C++ actor's handle: the class name check of GetActor<T> reports it.
    }
  }
  return out;
}

void AddActorHandle(const ActorIdBytes& actor, int max_task_retries) {
  CoreWorker* core = g_core.load(std::memory_order_acquire);
  if (core != nullptr) core->AddActorHandle(ToActorId(actor), max_task_retries);
}

// --- Placement groups ---

namespace {

PlacementGroupId ToPlacementGroupId(const std::string& hex) {
  auto id = PlacementGroupId::FromHex(hex);
  if (!id.ok() || id->IsNil()) throw Error(absl::StrCat("'", hex, "' is not a placement group id"));
  return *id;
}

PlacementGroupData ToData(const rpc::PlacementGroupInfo& info) {
  PlacementGroupData out;
  auto id = PlacementGroupId::FromBinary(info.placement_group_id());
  out.id = id.ok() ? id->Hex() : std::string();
  out.name = info.name();
  out.strategy = rpc::PlacementGroupInfo::Strategy_Name(info.strategy());
  out.state = rpc::PlacementGroupInfo::State_Name(info.state());
  out.bundles.resize(info.bundles_size());
  out.bundle_nodes.resize(info.bundles_size());
  for (const rpc::Bundle& bundle : info.bundles()) {
    if (bundle.bundle_index() < 0 || bundle.bundle_index() >= info.bundles_size()) continue;
    out.bundles[bundle.bundle_index()] = ResourceSet::FromProto(bundle.resources()).ToDoubles();
    out.bundle_nodes[bundle.bundle_index()] = bundle.node_id();
  }
  return out;
}

constexpr char kCppNamespace[] = "default";

}  // namespace

std::string CreatePlacementGroup(const std::vector<std::map<std::string, double>>& bundles,
                                 const std::string& strategy, const std::string& name, bool detached) {
  PlacementGroupOptions options;
  for (size_t i = 0; i < bundles.size(); ++i) {
    absl::StatusOr<ResourceSet> set = ResourceSet::FromDoubles(bundles[i]);
    if (!set.ok()) throw Error(absl::StrCat("shoal::CreatePlacementGroup: bundle ", i, ": ", set.status().message()));
    options.bundles.push_back(*std::move(set));
  }
  options.strategy = strategy;
  options.name = name;
  options.ray_namespace = kCppNamespace;
  options.detached = detached;
  absl::StatusOr<PlacementGroupId> id = Core().placement_groups().Create(options);
  if (!id.ok()) throw Error(absl::StrCat("shoal::CreatePlacementGroup: ", id.status().message()));
  return id->Hex();
}

void RemovePlacementGroup(const std::string& id) {
  absl::Status s = Core().placement_groups().Remove(ToPlacementGroupId(id));
  if (!s.ok()) throw Error(absl::StrCat("shoal::RemovePlacementGroup: ", s.message()));
}

PlacementGroupData GetPlacementGroupById(const std::string& id) {
  absl::StatusOr<rpc::PlacementGroupInfo> info = Core().placement_groups().Get(ToPlacementGroupId(id));
  if (!info.ok()) throw Error(absl::StrCat("shoal::GetPlacementGroup: ", info.status().message()));
  return ToData(*info);
}

PlacementGroupData GetPlacementGroupByName(const std::string& name) {
  absl::StatusOr<rpc::PlacementGroupInfo> info = Core().placement_groups().GetNamed(name, kCppNamespace);
  if (absl::IsNotFound(info.status())) {
    throw Error(absl::StrCat("shoal::GetPlacementGroup: no placement group named '", name, "'"));
  }
  if (!info.ok()) throw Error(absl::StrCat("shoal::GetPlacementGroup: ", info.status().message()));
  return ToData(*info);
}

std::vector<PlacementGroupData> ListPlacementGroups() {
  absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> groups = Core().placement_groups().List();
  if (!groups.ok()) throw Error(absl::StrCat("shoal::GetAllPlacementGroups: ", groups.status().message()));
  std::vector<PlacementGroupData> out;
  for (const auto& info : *groups) out.push_back(ToData(info));
  return out;
}

bool WaitPlacementGroup(const std::string& id, double timeout_seconds) {
  absl::StatusOr<bool> ready = Core().placement_groups().Wait(
      ToPlacementGroupId(id), timeout_seconds < 0 ? absl::Seconds(-1) : absl::Seconds(timeout_seconds));
  if (!ready.ok()) throw Error(absl::StrCat("shoal::PlacementGroup::Wait: ", ready.status().message()));
  return *ready;
}

}  // namespace internal
}  // namespace shoal
