// Actor call benchmark through the public C++ API (include/shoal/actor.h), in the shapes of
// `ray microbenchmark` (../shared/reference/performance_anchors.md). Starts its own local
// single-node cluster through shoal::Init (--num-cpus CPUs), or joins --address. Prints a
// table and, with --json FILE, writes the figures as JSON. Not a test.
//
//   1_1_actor_calls_sync        one caller, one actor: Get(a.Task(&Noop).Remote(i)), one at a time
//   1_1_actor_calls_async       one caller, one actor: 1,000 calls submitted, then Get all; repeated
//   1_1_actor_calls_concurrent  as async, on an actor with max_concurrency 16
//   n_n_actor_calls_async       N caller tasks (N = --callers, default the machine's CPUs), each
//                               driving its own actor with async batches; calls/s of all together
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"
#include "shoal/api.h"
#include "src/common/flags.h"
#include "src/common/system.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Target {
 public:
  static Target* Create() { return new Target; }
  int64_t Noop(int64_t x) { return x; }
};

// Batches of `batch` calls, then Get all; answers the seconds the batches took.
double RunBatches(const shoal::ActorHandle<Target>& actor, int64_t batches, int64_t batch,
                  std::vector<double>* batch_us) {
  auto start = Clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    auto t0 = Clock::now();
    std::vector<shoal::ObjectRef<int64_t>> refs;
    refs.reserve(batch);
    for (int64_t i = 0; i < batch; ++i) refs.push_back(actor.Task(&Target::Noop).Remote(i));
    shoal::Get(refs);
    if (batch_us != nullptr) batch_us->push_back(Seconds(Clock::now() - t0) * 1e6);
  }
  return Seconds(Clock::now() - start);
}

// A caller task of n_n_actor_calls_async: makes its own actor, warms it up, then runs the
// batches. Answers (calls, start, end) in wall-clock microseconds.
std::tuple<int64_t, int64_t, int64_t> DriveOwnActor(int64_t batches, int64_t batch) {
  auto actor = shoal::Actor(Target::Create).Remote();
  RunBatches(actor, 1, 100, nullptr);
  const int64_t start = WallMicros();
  RunBatches(actor, batches, batch, nullptr);
  const int64_t end = WallMicros();
  actor.Kill();
  return {batches * batch, start, end};
}

}  // namespace

SHOAL_REMOTE(Target::Create, &Target::Noop, DriveOwnActor);

namespace {

struct Result {
  std::string name;
  int64_t calls = 0;
  double calls_per_s = 0;
  double p50_us = 0, p99_us = 0;
  std::string latency_of;
};

void Percentiles(std::vector<double> us, Result* r) {
  if (us.empty()) return;
  std::sort(us.begin(), us.end());
  r->p50_us = us[us.size() / 2];
  r->p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

Result Sync(const shoal::ActorHandle<Target>& actor, int64_t n) {
  std::vector<double> us;
  us.reserve(n);
  auto start = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    shoal::Get(actor.Task(&Target::Noop).Remote(i));
    us.push_back(Seconds(Clock::now() - t0) * 1e6);
  }
  Result r{"1_1_actor_calls_sync", n, n / Seconds(Clock::now() - start), 0, 0, "call"};
  Percentiles(std::move(us), &r);
  return r;
}

Result Async(const std::string& name, const shoal::ActorHandle<Target>& actor, int64_t batches, int64_t batch) {
  std::vector<double> us;
  double seconds = RunBatches(actor, batches, batch, &us);
  Result r{name, batches * batch, batches * batch / seconds, 0, 0, "batch of " + std::to_string(batch)};
  Percentiles(std::move(us), &r);
  return r;
}

Result NToN(int64_t callers, int64_t batches, int64_t batch) {
  std::vector<shoal::ObjectRef<std::tuple<int64_t, int64_t, int64_t>>> refs;
  for (int64_t i = 0; i < callers; ++i) refs.push_back(shoal::Task(DriveOwnActor).Remote(batches, batch));
  int64_t calls = 0, start = INT64_MAX, end = 0;
  for (const auto& r : shoal::Get(refs)) {
    calls += std::get<0>(*r);
    start = std::min(start, std::get<1>(*r));
    end = std::max(end, std::get<2>(*r));
  }
  return {"n_n_actor_calls_async", calls, calls / ((end - start) / 1e6), 0, 0,
          std::to_string(callers) + " callers"};
}

int Main(int argc, char** argv) {
  std::string address, json_path;
  int64_t num_cpus = 2, sync_n = 5000, batches = 20, batch = 1000, callers = 0, n_batches = 10;
  shoal::FlagSet flags("shoal-bench-actors");
  flags.AddString("address", &address, "GCS of a running cluster (default: start a local one)");
  flags.AddInt("num-cpus", &num_cpus, "CPUs of the local cluster's node");
  flags.AddInt("sync", &sync_n, "1_1_actor_calls_sync: calls");
  flags.AddInt("batches", &batches, "1_1 async and concurrent: batches");
  flags.AddInt("batch", &batch, "calls per batch");
  flags.AddInt("callers", &callers, "n_n_actor_calls_async: caller tasks (0: this machine's CPUs)");
  flags.AddInt("n-batches", &n_batches, "n_n_actor_calls_async: batches per caller");
  flags.AddString("json", &json_path, "write the figures here as JSON");
  absl::Status parsed = flags.Parse(argc, argv);

  shoal::InitOptions options;
  options.address = address;
  options.num_cpus = static_cast<int>(num_cpus);
  shoal::Init(options);  // a worker serves tasks from here and never returns
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n%s", std::string(parsed.message()).c_str(), flags.Usage().c_str());
    return 2;
  }
  const int64_t cpus = shoal::DetectCpuCount();
  if (callers <= 0) callers = cpus;

  auto actor = shoal::Actor(Target::Create).Remote();
  auto concurrent = shoal::Actor(Target::Create).SetMaxConcurrency(16).Remote();
  RunBatches(actor, 2, 1000, nullptr);  // warm-up: the actors are alive, connections open
  RunBatches(concurrent, 2, 1000, nullptr);

  std::vector<Result> results;
  results.push_back(Sync(actor, sync_n));
  results.push_back(Async("1_1_actor_calls_async", actor, batches, batch));
  results.push_back(Async("1_1_actor_calls_concurrent", concurrent, batches, batch));
  actor.Kill();
  concurrent.Kill();
  results.push_back(NToN(callers, n_batches, batch));

  std::printf("Shoal actor calls through the C++ API: %s, %ld CPUs on this machine\n",
              address.empty() ? ("local cluster with " + std::to_string(num_cpus) + " CPUs").c_str()
                              : ("cluster at " + address).c_str(),
              static_cast<long>(cpus));
  std::printf("%-28s %8s %12s %12s %12s  %s\n", "shape", "calls", "calls/s", "p50 us", "p99 us", "latency of");
  nlohmann::json out = {{"cpus", cpus},
                        {"cluster", address.empty() ? "local" : address},
                        {"local_num_cpus", address.empty() ? num_cpus : 0},
                        {"results", nlohmann::json::array()}};
  for (const Result& r : results) {
    std::printf("%-28s %8ld %12.0f %12.1f %12.1f  %s\n", r.name.c_str(), static_cast<long>(r.calls), r.calls_per_s,
                r.p50_us, r.p99_us, r.latency_of.c_str());
    out["results"].push_back({{"shape", r.name}, {"calls", r.calls}, {"calls_per_s", r.calls_per_s},
                              {"p50_us", r.p50_us}, {"p99_us", r.p99_us}, {"latency_of", r.latency_of}});
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  shoal::Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const shoal::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
