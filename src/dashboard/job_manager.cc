// Job supervisors; see job_manager.h.
#include "src/dashboard/job_manager.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/ids.h"
#include "src/common/rpc.h"
#include "src/common/runtime_env.h"
#include "src/common/zip_listing.h"
#include "src/dashboard/entrypoint_runner.h"
#include "src/gcs_client/package_store.h"

extern char** environ;

namespace shoal::dashboard {
namespace fs = std::filesystem;
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(50);
constexpr absl::Duration kStatusTimeout = absl::Seconds(10);
constexpr absl::Duration kShutdownGrace = absl::Milliseconds(500);
// The JobId the entrypoint reservations' leases run under (never a driver's job id, which the
// GCS hands out counting up from 1).
constexpr uint32_t kReservationJob = 0xFFFFFFF0u;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// Runs argv to completion with stdout/stderr to `log_fd`; answers its exit status.
absl::Status RunTool(const std::vector<std::string>& argv, int log_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError("fork failed");
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(argv[0], " failed (status ", status, ")"));
}

}  // namespace

struct JobManager::Job {
  JobRecord record;
  bool stop_requested = false;
  pid_t pgid = 0;
  grpc::ClientContext* remote = nullptr;  // the call running the entrypoint on its lease's node
  absl::Time stop_deadline = absl::InfiniteFuture();
  ResourceReservation reservation;
};

absl::Status GcsJobStore::Put(const JobRecord& record) {
  return client_.gcs().KvPut(kJobNamespace, record.spec.submission_id, record.Serialize(), /*overwrite=*/true).status();
}

absl::Status GcsJobStore::Delete(const std::string& submission_id) {
  return client_.gcs().KvDel(kJobNamespace, submission_id).status();
}

absl::StatusOr<std::vector<JobRecord>> GcsJobStore::LoadAll() {
  absl::StatusOr<std::vector<std::string>> keys = client_.gcs().KvKeys(kJobNamespace);
  if (!keys.ok()) return keys.status();
  std::vector<JobRecord> out;
  for (const std::string& key : *keys) {
    absl::StatusOr<std::string> value = client_.gcs().KvGet(kJobNamespace, key);
    if (!value.ok()) continue;
    absl::StatusOr<JobRecord> record = JobRecord::Deserialize(*value);
    if (!record.ok()) {
      spdlog::warn("ignoring stored job {}: {}", key, record.status().ToString());
      continue;
    }
    out.push_back(*std::move(record));
  }
  return out;
}

JobManager::JobManager(JobManagerOptions options, ClusterClient& cluster, JobStore& store)
    : options_(std::move(options)), cluster_(cluster), store_(store) {}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::LogPath(const std::string& id) const {
  return (fs::path(options_.session_dir) / "logs" / absl::StrCat("job-driver-", id, ".log")).string();
}

std::string JobManager::PackagePath(const std::string& uri) const {
  std::optional<std::string> name = PackageNameFromUri(uri);
  if (!name) return "";
  return (fs::path(options_.package_dir) / *name).string();
}

void JobManager::Recover() {
  absl::StatusOr<std::vector<JobRecord>> stored = store_.LoadAll();
  if (!stored.ok()) {
    spdlog::warn("cannot load stored jobs: {}", stored.status().ToString());
    return;
  }
  std::vector<JobRecord> orphans;
  {
    absl::MutexLock lock(&mu_);
    for (JobRecord& record : *stored) {
      if (!IsTerminal(record.status)) {
        (void)record.Transition(JobStatus::kFailed,
                                absl::StrCat("the dashboard restarted while this job was ", JobStatusName(record.status),
                                             "; its supervisor is gone"),
                                NowMs());
        orphans.push_back(record);
      }
      auto job = std::make_shared<Job>();
      job->record = record;
      jobs_[record.spec.submission_id] = job;
    }
  }
  for (const JobRecord& record : orphans) {
    Persist(record);
    ReleasePackages(record.spec.submission_id);
  }
  spdlog::info("recovered {} stored jobs ({} left unfinished by an earlier dashboard)", stored->size(), orphans.size());
}

absl::StatusOr<std::string> JobManager::Submit(JobSpec spec) {
  if ((!spec.ResourceShape().empty() || NeedsVirtualenv(spec)) && !RunsOnHead(spec)) {
    // Its entrypoint runs on whichever node grants its resources: paths on the head mean nothing there.
    if (auto it = spec.runtime_env.find("py_modules"); it != spec.runtime_env.end() && it->is_array()) {
      for (const nlohmann::json& m : *it) {
        if (m.is_string() && !absl::StartsWith(m.get<std::string>(), "gcs://")) {
          return absl::InvalidArgumentError(absl::StrCat(
              "runtime_env.py_modules: '", m.get<std::string>(), "' is a path on the head, but this job's entrypoint ",
              "runs on the node that grants its resources: upload it (Ray's JobSubmissionClient does; or PUT ",
              "/api/packages/gcs/<name>.zip) and give its gcs:// URI"));
        }
      }
    }
  }
  if (!spec.working_dir.empty() && !fs::path(spec.working_dir).is_absolute()) {
    std::string package = PackagePath(spec.working_dir);
    if (package.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env.working_dir '", spec.working_dir,
                                                     "' must be a package URI gcs://<name>.zip (upload it with PUT "
                                                     "/api/packages/gcs/<name>.zip) or an absolute path on the head"));
    }
    // The raylets fetch it from the GCS: there it must be (a finished job's packages leave it;
    // the copy uploaded here puts it back).
    std::error_code ec;
    absl::StatusOr<bool> in_gcs = PackageExists(PackageKvOf(cluster_.gcs()), spec.working_dir);
    if (!in_gcs.ok()) return in_gcs.status();
    if (!*in_gcs && fs::exists(package, ec)) {
      if (absl::Status s = PutPackageFromFile(PackageKvOf(cluster_.gcs().WithTimeout(absl::Seconds(60))),
                                              spec.working_dir, package, std::numeric_limits<uint64_t>::max());
          !s.ok()) {
        return s;
      }
    } else if (!*in_gcs) {
      return absl::InvalidArgumentError(absl::StrCat("runtime_env.working_dir: package ", spec.working_dir,
                                                     " was not uploaded (PUT /api/packages/gcs/...)"));
    }
  }
  auto job = std::make_shared<Job>();
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return absl::UnavailableError("the dashboard is shutting down");
    if (spec.submission_id.empty()) {
      do spec.submission_id = NewSubmissionId();
      while (jobs_.contains(spec.submission_id));
    } else if (jobs_.contains(spec.submission_id)) {
      return absl::AlreadyExistsError(absl::StrCat("job with submission_id ", spec.submission_id, " already exists"));
    }
    job->record.spec = std::move(spec);
    job->record.start_time_ms = NowMs();
    job->record.message = job->record.spec.ResourceShape().empty()
                              ? "Job is starting."
                              : "Job is waiting for its entrypoint resources.";
    jobs_[job->record.spec.submission_id] = job;
    ++active_;
  }
  const std::string id = job->record.spec.submission_id;
  HoldPackages(job->record.spec);
  Persist(job->record);
  std::thread([this, job] { Supervise(job); }).detach();
  return id;
}

void JobManager::Supervise(std::shared_ptr<Job> job) {
  const JobSpec& spec = job->record.spec;  // immutable after Submit
  std::map<std::string, double> shape = spec.ResourceShape();
  // A job that asks for resources, or whose env has packages to install (its entrypoint must
  // run inside that virtualenv, as Ray's does), runs through a lease (of nothing, for the latter).
  if (!shape.empty() || (NeedsVirtualenv(spec) && !RunsOnHead(spec))) {
    absl::Status held;
    absl::StatusOr<rpc::GetClusterStatusReply> status = cluster_.gcs().WithTimeout(kStatusTimeout).GetClusterStatus();
    std::string head;
    if (status.ok()) {
      for (const rpc::NodeInfo& node : status->nodes()) {
        if (node.is_head() && node.state() == rpc::NodeInfo::ALIVE) head = absl::StrCat(node.address(), ":", node.raylet_port());
      }
    }
    if (!status.ok()) {
      held = status.status();
    } else if (head.empty()) {
      held = absl::UnavailableError("the head node's raylet is not alive");
    } else if (absl::StatusOr<rpc::RuntimeEnv> env = EntrypointRuntimeEnv(spec); !env.ok()) {
      held = env.status();
    } else {
      // The entrypoint runs where its resources are, in the job's runtime env; unless its
      // working_dir is a directory on the head, where it then runs (the lease only holds).
      const bool on_head = RunsOnHead(spec);
      std::vector<std::string> command = {options_.self_binary, "--lease-holder"};
      if (on_head) command.insert(command.end(), {"--owner-pid", std::to_string(getpid())});
      const rpc::RuntimeEnv lease_env = on_head ? rpc::RuntimeEnv() : *env;
      std::atomic<bool> acquired{false};
      std::thread watcher;
      if (!IsEmptyRuntimeEnv(lease_env)) {
        watcher = std::thread([this, job, &acquired, key = RuntimeEnvKey(lease_env)] {
          WatchRuntimeEnvSetup(job, key, acquired);
        });
      }
      held = job->reservation.Acquire({.head_raylet_address = head,
                                       .shape = shape,
                                       .worker_command = command,
                                       .job_id_hex = JobId::FromInt(kReservationJob).Hex(),
                                       .runtime_env = lease_env});
      acquired = true;
      if (watcher.joinable()) watcher.join();
    }
    if (!held.ok()) {
      bool stopped = absl::IsCancelled(held);
      std::string why = absl::IsFailedPrecondition(held)
                            ? absl::StrCat("The job's runtime env could not be set up: ", held.message())
                            : absl::StrCat("Cannot reserve the entrypoint's resources: ", held.message());
      Finish(job, stopped ? JobStatus::kStopped : JobStatus::kFailed, stopped ? "Job was intentionally stopped." : why,
             std::nullopt);
      return;
    }
    spdlog::info("job {}: entrypoint resources held ({})", spec.submission_id, job->reservation.DescribeHolder());
    if (!RunsOnHead(spec) && !job->reservation.holder_address().empty()) {
      RunOnLeaseNode(job);
      return;
    }
  }
  RunEntrypoint(job);
}

void JobManager::WatchRuntimeEnvSetup(const std::shared_ptr<Job>& job, const std::string& env_key,
                                      const std::atomic<bool>& acquired) {
  // While the entrypoint's lease waits, its raylet may be setting up the job's runtime env (a
  // virtualenv takes seconds to minutes): the job says so, as Ray's does.
  bool installing = false;
  while (!acquired) {
    absl::SleepFor(absl::Milliseconds(500));
    const std::string raylet = job->reservation.WaitingAt();
    if (raylet.empty() || acquired) continue;
    auto stub = rpc::LeaseService::NewStub(MakeChannel(raylet));
    rpc::GetNodeStatsRequest request;
    rpc::GetNodeStatsReply reply;
    if (!UnaryCall(*stub, &rpc::LeaseService::Stub::GetNodeStats, request, &reply, {.timeout = absl::Seconds(2)})
             .ok()) {
      continue;
    }
    const bool now = std::find(reply.runtime_envs_setting_up().begin(), reply.runtime_envs_setting_up().end(),
                               env_key) != reply.runtime_envs_setting_up().end();
    if (now == installing) continue;
    installing = now;
    JobRecord changed;
    {
      absl::MutexLock lock(&mu_);
      if (job->record.status != JobStatus::kPending) return;
      job->record.message = installing ? absl::StrCat("Job is installing its runtime env on the node at ", raylet, ".")
                                       : "Job is waiting for its entrypoint resources.";
      changed = job->record;
    }
    Persist(changed);
  }
}

bool JobManager::NeedsVirtualenv(const JobSpec& spec) {
  for (const char* key : {"pip", "uv"}) {
    auto it = spec.runtime_env.find(key);
    if (it == spec.runtime_env.end() || it->is_null()) continue;
    const nlohmann::json& packages = it->is_object() && it->contains("packages") ? (*it)["packages"] : *it;
    if (packages.is_string() || (packages.is_array() && !packages.empty())) return true;
  }
  if (auto it = spec.runtime_env.find("py_modules"); it != spec.runtime_env.end() && it->is_array()) {
    for (const nlohmann::json& m : *it) {
      if (m.is_string() && absl::EndsWith(m.get<std::string>(), ".whl")) return true;
    }
  }
  return false;
}

bool JobManager::RunsOnHead(const JobSpec& spec) {
  return !spec.working_dir.empty() && fs::path(spec.working_dir).is_absolute();
}

absl::StatusOr<rpc::RuntimeEnv> JobManager::EntrypointRuntimeEnv(const JobSpec& spec) {
  rpc::RuntimeEnv env;
  for (const auto& [name, value] : spec.env_vars) (*env.mutable_env_vars())[name] = value;
  if (absl::StartsWith(spec.working_dir, "gcs://")) env.set_working_dir(spec.working_dir);
  const nlohmann::json& raw = spec.runtime_env;
  if (auto it = raw.find("py_modules"); it != raw.end() && it->is_array()) {
    for (const nlohmann::json& m : *it) {
      const std::string uri = m.get<std::string>();
      if (!absl::StartsWith(uri, "gcs://")) continue;  // a head path: the driver uploads it for its tasks
      (absl::EndsWith(uri, ".whl") ? env.add_py_module_wheels(uri) : env.add_py_modules(uri));
    }
  }
  for (const char* key : {"pip", "uv"}) {
    auto it = raw.find(key);
    if (it == raw.end() || it->is_null()) continue;
    const nlohmann::json* packages = it->is_object() && it->contains("packages") ? &(*it)["packages"] : &*it;
    std::vector<std::string> lines;
    if (packages->is_string()) {  // a requirements file on the head
      std::ifstream in(packages->get<std::string>());
      if (!in) {
        return absl::InvalidArgumentError(absl::StrCat("runtime_env.", key, ": cannot read the requirements file ",
                                                       packages->get<std::string>(), " on the head"));
      }
      for (std::string line; std::getline(in, line);) {
        line = std::string(absl::StripAsciiWhitespace(line));
        if (!line.empty() && line[0] != '#') lines.push_back(line);
      }
    } else {
      for (const nlohmann::json& line : *packages) lines.push_back(line.get<std::string>());
    }
    for (std::string& line : lines) env.add_pip_packages(std::move(line));
    const char* options_key = std::string(key) == "pip" ? "pip_install_options" : "uv_pip_install_options";
    if (it->is_object() && it->contains(options_key) && (*it)[options_key].is_array()) {
      for (const nlohmann::json& option : (*it)[options_key]) {
        if (option.is_string()) env.add_pip_install_options(option.get<std::string>());
      }
    }
    env.set_installer(key);
  }
  // The virtualenv is made from the node's python3, and the driver's tasks use the same one
  // (the serialized form says so), so the entrypoint and its tasks share the environment.
  if (env.pip_packages_size() > 0 || env.py_module_wheels_size() > 0) env.set_interpreter("python3");
  nlohmann::json serialized = {{"runtime_env", raw},
                               {"interpreter", env.interpreter().empty() ? nlohmann::json(nullptr)
                                                                         : nlohmann::json(env.interpreter())},
                               {"python_path", nlohmann::json::array()}};
  env.set_serialized(serialized.dump());
  if (absl::Status s = ValidateRuntimeEnv(env); !s.ok()) return s;
  return env;
}

void JobManager::RunOnLeaseNode(const std::shared_ptr<Job>& job) {
  const JobSpec& spec = job->record.spec;
  int log_fd = open(LogPath(spec.submission_id).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    job->reservation.Release();
    Finish(job, JobStatus::kFailed, absl::StrCat("cannot open the job's log ", LogPath(spec.submission_id)), std::nullopt);
    return;
  }
  rpc::RunEntrypointRequest request;
  request.set_entrypoint(spec.entrypoint);
  auto& env = *request.mutable_env();
  env["SHOAL_ADDRESS"] = options_.gcs_address;
  env["RAY_ADDRESS"] = options_.gcs_address;
  env["SHOAL_JOB_SUBMISSION_ID"] = spec.submission_id;
  if (!spec.runtime_env.empty()) env["SHOAL_JOB_RUNTIME_ENV"] = spec.runtime_env.dump();
  const rpc::GpuAssignment& gpus = job->reservation.gpus();
  if (gpus.device_ids_size() > 0) {
    env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(gpus.device_ids(), ",");
  }
  request.set_stop_grace_ms(absl::ToInt64Milliseconds(options_.stop_grace));
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    job->remote = &context;
    if (job->stop_requested) context.TryCancel();
  }
  spdlog::info("job {}: running the entrypoint on the lease's node ({})", spec.submission_id,
               job->reservation.DescribeHolder());
  absl::StatusOr<EntrypointExit> exit = RunOnHolder(
      job->reservation.holder_address(), request, log_fd, &context, [this, &job](int64_t pid) {
        JobRecord running;
        {
          absl::MutexLock lock(&mu_);
          job->record.driver_pid = pid;
          if (!job->stop_requested) (void)job->record.Transition(JobStatus::kRunning, "Job is running.", NowMs());
          running = job->record;
        }
        Persist(running);
      });
  close(log_fd);
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    job->remote = nullptr;
    stopped = job->stop_requested;
  }
  if (stopped && absl::IsCancelled(exit.status())) {
    // The holder sends SIGTERM and waits the grace before SIGKILL: returning the lease now
    // would kill its process group (and the entrypoint's, through its guard) at once.
    absl::SleepFor(options_.stop_grace + absl::Seconds(1));
  }
  job->reservation.Release();
  if (stopped) {
    Finish(job, JobStatus::kStopped, "Job was intentionally stopped.", std::nullopt);
  } else if (!exit.ok()) {
    Finish(job, JobStatus::kFailed, absl::StrCat("The entrypoint's node failed: ", exit.status().message()), std::nullopt);
  } else if (exit->signal != 0) {
    Finish(job, JobStatus::kFailed, absl::StrCat("Job entrypoint command was killed by signal ", exit->signal, "."),
           128 + exit->signal);
  } else if (exit->exit_code == 0) {
    Finish(job, JobStatus::kSucceeded, "Job finished successfully.", 0);
  } else {
    Finish(job, JobStatus::kFailed, absl::StrCat("Job entrypoint command failed with exit code ", exit->exit_code, "."),
           exit->exit_code);
  }
}

absl::StatusOr<std::string> JobManager::PrepareWorkingDir(const JobSpec& spec) {
  if (!spec.working_dir.empty() && fs::path(spec.working_dir).is_absolute()) {
    std::error_code ec;
    if (!fs::is_directory(spec.working_dir, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("working_dir ", spec.working_dir, " is not a directory on the head"));
    }
    return spec.working_dir;
  }
  fs::path dir = fs::path(options_.session_dir) / "runtime_resources" / "working_dirs" / spec.submission_id;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  if (spec.working_dir.empty()) return dir.string();
  std::string package = PackagePath(spec.working_dir);
  // The package's bytes: uploaded here, or (by a driver) only to the GCS's package store.
  std::string bytes;
  {
    std::ifstream in(package, std::ios::binary);
    if (in) {
      std::stringstream buffer;
      buffer << in.rdbuf();
      bytes = buffer.str();
    } else {
      absl::StatusOr<std::string> fetched =
          GetPackage(PackageKvOf(cluster_.gcs().WithTimeout(absl::Seconds(60))), spec.working_dir);
      if (!fetched.ok()) return fetched.status();
      bytes = *std::move(fetched);
      package = (dir.parent_path() / (spec.submission_id + ".zip")).string();
      std::ofstream out(package, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", package));
    }
  }
  absl::StatusOr<std::vector<ZipEntry>> entries = ListZipEntries(bytes);
  if (!entries.ok()) return absl::InvalidArgumentError(absl::StrCat("working_dir ", spec.working_dir, ": ", entries.status().message()));
  if (absl::Status safe = CheckZipEntries(*entries, uint64_t{4} << 30); !safe.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("working_dir ", spec.working_dir, " refused: ", safe.message()));
  }
  int log_fd = open(LogPath(spec.submission_id).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  absl::Status unpacked = RunTool({"unzip", "-q", "-o", package, "-d", dir.string()}, log_fd);
  if (log_fd >= 0) close(log_fd);
  if (!unpacked.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot unpack working_dir ", spec.working_dir, ": ", unpacked.message()));
  }
  return dir.string();
}

void JobManager::RunEntrypoint(const std::shared_ptr<Job>& job) {
  const JobSpec& spec = job->record.spec;
  absl::StatusOr<std::string> cwd = PrepareWorkingDir(spec);
  if (!cwd.ok()) {
    Finish(job, JobStatus::kFailed, std::string(cwd.status().message()), std::nullopt);
    return;
  }
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const char* internal : {"SHOAL_WORKER_MODE", "SHOAL_WORKER_ID", "SHOAL_TOKEN_FILE"}) env.erase(internal);
  env["SHOAL_ADDRESS"] = options_.gcs_address;
  env["RAY_ADDRESS"] = options_.gcs_address;
  env["SHOAL_JOB_SUBMISSION_ID"] = spec.submission_id;
  // The job's driver calls the cluster like any client: with its token.
  if (std::string token = ClusterToken(); !token.empty()) env[kAuthTokenEnv] = token;
  env["PYTHONPATH"] = env.contains("PYTHONPATH") ? absl::StrCat(*cwd, ":", env["PYTHONPATH"]) : *cwd;
  for (const auto& [key, value] : spec.env_vars) env[key] = value;
  // The driver's shoal.init() makes it the job's runtime env, inherited by its tasks and actors.
  if (!spec.runtime_env.empty()) env["SHOAL_JOB_RUNTIME_ENV"] = spec.runtime_env.dump();
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : env) env_strings.push_back(absl::StrCat(key, "=", value));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string shell_cmd = spec.entrypoint;
  char sh[] = "/bin/sh", sh_name[] = "sh", dash_c[] = "-c";
  char* argv[] = {sh_name, dash_c, shell_cmd.data(), nullptr};
  int log_fd = open(LogPath(spec.submission_id).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    Finish(job, JobStatus::kFailed, absl::StrCat("cannot open the job's log ", LogPath(spec.submission_id)), std::nullopt);
    return;
  }
  const pid_t parent = getpid();
  const std::string dir = *cwd;
  // The guard's pipe: this process holds the write end for as long as the job runs, so the
  // guard reads EOF when the job ends or when this process dies, however it dies.
  int guard_pipe[2];
  if (pipe2(guard_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    Finish(job, JobStatus::kFailed, "cannot start the entrypoint: pipe failed", std::nullopt);
    return;
  }

  pid_t pid = fork();
  if (pid == 0) {
    setsid();  // a new session and process group: Stop signals the whole group
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // the supervisor died: do not outlive it
    if (getppid() != parent) _exit(1);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    for (int fd = 3; fd < 4096; ++fd) close(fd);
    if (chdir(dir.c_str()) != 0) _exit(126);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);  // the dashboard blocks SIGTERM; the job must not
    execve(sh, argv, envp.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) {
    close(guard_pipe[0]);
    close(guard_pipe[1]);
    Finish(job, JobStatus::kFailed, "cannot start the entrypoint: fork failed", std::nullopt);
    return;
  }
  // The guard: a child that kills the job's whole process group once this process is gone
  // (SIGKILL included), so no job outlives its dashboard. PR_SET_PDEATHSIG alone would reach
  // the entrypoint's shell, not what the shell started.
  pid_t guard = fork();
  if (guard == 0) {
    for (int fd = 0; fd < 4096; ++fd) {
      if (fd != guard_pipe[0]) close(fd);
    }
    char byte;
    while (read(guard_pipe[0], &byte, 1) != 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL);
    _exit(0);
  }
  close(guard_pipe[0]);
  JobRecord running;
  {
    absl::MutexLock lock(&mu_);
    job->pgid = pid;
    job->record.driver_pid = pid;
    if (job->stop_requested) {
      kill(-pid, SIGTERM);
    } else {
      (void)job->record.Transition(JobStatus::kRunning, "Job is running.", NowMs());
    }
    running = job->record;
  }
  spdlog::info("job {}: entrypoint started, pid {}", spec.submission_id, pid);
  Persist(running);

  int wait_status = 0;
  while (true) {
    pid_t done = waitpid(pid, &wait_status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    {
      absl::MutexLock lock(&mu_);
      if (job->stop_requested && absl::Now() >= job->stop_deadline) kill(-pid, SIGKILL);
    }
    absl::SleepFor(kPoll);
  }
  kill(-pid, SIGKILL);  // what is left of the group: nothing outlives its job
  if (guard > 0) {
    kill(guard, SIGKILL);  // its work is done (and the group id may be reused from now on)
    while (waitpid(guard, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  close(guard_pipe[1]);
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stopped = job->stop_requested;
    job->pgid = 0;
  }
  job->reservation.Release();
  if (stopped) {
    Finish(job, JobStatus::kStopped, "Job was intentionally stopped.", std::nullopt);
  } else if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) {
    Finish(job, JobStatus::kSucceeded, "Job finished successfully.", 0);
  } else if (WIFEXITED(wait_status)) {
    int code = WEXITSTATUS(wait_status);
    Finish(job, JobStatus::kFailed, absl::StrCat("Job entrypoint command failed with exit code ", code, "."), code);
  } else {
    int sig = WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0;
    Finish(job, JobStatus::kFailed, absl::StrCat("Job entrypoint command was killed by signal ", sig, "."), 128 + sig);
  }
}

void JobManager::HoldPackages(const JobSpec& spec) {
  std::vector<std::string> uris;
  if (absl::StartsWith(spec.working_dir, "gcs://")) uris.push_back(spec.working_dir);
  if (auto it = spec.runtime_env.find("py_modules"); it != spec.runtime_env.end() && it->is_array()) {
    for (const nlohmann::json& m : *it) {
      if (m.is_string() && absl::StartsWith(m.get<std::string>(), "gcs://")) uris.push_back(m.get<std::string>());
    }
  }
  for (const std::string& uri : uris) {
    // Until the job ends, its packages stay in the GCS whatever other jobs finish meanwhile.
    if (auto s = cluster_.gcs().KvPut(kPackageRefsNamespace, absl::StrCat("submission-", spec.submission_id, "|", uri),
                                      "", /*overwrite=*/true);
        !s.ok()) {
      spdlog::warn("job {}: cannot record its use of {}: {}", spec.submission_id, uri, s.status().ToString());
    }
  }
}

void JobManager::ReleasePackages(const std::string& submission_id) {
  const std::string prefix = absl::StrCat("submission-", submission_id, "|");
  absl::StatusOr<std::vector<std::string>> mine = cluster_.gcs().KvKeys(kPackageRefsNamespace, prefix);
  if (!mine.ok() || mine->empty()) return;
  std::set<std::string> released;
  for (const std::string& key : *mine) {
    released.insert(key.substr(prefix.size()));
    (void)cluster_.gcs().KvDel(kPackageRefsNamespace, key);
  }
  absl::StatusOr<std::vector<std::string>> rest = cluster_.gcs().KvKeys(kPackageRefsNamespace, "");
  if (!rest.ok()) return;
  for (const std::string& key : *rest) {
    if (size_t bar = key.find('|'); bar != std::string::npos) released.erase(key.substr(bar + 1));
  }
  for (const std::string& uri : released) {  // no job uses it any more (as GcsServer::ReleasePackagesOf)
    (void)cluster_.gcs().KvDel(kPackageNamespace, absl::StrCat(uri, "#"), /*by_prefix=*/true);
    (void)cluster_.gcs().KvDel(kPackageNamespace, uri);
  }
}

void JobManager::Finish(const std::shared_ptr<Job>& job, JobStatus status, const std::string& message,
                        std::optional<int> exit_code) {
  JobRecord final_record;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = job->record.Transition(status, message, NowMs()); !s.ok()) {
      spdlog::warn("{}", s.ToString());
    }
    job->record.driver_exit_code = exit_code;
    if (status == JobStatus::kFailed && job->record.error_type.empty()) job->record.error_type = "JOB_FAILED";
    final_record = job->record;
  }
  spdlog::info("job {}: {} ({})", final_record.spec.submission_id, JobStatusName(status), message);
  Persist(final_record);
  ReleasePackages(final_record.spec.submission_id);
  absl::MutexLock lock(&mu_);
  --active_;
}

void JobManager::Persist(const JobRecord& record) {
  absl::MutexLock order(&persist_mu_);
  // Write the newest state, so that a slow earlier write cannot overwrite a later one.
  JobRecord latest = record;
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(record.spec.submission_id);
    if (it == jobs_.end()) return;  // deleted meanwhile
    latest = it->second->record;
  }
  if (absl::Status s = store_.Put(latest); !s.ok()) {
    spdlog::warn("cannot store job {}: {}", latest.spec.submission_id, s.ToString());
  }
}

absl::StatusOr<JobRecord> JobManager::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
  return it->second->record;
}

std::vector<JobRecord> JobManager::List() {
  std::vector<JobRecord> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) out.push_back(job->record);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const JobRecord& a, const JobRecord& b) { return a.start_time_ms > b.start_time_ms; });
  return out;
}

absl::StatusOr<bool> JobManager::Stop(const std::string& id) { return Stop(id, options_.stop_grace); }

absl::StatusOr<bool> JobManager::Stop(const std::string& id, absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
  Job& job = *it->second;
  if (IsTerminal(job.record.status)) return false;
  if (!job.stop_requested) {
    job.stop_requested = true;
    job.stop_deadline = absl::Now() + grace;
    if (job.pgid > 0) kill(-job.pgid, SIGTERM);
    if (job.remote != nullptr) job.remote->TryCancel();  // the holder ends the group (grace, then SIGKILL)
    job.reservation.Cancel();
  }
  return true;
}

absl::Status JobManager::Delete(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
    if (!IsTerminal(it->second->record.status)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", JobStatusName(it->second->record.status),
                                                        "; stop it before deleting it"));
    }
    jobs_.erase(it);
  }
  absl::MutexLock order(&persist_mu_);
  std::error_code ec;
  fs::remove(LogPath(id), ec);
  fs::remove_all(fs::path(options_.session_dir) / "runtime_resources" / "working_dirs" / id, ec);
  return store_.Delete(id);
}

absl::StatusOr<std::pair<std::string, int64_t>> JobManager::Logs(const std::string& id, int64_t offset,
                                                                  int64_t max_bytes) {
  if (absl::StatusOr<JobRecord> job = Get(id); !job.ok()) return job.status();
  std::ifstream in(LogPath(id), std::ios::binary);
  if (!in) return std::make_pair(std::string(), int64_t{0});
  in.seekg(0, std::ios::end);
  int64_t size = in.tellg();
  offset = std::clamp<int64_t>(offset, 0, size);
  if (size - offset > max_bytes) offset = size - max_bytes;
  in.seekg(offset);
  std::string text(static_cast<size_t>(size - offset), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return std::make_pair(std::move(text), offset + static_cast<int64_t>(text.size()));
}

std::map<std::string, int64_t> JobManager::CountByStatus() {
  std::map<std::string, int64_t> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) ++out[JobStatusName(job->record.status)];
  return out;
}

void JobManager::Shutdown() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_ && active_ == 0) return;
    shutting_down_ = true;
    for (const auto& [id, job] : jobs_) {
      if (!IsTerminal(job->record.status)) ids.push_back(id);
    }
  }
  // The cluster is stopping: a short grace, since `shoal stop --force` kills this process a
  // second after SIGTERM, and the jobs' groups must be gone by then.
  for (const std::string& id : ids) (void)Stop(id, kShutdownGrace);
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), options_.stop_grace + absl::Seconds(10))) {
    spdlog::warn("{} job supervisors did not finish in time", active_);
  }
}

}  // namespace shoal::dashboard
