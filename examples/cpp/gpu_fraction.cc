// Fractional GPUs: tasks that each ask for half a GPU share devices two by two, and each sees
// its device in CUDA_VISIBLE_DEVICES. GPUs can be declared without hardware, so this runs on
// any machine.
//
//   build/bin/shoal-example-gpu-fraction                     # local cluster with 2 declared GPUs
//   build/bin/shoal start --head --num-cpus 4 --num-gpus 2
//   build/bin/shoal-example-gpu-fraction --address 127.0.0.1:6379   # or SHOAL_ADDRESS=...
//
// Each task also takes one CPU (the default), so four run at once only with four CPUs.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "shoal/api.h"

// What a task sees: its CUDA_VISIBLE_DEVICES, its node and its process. The sleep keeps the
// tasks running at the same time, so that they must share.
std::tuple<std::string, std::string, int> WhereAmI(int hold_ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  const char* devices = std::getenv("CUDA_VISIBLE_DEVICES");
  return {devices != nullptr ? devices : "(unset)", shoal::CurrentNodeId(), static_cast<int>(getpid())};
}
SHOAL_REMOTE(WhereAmI);

int main(int argc, char** argv) {
  shoal::InitOptions options;
  options.num_gpus = 2;  // used only when Init starts a local cluster; each task
  options.num_cpus = 4;  // also takes 1 CPU, so four need four CPUs to run at once
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--address") == 0) options.address = argv[i + 1];
  }
  shoal::Init(options);

  constexpr int kTasks = 4;
  std::vector<shoal::ObjectRef<std::tuple<std::string, std::string, int>>> refs;
  for (int i = 0; i < kTasks; ++i) {
    refs.push_back(shoal::Task(WhereAmI).SetResources({{"GPU", 0.5}}).Remote(2000));
  }
  auto results = shoal::Get(refs);
  for (int i = 0; i < kTasks; ++i) {
    const auto& [devices, node, pid] = *results[i];
    std::cout << "task " << i << ": GPU 0.5 -> CUDA_VISIBLE_DEVICES=" << devices << "  node "
              << node.substr(0, 12) << "  pid " << pid << std::endl;
  }

  // A whole GPU takes a device of its own.
  auto whole = shoal::Task(WhereAmI).SetResources({{"GPU", 1}}).Remote(0);
  std::cout << "task with GPU 1 -> CUDA_VISIBLE_DEVICES=" << std::get<0>(*shoal::Get(whole)) << std::endl;
  shoal::Shutdown();
  return 0;
}
