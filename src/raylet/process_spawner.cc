#include "src/raylet/process_spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace shoal {

std::string ProcessExit::ToString() const {
  if (signal != 0) {
    const char* name = strsignal(signal);
    return absl::StrCat("killed by signal ", signal, name != nullptr ? absl::StrCat(" (", name, ")") : "");
  }
  return absl::StrCat("exited with code ", exit_code);
}

namespace {

absl::Status ErrnoStatus(int err, const std::string& what) {
  std::string message = absl::StrCat(what, ": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// The executable execve should run: argv0 itself when it has a '/', else the first match in
// PATH (resolved before fork, since the child may only make async-signal-safe calls).
absl::StatusOr<std::string> ResolveExecutable(const std::string& argv0) {
  if (argv0.find('/') != std::string::npos) return argv0;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", argv0);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("cannot find executable '", argv0, "' in PATH"));
}

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::Status OpenOutput(const std::string& path, Fd* out) {
  if (path.empty()) return absl::OkStatus();
  out->fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out->fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot open ", path));
  return absl::OkStatus();
}

// Makes `target` a copy of `fd` that survives exec (async-signal-safe).
void Redirect(int fd, int target) {
  if (fd < 0) return;
  if (fd == target) {
    fcntl(fd, F_SETFD, 0);
  } else {
    dup2(fd, target);
  }
}

// Closes every descriptor from `from` up, except `keep`.
void CloseDescriptorsFrom(int from, int keep, int max_fd) {
#ifdef SYS_close_range
  if (keep >= from) {
    if ((keep == from || syscall(SYS_close_range, from, keep - 1, 0) == 0) &&
        syscall(SYS_close_range, keep + 1, ~0U, 0) == 0) {
      return;
    }
  } else if (syscall(SYS_close_range, from, ~0U, 0) == 0) {
    return;
  }
#endif
  for (int fd = from; fd < max_fd; ++fd) {
    if (fd != keep) close(fd);
  }
}

}  // namespace

absl::StatusOr<int64_t> PosixProcessSpawner::Spawn(const ProcessSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("the worker command is empty");
  }
  auto exe = ResolveExecutable(spec.argv[0]);
  if (!exe.ok()) return exe.status();

  // Everything the child needs is built here, before fork.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::map<std::string, std::string> overrides(spec.env.begin(), spec.env.end());
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string_view::npos && overrides.contains(std::string(entry.substr(0, eq)))) continue;
    env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : overrides) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  Fd out, err, in;
  if (auto s = OpenOutput(spec.stdout_path, &out); !s.ok()) return s;
  if (auto s = OpenOutput(spec.stderr_path, &err); !s.ok()) return s;
  in.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  Fd pipe_read{exec_pipe[0]}, pipe_write{exec_pipe[1]};
  long open_max = sysconf(_SC_OPEN_MAX);
  const int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    Redirect(in.fd, STDIN_FILENO);
    Redirect(out.fd, STDOUT_FILENO);
    Redirect(err.fd, STDERR_FILENO);
    CloseDescriptorsFrom(3, pipe_write.fd, max_fd);
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
      int e = errno;
      ssize_t ignored = write(pipe_write.fd, &e, sizeof(e));
      (void)ignored;
      _exit(127);
    }
    execve(exe->c_str(), argv.data(), envp.data());
    int e = errno;
    ssize_t ignored = write(pipe_write.fd, &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  close(pipe_write.fd);
  pipe_write.fd = -1;
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(pipe_read.fd, &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return ErrnoStatus(child_errno, spec.cwd.empty() ? absl::StrCat("cannot run ", *exe)
                                                     : absl::StrCat("cannot run ", *exe, " in ", spec.cwd));
  }
  return static_cast<int64_t>(pid);
}

void PosixProcessSpawner::Kill(int64_t pid) {
  if (pid <= 0) return;
  kill(static_cast<pid_t>(-pid), SIGKILL);
  kill(static_cast<pid_t>(pid), SIGKILL);
}

std::optional<ProcessExit> PosixProcessSpawner::TryReap(int64_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(static_cast<pid_t>(pid), &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  if (r < 0) return ProcessExit{.exit_code = -1, .signal = 0};  // not our child, or reaped
  if (WIFSIGNALED(status)) return ProcessExit{.exit_code = -1, .signal = WTERMSIG(status)};
  return ProcessExit{.exit_code = WEXITSTATUS(status), .signal = 0};
}

}  // namespace shoal
