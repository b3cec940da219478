// Actors: a C++ object living in a worker process of its own, called through a handle.
//
//   class Counter {
//    public:
//     static Counter* Create(int start) { return new Counter(start); }   // a factory
//     int Add(int n) { return value_ += n; }
//     int Get() const { return value_; }
//    private:
//     explicit Counter(int start) : value_(start) {}
//     int value_;
//   };
//   SHOAL_REMOTE(Counter::Create, &Counter::Add, &Counter::Get);   // at namespace scope
//
//   shoal::ActorHandle<Counter> c = shoal::Actor(Counter::Create).SetMaxRestarts(1).Remote(0);
//   shoal::ObjectRef<int> n = c.Task(&Counter::Add).Remote(5);      // 5
//   auto same = shoal::GetActor<Counter>("x");                      // a named actor (SetName)
//   c.Kill();
//
// Factories are free functions or static members returning T* (the actor takes ownership);
// methods are member functions of T registered as "&T::Method" (under the name "T::Method").
// Parameters and results follow the rules of remote functions (shoal/remote.h): values, not
// pointers or ObjectRefs; an ObjectRef<P> argument is resolved to the P value; wrong counts or
// types do not compile.
//
// Semantics (DESIGN.md section 2):
//   - The GCS creates the actor on a worker leased for the actor's life: the factory runs there,
//     then the methods. One actor per worker process. With SetMaxConcurrency(n > 1) methods run
//     on n threads at once (T must then be thread-safe); otherwise one at a time.
//   - Calls from one caller (process) run in the order they were made.
//   - Resources: without SetResources the actor holds none while alive (as in Ray); with it,
//     exactly as for tasks (CPU 1 unless named).
//   - Lifetime: until Kill(), until its creator (the process that called Remote) exits, or for
//     a SetDetached(true) actor until Kill() or the cluster stops. Dropping handles does not
//     kill it. Its destructor is not run: the worker process ends.
//   - Failures: a method that throws makes its ref hold a TaskError (the actor carries on). When
//     the actor's worker or node dies it is restarted (its factory runs again, on a new worker)
//     up to SetMaxRestarts times; calls cut by the death are retried up to SetMaxTaskRetries
//     times. Calls on an actor dead for good (killed, restarts used up, factory threw) throw
//     ActorDiedError at Get, naming the cause.
//
// ActorHandle<T> is a value: copy it, store it, pass it to tasks and to other actors' methods as
// an argument (it travels as the actor id); the receiver calls the same actor.
// Threading: any thread after shoal::Init, also inside tasks and actor methods.
// Errors: Remote() / Kill() / GetActor throw Error (unregistered factory or method, bad options,
// a taken name, no such actor); method failures reach Get as above.
#pragma once

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "shoal/errors.h"
#include "shoal/internal.h"
#include "shoal/object_ref.h"
#include "shoal/remote.h"
#include "shoal/scheduling.h"
#include "shoal/serialization.h"

namespace shoal {

template <typename T>
class ActorHandle;

namespace internal {

// What a member function pointer is: its class, result and parameters.
template <typename M>
struct MethodTraits {
  static constexpr bool kIsMethod = false;
};
#define SHOAL_INTERNAL_METHOD_TRAITS(qualifiers)                \
  template <typename C, typename R, typename... Ps>             \
  struct MethodTraits<R (C::*)(Ps...) qualifiers> {             \
    static constexpr bool kIsMethod = true;                     \
    using Class = C;                                            \
    using Result = R;                                           \
    using Params = std::tuple<Ps...>;                           \
  };
SHOAL_INTERNAL_METHOD_TRAITS()
SHOAL_INTERNAL_METHOD_TRAITS(const)
SHOAL_INTERNAL_METHOD_TRAITS(noexcept)
SHOAL_INTERNAL_METHOD_TRAITS(const noexcept)
#undef SHOAL_INTERNAL_METHOD_TRAITS

// A member pointer cannot become a FunctionKey: it is keyed by its bytes and its type.
template <typename M>
MethodKey MethodKeyOf(M method) {
  static_assert(MethodTraits<M>::kIsMethod);
  MethodKey key(typeid(M).name());
  key.push_back('#');
  key.append(reinterpret_cast<const char*>(&method), sizeof(M));
  return key;
}

template <typename T, typename... Ps>
void RegisterFactory(const std::string& name, T* (*factory)(Ps...)) {
  static_assert(std::is_class_v<T>, "an actor factory returns a pointer to a class type");
  (CheckParameter<Ps>(), ...);
  Invoker invoker = [factory, name](const std::vector<std::string>& args) -> std::string {
    auto call = [factory, &name](auto&&... values) -> int {
      T* instance = factory(std::forward<decltype(values)>(values)...);
      if (instance == nullptr) throw Error("the actor factory " + name + " returned null");
      SetActorInstance(std::shared_ptr<void>(instance, [](void* p) { delete static_cast<T*>(p); }), typeid(T));
      return 0;
    };
    InvokeUnpacked<int, Ps...>(call, name, args, std::index_sequence_for<Ps...>{});
    return PackNil();
  };
  RegisterFunction(name, KeyOf(factory), std::move(invoker));
}

// A generator method (first parameter Yield<T>&, shoal/generator.h): the values go out through
// the Yield as they come; the call's own result is nil.
template <typename C, typename T, typename... Rest, typename M>
Invoker MakeGeneratorMethodInvoker(M method, std::string name, TypeList<Rest...>) {
  (CheckParameter<Rest>(), ...);
  return [method, name = std::move(name)](const std::vector<std::string>& args) -> std::string {
    C* self = static_cast<C*>(ActorInstance(typeid(C), name));
    Yield<T> out;
    auto call = [self, method, &out](auto&&... values) {
      (self->*method)(out, std::forward<decltype(values)>(values)...);
    };
    return InvokeUnpacked<void, Rest...>(call, name, args, std::index_sequence_for<Rest...>{});
  };
}

template <typename C, typename R, typename... Ps, typename M>
Invoker MakeMethodInvoker(M method, std::string name, std::tuple<Ps...>*) {
  if constexpr (kIsGenerator<Ps...>) {
    static_assert(std::is_void_v<R>, "a generator method (first parameter shoal::Yield<T>&) returns void");
    return MakeGeneratorMethodInvoker<C, typename GeneratorParams<Ps...>::Item>(
        method, std::move(name), typename GeneratorParams<Ps...>::Args{});
  } else {
    (CheckParameter<Ps>(), ...);
    return [method, name = std::move(name)](const std::vector<std::string>& args) -> std::string {
      C* self = static_cast<C*>(ActorInstance(typeid(C), name));
      auto call = [self, method](auto&&... values) -> R {
        return (self->*method)(std::forward<decltype(values)>(values)...);
      };
      return InvokeUnpacked<R, Ps...>(call, name, args, std::index_sequence_for<Ps...>{});
    };
  }
}

template <typename M>
void RegisterMethodPointer(const std::string& name, M method) {
  using Traits = MethodTraits<M>;
  static_assert(Traits::kIsMethod, "SHOAL_REMOTE(&Class::Method) takes a member function");
  if constexpr (Traits::kIsMethod) {
    RegisterMethod(name, MethodKeyOf(method),
                   MakeMethodInvoker<typename Traits::Class, typename Traits::Result>(
                       method, name, static_cast<typename Traits::Params*>(nullptr)));
  }
}

// Packs each argument for parameters Ps... (compile-time checked as for tasks).
template <typename... Ps>
struct ArgumentPacker {
  template <typename... As>
  static std::vector<TaskArgument> Pack(As&&... args) {
    static_assert(sizeof...(As) == sizeof...(Ps),
                  "Remote() takes exactly as many arguments as the actor's factory or method");
    std::vector<TaskArgument> packed;
    if constexpr (sizeof...(As) == sizeof...(Ps)) {
      (CheckParameter<Ps>(), ...);
      (CheckArgument<Ps, As>(), ...);
      packed.reserve(sizeof...(As));
      (packed.push_back(MakeArgument<Ps>(std::forward<As>(args))), ...);
    }
    return packed;
  }
};

template <typename Tuple>
struct PackerFor;
template <typename... Ps>
struct PackerFor<std::tuple<Ps...>> {
  using type = ArgumentPacker<Ps...>;
};
template <typename... Ps>
struct PackerFor<TypeList<Ps...>> {
  using type = ArgumentPacker<Ps...>;
};

// Whether a method's parameter tuple starts with Yield<T>& (a generator method), and then its
// item type and the parameters after the Yield.
template <typename Tuple>
struct MethodGenerator {
  static constexpr bool kIs = false;
};
template <typename... Ps>
struct MethodGenerator<std::tuple<Ps...>> {
  static constexpr bool kIs = kIsGenerator<Ps...>;
  using Params = GeneratorParams<Ps...>;
};

// handle_data of C++ actors: what GetActor needs to rebuild a handle.
inline std::string ActorHandleData(int max_task_retries) {
  return Pack(std::map<std::string, int>{{"max_task_retries", max_task_retries}});
}

}  // namespace internal

// A call of one method of an actor, being prepared: handle.Task(&T::Method).Remote(args...).
template <typename T, typename M>
class ActorTaskCaller {
  using Traits = internal::MethodTraits<M>;
  using R = typename Traits::Result;

 public:
  using Result = std::conditional_t<std::is_void_v<R>, void, std::decay_t<R>>;

  ActorTaskCaller(internal::ActorIdBytes actor, M method)
      : actor_(actor), name_(internal::FindMethodName(internal::MethodKeyOf(method))) {}

  // Submits the call and returns at once with a ref to its result (for a generator method,
  // whose first parameter is Yield<T>&: an ObjectRefGenerator<T>, see shoal/generator.h, and the
  // arguments are those after the Yield). Throws Error when the method was not registered with
  // SHOAL_REMOTE(&T::Method), or before Init.
  template <typename... As>
  auto Remote(As&&... args) const {
    using Generator = internal::MethodGenerator<typename Traits::Params>;
    if constexpr (Generator::kIs) {
      using Params = typename Generator::Params;
      std::vector<internal::TaskArgument> packed =
          internal::PackerFor<typename Params::Args>::type::Pack(std::forward<As>(args)...);
      CheckRegistered();
      return ObjectRefGenerator<typename Params::Item>(
          internal::SubmitActorTask(actor_, *name_, std::move(packed), group_, /*streaming=*/true));
    } else {
      std::vector<internal::TaskArgument> packed =
          internal::PackerFor<typename Traits::Params>::type::Pack(std::forward<As>(args)...);
      CheckRegistered();
      return ObjectRef<Result>(internal::SubmitActorTask(actor_, *name_, std::move(packed), group_));
    }
  }
  // Runs the call in the actor's concurrency group `group` (ActorCreator::SetConcurrencyGroups);
  // a group the actor lacks fails the call (its ref throws Error naming the group).
  ActorTaskCaller& SetConcurrencyGroup(std::string group) {
    group_ = std::move(group);
    return *this;
  }

 private:
  void CheckRegistered() const {
    if (name_ == nullptr) {
      throw Error("shoal::ActorHandle::Task: this method (" + internal::TypeName<M>() +
                  ") is not a remote method; register it with SHOAL_REMOTE(&Class::Method) at namespace scope");
    }
  }

  internal::ActorIdBytes actor_;
  const std::string* name_;  // null when not registered
  std::string group_;
};

// A handle on a live (or dead) actor of class T. Default-made: nil (calls throw Error).
// Threading: a value; any thread.
template <typename T>
class ActorHandle {
 public:
  ActorHandle() { id_.fill(0xff); }
  // For the runtime: the actor `id`, whose calls cut by a restart are retried max_task_retries times.
  ActorHandle(internal::ActorIdBytes id, int max_task_retries) : id_(id), max_task_retries_(max_task_retries) {}

  // Starts a call of `method`, a member function of T registered with SHOAL_REMOTE(&T::Method).
  template <typename M>
  ActorTaskCaller<T, M> Task(M method) const {
    static_assert(internal::MethodTraits<M>::kIsMethod, "ActorHandle::Task takes a member function: &Class::Method");
    if constexpr (internal::MethodTraits<M>::kIsMethod) {
      static_assert(std::is_same_v<typename internal::MethodTraits<M>::Class, T>,
                    "this is not a method of the actor's class: Task(&T::Method) needs a member function "
                    "declared in T itself");
    }
    CheckNotNil();
    return ActorTaskCaller<T, M>(id_, method);
  }

  // Kills the actor through the GCS: its worker ends, calls waiting or made later throw
  // ActorDiedError. no_restart = false lets it restart if it has restarts left. Throws Error
  // when the GCS does not know the actor.
  void Kill(bool no_restart = true) const {
    CheckNotNil();
    internal::KillActor(id_, no_restart);
  }

  bool IsNil() const { return id_ == NilId(); }
  std::string Hex() const { return internal::Hex(id_); }
  const internal::ActorIdBytes& id() const { return id_; }
  int max_task_retries() const { return max_task_retries_; }
  friend bool operator==(const ActorHandle& a, const ActorHandle& b) { return a.id_ == b.id_; }

  // msgpack: [actor id (bin, 16 bytes), max_task_retries]. Unpacking follows the actor.
  template <typename Packer>
  void msgpack_pack(Packer& pk) const {
    pk.pack_array(2);
    pk.pack_bin(static_cast<uint32_t>(id_.size()));
    pk.pack_bin_body(reinterpret_cast<const char*>(id_.data()), static_cast<uint32_t>(id_.size()));
    pk.pack(max_task_retries_);
  }
  void msgpack_unpack(const msgpack::object& o) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 2 || o.via.array.ptr[0].type != msgpack::type::BIN ||
        o.via.array.ptr[0].via.bin.size != id_.size()) {
      throw msgpack::type_error();
    }
    std::memcpy(id_.data(), o.via.array.ptr[0].via.bin.ptr, id_.size());
    max_task_retries_ = o.via.array.ptr[1].as<int>();
    if (!IsNil()) internal::AddActorHandle(id_, max_task_retries_);
  }

 private:
  static internal::ActorIdBytes NilId() {
    internal::ActorIdBytes id;
    id.fill(0xff);
    return id;
  }
  void CheckNotNil() const {
    if (IsNil()) throw Error("this ActorHandle<" + internal::TypeName<T>() + "> is nil (default-made)");
  }

  internal::ActorIdBytes id_;
  int max_task_retries_ = 0;
};

// An actor being prepared: options, then Remote(args...). Made by shoal::Actor(factory).
template <typename T, typename... Ps>
class ActorCreator {
 public:
  explicit ActorCreator(T* (*factory)(Ps...)) : name_(internal::FindFunctionName(internal::KeyOf(factory))) {
    options_.class_name = internal::TypeName<T>();
  }

  // The resources the actor holds for its whole life, as for tasks (TaskCaller::SetResources:
  // CPU 1 unless named; a GPU fraction below 1 shares a device). Not called: none.
  ActorCreator& SetResources(std::map<std::string, double> resources) {
    options_.call.resources = std::move(resources);
    options_.call.resources_set = true;
    return *this;
  }
  // Times the actor is restarted after its worker or node dies (default 0; -1: no limit).
  ActorCreator& SetMaxRestarts(int max_restarts) {
    options_.max_restarts = max_restarts;
    return *this;
  }
  // Times a call cut by the actor's death is retried on the restarted actor (default 0; -1: always).
  ActorCreator& SetMaxTaskRetries(int max_task_retries) {
    options_.max_task_retries = max_task_retries;
    return *this;
  }
  // Method calls outside every concurrency group that may run at once, each on its own thread
  // (default 1).
  ActorCreator& SetMaxConcurrency(int max_concurrency) {
    options_.max_concurrency = max_concurrency;
    return *this;
  }
  // Ray's concurrency groups: {"io": 2, "compute": 4}. A call made with
  // Task(&T::M).SetConcurrencyGroup("io") runs on the io group's threads, at most 2 at once,
  // whatever the other groups are doing. Limits must be at least 1.
  ActorCreator& SetConcurrencyGroups(std::map<std::string, int> groups) {
    options_.concurrency_groups = std::move(groups);
    return *this;
  }
  // A name GetActor<T>(name, namespace) finds, unique among live actors in its namespace.
  ActorCreator& SetName(std::string name) {
    options_.name = std::move(name);
    return *this;
  }
  ActorCreator& SetNamespace(std::string ray_namespace) {
    options_.ray_namespace = std::move(ray_namespace);
    return *this;
  }
  // Outlives its creator: lives until Kill() or until the cluster stops.
  ActorCreator& SetDetached(bool detached) {
    options_.detached = detached;
    return *this;
  }
  // With SetName: when a live actor has that name already, answer a handle to it.
  ActorCreator& SetGetIfExists(bool get_if_exists) {
    options_.get_if_exists = get_if_exists;
    return *this;
  }
  // Keeps a label selector set before unless `strategy` has one of its own.
  ActorCreator& SetSchedulingStrategy(SchedulingStrategy strategy) {
    if (strategy.label_selector.empty()) strategy.label_selector = std::move(options_.call.strategy.label_selector);
    options_.call.strategy = std::move(strategy);
    options_.call.strategy_set = true;
    return *this;
  }
  // Hosts the actor only on a node whose labels match `selector` (see SchedulingStrategy).
  ActorCreator& SetLabelSelector(std::map<std::string, std::string> selector) {
    options_.call.strategy.label_selector = std::move(selector);
    return *this;
  }
  // Hosts the actor in bundle `bundle_index` (-1: any bundle) of `placement_group_id` (hex).
  ActorCreator& SetPlacementGroup(const std::string& placement_group_id, int bundle_index = -1) {
    return SetSchedulingStrategy(SchedulingStrategy::InPlacementGroup(placement_group_id, bundle_index));
  }

  // Registers the actor and returns its handle at once (before the factory has run); calls
  // made meanwhile wait for it. Throws Error when the factory was not registered with
  // SHOAL_REMOTE, for bad options or a taken name, or before Init.
  template <typename... As>
  ActorHandle<T> Remote(As&&... args) const {
    std::vector<internal::TaskArgument> packed = internal::ArgumentPacker<Ps...>::Pack(std::forward<As>(args)...);
    if (name_ == nullptr) {
      throw Error("shoal::Actor: this factory (" + internal::TypeName<T* (*)(Ps...)>() +
                  ") is not registered; register it with SHOAL_REMOTE(name) at namespace scope");
    }
    return ActorHandle<T>(internal::CreateActor(*name_, std::move(packed), options_), options_.max_task_retries);
  }

 private:
  const std::string* name_;  // null when not registered
  internal::ActorCallOptions options_;
};

// Starts the creation of an actor made by `factory` (a function returning T*):
// shoal::Actor(factory).SetName("x").Remote(args...).
template <typename T, typename... Ps>
ActorCreator<T, Ps...> Actor(T* (*factory)(Ps...)) {
  static_assert(std::is_class_v<T>, "an actor factory returns a pointer to a class type (T*)");
  return ActorCreator<T, Ps...>(factory);
}
template <typename R, typename... Ps>
void Actor(R (*)(Ps...)) requires(!std::is_pointer_v<R>) {
  static_assert(std::is_pointer_v<R>, "shoal::Actor needs an actor factory: a function returning T*");
}

// A handle to the live actor named `name` in `ray_namespace`. Throws Error when there is none,
// or when it is not an actor of class T.
template <typename T>
ActorHandle<T> GetActor(const std::string& name, const std::string& ray_namespace = "default") {
  internal::NamedActor found = internal::GetNamedActor(name, ray_namespace);
  if (found.class_name != internal::TypeName<T>()) {
    throw Error("shoal::GetActor: the actor '" + name + "' in namespace '" + ray_namespace + "' is a " +
                found.class_name + ", not a " + internal::TypeName<T>());
  }
  internal::AddActorHandle(found.id, found.max_task_retries);
  return ActorHandle<T>(found.id, found.max_task_retries);
}

}  // namespace shoal
