// shoal-raylet: the per-node daemon. See raylet.h.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/daemon.h"
#include "src/common/flags.h"
#include "src/raylet/gpu_memory_caps.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/raylet/raylet.h"

namespace shoal {
namespace {

struct Flags {
  AuthFlags auth;
  std::string gcs_address;
  std::string node_ip_address = "127.0.0.1";
  int64_t port = 0;
  std::string session_dir;
  std::string ready_file;
  bool head = false;
  bool scheduling_disabled = false;
  double num_cpus = -1;
  int64_t num_gpus = -1;
  int64_t memory = -1;
  int64_t object_store_memory = -1;
  std::string resources = "{}";
  std::string labels = "{}";
  std::string gpu_memory_caps = "auto";
  std::string store_socket;
  std::string spill_dir;
  int64_t report_period_ms = 1000;
  double gcs_connect_timeout_s = 5;
  double gcs_rpc_server_reconnect_timeout_s = 60;
  int64_t worker_idle_timeout_ms = 10000;
  int64_t max_idle_workers = -1;
  int64_t worker_start_timeout_ms = 60000;
  double memory_usage_threshold = 0.95;
  int64_t memory_monitor_refresh_ms = 250;
  int64_t min_worker_port = 0;
  int64_t max_worker_port = 0;
  int64_t runtime_env_cache_envs = 4;
  int64_t runtime_env_cache_packages = 32;
  std::vector<std::string> python_executables;
  std::vector<std::string> worker_program_dirs;
};

// The programs this raylet may start as workers (worker_command_policy.h), from its flags:
// Shoal's own directory and --worker-program-dirs; --python-executable, else python3 on PATH.
// InvalidArgument naming the flag for an entry that does not exist.
absl::StatusOr<WorkerCommandPolicyOptions> WorkerCommandsFromFlags(const Flags& f) {
  WorkerCommandPolicyOptions out;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.program_dirs.push_back(self.parent_path().string());
  auto add = [](const char* flag, const std::vector<std::string>& values, bool dir,
                std::vector<std::string>& into) -> absl::Status {
    for (const std::string& value : values) {
      for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
        const std::string path(absl::StripAsciiWhitespace(part));
        std::error_code e;
        const bool ok = path.starts_with("/") &&
                        (dir ? std::filesystem::is_directory(path, e) : std::filesystem::is_regular_file(path, e));
        if (!ok) {
          return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is not an absolute path to an existing ",
                                                         dir ? "directory" : "file"));
        }
        into.push_back(path);
      }
    }
    return absl::OkStatus();
  };
  if (auto s = add("--worker-program-dirs", f.worker_program_dirs, true, out.program_dirs); !s.ok()) return s;
  if (auto s = add("--python-executable", f.python_executables, false, out.python_executables); !s.ok()) return s;
  if (out.python_executables.empty()) {
    if (std::string python = WorkerCommandPolicy::DiscoverPython(); !python.empty()) {
      out.python_executables.push_back(python);
      out.python_names.push_back("python3");
    } else {
      spdlog::warn("no python3 on PATH answered: Python workers are refused here (give --python-executable)");
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(const std::string& text) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("--labels must be a JSON object of strings, got '", text, "'"));
  }
  std::map<std::string, std::string> out;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!it.value().is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("label '", it.key(), "' must be a string"));
    }
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

int Main(int argc, char** argv) {
  BlockTerminationSignals();
  Flags f;
  FlagSet flags("shoal-raylet");
  flags.AddString("gcs-address", &f.gcs_address, "HOST:PORT of the GCS (required)");
  flags.AddString("node-ip-address", &f.node_ip_address, "address this node listens on and is known by");
  flags.AddInt("port", &f.port, "port for the raylet's gRPC server (0 picks a free one)");
  flags.AddString("session-dir", &f.session_dir, "session directory; logs go to its logs/ (default: a new one)");
  flags.AddString("ready-file", &f.ready_file, "once registered, write {pid, port, node_id} as JSON here");
  flags.AddBool("head", &f.head, "this is the head node");
  flags.AddBool("scheduling-disabled", &f.scheduling_disabled, "this node's resources take no tasks");
  flags.AddDouble("num-cpus", &f.num_cpus, "CPUs to offer (negative: detect)");
  flags.AddInt("num-gpus", &f.num_gpus, "GPUs to offer (negative: detect)");
  flags.AddInt("memory", &f.memory, "memory in bytes to offer to tasks (negative: 70% of RAM)");
  flags.AddInt("object-store-memory", &f.object_store_memory, "object store size in bytes (negative: 30% of RAM)");
  flags.AddString("resources", &f.resources, "custom resources as JSON, e.g. {\"TPU\": 4}");
  flags.AddString("labels", &f.labels, "node labels as a JSON object of strings");
  flags.AddString("store-socket", &f.store_socket, "Unix socket of the object store (default: in the session dir)");
  flags.AddString("spill-dir", &f.spill_dir, "where the object store spills under memory pressure (default: <session>/spill)");
  flags.AddInt("report-period-ms", &f.report_period_ms, "how often the resource view is sent to the GCS");
  flags.AddDouble("gcs-connect-timeout-s", &f.gcs_connect_timeout_s, "how long to wait for the GCS at start");
  flags.AddDouble("gcs-rpc-server-reconnect-timeout-s", &f.gcs_rpc_server_reconnect_timeout_s,
                  "how long the GCS may stay unreachable before the workers of the leases it owns (detached "
                  "actors) are killed");
  flags.AddInt("worker-idle-timeout-ms", &f.worker_idle_timeout_ms,
               "idle workers beyond --max-idle-workers are killed after being idle this long");
  flags.AddInt("max-idle-workers", &f.max_idle_workers, "idle workers kept warm (negative: the node's CPU count)");
  flags.AddInt("worker-start-timeout-ms", &f.worker_start_timeout_ms,
               "a started worker that has not registered within this time is killed");
  flags.AddDouble("memory-usage-threshold", &f.memory_usage_threshold,
                  "kill a leased worker when the node's memory use (page cache not counted; the cgroup's "
                  "limit if lower) passes this fraction, in (0, 1]");
  flags.AddInt("memory-monitor-refresh-ms", &f.memory_monitor_refresh_ms,
               "how often the memory monitor reads the node's memory (0 disables it)");
  flags.AddInt("min-worker-port", &f.min_worker_port, "lowest port a worker listens on (0: any free port)");
  flags.AddInt("max-worker-port", &f.max_worker_port, "highest port a worker listens on");
  flags.AddInt("runtime-env-cache-envs", &f.runtime_env_cache_envs,
               "unused runtime-env virtualenvs kept for reuse (least recently used deleted first)");
  flags.AddInt("runtime-env-cache-packages", &f.runtime_env_cache_packages,
               "unused runtime-env packages (working_dir, py_modules) kept unpacked for reuse");
  flags.AddStringList("python-executable", &f.python_executables,
                      "Python interpreter(s) whose `-m shoal.worker` this node starts (comma-separated or repeated; "
                      "default: python3 on PATH)");
  flags.AddStringList("worker-program-dirs", &f.worker_program_dirs,
                      "directories of other programs (C++ drivers) this node may start as workers, besides Shoal's own");
  flags.AddString("gpu-memory-caps", &f.gpu_memory_caps,
                  "how workers given a fraction of a GPU are held to that fraction of its memory: auto (MPS where "
                  "available, else the frameworks' caps), mps, framework, or off");
  AddAuthFlags(flags, &f.auth);
  if (std::optional<int> exit_code = ParseDaemonFlags(flags, argc, argv)) return *exit_code;
  if (absl::Status s = ConfigureDaemonAuth(f.auth, "shoal-raylet"); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 2;
  }
  // Workers inherit the token through the environment (the spawner passes environ on).
  if (std::string token = ClusterToken(); token.empty()) {
    unsetenv(kAuthTokenEnv);
  } else {
    setenv(kAuthTokenEnv, token.c_str(), 1);
  }
  unsetenv(kAuthTokenFileEnv);
  absl::StatusOr<WorkerCommandPolicyOptions> worker_commands = WorkerCommandsFromFlags(f);
  if (!worker_commands.ok()) {
    ReportFatal(std::string(worker_commands.status().message()));
    return 2;
  }
  if (auto hp = ParseHostPort(f.gcs_address); !hp.ok()) {
    ReportFatal(absl::StrCat("--gcs-address: ", hp.status().message()));
    return 2;
  }
  if (f.port < 0 || f.port > 65535 || f.report_period_ms <= 0 || f.gcs_connect_timeout_s <= 0) {
    ReportFatal("--port must be in 0..65535; --report-period-ms and --gcs-connect-timeout-s positive");
    return 2;
  }
  if (!(f.gcs_rpc_server_reconnect_timeout_s > 0)) {
    ReportFatal(absl::StrCat("--gcs-rpc-server-reconnect-timeout-s must be positive, got ",
                             f.gcs_rpc_server_reconnect_timeout_s));
    return 2;
  }
  if (f.worker_idle_timeout_ms < 0 || f.worker_start_timeout_ms <= 0 || f.max_idle_workers > 1000000) {
    ReportFatal("--worker-idle-timeout-ms must not be negative, --worker-start-timeout-ms must be positive");
    return 2;
  }
  if ((f.min_worker_port != 0 || f.max_worker_port != 0) &&
      !(f.min_worker_port >= 1 && f.max_worker_port <= 65535 && f.min_worker_port <= f.max_worker_port)) {
    ReportFatal(absl::StrCat("--min-worker-port and --max-worker-port must be a range in 1..65535, got ",
                             f.min_worker_port, "..", f.max_worker_port));
    return 2;
  }
  if (f.runtime_env_cache_envs < 0 || f.runtime_env_cache_packages < 0 || f.runtime_env_cache_envs > 100000 ||
      f.runtime_env_cache_packages > 100000) {
    ReportFatal("--runtime-env-cache-envs and --runtime-env-cache-packages must be in 0..100000");
    return 2;
  }
  const MemoryMonitorOptions memory_monitor{.usage_threshold = f.memory_usage_threshold,
                                            .refresh_period = absl::Milliseconds(f.memory_monitor_refresh_ms)};
  if (absl::Status s = ValidateMemoryMonitorOptions(memory_monitor); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 2;
  }
  auto custom = ResourceSet::FromJson(f.resources);
  if (!custom.ok()) {
    ReportFatal(absl::StrCat("--resources: ", custom.status().message()));
    return 2;
  }
  auto labels = ParseLabels(f.labels);
  if (!labels.ok()) {
    ReportFatal(std::string(labels.status().message()));
    return 2;
  }
  auto resources = NodeResourcesFromFlags(f.num_cpus, f.num_gpus, f.memory, f.object_store_memory, *custom,
                                          f.node_ip_address, f.head);
  if (!resources.ok()) {
    ReportFatal(std::string(resources.status().message()));
    return 2;
  }
  if (auto dir = SetUpDaemonSession("raylet", f.session_dir); dir.ok()) {
    f.session_dir = *dir;
  } else {
    ReportFatal(std::string(dir.status().message()));
    return 1;
  }

  const int64_t num_gpus = resources->Get(kGPU).units() / FixedPoint::kScale;
  auto gpu_caps = StartGpuMemoryCaps(f.gpu_memory_caps, num_gpus, f.session_dir);
  if (!gpu_caps.ok()) {
    ReportFatal(std::string(gpu_caps.status().message()));
    return 2;
  }
  if (num_gpus > 0) {
    (*labels)[kGpuMemoryCapsLabel] = gpu_caps->mode;
    spdlog::info("GPU memory caps: {} ({})", gpu_caps->mode, gpu_caps->why);
  }
  struct StopCaps {
    const GpuMemoryCaps& caps;
    ~StopCaps() { StopGpuMemoryCaps(caps); }
  } stop_caps{*gpu_caps};

  RayletOptions options{.gcs_address = f.gcs_address,
                        .node_ip = f.node_ip_address,
                        .port = static_cast<int>(f.port),
                        .is_head = f.head,
                        .scheduling_disabled = f.scheduling_disabled,
                        .resources = *resources,
                        .labels = *labels,
                        .session_dir = f.session_dir,
                        .store_socket = f.store_socket,
                        .spill_dir = f.spill_dir,
                        .report_period = absl::Milliseconds(f.report_period_ms),
                        .gcs_connect_timeout = absl::Seconds(f.gcs_connect_timeout_s),
                        .worker_idle_timeout = absl::Milliseconds(f.worker_idle_timeout_ms),
                        .max_idle_workers = static_cast<int>(f.max_idle_workers),
                        .worker_start_timeout = absl::Milliseconds(f.worker_start_timeout_ms),
                        .memory_monitor = memory_monitor,
                        .min_worker_port = static_cast<int>(f.min_worker_port),
                        .max_worker_port = static_cast<int>(f.max_worker_port),
                        .runtime_env_max_unused_envs = static_cast<int>(f.runtime_env_cache_envs),
                        .runtime_env_max_unused_packages = static_cast<int>(f.runtime_env_cache_packages),
                        .gcs_reconnect_timeout = absl::Seconds(f.gcs_rpc_server_reconnect_timeout_s),
                        .worker_env = gpu_caps->worker_env,
                        .worker_commands = *std::move(worker_commands)};
  Raylet raylet(options);
  if (auto s = raylet.Start(); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 1;
  }
  if (!f.ready_file.empty()) {
    nlohmann::json ready = {{"pid", getpid()}, {"port", raylet.port()}, {"node_id", raylet.node_id().Hex()},
                            {"store_socket", raylet.store_socket()}};
    if (auto s = WriteFileAtomically(f.ready_file, ready.dump()); !s.ok()) {
      ReportFatal(std::string(s.message()));
      return 1;
    }
  }
  std::printf("shoal-raylet node %s registered, serving on %s:%d\n", raylet.node_id().Hex().c_str(),
              f.node_ip_address.c_str(), raylet.port());
  std::fflush(stdout);

  // A fatal error on the reporter thread wakes the main thread through the same signal path.
  std::atomic<bool> exiting{false};
  std::thread watcher([&raylet, &exiting] {
    while (!exiting) {
      if (raylet.fatal().WaitForNotificationWithTimeout(absl::Milliseconds(200))) {
        kill(getpid(), SIGTERM);
        return;
      }
    }
  });
  int sig = WaitForTerminationSignal();
  exiting = true;
  watcher.join();
  raylet.Stop();
  if (!raylet.fatal_error().empty()) {
    ReportFatal(raylet.fatal_error());
    return 1;
  }
  spdlog::info("stopped by signal {}", sig);
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
