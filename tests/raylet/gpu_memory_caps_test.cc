#include "src/raylet/gpu_memory_caps.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

namespace shoal {
namespace {

std::map<std::string, std::string> AsMap(const std::vector<std::pair<std::string, std::string>>& env) {
  return {env.begin(), env.end()};
}

TEST_CASE("gpu memory caps: a fractional task gets its share, a whole-GPU task none", "[gpu_memory_caps]") {
  auto half = AsMap(GpuMemoryCapEnv("framework", "", {1}, {5000}));
  CHECK(half["SHOAL_GPU_MEMORY_FRACTION"] == "0.5");
  CHECK(half["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5");
  CHECK(half["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"].empty());  // unset: not MPS

  auto whole = AsMap(GpuMemoryCapEnv("framework", "", {0, 1}, {10000, 10000}));
  CHECK(whole["SHOAL_GPU_MEMORY_FRACTION"].empty());
  CHECK(whole.count("SHOAL_GPU_MEMORY_FRACTION") == 1);  // listed, to be unset after a capped task

  auto none = AsMap(GpuMemoryCapEnv("framework", "", {}, {}));
  CHECK(none["SHOAL_GPU_MEMORY_FRACTION"].empty());

  auto off = AsMap(GpuMemoryCapEnv("off", "", {0}, {2500}));
  CHECK(off["SHOAL_GPU_MEMORY_FRACTION"].empty());
}

TEST_CASE("gpu memory caps: MPS limits are per visible ordinal, from each device's memory", "[gpu_memory_caps]") {
  // Devices 2 and 3 of the node (ordinals 0 and 1 in the worker), 80000 and 40000 MiB.
  auto env = AsMap(GpuMemoryCapEnv("mps", "0:1000,2:80000,3:40000", {2, 3}, {2500, 2500}));
  CHECK(env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=20000M,1=10000M");
  CHECK(env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25");
  CHECK(env["SHOAL_GPU_MEMORY_FRACTION"] == "0.25");
}

TEST_CASE("gpu memory caps: the node's mode and bad requests", "[gpu_memory_caps]") {
  const std::string dir = std::filesystem::temp_directory_path() / "shoal-gpu-caps-test";
  auto no_gpus = StartGpuMemoryCaps("auto", 0, dir);
  REQUIRE(no_gpus.ok());
  CHECK(no_gpus->mode == "off");
  auto off = StartGpuMemoryCaps("off", 2, dir);
  REQUIRE(off.ok());
  CHECK(off->mode == "off");
  auto framework = StartGpuMemoryCaps("framework", 2, dir);
  REQUIRE(framework.ok());
  CHECK(framework->mode == "framework");
  CHECK(AsMap(framework->worker_env)["SHOAL_GPU_MEMORY_CAPS"] == "framework");
  auto bad = StartGpuMemoryCaps("sometimes", 2, dir);
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(bad.status().message()).find("sometimes") != std::string::npos);
  // Without MPS on the machine: auto falls back to the frameworks' caps, mps is refused.
  const std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  setenv("PATH", "/nonexistent", 1);
  auto fallback = StartGpuMemoryCaps("auto", 1, dir);
  REQUIRE(fallback.ok());
  CHECK(fallback->mode == "framework");
  CHECK(fallback->why.find("no MPS") != std::string::npos);
  auto mps = StartGpuMemoryCaps("mps", 1, dir);
  CHECK(mps.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(mps.status().message()).find("nvidia-cuda-mps-control") != std::string::npos);
  setenv("PATH", path.c_str(), 1);
}

}  // namespace
}  // namespace shoal
