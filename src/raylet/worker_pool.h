// The node's worker processes: starts them on demand, hands out idle ones, takes them back,
// kills idle extras and workers that never register, and notices workers that exit.
//
// A worker belongs to one WorkerKey (job id + the argv that started it) and only ever serves
// leases of that key. Life of a worker:
//   StartWorker -> kStarting --RegisterWorker--> kIdle <--PopIdleWorker/ReturnWorker--> kLeased
// and from any state to gone: it exits (Tick reaps it and reports a WorkerExit), KillWorker, a
// start timeout (reported as a failed start), or the idle reaper.
//
// The worker process contract (what src/worker relies on): the process runs with the raylet's
// environment plus
//   SHOAL_WORKER_MODE=1, SHOAL_WORKER_ID (hex WorkerId), SHOAL_RAYLET_ADDRESS (host:port),
//   SHOAL_GCS_ADDRESS, SHOAL_NODE_ID (hex), SHOAL_STORE_SOCKET, SHOAL_JOB_ID (hex),
//   SHOAL_SESSION_DIR, SHOAL_NODE_IP, SHOAL_MIN_WORKER_PORT and SHOAL_MAX_WORKER_PORT (when set),
// stdout/stderr appended to <session>/logs/worker-<id>.out/.err, in its own process group, and
// killed when the raylet dies. It binds its CoreWorkerService on SHOAL_NODE_IP:0 and calls
// LeaseService.RegisterWorker(worker_id, port, pid) on SHOAL_RAYLET_ADDRESS within the start
// timeout; until then it is not leased.
//
// Threading: not synchronized; one thread (the raylet's event loop) owns the pool. Spawn from
// that thread only: children die when the spawning thread exits (PR_SET_PDEATHSIG).
// Ownership: borrows the spawner and clock, which must outlive the pool.
// Errors: unknown worker ids answer NotFound; a spawn error is returned, never thrown.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/common/clock.h"
#include "src/common/ids.h"
#include "src/raylet/process_spawner.h"
#include "src/raylet/runtime_env_agent.h"

namespace shoal {

// Which leases a worker may serve.
struct WorkerKey {
  JobId job;
  std::vector<std::string> command;  // argv
  std::string env_key;               // RuntimeEnvKey of its runtime environment ("": none)
  // Started for work that holds GPUs: as in Ray, such workers (which may hold a CUDA context)
  // serve only GPU work, and workers of CPU-only work never get GPU work.
  bool gpu = false;

  friend bool operator==(const WorkerKey&, const WorkerKey&) = default;
  friend bool operator<(const WorkerKey& a, const WorkerKey& b) {
    return std::tie(a.job, a.command, a.env_key, a.gpu) < std::tie(b.job, b.command, b.env_key, b.gpu);
  }
  std::string ToString() const;  // "job 01000000: /bin/worker --flag [env 1a2b3c4d]"
};

struct WorkerPoolOptions {
  // Passed to workers in their SHOAL_* environment.
  NodeId node_id;
  std::string node_ip = "127.0.0.1";
  std::string raylet_address;  // host:port of the LeaseService
  std::string gcs_address;
  std::string store_socket;
  std::string session_dir;     // logs go to <session_dir>/logs/
  // Workers listen on a port of this range (SHOAL_MIN/MAX_WORKER_PORT); 0: any free port.
  int min_worker_port = 0;
  int max_worker_port = 0;
  // At most this many workers start at once (further starts wait); at least 1.
  int max_starting = 1;
  // Idle workers beyond this many are killed once idle for idle_timeout.
  int max_idle = 1;
  absl::Duration idle_timeout = absl::Seconds(10);
  // A worker that has not registered this long after its start is killed (a failed start).
  absl::Duration start_timeout = absl::Seconds(60);
  // More variables for every worker (after the SHOAL_* ones above, before runtime envs').
  std::vector<std::pair<std::string, std::string>> extra_env;
};

class WorkerPool {
 public:
  enum class State { kStarting, kIdle, kLeased };

  struct Worker {
    WorkerId id;
    WorkerKey key;
    State state = State::kStarting;
    int64_t pid = 0;           // the process the pool started
    int64_t reported_pid = 0;  // what it sent in RegisterWorker
    int port = 0;
    absl::Time started_at;
    absl::Time idle_since;     // kIdle only
    absl::Time leased_at;      // kLeased only: when PopIdleWorker leased it
    std::string address;       // node_ip:port once registered
  };

  // A worker that left the pool on its own (it exited, or never registered in time). Not
  // reported for workers removed by KillWorker.
  struct Exit {
    WorkerId id;
    WorkerKey key;
    State state;         // what it was doing: kStarting means a failed start
    std::string address; // empty unless it had registered
    std::string reason;  // "exited with code 1; see <log>", "did not register within 60s"
  };

  struct Stats {
    int64_t workers = 0;   // started and not gone, in any state
    int64_t starting = 0;
    int64_t idle = 0;
    int64_t leased = 0;
  };

  WorkerPool(ProcessSpawner& spawner, const Clock& clock, WorkerPoolOptions options);
  // Kills every worker and reaps what has exited.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // True when fewer than max_starting workers are starting.
  bool CanStartWorker() const;
  // Starts a worker for `key`, inside `env` when given (its variables, directory and
  // interpreter; see RuntimeEnvAgent). ResourceExhausted when max_starting are already
  // starting; InvalidArgument for an empty command; the spawner's error if it cannot run it.
  absl::StatusOr<WorkerId> StartWorker(const WorkerKey& key, const RuntimeEnvContext* env = nullptr);
  // A started worker reports that it listens on `port`. NotFound for an id this pool is not
  // starting (unknown, killed, or timed out); AlreadyExists if it registered before with other
  // values (the same values again answer OK); InvalidArgument for a bad port.
  absl::Status RegisterWorker(const WorkerId& id, int port, int64_t pid);
  // An idle worker of `key`, now leased (the most recently idle one, whose caches are warm).
  std::optional<Worker> PopIdleWorker(const WorkerKey& key);
  // A leased worker becomes idle again. NotFound if unknown; FailedPrecondition if not leased.
  absl::Status ReturnWorker(const WorkerId& id);
  // Kills the worker and forgets it; its exit is reaped quietly. NotFound if unknown.
  absl::Status KillWorker(const WorkerId& id, const std::string& reason);

  // Reaps exited workers, kills workers past the start timeout and idle extras past the idle
  // timeout. Answers the workers that left the pool on their own since the last Tick.
  std::vector<Exit> Tick();

  // Failed starts of `key` since its last successful registration.
  int ConsecutiveStartFailures(const WorkerKey& key) const;
  void ResetStartFailures(const WorkerKey& key);

  const Worker* Find(const WorkerId& id) const;
  // True while process `pid`, killed by this pool, has not been reaped (it may still hold memory).
  bool Exiting(int64_t pid) const;
  int NumStarting(const WorkerKey& key) const;
  Stats stats() const;
  // Every worker in the pool, by id.
  const std::map<WorkerId, Worker>& workers() const { return workers_; }
  const WorkerPoolOptions& options() const { return options_; }
  // Where a worker's stdout and stderr go.
  std::string LogPath(const WorkerId& id, const std::string& suffix) const;

 private:
  void Remove(std::map<WorkerId, Worker>::iterator it, bool kill);

  ProcessSpawner& spawner_;
  const Clock& clock_;
  const WorkerPoolOptions options_;
  std::map<WorkerId, Worker> workers_;
  std::map<WorkerKey, int> start_failures_;
  std::vector<int64_t> killed_pids_;  // killed, not yet reaped
  int starting_ = 0;
};

}  // namespace shoal
