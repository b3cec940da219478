// What a core worker needs to start: which GCS, raylet, node and store it joins, who it is, and
// the command that starts more workers like it.
//
// A driver's config comes from CoreWorkerOptions and the GCS's node table (ForDriver); a
// worker's from the SHOAL_* environment its raylet set when it started the process
// (FromEnvironment). Threading: values; any thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/worker/core_worker.h"

namespace shoal {

struct WorkerConfig {
  CoreWorkerOptions::Mode mode = CoreWorkerOptions::Mode::kDriver;
  std::string gcs_address;
  std::string raylet_address;
  std::string node_ip;        // where this worker serves (CoreWorkerService)
  // The ports it may listen on (SHOAL_MIN_WORKER_PORT..SHOAL_MAX_WORKER_PORT); 0: any free one.
  int min_port = 0;
  int max_port = 0;
  std::string store_socket;
  NodeId node_id;
  WorkerId worker_id;
  JobId job_id;               // worker mode; a driver gets its job from the GCS
  std::vector<std::string> worker_command;
  // Retries after memory kills (TaskSubmitterOptions), from SHOAL_TASK_OOM_RETRIES (-1: no
  // limit, Ray's default) and SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS in either mode.
  int task_oom_retries = -1;
  absl::Duration oom_retry_delay_base = absl::Seconds(1);

  // Looks up an environment variable: "" when unset.
  using Getenv = std::function<std::string(const char* name)>;

  // Worker mode, from SHOAL_WORKER_ID, SHOAL_RAYLET_ADDRESS, SHOAL_NODE_ID, SHOAL_STORE_SOCKET,
  // SHOAL_JOB_ID (all required), SHOAL_GCS_ADDRESS, SHOAL_NODE_IP (default: the raylet's
  // host) and SHOAL_MIN_WORKER_PORT / SHOAL_MAX_WORKER_PORT (both or neither). The worker command is this process's own command line. InvalidArgument naming the
  // variable when one is missing or malformed.
  static absl::StatusOr<WorkerConfig> FromEnvironment(const Getenv& getenv = ProcessGetenv);
  static std::string ProcessGetenv(const char* name);

  // Driver mode: joins the node whose raylet is options.raylet_address, else
  // $SHOAL_DRIVER_RAYLET_ADDRESS (a job's entrypoint on its lease's node has it), else the
  // alive head node, as the GCS at options.gcs_address lists it (a node still registering
  // is waited for, up to `connect_timeout` by `clock`). A new worker id; the worker command
  // is options.worker_command, else this executable. NotFound when no such node is alive;
  // Unavailable when the GCS does not answer.
  static absl::StatusOr<WorkerConfig> ForDriver(const CoreWorkerOptions& options, const Clock& clock,
                                                absl::Duration connect_timeout);
};

// argv of this process (from /proc/self/cmdline).
std::vector<std::string> SelfCommandLine();
// The real path of this process's executable.
std::string SelfExecutable();

}  // namespace shoal
