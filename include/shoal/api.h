// Shoal's C++ task API: run functions as tasks on a cluster and pass their results around.
//
//   #include <shoal/api.h>
//
//   int Add(int a, int b) { return a + b; }
//   SHOAL_REMOTE(Add);
//
//   int main(int argc, char** argv) {
//     shoal::Init();                                  // first thing in main: see below
//     shoal::ObjectRef<int> r = shoal::Task(Add).Remote(1, 2);
//     shoal::ObjectRef<int> s = shoal::Task(Add).Remote(r, 10);   // the callee gets 3
//     std::cout << *shoal::Get(s) << "\n";            // 13
//     shoal::Shutdown();
//   }
//
// Actors (objects living in a worker, called through ActorHandle<T>): see shoal/actor.h.
//
// How your functions reach the workers. Shoal runs tasks in worker processes that the raylet
// of each node starts. For C++ those workers are *your own executable*: a driver tells the
// cluster its real path (/proc/self/exe), and a raylet that needs a worker for this job runs
// that file with no arguments and SHOAL_WORKER_MODE=1 (plus the SHOAL_* variables that say
// which raylet and worker it is). In that process shoal::Init() does not return: it serves
// tasks until the raylet lets it go, then exits. So:
//   - call shoal::Init() at the top of main(), before anything with side effects (printing,
//     files, network). Pure work such as parsing flags may come first; a worker gets no
//     arguments, and Init() in a worker ignores its options;
//   - a worker runs the same static initializers as the driver, so SHOAL_REMOTE registrations
//     (at namespace scope) exist on both sides and functions are found by name;
//   - every node must see the executable at the same path: true for any number of raylets on
//     one machine, and for machines that share the build directory (NFS, the same image).
//   Relink or move the binary while a cluster runs old workers, and new workers run new code.
//   InitOptions::worker_command overrides the command (e.g. a wrapper script).
//
// Threading: Init and Shutdown from one thread, with no other Shoal call in flight; every
// other function from any thread in between (and inside tasks, which run on workers).
// Errors: exceptions from shoal/errors.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "shoal/actor.h"
#include "shoal/errors.h"
#include "shoal/internal.h"
#include "shoal/object_ref.h"
#include "shoal/placement_group.h"
#include "shoal/remote.h"
#include "shoal/scheduling.h"
#include "shoal/serialization.h"

namespace shoal {

struct InitOptions {
  // The cluster to join: its GCS as "host:port", or "auto" for the one `shoal start` last
  // started on this machine. Empty: $SHOAL_ADDRESS, else $RAY_ADDRESS, else start a local
  // single-node cluster for this driver (stopped again at Shutdown, or if this process dies).
  std::string address;
  // The local cluster's node, when Init starts one: -1 detects CPUs / GPUs. Declared GPUs
  // need no hardware (tasks see their indices in CUDA_VISIBLE_DEVICES).
  int num_cpus = -1;
  int num_gpus = -1;
  std::string resources;  // custom resources as JSON, e.g. R"({"TPU": 4})"
  // What raylets run to start a worker for this driver; empty: this executable.
  std::vector<std::string> worker_command;
};

// Connects this process to a cluster as a driver (see InitOptions), or, when a raylet started
// it as a worker (SHOAL_WORKER_MODE=1), serves tasks and exits without returning. Throws Error
// when already initialized, when the cluster cannot be reached or started, or when two
// different functions were registered under one name.
void Init(const InitOptions& options = {});

// Disconnects: the objects this process owns are freed, and a local cluster that Init started
// is stopped. Refs still alive become inert. Safe to call twice; runs at exit if not called.
void Shutdown();

bool IsInitialized();

// The hex id of the node this process runs on (a driver's node, or inside a task the worker's).
std::string CurrentNodeId();

namespace internal {

inline constexpr int64_t kForever = -1;

template <typename Rep, typename Period>
int64_t ToMicros(std::chrono::duration<Rep, Period> timeout) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
  return us < 0 ? 0 : static_cast<int64_t>(us);
}

template <typename T>
std::vector<ObjectIdBytes> IdsOf(const std::vector<ObjectRef<T>>& refs) {
  std::vector<ObjectIdBytes> ids;
  ids.reserve(refs.size());
  for (const ObjectRef<T>& ref : refs) ids.push_back(ref.id());
  return ids;
}

template <typename T>
std::shared_ptr<T> UnpackValue(const std::string& bytes, const ObjectIdBytes& id) {
  return std::make_shared<T>(Unpack<T>(bytes, [&id] { return "the value of object " + Hex(id); }));
}

template <typename T>
using GetResult = std::conditional_t<std::is_void_v<T>, void, std::shared_ptr<T>>;

template <typename T>
GetResult<T> GetOne(const ObjectRef<T>& ref, int64_t timeout_us) {
  std::vector<std::string> values = GetBytes({ref.id()}, timeout_us);
  if constexpr (!std::is_void_v<T>) return UnpackValue<T>(values[0], ref.id());
}

template <typename T>
std::conditional_t<std::is_void_v<T>, void, std::vector<std::shared_ptr<T>>> GetAll(
    const std::vector<ObjectRef<T>>& refs, int64_t timeout_us) {
  std::vector<std::string> values = GetBytes(IdsOf(refs), timeout_us);
  if constexpr (!std::is_void_v<T>) {
    std::vector<std::shared_ptr<T>> out;
    out.reserve(values.size());
    for (size_t i = 0; i < values.size(); ++i) out.push_back(UnpackValue<T>(values[i], refs[i].id()));
    return out;
  }
}

}  // namespace internal

// Blocks until the value is ready and returns it (for ObjectRef<void>, just waits). Throws
// TaskError if the task's function threw, WorkerCrashedError if its worker or node died on
// every attempt, GetTimeoutError when `timeout` passes first, Error for anything else.
template <typename T>
internal::GetResult<T> Get(const ObjectRef<T>& ref) {
  return internal::GetOne(ref, internal::kForever);
}
template <typename T, typename Rep, typename Period>
internal::GetResult<T> Get(const ObjectRef<T>& ref, std::chrono::duration<Rep, Period> timeout) {
  return internal::GetOne(ref, internal::ToMicros(timeout));
}
// Every value, in order; throws the first failure in order (as above).
template <typename T>
auto Get(const std::vector<ObjectRef<T>>& refs) {
  return internal::GetAll(refs, internal::kForever);
}
template <typename T, typename Rep, typename Period>
auto Get(const std::vector<ObjectRef<T>>& refs, std::chrono::duration<Rep, Period> timeout) {
  return internal::GetAll(refs, internal::ToMicros(timeout));
}

// Stores a copy of `value` in the cluster and returns a ref to it (to pass to many tasks
// without sending the value each time).
template <typename T>
ObjectRef<std::decay_t<T>> Put(const T& value) {
  return ObjectRef<std::decay_t<T>>(internal::PutBytes(internal::Pack(value)));
}

template <typename T>
struct WaitResult {
  std::vector<ObjectRef<T>> ready;      // at most num_ready, in the order given
  std::vector<ObjectRef<T>> not_ready;  // the rest, in the order given
};

// Blocks until `num_ready` of `refs` are ready (finished, successfully or not) or `timeout`
// passes, whichever is first; never throws for a failed task (Get it to see why).
// Throws Error unless 0 < num_ready <= refs.size().
template <typename T, typename Rep = int64_t, typename Period = std::milli>
WaitResult<T> Wait(const std::vector<ObjectRef<T>>& refs, int num_ready,
                   std::chrono::duration<Rep, Period> timeout = std::chrono::milliseconds(-1)) {
  int64_t timeout_us = timeout.count() < 0 ? internal::kForever : internal::ToMicros(timeout);
  std::vector<bool> flags = internal::WaitReady(internal::IdsOf(refs), num_ready, timeout_us);
  WaitResult<T> out;
  for (size_t i = 0; i < refs.size(); ++i) {
    bool take = flags[i] && out.ready.size() < static_cast<size_t>(num_ready);
    (take ? out.ready : out.not_ready).push_back(refs[i]);
  }
  return out;
}

}  // namespace shoal
