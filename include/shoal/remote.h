// Remote functions: SHOAL_REMOTE registers them, shoal::Task(fn).Remote(args...) runs them.
//
//   int Add(int a, int b) { return a + b; }
//   SHOAL_REMOTE(Add);                                   // at namespace scope, once per function
//   shoal::ObjectRef<int> r = shoal::Task(Add).Remote(1, 2);
//   auto r2 = shoal::Task(Add).SetResources({{"CPU", 1}, {"GPU", 0.5}}).SetMaxRetries(2).Remote(r, 3);
//
// A remote function is a free function (or static member) whose parameters and result are
// msgpack-able values (see shoal/serialization.h); references to values are fine, pointers and
// ObjectRefs are not. Each argument given to Remote() is converted to its parameter's type and
// packed on its own; an ObjectRef<T> argument is passed as a reference and the callee receives
// its value. Wrong argument counts or types are compile errors.
//
// SHOAL_REMOTE(A, B, ...) registers each function under its name as written ("Add",
// "ns::Mul"; actor factories and &Class::Method too, see shoal/actor.h): drivers and workers run the same registrations, because workers are this same
// executable (see shoal/api.h). A function that throws makes its task fail with TaskError at
// Get (its C++ type name and what()); it is not retried unless SetRetryExceptions(true).
// Threading: Task(...) and Remote() may be called from any thread after shoal::Init, also
// from inside a running task.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "shoal/errors.h"
#include "shoal/generator.h"
#include "shoal/internal.h"
#include "shoal/object_ref.h"
#include "shoal/scheduling.h"
#include "shoal/serialization.h"

#define SHOAL_INTERNAL_CONCAT2(a, b) a##b
#define SHOAL_INTERNAL_CONCAT(a, b) SHOAL_INTERNAL_CONCAT2(a, b)

// Registers one or more functions as remote functions. Use at namespace scope.
#define SHOAL_REMOTE(...)                                                               \
  [[maybe_unused]] static const bool SHOAL_INTERNAL_CONCAT(shoal_remote_registered_,    \
                                                           __COUNTER__) =               \
      ::shoal::internal::RegisterFunctions(#__VA_ARGS__, __VA_ARGS__)

namespace shoal {
namespace internal {

template <typename Fn>
struct FunctionTraits {
  static_assert(sizeof(Fn) == 0, "SHOAL_REMOTE takes functions, static member functions and &Class::Method");
};
template <typename R, typename... Ps>
struct FunctionTraits<R (*)(Ps...)> {
  using Result = R;
};
template <typename R, typename... Ps>
struct FunctionTraits<R (*)(Ps...) noexcept> {
  using Result = R;
};

template <typename R, typename... Ps>
FunctionKey KeyOf(R (*fn)(Ps...)) {
  return reinterpret_cast<FunctionKey>(fn);
}

template <typename P>
constexpr void CheckParameter() {
  using V = std::decay_t<P>;
  static_assert(!std::is_pointer_v<V>,
                "a remote function's parameters must be values or references to values, not pointers");
  static_assert(!IsObjectRef<V>::value,
                "a remote function receives values, not ObjectRefs: declare the parameter as T and "
                "pass an ObjectRef<T> to Remote()");
}

// Hands a decoded argument to a parameter of type P: by lvalue to reference parameters, moved
// into value parameters.
template <typename P, typename V>
decltype(auto) PassArgument(V& value) {
  if constexpr (std::is_lvalue_reference_v<P>) {
    return (value);
  } else {
    return std::move(value);
  }
}

// Unpacks `args` into the parameter types Ps..., calls `call` with them and packs its result
// (R). `name` names the callee in errors.
template <typename R, typename... Ps, typename Call, size_t... I>
std::string InvokeUnpacked(const Call& call, const std::string& name, const std::vector<std::string>& args,
                           std::index_sequence<I...>) {
  if (args.size() != sizeof...(Ps)) {
    throw Error(name + " takes " + std::to_string(sizeof...(Ps)) + " arguments, got " + std::to_string(args.size()));
  }
  std::tuple<std::decay_t<Ps>...> values{Unpack<std::decay_t<Ps>>(
      args[I], [&name] { return "argument " + std::to_string(I + 1) + " of " + name; })...};
  (void)values;
  if constexpr (std::is_void_v<R>) {
    call(PassArgument<Ps>(std::get<I>(values))...);
    return PackNil();
  } else {
    return Pack(call(PassArgument<Ps>(std::get<I>(values))...));
  }
}

template <typename R, typename... Ps>
Invoker MakeInvoker(R (*fn)(Ps...), std::string name) {
  (CheckParameter<Ps>(), ...);
  return [fn, name = std::move(name)](const std::vector<std::string>& args) -> std::string {
    auto call = [fn](auto&&... values) -> R { return fn(std::forward<decltype(values)>(values)...); };
    return InvokeUnpacked<R, Ps...>(call, name, args, std::index_sequence_for<Ps...>{});
  };
}

// A generator function (shoal/generator.h): the values go out through the Yield as they come;
// the task's own result is nil.
template <typename T, typename... Ps>
Invoker MakeInvoker(void (*fn)(Yield<T>&, Ps...), std::string name) {
  (CheckParameter<Ps>(), ...);
  return [fn, name = std::move(name)](const std::vector<std::string>& args) -> std::string {
    Yield<T> out;
    auto call = [fn, &out](auto&&... values) { fn(out, std::forward<decltype(values)>(values)...); };
    return InvokeUnpacked<void, Ps...>(call, name, args, std::index_sequence_for<Ps...>{});
  };
}

// The parameters of a remote function after its Yield<T>& (generators), as a type list.
template <typename... Ps>
struct TypeList {};
template <typename... Ps>
struct GeneratorParams {};
template <typename T, typename... Rest>
struct GeneratorParams<Yield<T>&, Rest...> {
  using Item = T;
  using Args = TypeList<Rest...>;
};
template <typename... Ps>
inline constexpr bool kIsGenerator = false;
template <typename T, typename... Rest>
inline constexpr bool kIsGenerator<Yield<T>&, Rest...> = true;

// Actor factories (functions returning T*) and methods (member function pointers) register
// through shoal/actor.h, included at the end of this header.
template <typename T, typename... Ps>
void RegisterFactory(const std::string& name, T* (*factory)(Ps...));
template <typename M>
void RegisterMethodPointer(const std::string& name, M method);

template <typename Fn>
void RegisterOne(const std::string& name, Fn fn) {
  if constexpr (std::is_member_function_pointer_v<Fn>) {
    RegisterMethodPointer(name, fn);
  } else if constexpr (std::is_pointer_v<typename FunctionTraits<Fn>::Result>) {
    RegisterFactory(name, fn);
  } else {
    RegisterFunction(name, KeyOf(fn), MakeInvoker(fn, name));
  }
}

// What SHOAL_REMOTE expands to: `names` is the macro's argument list as written.
template <typename... Fns>
bool RegisterFunctions(const char* names, Fns... fns) {
  std::vector<std::string> split = SplitNames(names);
  if (split.size() != sizeof...(Fns)) {
    ReportRegistrationError(std::string("SHOAL_REMOTE(") + names + "): cannot tell the function names apart");
    return false;
  }
  size_t i = 0;
  ((RegisterOne(split[i], fns), ++i), ...);
  return true;
}

template <typename P, typename A>
constexpr void CheckArgument() {
  using V = std::decay_t<P>;
  using Given = std::remove_cvref_t<A>;
  if constexpr (IsObjectRef<Given>::value) {
    static_assert(std::is_same_v<typename Given::value_type, V>,
                  "an ObjectRef<T> argument needs a parameter of type T (or const T&)");
  } else {
    static_assert(std::is_convertible_v<A&&, V>,
                  "an argument of Remote() does not convert to the remote function's parameter type");
  }
}

template <typename P, typename A>
TaskArgument MakeArgument(A&& arg) {
  using V = std::decay_t<P>;
  using Given = std::remove_cvref_t<A>;
  if constexpr (IsObjectRef<Given>::value) {
    return {{}, arg.id(), true};
  } else if constexpr (std::is_same_v<Given, V>) {
    return {Pack(arg), NilObjectId(), false};
  } else if constexpr (std::is_convertible_v<A&&, V>) {
    return {Pack(static_cast<V>(std::forward<A>(arg))), NilObjectId(), false};
  } else {
    return {};  // CheckArgument has already failed the build
  }
}

}  // namespace internal

// A call being prepared: options, then Remote(args...). Made by shoal::Task(fn).
template <typename R, typename... Ps>
class TaskCaller {
 public:
  using Result = std::conditional_t<std::is_void_v<R>, void, std::decay_t<R>>;

  explicit TaskCaller(R (*fn)(Ps...)) : name_(internal::FindFunctionName(internal::KeyOf(fn))) {}

  // The resources the task holds while it runs, e.g. {{"CPU", 1}, {"GPU", 0.5}, {"TPU", 2}}.
  // CPU defaults to 1 unless named here ({"CPU", 0} for none). A GPU amount below 1 shares a
  // device; 1 or more must be whole. Checked at Remote(): negative, NaN or 1.5 GPUs throw Error.
  TaskCaller& SetResources(std::map<std::string, double> resources) {
    options_.resources = std::move(resources);
    options_.resources_set = true;
    return *this;
  }
  // Times the task is run again when its worker or node dies (default 3; 0: never).
  TaskCaller& SetMaxRetries(int max_retries) {
    options_.max_retries = max_retries;
    return *this;
  }
  // Also retry (within max_retries) when the function throws.
  TaskCaller& SetRetryExceptions(bool retry) {
    options_.retry_exceptions = retry;
    return *this;
  }
  // Keeps a label selector set before unless `strategy` has one of its own.
  TaskCaller& SetSchedulingStrategy(SchedulingStrategy strategy) {
    if (strategy.label_selector.empty()) strategy.label_selector = std::move(options_.strategy.label_selector);
    options_.strategy = std::move(strategy);
    options_.strategy_set = true;
    return *this;
  }
  // Runs it only on nodes whose labels match `selector` (see SchedulingStrategy), with whatever
  // strategy is set.
  TaskCaller& SetLabelSelector(std::map<std::string, std::string> selector) {
    options_.strategy.label_selector = std::move(selector);
    return *this;
  }
  // Runs it in bundle `bundle_index` (-1: any bundle) of `placement_group_id` (hex, see
  // shoal/placement_group.h): as SetSchedulingStrategy(SchedulingStrategy::InPlacementGroup(...)).
  TaskCaller& SetPlacementGroup(const std::string& placement_group_id, int bundle_index = -1) {
    return SetSchedulingStrategy(SchedulingStrategy::InPlacementGroup(placement_group_id, bundle_index));
  }

  // Submits the task and returns at once with a ref to its result (for a generator function,
  // whose first parameter is Yield<T>&: an ObjectRefGenerator<T>, see shoal/generator.h, and the
  // arguments are those after the Yield). Throws Error when the function was not registered with
  // SHOAL_REMOTE, for bad options, or before Init.
  template <typename... As>
  auto Remote(As&&... args) const {
    if constexpr (internal::kIsGenerator<Ps...>) {
      return RemoteGenerator(typename internal::GeneratorParams<Ps...>::Args{}, std::forward<As>(args)...);
    } else {
      return RemoteTask(std::forward<As>(args)...);
    }
  }

 private:
  template <typename... As>
  ObjectRef<Result> RemoteTask(As&&... args) const {
    static_assert(sizeof...(As) == sizeof...(Ps),
                  "Remote() takes exactly as many arguments as the remote function");
    static_assert(!std::is_pointer_v<R>,
                  "this function returns a pointer: it is an actor factory; create the actor with "
                  "shoal::Actor(factory).Remote(...)");
    if constexpr (sizeof...(As) == sizeof...(Ps) && !std::is_pointer_v<R>) {
      std::vector<internal::TaskArgument> packed = PackArguments<Ps...>("function", std::forward<As>(args)...);
      return ObjectRef<Result>(internal::SubmitTask(*name_, std::move(packed), options_));
    } else {
      return {};
    }
  }

  // The arguments, each converted to its parameter (Qs...) and packed, after the checks every
  // call makes; throws Error when the callee (a `what`) was not registered.
  template <typename... Qs, typename... As>
  std::vector<internal::TaskArgument> PackArguments(const char* what, As&&... args) const {
    (internal::CheckParameter<Qs>(), ...);
    (internal::CheckArgument<Qs, As>(), ...);
    if (name_ == nullptr) {
      throw Error(std::string("shoal::Task: this ") + what + " (" + internal::TypeName<R (*)(Ps...)>() +
                  ") is not a remote function; register it with SHOAL_REMOTE(name) at namespace scope");
    }
    std::vector<internal::TaskArgument> packed;
    packed.reserve(sizeof...(As));
    (packed.push_back(internal::MakeArgument<Qs>(std::forward<As>(args))), ...);
    return packed;
  }

  template <typename... Rest, typename... As>
  auto RemoteGenerator(internal::TypeList<Rest...>, As&&... args) const {
    using Item = typename internal::GeneratorParams<Ps...>::Item;
    static_assert(sizeof...(As) == sizeof...(Rest),
                  "Remote() of a generator takes exactly the arguments after its Yield<T>&");
    if constexpr (sizeof...(As) == sizeof...(Rest)) {
      std::vector<internal::TaskArgument> packed = PackArguments<Rest...>("generator", std::forward<As>(args)...);
      internal::CallOptions options = options_;
      options.streaming = true;
      return ObjectRefGenerator<Item>(internal::SubmitTask(*name_, std::move(packed), options));
    } else {
      return ObjectRefGenerator<Item>(internal::NewObject{});
    }
  }

  const std::string* name_;  // null when not registered
  internal::CallOptions options_;
};

// Starts a call of the remote function `fn`: Task(fn).Remote(args...).
template <typename R, typename... Ps>
TaskCaller<R, Ps...> Task(R (*fn)(Ps...)) {
  return TaskCaller<R, Ps...>(fn);
}

}  // namespace shoal

#include "shoal/actor.h"  // actors build on this header; see there
