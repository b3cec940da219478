#include "src/dashboard/entrypoint_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"

extern char** environ;

namespace shoal::dashboard {
namespace {

// What the raylet told its worker, which the entrypoint (a driver, not a worker) must not see.
bool IsWorkerVariable(const std::string& name) {
  static const char* const kWorkerVariables[] = {
      "SHOAL_WORKER_MODE", "SHOAL_WORKER_ID",     "SHOAL_RAYLET_ADDRESS",  "SHOAL_NODE_ID",
      "SHOAL_STORE_SOCKET", "SHOAL_JOB_ID",       "SHOAL_SESSION_DIR",     "SHOAL_NODE_IP",
      "SHOAL_GCS_ADDRESS",  "SHOAL_MIN_WORKER_PORT", "SHOAL_MAX_WORKER_PORT"};
  for (const char* v : kWorkerVariables) {
    if (name == v) return true;
  }
  return false;
}

void WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    data += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

grpc::Status EntrypointRunner::Run(grpc::ServerContext* context, const rpc::RunEntrypointRequest* request,
                                   grpc::ServerWriter<rpc::EntrypointOutput>* writer) {
  SHOAL_AUTHENTICATE(context);
  if (request->entrypoint().empty() || request->entrypoint().find('\0') != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the entrypoint must be a non-empty command");
  }
  if (running_.exchange(true)) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this holder runs one entrypoint only");
  }
  // Everything the children need is built before fork.
  std::map<std::string, std::string> env;
  std::string raylet;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    std::string name = entry.substr(0, eq);
    if (name == "SHOAL_RAYLET_ADDRESS") raylet = entry.substr(eq + 1);
    if (!IsWorkerVariable(name)) env[name] = entry.substr(eq + 1);
  }
  // The driver joins this node's raylet (src/worker/worker_config.h), not the head's.
  if (!raylet.empty()) env["SHOAL_DRIVER_RAYLET_ADDRESS"] = raylet;
  for (const auto& [name, value] : request->env()) env[name] = value;
  std::vector<std::string> env_strings;
  for (const auto& [name, value] : env) env_strings.push_back(absl::StrCat(name, "=", value));
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string command = request->entrypoint();
  char sh[] = "/bin/sh", sh_name[] = "sh", dash_c[] = "-c";
  char* argv[] = {sh_name, dash_c, command.data(), nullptr};

  int output[2], guard_pipe[2];
  if (pipe2(output, O_CLOEXEC) != 0) return grpc::Status(grpc::StatusCode::INTERNAL, "pipe failed");
  if (pipe2(guard_pipe, O_CLOEXEC) != 0) {
    close(output[0]);
    close(output[1]);
    return grpc::Status(grpc::StatusCode::INTERNAL, "pipe failed");
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();  // its own process group: a stop signals all of it
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(output[1], 1);
    dup2(output[1], 2);
    for (int fd = 3; fd < 4096; ++fd) close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(sh, argv, envp.data());
    _exit(127);
  }
  close(output[1]);
  if (pid < 0) {
    close(output[0]);
    close(guard_pipe[0]);
    close(guard_pipe[1]);
    return grpc::Status(grpc::StatusCode::INTERNAL, "fork failed");
  }
  // The guard kills the entrypoint's group once this holder is gone, however it goes (the
  // raylet kills the holder's own process group when the lease ends; the guard is outside it).
  const pid_t guard = fork();
  if (guard == 0) {
    setsid();
    for (int fd = 0; fd < 4096; ++fd) {
      if (fd != guard_pipe[0]) close(fd);
    }
    char byte;
    while (read(guard_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    kill(-pid, SIGKILL);
    _exit(0);
  }
  close(guard_pipe[0]);
  spdlog::info("entrypoint started, pid {}: {}", pid, request->entrypoint());
  rpc::EntrypointOutput started;
  started.set_started(true);
  started.set_pid(pid);
  bool caller_gone = !writer->Write(started);

  const absl::Duration grace = absl::Milliseconds(std::max<int64_t>(0, request->stop_grace_ms()));
  absl::Time kill_at = absl::InfiniteFuture();
  bool stopping = false;
  int status = 0;
  bool exited = false;
  char buffer[64 << 10];
  bool output_open = true;
  // After the entrypoint exits, what it wrote is read for a bounded time: a process that left
  // its group could hold the pipe open forever.
  absl::Time drain_until = absl::InfiniteFuture();
  while ((!exited || output_open) && absl::Now() < drain_until) {
    if (!exited && !stopping && (caller_gone || context->IsCancelled())) {
      stopping = true;
      kill(-pid, SIGTERM);
      kill_at = absl::Now() + grace;
      spdlog::info("entrypoint {}: stopping (the caller cancelled or went away)", pid);
    }
    if (!exited && absl::Now() >= kill_at) kill(-pid, SIGKILL);  // never after it is reaped
    pollfd p{.fd = output[0], .events = POLLIN, .revents = 0};
    if (output_open && poll(&p, 1, 100) > 0) {
      ssize_t n = read(output[0], buffer, sizeof(buffer));
      if (n > 0) {
        rpc::EntrypointOutput chunk;
        chunk.set_data(buffer, static_cast<size_t>(n));
        if (!caller_gone && !writer->Write(chunk)) caller_gone = true;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        output_open = false;
      }
    } else if (!output_open) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (!exited) {
      pid_t done = waitpid(pid, &status, WNOHANG);
      if (done == pid) {
        // What the entrypoint left running would hold the pipe open: the group ends with it
        // (the group lives on while a member does, so its id is not reused yet).
        kill(-pid, SIGKILL);
        exited = true;
        drain_until = absl::Now() + absl::Seconds(2);
      }
    }
  }
  close(output[0]);
  close(guard_pipe[1]);
  if (guard > 0) {
    kill(guard, SIGKILL);
    while (waitpid(guard, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  rpc::EntrypointOutput last;
  last.set_exited(true);
  if (WIFEXITED(status)) last.set_exit_code(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) last.set_signal(WTERMSIG(status));
  spdlog::info("entrypoint {} ended: code {} signal {}", pid, last.exit_code(), last.signal());
  if (!caller_gone) writer->Write(last);
  finished_ = true;
  return grpc::Status::OK;
}

absl::StatusOr<EntrypointExit> RunOnHolder(const std::string& address, const rpc::RunEntrypointRequest& request,
                                           int log_fd, grpc::ClientContext* context,
                                           const std::function<void(int64_t pid)>& on_started) {
  auto stub = rpc::EntrypointService::NewStub(MakeChannel(address));
  AddClusterToken(*context);
  std::unique_ptr<grpc::ClientReader<rpc::EntrypointOutput>> reader = stub->Run(context, request);
  rpc::EntrypointOutput message;
  std::optional<EntrypointExit> exit;
  while (reader->Read(&message)) {
    if (message.started() && on_started) on_started(message.pid());
    if (!message.data().empty()) WriteAll(log_fd, message.data().data(), message.data().size());
    if (message.exited()) exit = EntrypointExit{.exit_code = message.exit_code(), .signal = message.signal()};
  }
  grpc::Status s = reader->Finish();
  if (exit) return *exit;
  if (s.error_code() == grpc::StatusCode::CANCELLED) return absl::CancelledError("the entrypoint was stopped");
  return absl::UnavailableError(absl::StrCat("the entrypoint's holder at ", address, " went away: ", s.error_message()));
}

}  // namespace shoal::dashboard
