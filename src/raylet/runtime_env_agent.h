// Sets up runtime environments (rpc::RuntimeEnv) on this node before the raylet starts a worker
// in one: fetches the environment's packages from the GCS (src/gcs_client/package_store.h) and
// unpacks each once, builds one virtualenv per set of requirements (system site-packages
// visible, so Shoal itself imports), and says how to start the worker (RuntimeEnvContext).
//
// Layout under root_dir (the raylet's <session>/runtime_resources):
//   packages/<name>/        an unpacked .zip package (working_dir or py_modules)
//   packages/<name>/<file>  a wheel, under the file name it was uploaded with
//   envs/<pip key>/         a virtualenv; envs/<pip key>.log holds its build's output
// A package is unpacked into <name>.tmp and renamed into place; a virtualenv (built in place,
// since it records its own path) is complete once its ".shoal-ready" mark exists. What a
// previous raylet left incomplete is removed at start. What is set up is shared by every
// environment that names it, and kept while a live worker (or a Prepare in the last
// recent_use) uses it; unused ones are kept, least recently used first out, up to
// max_unused_packages / max_unused_envs.
//
// Prepare never blocks: it answers the context when everything is ready, "pending" while a
// setup job (one thread per environment; one build per package or virtualenv at a time, others
// waiting for it) runs, or the error of a setup that failed in the last failure_memory, which
// is RUNTIME_ENV_SETUP_FAILED for the tasks that asked (a later Prepare tries again).
// on_change runs (on the setup thread) when a job ends, so the raylet can try its waiting
// requests again.
//
// Threading: Prepare, Tick and the destructor on one thread (the raylet's loop); setup jobs on
// their own threads; one mutex guards the shared tables. The destructor kills running pip/uv
// processes and joins the jobs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "src/common/clock.h"

namespace shoal {

// How to start a worker inside an environment.
struct RuntimeEnvContext {
  std::vector<std::pair<std::string, std::string>> env;  // set on the process (over the raylet's)
  std::string cwd;                                       // empty: the raylet's
  // An argv entry equal to `interpreter` is replaced by `python` (the virtualenv's).
  std::string interpreter;
  std::string python;
};

// What the lease manager asks (RuntimeEnvAgent in the raylet; fakes in tests).
class RuntimeEnvProvider {
 public:
  virtual ~RuntimeEnvProvider() = default;
  // The context when `env` is ready, nullopt while it is being set up, or why it failed.
  virtual absl::StatusOr<std::optional<RuntimeEnvContext>> Prepare(const rpc::RuntimeEnv& env) = 0;
};

struct RuntimeEnvAgentOptions {
  std::string root_dir;
  // Downloads a package's bytes (from the GCS). Called on setup threads.
  std::function<absl::StatusOr<std::string>(const std::string& uri)> fetch_package;
  std::function<void()> on_change;
  int max_unused_packages = 32;
  int max_unused_envs = 4;
  uint64_t max_unpacked_bytes = uint64_t{2} << 30;
  absl::Duration install_timeout = absl::Minutes(10);  // one pip/uv/venv command
  absl::Duration failure_memory = absl::Seconds(10);
  absl::Duration recent_use = absl::Seconds(5);        // a Prepare keeps what it named this long
};

class RuntimeEnvAgent : public RuntimeEnvProvider {
 public:
  RuntimeEnvAgent(const Clock& clock, RuntimeEnvAgentOptions options);
  ~RuntimeEnvAgent() override;
  RuntimeEnvAgent(const RuntimeEnvAgent&) = delete;
  RuntimeEnvAgent& operator=(const RuntimeEnvAgent&) = delete;

  absl::StatusOr<std::optional<RuntimeEnvContext>> Prepare(const rpc::RuntimeEnv& env) override;
  // `live_env_keys`: the RuntimeEnvKey of every worker alive on the node. Joins finished setup
  // jobs and deletes what no live or recent environment uses, beyond the unused limits.
  void Tick(const std::set<std::string>& live_env_keys);

  struct Stats {
    int64_t packages = 0;  // ready on disk
    int64_t envs = 0;
    int64_t setting_up = 0;  // environments with a setup job running
  };
  Stats stats() const;
  // The RuntimeEnvKey of each environment whose setup job runs now.
  std::vector<std::string> SettingUp() const;
  const RuntimeEnvAgentOptions& options() const { return options_; }

 private:
  enum class State { kMissing, kBuilding, kReady, kFailed };
  struct Resource {
    State state = State::kMissing;
    std::string error;
    absl::Time failed_at;
    absl::Time last_used;
    std::string path;
  };
  struct Job {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  // The resources `env` needs, in setup order: packages, then its virtualenv ("env:<key>").
  std::vector<std::string> ResourcesOf(const rpc::RuntimeEnv& env) const;
  RuntimeEnvContext ContextOf(const rpc::RuntimeEnv& env) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunJob(const rpc::RuntimeEnv& env);
  // Builds one resource (mu_ not held); answers its path or why it failed.
  absl::StatusOr<std::string> Build(const std::string& resource, const rpc::RuntimeEnv& env);
  absl::StatusOr<std::string> BuildPackage(const std::string& uri);
  absl::StatusOr<std::string> BuildVirtualenv(const std::string& key, const rpc::RuntimeEnv& env);
  // Runs argv to its end with output appended to `log`; error with the log's tail on failure.
  absl::Status RunLogged(const std::vector<std::string>& argv, const std::string& log, const std::string& what);
  void Delete(const std::string& resource, const Resource& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  const RuntimeEnvAgentOptions options_;
  std::atomic<bool> stopping_{false};
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<std::string, Resource> resources_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, rpc::RuntimeEnv> envs_ ABSL_GUARDED_BY(mu_);             // by RuntimeEnvKey
  std::map<std::string, absl::Time> env_used_ ABSL_GUARDED_BY(mu_);              // last Prepare
  // Setup jobs by RuntimeEnvKey, and deletions ("delete:<path>").
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> running_pids_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
