// The seam between the API's templates (include/shoal/*.h) and the runtime (src/api/). Not for
// user code: everything here may change. Ids travel as raw bytes so that the public headers need
// nothing but the standard library and msgpack.
// Threading: every function may be called from any thread once shoal::Init has returned, except
// where noted. Errors: these functions throw the exceptions of shoal/errors.h.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include "shoal/scheduling.h"

namespace shoal::internal {

inline constexpr size_t kObjectIdSize = 28;
using ObjectIdBytes = std::array<uint8_t, kObjectIdSize>;
inline constexpr ObjectIdBytes NilObjectId() {
  ObjectIdBytes id{};
  for (auto& b : id) b = 0xff;
  return id;
}
std::string Hex(const ObjectIdBytes& id);

// Each Init starts a new epoch; a reference only counts in the epoch that made it (so a ref
// that outlives Shutdown is inert). Epoch 0 means "holds no reference".
void AddReference(const ObjectIdBytes& id, uint64_t epoch);
void RemoveReference(const ObjectIdBytes& id, uint64_t epoch);

// An object the runtime just made, with one local reference already counted for the caller.
struct NewObject {
  ObjectIdBytes id;
  uint64_t epoch;
};

struct TaskArgument {
  std::string value;   // msgpack bytes, when !is_ref
  ObjectIdBytes ref;   // when is_ref: the callee receives this object's value
  bool is_ref = false;
};

struct CallOptions {
  std::map<std::string, double> resources;  // empty: {CPU: 1}
  bool resources_set = false;
  int max_retries = 3;
  bool retry_exceptions = false;
  SchedulingStrategy strategy;
  bool strategy_set = false;  // a strategy was named (else a captured placement group applies)
  bool streaming = false;     // a generator task (shoal/generator.h)
};

// Submits `name(args...)`; throws shoal::Error for bad options or when not initialized.
NewObject SubmitTask(const std::string& name, std::vector<TaskArgument> args, const CallOptions& options);
NewObject PutBytes(std::string bytes);
// One value per id, in order. Throws the first failure in id order: TaskError,
// WorkerCrashedError, GetTimeoutError (timeout_us < 0 waits forever) or Error.
std::vector<std::string> GetBytes(const std::vector<ObjectIdBytes>& ids, int64_t timeout_us);
// A ready flag per id once `num_ready` are ready or the timeout passed.
std::vector<bool> WaitReady(const std::vector<ObjectIdBytes>& ids, int num_ready, int64_t timeout_us);

// Generator tasks (shoal/generator.h), by the task's own return. GeneratorNext answers the next
// item (its reference counted for the caller), or found=false once the generator ended and
// every item was taken; GetTimeoutError past `timeout_us` (< 0 waits forever).
struct NextItem {
  bool found = false;
  NewObject item{};
};
NextItem GeneratorNext(const ObjectIdBytes& generator, uint64_t epoch, int64_t timeout_us);
// The caller is done with it: items not taken are freed. No-op in another epoch.
void ReleaseGenerator(const ObjectIdBytes& generator, uint64_t epoch) noexcept;
// Inside a generator task: sends the packed value as item `index` to the task's caller; waits
// while the caller is too far behind. Throws Error when the caller cannot be reached.
void ReportGeneratorItem(int64_t index, std::string packed);

// Remote functions. A FunctionKey is the function's address; the invoker unpacks the
// arguments, calls the function and packs its result, letting exceptions through.
using FunctionKey = void (*)();
using Invoker = std::function<std::string(const std::vector<std::string>& args)>;
// Static-initialization safe. Conflicting names are reported by shoal::Init.
void RegisterFunction(const std::string& name, FunctionKey key, Invoker invoker);
// The name `key` was registered under, or null. The string lives as long as the process.
const std::string* FindFunctionName(FunctionKey key);
// A SHOAL_REMOTE that could not register, reported by shoal::Init. Static-initialization safe.
void ReportRegistrationError(const std::string& message);
// Actors (shoal/actor.h). Ids travel as raw bytes, like object ids.
inline constexpr size_t kActorIdSize = 16;
using ActorIdBytes = std::array<uint8_t, kActorIdSize>;
std::string Hex(const ActorIdBytes& id);

struct ActorCallOptions {
  CallOptions call;            // resources (unset: the actor holds none while alive), strategy
  std::string class_name;      // the C++ type, for errors and listings
  std::string name;            // "" for an unnamed actor
  std::string ray_namespace = "default";
  bool detached = false;
  bool get_if_exists = false;
  int max_restarts = 0;        // -1: no limit
  int max_task_retries = 0;    // -1: no limit
  int max_concurrency = 1;
  std::map<std::string, int> concurrency_groups;  // name -> calls of the group at once
};
// Registers the actor with the GCS (which runs `factory` on the actor's worker) and answers
// its id at once; throws Error for bad options, a taken name, or before Init.
ActorIdBytes CreateActor(const std::string& factory, std::vector<TaskArgument> args, const ActorCallOptions& options);
// Calls `method` on the actor; the ref's value is the method's result, or its failure.
// `concurrency_group`: the actor's group the call runs in ("": the default group). `streaming`:
// a generator method (shoal/generator.h): the answer is the generator's own return.
NewObject SubmitActorTask(const ActorIdBytes& actor, const std::string& method, std::vector<TaskArgument> args,
                          const std::string& concurrency_group = "", bool streaming = false);
void KillActor(const ActorIdBytes& actor, bool no_restart);
struct NamedActor {
  ActorIdBytes id;
  std::string class_name;
  int max_task_retries = 0;
};
// Throws Error when no live actor has that name in that namespace.
NamedActor GetNamedActor(const std::string& name, const std::string& ray_namespace);
// A handle arrived in this process (deserialized): follow the actor. No-op before Init.
void AddActorHandle(const ActorIdBytes& actor, int max_task_retries);

// Actor methods are keyed by their member-pointer bytes plus the pointer's type name
// (MethodKeyOf in shoal/actor.h); registered like functions, under "Class::Method".
using MethodKey = std::string;
void RegisterMethod(const std::string& name, MethodKey key, Invoker invoker);
const std::string* FindMethodName(const MethodKey& key);

// The actor instance this worker process hosts (one per process), set by the factory's invoker
// when the actor's creation task runs. ActorInstance answers it when its type is `type`; throws
// Error naming `method` when this process hosts no actor, or one of another type.
void SetActorInstance(std::shared_ptr<void> instance, const std::type_info& type);
void* ActorInstance(const std::type_info& type, const std::string& method);

// Placement groups (shoal/placement_group.h). Ids travel as hex.
struct PlacementGroupData {
  std::string id;
  std::string name;
  std::string strategy;  // "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"
  std::string state;     // "PENDING", "CREATED", "REMOVED", "RESCHEDULING"
  std::vector<std::map<std::string, double>> bundles;
  std::vector<std::string> bundle_nodes;  // node id (hex) per bundle; "" while unplaced
};
// Throws Error for bad bundles, a bad strategy or a taken name.
std::string CreatePlacementGroup(const std::vector<std::map<std::string, double>>& bundles,
                                 const std::string& strategy, const std::string& name, bool detached);
void RemovePlacementGroup(const std::string& id);
// Throws Error when unknown (by id) or when no live group has the name.
PlacementGroupData GetPlacementGroupById(const std::string& id);
PlacementGroupData GetPlacementGroupByName(const std::string& name);
std::vector<PlacementGroupData> ListPlacementGroups();
// True once created, false when `timeout_seconds` passed first (negative: no limit); throws
// Error when it was removed.
bool WaitPlacementGroup(const std::string& id, double timeout_seconds);

// "Add, ns::Mul, Sum<int, 2>" -> {"Add", "ns::Mul", "Sum<int, 2>"} (commas inside <> or () kept).
std::vector<std::string> SplitNames(std::string_view list);

}  // namespace shoal::internal
