// `shoal start`: starts a head node (GCS and raylet) or a worker node (a raylet joining a running
// GCS) as daemons on this machine, and returns once they are ready.
//
// Each start makes a new session directory. A daemon logs to <session>/logs/ (its own
// <name>.log, and <name>.out / <name>.err for stdout and stderr), says it is ready by writing
// <session>/<name>.ready.json, and is recorded in <session>/processes/<name>.json the moment it
// is spawned (see local_state.h), so `shoal stop` finds it even if this command is interrupted.
// When a step fails, whatever this command started is stopped again and nothing is left running.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/cli/commands.h"
#include "src/cluster/local_state.h"
#include "src/cluster/token.h"
#include "src/common/auth.h"
#include "src/common/daemon.h"
#include "src/common/dashboard_tls.h"
#include "src/common/tls.h"
#include "src/common/resources.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/gcs_client/gcs_client.h"

namespace shoal::cli {
namespace fs = std::filesystem;
namespace {

constexpr absl::Duration kReadyTimeout = absl::Seconds(15);
constexpr absl::Duration kReadyPoll = absl::Milliseconds(50);
constexpr absl::Duration kCleanupGrace = absl::Seconds(5);
constexpr absl::Duration kGcsCheckTimeout = absl::Seconds(5);
constexpr char kGcsBinary[] = "shoal-gcs";
constexpr char kRayletBinary[] = "shoal-raylet";
constexpr char kDashboardBinary[] = "shoal-dashboard";

constexpr char kHelp[] = R"(
Start a new cluster on this machine (its GCS and first raylet):
    shoal start --head [--port 6379] [--num-cpus N] [--num-gpus N] [--resources '{"TPU": 4}']
Add this machine as a node of a running cluster (run as often as you like; each start is
one more node with its own session directory and raylet port):
    shoal start --address HEAD_IP:6379 [--num-cpus N] [--num-gpus N] ...
Sizes are in bytes; -1 means detect (CPUs, GPUs, memory) or use the default.
As a container's main process or under a supervisor, add --block: the command stays in the
foreground, stops the node on SIGTERM, and exits non-zero if one of the node's processes dies.
)";

struct StartOptions {
  bool head = false;
  std::string address;
  int64_t port = 6379;
  std::string node_ip_address;  // "": 127.0.0.1 for a head, the route to the GCS for a node
  int64_t num_cpus = -1;
  int64_t num_gpus = -1;
  int64_t memory = -1;
  int64_t object_store_memory = -1;
  std::string resources;
  std::string labels;
  std::string redis_address;
  std::string redis_password;
  bool no_head_scheduling = false;
  int64_t health_check_period_ms = -1;
  int64_t health_check_timeout_ms = -1;
  int64_t health_check_failure_threshold = -1;
  int64_t report_period_ms = -1;
  double memory_usage_threshold = -1;
  int64_t memory_monitor_refresh_ms = -1;
  int64_t runtime_env_cache_envs = -1;
  int64_t runtime_env_cache_packages = -1;
  std::string gpu_memory_caps;  // empty: the raylet's default (auto)
  std::vector<std::string> python_executables;   // passed on to the raylet (worker_command_policy.h)
  std::vector<std::string> worker_program_dirs;
  bool include_dashboard = true;
  int64_t dashboard_port = 8265;
  std::string dashboard_host = "127.0.0.1";
  DashboardTlsFiles dashboard_tls;  // HTTPS for the dashboard (dashboard_tls.h)
  bool disable_auth = false;
  std::string auth_token;       // the cluster's token (a head makes one when none is given)
  std::string auth_token_file;  // a file holding it
  TlsFiles tls;                 // mutual TLS for every gRPC connection (tls.h)
  bool block = false;
  std::string temp_dir;         // "": ShoalTempRoot()
  int64_t min_worker_port = 0;  // 0 (both): workers listen on any free port
  int64_t max_worker_port = 0;
};

// Flags that only mean something with --head.
const std::vector<std::string> kHeadOnlyFlags = {
    "port", "redis-address", "redis-password", "no-head-scheduling", "health-check-period-ms",
    "health-check-timeout-ms", "health-check-failure-threshold", "include-dashboard", "dashboard-port",
    "dashboard-host", "dashboard-tls-cert", "dashboard-tls-key"};

void AddFlags(FlagSet& flags, StartOptions* o) {
  flags.AddBool("head", &o->head, "start a new cluster: the GCS and this node's raylet");
  flags.AddString("address", &o->address, "join the cluster whose GCS is at HOST:PORT");
  flags.AddInt("port", &o->port, "GCS port with --head (0 picks a free one)");
  flags.AddString("node-ip-address", &o->node_ip_address,
                  "IP address this node's servers listen on and are known by (default: 127.0.0.1 for --head; with "
                  "--address, this machine's address on the route to the GCS)");
  flags.AddBool("block", &o->block,
                "stay in the foreground (a container's main process): SIGTERM or SIGINT stops this node's processes; "
                "exits non-zero as soon as one of them dies");
  flags.AddString("temp-dir", &o->temp_dir,
                  "root of the session directories (default: $SHOAL_TMPDIR, else /tmp/shoal); clients on this "
                  "machine then need SHOAL_TMPDIR set to it");
  flags.AddInt("min-worker-port", &o->min_worker_port,
               "lowest port a worker listens on (with --max-worker-port; default 0: any free port)");
  flags.AddInt("max-worker-port", &o->max_worker_port, "highest port a worker listens on");
  flags.AddInt("num-cpus", &o->num_cpus, "CPUs this node offers (-1: detect)");
  flags.AddInt("num-gpus", &o->num_gpus, "GPUs this node offers (-1: detect)");
  flags.AddInt("memory", &o->memory, "memory in bytes that tasks may reserve (-1: detect)");
  flags.AddInt("object-store-memory", &o->object_store_memory, "object store size in bytes (-1: default)");
  flags.AddString("resources", &o->resources, "custom resources as JSON, e.g. '{\"TPU\": 4}'");
  flags.AddString("labels", &o->labels, "node labels as a JSON object of strings, e.g. '{\"zone\": \"a\"}'");
  flags.AddString("redis-address", &o->redis_address, "with --head: keep the GCS's tables in Redis at HOST:PORT");
  flags.AddString("redis-password", &o->redis_password, "with --head: password for --redis-address");
  flags.AddBool("no-head-scheduling", &o->no_head_scheduling, "with --head: run no tasks on the head node");
  flags.AddInt("health-check-period-ms", &o->health_check_period_ms,
               "with --head: how often the GCS checks each raylet (-1: GCS default)");
  flags.AddInt("health-check-timeout-ms", &o->health_check_timeout_ms,
               "with --head: how long one health check may take (-1: GCS default)");
  flags.AddInt("health-check-failure-threshold", &o->health_check_failure_threshold,
               "with --head: failed checks before a node is declared dead (-1: GCS default)");
  flags.AddBool("include-dashboard", &o->include_dashboard,
                "with --head: start shoal-dashboard (jobs API, web UI, /metrics); --include-dashboard=false skips it");
  flags.AddInt("dashboard-port", &o->dashboard_port, "with --head: the dashboard's HTTP port (0 picks a free one)");
  flags.AddString("dashboard-host", &o->dashboard_host, "with --head: the address the dashboard listens on");
  AddDashboardTlsFlags(flags, &o->dashboard_tls);
  flags.AddBool("disable-auth", &o->disable_auth,
                "run without the cluster token: every RPC and the dashboard accept anyone (trusted networks only)");
  flags.AddString("auth-token", &o->auth_token,
                  "the cluster's token: with --head, use it instead of making one (e.g. from a secret store); "
                  "with --address, the one to join with (default: --auth-token-file, else the token of the "
                  "cluster started on this machine)");
  flags.AddString("auth-token-file", &o->auth_token_file,
                  "a file holding the cluster's token (with --head: use it instead of making one)");
  flags.AddInt("report-period-ms", &o->report_period_ms,
               "how often the raylet reports its resources to the GCS (-1: raylet default)");
  AddTlsFlags(flags, &o->tls);
  flags.AddDouble("memory-usage-threshold", &o->memory_usage_threshold,
                  "the raylet kills a leased worker when the node's memory use passes this fraction, in (0, 1] "
                  "(default: the raylet's, 0.95)");
  flags.AddInt("memory-monitor-refresh-ms", &o->memory_monitor_refresh_ms,
               "how often the raylet reads the node's memory; 0 disables its memory monitor "
               "(default: the raylet's, 250)");
  flags.AddInt("runtime-env-cache-envs", &o->runtime_env_cache_envs,
               "unused runtime-env virtualenvs the raylet keeps for reuse (default: the raylet's, 4)");
  flags.AddStringList("python-executable", &o->python_executables,
                      "Python interpreter(s) whose `-m shoal.worker` this node starts (comma-separated or repeated; "
                      "default: python3 on PATH); drivers must run one of them or a virtualenv made from one");
  flags.AddStringList("worker-program-dirs", &o->worker_program_dirs,
                      "directories of other programs (C++ drivers) this node may start as workers, besides Shoal's "
                      "own binaries");
  flags.AddString("gpu-memory-caps", &o->gpu_memory_caps,
                  "how a worker given a fraction of a GPU is held to that fraction of its memory: auto (CUDA MPS "
                  "where available, else the frameworks' caps), mps, framework, or off (default: auto)");
  flags.AddInt("runtime-env-cache-packages", &o->runtime_env_cache_packages,
               "unused runtime-env packages (working_dir, py_modules) the raylet keeps unpacked (default: the "
               "raylet's, 32)");
}

absl::Status CheckAtLeast(const FlagSet& flags, const std::string& name, int64_t value, int64_t min) {
  if (!flags.WasSet(name) || value >= min) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", name, " must be >= ", min, ", got ", value));
}

absl::Status ValidateResources(const std::string& json) {
  absl::StatusOr<ResourceSet> resources = ResourceSet::FromJson(json);
  if (!resources.ok()) return absl::InvalidArgumentError(absl::StrCat("--resources: ", resources.status().message()));
  static const std::map<std::string, std::string> kOwnFlag = {
      {kCPU, "--num-cpus"}, {kGPU, "--num-gpus"}, {kMemory, "--memory"}, {kObjectStoreMemory, "--object-store-memory"}};
  for (const auto& [name, amount] : resources->entries()) {
    if (auto it = kOwnFlag.find(name); it != kOwnFlag.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--resources must not set ", name, "; use ", it->second));
    }
    if (absl::StartsWith(name, kNodePrefix)) {
      return absl::InvalidArgumentError(absl::StrCat("--resources: names starting with '", kNodePrefix, "' are reserved"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLabels(const std::string& json) {
  nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  bool ok = !doc.is_discarded() && doc.is_object();
  for (auto it = doc.begin(); ok && it != doc.end(); ++it) ok = it.value().is_string();
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--labels must be a JSON object of strings like {\"zone\": \"a\"}, got '", json, "'"));
}

// Whether the command line asks for a head or a worker, and whether every value is sane.
// REQUIRES: `o` comes from `flags` parsing argv.
absl::Status Validate(const StartOptions& o, const FlagSet& flags, int argc, char** argv) {
  if (o.head != o.address.empty()) {
    return absl::InvalidArgumentError(o.head ? "--head and --address cannot be used together"
                                             : "pass --head to start a new cluster, or --address HOST:PORT to join one");
  }
  if (o.disable_auth && (GivenOnCommandLine(argc, argv, "auth-token") || GivenOnCommandLine(argc, argv, "auth-token-file"))) {
    return absl::InvalidArgumentError("--disable-auth contradicts --auth-token/--auth-token-file");
  }
  if (!o.head) {
    for (const std::string& name : kHeadOnlyFlags) {
      if (GivenOnCommandLine(argc, argv, name)) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " only applies with --head"));
      }
    }
    if (absl::Status s = ParseHostPort(o.address).status(); !s.ok()) return s;
  }
  if (o.dashboard_port < 0 || o.dashboard_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--dashboard-port must be 0..65535, got ", o.dashboard_port));
  }
  if (o.port < 0 || o.port > 65535) return absl::InvalidArgumentError(absl::StrCat("--port must be 0..65535, got ", o.port));
  if (GivenOnCommandLine(argc, argv, "node-ip-address") && o.node_ip_address.empty()) {
    return absl::InvalidArgumentError("--node-ip-address must not be empty");
  }
  if ((o.min_worker_port != 0 || o.max_worker_port != 0) &&
      !(o.min_worker_port >= 1 && o.max_worker_port <= 65535 && o.min_worker_port <= o.max_worker_port)) {
    return absl::InvalidArgumentError(absl::StrCat("--min-worker-port and --max-worker-port must be given together, as a ",
                                                   "range in 1..65535; got ", o.min_worker_port, "..", o.max_worker_port));
  }
  if (GivenOnCommandLine(argc, argv, "temp-dir") && o.temp_dir.empty()) {
    return absl::InvalidArgumentError("--temp-dir must not be empty");
  }
  for (const auto& [name, value] : std::vector<std::pair<std::string, int64_t>>{
           {"num-cpus", o.num_cpus}, {"num-gpus", o.num_gpus}, {"memory", o.memory},
           {"object-store-memory", o.object_store_memory}}) {
    if (absl::Status s = CheckAtLeast(flags, name, value, 0); !s.ok()) return s;
  }
  for (const auto& [name, value] : std::vector<std::pair<std::string, int64_t>>{
           {"health-check-period-ms", o.health_check_period_ms}, {"health-check-timeout-ms", o.health_check_timeout_ms},
           {"health-check-failure-threshold", o.health_check_failure_threshold},
           {"report-period-ms", o.report_period_ms}}) {
    if (absl::Status s = CheckAtLeast(flags, name, value, 1); !s.ok()) return s;
  }
  if (flags.WasSet("memory-usage-threshold") && !(o.memory_usage_threshold > 0 && o.memory_usage_threshold <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--memory-usage-threshold must be above 0 and at most 1 (a fraction of the node's memory), got ",
        o.memory_usage_threshold));
  }
  for (const char* name : {"memory-monitor-refresh-ms", "runtime-env-cache-envs", "runtime-env-cache-packages"}) {
    const int64_t value = std::string(name) == "memory-monitor-refresh-ms" ? o.memory_monitor_refresh_ms
                          : std::string(name) == "runtime-env-cache-envs"  ? o.runtime_env_cache_envs
                                                                           : o.runtime_env_cache_packages;
    if (absl::Status s = CheckAtLeast(flags, name, value, 0); !s.ok()) return s;
  }
  if (flags.WasSet("gpu-memory-caps") && o.gpu_memory_caps != "auto" && o.gpu_memory_caps != "mps" &&
      o.gpu_memory_caps != "framework" && o.gpu_memory_caps != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu-memory-caps must be auto, mps, framework or off, got '", o.gpu_memory_caps, "'"));
  }
  if (!o.resources.empty()) {
    if (absl::Status s = ValidateResources(o.resources); !s.ok()) return s;
  }
  if (!o.labels.empty()) {
    if (absl::Status s = ValidateLabels(o.labels); !s.ok()) return s;
  }
  if (!o.redis_address.empty()) {
    if (absl::Status s = ParseHostPort(o.redis_address).status(); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--redis-address: ", s.message()));
    }
  } else if (!o.redis_password.empty()) {
    return absl::InvalidArgumentError("--redis-password needs --redis-address");
  }
  if (o.head) {
    // Checked here, where a bad file fails the start: the dashboard failing later is only a warning.
    if (absl::Status s = DashboardServerContext(o.dashboard_tls).status(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The daemons live next to the `shoal` binary.
absl::StatusOr<std::string> FindBinary(const std::string& name) {
  std::error_code ec;
  fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot find this program's directory: ", ec.message()));
  fs::path path = dir / name;
  if (access(path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("cannot find ", name, " next to shoal in ", dir.string()));
  }
  return path.string();
}

struct LaunchRequest {
  std::string name;  // cluster::kGcs, cluster::kRaylet
  std::string binary;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
};

struct Daemon {
  cluster::ProcessRecord record;
  nlohmann::json ready;  // what the daemon wrote to its ready file
};

// Stops a daemon this command started and forgets its record.
void StopAndForget(const cluster::ProcessRecord& record) {
  (void)cluster::StopProcesses({record.id}, kCleanupGrace);
  (void)cluster::RemoveProcessRecord(record);
}

// Why a daemon that exited early failed: by the daemons' contract, the `error: <reason>` line
// it wrote to stderr (its logger may add lines after it), else its last line.
std::string ExitReason(const std::string& binary, const std::string& how, const std::string& stderr_path,
                       const std::string& log_dir) {
  constexpr std::string_view kPrefix = "error: ";
  std::ifstream in(stderr_path);
  std::string line, last, error;
  while (std::getline(in, line)) {
    if (line.starts_with(kPrefix)) error = line.substr(kPrefix.size());
    if (!absl::StripAsciiWhitespace(line).empty()) last = line;
  }
  if (!error.empty()) return error;
  if (!last.empty()) return last;
  return absl::StrCat(fs::path(binary).filename().string(), " ", how, " before it was ready; see ", log_dir);
}

absl::StatusOr<nlohmann::json> WaitForReady(const cluster::ProcessRecord& record, const std::string& ready_path,
                                            const std::string& stderr_path, const std::string& log_dir) {
  const absl::Time deadline = absl::Now() + kReadyTimeout;
  while (absl::Now() < deadline) {
    if (absl::StatusOr<nlohmann::json> ready = cluster::ReadJsonObject(ready_path); ready.ok()) return ready;
    if (std::optional<std::string> how = cluster::ReapIfExited(record.id.pid)) {
      return absl::UnavailableError(ExitReason(record.binary, *how, stderr_path, log_dir));
    }
    absl::SleepFor(kReadyPoll);
  }
  return absl::DeadlineExceededError(absl::StrCat(fs::path(record.binary).filename().string(),
                                                  " did not become ready within ", absl::FormatDuration(kReadyTimeout),
                                                  "; see ", log_dir));
}

// Spawns a daemon, records it and waits until it is ready. On failure nothing is left running.
absl::StatusOr<Daemon> Launch(const std::string& session_dir, LaunchRequest request) {
  const fs::path session(session_dir);
  const std::string ready_path = (session / (request.name + ".ready.json")).string();
  const std::string log_dir = (session / "logs").string();
  request.args.insert(request.args.end(), {"--session-dir", session_dir, "--ready-file", ready_path});
  cluster::DaemonSpec spec{.binary = request.binary,
                  .args = request.args,
                  .stdout_path = (session / "logs" / (request.name + ".out")).string(),
                  .stderr_path = (session / "logs" / (request.name + ".err")).string(),
                  .env = request.env};
  absl::StatusOr<cluster::ProcessId> id = cluster::SpawnDaemon(spec);
  if (!id.ok()) return id.status();
  cluster::ProcessRecord record;
  record.name = request.name;
  record.id = *id;
  record.binary = request.binary;
  if (absl::Status s = cluster::WriteProcessRecord(session_dir, &record); !s.ok()) {
    (void)cluster::StopProcesses({record.id}, kCleanupGrace);
    return s;
  }
  absl::StatusOr<nlohmann::json> ready = WaitForReady(record, ready_path, spec.stderr_path, log_dir);
  if (!ready.ok()) {
    StopAndForget(record);
    return ready.status();
  }
  return Daemon{record, *std::move(ready)};
}

// The daemons' auth flags: the token file, or an explicit --disable-auth ("" token file). Both
// spelled out so that a SHOAL_DISABLE_AUTH in this environment cannot change them.
std::vector<std::string> AuthArgs(const std::string& token_file) {
  if (token_file.empty()) return {"--disable-auth=true"};
  return {"--auth-token-file", token_file, "--disable-auth=false"};
}

LaunchRequest GcsRequest(const StartOptions& o, const std::string& binary, const std::string& token_file) {
  LaunchRequest r;
  r.name = cluster::kGcs;
  r.binary = binary;
  r.args = {"--host", o.node_ip_address, "--port", std::to_string(o.port)};
  for (std::string& arg : AuthArgs(token_file)) r.args.push_back(std::move(arg));
  if (!o.redis_address.empty()) r.args.insert(r.args.end(), {"--redis-address", o.redis_address});
  // Through the environment, so the password does not show in `ps`.
  if (!o.redis_password.empty()) r.env["SHOAL_REDIS_PASSWORD"] = o.redis_password;
  for (const auto& [flag, value] : std::vector<std::pair<std::string, int64_t>>{
           {"--health-check-period-ms", o.health_check_period_ms},
           {"--health-check-timeout-ms", o.health_check_timeout_ms},
           {"--health-check-failure-threshold", o.health_check_failure_threshold}}) {
    if (value > 0) r.args.insert(r.args.end(), {flag, std::to_string(value)});
  }
  return r;
}

// Every raylet flag is passed explicitly so that SHOAL_* variables meant for the CLI (such
// as SHOAL_PORT) cannot leak into the raylet through its own environment fallback.
LaunchRequest RayletRequest(const StartOptions& o, const std::string& binary, const std::string& gcs_address,
                            const std::string& token_file) {
  LaunchRequest r;
  r.name = cluster::kRaylet;
  r.binary = binary;
  r.args = {"--gcs-address", gcs_address,
            "--node-ip-address", o.node_ip_address,
            "--port", "0",
            "--num-cpus", std::to_string(o.num_cpus),
            "--num-gpus", std::to_string(o.num_gpus),
            "--memory", std::to_string(o.memory),
            "--object-store-memory", std::to_string(o.object_store_memory),
            absl::StrCat("--head=", o.head ? "true" : "false"),
            absl::StrCat("--scheduling-disabled=", o.head && o.no_head_scheduling ? "true" : "false")};
  if (!o.resources.empty()) r.args.insert(r.args.end(), {"--resources", o.resources});
  if (!o.labels.empty()) r.args.insert(r.args.end(), {"--labels", o.labels});
  if (o.report_period_ms > 0) r.args.insert(r.args.end(), {"--report-period-ms", std::to_string(o.report_period_ms)});
  if (o.memory_usage_threshold > 0) {  // given (Validate checked it)
    r.args.insert(r.args.end(), {"--memory-usage-threshold", absl::StrCat(o.memory_usage_threshold)});
  }
  if (o.memory_monitor_refresh_ms >= 0) {
    r.args.insert(r.args.end(), {"--memory-monitor-refresh-ms", std::to_string(o.memory_monitor_refresh_ms)});
  }
  if (o.runtime_env_cache_envs >= 0) {
    r.args.insert(r.args.end(), {"--runtime-env-cache-envs", std::to_string(o.runtime_env_cache_envs)});
  }
  if (!o.gpu_memory_caps.empty()) r.args.insert(r.args.end(), {"--gpu-memory-caps", o.gpu_memory_caps});
  for (const std::string& python : o.python_executables) r.args.insert(r.args.end(), {"--python-executable", python});
  for (const std::string& dir : o.worker_program_dirs) r.args.insert(r.args.end(), {"--worker-program-dirs", dir});
  if (o.min_worker_port > 0) {
    r.args.insert(r.args.end(), {"--min-worker-port", std::to_string(o.min_worker_port), "--max-worker-port",
                                 std::to_string(o.max_worker_port)});
  }
  if (o.runtime_env_cache_packages >= 0) {
    r.args.insert(r.args.end(), {"--runtime-env-cache-packages", std::to_string(o.runtime_env_cache_packages)});
  }
  for (std::string& arg : AuthArgs(token_file)) r.args.push_back(std::move(arg));
  return r;
}

std::string NodeId(const Daemon& raylet) { return cluster::JsonString(raylet.ready, "node_id").value_or("(unknown)"); }

// Starts the dashboard of a new head. Its failure (most often: the port is taken by another
// cluster's dashboard) is a warning, not a failed start: the cluster works without it.
// Answers a line to print about it.
std::string StartDashboard(const StartOptions& o, const std::string& session_dir, const std::string& gcs_address,
                           const std::string& token_file, std::vector<cluster::ProcessRecord>* started) {
  absl::StatusOr<std::string> binary = FindBinary(kDashboardBinary);
  if (!binary.ok()) return absl::StrCat("warning: no dashboard: ", binary.status().message());
  LaunchRequest r;
  r.name = cluster::kDashboard;
  r.binary = *binary;
  r.args = {"--gcs-address", gcs_address, "--host", o.dashboard_host, "--port", std::to_string(o.dashboard_port)};
  if (o.dashboard_tls.enabled()) {
    r.args.insert(r.args.end(), {"--dashboard-tls-cert", fs::absolute(o.dashboard_tls.cert).string(),
                                 "--dashboard-tls-key", fs::absolute(o.dashboard_tls.key).string()});
  }
  if (o.disable_auth) {
    r.args.push_back("--disable-auth");
  } else {
    // Explicit, so that a SHOAL_DISABLE_AUTH in this environment cannot turn auth off.
    r.args.insert(r.args.end(), {"--token-file", token_file, "--disable-auth=false"});
  }
  absl::StatusOr<Daemon> dashboard = Launch(session_dir, r);
  if (!dashboard.ok()) {
    return absl::StrCat("warning: the dashboard did not start (the cluster runs without it): ",
                        dashboard.status().message());
  }
  started->push_back(dashboard->record);
  std::string url = cluster::JsonString(dashboard->ready, "url").value_or("(unknown)");
  if (o.disable_auth) {
    return absl::StrCat("  Dashboard:    ", url, "\n\nwarning: the dashboard's auth is disabled (--disable-auth): anyone "
                        "who can reach ", url, " can run commands on this cluster. Use it only on trusted networks.");
  }
  return absl::StrCat("  Dashboard:    ", url, " (token in ", session_dir, "/", cluster::kAuthTokenFile, ")");
}

absl::Status StartHead(const StartOptions& o, std::vector<cluster::ProcessRecord>* started) {
  absl::StatusOr<std::string> gcs_binary = FindBinary(kGcsBinary);
  if (!gcs_binary.ok()) return gcs_binary.status();
  absl::StatusOr<std::string> raylet_binary = FindBinary(kRayletBinary);
  if (!raylet_binary.ok()) return raylet_binary.status();
  if (o.disable_auth) {
    std::cerr << "warning: auth is disabled (--disable-auth): anyone who can reach this cluster's ports (its RPCs "
                 "and its dashboard) can run code on it. Use it only on trusted networks."
              << std::endl;
  }
  const std::string root = ShoalTempRoot();  // --temp-dir was exported as SHOAL_TMPDIR
  absl::StatusOr<std::string> session = CreateSessionDir(root, SessionLink::kAlways);
  if (!session.ok()) return session.status();

  // One secret for the whole cluster: every RPC and the dashboard.
  std::string token_file;
  if (!o.disable_auth) {
    // A token given (a platform's secret, shared with the workers) or a new random one.
    absl::StatusOr<std::string> token = !o.auth_token.empty()       ? CheckToken(o.auth_token, "--auth-token")
                                        : !o.auth_token_file.empty() ? ReadTokenFile(o.auth_token_file)
                                                                     : cluster::NewToken();
    if (!token.ok()) return token.status();
    absl::StatusOr<std::string> written = cluster::WriteTokenFile(*session, *token);
    if (!written.ok()) return written.status();
    token_file = *written;
    SetClusterToken(*token);
  }
  absl::StatusOr<Daemon> gcs = Launch(*session, GcsRequest(o, *gcs_binary, token_file));
  if (!gcs.ok()) return gcs.status();
  std::string address = cluster::JsonString(gcs->ready, "address")
                            .value_or(absl::StrCat(o.node_ip_address, ":", cluster::JsonInt(gcs->ready, "port").value_or(o.port)));
  absl::StatusOr<Daemon> raylet = Launch(*session, RayletRequest(o, *raylet_binary, address, token_file));
  if (!raylet.ok()) {
    StopAndForget(gcs->record);
    return raylet.status();
  }
  started->push_back(gcs->record);
  started->push_back(raylet->record);
  if (absl::Status s = cluster::WriteCurrentCluster(root, address); !s.ok()) {
    std::cerr << "warning: " << s.message() << "; `shoal status` will need --address " << address << std::endl;
  }
  {
    std::error_code ec;
    fs::remove(cluster::CurrentClusterTokenPath(root), ec);  // the previous cluster's
  }
  if (!token_file.empty()) {
    if (absl::Status s = cluster::WriteCurrentClusterToken(root, ClusterToken()); !s.ok()) {
      std::cerr << "warning: " << s.message() << "; clients here will need $SHOAL_AUTH_TOKEN" << std::endl;
    }
  }
  std::string dashboard = o.include_dashboard ? StartDashboard(o, *session, address, token_file, started) : "";
  if (dashboard.starts_with("warning:")) std::cerr << dashboard << std::endl;
  std::cout << "Shoal head node started.\n"
            << "  GCS address:  " << address << "\n"
            << "  Node id:      " << NodeId(*raylet) << "\n"
            << "  Session dir:  " << *session << "\n"
            << (dashboard.empty() || dashboard.starts_with("warning:") ? "" : dashboard + "\n") << "\n"
            << "To add another node to this cluster, run (on this machine or another one):\n"
            << "    shoal start --address " << address << "\n"
            << "To see the cluster:\n"
            << "    shoal status\n"
            << "To stop every Shoal process on this machine:\n"
            << "    shoal stop" << std::endl;
  return absl::OkStatus();
}

// The token a joining node uses: --auth-token, --auth-token-file, else the one of the cluster
// started on this machine (cluster::FindClusterToken). "" with --disable-auth. With no token
// found, the join goes on without one only if the GCS accepts token-less calls.
absl::StatusOr<std::string> JoinToken(const StartOptions& o) {
  if (o.disable_auth) return std::string();
  if (!o.auth_token.empty()) return CheckToken(o.auth_token, "--auth-token");
  if (!o.auth_token_file.empty()) return ReadTokenFile(o.auth_token_file);
  return cluster::FindClusterToken(o.address);
}

absl::Status JoinCluster(const StartOptions& o, std::vector<cluster::ProcessRecord>* started) {
  absl::StatusOr<std::string> raylet_binary = FindBinary(kRayletBinary);
  if (!raylet_binary.ok()) return raylet_binary.status();
  absl::StatusOr<std::string> token = JoinToken(o);
  if (!token.ok()) return token.status();
  SetClusterToken(*token);
  // Ask the GCS first, so a wrong address or token fails fast and leaves nothing behind.
  absl::StatusOr<rpc::GetClusterStatusReply> status =
      GcsClient({.address = o.address, .timeout = kGcsCheckTimeout}).GetClusterStatus();
  if (!status.ok()) return absl::UnavailableError(absl::StrCat("cannot join the cluster: ", status.status().message()));
  // The head's session stays session_latest when this node runs on the head's machine.
  absl::StatusOr<std::string> session = CreateSessionDir(ShoalTempRoot(), SessionLink::kUnlessHead);
  if (!session.ok()) return session.status();
  std::string token_file;
  if (!token->empty()) {
    absl::StatusOr<std::string> written = cluster::WriteTokenFile(*session, *token);
    if (!written.ok()) return written.status();
    token_file = *written;
  } else {
    std::cerr << "warning: joining with auth disabled: this node's RPCs accept anyone who can reach them; use it "
                 "only on trusted networks"
              << std::endl;
  }

  absl::StatusOr<Daemon> raylet = Launch(*session, RayletRequest(o, *raylet_binary, o.address, token_file));
  if (!raylet.ok()) return raylet.status();
  started->push_back(raylet->record);
  std::cout << "Shoal node started and joined the cluster at " << o.address << ".\n"
            << "  Node id:      " << NodeId(*raylet) << "\n"
            << "  Raylet:       " << o.node_ip_address << ":" << cluster::JsonInt(raylet->ready, "port").value_or(0)
            << " (pid " << raylet->record.id.pid << ")\n"
            << "  Session dir:  " << *session << "\n\n"
            << "To see the cluster:\n"
            << "    shoal status --address " << o.address << "\n"
            << "To stop every Shoal process on this machine:\n"
            << "    shoal stop" << std::endl;
  return absl::OkStatus();
}

// This machine's address on the route to `gcs_address` (host:port): what the GCS and the other
// nodes reach this node by. 127.0.0.1 when the GCS is on loopback.
absl::StatusOr<std::string> RouteAddressTo(const std::string& gcs_address) {
  absl::StatusOr<std::pair<std::string, int>> hp = ParseHostPort(gcs_address);
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(hp->first.c_str(), std::to_string(hp->second).c_str(), &hints, &found); rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve the GCS host ", hp->first, ": ", gai_strerror(rc),
                                                   " (or give --node-ip-address)"));
  }
  const sockaddr_in target = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  freeaddrinfo(found);
  if ((ntohl(target.sin_addr.s_addr) >> 24) == 127) return std::string("127.0.0.1");
  // A UDP "connection" sends nothing: it only asks the kernel which source address it would use.
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in local{};
  socklen_t len = sizeof(local);
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  const int err = errno;
  close(fd);
  if (!ok) {
    return absl::UnavailableError(absl::StrCat("no route to the GCS at ", gcs_address, ": ", std::strerror(err),
                                               " (or give --node-ip-address)"));
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &local.sin_addr, text, sizeof(text));
  return std::string(text);
}

// --block: stays until SIGTERM/SIGINT/SIGHUP (stops `started`, exits 0) or until one of them
// dies (stops the rest, exits 1), as a container's main process or under a supervisor.
int Block(const std::vector<cluster::ProcessRecord>& started) {
  sigset_t signals;
  sigemptyset(&signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, sig);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  std::vector<cluster::ProcessId> ids;
  for (const cluster::ProcessRecord& r : started) ids.push_back(r.id);
  std::cout << "Blocking: this command stays in the foreground; SIGTERM or Ctrl-C stops this node." << std::endl;
  auto stop_all = [&] {
    (void)cluster::StopProcesses(ids, kCleanupGrace);
    for (const cluster::ProcessRecord& r : started) (void)cluster::RemoveProcessRecord(r);
  };
  while (true) {
    timespec wait{.tv_sec = 0, .tv_nsec = 500'000'000};
    const int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig > 0) {
      std::cout << "Received " << strsignal(sig) << ": stopping this node." << std::endl;
      stop_all();
      return kExitOk;
    }
    for (const cluster::ProcessRecord& r : started) {
      std::optional<std::string> how = cluster::ReapIfExited(r.id.pid);
      if (!how && cluster::IsRunning(r.id)) continue;
      std::cerr << "error: " << r.name << " (pid " << r.id.pid << ") "
                << (how ? *how : std::string("is gone")) << "; stopping this node" << std::endl;
      stop_all();
      return 1;
    }
  }
}

}  // namespace

int RunStart(int argc, char** argv) {
  StartOptions options;
  FlagSet flags("shoal start");
  AddFlags(flags, &options);
  if (std::optional<int> done = ParseCommandFlags(flags, argc, argv, kHelp)) return *done;
  // A value exported for other commands (SHOAL_ADDRESS, SHOAL_HEAD) yields to the command line.
  const bool head_given = GivenOnCommandLine(argc, argv, "head");
  const bool address_given = GivenOnCommandLine(argc, argv, "address");
  if (head_given && !address_given) options.address.clear();
  if (address_given && !head_given) options.head = false;
  if (absl::Status s = Validate(options, flags, argc, argv); !s.ok()) return UsageError(s);
  // TLS files given here are checked, used by this command, and passed to the daemons (and on
  // to their workers) as $SHOAL_TLS_*; without them the daemons use what this environment says.
  if (absl::Status s = ConfigureDaemonTls(options.tls); !s.ok()) return UsageError(s);
  ExportTlsEnvironment();

  if (!options.temp_dir.empty()) {
    // Everything this command and its daemons do under the temp root uses it.
    setenv("SHOAL_TMPDIR", fs::absolute(options.temp_dir).c_str(), 1);
  }
  if (options.node_ip_address.empty()) {
    if (options.head) {
      options.node_ip_address = "127.0.0.1";  // loopback unless told otherwise: safe by default
    } else {
      absl::StatusOr<std::string> ip = RouteAddressTo(options.address);
      if (!ip.ok()) return Fail(ip.status());
      options.node_ip_address = *ip;
    }
  }
  std::vector<cluster::ProcessRecord> started;
  absl::Status result = options.head ? StartHead(options, &started) : JoinCluster(options, &started);
  if (!result.ok()) return Fail(result);
  return options.block ? Block(started) : kExitOk;
}

}  // namespace shoal::cli
