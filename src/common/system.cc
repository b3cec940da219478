#include "src/common/system.h"

#include <execinfo.h>
#include <sched.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"

namespace shoal {

int64_t DetectCpuCount() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

int64_t DetectMemoryBytes() {
  struct sysinfo info;
  if (sysinfo(&info) != 0) return 0;
  return static_cast<int64_t>(info.totalram) * info.mem_unit;
}

int64_t DetectGpuCount() {
  std::error_code ec;
  int64_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    (void)entry;
    ++count;
  }
  if (ec) return 0;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr) {
    std::vector<std::string> parts = absl::StrSplit(visible, ',', absl::SkipEmpty());
    return std::min<int64_t>(count, parts.size());
  }
  return count;
}

int64_t SharedMemoryBytes() {
  struct statvfs st;
  if (statvfs("/dev/shm", &st) != 0) return 0;
  return static_cast<int64_t>(st.f_blocks) * st.f_frsize;
}

std::string Hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

namespace {

void OnFatalSignal(int sig, siginfo_t* info, void*) {
  // Only async-signal-safe calls here (backtrace was called once before, so it does not load
  // its unwinder now).
  char line[128];
  const char* name = sigabbrev_np(sig);
  int n = std::snprintf(line, sizeof(line), "*** SIG%s (signal %d) received, fault address %p, pid %d; stack:\n",
                        name != nullptr ? name : "?", sig, info != nullptr ? info->si_addr : nullptr, getpid());
  if (n > 0) (void)!write(STDERR_FILENO, line, std::min<size_t>(n, sizeof(line) - 1));
  void* frames[64];
  int depth = backtrace(frames, 64);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  signal(sig, SIG_DFL);  // die of it, as without the handler
  raise(sig);
}

}  // namespace

void InstallCrashHandler() {
  void* warm[1];
  (void)backtrace(warm, 1);
  struct sigaction action = {};
  action.sa_sigaction = OnFatalSignal;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &action, nullptr);
}

void ConfigureMutexChecks() {
  const char* keep = std::getenv("SHOAL_MUTEX_DEADLOCK_DETECTION");
  if (keep != nullptr && std::string(keep) == "1") return;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace shoal
