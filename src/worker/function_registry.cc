#include "src/worker/function_registry.h"

#include <unordered_map>

#include "absl/synchronization/mutex.h"

namespace shoal {
namespace {

struct Registry {
  absl::Mutex mu;
  // unordered_map: node-based, so pointers to its values survive rehashing.
  std::unordered_map<std::string, TaskFunction> functions ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // never destroyed: used during static init and exit
  return *registry;
}

}  // namespace

bool RegisterTaskFunction(const std::string& name, TaskFunction fn) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  return r.functions.emplace(name, std::move(fn)).second;
}

const TaskFunction* FindTaskFunction(const std::string& name) {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto it = r.functions.find(name);
  return it == r.functions.end() ? nullptr : &it->second;
}

}  // namespace shoal
