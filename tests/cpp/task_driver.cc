// A driver for the integration tests (tests/integration/test_tasks.py): each subcommand runs
// one scenario against the cluster at --address (else $SHOAL_ADDRESS, else a local cluster),
// prints one JSON document on stdout and exits 0 when its own checks passed.
//
//   shoal_task_driver many --n 10000
//   shoal_task_driver refs --producer-resource A --consumer-resource B
//   shoal_task_driver gpu --tasks 3 --gpu 0.5 --hold-ms 3000
//   shoal_task_driver infeasible --gpus 2 --timeout-s 60     (prints a first line once submitted)
//   shoal_task_driver slow --seconds 5 --pid-file F [--resource W] [--max-retries 3]
//   shoal_task_driver free --rounds 20 --n 200 --size 50000
//   shoal_task_driver strategies --node HEX --hold-ms 1000   (SPREAD, node affinity to HEX)
//   shoal_task_driver raise | unregistered | bad-resources | basics | generator
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
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

std::string VisibleDevices() {
  const char* devices = std::getenv("CUDA_VISIBLE_DEVICES");
  return devices != nullptr ? devices : "";
}

// ---- remote functions ----

int64_t Square(int64_t x) { return x * x; }

// (node, 0..n-1)
std::pair<std::string, std::vector<int64_t>> Produce(int64_t n) {
  std::vector<int64_t> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = i;
  return {shoal::CurrentNodeId(), std::move(values)};
}

// (producer node, consumer node, sum)
std::tuple<std::string, std::string, int64_t> Consume(const std::pair<std::string, std::vector<int64_t>>& in) {
  int64_t sum = 0;
  for (int64_t v : in.second) sum += v;
  return {in.first, shoal::CurrentNodeId(), sum};
}

struct Placement {
  std::string devices;
  std::string node;
  int pid;
  int64_t start_ms;
  int64_t end_ms;
  MSGPACK_DEFINE(devices, node, pid, start_ms, end_ms);
};

Placement Hold(int hold_ms) {
  Placement p{VisibleDevices(), shoal::CurrentNodeId(), static_cast<int>(getpid()), NowMs(), 0};
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  p.end_ms = NowMs();
  return p;
}

// Appends "<pid> <node>" to `pid_file`, then sleeps: long enough for a test to kill this
// worker or its raylet.
Placement Slow(double seconds, const std::string& pid_file) {
  {
    std::ofstream out(pid_file, std::ios::app);
    out << getpid() << " " << shoal::CurrentNodeId() << std::endl;
  }
  return Hold(static_cast<int>(seconds * 1000));
}

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

int Fail(int kind) {
  if (kind == 0) throw std::out_of_range("index 7 is out of range");
  if (kind == 1) throw ParseError("unexpected token '}' at line 3");
  throw 42;
}

void Nothing(int) {}

std::string Echo(const std::string& s) { return s; }

int NotRegistered(int x) { return x; }

std::string Filler(int64_t size) { return std::string(size, 'f'); }

// Allocates (and writes) 32 MiB at a time up to `cap` bytes and holds it, for the memory
// monitor to kill; answers how much it held if it was not killed.
std::string Hog(int64_t cap) {
  constexpr int64_t kStep = 32 << 20;
  std::vector<std::unique_ptr<char[]>> held;
  for (int64_t total = 0; total < cap; total += kStep) {
    held.push_back(std::make_unique<char[]>(kStep));
    std::memset(held.back().get(), 'x', kStep);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::seconds(10));
  return "not killed holding " + std::to_string(held.size() * (kStep >> 20)) + " MiB";
}

// This process's resident memory in KiB.
int64_t RssKib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  int64_t value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

// A task that submits tasks of its own and waits for them.
int64_t SumOfSquares(int64_t n) {
  std::vector<shoal::ObjectRef<int64_t>> refs;
  for (int64_t i = 0; i < n; ++i) refs.push_back(shoal::Task(Square).Remote(i));
  int64_t sum = 0;
  for (const auto& v : shoal::Get(refs)) sum += *v;
  return sum;
}

// Depth-first nesting: each level submits the next and waits for it, holding its lease.
int64_t Nest(int64_t depth) {
  if (depth == 0) return 1;
  return 1 + *shoal::Get(shoal::Task(Nest).Remote(depth - 1));
}

// Generators (shoal/generator.h).
void Count(shoal::Yield<int64_t>& out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out(i * 10);
}
void Blocks(shoal::Yield<std::string>& out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out(std::string(200 * 1024, static_cast<char>('a' + i)));  // through the store
}
void Faulty(shoal::Yield<int64_t>& out) {
  out(1);
  out(2);
  throw std::runtime_error("generator broke");
}
void Sleepy(shoal::Yield<int64_t>& out) {
  out(1);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  out(2);
}

}  // namespace driver

SHOAL_REMOTE(driver::Count, driver::Blocks, driver::Faulty, driver::Sleepy);
SHOAL_REMOTE(driver::Nest);
SHOAL_REMOTE(driver::Square, driver::Produce, driver::Consume, driver::Hold, driver::Slow, driver::Fail,
             driver::Nothing, driver::Echo, driver::SumOfSquares,
             driver::Filler, driver::Hog);

namespace driver {
namespace {

struct Flags {
  std::string address;
  int64_t n = 10000;
  std::string producer_resource, consumer_resource;
  int64_t size = 1 << 20;
  int64_t tasks = 3;
  double gpu = 0.5;
  int64_t hold_ms = 3000;
  int64_t gpus = 2;
  double timeout_s = 60;
  double seconds = 5;
  std::string pid_file;
  std::string resource;
  int64_t max_retries = 3;
  int64_t rounds = 20;
  std::string node;
};

std::map<std::string, double> WithResource(const std::string& name, double amount = 0.001) {
  std::map<std::string, double> out = {{"CPU", 1}};
  if (!name.empty()) out[name] = amount;
  return out;
}

int Many(const Flags& f) {
  auto start = std::chrono::steady_clock::now();
  std::vector<shoal::ObjectRef<int64_t>> refs;
  refs.reserve(f.n);
  for (int64_t i = 0; i < f.n; ++i) refs.push_back(shoal::Task(Square).Remote(i));
  auto values = shoal::Get(refs);
  int64_t wrong = 0;
  for (int64_t i = 0; i < f.n; ++i) wrong += *values[i] != i * i;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << Json{{"n", f.n}, {"wrong", wrong}, {"seconds", seconds}, {"tasks_per_s", f.n / seconds}} << std::endl;
  return wrong == 0 ? 0 : 1;
}

int Refs(const Flags& f) {
  Json out = Json::object();
  bool ok = true;
  for (int64_t size : {int64_t{10}, f.size}) {  // inline, and large enough for the object store
    auto produced = shoal::Task(Produce).SetResources(WithResource(f.producer_resource)).Remote(size);
    auto consumed = shoal::Task(Consume).SetResources(WithResource(f.consumer_resource)).Remote(produced);
    auto [producer, consumer, sum] = *shoal::Get(consumed);
    bool right = sum == size * (size - 1) / 2;
    ok &= right;
    out[size == 10 ? "small" : "large"] = {
        {"size", size}, {"producer_node", producer}, {"consumer_node", consumer}, {"sum_ok", right}};
  }
  // The large value also reaches the driver.
  auto produced = shoal::Task(Produce).SetResources(WithResource(f.producer_resource)).Remote(f.size);
  out["driver_got_large"] = shoal::Get(produced)->second.size() == static_cast<size_t>(f.size);
  ok &= out["driver_got_large"].get<bool>();
  std::cout << out << std::endl;
  return ok ? 0 : 1;
}

Json ToJson(const Placement& p) {
  return {{"cuda_visible_devices", p.devices}, {"node", p.node}, {"pid", p.pid},
          {"start_ms", p.start_ms}, {"end_ms", p.end_ms}};
}

int Gpu(const Flags& f) {
  std::vector<shoal::ObjectRef<Placement>> refs;
  for (int64_t i = 0; i < f.tasks; ++i) {
    refs.push_back(shoal::Task(Hold).SetResources({{"CPU", 1}, {"GPU", f.gpu}}).Remote(static_cast<int>(f.hold_ms)));
  }
  Json out = Json::array();
  for (const auto& p : shoal::Get(refs)) out.push_back(ToJson(*p));
  std::cout << out << std::endl;
  return 0;
}

// Scheduling strategies through the C++ API (shoal::SchedulingStrategy): SPREAD puts three
// small tasks on three nodes (the default would keep them all here); a hard or soft affinity to
// --node runs there; a hard one to a node too small fails; a malformed node id is refused.
int Strategies(const Flags& f) {
  Json out;
  // A raylet learns the other nodes from the GCS once a second: a cluster that just started may
  // place a first round here, so try a few.
  std::set<std::string> spread;
  int64_t rounds = 0;
  while (spread.size() < 3 && rounds < 20) {
    ++rounds;
    spread.clear();
    std::vector<shoal::ObjectRef<Placement>> refs;
    for (int i = 0; i < 3; ++i) {
      refs.push_back(shoal::Task(Hold)
                         .SetResources({{"CPU", 0.1}})
                         .SetSchedulingStrategy(shoal::SchedulingStrategy::Spread())
                         .Remote(static_cast<int>(f.hold_ms)));
    }
    for (const auto& p : shoal::Get(refs, std::chrono::seconds(60))) spread.insert(p->node);
  }
  out["spread_nodes"] = spread.size();
  out["spread_rounds"] = rounds;

  std::set<std::string> pinned;
  for (bool soft : {false, true}) {
    for (int i = 0; i < 2; ++i) {
      auto ref = shoal::Task(Hold)
                     .SetResources({{"CPU", 0.1}})
                     .SetSchedulingStrategy(shoal::SchedulingStrategy::NodeAffinity(f.node, soft))
                     .Remote(0);
      pinned.insert(shoal::Get(ref, std::chrono::seconds(60))->node);
    }
  }
  out["pinned_nodes"] = pinned;

  try {
    shoal::Get(shoal::Task(Hold)
                   .SetResources({{"CPU", 64}})
                   .SetSchedulingStrategy(shoal::SchedulingStrategy::NodeAffinity(f.node, false))
                   .Remote(0),
               std::chrono::seconds(60));
    out["too_big"] = nullptr;
  } catch (const shoal::Error& e) {
    out["too_big"] = e.what();
  }
  try {
    shoal::Task(Hold).SetSchedulingStrategy(shoal::SchedulingStrategy::NodeAffinity("zz")).Remote(0);
    out["bad_node"] = nullptr;
  } catch (const shoal::Error& e) {
    out["bad_node"] = e.what();
  }
  std::cout << out << std::endl;
  const bool ok = spread.size() == 3 && pinned == std::set<std::string>{f.node} && out["too_big"].is_string() &&
                  out["bad_node"].is_string();
  return ok ? 0 : 1;
}

// A task that takes --size bytes of memory, with --max-retries: prints what Get answered.
int OutOfMemory(const Flags& f) {
  auto ref = shoal::Task(Hog).SetMaxRetries(static_cast<int>(f.max_retries)).Remote(f.size);
  try {
    std::cout << Json{{"ok", true}, {"value", *shoal::Get(ref)}} << std::endl;
    return 0;
  } catch (const shoal::OutOfMemoryError& e) {
    std::cout << Json{{"ok", false}, {"error_type", "OutOfMemoryError"}, {"error", e.what()}} << std::endl;
    return 1;
  }
}

int Infeasible(const Flags& f) {
  auto ref = shoal::Task(Hold).SetResources({{"CPU", 1}, {"GPU", static_cast<double>(f.gpus)}}).Remote(0);
  std::cout << Json{{"submitted", true}} << std::endl;
  try {
    Placement p = *shoal::Get(ref, std::chrono::duration<double>(f.timeout_s));
    std::cout << Json{{"ran", true}, {"placement", ToJson(p)}} << std::endl;
    return 0;
  } catch (const shoal::GetTimeoutError& e) {
    std::cout << Json{{"ran", false}, {"error", e.what()}} << std::endl;
    return 1;
  }
}

int SlowTask(const Flags& f) {
  auto ref = shoal::Task(Slow)
                 .SetResources(WithResource(f.resource))
                 .SetMaxRetries(static_cast<int>(f.max_retries))
                 .Remote(f.seconds, f.pid_file);
  try {
    std::cout << Json{{"ok", true}, {"placement", ToJson(*shoal::Get(ref))}} << std::endl;
    return 0;
  } catch (const shoal::WorkerCrashedError& e) {
    std::cout << Json{{"ok", false}, {"error_type", "WorkerCrashedError"}, {"error", e.what()}} << std::endl;
    return 1;
  }
}

int Raise(const Flags&) {
  Json out = Json::array();
  bool ok = true;
  for (int kind : {0, 1, 2}) {
    try {
      shoal::Get(shoal::Task(Fail).Remote(kind));
      ok = false;
      out.push_back({{"kind", kind}, {"raised", false}});
    } catch (const shoal::TaskError& e) {
      out.push_back({{"kind", kind}, {"raised", true}, {"type", e.type_name()}, {"message", e.message()},
                     {"what", e.what()}});
    }
  }
  // The cluster still runs tasks.
  out.push_back({{"after", *shoal::Get(shoal::Task(Square).Remote(int64_t{12}))}});
  std::cout << out << std::endl;
  return ok ? 0 : 1;
}

int Unregistered(const Flags&) {
  Json out;
  try {
    shoal::Task(NotRegistered).Remote(1);
    out["error"] = nullptr;
  } catch (const shoal::Error& e) {
    out["error"] = e.what();
  }
  out["after"] = *shoal::Get(shoal::Task(Square).Remote(int64_t{3}));
  std::cout << out << std::endl;
  return out["error"].is_string() ? 0 : 1;
}

int BadResources(const Flags&) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::pair<std::string, std::map<std::string, double>>> cases = {
      {"GPU -1", {{"GPU", -1}}},     {"CPU NaN", {{"CPU", nan}}}, {"GPU 1.5", {{"GPU", 1.5}}},
      {"CPU inf", {{"CPU", inf}}},   {"empty name", {{"", 1}}},    {"name with space", {{"my gpu", 1}}},
  };
  Json out = Json::array();
  bool ok = true;
  for (const auto& [label, resources] : cases) {
    try {
      shoal::Task(Square).SetResources(resources).Remote(int64_t{2});
      ok = false;
      out.push_back({{"case", label}, {"error", nullptr}});
    } catch (const shoal::Error& e) {
      out.push_back({{"case", label}, {"error", e.what()}});
    }
  }
  try {
    shoal::Task(Square).SetMaxRetries(-1).Remote(int64_t{2});
    ok = false;
  } catch (const shoal::Error& e) {
    out.push_back({{"case", "max_retries -1"}, {"error", e.what()}});
  }
  out.push_back({{"after", *shoal::Get(shoal::Task(Square).Remote(int64_t{5}))}});
  std::cout << out << std::endl;
  return ok ? 0 : 1;
}

// Put, Wait, void functions, refs to Put values, Get with a timeout.
// Nested tasks on a node with fewer CPUs than nesting levels: finishes only if waiting
// parents lend their CPUs to their children.
int Nested(const Flags& f) {
  Json out;
  out["depth"] = *shoal::Get(shoal::Task(Nest).Remote(f.n), std::chrono::seconds(60));
  out["fan_out"] = *shoal::Get(shoal::Task(SumOfSquares).Remote(int64_t{6}), std::chrono::seconds(60));
  std::cout << out << std::endl;
  return out["depth"] == f.n + 1 && out["fan_out"] == 55 ? 0 : 1;
}

int Generator(const Flags&) {
  Json out;
  std::vector<int64_t> values;
  {
    shoal::ObjectRefGenerator<int64_t> gen = shoal::Task(Count).Remote(5);
    while (std::optional<shoal::ObjectRef<int64_t>> ref = gen.Next()) values.push_back(*shoal::Get(*ref));
    out["ended_twice"] = !gen.Next().has_value();
    shoal::Get(gen.Completed());
  }
  out["values"] = values;
  std::vector<size_t> sizes;
  std::string firsts;
  {
    auto gen = shoal::Task(Blocks).SetResources({{"CPU", 1}}).Remote(3);
    while (auto ref = gen.Next(60000)) {
      auto block = shoal::Get(*ref);
      sizes.push_back(block->size());
      firsts += (*block)[0];
    }
  }
  out["block_sizes"] = sizes;
  out["block_firsts"] = firsts;
  int before_error = 0;
  std::string error;
  {
    auto gen = shoal::Task(Faulty).SetMaxRetries(0).Remote();
    while (auto ref = gen.Next()) {
      try {
        shoal::Get(*ref);
        ++before_error;
      } catch (const shoal::TaskError& e) {
        error = e.what();
      }
    }
  }
  out["before_error"] = before_error;
  out["error"] = error;
  {
    auto gen = shoal::Task(Sleepy).Remote();
    out["first"] = *shoal::Get(*gen.Next());
    try {
      gen.Next(0);
      out["timeout"] = false;
    } catch (const shoal::GetTimeoutError&) {
      out["timeout"] = true;
    }
    out["second"] = *shoal::Get(*gen.Next());
  }
  std::cout << out << std::endl;
  const bool ok = values == std::vector<int64_t>{0, 10, 20, 30, 40} && out["ended_twice"] == true &&
                  sizes == std::vector<size_t>(3, 200 * 1024) && firsts == "abc" && before_error == 2 &&
                  error.find("generator broke") != std::string::npos && out["timeout"] == true && out["second"] == 2;
  return ok ? 0 : 1;
}

int Basics(const Flags&) {
  Json out;
  auto put = shoal::Put(std::string("put value"));
  out["put_echo"] = *shoal::Get(shoal::Task(Echo).Remote(put));
  shoal::Get(shoal::Task(Nothing).Remote(1));
  out["void_ok"] = true;
  std::vector<shoal::ObjectRef<Placement>> refs = {shoal::Task(Hold).Remote(0), shoal::Task(Hold).Remote(20000)};
  auto [ready, not_ready] = shoal::Wait(refs, 1, std::chrono::seconds(10));
  out["wait_ready"] = ready.size();
  out["wait_not_ready"] = not_ready.size();
  try {
    shoal::Get(refs[1], std::chrono::milliseconds(200));
    out["get_timeout"] = nullptr;
  } catch (const shoal::GetTimeoutError& e) {
    out["get_timeout"] = e.what();
  }
  std::vector<shoal::ObjectRef<int64_t>> squares;
  for (int64_t i = 0; i < 10; ++i) squares.push_back(shoal::Task(Square).Remote(i));
  auto all = shoal::Wait(squares, 10, std::chrono::seconds(30));
  out["wait_all_ready"] = all.ready.size();
  out["nested"] = *shoal::Get(shoal::Task(SumOfSquares).Remote(int64_t{10}), std::chrono::seconds(30));
  std::cout << out << std::endl;
  bool ok = out["put_echo"] == "put value" && ready.size() == 1 && not_ready.size() == 1 &&
            out["get_timeout"].is_string() && all.ready.size() == 10 && out["nested"] == 285;
  return ok ? 0 : 1;
}

// Results whose refs are dropped are freed: `rounds` times, n tasks each return `size` bytes
// (kept inline in this process's memory), are read and dropped. Reports the RSS growth.
int Free(const Flags& f) {
  auto round = [&] {
    std::vector<shoal::ObjectRef<std::string>> refs;
    for (int64_t i = 0; i < f.n; ++i) refs.push_back(shoal::Task(Filler).Remote(f.size));
    for (const auto& v : shoal::Get(refs)) {
      if (static_cast<int64_t>(v->size()) != f.size) throw std::runtime_error("wrong size");
    }
  };
  round();  // warm-up: workers, leases, allocator pools
  const int64_t before = RssKib();
  for (int64_t r = 0; r < f.rounds; ++r) round();
  const int64_t after = RssKib();
  const int64_t produced_kib = f.rounds * f.n * f.size / 1024;
  std::cout << Json{{"rss_before_kib", before}, {"rss_after_kib", after}, {"produced_kib", produced_kib}} << std::endl;
  return 0;
}

// STRICT_SPREAD of two {CPU: 1, GPU: 1} bundles through the C++ API: created, each bundle's
// task runs on its bundle's node with the device, a too-large request and a bad index are
// refused, bad groups are refused, the group is found by name, then removed.
int PlacementGroups(const Flags& f) {
  Json out;
  shoal::PlacementGroupCreationOptions options{"cpp-group", {{{"CPU", 1}, {"GPU", 1}}, {{"CPU", 1}, {"GPU", 1}}},
                                               shoal::PlacementStrategy::kStrictSpread};
  shoal::PlacementGroup pg = shoal::CreatePlacementGroup(options);
  out["created"] = pg.Wait(60);
  out["state"] = pg.GetState();
  out["bundle_nodes"] = pg.GetBundleNodes();
  out["by_name"] = shoal::GetPlacementGroup("cpp-group").GetID() == pg.GetID();
  std::vector<shoal::ObjectRef<Placement>> refs;
  for (int i = 0; i < 2; ++i) {
    refs.push_back(shoal::Task(Hold).SetResources({{"CPU", 1}, {"GPU", 1}}).SetPlacementGroup(pg.GetID(), i).Remote(0));
  }
  Json runs = Json::array();
  for (auto& ref : refs) runs.push_back(ToJson(*shoal::Get(ref)));
  out["runs"] = runs;
  Json refused = Json::array();
  auto refuse = [&](const std::string& label, auto fn) {
    try {
      fn();
      refused.push_back({{"case", label}, {"error", nullptr}});
    } catch (const shoal::Error& e) {
      refused.push_back({{"case", label}, {"error", e.what()}});
    }
  };
  refuse("too large", [&] { shoal::Task(Hold).SetResources({{"CPU", 2}}).SetPlacementGroup(pg.GetID(), 0).Remote(0); });
  refuse("bad index", [&] { shoal::Task(Hold).SetPlacementGroup(pg.GetID(), 5).Remote(0); });
  refuse("no bundles", [&] { shoal::CreatePlacementGroup({"", {}, shoal::PlacementStrategy::kPack}); });
  refuse("empty bundle", [&] { shoal::CreatePlacementGroup({"", {{}}, shoal::PlacementStrategy::kPack}); });
  refuse("duplicate name", [&] { shoal::CreatePlacementGroup(options); });
  refuse("unknown name", [&] { shoal::GetPlacementGroup("nobody"); });
  out["refused"] = refused;
  shoal::RemovePlacementGroup(pg.GetID());
  out["after_remove"] = pg.GetState();
  std::cout << out << std::endl;
  return 0;
}

// Tasks with the label selector zone = --node, alone and with a strategy: all on one node.
int Labels(const Flags& f) {
  Json out;
  std::set<std::string> nodes;
  std::vector<shoal::ObjectRef<Placement>> refs;
  for (int i = 0; i < 3; ++i) {
    refs.push_back(shoal::Task(Hold)
                       .SetResources({{"CPU", 0.1}})
                       .SetLabelSelector({{"zone", f.node}})
                       .Remote(0));
  }
  // A selector set before a strategy is kept, and one inside the strategy works as well.
  refs.push_back(shoal::Task(Hold)
                     .SetResources({{"CPU", 0.1}})
                     .SetLabelSelector({{"zone", f.node}})
                     .SetSchedulingStrategy(shoal::SchedulingStrategy::Spread())
                     .Remote(0));
  shoal::SchedulingStrategy spread = shoal::SchedulingStrategy::Spread();
  spread.label_selector = {{"zone", "in(" + f.node + ")"}};
  refs.push_back(shoal::Task(Hold).SetResources({{"CPU", 0.1}}).SetSchedulingStrategy(spread).Remote(0));
  for (const auto& p : shoal::Get(refs, std::chrono::seconds(60))) nodes.insert(p->node);
  out["nodes"] = nodes;
  try {
    shoal::Task(Hold).SetLabelSelector({{"zone", "in()"}}).Remote(0);
    out["bad_selector"] = nullptr;
  } catch (const shoal::Error& e) {
    out["bad_selector"] = e.what();
  }
  std::cout << out << std::endl;
  return nodes.size() == 1 && out["bad_selector"].is_string() ? 0 : 1;
}

const std::map<std::string, int (*)(const Flags&)> kCommands = {
    {"labels", Labels},
    {"placement-group", PlacementGroups},
    {"many", Many},       {"refs", Refs},   {"gpu", Gpu},     {"infeasible", Infeasible},
    {"slow", SlowTask},   {"raise", Raise}, {"unregistered", Unregistered},
    {"bad-resources", BadResources},        {"basics", Basics}, {"nested", Nested}, {"free", Free},
    {"strategies", Strategies}, {"generator", Generator}, {"oom", OutOfMemory},
};

}  // namespace
}  // namespace driver

int main(int argc, char** argv) {
  using namespace driver;
  const std::string command = argc > 1 ? argv[1] : "";
  Flags f;
  shoal::FlagSet flags("shoal_task_driver " + command);
  flags.AddInt("n", &f.n, "many: number of tasks");
  flags.AddString("producer-resource", &f.producer_resource, "refs: a custom resource only the producer's node has");
  flags.AddString("consumer-resource", &f.consumer_resource, "refs: a custom resource only the consumer's node has");
  flags.AddInt("size", &f.size, "refs: elements in the large value; oom: bytes the task takes");
  flags.AddInt("tasks", &f.tasks, "gpu: number of tasks");
  flags.AddDouble("gpu", &f.gpu, "gpu: GPUs per task");
  flags.AddInt("hold-ms", &f.hold_ms, "gpu: how long each task runs");
  flags.AddInt("gpus", &f.gpus, "infeasible: GPUs the task asks for");
  flags.AddDouble("timeout-s", &f.timeout_s, "infeasible: how long to wait for it");
  flags.AddDouble("seconds", &f.seconds, "slow: how long the task sleeps");
  flags.AddString("pid-file", &f.pid_file, "slow: the task appends '<pid> <node id>' here");
  flags.AddString("resource", &f.resource, "slow: a custom resource the task needs (a little of)");
  flags.AddInt("max-retries", &f.max_retries, "slow: retries after a worker or node death");
  flags.AddInt("rounds", &f.rounds, "free: rounds of n tasks returning --size bytes each");
  flags.AddString("node", &f.node, "strategies: the node (hex id) to pin tasks to; labels: the zone to select");
  return RunDriver(argc, argv, "shoal_task_driver", flags, f, kCommands);
}
