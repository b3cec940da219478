#include "src/raylet/gpu_memory_caps.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"
#include "src/common/resources.h"

namespace shoal {
namespace {

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// Runs `command` through the shell with `env` added; answers its exit status and stdout.
int Run(const std::string& command, const std::vector<std::pair<std::string, std::string>>& env, std::string* out) {
  std::string line;
  for (const auto& [k, v] : env) absl::StrAppend(&line, k, "='", v, "' ");
  absl::StrAppend(&line, command);
  FILE* p = popen(line.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    if (out != nullptr) out->append(buf, n);
  }
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// "0:81559,1:81559" from nvidia-smi, or "" when it cannot say.
std::string DeviceMemoryMib() {
  if (FindOnPath("nvidia-smi").empty()) return "";
  std::string out;
  if (Run("nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits 2>/dev/null", {}, &out) != 0) {
    return "";
  }
  std::vector<std::string> parts;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipWhitespace())) {
    std::vector<std::string> fields = absl::StrSplit(line, ',');
    int64_t index = 0, mib = 0;
    if (fields.size() == 2 && absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[0]), &index) &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[1]), &mib)) {
      parts.push_back(absl::StrCat(index, ":", mib));
    }
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace

absl::StatusOr<GpuMemoryCaps> StartGpuMemoryCaps(const std::string& requested, int64_t num_gpus,
                                                 const std::string& session_dir) {
  if (requested != "auto" && requested != "mps" && requested != "framework" && requested != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--gpu-memory-caps must be auto, mps, framework or off, got '", requested, "'"));
  }
  GpuMemoryCaps caps;
  if (num_gpus <= 0 || requested == "off") {
    caps.mode = "off";
    caps.why = num_gpus <= 0 ? "no GPUs on this node" : "--gpu-memory-caps=off";
    caps.worker_env = {{"SHOAL_GPU_MEMORY_CAPS", "off"}};
    return caps;
  }
  if (requested == "mps" || requested == "auto") {
    const std::string control = FindOnPath("nvidia-cuda-mps-control");
    std::string problem;
    std::string memory = DeviceMemoryMib();
    if (control.empty()) {
      problem = "nvidia-cuda-mps-control is not installed";
    } else if (memory.empty()) {
      problem = "nvidia-smi cannot report the devices' memory";
    } else {
      std::filesystem::path root = std::filesystem::path(session_dir) / "mps";
      caps.mps_pipe_dir = (root / "pipe").string();
      caps.mps_log_dir = (root / "log").string();
      std::error_code ec;
      std::filesystem::create_directories(caps.mps_pipe_dir, ec);
      std::filesystem::create_directories(caps.mps_log_dir, ec);
      std::vector<std::pair<std::string, std::string>> env = {{"CUDA_MPS_PIPE_DIRECTORY", caps.mps_pipe_dir},
                                                              {"CUDA_MPS_LOG_DIRECTORY", caps.mps_log_dir}};
      if (Run(absl::StrCat("'", control, "' -d 2>&1"), env, nullptr) != 0) {
        problem = "its control daemon did not start (see " + caps.mps_log_dir + ")";
        caps.mps_pipe_dir.clear();
      } else {
        caps.mode = "mps";
        caps.why = absl::StrCat("MPS control daemon started (pipe ", caps.mps_pipe_dir, ")");
        caps.worker_env = {{"SHOAL_GPU_MEMORY_CAPS", "mps"},
                           {"SHOAL_GPU_MEMORY_MIB", memory},
                           {"CUDA_MPS_PIPE_DIRECTORY", caps.mps_pipe_dir},
                           {"CUDA_MPS_LOG_DIRECTORY", caps.mps_log_dir}};
        return caps;
      }
    }
    if (requested == "mps") {
      return absl::FailedPreconditionError(absl::StrCat("--gpu-memory-caps=mps: ", problem));
    }
    caps.why = absl::StrCat("frameworks' caps (no MPS: ", problem, ")");
  } else {
    caps.why = "frameworks' caps (--gpu-memory-caps=framework)";
  }
  caps.mode = "framework";
  caps.worker_env = {{"SHOAL_GPU_MEMORY_CAPS", "framework"}};
  return caps;
}

void StopGpuMemoryCaps(const GpuMemoryCaps& caps) {
  if (caps.mps_pipe_dir.empty()) return;
  const std::string control = FindOnPath("nvidia-cuda-mps-control");
  if (control.empty()) return;
  std::vector<std::pair<std::string, std::string>> env = {{"CUDA_MPS_PIPE_DIRECTORY", caps.mps_pipe_dir},
                                                          {"CUDA_MPS_LOG_DIRECTORY", caps.mps_log_dir}};
  if (Run(absl::StrCat("echo quit | '", control, "' 2>&1"), env, nullptr) != 0) {
    spdlog::warn("could not stop the MPS control daemon of {}", caps.mps_pipe_dir);
  }
}

}  // namespace shoal
