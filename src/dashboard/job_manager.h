// Runs submitted jobs: one supervisor thread per job that
//   1. holds the entrypoint's resources (a ResourceReservation) when it asks for any; the job
//      stays PENDING while the cluster has no room (or its runtime env is being set up), and
//      the raylet reports it as demand. Such an entrypoint then runs on the node that granted
//      them (RunOnLeaseNode, entrypoint_runner.h), in the job's runtime env, with the lease's
//      GPUs; the steps below are for the others (and for a working_dir that is a head path);
//   2. unpacks runtime_env.working_dir (a package uploaded with PUT /api/packages/...) into
//      <session>/runtime_resources/working_dirs/<submission_id>/;
//   3. runs the entrypoint with /bin/sh -c in a new session and process group, in that
//      directory, with runtime_env.env_vars and SHOAL_ADDRESS / RAY_ADDRESS set to the GCS, its
//      stdout and stderr going to <session>/logs/job-driver-<submission_id>.log;
//   4. records the result: SUCCEEDED (exit 0), FAILED (exit code or signal), or STOPPED.
// When the entrypoint's shell exits, whatever is left of its process group is killed, so a job
// leaves no processes behind; a small guard process per job kills the group if the dashboard
// itself dies. Stop sends SIGTERM to the whole group and SIGKILL after the
// grace period. Shutdown (the dashboard is stopping) stops every job that has not ended.
//
// Records are kept here and written through to a JobStore (the GCS KV, namespace "job"), so
// they outlive the dashboard and, with Redis, a GCS restart. Jobs found unfinished at start-up
// had their supervisor die with an earlier dashboard: they are marked FAILED.
// Threading: every public method is thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "src/dashboard/cluster_client.h"
#include "src/dashboard/job_record.h"

namespace shoal::dashboard {

// Where job records persist.
class JobStore {
 public:
  virtual ~JobStore() = default;
  virtual absl::Status Put(const JobRecord& record) = 0;
  virtual absl::Status Delete(const std::string& submission_id) = 0;
  virtual absl::StatusOr<std::vector<JobRecord>> LoadAll() = 0;
};

// JobStore over the GCS's KV service, namespace "job", key = submission id.
class GcsJobStore : public JobStore {
 public:
  explicit GcsJobStore(ClusterClient& client) : client_(client) {}
  absl::Status Put(const JobRecord& record) override;
  absl::Status Delete(const std::string& submission_id) override;
  absl::StatusOr<std::vector<JobRecord>> LoadAll() override;

 private:
  ClusterClient& client_;
};

inline constexpr char kJobNamespace[] = "job";

struct JobManagerOptions {
  std::string session_dir;
  std::string gcs_address;         // given to entrypoints as SHOAL_ADDRESS / RAY_ADDRESS
  std::string package_dir;         // where uploaded packages live
  std::string self_binary;         // this executable, for the lease holder's worker command
  absl::Duration stop_grace = absl::Seconds(3);
};

class JobManager {
 public:
  JobManager(JobManagerOptions options, ClusterClient& cluster, JobStore& store);
  ~JobManager();  // Shutdown()
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Loads the stored records (see the header comment). Call once before serving.
  void Recover();
  // Starts `spec` (an empty submission id gets a new one). AlreadyExists for a used id;
  // InvalidArgument for a working_dir that names no uploaded package.
  absl::StatusOr<std::string> Submit(JobSpec spec);
  absl::StatusOr<JobRecord> Get(const std::string& id);
  // Newest first.
  std::vector<JobRecord> List();
  // True when the job was PENDING or RUNNING and is now being stopped; false when it had
  // already ended. NotFound for an unknown id.
  absl::StatusOr<bool> Stop(const std::string& id);
  // The same, with SIGKILL `grace` after SIGTERM.
  absl::StatusOr<bool> Stop(const std::string& id, absl::Duration grace);
  // Forgets an ended job and its logs. FailedPrecondition while it runs.
  absl::Status Delete(const std::string& id);
  // The job's log from byte `offset`, at most `max_bytes` (the last ones when more). Answers
  // the text and the offset just past it.
  absl::StatusOr<std::pair<std::string, int64_t>> Logs(const std::string& id, int64_t offset, int64_t max_bytes);
  std::map<std::string, int64_t> CountByStatus();
  // Stops every job and waits for their supervisors. Idempotent.
  void Shutdown();

  std::string LogPath(const std::string& id) const;
  std::string PackagePath(const std::string& uri) const;  // "" for a URI that is not gcs://<name>.zip

 private:
  struct Job;
  void Supervise(std::shared_ptr<Job> job);
  // Unpacks the working dir, runs the entrypoint to its end and records the result.
  void RunEntrypoint(const std::shared_ptr<Job>& job);
  void Finish(const std::shared_ptr<Job>& job, JobStatus status, const std::string& message,
              std::optional<int> exit_code);
  void Persist(const JobRecord& record);
  absl::StatusOr<std::string> PrepareWorkingDir(const JobSpec& spec);
  // Until `acquired`, keeps the pending job's message saying whether the raylet its lease waits
  // at is setting up its runtime env (the one named `env_key`).
  void WatchRuntimeEnvSetup(const std::shared_ptr<Job>& job, const std::string& env_key,
                            const std::atomic<bool>& acquired);
  // The job's gcs:// packages are referenced (GCS KV package_refs, "submission-<id>|<uri>")
  // from submission to end, so that no other job's end deletes them meanwhile; at its end the
  // references go and packages nothing references any more are deleted.
  void HoldPackages(const JobSpec& spec);
  void ReleasePackages(const std::string& submission_id);
  // Runs the entrypoint on the node whose raylet granted its lease (entrypoint_runner.h).
  void RunOnLeaseNode(const std::shared_ptr<Job>& job);
  // The entrypoint runs on the head: its working_dir is a directory there.
  static bool RunsOnHead(const JobSpec& spec);
  // Its runtime env installs packages (pip, uv, wheels): the entrypoint runs in that env.
  static bool NeedsVirtualenv(const JobSpec& spec);
  // The job's runtime_env as the lease holding its entrypoint resources carries it.
  static absl::StatusOr<rpc::RuntimeEnv> EntrypointRuntimeEnv(const JobSpec& spec);

  const JobManagerOptions options_;
  ClusterClient& cluster_;
  JobStore& store_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // supervisor threads still running
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex persist_mu_;  // orders writes to the store
};

}  // namespace shoal::dashboard
