// Submitted jobs as the jobs REST API sees them: the record, its state machine, and the
// parsing of a submit request. Pure: no I/O, so it is tested without a process.
//
// The JSON forms follow Ray's jobs API (ray.dashboard.modules.job.common): a submit body
// {entrypoint, submission_id, runtime_env, metadata, entrypoint_num_cpus, entrypoint_num_gpus,
// entrypoint_memory, entrypoint_resources} and a JobDetails reply, so that Ray's own
// JobSubmissionClient reads Shoal's answers unchanged.
//
// Life of a job:  PENDING --> RUNNING --> SUCCEEDED | FAILED | STOPPED
//                 PENDING --> FAILED | STOPPED
// The last three are terminal: nothing moves a job out of them.
// Threading: values; not synchronized.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace shoal::dashboard {

enum class JobStatus { kPending, kRunning, kStopped, kSucceeded, kFailed };

std::string JobStatusName(JobStatus status);  // "PENDING", ...
std::optional<JobStatus> ParseJobStatus(const std::string& name);
bool IsTerminal(JobStatus status);
// Whether a job may move from `from` to `to` (see the diagram above).
bool CanTransition(JobStatus from, JobStatus to);

// The runtime_env fields Shoal acts on, validated; the whole object is kept as sent.
struct RuntimeEnv {
  nlohmann::json raw = nlohmann::json::object();
  std::string working_dir;                      // a package URI, an absolute path on the head, or ""
  std::map<std::string, std::string> env_vars;
};

// Validates a runtime_env object (null means an empty one). InvalidArgument names the bad field.
absl::StatusOr<RuntimeEnv> ParseRuntimeEnv(const nlohmann::json& value);

// Working-dir packages. A package name is what `PUT /api/packages/gcs/<name>` stores and a
// `gcs://<name>` URI names: 5..128 characters of [A-Za-z0-9_.-] ending in ".zip" (so it is a
// single path component, never "." or "..", and safe to join to the package directory).
bool IsValidPackageName(const std::string& name);
// The package name in `uri` ("gcs://<name>"); nullopt when `uri` is not such a URI.
std::optional<std::string> PackageNameFromUri(const std::string& uri);

// What a submission asks for, validated.
struct JobSpec {
  std::string submission_id;
  std::string entrypoint;                       // run with /bin/sh -c
  nlohmann::json runtime_env = nlohmann::json::object();
  std::string working_dir;                      // runtime_env.working_dir: a package URI or ""
  std::map<std::string, std::string> env_vars;  // runtime_env.env_vars
  std::map<std::string, std::string> metadata;
  double num_cpus = 0;                          // entrypoint_num_cpus (Ray's default: 0)
  double num_gpus = 0;
  int64_t memory = 0;                           // entrypoint_memory, bytes
  std::map<std::string, double> resources;      // entrypoint_resources (custom)

  // The entrypoint's resource shape as names -> amounts; empty when it asks for nothing.
  std::map<std::string, double> ResourceShape() const;
};

// Validates a POST /api/jobs/ body. InvalidArgument names the bad field. An absent
// submission_id is left empty (the caller picks one); Ray's deprecated `job_id` field is taken
// as the submission id. Unknown fields are ignored, as newer clients may send more.
absl::StatusOr<JobSpec> ParseSubmitRequest(const std::string& body);

// Submission ids: 1..128 characters of [A-Za-z0-9_.-].
bool IsValidSubmissionId(const std::string& id);
// A fresh id, "shoalsubmit_" + 16 random letters and digits.
std::string NewSubmissionId();

struct JobRecord {
  JobSpec spec;
  JobStatus status = JobStatus::kPending;
  std::string message;
  std::string error_type;             // "" or e.g. "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"-like text
  int64_t start_time_ms = 0;          // submission time
  int64_t end_time_ms = 0;            // 0 until terminal
  std::optional<int> driver_exit_code;
  int64_t driver_pid = 0;             // the entrypoint's shell while RUNNING

  // Moves to `to` with `message`, stamping end_time_ms when it becomes terminal.
  // FailedPrecondition when the transition is not allowed (the record is unchanged).
  absl::Status Transition(JobStatus to, const std::string& message, int64_t now_ms);

  // Ray's JobDetails (type "SUBMISSION"): the REST reply for one job.
  nlohmann::json ToApiJson() const;
  // The stored form (the API form plus what a restarted dashboard needs).
  std::string Serialize() const;
  static absl::StatusOr<JobRecord> Deserialize(const std::string& text);
};

}  // namespace shoal::dashboard
