// Task benchmark through the public C++ API (include/shoal/api.h): sync round trips, async
// throughput, and tasks with 1 MiB arguments. Starts its own local single-node cluster through
// shoal::Init (--num-cpus CPUs), or joins --address. Prints a table and, with --json FILE,
// writes the figures as JSON. Not a test.
//
// Shapes follow `ray microbenchmark` (../shared/reference/performance_anchors.md):
//   sync      Get(Task(Noop).Remote(i)), one at a time                 (single_client_tasks_sync)
//   async     submit 1,000 no-op tasks, then Get all; batches repeated  (single_client_tasks_async)
//   arg_1mib  Task(Size).Remote(<1 MiB string>), Get, one at a time
//   arg_1mib_async  100 such tasks submitted, then Get all
//   arg_1mib_ref    the same 1 MiB value Put once, its ref passed to each task, one at a time
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "shoal/api.h"
#include "src/common/flags.h"
#include "src/common/system.h"

namespace {

int64_t Noop(int64_t x) { return x; }
int64_t Size(const std::string& blob) { return static_cast<int64_t>(blob.size()); }

}  // namespace

SHOAL_REMOTE(Noop, Size);

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Result {
  std::string name;
  int64_t tasks = 0;
  double tasks_per_s = 0;
  double p50_us = 0, p99_us = 0;  // per task (sync) or per batch (async)
  std::string latency_of;         // "task" or "batch of N"
  double mib_per_s = 0;           // argument bytes moved, for the 1 MiB shapes
};

void Percentiles(std::vector<double> us, Result* r) {
  std::sort(us.begin(), us.end());
  r->p50_us = us[us.size() / 2];
  r->p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
}

// One task at a time: submit, Get, repeat.
template <typename Submit>
Result Sync(const std::string& name, int64_t n, Submit submit) {
  std::vector<double> us;
  us.reserve(n);
  auto start = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    shoal::Get(submit(i));
    us.push_back(Seconds(Clock::now() - t0) * 1e6);
  }
  Result r;
  r.name = name;
  r.tasks = n;
  r.tasks_per_s = n / Seconds(Clock::now() - start);
  r.latency_of = "task";
  Percentiles(us, &r);
  return r;
}

// `batches` times: submit `batch` tasks, then Get them all.
template <typename Submit>
Result Async(const std::string& name, int64_t batches, int64_t batch, Submit submit) {
  using Ref = decltype(submit(int64_t{0}));
  std::vector<double> us;
  auto start = Clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    auto t0 = Clock::now();
    std::vector<Ref> refs;
    refs.reserve(batch);
    for (int64_t i = 0; i < batch; ++i) refs.push_back(submit(i));
    shoal::Get(refs);
    us.push_back(Seconds(Clock::now() - t0) * 1e6);
  }
  Result r;
  r.name = name;
  r.tasks = batches * batch;
  r.tasks_per_s = r.tasks / Seconds(Clock::now() - start);
  r.latency_of = "batch of " + std::to_string(batch);
  Percentiles(us, &r);
  return r;
}

int Main(int argc, char** argv) {
  std::string address, json_path;
  int64_t num_cpus = 2, sync_n = 2000, async_batches = 20, batch = 1000, large_n = 200, large_batch = 100;
  int64_t arg_bytes = 1 << 20;
  shoal::FlagSet flags("shoal-bench-tasks");
  flags.AddString("address", &address, "GCS of a running cluster (default: start a local one)");
  flags.AddInt("num-cpus", &num_cpus, "CPUs of the local cluster's node");
  flags.AddInt("sync", &sync_n, "sync round trips");
  flags.AddInt("async-batches", &async_batches, "async batches");
  flags.AddInt("batch", &batch, "tasks per async batch");
  flags.AddInt("large", &large_n, "sync round trips with a large argument");
  flags.AddInt("large-batch", &large_batch, "tasks per async batch with a large argument");
  flags.AddInt("arg-bytes", &arg_bytes, "size of the large argument");
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

  // Warm-up: start the workers and the leases.
  for (int round = 0; round < 3; ++round) {
    std::vector<shoal::ObjectRef<int64_t>> refs;
    for (int64_t i = 0; i < 200; ++i) refs.push_back(shoal::Task(Noop).Remote(i));
    shoal::Get(refs);
  }
  const std::string blob(arg_bytes, 'x');
  shoal::Get(shoal::Task(Size).Remote(blob));

  std::vector<Result> results;
  results.push_back(Sync("sync", sync_n, [](int64_t i) { return shoal::Task(Noop).Remote(i); }));
  results.push_back(Async("async", async_batches, batch, [](int64_t i) { return shoal::Task(Noop).Remote(i); }));
  const double mib = arg_bytes / 1048576.0;
  results.push_back(Sync("arg_1mib", large_n, [&](int64_t) { return shoal::Task(Size).Remote(blob); }));
  results.push_back(Async("arg_1mib_async", std::max<int64_t>(1, large_n / large_batch), large_batch,
                          [&](int64_t) { return shoal::Task(Size).Remote(blob); }));
  shoal::ObjectRef<std::string> blob_ref = shoal::Put(blob);
  results.push_back(Sync("arg_1mib_ref", large_n, [&](int64_t) { return shoal::Task(Size).Remote(blob_ref); }));
  for (size_t i = 2; i < results.size(); ++i) results[i].mib_per_s = results[i].tasks_per_s * mib;

  const int64_t cpus = shoal::DetectCpuCount();
  std::printf("Shoal tasks through the C++ API: %s, %ld CPUs on this machine\n",
              address.empty() ? ("local cluster with " + std::to_string(num_cpus) + " CPUs").c_str()
                              : ("cluster at " + address).c_str(),
              static_cast<long>(cpus));
  std::printf("%-16s %8s %12s %12s %12s  %-16s %10s\n", "shape", "tasks", "tasks/s", "p50 us", "p99 us",
              "latency of", "arg MiB/s");
  nlohmann::json out = {{"cpus", cpus},
                        {"cluster", address.empty() ? "local" : address},
                        {"local_num_cpus", address.empty() ? num_cpus : 0},
                        {"arg_bytes", arg_bytes},
                        {"results", nlohmann::json::array()}};
  for (const Result& r : results) {
    std::printf("%-16s %8ld %12.0f %12.1f %12.1f  %-16s %10.0f\n", r.name.c_str(), static_cast<long>(r.tasks),
                r.tasks_per_s, r.p50_us, r.p99_us, r.latency_of.c_str(), r.mib_per_s);
    out["results"].push_back({{"shape", r.name}, {"tasks", r.tasks}, {"tasks_per_s", r.tasks_per_s},
                              {"p50_us", r.p50_us}, {"p99_us", r.p99_us}, {"latency_of", r.latency_of},
                              {"arg_mib_per_s", r.mib_per_s}});
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
