#include "src/raylet/worker_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace shoal {

std::string WorkerKey::ToString() const {
  return absl::StrCat("job ", job.Hex(), ": ", absl::StrJoin(command, " "),
                      env_key.empty() ? "" : absl::StrCat(" [env ", env_key.substr(0, 8), "]"), gpu ? " [gpu]" : "");
}

WorkerPool::WorkerPool(ProcessSpawner& spawner, const Clock& clock, WorkerPoolOptions options)
    : spawner_(spawner), clock_(clock), options_(std::move(options)) {}

WorkerPool::~WorkerPool() {
  for (auto it = workers_.begin(); it != workers_.end();) Remove(it++, /*kill=*/true);
  // Killed processes die at once; give them a moment to be reaped so no zombie outlives us.
  for (int round = 0; round < 100 && !killed_pids_.empty(); ++round) {
    std::erase_if(killed_pids_, [&](int64_t pid) { return spawner_.TryReap(pid).has_value(); });
    if (!killed_pids_.empty()) absl::SleepFor(absl::Milliseconds(10));
  }
}

std::string WorkerPool::LogPath(const WorkerId& id, const std::string& suffix) const {
  if (options_.session_dir.empty()) return "";
  return absl::StrCat(options_.session_dir, "/logs/worker-", id.Hex(), ".", suffix);
}

bool WorkerPool::CanStartWorker() const { return starting_ < std::max(1, options_.max_starting); }

absl::StatusOr<WorkerId> WorkerPool::StartWorker(const WorkerKey& key, const RuntimeEnvContext* env) {
  if (key.command.empty() || key.command[0].empty()) {
    return absl::InvalidArgumentError("the worker command is empty");
  }
  if (!CanStartWorker()) {
    return absl::ResourceExhaustedError(absl::StrCat(starting_, " workers are already starting"));
  }
  const WorkerId id = WorkerId::FromRandom();
  ProcessSpec spec;
  spec.argv = key.command;
  spec.env = {
      {"SHOAL_WORKER_MODE", "1"},
      {"SHOAL_WORKER_ID", id.Hex()},
      {"SHOAL_RAYLET_ADDRESS", options_.raylet_address},
      {"SHOAL_GCS_ADDRESS", options_.gcs_address},
      {"SHOAL_NODE_ID", options_.node_id.Hex()},
      {"SHOAL_STORE_SOCKET", options_.store_socket},
      {"SHOAL_JOB_ID", key.job.Hex()},
      {"SHOAL_SESSION_DIR", options_.session_dir},
      {"SHOAL_NODE_IP", options_.node_ip},
  };
  spec.env.insert(spec.env.end(), options_.extra_env.begin(), options_.extra_env.end());
  if (options_.min_worker_port > 0) {
    spec.env.emplace_back("SHOAL_MIN_WORKER_PORT", std::to_string(options_.min_worker_port));
    spec.env.emplace_back("SHOAL_MAX_WORKER_PORT", std::to_string(options_.max_worker_port));
  }
  spec.stdout_path = LogPath(id, "out");
  spec.stderr_path = LogPath(id, "err");
  if (env != nullptr) {
    for (const auto& [name, value] : env->env) {
      // The pool's SHOAL_* variables win over the environment's.
      const bool taken = std::any_of(spec.env.begin(), spec.env.end(), [&](const auto& e) { return e.first == name; });
      if (!taken) spec.env.emplace_back(name, value);
    }
    spec.cwd = env->cwd;
    if (!env->interpreter.empty()) std::replace(spec.argv.begin(), spec.argv.end(), env->interpreter, env->python);
  }
  auto pid = spawner_.Spawn(spec);
  if (!pid.ok()) {
    spdlog::warn("cannot start a worker for {}: {}", key.ToString(), pid.status().ToString());
    return pid.status();
  }
  Worker w;
  w.id = id;
  w.key = key;
  w.pid = *pid;
  w.started_at = clock_.Now();
  workers_.emplace(id, std::move(w));
  ++starting_;
  spdlog::info("started worker {} (pid {}) for {}", id.Hex(), *pid, key.ToString());
  return id;
}

absl::Status WorkerPool::RegisterWorker(const WorkerId& id, int port, int64_t pid) {
  auto it = workers_.find(id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker ", id.Hex(),
                                            " is not one this raylet is starting (unknown, killed or timed out)"));
  }
  if (port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("worker port must be in 1..65535, got ", port));
  }
  Worker& w = it->second;
  if (w.state != State::kStarting) {
    if (w.port == port && w.reported_pid == pid) return absl::OkStatus();
    return absl::AlreadyExistsError(absl::StrCat("worker ", id.Hex(), " already registered with port ", w.port,
                                                 " and pid ", w.reported_pid));
  }
  --starting_;
  w.state = State::kIdle;
  w.port = port;
  w.reported_pid = pid;
  w.address = absl::StrCat(options_.node_ip, ":", port);
  w.idle_since = clock_.Now();
  start_failures_.erase(w.key);
  spdlog::info("worker {} (pid {}) registered at {} after {}", id.Hex(), pid, w.address,
               absl::FormatDuration(clock_.Now() - w.started_at));
  return absl::OkStatus();
}

std::optional<WorkerPool::Worker> WorkerPool::PopIdleWorker(const WorkerKey& key) {
  Worker* best = nullptr;
  for (auto& [id, w] : workers_) {
    if (w.state == State::kIdle && w.key == key && (best == nullptr || w.idle_since > best->idle_since)) {
      best = &w;
    }
  }
  if (best == nullptr) return std::nullopt;
  best->state = State::kLeased;
  best->leased_at = clock_.Now();
  return *best;
}

absl::Status WorkerPool::ReturnWorker(const WorkerId& id) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("unknown worker ", id.Hex()));
  if (it->second.state != State::kLeased) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", id.Hex(), " is not leased"));
  }
  it->second.state = State::kIdle;
  it->second.idle_since = clock_.Now();
  return absl::OkStatus();
}

absl::Status WorkerPool::KillWorker(const WorkerId& id, const std::string& reason) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("unknown worker ", id.Hex()));
  spdlog::info("killing worker {} (pid {}): {}", id.Hex(), it->second.pid, reason);
  Remove(it, /*kill=*/true);
  return absl::OkStatus();
}

void WorkerPool::Remove(std::map<WorkerId, Worker>::iterator it, bool kill) {
  if (it->second.state == State::kStarting) --starting_;
  if (kill) {
    spawner_.Kill(it->second.pid);
    killed_pids_.push_back(it->second.pid);
  }
  workers_.erase(it);
}

std::vector<WorkerPool::Exit> WorkerPool::Tick() {
  std::vector<Exit> exits;
  std::erase_if(killed_pids_, [&](int64_t pid) { return spawner_.TryReap(pid).has_value(); });
  const absl::Time now = clock_.Now();

  for (auto it = workers_.begin(); it != workers_.end();) {
    Worker& w = it->second;
    std::optional<ProcessExit> exited = spawner_.TryReap(w.pid);
    std::string reason;
    bool kill = false;
    if (exited) {
      reason = absl::StrCat(exited->ToString(), "; see ", LogPath(w.id, "err"));
    } else if (w.state == State::kStarting && now - w.started_at >= options_.start_timeout) {
      reason = absl::StrCat("did not register within ", absl::FormatDuration(options_.start_timeout), "; see ",
                            LogPath(w.id, "err"));
      kill = true;
    } else {
      ++it;
      continue;
    }
    if (w.state == State::kStarting) ++start_failures_[w.key];
    spdlog::warn("worker {} (pid {}, {}) {}", w.id.Hex(), w.pid,
                 w.state == State::kStarting ? "starting" : w.state == State::kIdle ? "idle" : "leased", reason);
    exits.push_back(Exit{.id = w.id, .key = w.key, .state = w.state, .address = w.address, .reason = reason});
    Remove(it++, kill);
  }

  // Idle extras: the longest idle first, while more than max_idle are idle.
  std::vector<Worker*> idle;
  for (auto& [id, w] : workers_) {
    if (w.state == State::kIdle) idle.push_back(&w);
  }
  if (static_cast<int>(idle.size()) > options_.max_idle) {
    std::sort(idle.begin(), idle.end(), [](const Worker* a, const Worker* b) { return a->idle_since < b->idle_since; });
    size_t excess = idle.size() - std::max(0, options_.max_idle);
    for (size_t i = 0; i < excess && now - idle[i]->idle_since >= options_.idle_timeout; ++i) {
      (void)KillWorker(idle[i]->id, absl::StrCat("idle for ", absl::FormatDuration(now - idle[i]->idle_since),
                                                 " with more than ", options_.max_idle, " idle"));
    }
  }
  return exits;
}

int WorkerPool::ConsecutiveStartFailures(const WorkerKey& key) const {
  auto it = start_failures_.find(key);
  return it == start_failures_.end() ? 0 : it->second;
}

void WorkerPool::ResetStartFailures(const WorkerKey& key) { start_failures_.erase(key); }

const WorkerPool::Worker* WorkerPool::Find(const WorkerId& id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

bool WorkerPool::Exiting(int64_t pid) const {
  return std::find(killed_pids_.begin(), killed_pids_.end(), pid) != killed_pids_.end();
}

int WorkerPool::NumStarting(const WorkerKey& key) const {
  int n = 0;
  for (const auto& [id, w] : workers_) n += (w.state == State::kStarting && w.key == key) ? 1 : 0;
  return n;
}

WorkerPool::Stats WorkerPool::stats() const {
  Stats s;
  for (const auto& [id, w] : workers_) {
    ++s.workers;
    switch (w.state) {
      case State::kStarting: ++s.starting; break;
      case State::kIdle: ++s.idle; break;
      case State::kLeased: ++s.leased; break;
    }
  }
  return s;
}

}  // namespace shoal
