// Remote function registry; see function_registry.h.
#include "src/api/function_registry.h"

#include <cxxabi.h>

#include <atomic>
#include <cstdlib>
#include <exception>
#include <map>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "shoal/internal.h"
#include "shoal/serialization.h"
#include "src/worker/core_worker.h"

namespace shoal {
namespace api {
namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, internal::FunctionKey> by_name ABSL_GUARDED_BY(mu);
  // Node-based, so names handed out by FindFunctionName stay put.
  std::unordered_map<internal::FunctionKey, std::string> by_key ABSL_GUARDED_BY(mu);
  std::vector<std::string> problems ABSL_GUARDED_BY(mu);
  // Actor methods, keyed by member-pointer bytes and type (shoal/actor.h).
  std::map<std::string, internal::MethodKey> methods_by_name ABSL_GUARDED_BY(mu);
  std::unordered_map<internal::MethodKey, std::string> methods_by_key ABSL_GUARDED_BY(mu);
};

// The actor this process hosts: set once by its factory, read by every method call.
struct HostedActor {
  std::shared_ptr<void> instance;
  const std::type_info* type;
};
std::atomic<const HostedActor*> g_actor{nullptr};

// Never destroyed: registrations may run before, and lookups after, other static objects.
Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

TaskFunction Wrap(internal::Invoker invoker) {
  return [invoker = std::move(invoker)](const std::vector<std::string>& args) -> absl::StatusOr<std::string> {
    try {
      return invoker(args);
    } catch (...) {
      return StatusFromCurrentException();
    }
  };
}

}  // namespace

absl::Status CheckRegistrations() {
  Registry& r = TheRegistry();
  absl::MutexLock lock(&r.mu);
  if (r.problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrJoin(r.problems, "; "));
}

absl::Status StatusFromCurrentException() {
  std::string type, message;
  try {
    throw;
  } catch (const std::exception& e) {
    type = internal::Demangle(typeid(e).name());
    message = e.what();
  } catch (...) {
    const std::type_info* info = abi::__cxa_current_exception_type();
    type = info != nullptr ? internal::Demangle(info->name()) : "unknown exception";
  }
  return ErrorStatus(TaskException(std::move(type), std::move(message)));
}

}  // namespace api

namespace internal {

std::string Demangle(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || demangled == nullptr) return mangled;
  std::string out(demangled);
  std::free(demangled);
  return out;
}

void RegisterFunction(const std::string& name, FunctionKey key, Invoker invoker) {
  api::Registry& r = api::TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto [it, inserted] = r.by_name.emplace(name, key);
  if (!inserted) {
    if (it->second != key) {
      r.problems.push_back(absl::StrCat("two different functions were registered as '", name,
                                        "' with SHOAL_REMOTE; qualify one of them (SHOAL_REMOTE(ns::", name, "))"));
    }
    return;  // the same function registered twice (e.g. SHOAL_REMOTE in a header): fine
  }
  r.by_key.emplace(key, name);  // keeps the first name of a function registered under two
  if (!RegisterTaskFunction(name, api::Wrap(std::move(invoker)))) {
    r.problems.push_back(absl::StrCat("SHOAL_REMOTE(", name, "): the name is taken by another task function"));
  }
}

void RegisterMethod(const std::string& name, MethodKey key, Invoker invoker) {
  api::Registry& r = api::TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto [it, inserted] = r.methods_by_name.emplace(name, key);
  if (!inserted) {
    if (it->second != key) {
      r.problems.push_back(absl::StrCat("two different methods were registered as '", name, "' with SHOAL_REMOTE"));
    }
    return;  // the same method registered twice: fine
  }
  r.methods_by_key.emplace(key, name);
  if (!RegisterTaskFunction(name, api::Wrap(std::move(invoker)))) {
    r.problems.push_back(absl::StrCat("SHOAL_REMOTE(&", name, "): the name is taken by another task function"));
  }
}

const std::string* FindMethodName(const MethodKey& key) {
  api::Registry& r = api::TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto it = r.methods_by_key.find(key);
  return it == r.methods_by_key.end() ? nullptr : &it->second;
}

void SetActorInstance(std::shared_ptr<void> instance, const std::type_info& type) {
  // Set once and never freed (the process ends with its actor). The instance itself is
  // leaked too, so that no destructor runs at exit while method threads may still be running.
  auto* hosted = new api::HostedActor{std::move(instance), &type};
  const api::HostedActor* expected = nullptr;
  if (!api::g_actor.compare_exchange_strong(expected, hosted, std::memory_order_acq_rel)) {
    delete hosted;
    throw Error("this worker process already hosts an actor (" + Demangle(expected->type->name()) +
                "); one actor per worker");
  }
}

void* ActorInstance(const std::type_info& type, const std::string& method) {
  const api::HostedActor* actor = api::g_actor.load(std::memory_order_acquire);
  if (actor == nullptr) {
    throw Error("cannot run the actor method " + method +
                ": this worker hosts no actor (an actor method is called through an ActorHandle)");
  }
  if (*actor->type != type) {
    throw Error("cannot run the actor method " + method + ": it is a method of " + Demangle(type.name()) +
                ", but this actor is a " + Demangle(actor->type->name()));
  }
  return actor->instance.get();
}

const std::string* FindFunctionName(FunctionKey key) {
  api::Registry& r = api::TheRegistry();
  absl::MutexLock lock(&r.mu);
  auto it = r.by_key.find(key);
  return it == r.by_key.end() ? nullptr : &it->second;
}

void ReportRegistrationError(const std::string& message) {
  api::Registry& r = api::TheRegistry();
  absl::MutexLock lock(&r.mu);
  r.problems.push_back(message);
}

std::vector<std::string> SplitNames(std::string_view list) {
  std::vector<std::string> names;
  std::string current;
  int depth = 0;
  auto flush = [&] {
    absl::string_view name = absl::StripAsciiWhitespace(current);
    if (!name.empty() && name.front() == '&') name = absl::StripLeadingAsciiWhitespace(name.substr(1));
    names.emplace_back(name);
    current.clear();
  };
  for (char c : list) {
    if (c == '<' || c == '(' || c == '[') ++depth;
    if (c == '>' || c == ')' || c == ']') --depth;
    if (c == ',' && depth == 0) {
      flush();
    } else {
      current += c;
    }
  }
  flush();
  return names;
}

}  // namespace internal
}  // namespace shoal
