// shoal_collective_driver: the C++ collective API (shoal/gpu.h) against a cluster, for
// tests/integration/test_collective.py. `host` runs --world ranks as threads of this driver
// (groups are per job), each running every operation on host buffers with the gloo backend, and
// prints what each rank produced; `nccl` tries to join an NCCL group (on a machine without a GPU
// it must fail with a clear error).
#include <numeric>
#include <thread>
#include <vector>

#include "shoal/gpu.h"
#include "tests/cpp/driver_main.h"

namespace {

struct Flags {
  std::string address;
  int64_t world = 2;
  std::string group = "cpp";
};

using shoal::gpu::DataType;
using shoal::gpu::ReduceOp;

nlohmann::json RunRank(const Flags& f, int my_rank) {
  shoal::gpu::GroupOptions options;
  options.backend = "gloo";
  options.join_timeout_s = 60;
  options.op_timeout_s = 60;
  auto group = shoal::gpu::Group::Init(f.group, static_cast<int>(f.world), my_rank, options);
  const int rank = group.rank(), world = group.size();
  std::vector<float> sum(1000, static_cast<float>(rank + 1));
  group.AllReduce(sum.data(), sum.size(), DataType::kFloat32);
  std::vector<int64_t> max(4, rank);
  group.AllReduce(max.data(), max.size(), DataType::kInt64, ReduceOp::kMax);
  std::vector<int32_t> bcast(3, rank == 0 ? 42 : -1);
  group.Broadcast(bcast.data(), bcast.size(), DataType::kInt32, 0);
  std::vector<double> mine(2, rank), all(2 * static_cast<size_t>(world));
  group.AllGather(mine.data(), all.data(), mine.size(), DataType::kFloat64);
  std::vector<uint8_t> got(3, 0);
  if (rank == 0) {
    uint8_t payload[3] = {1, 2, 3};
    group.Send(payload, 3, DataType::kUint8, world - 1);
  } else if (rank == world - 1) {
    group.Recv(got.data(), got.size(), DataType::kUint8, 0);
  }
  group.Barrier();
  std::string mismatch;
  try {  // world-size-1 groups cannot mismatch; others: rank 0 sends 2 elements, the rest 3
    std::vector<float> x(rank == 0 ? 2 : 3, 1.0f);
    if (world > 1) group.AllReduce(x.data(), x.size(), DataType::kFloat32);
  } catch (const shoal::Error& e) {
    mismatch = e.what();
  }
  group.Destroy();
  return nlohmann::json{{"rank", rank},      {"world", world}, {"sum", sum[0]},
                        {"sum_last", sum.back()}, {"max", max},   {"bcast", bcast},
                        {"allgather", all},  {"recv", got},    {"mismatch", mismatch}};
}

int Host(const Flags& f) {
  std::vector<nlohmann::json> results(static_cast<size_t>(f.world));
  std::vector<std::thread> threads;
  for (int r = 0; r < f.world; ++r) {
    threads.emplace_back([&, r] {
      try {
        results[static_cast<size_t>(r)] = RunRank(f, r);
      } catch (const std::exception& e) {
        results[static_cast<size_t>(r)] = nlohmann::json{{"exception", e.what()}};
      }
    });
  }
  for (auto& t : threads) t.join();
  std::cout << nlohmann::json{{"ranks", results}} << std::endl;
  return 0;
}

int Nccl(const Flags& f) {
  try {
    auto group = shoal::gpu::Group::Init(f.group, 1, 0);
    std::cout << nlohmann::json{{"joined", true}} << std::endl;
  } catch (const shoal::Error& e) {
    std::cout << nlohmann::json{{"joined", false}, {"error", e.what()}} << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  shoal::FlagSet flags("shoal_collective_driver");
  flags.AddInt("world", &f.world, "the group's world size");
  flags.AddString("group", &f.group, "the group's name");
  return driver::RunDriver(argc, argv, "shoal_collective_driver", flags, f,
                           std::map<std::string, int (*)(const Flags&)>{{"host", Host}, {"nccl", Nccl}});
}
