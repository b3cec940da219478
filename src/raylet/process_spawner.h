// Starts, kills and reaps child processes: the seam between the worker pool and the OS.
// PosixProcessSpawner is the real one; FakeProcessSpawner (fake_process_spawner.h) is for tests.
//
// Threading: PosixProcessSpawner may be called from any thread, but PR_SET_PDEATHSIG ties each
// child to the *thread* that spawned it (the child is killed when that thread exits), so spawn
// from a thread that lives as long as the raylet (its event loop).
// Errors: Spawn answers InvalidArgument for an empty argv, Internal/NotFound/PermissionDenied
// when the executable cannot be run (the exec error is reported synchronously).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace shoal {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  // Set on top of the parent's environment (replacing variables of the same name).
  std::vector<std::pair<std::string, std::string>> env;
  std::string stdout_path;  // appended to; empty: inherit the parent's
  std::string stderr_path;
  std::string cwd;          // the child's working directory; empty: the parent's
};

// How a process ended.
struct ProcessExit {
  int exit_code = 0;  // meaningful when signal == 0
  int signal = 0;     // the signal that killed it, 0 if it exited
  // "exited with code 1", "killed by signal 9 (Killed)".
  std::string ToString() const;
};

class ProcessSpawner {
 public:
  virtual ~ProcessSpawner() = default;
  // Starts `spec` in a new process group; answers its pid.
  virtual absl::StatusOr<int64_t> Spawn(const ProcessSpec& spec) = 0;
  // Sends SIGKILL to the process's group (and to the process itself). Harmless if it is gone.
  virtual void Kill(int64_t pid) = 0;
  // Reaps `pid` if it has exited (without blocking): answers how it ended; nullopt while it
  // runs. A pid this spawner did not start, or already reaped, answers an exit with signal 0 and
  // code -1.
  virtual std::optional<ProcessExit> TryReap(int64_t pid) = 0;
};

// fork + execvpe. In the child: PR_SET_PDEATHSIG(SIGKILL) (workers die with their raylet), a
// new process group, all signals unblocked and default dispositions for SIGPIPE/SIGCHLD,
// stdout/stderr redirected (appending), every other inherited descriptor closed.
class PosixProcessSpawner : public ProcessSpawner {
 public:
  absl::StatusOr<int64_t> Spawn(const ProcessSpec& spec) override;
  void Kill(int64_t pid) override;
  std::optional<ProcessExit> TryReap(int64_t pid) override;
};

}  // namespace shoal
