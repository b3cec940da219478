// A driver for the actor integration tests (tests/integration/test_cpp_actors.py): each
// subcommand runs one scenario against the cluster at --address, prints JSON lines on stdout
// (the last one is the result) and exits 0 when its own checks passed.
//
//   shoal_actor_driver ordered --n 1000
//   shoal_actor_driver callers --callers 4 --calls 250
//   shoal_actor_driver gpu --actors 4 --gpu 0.5 --resource A
//   shoal_actor_driver die --max-restarts 1 [--resource W]   prints {"pid", "node"}, then waits
//                       for a line on stdin (the test kills the worker or raylet meanwhile)
//   shoal_actor_driver named-create --name x --namespace ns  (detached; exits)
//   shoal_actor_driver named-get --name x --namespace ns     (calls it, then kills it)
//   shoal_actor_driver named-create --no-detached; named-gone   (dies with its creator)
//   shoal_actor_driver cycles --n 1000 --batch 4
//   shoal_actor_driver strategies --node HEX   (SPREAD actors, node affinity to HEX)
//   shoal_actor_driver bad | concurrent | groups
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "shoal/api.h"
#include "src/common/flags.h"
#include "tests/cpp/driver_main.h"

namespace driver {

using Json = nlohmann::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Placement {
  std::string devices;
  std::string node;
  int pid;
  MSGPACK_DEFINE(devices, node, pid);
};

class Counter {
 public:
  static Counter* Create(int64_t start) { return new Counter(start); }
  // Throws `error` unless it is empty.
  static Counter* CreateOrThrow(int64_t start, const std::string& error) {
    if (!error.empty()) throw std::runtime_error(error);
    return new Counter(start);
  }
  int64_t Add(int64_t n) { return value_ += n; }
  int64_t Get() const { return value_; }
  Placement Where() const {
    const char* devices = std::getenv("CUDA_VISIBLE_DEVICES");
    return {devices != nullptr ? devices : "(unset)", shoal::CurrentNodeId(), static_cast<int>(getpid())};
  }
  int64_t Fail(const std::string& why) { throw std::invalid_argument(why); }
  // (start ms, end ms) of a call that sleeps `ms`.
  std::pair<int64_t, int64_t> Sleep(int64_t ms) {
    int64_t start = NowMs();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return {start, NowMs()};
  }
  int64_t Stamp() const { return NowMs(); }
  // A generator method: n values, each the counter after adding `step`; the state stays.
  void Steps(shoal::Yield<int64_t>& out, int64_t n, int64_t step) {
    for (int64_t i = 0; i < n; ++i) out(value_ += step);
  }
  // Yields two blocks of text, then throws.
  void Broken(shoal::Yield<std::string>& out) {
    out("one");
    out("two");
    throw std::runtime_error("the method's generator broke");
  }

 private:
  explicit Counter(int64_t start) : value_(start) {}
  int64_t value_;
};

// An actor that calls another actor through a handle it was given.
class Forwarder {
 public:
  static Forwarder* Create() { return new Forwarder; }
  int64_t Forward(shoal::ActorHandle<Counter> counter, int64_t calls) {
    std::vector<shoal::ObjectRef<int64_t>> refs;
    for (int64_t i = 0; i < calls; ++i) refs.push_back(counter.Task(&Counter::Add).Remote(1));
    shoal::Get(refs);
    return calls;
  }
};

// A task that calls an actor through a handle it was given: `calls` Add(1)s; answers how many.
int64_t CallCounter(shoal::ActorHandle<Counter> counter, int64_t calls) {
  std::vector<shoal::ObjectRef<int64_t>> refs;
  for (int64_t i = 0; i < calls; ++i) refs.push_back(counter.Task(&Counter::Add).Remote(1));
  shoal::Get(refs);
  return calls;
}

}  // namespace driver

SHOAL_REMOTE(driver::Counter::Create, driver::Counter::CreateOrThrow, &driver::Counter::Add, &driver::Counter::Get,
             &driver::Counter::Where, &driver::Counter::Fail, &driver::Counter::Sleep, &driver::Counter::Stamp,
             &driver::Counter::Steps, &driver::Counter::Broken);
SHOAL_REMOTE(driver::Forwarder::Create, &driver::Forwarder::Forward, driver::CallCounter);

namespace driver {
namespace {

struct Flags {
  std::string address;
  int64_t n = 1000;
  int64_t callers = 4;
  int64_t calls = 250;
  int64_t actors = 4;
  double gpu = 0.5;
  double cpu = 0;
  std::string resource;
  int64_t max_restarts = 0;
  std::string name = "counter";
  std::string ray_namespace = "default";
  int64_t batch = 10;
  bool detached = true;
  std::string node;
};

Json ToJson(const Placement& p) { return {{"cuda_visible_devices", p.devices}, {"node", p.node}, {"pid", p.pid}}; }

int Ordered(const Flags& f) {
  auto c = shoal::Actor(Counter::Create).Remote(int64_t{0});
  std::vector<shoal::ObjectRef<int64_t>> refs;
  refs.reserve(f.n);
  for (int64_t i = 0; i < f.n; ++i) refs.push_back(c.Task(&Counter::Add).Remote(1));
  auto values = shoal::Get(refs);
  int64_t wrong = 0;
  for (int64_t i = 0; i < f.n; ++i) wrong += *values[i] != i + 1;
  // A ref as a method argument: the method receives its value (n), so the counter doubles.
  int64_t doubled = *shoal::Get(c.Task(&Counter::Add).Remote(refs.back()));
  std::cout << Json{{"n", f.n}, {"wrong", wrong}, {"first", *values.front()}, {"last", *values.back()},
                    {"doubled", doubled}}
            << std::endl;
  c.Kill();
  return wrong == 0 ? 0 : 1;
}

int Callers(const Flags& f) {
  auto c = shoal::Actor(Counter::Create).Remote(int64_t{0});
  std::vector<shoal::ObjectRef<int64_t>> tasks;
  for (int64_t i = 0; i < f.callers; ++i) tasks.push_back(shoal::Task(CallCounter).Remote(c, f.calls));
  auto forwarder = shoal::Actor(Forwarder::Create).Remote();
  auto forwarded = forwarder.Task(&Forwarder::Forward).Remote(c, f.calls);
  // This driver calls too, at the same time.
  std::vector<shoal::ObjectRef<int64_t>> own;
  for (int64_t i = 0; i < f.calls; ++i) own.push_back(c.Task(&Counter::Add).Remote(1));
  int64_t made = f.calls + *shoal::Get(forwarded);
  for (const auto& n : shoal::Get(tasks)) made += *n;
  shoal::Get(own);
  int64_t total = *shoal::Get(c.Task(&Counter::Get).Remote());
  const int64_t expected = (f.callers + 2) * f.calls;
  std::cout << Json{{"total", total}, {"made", made}, {"expected", expected}} << std::endl;
  c.Kill();
  forwarder.Kill();
  return total == expected ? 0 : 1;
}

std::map<std::string, double> GpuResources(const Flags& f) {
  std::map<std::string, double> resources = {{"CPU", f.cpu}, {"GPU", f.gpu}};
  if (!f.resource.empty()) resources[f.resource] = 1;
  return resources;
}

int Gpu(const Flags& f) {
  std::vector<shoal::ActorHandle<Counter>> actors;
  for (int64_t i = 0; i < f.actors; ++i) {
    actors.push_back(shoal::Actor(Counter::Create).SetResources(GpuResources(f)).Remote(int64_t{0}));
  }
  std::vector<shoal::ObjectRef<Placement>> refs;
  for (auto& a : actors) refs.push_back(a.Task(&Counter::Where).Remote());
  Json out;
  out["actors"] = Json::array();
  for (const auto& p : shoal::Get(refs, std::chrono::seconds(60))) out["actors"].push_back(ToJson(*p));
  // One more does not fit until one of them goes.
  auto extra = shoal::Actor(Counter::Create).SetResources(GpuResources(f)).Remote(int64_t{0});
  auto extra_where = extra.Task(&Counter::Where).Remote();
  out["extra_waited"] = shoal::Wait(std::vector{extra_where}, 1, std::chrono::seconds(2)).ready.empty();
  actors[0].Kill();
  out["extra_after_kill"] = ToJson(*shoal::Get(extra_where, std::chrono::seconds(60)));
  for (size_t i = 1; i < actors.size(); ++i) actors[i].Kill();
  extra.Kill();
  std::cout << out << std::endl;
  return 0;
}

// The test kills the actor's worker or node between the two lines.
int Die(const Flags& f) {
  auto creator = shoal::Actor(Counter::Create).SetMaxRestarts(static_cast<int>(f.max_restarts)).SetMaxTaskRetries(-1);
  if (!f.resource.empty()) creator.SetResources({{"CPU", 0}, {f.resource, 1}});
  auto c = creator.Remote(int64_t{10});
  int64_t first = *shoal::Get(c.Task(&Counter::Add).Remote(1), std::chrono::seconds(60));
  Placement before = *shoal::Get(c.Task(&Counter::Where).Remote(), std::chrono::seconds(60));
  std::cout << Json{{"first", first}, {"pid", before.pid}, {"node", before.node}} << std::endl;
  std::string line;
  std::getline(std::cin, line);
  Json out{{"first", first}, {"before", ToJson(before)}};
  int code = 0;
  try {
    out["after"] = *shoal::Get(c.Task(&Counter::Add).Remote(1), std::chrono::seconds(90));
    out["placement_after"] = ToJson(*shoal::Get(c.Task(&Counter::Where).Remote(), std::chrono::seconds(60)));
  } catch (const shoal::ActorDiedError& e) {
    out["error_type"] = "ActorDiedError";
    out["error"] = e.what();
    code = 1;
  }
  std::cout << out << std::endl;
  if (code == 0) c.Kill();
  return code;
}

int NamedCreate(const Flags& f) {
  auto c = shoal::Actor(Counter::Create)
               .SetName(f.name)
               .SetNamespace(f.ray_namespace)
               .SetDetached(f.detached)
               .Remote(int64_t{5});
  Json out{{"id", c.Hex()}, {"value", *shoal::Get(c.Task(&Counter::Add).Remote(1), std::chrono::seconds(60))}};
  // The name is taken now.
  try {
    shoal::Actor(Counter::Create).SetName(f.name).SetNamespace(f.ray_namespace).Remote(int64_t{0});
    out["duplicate_error"] = nullptr;
  } catch (const shoal::Error& e) {
    out["duplicate_error"] = e.what();
  }
  std::cout << out << std::endl;
  return out["duplicate_error"].is_string() ? 0 : 1;
}

int NamedGet(const Flags& f) {
  Json out;
  auto c = shoal::GetActor<Counter>(f.name, f.ray_namespace);
  out["id"] = c.Hex();
  out["value"] = *shoal::Get(c.Task(&Counter::Add).Remote(1), std::chrono::seconds(60));
  try {
    shoal::GetActor<Counter>(f.name, "another-namespace");
    out["other_namespace_error"] = nullptr;
  } catch (const shoal::Error& e) {
    out["other_namespace_error"] = e.what();
  }
  try {
    shoal::GetActor<Forwarder>(f.name, f.ray_namespace);
    out["wrong_class_error"] = nullptr;
  } catch (const shoal::Error& e) {
    out["wrong_class_error"] = e.what();
  }
  c.Kill();
  try {
    shoal::Get(c.Task(&Counter::Get).Remote(), std::chrono::seconds(60));
    out["after_kill"] = nullptr;
  } catch (const shoal::ActorDiedError& e) {
    out["after_kill"] = e.what();
  }
  // The name is free again once the GCS has seen it die (bounded wait).
  out["gone"] = false;
  for (int i = 0; i < 100 && !out["gone"].get<bool>(); ++i) {
    try {
      shoal::GetActor<Counter>(f.name, f.ray_namespace);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } catch (const shoal::Error&) {
      out["gone"] = true;
    }
  }
  std::cout << out << std::endl;
  return 0;
}

// Whether the named actor is gone (GetActor fails) within 30 s.
int NamedGone(const Flags& f) {
  Json out{{"gone", false}};
  for (int i = 0; i < 300 && !out["gone"].get<bool>(); ++i) {
    try {
      shoal::GetActor<Counter>(f.name, f.ray_namespace);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } catch (const shoal::Error& e) {
      out["gone"] = true;
      out["error"] = e.what();
    }
  }
  std::cout << out << std::endl;
  return 0;
}

// n actors made, called once and killed, `batch` at a time; alternately holding 1 CPU and
// half a GPU (and no CPU).
int Cycles(const Flags& f) {
  auto start = std::chrono::steady_clock::now();
  int64_t wrong = 0;
  for (int64_t done = 0; done < f.n; done += f.batch) {
    std::vector<shoal::ActorHandle<Counter>> actors;
    std::vector<shoal::ObjectRef<int64_t>> refs;
    for (int64_t i = done; i < std::min(f.n, done + f.batch); ++i) {
      std::map<std::string, double> resources =
          i % 2 == 0 ? std::map<std::string, double>{{"CPU", 1}} : std::map<std::string, double>{{"CPU", 0}, {"GPU", 0.5}};
      actors.push_back(shoal::Actor(Counter::Create).SetResources(resources).Remote(i));
      refs.push_back(actors.back().Task(&Counter::Add).Remote(1));
    }
    auto values = shoal::Get(refs, std::chrono::seconds(60));
    for (size_t k = 0; k < values.size(); ++k) wrong += *values[k] != done + static_cast<int64_t>(k) + 1;
    for (auto& a : actors) a.Kill();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << Json{{"n", f.n}, {"wrong", wrong}, {"seconds", seconds}} << std::endl;
  return wrong == 0 ? 0 : 1;
}

// Scheduling strategies for actors through the C++ API; the GCS places actors with the raylets'
// policy code: SPREAD actors on three nodes (the default would put these small ones on one), a
// hard affinity to --node there, and one to a node too small DEAD, its calls failing.
int Strategies(const Flags& f) {
  Json out;
  std::vector<shoal::ActorHandle<Counter>> spread;
  for (int i = 0; i < 3; ++i) {
    spread.push_back(shoal::Actor(Counter::Create)
                         .SetResources({{"CPU", 0.1}})
                         .SetSchedulingStrategy(shoal::SchedulingStrategy::Spread())
                         .Remote(int64_t{0}));
  }
  std::set<std::string> nodes;
  for (auto& a : spread) nodes.insert(shoal::Get(a.Task(&Counter::Where).Remote(), std::chrono::seconds(60))->node);
  out["spread_nodes"] = nodes.size();

  auto pinned = shoal::Actor(Counter::Create)
                    .SetSchedulingStrategy(shoal::SchedulingStrategy::NodeAffinity(f.node, false))
                    .Remote(int64_t{0});
  out["pinned_node"] = shoal::Get(pinned.Task(&Counter::Where).Remote(), std::chrono::seconds(60))->node;

  auto never = shoal::Actor(Counter::Create)
                   .SetResources({{"CPU", 64}})
                   .SetSchedulingStrategy(shoal::SchedulingStrategy::NodeAffinity(f.node, false))
                   .Remote(int64_t{0});
  try {
    shoal::Get(never.Task(&Counter::Get).Remote(), std::chrono::seconds(60));
    out["too_big"] = nullptr;
  } catch (const shoal::ActorUnschedulableError& e) {
    out["too_big"] = e.what();
  }
  for (auto& a : spread) a.Kill();
  pinned.Kill();
  std::cout << out << std::endl;
  const bool ok = nodes.size() == 3 && out["pinned_node"] == f.node && out["too_big"].is_string();
  return ok ? 0 : 1;
}

int Bad(const Flags&) {
  Json out;
  try {
    shoal::GetActor<Counter>("no-such-actor");
    out["unknown_name"] = nullptr;
  } catch (const shoal::Error& e) {
    out["unknown_name"] = e.what();
  }
  // A factory that throws: the actor is dead, and calls say why.
  auto broken = shoal::Actor(Counter::CreateOrThrow).Remote(int64_t{0}, std::string("no counter today"));
  try {
    shoal::Get(broken.Task(&Counter::Get).Remote(), std::chrono::seconds(60));
    out["constructor"] = nullptr;
  } catch (const shoal::ActorDiedError& e) {
    out["constructor"] = {{"type", "ActorDiedError"}, {"what", e.what()}};
  } catch (const shoal::Error& e) {
    out["constructor"] = {{"type", "Error"}, {"what", e.what()}};
  }
  // A method that throws: TaskError; the actor carries on.
  auto c = shoal::Actor(Counter::CreateOrThrow).Remote(int64_t{1}, std::string());
  try {
    shoal::Get(c.Task(&Counter::Fail).Remote(std::string("bad input 7")), std::chrono::seconds(60));
    out["method"] = nullptr;
  } catch (const shoal::TaskError& e) {
    out["method"] = {{"type", e.type_name()}, {"message", e.message()}};
  }
  out["after"] = *shoal::Get(c.Task(&Counter::Add).Remote(1), std::chrono::seconds(60));
  // A nil handle.
  try {
    shoal::ActorHandle<Counter>().Task(&Counter::Get);
    out["nil"] = nullptr;
  } catch (const shoal::Error& e) {
    out["nil"] = e.what();
  }
  // A name given twice is refused; get_if_exists answers the first.
  auto named = shoal::Actor(Counter::Create).SetName("twice").Remote(int64_t{40});
  try {
    shoal::Actor(Counter::Create).SetName("twice").Remote(int64_t{0});
    out["duplicate"] = nullptr;
  } catch (const shoal::Error& e) {
    out["duplicate"] = e.what();
  }
  auto again = shoal::Actor(Counter::Create).SetName("twice").SetGetIfExists(true).Remote(int64_t{0});
  out["get_if_exists_same"] = again == named;
  out["get_if_exists_value"] = *shoal::Get(again.Task(&Counter::Add).Remote(2), std::chrono::seconds(60));
  // Bad options.
  try {
    shoal::Actor(Counter::Create).SetMaxConcurrency(0).Remote(int64_t{0});
    out["bad_concurrency"] = nullptr;
  } catch (const shoal::Error& e) {
    out["bad_concurrency"] = e.what();
  }
  c.Kill();
  named.Kill();
  std::cout << out << std::endl;
  return 0;
}

// max_concurrency 4: four sleeping calls overlap.
int Concurrent(const Flags&) {
  auto c = shoal::Actor(Counter::Create).SetMaxConcurrency(4).Remote(int64_t{0});
  shoal::Get(c.Task(&Counter::Get).Remote(), std::chrono::seconds(60));  // alive
  std::vector<shoal::ObjectRef<std::pair<int64_t, int64_t>>> refs;
  for (int i = 0; i < 4; ++i) refs.push_back(c.Task(&Counter::Sleep).Remote(1000));
  int64_t latest_start = 0, earliest_end = INT64_MAX;
  for (const auto& span : shoal::Get(refs, std::chrono::seconds(60))) {
    latest_start = std::max(latest_start, span->first);
    earliest_end = std::min(earliest_end, span->second);
  }
  c.Kill();
  std::cout << Json{{"overlapped", latest_start < earliest_end}} << std::endl;
  return 0;
}

// A concurrency group answers while the default group's one thread is busy; a call naming a
// group the actor lacks fails with an error naming it.
int Groups(const Flags&) {
  auto c = shoal::Actor(Counter::Create).SetConcurrencyGroups({{"io", 1}}).Remote(int64_t{0});
  shoal::Get(c.Task(&Counter::Get).Remote(), std::chrono::seconds(60));  // alive
  auto busy = c.Task(&Counter::Sleep).Remote(3000);                     // the default group's thread
  const int64_t io_done = *shoal::Get(c.Task(&Counter::Stamp).SetConcurrencyGroup("io").Remote(),
                                      std::chrono::seconds(60));
  const auto span = *shoal::Get(busy, std::chrono::seconds(60));
  std::string unknown;
  try {
    shoal::Get(c.Task(&Counter::Get).SetConcurrencyGroup("nope").Remote(), std::chrono::seconds(60));
  } catch (const shoal::Error& e) {
    unknown = e.what();
  }
  const int64_t after = *shoal::Get(c.Task(&Counter::Add).Remote(int64_t{5}), std::chrono::seconds(60));
  c.Kill();
  std::cout << Json{{"io_while_busy", io_done < span.second}, {"unknown_group_error", unknown}, {"after", after}}
            << std::endl;
  return 0;
}

// Generator methods: values in order from the actor's state, the end, an error mid-stream at
// the right item, and the actor alive and consistent afterwards.
int Generators(const Flags&) {
  auto c = shoal::Actor(Counter::Create).Remote(int64_t{100});
  std::vector<int64_t> values;
  bool ended_twice = false;
  {
    shoal::ObjectRefGenerator<int64_t> gen = c.Task(&Counter::Steps).Remote(int64_t{4}, int64_t{10});
    while (auto ref = gen.Next(60000)) values.push_back(*shoal::Get(*ref));
    ended_twice = !gen.Next().has_value();
    shoal::Get(gen.Completed());
  }
  std::vector<std::string> before_error;
  std::string error;
  {
    auto gen = c.Task(&Counter::Broken).Remote();
    while (auto ref = gen.Next(60000)) {
      try {
        before_error.push_back(*shoal::Get(*ref));
      } catch (const shoal::TaskError& e) {
        error = e.what();
      }
    }
  }
  const int64_t after = *shoal::Get(c.Task(&Counter::Get).Remote(), std::chrono::seconds(60));
  c.Kill();
  std::cout << Json{{"values", values}, {"ended_twice", ended_twice}, {"before_error", before_error},
                    {"error", error}, {"after", after}}
            << std::endl;
  return 0;
}

const std::map<std::string, int (*)(const Flags&)> kCommands = {
    {"generators", Generators},
    {"ordered", Ordered}, {"callers", Callers}, {"gpu", Gpu},     {"die", Die},
    {"named-create", NamedCreate}, {"named-get", NamedGet}, {"named-gone", NamedGone}, {"cycles", Cycles}, {"bad", Bad},
    {"concurrent", Concurrent}, {"strategies", Strategies}, {"groups", Groups},
};

}  // namespace
}  // namespace driver

int main(int argc, char** argv) {
  using namespace driver;
  const std::string command = argc > 1 ? argv[1] : "";
  Flags f;
  shoal::FlagSet flags("shoal_actor_driver " + command);
  flags.AddInt("n", &f.n, "ordered: calls; cycles: actors");
  flags.AddInt("callers", &f.callers, "callers: caller tasks");
  flags.AddInt("calls", &f.calls, "callers: calls per caller");
  flags.AddInt("actors", &f.actors, "gpu: actors");
  flags.AddDouble("gpu", &f.gpu, "gpu: GPUs per actor");
  flags.AddDouble("cpu", &f.cpu, "gpu: CPUs per actor");
  flags.AddString("resource", &f.resource, "gpu, die: a custom resource the actor needs (1)");
  flags.AddInt("max-restarts", &f.max_restarts, "die: the actor's max_restarts");
  flags.AddString("name", &f.name, "named-*: the actor's name");
  flags.AddString("namespace", &f.ray_namespace, "named-*: the actor's namespace");
  flags.AddInt("batch", &f.batch, "cycles: actors alive at once");
  flags.AddString("node", &f.node, "strategies: the node (hex id) to pin an actor to");
  flags.AddBool("detached", &f.detached, "named-create: whether the actor outlives this driver");
  return RunDriver(argc, argv, "shoal_actor_driver", flags, f, kCommands);
}
