// shoal._core: the pybind11 layer between the Python package (python_bindings/shoal) and the
// core worker (src/worker/core_worker.h).
//
// Thin on purpose: it converts types, turns a bad absl::Status into shoal._core.StatusError
// (code name + message; the Python package maps codes to its exceptions), and releases the GIL
// around every call that can block (submission, get, wait, put of large values, the task loop,
// GCS queries). Object ids cross as 28-byte `bytes`. Values cross as `bytes` one way and as
// ObjectBuffer (a read-only buffer over the object's memory, zero-copy) the other way.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "src/api/local_cluster.h"
#include "src/collective/absl_status.h"
#include "src/collective/gpu_backend.h"
#include "src/collective/host_communicator.h"
#include "src/worker/collective_group.h"
#include "src/common/bundle_resources.h"
#include "src/common/environment.h"
#include "src/common/error_info.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/common/system.h"
#include "src/gcs_client/gcs_client.h"
#include "src/gcs_client/package_store.h"
#include "src/gcs_client/state_query.h"
#include "src/worker/core_worker.h"
#include "src/worker/object_value.h"
#include "src/worker/placement_group_client.h"

namespace py = pybind11;

namespace shoal {
namespace {

// Raised for every failed call; .args = (code_name, message, error_type, exception_type, data):
// error_type is the ErrorType's name ("" for an untyped status), exception_type and data those
// of a TASK_EXCEPTION (shoal/_private/runtime.py status_to_exception maps them).
py::object g_status_error;

py::object StatusErrorOf(const absl::Status& status) {
  std::optional<rpc::ErrorInfo> info = ErrorInfoOf(status);
  return g_status_error(absl::StatusCodeToString(status.code()), std::string(status.message()),
                        info ? rpc::ErrorType_Name(info->type()) : std::string(),
                        info ? info->exception_type() : std::string(), py::bytes(info ? info->data() : std::string()));
}

// Makes this thread's Python thread state last until the thread ends. pybind11's
// gil_scoped_acquire, on a thread Python did not start (the task loops of a concurrent actor,
// the thread that starts an async actor's calls), makes a thread state and deletes it again on
// every call: a cost on every task, and `threading.local()` data and `threading.current_thread()`
// that do not outlive one call. The thread states of these long-lived threads are left to the
// interpreter's end. REQUIRES: the GIL is not held by this thread.
void KeepThreadState() {
  thread_local bool kept = false;
  if (kept) return;
  kept = true;
  if (PyGILState_GetThisThreadState() != nullptr) return;  // a thread Python knows
  py::gil_scoped_acquire first;
  first.inc_ref();  // one reference more than any call: the count never falls to zero
}

[[noreturn]] void ThrowStatus(const absl::Status& status) {
  py::gil_scoped_acquire gil;
  py::object error = StatusErrorOf(status);
  PyErr_SetObject(g_status_error.ptr(), error.ptr());
  throw py::error_already_set();
}

template <typename T>
T Check(absl::StatusOr<T> value) {
  if (!value.ok()) ThrowStatus(value.status());
  return std::move(*value);
}
void Check(const absl::Status& status) {
  if (!status.ok()) ThrowStatus(status);
}

ObjectId ToId(const std::string& bytes) {
  auto id = ObjectId::FromBinary(bytes);
  if (!id.ok()) ThrowStatus(id.status());
  return *id;
}

std::vector<ObjectId> ToIds(const std::vector<std::string>& ids) {
  std::vector<ObjectId> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(ToId(id));
  return out;
}

// Ids from a Python list of bytes, read in place (no std::string per id: get and wait take
// lists of thousands).
std::vector<ObjectId> IdsFromList(const py::list& ids) {
  std::vector<ObjectId> out;
  out.reserve(ids.size());
  for (py::handle item : ids) {
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (!PyBytes_Check(item.ptr()) || PyBytes_AsStringAndSize(item.ptr(), &data, &size) != 0) {
      PyErr_Clear();
      throw py::type_error("object ids must be bytes");
    }
    auto id = ObjectId::FromBinary(std::string_view(data, static_cast<size_t>(size)));
    if (!id.ok()) ThrowStatus(id.status());
    out.push_back(*id);
  }
  return out;
}

// How long a blocking wait runs before Python's signal handlers get a turn.
constexpr absl::Duration kSignalSlice = absl::Milliseconds(500);

absl::Duration ToTimeout(double seconds) {
  return seconds < 0 ? absl::Seconds(-1) : absl::Seconds(seconds);
}

py::dict ResourcesToDict(const rpc::ResourceMap& map) {
  py::dict out;
  for (const auto& [name, amount] : map.amounts()) {
    out[py::str(name)] = static_cast<double>(amount) / FixedPoint::kScale;
  }
  return out;
}

PlacementGroupId ToPlacementGroupId(const std::string& hex) {
  auto id = PlacementGroupId::FromHex(hex);
  if (!id.ok() || id->IsNil()) {
    ThrowStatus(absl::InvalidArgumentError(absl::StrCat("'", hex, "' is not a placement group id")));
  }
  return *id;
}

// Ray's placement_group_table() entry.
py::dict PlacementGroupToDict(const rpc::PlacementGroupInfo& info) {
  py::dict out;
  auto id = PlacementGroupId::FromBinary(info.placement_group_id());
  out["placement_group_id"] = id.ok() ? id->Hex() : std::string();
  out["name"] = info.name();
  out["namespace"] = info.ray_namespace();
  out["strategy"] = rpc::PlacementGroupInfo::Strategy_Name(info.strategy());
  out["state"] = rpc::PlacementGroupInfo::State_Name(info.state());
  py::dict bundles;
  py::dict bundles_to_node_id;
  for (const rpc::Bundle& bundle : info.bundles()) {
    bundles[py::int_(bundle.bundle_index())] = ResourcesToDict(bundle.resources());
    if (!bundle.node_id().empty()) bundles_to_node_id[py::int_(bundle.bundle_index())] = bundle.node_id();
  }
  out["bundles"] = bundles;
  out["bundles_to_node_id"] = bundles_to_node_id;
  out["job_id"] = info.job_id();
  out["is_detached"] = info.detached();
  py::dict stats;
  stats["create_time_ms"] = info.create_time_ms();
  stats["created_time_ms"] = info.created_time_ms();
  stats["remove_time_ms"] = info.remove_time_ms();
  stats["scheduling_state"] = info.pending_reason().empty() ? rpc::PlacementGroupInfo::State_Name(info.state())
                                                            : info.pending_reason();
  stats["infeasible"] = info.infeasible();
  out["stats"] = stats;
  return out;
}

rpc::RuntimeEnv ParseRuntimeEnv(const std::string& json) {
  rpc::RuntimeEnv env;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &env);
  if (!parsed.ok()) ThrowStatus(absl::InvalidArgumentError("runtime_env: " + parsed.message().ToString()));
  return env;
}

// Options arrive as a dict from shoal's Python layer (already validated there; the core checks
// again and answers InvalidArgument).
TaskOptions ToTaskOptions(const py::dict& options) {
  TaskOptions out;
  if (options.contains("resources")) {
    auto set = ResourceSet::FromDoubles(options["resources"].cast<std::map<std::string, double>>());
    if (!set.ok()) ThrowStatus(set.status());
    out.resources = *set;
    out.use_default_resources = false;  // the Python layer decides (num_cpus=0 asks for nothing)
  }
  if (options.contains("max_retries")) out.max_retries = options["max_retries"].cast<int>();
  if (options.contains("retry_exceptions")) out.retry_exceptions = options["retry_exceptions"].cast<bool>();
  if (options.contains("retry_exception_filter")) {
    out.retry_exception_filter = options["retry_exception_filter"].cast<std::string>();
  }
  if (options.contains("max_calls")) out.max_calls = options["max_calls"].cast<int>();
  if (options.contains("num_returns")) out.num_returns = options["num_returns"].cast<uint32_t>();
  if (options.contains("explicit_strategy")) out.explicit_strategy = options["explicit_strategy"].cast<bool>();
  if (options.contains("strategy")) {
    // rpc::SchedulingStrategy in its JSON form (shoal/util/scheduling_strategies.py writes it):
    // the one conversion of a Python strategy, whatever its kind.
    auto parsed = google::protobuf::util::JsonStringToMessage(options["strategy"].cast<std::string>(),
                                                               &out.strategy);
    if (!parsed.ok()) {
      ThrowStatus(absl::InvalidArgumentError("scheduling_strategy: " + parsed.message().ToString()));
    }
  }
  if (options.contains("worker_command")) {
    out.worker_command = options["worker_command"].cast<std::vector<std::string>>();
  }
  if (options.contains("runtime_env")) {
    // rpc::RuntimeEnv in its JSON form (shoal/_private/runtime_env.py resolves it).
    out.runtime_env = ParseRuntimeEnv(options["runtime_env"].cast<std::string>());
    out.has_runtime_env = true;
  }
  if (options.contains("nested_refs")) {
    out.nested_refs = ToIds(options["nested_refs"].cast<std::vector<std::string>>());
  }
  if (options.contains("concurrency_group")) out.concurrency_group = options["concurrency_group"].cast<std::string>();
  if (options.contains("max_pending_calls")) out.max_pending_calls = options["max_pending_calls"].cast<int>();
  if (options.contains("streaming")) out.streaming = options["streaming"].cast<bool>();
  if (options.contains("dynamic")) out.generator_dynamic = options["dynamic"].cast<bool>();
  if (options.contains("generator_backpressure_num_objects")) {
    out.generator_backpressure_num_objects = options["generator_backpressure_num_objects"].cast<int64_t>();
  }
  return out;
}

// A read-only buffer over an object's bytes (Python buffer protocol); memoryviews and numpy
// arrays made from it keep it, and so the object, alive.
struct PyObjectBuffer {
  ObjectBuffer buffer;
};

// Collective groups (src/collective) with the GCS KV as their rendezvous. Buffers arrive as raw
// addresses with their element type and device: the Python layer takes them from numpy arrays,
// torch tensors or CuPy arrays and keeps those alive across the call.
void CheckCollective(const collective::Status& s) {
  if (!s.ok()) ThrowStatus(collective::ToAbsl(s));
}

collective::Buffer ToBuffer(uintptr_t address, size_t count, const std::string& dtype, int device, uintptr_t stream) {
  std::optional<collective::DataType> type = collective::ParseDataType(dtype);
  if (!type) ThrowStatus(absl::InvalidArgumentError(absl::StrCat("collectives cannot carry dtype ", dtype)));
  return collective::Buffer{reinterpret_cast<void*>(address), count, *type, device, stream};
}

collective::ReduceOp ToReduceOp(const std::string& name) {
  std::optional<collective::ReduceOp> op = collective::ParseReduceOp(name);
  if (!op) ThrowStatus(absl::InvalidArgumentError(absl::StrCat("unknown reduce op ", name)));
  return *op;
}

class PyCollectiveGroup {
 public:
  PyCollectiveGroup(std::unique_ptr<collective::Communicator> comm, std::shared_ptr<CoreWorker> core)
      : comm_(std::move(comm)), core_(std::move(core)) {}

  int rank() const { return Comm()->rank(); }
  int size() const { return Comm()->size(); }
  std::string backend() const { return comm_ ? comm_->backend() : ""; }

  void AllReduce(uintptr_t a, size_t n, const std::string& t, int dev, uintptr_t stream, const std::string& op) {
    collective::Buffer b = ToBuffer(a, n, t, dev, stream);
    collective::ReduceOp o = ToReduceOp(op);
    Call([&](collective::Communicator& c) { return c.AllReduce(b, o); });
  }
  void Broadcast(uintptr_t a, size_t n, const std::string& t, int dev, uintptr_t stream, int root) {
    collective::Buffer b = ToBuffer(a, n, t, dev, stream);
    Call([&](collective::Communicator& c) { return c.Broadcast(b, root); });
  }
  void AllGather(uintptr_t in, uintptr_t out, size_t n, const std::string& t, int dev, uintptr_t stream) {
    collective::Buffer i = ToBuffer(in, n, t, dev, stream);
    collective::Buffer o = ToBuffer(out, n * static_cast<size_t>(size()), t, dev, stream);
    Call([&](collective::Communicator& c) { return c.AllGather(i, o); });
  }
  void ReduceScatter(uintptr_t in, uintptr_t out, size_t n, const std::string& t, int dev, uintptr_t stream,
                     const std::string& op) {
    collective::Buffer i = ToBuffer(in, n * static_cast<size_t>(size()), t, dev, stream);
    collective::Buffer o = ToBuffer(out, n, t, dev, stream);
    collective::ReduceOp r = ToReduceOp(op);
    Call([&](collective::Communicator& c) { return c.ReduceScatter(i, o, r); });
  }
  void Reduce(uintptr_t a, size_t n, const std::string& t, int dev, uintptr_t stream, int root, const std::string& op) {
    collective::Buffer b = ToBuffer(a, n, t, dev, stream);
    collective::ReduceOp o = ToReduceOp(op);
    Call([&](collective::Communicator& c) { return c.Reduce(b, root, o); });
  }
  void Send(uintptr_t a, size_t n, const std::string& t, int dev, uintptr_t stream, int peer) {
    collective::Buffer b = ToBuffer(a, n, t, dev, stream);
    Call([&](collective::Communicator& c) { return c.Send(b, peer); });
  }
  void Recv(uintptr_t a, size_t n, const std::string& t, int dev, uintptr_t stream, int peer) {
    collective::Buffer b = ToBuffer(a, n, t, dev, stream);
    Call([&](collective::Communicator& c) { return c.Recv(b, peer); });
  }
  void Barrier() {
    Call([&](collective::Communicator& c) { return c.Barrier(); });
  }
  // Closes the group (peers' operations fail) and removes this rank's rendezvous key.
  void Destroy() {
    std::shared_ptr<collective::Communicator> comm = std::move(comm_);
    if (comm == nullptr) return;
    py::gil_scoped_release release;
    LeaveCollectiveGroup(*core_, std::move(comm));
  }

 private:
  // The communicator, kept alive by the caller for the length of an operation (a Destroy on
  // another thread aborts it, and it is freed when the operation returns). Under the GIL.
  std::shared_ptr<collective::Communicator> Comm() const {
    if (comm_ == nullptr) ThrowStatus(absl::FailedPreconditionError("the collective group was destroyed"));
    return comm_;
  }

  template <typename F>
  void Call(F f) {
    std::shared_ptr<collective::Communicator> comm = Comm();
    collective::Status s;
    {
      py::gil_scoped_release release;
      s = f(*comm);
    }
    CheckCollective(s);
  }

  std::shared_ptr<collective::Communicator> comm_;
  std::shared_ptr<CoreWorker> core_;
};

std::unique_ptr<PyCollectiveGroup> JoinGroup(std::shared_ptr<CoreWorker> core, const std::string& name,
                                             int world_size, int rank, const std::string& backend,
                                             const std::string& bind_host, double join_timeout_s, double op_timeout_s,
                                             int device) {
  CollectiveJoinOptions options{.name = name,
                                .world_size = world_size,
                                .rank = rank,
                                .backend = backend,
                                .bind_host = bind_host,
                                .join_timeout = absl::Milliseconds(join_timeout_s * 1000),
                                .op_timeout = absl::Milliseconds(op_timeout_s * 1000),
                                .device = device};
  absl::StatusOr<std::unique_ptr<collective::Communicator>> comm;
  {
    py::gil_scoped_release release;
    comm = JoinCollectiveGroup(*core, options);
  }
  return std::make_unique<PyCollectiveGroup>(Check(std::move(comm)), std::move(core));
}

// A Python callable the core keeps (a handler): released under the GIL, because the core is
// destroyed with the GIL released (PyCoreWorker::Shutdown) and a callable dropped without it
// crashed the interpreter (a worker whose raylet died segfaulted in its shutdown).
template <typename T>
std::shared_ptr<T> KeepCallable(T callable) {
  return std::shared_ptr<T>(new T(std::move(callable)), [](T* held) {
    py::gil_scoped_acquire gil;
    delete held;
  });
}

class PyCoreWorker {
 public:
  explicit PyCoreWorker(std::unique_ptr<CoreWorker> core) : core_(std::move(core)) {}

  static std::shared_ptr<PyCoreWorker> CreateDriver(const std::string& gcs_address,
                                                    const std::vector<std::string>& worker_command,
                                                    const std::string& auth_token) {
    CoreWorkerOptions options;
    options.gcs_address = gcs_address;
    options.worker_command = worker_command;
    options.auth_token = auth_token;
    absl::StatusOr<std::unique_ptr<CoreWorker>> core;
    {
      py::gil_scoped_release release;
      core = CoreWorker::Create(options);
    }
    return std::make_shared<PyCoreWorker>(Check(std::move(core)));
  }

  static std::shared_ptr<PyCoreWorker> CreateWorker() {
    // The core's log goes to the session's logs/, as shoal-worker's does (warnings to stderr too).
    if (const char* session = std::getenv("SHOAL_SESSION_DIR"); session != nullptr && *session != '\0') {
      const char* id = std::getenv("SHOAL_WORKER_ID");
      (void)InitLogging(absl::StrCat("worker-", id != nullptr ? std::string(id).substr(0, 8) : "", "-", getpid()),
                        absl::StrCat(session, "/logs"));
    }
    absl::StatusOr<std::unique_ptr<CoreWorker>> core;
    {
      py::gil_scoped_release release;
      core = CoreWorker::CreateWorkerFromEnvironment();
    }
    return std::make_shared<PyCoreWorker>(Check(std::move(core)));
  }

  // The core for one call: `core()->Method(...)` keeps it alive until the call returns, so a
  // Shutdown from another thread meanwhile cannot destroy it under the call.
  std::shared_ptr<CoreWorker> core() {
    std::shared_ptr<CoreWorker> core = CoreOrNull();
    if (core == nullptr) ThrowStatus(absl::FailedPreconditionError("this core worker was shut down"));
    return core;
  }

  // Drops this object's hold on the core; it is destroyed here, or when the last call still
  // running on another thread returns.
  void Shutdown() {
    std::shared_ptr<CoreWorker> core;
    {
      absl::MutexLock lock(&mu_);
      core = std::move(core_);
    }
    py::gil_scoped_release release;
    core.reset();
  }

  static std::vector<TaskArg> ToTaskArgs(const std::vector<std::pair<bool, std::string>>& args) {
    std::vector<TaskArg> task_args;
    task_args.reserve(args.size());
    for (const auto& [is_ref, data] : args) {
      task_args.push_back(is_ref ? TaskArg::Ref(ToId(data)) : TaskArg::Value(data));
    }
    return task_args;
  }

  static ActorId ToActorId(const std::string& bytes) {
    auto id = ActorId::FromBinary(bytes);
    if (!id.ok()) ThrowStatus(id.status());
    return *id;
  }

  static py::dict ToDict(const ActorDescription& d) {
    py::dict out;
    out["actor_id"] = py::bytes(d.id.Binary());
    out["class_name"] = d.class_name;
    out["state"] = d.state;
    out["death_cause"] = d.death_cause;
    out["handle_data"] = py::bytes(d.handle_data);
    out["worker_address"] = d.worker_address;
    out["node_id"] = d.node_id;
    out["num_restarts"] = d.num_restarts;
    out["existed"] = d.existed;
    return out;
  }

  // args: list of (is_ref, bytes).
  std::vector<py::bytes> SubmitTask(const std::string& function_name,
                                    const std::vector<std::pair<bool, std::string>>& args,
                                    const py::dict& options) {
    std::vector<TaskArg> task_args = ToTaskArgs(args);
    TaskOptions task_options = ToTaskOptions(options);
    absl::StatusOr<std::vector<ObjectId>> ids;
    {
      py::gil_scoped_release release;
      ids = core()->SubmitTaskReturns(function_name, std::move(task_args), task_options);
    }
    std::vector<py::bytes> out;
    for (const auto& id : Check(std::move(ids))) out.emplace_back(id.Binary());
    return out;
  }

  // actor_options: class_name, name, namespace, detached, get_if_exists, max_restarts,
  // max_task_retries, max_concurrency, is_asyncio, concurrency_groups ({name: limit}), handle_data (bytes).
  py::dict CreateActor(const std::string& function_name, const std::vector<std::pair<bool, std::string>>& args,
                       const py::dict& options, const py::dict& actor_options) {
    std::vector<TaskArg> task_args = ToTaskArgs(args);
    TaskOptions task_options = ToTaskOptions(options);
    ActorOptions a;
    a.class_name = actor_options["class_name"].cast<std::string>();
    if (actor_options.contains("name")) a.name = actor_options["name"].cast<std::string>();
    if (actor_options.contains("namespace")) a.ray_namespace = actor_options["namespace"].cast<std::string>();
    if (actor_options.contains("detached")) a.detached = actor_options["detached"].cast<bool>();
    if (actor_options.contains("get_if_exists")) a.get_if_exists = actor_options["get_if_exists"].cast<bool>();
    if (actor_options.contains("max_restarts")) a.max_restarts = actor_options["max_restarts"].cast<int>();
    if (actor_options.contains("max_task_retries")) a.max_task_retries = actor_options["max_task_retries"].cast<int>();
    if (actor_options.contains("max_concurrency")) a.max_concurrency = actor_options["max_concurrency"].cast<int>();
    if (actor_options.contains("is_asyncio")) a.is_asyncio = actor_options["is_asyncio"].cast<bool>();
    if (actor_options.contains("concurrency_groups")) {
      a.concurrency_groups = actor_options["concurrency_groups"].cast<std::map<std::string, int>>();
    }
    if (actor_options.contains("handle_data")) a.handle_data = actor_options["handle_data"].cast<std::string>();
    absl::StatusOr<ActorDescription> d;
    {
      py::gil_scoped_release release;
      d = core()->CreateActor(function_name, std::move(task_args), task_options, a);
    }
    return ToDict(Check(std::move(d)));
  }

  std::vector<py::bytes> SubmitActorTask(const std::string& actor_id, const std::string& method,
                                         const std::vector<std::pair<bool, std::string>>& args,
                                         const py::dict& options) {
    ActorId actor = ToActorId(actor_id);
    std::vector<TaskArg> task_args = ToTaskArgs(args);
    TaskOptions task_options = ToTaskOptions(options);
    absl::StatusOr<std::vector<ObjectId>> ids;
    {
      py::gil_scoped_release release;
      ids = core()->SubmitActorTask(actor, method, std::move(task_args), task_options);
    }
    std::vector<py::bytes> out;
    for (const auto& id : Check(std::move(ids))) out.emplace_back(id.Binary());
    return out;
  }

  void AddActorHandle(const std::string& actor_id, int max_task_retries) {
    core()->AddActorHandle(ToActorId(actor_id), max_task_retries);
  }

  void KillActor(const std::string& actor_id, bool no_restart) {
    ActorId actor = ToActorId(actor_id);
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->KillActor(actor, no_restart);
    }
    Check(s);
  }

  py::dict GetNamedActor(const std::string& name, const std::string& ray_namespace) {
    absl::StatusOr<ActorDescription> d;
    {
      py::gil_scoped_release release;
      d = core()->GetNamedActor(name, ray_namespace);
    }
    return ToDict(Check(std::move(d)));
  }

  py::dict GetActorInfo(const std::string& actor_id) {
    ActorId actor = ToActorId(actor_id);
    absl::StatusOr<ActorDescription> d;
    {
      py::gil_scoped_release release;
      d = core()->GetActorInfo(actor);
    }
    return ToDict(Check(std::move(d)));
  }

  py::bytes Put(const std::vector<py::buffer>& parts) {
    std::vector<py::buffer_info> infos;
    std::vector<std::string_view> views;
    for (const auto& part : parts) {
      infos.push_back(part.request());
      const auto& info = infos.back();
      views.emplace_back(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size * info.itemsize));
    }
    absl::StatusOr<ObjectId> id;
    {
      py::gil_scoped_release release;
      id = core()->PutParts(views);
    }
    return py::bytes(Check(std::move(id)).Binary());
  }

  // One entry per id: an ObjectBuffer, or a StatusError instance for a failed object. (Not in
  // slices as Wait: a read that must make a lost object again needs the whole timeout.)
  py::list Get(const py::list& ids, double timeout) {
    std::vector<ObjectId> object_ids = IdsFromList(ids);
    absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> buffers;
    {
      py::gil_scoped_release release;
      // While it waits, Python's signal handlers run every 100 ms: Ctrl-C stops a driver's get,
      // and a cancel (SIGUSR2, shoal/worker.py) stops a task blocked in one.
      buffers = core()->GetBuffers(object_ids, ToTimeout(timeout), [] {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;  // the handler's exception stays set for below
      });
    }
    if (PyErr_Occurred() != nullptr) throw py::error_already_set();
    py::list out;
    for (auto& b : Check(std::move(buffers))) {
      if (b.ok()) {
        out.append(py::cast(PyObjectBuffer{std::move(*b)}));
        continue;
      }
      out.append(StatusErrorOf(b.status()));
    }
    return out;
  }

  // Waits in slices, running Python's signal handlers between them, so that a task blocked here
  // can be cancelled (SIGUSR2, shoal/worker.py) and a driver interrupted (Ctrl-C).
  std::vector<bool> Wait(const py::list& ids, int num_ready, double timeout, bool fetch_local) {
    return WaitIds(IdsFromList(ids), num_ready, timeout, fetch_local);
  }

  // wait() over a list of ObjectRefs in one pass, without Python bytecode per ref (callers wait on
  // thousands, again and again): answers (ready, rest) — the first `num_ready` ready refs in the
  // list's order, then the others in order — or None when an item is not exactly `ref_type`
  // (the caller's general path handles those). ValueError for an id listed twice.
  py::object WaitRefs(const py::list& refs, const py::handle& ref_type, int num_ready, double timeout,
                      bool fetch_local) {
    static PyObject* const id_attr = PyUnicode_InternFromString("_id");
    std::vector<ObjectId> ids;
    ids.reserve(refs.size());
    for (py::handle item : refs) {
      if (reinterpret_cast<PyObject*>(Py_TYPE(item.ptr())) != ref_type.ptr()) return py::none();
      py::object id = py::reinterpret_steal<py::object>(PyObject_GetAttr(item.ptr(), id_attr));
      char* data = nullptr;
      Py_ssize_t size = 0;
      if (!id || !PyBytes_Check(id.ptr()) || PyBytes_AsStringAndSize(id.ptr(), &data, &size) != 0) {
        PyErr_Clear();
        return py::none();
      }
      auto parsed = ObjectId::FromBinary(std::string_view(data, static_cast<size_t>(size)));
      if (!parsed.ok()) ThrowStatus(parsed.status());
      ids.push_back(*parsed);
    }
    if (absl::flat_hash_set<ObjectId>(ids.begin(), ids.end()).size() != ids.size()) {
      throw py::value_error("Wait requires a list of unique object refs.");
    }
    const std::vector<bool> ready = WaitIds(std::move(ids), num_ready, timeout, fetch_local);
    py::list done, rest;
    int taken = 0;
    for (size_t i = 0; i < ready.size(); ++i) {
      if (ready[i] && taken < num_ready) {
        done.append(refs[i]);
        ++taken;
      } else {
        rest.append(refs[i]);
      }
    }
    return py::make_tuple(std::move(done), std::move(rest));
  }

  std::vector<bool> WaitIds(std::vector<ObjectId> object_ids, int num_ready, double timeout, bool fetch_local) {
    absl::StatusOr<std::vector<bool>> ready;
    const absl::Time deadline = timeout < 0 ? absl::InfiniteFuture() : absl::Now() + absl::Seconds(timeout);
    while (true) {
      const absl::Duration slice = std::min(kSignalSlice, std::max(absl::ZeroDuration(), deadline - absl::Now()));
      {
        py::gil_scoped_release release;
        ready = core()->Wait(object_ids, num_ready, slice, fetch_local);
      }
      if (!ready.ok() || std::count(ready->begin(), ready->end(), true) >= num_ready || absl::Now() >= deadline) break;
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    }
    return Check(std::move(ready));
  }

  void Cancel(const std::string& id, bool force, bool recursive) {
    ObjectId object_id = ToId(id);
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->CancelTask(object_id, force, recursive);
    }
    Check(s);
  }

  // --- Streaming generators (shoal/_private/generator.py): by the id of the task's return ---

  // The next item's id (bytes), or None once the stream ended; GetTimeoutError past `timeout`.
  py::object GeneratorNext(const std::string& id, double timeout) {
    ObjectId generator = ToId(id);
    absl::StatusOr<std::optional<ObjectId>> next;
    {
      py::gil_scoped_release release;
      next = core()->GeneratorNext(generator, ToTimeout(timeout));
    }
    std::optional<ObjectId> item = Check(std::move(next));
    if (!item) return py::none();
    return py::bytes(item->Binary());
  }
  bool GeneratorIsFinished(const std::string& id) { return core()->GeneratorIsFinished(ToId(id)); }
  bool GeneratorNextReady(const std::string& id) { return core()->GeneratorNextReady(ToId(id)); }
  // From a finalizer: a no-op once the core is gone.
  void ReleaseGenerator(const std::string& id) {
    if (auto core = CoreOrNull()) core->ReleaseGenerator(ToId(id));
  }
  // Worker side: `task` is current_task() of the thread running the generator.
  void ReportGeneratorItem(const std::string& task_id, const std::string& owner_address, int attempt, int64_t index,
                           const std::string& value) {
    CurrentTaskInfo task;
    task.task_id = task_id;
    task.owner_address = owner_address;
    task.attempt = attempt;
    std::string copy = value;
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->ReportGeneratorItem(task, index, std::move(copy));
    }
    Check(s);
  }

  void AddReference(const std::string& id) {
    if (auto core = CoreOrNull()) core->AddLocalReference(ToId(id));
  }
  void RemoveReference(const std::string& id) {
    if (auto core = CoreOrNull()) core->RemoveLocalReference(ToId(id));
  }
  void RegisterBorrowed(const std::string& id, const std::string& owner) {
    core()->RegisterBorrowedObject(ToId(id), owner);
  }
  // A ref read out of a value (ObjectRef's unpickling): notes who owns it (when `owner` is given)
  // and counts the new ObjectRef, in one call. Objects with 10k refs inside spend most of their
  // get here (bench/README.md).
  void AdoptRef(const std::string& id, const std::string& owner) {
    auto core = CoreOrNull();
    if (core == nullptr) return;
    const ObjectId object = ToId(id);
    if (!owner.empty()) core->RegisterBorrowedObject(object, owner);
    core->AddLocalReference(object);
  }
  std::string OwnerAddress(const std::string& id) { return Check(core()->GetOwnerAddress(ToId(id))); }

  void RunTaskLoop() {
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->RunTaskLoop();
    }
    Check(s);
  }

  // handler(function_name, task_id, num_returns, cuda_visible_devices, actor_id_hex, actor_creation,
  // args: list[ObjectBuffer], retry_exception_filter: bytes, concurrency_group, streaming, dynamic) answers
  // (True, [bytes, ...]) or (False, (exception_type, message, data, traceback, not_retryable)).
  void SetTaskHandler(py::function handler) {
    auto shared = KeepCallable(std::move(handler));
    core()->SetTaskHandler([shared](const TaskCall& call) -> absl::StatusOr<std::vector<std::string>> {
      KeepThreadState();
      py::gil_scoped_acquire gil;
      try {
        py::tuple answer = (*shared)(call.function_name, call.task_id, call.num_returns,
                                        call.cuda_visible_devices, call.actor_id, call.actor_creation,
                                        CallArgs(call), py::bytes(call.retry_exception_filter),
                                        call.concurrency_group, call.streaming, call.dynamic);
        return FromAnswer(answer);
      } catch (py::error_already_set& e) {
        return ErrorStatus(rpc::SYSTEM_ERROR, absl::StrCat("the task handler failed: ", e.what()));
      }
    });
  }

  // handler(function_name, task_id, num_returns, actor_id_hex, args, concurrency_group,
  // retry_exception_filter, complete) starts a method call of an async actor and returns;
  // complete(answer), with an answer as the task handler's, is called once when the call ended
  // (from any thread).
  void SetAsyncTaskHandler(py::function handler) {
    auto shared = KeepCallable(std::move(handler));
    core()->SetAsyncTaskHandler([shared](const TaskCall& call, TaskCompletion done) {
      auto once = std::make_shared<TaskCompletion>(std::move(done));
      auto finish = [once](absl::StatusOr<std::vector<std::string>> results) {
        TaskCompletion done = std::move(*once);
        *once = nullptr;
        if (!done) return;  // answered already
        py::gil_scoped_release release;
        done(std::move(results));
      };
      KeepThreadState();
      py::gil_scoped_acquire gil;
      try {
        py::cpp_function complete([finish](py::tuple answer) {
          absl::StatusOr<std::vector<std::string>> results;
          try {
            results = FromAnswer(answer);
          } catch (py::error_already_set& e) {
            results = ErrorStatus(rpc::SYSTEM_ERROR, absl::StrCat("the task handler failed: ", e.what()));
          } catch (const py::cast_error& e) {
            results = ErrorStatus(rpc::SYSTEM_ERROR, absl::StrCat("the task handler answered badly: ", e.what()));
          }
          finish(std::move(results));
        });
        (*shared)(call.function_name, call.task_id, call.num_returns, call.actor_id, CallArgs(call),
                  call.concurrency_group, py::bytes(call.retry_exception_filter), complete);
      } catch (py::error_already_set& e) {
        finish(ErrorStatus(rpc::SYSTEM_ERROR, absl::StrCat("the task handler failed: ", e.what())));
      }
    });
  }

  static py::list CallArgs(const TaskCall& call) {
    py::list args;
    for (const auto& a : call.args) args.append(py::cast(PyObjectBuffer{a}));
    return args;
  }

  // A task handler's answer: (True, [bytes, ...]) or (False, (exception_type, message, data,
  // traceback, not_retryable)). REQUIRES: the GIL.
  static absl::StatusOr<std::vector<std::string>> FromAnswer(const py::tuple& answer) {
    if (answer[0].cast<bool>()) {
      std::vector<std::string> results;
      for (const auto& r : answer[1].cast<py::list>()) results.push_back(r.cast<std::string>());
      return results;
    }
    py::tuple error = answer[1].cast<py::tuple>();
    rpc::ErrorInfo info = TaskException(error[0].cast<std::string>(), error[1].cast<std::string>(),
                                        error[3].cast<std::string>(), error[2].cast<std::string>());
    info.set_not_retryable(error[4].cast<bool>());
    return ErrorStatus(info);
  }

  void SetInterruptHandler(py::function handler) {
    auto shared = KeepCallable(std::move(handler));
    core()->SetInterruptHandler([shared](const std::string& task_id) {
      py::gil_scoped_acquire gil;
      try {
        (*shared)(task_id);
      } catch (py::error_already_set& e) {
        PyErr_Clear();
      }
    });
  }

  void SetLogHandler(py::function handler) {
    auto shared = KeepCallable(std::move(handler));
    core()->SetLogHandler([shared](const std::vector<std::string>& lines, bool is_stderr) {
      py::gil_scoped_acquire gil;
      try {
        (*shared)(lines, is_stderr);
      } catch (py::error_already_set& e) {
        PyErr_Clear();
      }
    });
  }

  void SendLogs(const std::string& owner, const std::vector<std::string>& lines, bool is_stderr) {
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->SendLogs(owner, lines, is_stderr);
    }
    Check(s);
  }

  py::dict CurrentTask() {
    CurrentTaskInfo info = core()->CurrentTask();
    py::dict out;
    out["task_id"] = info.task_id;
    out["function_name"] = info.function_name;
    out["owner_address"] = info.owner_address;
    out["attempt"] = info.attempt;
    out["placement_group_id"] = info.placement_group_id;
    out["bundle_index"] = info.bundle_index;
    out["capture_child_tasks"] = info.capture_child_tasks;
    out["resources"] = info.resources;
    return out;
  }

  // --- Placement groups (shoal/util/placement_group.py) ---

  std::string CreatePlacementGroup(const std::vector<std::map<std::string, double>>& bundles,
                                   const std::string& strategy, const std::string& name,
                                   const std::string& ray_namespace, bool detached,
                                   const std::vector<std::map<std::string, std::string>>& label_selectors) {
    PlacementGroupOptions options;
    options.bundle_label_selectors = label_selectors;
    for (size_t i = 0; i < bundles.size(); ++i) {
      auto set = ResourceSet::FromDoubles(bundles[i]);
      if (!set.ok()) ThrowStatus(absl::InvalidArgumentError(absl::StrCat("bundle ", i, ": ", set.status().message())));
      options.bundles.push_back(*set);
    }
    options.strategy = strategy;
    options.name = name;
    options.ray_namespace = ray_namespace;
    options.detached = detached;
    absl::StatusOr<PlacementGroupId> id;
    {
      py::gil_scoped_release release;
      id = core()->placement_groups().Create(options);
    }
    return Check(std::move(id)).Hex();
  }

  void RemovePlacementGroup(const std::string& id_hex) {
    PlacementGroupId id = ToPlacementGroupId(id_hex);
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->placement_groups().Remove(id);
    }
    Check(s);
  }

  // None when unknown.
  py::object GetPlacementGroup(const std::string& id_hex) {
    PlacementGroupId id = ToPlacementGroupId(id_hex);
    absl::StatusOr<rpc::PlacementGroupInfo> info;
    {
      py::gil_scoped_release release;
      info = core()->placement_groups().Get(id);
    }
    if (absl::IsNotFound(info.status())) return py::none();
    return PlacementGroupToDict(Check(std::move(info)));
  }

  // None when no group that is not removed has the name.
  py::object GetNamedPlacementGroup(const std::string& name, const std::string& ray_namespace) {
    absl::StatusOr<rpc::PlacementGroupInfo> info;
    {
      py::gil_scoped_release release;
      info = core()->placement_groups().GetNamed(name, ray_namespace);
    }
    if (absl::IsNotFound(info.status())) return py::none();
    return PlacementGroupToDict(Check(std::move(info)));
  }

  py::list ListPlacementGroups() {
    absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> groups;
    {
      py::gil_scoped_release release;
      groups = core()->placement_groups().List();
    }
    py::list out;
    for (const auto& info : Check(std::move(groups))) out.append(PlacementGroupToDict(info));
    return out;
  }

  // True once created; false when `timeout` seconds passed first (negative: no limit).
  bool WaitPlacementGroup(const std::string& id_hex, double timeout) {
    PlacementGroupId id = ToPlacementGroupId(id_hex);
    absl::StatusOr<bool> ready;
    {
      py::gil_scoped_release release;
      ready = core()->placement_groups().Wait(id, ToTimeout(timeout));
    }
    return Check(std::move(ready));
  }

  bool KvPut(const std::string& ns, const std::string& key, const py::bytes& value, bool overwrite) {
    std::string v = value;
    absl::StatusOr<bool> added;
    {
      py::gil_scoped_release release;
      added = core()->KvPut(ns, key, v, overwrite);
    }
    return Check(std::move(added));
  }
  void KvDel(const std::string& ns, const std::string& key) {
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = core()->KvDel(ns, key);
    }
    Check(s);
  }

  void SetDefaultRuntimeEnv(const std::string& json) { core()->SetDefaultRuntimeEnv(ParseRuntimeEnv(json)); }

  // Runtime-env packages in the GCS (src/gcs_client/package_store.h).
  PackageKv Packages() {
    std::shared_ptr<CoreWorker> core = this->core();
    return PackageKv{
        .put = [core](const std::string& key, const std::string& value) {
          return core->KvPut(kPackageNamespace, key, value, /*overwrite=*/true).status();
        },
        .get = [core](const std::string& key) { return core->KvGet(kPackageNamespace, key); },
    };
  }
  bool PackageExists(const std::string& uri) {
    PackageKv kv = Packages();
    py::gil_scoped_release release;
    return Check(shoal::PackageExists(kv, uri));
  }
  void UploadPackage(const std::string& uri, const py::bytes& bytes) {
    std::string data = bytes;
    PackageKv kv = Packages();
    absl::Status s;
    {
      py::gil_scoped_release release;
      s = PutPackage(kv, uri, data);
    }
    Check(s);
  }

  // None when the key is absent.
  py::object KvGet(const std::string& ns, const std::string& key) {
    absl::StatusOr<std::string> value;
    {
      py::gil_scoped_release release;
      value = core()->KvGet(ns, key);
    }
    if (absl::IsNotFound(value.status())) return py::none();
    return py::bytes(Check(std::move(value)));
  }

 private:
  std::shared_ptr<CoreWorker> CoreOrNull() {
    absl::MutexLock lock(&mu_);
    return core_;
  }

  absl::Mutex mu_;
  std::shared_ptr<CoreWorker> core_ ABSL_GUARDED_BY(mu_);
};

// The GCS's view of the cluster, for shoal.nodes() and the resource queries.
// The state API (src/gcs_client/state_query.h), answered as JSON text for shoal/util/state.py.
// `filters`: (key, predicate, value) triples as Ray takes them.
std::string StateList(const std::string& gcs_address, const std::string& resource,
                      const std::vector<std::tuple<std::string, std::string, std::string>>& filters, int64_t limit,
                      bool detail, double timeout) {
  state::ListOptions options;
  options.limit = limit;
  options.detail = detail;
  const state::Resource kind = Check(state::ParseResource(resource));
  for (const auto& [key, predicate, value] : filters) {
    options.filters.push_back(Check(state::MakeFilter(key, predicate, value)));
  }
  absl::StatusOr<state::ListResult> listed;
  {
    py::gil_scoped_release release;
    listed = state::List(GcsClient({.address = gcs_address, .timeout = absl::Seconds(timeout)}), kind, options);
  }
  state::ListResult result = Check(std::move(listed));
  return nlohmann::json{{"rows", result.rows}, {"total", result.total}, {"partial", result.partial}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StateGet(const std::string& gcs_address, const std::string& resource, const std::string& id, double timeout) {
  const state::Resource kind = Check(state::ParseResource(resource));
  absl::StatusOr<nlohmann::json> entry;
  {
    py::gil_scoped_release release;
    entry = state::Get(GcsClient({.address = gcs_address, .timeout = absl::Seconds(timeout)}), kind, id);
  }
  return Check(std::move(entry)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StateSummarize(const std::string& gcs_address, const std::string& resource, double timeout) {
  const state::Resource kind = Check(state::ParseResource(resource));
  absl::StatusOr<nlohmann::json> summary;
  {
    py::gil_scoped_release release;
    summary = state::Summarize(GcsClient({.address = gcs_address, .timeout = absl::Seconds(timeout)}), kind);
  }
  return Check(std::move(summary)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string StateTimeline(const std::string& gcs_address, double timeout) {
  absl::StatusOr<nlohmann::json> trace;
  {
    py::gil_scoped_release release;
    trace = state::Timeline(GcsClient({.address = gcs_address, .timeout = absl::Seconds(timeout)}));
  }
  return Check(std::move(trace)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

py::dict ClusterStatus(const std::string& gcs_address, double timeout) {
  absl::StatusOr<rpc::GetClusterStatusReply> status;
  {
    py::gil_scoped_release release;
    status = GcsClient({.address = gcs_address, .timeout = absl::Seconds(timeout)}).GetClusterStatus();
  }
  const rpc::GetClusterStatusReply reply = Check(std::move(status));
  py::dict out;
  out["total"] = ResourcesToDict(reply.total());
  out["available"] = ResourcesToDict(reply.available());
  py::list nodes;
  for (const auto& node : reply.nodes()) {
    py::dict n;
    n["node_id"] = node.node_id();
    n["address"] = node.address();
    n["raylet_port"] = node.raylet_port();
    n["object_manager_port"] = node.object_manager_port();
    n["hostname"] = node.hostname();
    n["is_head"] = node.is_head();
    n["alive"] = node.state() == rpc::NodeInfo::ALIVE;
    n["resources_total"] = ResourcesToDict(node.resources_total());
    n["resources_available"] = ResourcesToDict(node.resources_available());
    py::dict labels;
    for (const auto& [k, v] : node.labels()) labels[py::str(k)] = v;
    n["labels"] = labels;
    n["start_time_ms"] = node.start_time_ms();
    n["death_reason"] = node.death_reason();
    n["session_dir"] = node.session_dir();
    n["object_store_socket"] = node.object_store_socket();
    nodes.append(n);
  }
  out["nodes"] = nodes;
  py::list demands;
  for (const auto& d : reply.demands()) {
    py::dict demand;
    demand["shape"] = ResourcesToDict(d.shape());
    demand["count"] = d.count();
    demand["infeasible"] = d.infeasible();
    demands.append(demand);
  }
  out["demands"] = demands;
  return out;
}

class PyLocalCluster {
 public:
  PyLocalCluster(int num_cpus, int num_gpus, const std::string& resources, int64_t object_store_memory) {
    auto bin_dir = api::FindBinDir();
    if (!bin_dir.ok()) ThrowStatus(bin_dir.status());
    api::LocalClusterOptions options{*bin_dir, num_cpus, num_gpus, resources, object_store_memory};
    absl::StatusOr<std::unique_ptr<api::LocalCluster>> cluster;
    {
      py::gil_scoped_release release;
      cluster = api::LocalCluster::Start(options);
    }
    cluster_ = Check(std::move(cluster));
  }
  std::string address() const { return cluster_ ? cluster_->address() : std::string(); }
  std::string auth_token() const { return cluster_ ? cluster_->auth_token() : std::string(); }
  void Stop() {
    py::gil_scoped_release release;
    if (cluster_) cluster_->Stop();
  }

 private:
  std::unique_ptr<api::LocalCluster> cluster_;
};

}  // namespace
}  // namespace shoal

PYBIND11_MODULE(_core, m) {
  using namespace shoal;
  ConfigureMutexChecks();
  m.doc() = "Shoal's core worker, for the shoal package (not a public API).";
  // The core's own log lines go to stderr, warnings and errors only, as a C++ driver's do
  // (spdlog's default logger writes everything from info up to stdout, into the program's output);
  // a worker then logs to its session's logs/ as well (CreateWorker).
  if (spdlog::default_logger()->name().empty()) {
    auto logger = std::make_shared<spdlog::logger>("shoal", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_level(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
  }
  // shoal.init and shoal.shutdown may alternate many times in one interpreter.
  KeepGrpcInitialized();

  // A plain exception class; shoal.exceptions maps its code names to the public exceptions.
  g_status_error = py::reinterpret_steal<py::object>(
      PyErr_NewException("shoal._core.StatusError", PyExc_RuntimeError, nullptr));
  m.attr("StatusError") = g_status_error;

  py::class_<PyObjectBuffer>(m, "ObjectBuffer", py::buffer_protocol())
      .def_buffer([](PyObjectBuffer& b) {
        return py::buffer_info(const_cast<char*>(b.buffer.data), 1, py::format_descriptor<uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(b.buffer.size)}, {1}, /*readonly=*/true);
      })
      .def("__len__", [](const PyObjectBuffer& b) { return b.buffer.size; })
      .def("address", [](const PyObjectBuffer& b) { return reinterpret_cast<uintptr_t>(b.buffer.data); });

  py::class_<PyCollectiveGroup>(m, "CollectiveGroup")
      .def_property_readonly("rank", &PyCollectiveGroup::rank)
      .def_property_readonly("size", &PyCollectiveGroup::size)
      .def_property_readonly("backend", &PyCollectiveGroup::backend)
      .def("allreduce", &PyCollectiveGroup::AllReduce)
      .def("broadcast", &PyCollectiveGroup::Broadcast)
      .def("allgather", &PyCollectiveGroup::AllGather)
      .def("reducescatter", &PyCollectiveGroup::ReduceScatter)
      .def("reduce", &PyCollectiveGroup::Reduce)
      .def("send", &PyCollectiveGroup::Send)
      .def("recv", &PyCollectiveGroup::Recv)
      .def("barrier", &PyCollectiveGroup::Barrier)
      .def("destroy", &PyCollectiveGroup::Destroy);
  // Adding a name to the environment while the core's threads read it (src/common/environment.h):
  // the worker adds through these, then os.environ (whose putenv replaces in place) follows.
  m.def("set_env", &SetEnvironmentVariable, py::arg("name"), py::arg("value"));
  m.def("unset_env", &UnsetEnvironmentVariable, py::arg("name"));
  // (loaded, why not, CUDA devices this process sees)
  // CUDA IPC and device identity for GPU-tensor transfers (shoal/_private/tensor_transport.py).
  m.def("gpu_export_ipc", [](uintptr_t ptr, size_t bytes, int device, uintptr_t stream) {
    collective::GpuBackend* gpu = nullptr;
    std::string handle;
    collective::Status s;
    {
      py::gil_scoped_release release;
      s = collective::LoadGpuBackend(&gpu);
      if (s.ok()) s = gpu->ExportIpc(reinterpret_cast<const void*>(ptr), bytes, device, stream, &handle);
    }
    CheckCollective(s);
    return py::bytes(handle);
  });
  m.def("gpu_copy_from_ipc", [](const py::bytes& handle, uintptr_t dst, size_t bytes, int device, uintptr_t stream) {
    std::string h = handle;
    collective::GpuBackend* gpu = nullptr;
    collective::Status s;
    {
      py::gil_scoped_release release;
      s = collective::LoadGpuBackend(&gpu);
      if (s.ok()) s = gpu->CopyFromIpc(h, reinterpret_cast<void*>(dst), bytes, device, stream);
    }
    CheckCollective(s);
  });
  m.def("gpu_device_uuid", [](int device) {
    collective::GpuBackend* gpu = nullptr;
    std::string uuid;
    collective::Status s = collective::LoadGpuBackend(&gpu);
    if (s.ok()) s = gpu->DeviceUuid(device, &uuid);
    CheckCollective(s);
    return uuid;
  });
  m.def("gpu_backend_status", [] {
    collective::GpuBackend* gpu = nullptr;
    collective::Status s;
    {
      py::gil_scoped_release release;
      s = collective::LoadGpuBackend(&gpu);
    }
    int devices = s.ok() ? gpu->DeviceCount() : 0;
    return py::make_tuple(s.ok(), s.message(), devices);
  });

  py::class_<PyCoreWorker, std::shared_ptr<PyCoreWorker>>(m, "CoreWorker")
      .def_static("create_driver", &PyCoreWorker::CreateDriver, py::arg("gcs_address"), py::arg("worker_command"),
                  py::arg("auth_token") = "")
      .def_static("create_worker", &PyCoreWorker::CreateWorker)
      .def("shutdown", &PyCoreWorker::Shutdown)
      .def("submit_task", &PyCoreWorker::SubmitTask)
      .def("put", &PyCoreWorker::Put)
      .def("create_actor", &PyCoreWorker::CreateActor)
      .def("submit_actor_task", &PyCoreWorker::SubmitActorTask)
      .def("add_actor_handle", &PyCoreWorker::AddActorHandle)
      .def("kill_actor", &PyCoreWorker::KillActor)
      .def("get_named_actor", &PyCoreWorker::GetNamedActor)
      .def("get_actor_info", &PyCoreWorker::GetActorInfo)
      .def_property_readonly("current_actor", [](PyCoreWorker& w) {
        ActorId a = w.core()->CurrentActor();
        return a.IsNil() ? std::string() : a.Hex();
      })
      .def("get", &PyCoreWorker::Get)
      .def("wait", &PyCoreWorker::Wait)
      .def("wait_refs", &PyCoreWorker::WaitRefs)
      .def("cancel", &PyCoreWorker::Cancel)
      .def("generator_next", &PyCoreWorker::GeneratorNext)
      .def("generator_is_finished", &PyCoreWorker::GeneratorIsFinished)
      .def("generator_next_ready", &PyCoreWorker::GeneratorNextReady)
      .def("release_generator", &PyCoreWorker::ReleaseGenerator)
      .def("report_generator_item", &PyCoreWorker::ReportGeneratorItem)
      .def("add_reference", &PyCoreWorker::AddReference)
      .def("remove_reference", &PyCoreWorker::RemoveReference)
      .def("register_borrowed", &PyCoreWorker::RegisterBorrowed)
      .def("adopt_ref", &PyCoreWorker::AdoptRef)
      .def("owner_address", &PyCoreWorker::OwnerAddress)
      .def("run_task_loop", &PyCoreWorker::RunTaskLoop)
      .def("set_task_handler", &PyCoreWorker::SetTaskHandler)
      .def("set_async_task_handler", &PyCoreWorker::SetAsyncTaskHandler)
      .def("set_interrupt_handler", &PyCoreWorker::SetInterruptHandler)
      .def("set_log_handler", &PyCoreWorker::SetLogHandler)
      .def("send_logs", &PyCoreWorker::SendLogs)
      .def("current_task", &PyCoreWorker::CurrentTask)
      .def("create_placement_group", &PyCoreWorker::CreatePlacementGroup, py::arg("bundles"), py::arg("strategy"),
           py::arg("name"), py::arg("ray_namespace"), py::arg("detached"),
           py::arg("label_selectors") = std::vector<std::map<std::string, std::string>>{})
      .def("remove_placement_group", &PyCoreWorker::RemovePlacementGroup)
      .def("get_placement_group", &PyCoreWorker::GetPlacementGroup)
      .def("get_named_placement_group", &PyCoreWorker::GetNamedPlacementGroup)
      .def("list_placement_groups", &PyCoreWorker::ListPlacementGroups)
      .def("wait_placement_group", &PyCoreWorker::WaitPlacementGroup)
      .def("kv_put", &PyCoreWorker::KvPut)
      .def("kv_get", &PyCoreWorker::KvGet)
      .def("kv_del", &PyCoreWorker::KvDel)
      .def("watch_free", [](PyCoreWorker& self, const py::bytes& id) { self.core()->WatchFree(ToId(id)); })
      // handler(list of freed ids as bytes) runs on the core's loop with the GIL held: it must
      // only queue work. None removes it (the Python layer does so before shutdown).
      .def("set_freed_handler", [](PyCoreWorker& self, py::object handler) {
        if (handler.is_none()) {  // before shutdown, so that no Python object dies without the GIL
          self.core()->SetFreedHandler(nullptr);
          return;
        }
        auto fn = KeepCallable(std::move(handler));
        self.core()->SetFreedHandler([fn](std::vector<ObjectId> ids) {
          py::gil_scoped_acquire gil;
          py::list out;
          for (const ObjectId& id : ids) out.append(py::bytes(id.Binary()));
          try {
            (*fn)(out);
          } catch (py::error_already_set& e) {
            e.discard_as_unraisable("shoal freed-object handler");
          }
        });
      })
      .def("join_collective_group", [](PyCoreWorker& self, const std::string& name, int world_size, int rank,
                                        const std::string& backend, const std::string& bind_host,
                                        double join_timeout_s, double op_timeout_s, int device) {
        return JoinGroup(self.core(), name, world_size, rank, backend, bind_host, join_timeout_s, op_timeout_s,
                         device);
      })
      .def("set_default_runtime_env", &PyCoreWorker::SetDefaultRuntimeEnv)
      .def("package_exists", &PyCoreWorker::PackageExists)
      .def("upload_package", &PyCoreWorker::UploadPackage)
      .def_property_readonly("address", [](PyCoreWorker& w) { return w.core()->address(); })
      .def_property_readonly("gcs_address", [](PyCoreWorker& w) { return w.core()->gcs_address(); })
      .def_property_readonly("job_id", [](PyCoreWorker& w) { return w.core()->job_id().Hex(); })
      .def_property_readonly("node_id", [](PyCoreWorker& w) { return w.core()->node_id().Hex(); })
      .def_property_readonly("worker_id", [](PyCoreWorker& w) { return w.core()->worker_id().Hex(); });

  py::class_<PyLocalCluster>(m, "LocalCluster")
      .def(py::init<int, int, const std::string&, int64_t>(), py::arg("num_cpus"), py::arg("num_gpus"),
           py::arg("resources"), py::arg("object_store_memory") = -1)
      .def_property_readonly("address", &PyLocalCluster::address)
      .def_property_readonly("auth_token", &PyLocalCluster::auth_token)
      .def("stop", &PyLocalCluster::Stop);

  m.def("cluster_status", &ClusterStatus, py::arg("gcs_address"), py::arg("timeout") = 10.0);
  m.def("state_list", &StateList, py::arg("gcs_address"), py::arg("resource"), py::arg("filters"), py::arg("limit"),
        py::arg("detail"), py::arg("timeout"));
  m.def("state_get", &StateGet, py::arg("gcs_address"), py::arg("resource"), py::arg("id"), py::arg("timeout"));
  m.def("state_summarize", &StateSummarize, py::arg("gcs_address"), py::arg("resource"), py::arg("timeout"));
  m.def("state_timeline", &StateTimeline, py::arg("gcs_address"), py::arg("timeout"));
  m.attr("OBJECT_ID_SIZE") = ObjectId::kSize;
  m.attr("MAX_INLINE_SIZE") = kMaxInlineObjectSize;
}
