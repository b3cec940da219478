#include "src/common/gpu_memory_caps.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "src/common/resources.h"

namespace shoal {

std::vector<std::pair<std::string, std::string>> GpuMemoryCapEnv(const std::string& mode,
                                                                 const std::string& memory_mib,
                                                                 const std::vector<int>& device_ids,
                                                                 const std::vector<int64_t>& shares) {
  double fraction = 1.0;
  for (int64_t share : shares) fraction = std::min(fraction, static_cast<double>(share) / FixedPoint::kScale);
  const bool capped = (mode == "mps" || mode == "framework") && !device_ids.empty() && fraction < 1.0;
  std::vector<std::pair<std::string, std::string>> env;
  if (!capped) {
    return {{"SHOAL_GPU_MEMORY_FRACTION", ""},
            {"XLA_PYTHON_CLIENT_MEM_FRACTION", ""},
            {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", ""},
            {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", ""}};
  }
  const std::string f = absl::StrFormat("%.4g", fraction);
  env = {{"SHOAL_GPU_MEMORY_FRACTION", f}, {"XLA_PYTHON_CLIENT_MEM_FRACTION", f}};
  if (mode == "mps") {
    std::map<int, int64_t> mib;
    for (absl::string_view part : absl::StrSplit(memory_mib, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv = absl::StrSplit(part, ':');
      int id = 0;
      int64_t m = 0;
      if (absl::SimpleAtoi(kv.first, &id) && absl::SimpleAtoi(kv.second, &m)) mib[id] = m;
    }
    std::vector<std::string> limits;
    for (size_t ordinal = 0; ordinal < device_ids.size(); ++ordinal) {
      auto it = mib.find(device_ids[ordinal]);
      if (it == mib.end()) continue;
      double share = ordinal < shares.size() ? static_cast<double>(shares[ordinal]) / FixedPoint::kScale : 1.0;
      limits.push_back(absl::StrCat(ordinal, "=", static_cast<int64_t>(std::floor(it->second * share)), "M"));
    }
    env.emplace_back("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", absl::StrJoin(limits, ","));
    env.emplace_back("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
                     std::to_string(std::max(1, static_cast<int>(std::lround(fraction * 100)))));
  } else {
    env.emplace_back("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "");
    env.emplace_back("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "");
  }
  return env;
}

}  // namespace shoal
