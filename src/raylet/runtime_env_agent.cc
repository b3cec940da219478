#include "src/raylet/runtime_env_agent.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "src/common/runtime_env.h"
#include "src/common/zip_listing.h"
#include "src/raylet/process_spawner.h"

namespace shoal {
namespace fs = std::filesystem;
namespace {

constexpr char kPackagePrefix[] = "pkg:";
constexpr char kEnvPrefix[] = "env:";
constexpr char kReadyMark[] = ".shoal-ready";
constexpr char kTmpSuffix[] = ".tmp";

// The directory name of a package: its name without the extension.
std::string PackageStem(const std::string& uri) {
  std::string name = uri.substr(kPackageScheme.size());
  return name.substr(0, name.rfind('.'));
}

// The file name a wheel was uploaded with: gcs://_shoal_pkg_<32 hex>_<file>.whl names <file>.whl.
std::string WheelFileName(const std::string& uri) {
  std::string name = uri.substr(kPackageScheme.size());
  constexpr absl::string_view kContentPrefix = "_shoal_pkg_";
  if (absl::StartsWith(name, kContentPrefix) && name.size() > kContentPrefix.size() + 33 &&
      name[kContentPrefix.size() + 32] == '_') {
    return name.substr(kContentPrefix.size() + 33);
  }
  return name;
}

// The last lines of `path`, at most about 2000 bytes.
std::string LogTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  constexpr size_t kTail = 2000;
  if (text.size() > kTail) {
    text = text.substr(text.size() - kTail);
    if (auto nl = text.find('\n'); nl != std::string::npos) text = text.substr(nl + 1);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

absl::StatusOr<std::string> FindOnPath(const std::string& name, const std::string& also_in) {
  std::vector<std::string> dirs;
  if (!also_in.empty()) dirs.push_back(also_in);
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    dirs.emplace_back(dir);
  }
  for (const std::string& dir : dirs) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, " is not installed on this node (not found in PATH)"));
}

// argv with the user:password of URLs (`--index-url https://user:pw@host/...`) masked: the log's
// tail reaches callers in error messages.
std::vector<std::string> RedactCredentials(std::vector<std::string> argv) {
  for (std::string& arg : argv) {
    const size_t scheme = arg.find("://");
    if (scheme == std::string::npos) continue;
    const size_t at = arg.find('@', scheme + 3);
    const size_t slash = arg.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      arg.replace(scheme + 3, at - scheme - 3, "****");
    }
  }
  return argv;
}

absl::Status WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

}  // namespace

RuntimeEnvAgent::RuntimeEnvAgent(const Clock& clock, RuntimeEnvAgentOptions options)
    : clock_(clock), options_(std::move(options)) {
  std::error_code ec;
  for (const char* sub : {"packages", "envs"}) {
    const fs::path dir = fs::path(options_.root_dir) / sub;
    fs::create_directories(dir, ec);
    // What a previous raylet left half-built.
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const fs::path p = entry.path();
      const bool env_dir = std::string(sub) == "envs" && entry.is_directory() && !fs::exists(p / kReadyMark);
      if (absl::EndsWith(p.filename().string(), kTmpSuffix) || env_dir) fs::remove_all(p, ec);
    }
  }
}

RuntimeEnvAgent::~RuntimeEnvAgent() {
  stopping_ = true;
  std::map<std::string, std::unique_ptr<Job>> jobs;
  {
    absl::MutexLock lock(&mu_);
    PosixProcessSpawner spawner;
    for (int64_t pid : running_pids_) spawner.Kill(pid);
    changed_.SignalAll();
    jobs.swap(jobs_);
  }
  for (auto& [key, job] : jobs) {
    if (job->thread.joinable()) job->thread.join();
  }
}

std::vector<std::string> RuntimeEnvAgent::ResourcesOf(const rpc::RuntimeEnv& env) const {
  std::vector<std::string> out;
  if (!env.working_dir().empty()) out.push_back(kPackagePrefix + env.working_dir());
  for (const std::string& uri : env.py_modules()) out.push_back(kPackagePrefix + uri);
  for (const std::string& uri : env.py_module_wheels()) out.push_back(kPackagePrefix + uri);
  if (std::string pip = PipEnvKey(env); !pip.empty()) out.push_back(kEnvPrefix + pip);
  return out;
}

absl::StatusOr<std::optional<RuntimeEnvContext>> RuntimeEnvAgent::Prepare(const rpc::RuntimeEnv& env) {
  if (auto s = ValidateRuntimeEnv(env); !s.ok()) return s;
  const std::string key = RuntimeEnvKey(env);
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  envs_[key] = env;
  env_used_[key] = now;
  bool ready = true;
  for (const std::string& name : ResourcesOf(env)) {
    Resource& r = resources_[name];
    r.last_used = now;
    if (r.state == State::kFailed) {
      if (now - r.failed_at < options_.failure_memory) return absl::FailedPreconditionError(r.error);
      r.state = State::kMissing;
    }
    if (r.state != State::kReady) ready = false;
  }
  if (ready) return ContextOf(env);
  if (!jobs_.contains(key) && !stopping_) {
    auto job = std::make_unique<Job>();
    Job* raw = job.get();
    jobs_.emplace(key, std::move(job));
    raw->thread = std::thread([this, env, key, raw] {
      RunJob(env);
      {
        // Fresh: kept at least recent_use for the worker it was built for.
        absl::MutexLock lock(&mu_);
        env_used_[key] = clock_.Now();
      }
      raw->done = true;
      if (options_.on_change) options_.on_change();
    });
  }
  return std::nullopt;
}

RuntimeEnvContext RuntimeEnvAgent::ContextOf(const rpc::RuntimeEnv& env) const {
  RuntimeEnvContext c;
  std::vector<std::string> path;
  auto package_dir = [&](const std::string& uri) { return resources_.at(kPackagePrefix + uri).path; };
  if (!env.working_dir().empty()) {
    c.cwd = package_dir(env.working_dir());
    path.push_back(c.cwd);
  }
  for (const std::string& uri : env.py_modules()) path.push_back(package_dir(uri));
  for (const std::string& p : env.python_path()) path.push_back(p);
  std::string inherited;
  if (auto it = env.env_vars().find("PYTHONPATH"); it != env.env_vars().end()) {
    inherited = it->second;
  } else if (const char* own = std::getenv("PYTHONPATH"); own != nullptr) {
    inherited = own;
  }
  if (!inherited.empty()) path.push_back(inherited);
  for (const auto& [name, value] : env.env_vars()) {
    if (name != "PYTHONPATH") c.env.emplace_back(name, value);
  }
  if (!path.empty()) c.env.emplace_back("PYTHONPATH", absl::StrJoin(path, ":"));
  if (std::string pip = PipEnvKey(env); !pip.empty()) {
    const std::string dir = resources_.at(kEnvPrefix + pip).path;
    c.interpreter = env.interpreter();
    c.python = dir + "/bin/python";
    const char* own_path = std::getenv("PATH");
    c.env.emplace_back("VIRTUAL_ENV", dir);
    c.env.emplace_back("PATH", absl::StrCat(dir, "/bin", own_path != nullptr ? absl::StrCat(":", own_path) : ""));
  }
  if (!env.serialized().empty()) c.env.emplace_back("SHOAL_RUNTIME_ENV", env.serialized());
  return c;
}

void RuntimeEnvAgent::RunJob(const rpc::RuntimeEnv& env) {
  for (const std::string& name : ResourcesOf(env)) {
    {
      absl::MutexLock lock(&mu_);
      Resource* r = &resources_[name];
      while (r->state == State::kBuilding && !stopping_) {
        changed_.Wait(&mu_);
        r = &resources_[name];
      }
      if (stopping_ || r->state == State::kFailed) return;
      if (r->state == State::kReady) continue;
      r->state = State::kBuilding;
    }
    spdlog::info("runtime env: setting up {}", name);
    const absl::Time start = clock_.Now();
    auto built = Build(name, env);
    absl::MutexLock lock(&mu_);
    Resource& r = resources_[name];
    if (built.ok()) {
      r.state = State::kReady;
      r.path = *built;
      r.last_used = clock_.Now();
      spdlog::info("runtime env: {} ready in {:.1f}s at {}", name, absl::ToDoubleSeconds(clock_.Now() - start), r.path);
    } else {
      r.state = State::kFailed;
      r.failed_at = clock_.Now();
      r.error = std::string(built.status().message());
      spdlog::warn("runtime env: {} failed: {}", name, r.error);
    }
    changed_.SignalAll();
    if (!built.ok()) return;
  }
}

absl::StatusOr<std::string> RuntimeEnvAgent::Build(const std::string& resource, const rpc::RuntimeEnv& env) {
  if (absl::StartsWith(resource, kPackagePrefix)) {
    return BuildPackage(resource.substr(sizeof(kPackagePrefix) - 1));
  }
  return BuildVirtualenv(resource.substr(sizeof(kEnvPrefix) - 1), env);
}

absl::StatusOr<std::string> RuntimeEnvAgent::BuildPackage(const std::string& uri) {
  const bool wheel = absl::EndsWith(uri, ".whl");
  if (auto name = PackageNameOfUri(uri, wheel ? ".whl" : ".zip"); !name.ok()) return name.status();
  const fs::path dir = fs::path(options_.root_dir) / "packages" / PackageStem(uri);
  const fs::path tmp = dir.string() + kTmpSuffix;
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir.string();  // unpacked here before
  if (!options_.fetch_package) return absl::FailedPreconditionError("this raylet cannot fetch packages");
  auto bytes = options_.fetch_package(uri);
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(), absl::StrCat("cannot fetch ", uri, ": ", bytes.status().message()));
  }
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));
  if (wheel) {
    if (auto s = WriteFile(tmp / WheelFileName(uri), *bytes); !s.ok()) return s;
  } else {
    auto entries = ListZipEntries(*bytes);
    if (!entries.ok()) return absl::InvalidArgumentError(absl::StrCat(uri, ": ", entries.status().message()));
    if (auto s = CheckZipEntries(*entries, options_.max_unpacked_bytes); !s.ok()) {
      fs::remove_all(tmp, ec);
      return absl::InvalidArgumentError(absl::StrCat(uri, " refused: ", s.message()));
    }
    const fs::path archive = fs::path(options_.root_dir) / "packages" / (PackageStem(uri) + ".zip" + kTmpSuffix);
    if (auto s = WriteFile(archive, *bytes); !s.ok()) return s;
    absl::Status unpacked = RunLogged({"unzip", "-q", "-o", archive.string(), "-d", tmp.string()},
                                      dir.string() + ".log", absl::StrCat("unpacking ", uri));
    fs::remove(archive, ec);
    if (!unpacked.ok()) {
      fs::remove_all(tmp, ec);
      return unpacked;
    }
  }
  fs::rename(tmp, dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot move ", tmp.string(), " to ", dir.string(), ": ", ec.message()));
  return dir.string();
}

absl::StatusOr<std::string> RuntimeEnvAgent::BuildVirtualenv(const std::string& key, const rpc::RuntimeEnv& env) {
  const fs::path dir = fs::path(options_.root_dir) / "envs" / key;
  const std::string log = dir.string() + ".log";
  std::error_code ec;
  if (fs::exists(dir / kReadyMark, ec)) return dir.string();
  fs::remove_all(dir, ec);
  // A bare name ("python3", a job entrypoint's) is the one on this raylet's PATH.
  std::string interpreter = env.interpreter();
  if (interpreter.find('/') == std::string::npos) {
    auto found = FindOnPath(interpreter, "");
    if (found.ok()) interpreter = *found;
  }
  if (access(interpreter.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("the worker's Python ", env.interpreter(),
                                                      " does not exist on this node, so no virtualenv can be made"));
  }
  const std::string installer = env.installer().empty() ? "pip" : env.installer();
  std::string uv;
  if (installer == "uv") {
    auto found = FindOnPath("uv", fs::path(interpreter).parent_path().string());
    if (!found.ok()) return found.status();
    uv = *found;
  }
  if (auto s = RunLogged({interpreter, "-m", "venv", "--system-site-packages", dir.string()}, log,
                         "creating the virtualenv");
      !s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  std::string requirements;
  for (const std::string& line : env.pip_packages()) absl::StrAppend(&requirements, line, "\n");
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& uri : env.py_module_wheels()) {
      absl::StrAppend(&requirements, resources_[kPackagePrefix + uri].path, "/", WheelFileName(uri), "\n");
    }
  }
  const std::string requirements_file = (dir / "shoal-requirements.txt").string();
  if (auto s = WriteFile(requirements_file, requirements); !s.ok()) return s;
  const std::string python = (dir / "bin" / "python").string();
  std::vector<std::string> argv;
  if (installer == "uv") {
    argv = {uv, "pip", "install", "--python", python};
  } else {
    argv = {python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"};
  }
  argv.insert(argv.end(), env.pip_install_options().begin(), env.pip_install_options().end());
  argv.insert(argv.end(), {"-r", requirements_file});
  if (auto s = RunLogged(argv, log, absl::StrCat(installer, " install")); !s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  if (auto s = WriteFile(dir / kReadyMark, ""); !s.ok()) return s;
  return dir.string();
}

absl::Status RuntimeEnvAgent::RunLogged(const std::vector<std::string>& argv, const std::string& log,
                                        const std::string& what) {
  {
    std::ofstream out(log, std::ios::app);
    out << "$ " << absl::StrJoin(RedactCredentials(argv), " ") << "\n";
  }
  PosixProcessSpawner spawner;
  ProcessSpec spec{.argv = argv, .env = {{"PIP_NO_INPUT", "1"}}, .stdout_path = log, .stderr_path = log};
  auto pid = spawner.Spawn(spec);
  if (!pid.ok()) return absl::FailedPreconditionError(absl::StrCat(what, ": ", pid.status().message()));
  {
    absl::MutexLock lock(&mu_);
    running_pids_.insert(*pid);
  }
  const absl::Time deadline = absl::Now() + options_.install_timeout;
  std::optional<ProcessExit> exit;
  bool timed_out = false;
  while (!(exit = spawner.TryReap(*pid))) {
    if (stopping_ || absl::Now() > deadline) {
      timed_out = !stopping_;
      spawner.Kill(*pid);
      while (!(exit = spawner.TryReap(*pid))) absl::SleepFor(absl::Milliseconds(10));
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  {
    absl::MutexLock lock(&mu_);
    running_pids_.erase(*pid);
  }
  if (stopping_) return absl::CancelledError(absl::StrCat(what, ": the raylet is stopping"));
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(what, " did not finish within ",
                                                    absl::FormatDuration(options_.install_timeout), ":\n", LogTail(log)));
  }
  if (exit->signal != 0 || exit->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(what, " failed (", exit->ToString(), "):\n", LogTail(log)));
  }
  return absl::OkStatus();
}

void RuntimeEnvAgent::Tick(const std::set<std::string>& live_env_keys) {
  const absl::Time now = clock_.Now();
  std::vector<std::unique_ptr<Job>> finished;
  std::vector<std::string> doomed;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->done) {
        finished.push_back(std::move(it->second));
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
    std::set<std::string> in_use;
    for (auto it = envs_.begin(); it != envs_.end();) {
      const bool live = live_env_keys.contains(it->first) || jobs_.contains(it->first) ||
                        now - env_used_[it->first] < options_.recent_use;
      if (live) {
        for (std::string& r : ResourcesOf(it->second)) in_use.insert(std::move(r));
        ++it;
      } else {
        env_used_.erase(it->first);
        it = envs_.erase(it);
      }
    }
    std::vector<std::pair<absl::Time, std::string>> unused_packages, unused_envs;
    for (auto it = resources_.begin(); it != resources_.end();) {
      const Resource& r = it->second;
      if (r.state == State::kFailed && now - r.failed_at >= options_.failure_memory) {
        it = resources_.erase(it);
        continue;
      }
      if (r.state == State::kReady && !in_use.contains(it->first)) {
        (absl::StartsWith(it->first, kEnvPrefix) ? unused_envs : unused_packages).emplace_back(r.last_used, it->first);
      }
      ++it;
    }
    auto trim = [&](std::vector<std::pair<absl::Time, std::string>>& unused, int keep) {
      std::sort(unused.begin(), unused.end());
      for (size_t i = 0; i + std::max(keep, 0) < unused.size(); ++i) doomed.push_back(unused[i].second);
    };
    trim(unused_packages, options_.max_unused_packages);
    trim(unused_envs, options_.max_unused_envs);
    for (const std::string& name : doomed) {
      Delete(name, resources_[name]);
      resources_.erase(name);
    }
  }
  for (auto& job : finished) {
    if (job->thread.joinable()) job->thread.join();
  }
}

void RuntimeEnvAgent::Delete(const std::string& resource, const Resource& r) {
  spdlog::info("runtime env: deleting unused {} ({})", resource, r.path);
  if (r.path.empty()) return;
  std::error_code ec;
  fs::remove(r.path + ".log", ec);
  // Renamed at once, so that a new setup of the same name never sees it half deleted; the
  // files themselves (a virtualenv holds thousands) go on a thread, not the raylet's loop.
  static std::atomic<uint64_t> counter{0};
  const fs::path doomed = absl::StrCat(r.path, ".deleting-", counter++, kTmpSuffix);
  fs::rename(r.path, doomed, ec);
  if (ec) {
    fs::remove_all(r.path, ec);
    return;
  }
  auto job = std::make_unique<Job>();
  Job* raw = job.get();
  raw->thread = std::thread([doomed, raw] {
    std::error_code ignored;
    fs::remove_all(doomed, ignored);
    raw->done = true;
  });
  jobs_[absl::StrCat("delete:", doomed.string())] = std::move(job);  // the name is unique
}

std::vector<std::string> RuntimeEnvAgent::SettingUp() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [key, job] : jobs_) {
    if (!job->done && !absl::StartsWith(key, "delete:")) out.push_back(key);
  }
  return out;
}

RuntimeEnvAgent::Stats RuntimeEnvAgent::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  for (const auto& [name, r] : resources_) {
    if (r.state != State::kReady) continue;
    (absl::StartsWith(name, kEnvPrefix) ? s.envs : s.packages)++;
  }
  for (const auto& [key, job] : jobs_) s.setting_up += job->done || absl::StartsWith(key, "delete:") ? 0 : 1;
  return s;
}

}  // namespace shoal
