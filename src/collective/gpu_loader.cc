#include <dlfcn.h>

#include <mutex>
#include <vector>

#include "src/collective/gpu_backend.h"

namespace shoal::collective {
namespace {

std::string DirectoryOfThisLibrary() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&LoadGpuBackend), &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

}  // namespace

Status LoadGpuBackend(GpuBackend** out) {
  static std::once_flag once;
  static GpuBackend* backend = nullptr;
  static std::string problem;
  std::call_once(once, [] {
#ifndef SHOAL_HAVE_CUDA
    problem = "this build of Shoal has no CUDA/NCCL support (CUDA and NCCL were not found when it was built)";
#else
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("SHOAL_GPU_LIBRARY"); env != nullptr && *env != '\0') {
      candidates.push_back(env);
    } else {
      std::string dir = DirectoryOfThisLibrary();
      if (!dir.empty()) {
        candidates.push_back(dir + "/libshoal_gpu.so");
        candidates.push_back(dir + "/../lib/libshoal_gpu.so");
        candidates.push_back(dir + "/../../lib/libshoal_gpu.so");
      }
      candidates.push_back("libshoal_gpu.so");
    }
    std::string errors;
    for (const std::string& path : candidates) {
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        errors += std::string(errors.empty() ? "" : "; ") + dlerror();
        continue;
      }
      using Entry = GpuBackend* (*)();
      auto entry = reinterpret_cast<Entry>(dlsym(handle, "ShoalGpuBackend"));
      if (entry == nullptr) {
        errors += "; " + path + " has no ShoalGpuBackend";
        continue;
      }
      backend = entry();
      return;
    }
    problem = "cannot load Shoal's GPU library (libshoal_gpu.so): " + errors;
#endif
  });
  if (backend == nullptr) return FailedPrecondition(problem);
  *out = backend;
  return Status::Ok();
}

}  // namespace shoal::collective
