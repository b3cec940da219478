// Process management for the CLI; see process.h.
#include "src/cluster/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

extern char** environ;

namespace shoal::cluster {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
constexpr absl::Duration kAfterKillWait = absl::Seconds(5);

struct ProcStat {
  char state = '?';
  uint64_t start_time = 0;
};

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(line).substr(close + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
  ProcStat stat;
  if (fields.size() < 20 || fields[0].empty() || !absl::SimpleAtoi(fields[19], &stat.start_time)) {
    return std::nullopt;
  }
  stat.state = fields[0][0];
  return stat;
}

// argv-style array of pointers into `strings`, which must outlive it.
std::vector<char*> CArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// This process's environment with `overrides` set.
std::vector<std::string> ChildEnvironment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    if (!overrides.contains(std::string(name))) out.emplace_back(entry);
  }
  for (const auto& [name, value] : overrides) out.push_back(absl::StrCat(name, "=", value));
  return out;
}

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Reaps `id` if it is a child of this process that has ended; harmless otherwise.
void ReapIfChild(const ProcessId& id) { waitpid(id.pid, nullptr, WNOHANG); }

}  // namespace

absl::StatusOr<ProcessId> SpawnDaemon(const DaemonSpec& spec) {
  std::vector<std::string> args = {spec.binary};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env = ChildEnvironment(spec.env);
  std::vector<char*> argv = CArray(args);
  std::vector<char*> envp = CArray(env);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (spec.stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, spec.stdin_fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, spec.stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, spec.stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  // New session (no controlling terminal, out of the shell's process group), default signal
  // dispositions and an empty signal mask whatever this process had.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = 0;
  int rc = posix_spawn(&pid, spec.binary.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot start ", spec.binary, ": ", std::strerror(rc)));
  }
  // The child cannot vanish before we reap it, so its /proc entry is there to read.
  absl::StatusOr<uint64_t> start_time = ReadStartTime(pid);
  if (!start_time.ok()) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return absl::UnavailableError(absl::StrCat("started ", spec.binary, " but cannot read /proc/", pid,
                                               "/stat: ", start_time.status().message()));
  }
  return ProcessId{pid, *start_time};
}

absl::StatusOr<uint64_t> ReadStartTime(pid_t pid) {
  std::optional<ProcStat> stat = ReadProcStat(pid);
  if (!stat) return absl::NotFoundError(absl::StrCat("no process ", pid));
  return stat->start_time;
}

bool IsRunning(const ProcessId& id) {
  if (id.pid <= 1) return false;
  std::optional<ProcStat> stat = ReadProcStat(id.pid);
  return stat && stat->start_time == id.start_time && stat->state != 'Z' && stat->state != 'X';
}

absl::Status SendSignal(const ProcessId& id, int sig) {
  if (id.pid <= 1) return absl::InvalidArgumentError(absl::StrCat("refusing to signal pid ", id.pid));
  int pidfd = PidfdOpen(id.pid);
  if (pidfd < 0) {
    if (errno == ESRCH) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("pidfd_open(", id.pid, "): ", std::strerror(errno)));
  }
  // The pidfd now pins one process; check that it is the one we recorded before signalling.
  absl::Status status = absl::OkStatus();
  if (IsRunning(id) && PidfdSendSignal(pidfd, sig) != 0 && errno != ESRCH) {
    status = errno == EPERM
                 ? absl::PermissionDeniedError(absl::StrCat("not allowed to signal pid ", id.pid))
                 : absl::UnavailableError(absl::StrCat("cannot signal pid ", id.pid, ": ", std::strerror(errno)));
  }
  close(pidfd);
  return status;
}

std::vector<ProcessId> WaitUntilGone(std::vector<ProcessId> ids, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    std::erase_if(ids, [](const ProcessId& id) {
      ReapIfChild(id);
      return !IsRunning(id);
    });
    if (ids.empty() || absl::Now() >= deadline) return ids;
    absl::SleepFor(kPollInterval);
  }
}

std::optional<std::string> ReapIfExited(pid_t child) {
  int status = 0;
  pid_t r = waitpid(child, &status, WNOHANG);
  if (r == 0) return std::nullopt;
  if (r < 0) return std::string("exited");  // not (or no longer) our child
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return std::string("ended");
}

StopOutcome StopProcesses(const std::vector<ProcessId>& ids, absl::Duration grace) {
  StopOutcome outcome;
  for (const ProcessId& id : ids) (void)SendSignal(id, SIGTERM);
  std::vector<ProcessId> left = WaitUntilGone(ids, grace);
  for (const ProcessId& id : ids) {
    if (std::find(left.begin(), left.end(), id) == left.end()) outcome.terminated.push_back(id);
  }
  for (const ProcessId& id : left) (void)SendSignal(id, SIGKILL);
  outcome.remaining = WaitUntilGone(left, kAfterKillWait);
  for (const ProcessId& id : left) {
    if (std::find(outcome.remaining.begin(), outcome.remaining.end(), id) == outcome.remaining.end()) {
      outcome.killed.push_back(id);
    }
  }
  return outcome;
}

}  // namespace shoal::cluster
