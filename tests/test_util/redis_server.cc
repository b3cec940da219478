#include "tests/test_util/redis_server.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace shoal::test {
namespace {

bool IsExecutable(const std::string& path) { return !path.empty() && access(path.c_str(), X_OK) == 0; }

// A port that was free a moment ago (the kernel's pick for port 0).
absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string err = strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", err));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string ReadTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

// True once the server on `port` answers PING (an auth error is an answer too).
bool Answers(int port) {
  timeval timeout = {0, 200'000};
  redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port, timeout);
  if (ctx == nullptr) return false;
  bool ok = false;
  if (ctx->err == 0) {
    redisSetTimeout(ctx, timeout);
    auto* reply = static_cast<redisReply*>(redisCommand(ctx, "PING"));
    ok = reply != nullptr;
    if (reply != nullptr) freeReplyObject(reply);
  }
  redisFree(ctx);
  return ok;
}

}  // namespace

bool RedisRequired() {
  for (const char* name : {"CI", "SHOAL_REQUIRE_REDIS"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0' && std::string(v) != "0" && std::string(v) != "false") return true;
  }
  return false;
}

std::string RedisServer::FindBinary() {
  if (const char* env = std::getenv("SHOAL_TEST_REDIS_SERVER"); env != nullptr && IsExecutable(env)) {
    return env;
  }
  if (IsExecutable("/usr/bin/redis-server")) return "/usr/bin/redis-server";
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      std::string candidate = absl::StrCat(dir, "/redis-server");
      if (IsExecutable(candidate)) return candidate;
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  std::string binary = FindBinary();
  if (binary.empty()) return absl::NotFoundError("redis-server is not installed");
  std::string tmpl = (std::filesystem::temp_directory_path() / "shoal-redis-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", strerror(errno)));
  }
  std::unique_ptr<RedisServer> server(new RedisServer(binary, tmpl, std::move(options)));
  // Another process may take the port between picking and binding it: try a few.
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = PickFreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

RedisServer::~RedisServer() {
  Kill();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

absl::Status RedisServer::Restart() {
  Kill();
  return Launch();
}

RedisOptions RedisServer::ClientOptions() const {
  RedisOptions options;
  options.host = "127.0.0.1";
  options.port = port_;
  options.password = options_.password;
  options.connect_timeout_ms = 2000;
  return options;
}

absl::Status RedisServer::Launch() {
  const std::string log = dir_ + "/redis.log";
  std::vector<std::string> args = {binary_,       "--bind",       "127.0.0.1",
                                   "--port",      std::to_string(port_),
                                   "--save",      "",             "--appendonly",
                                   "no",          "--dir",        dir_,
                                   "--daemonize", "no"};
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("open ", log, ": ", strerror(errno)));
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls. Die with the test process.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;

  // Bounded start-up poll; this waits for readiness, it does not assert on timing.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (absl::Now() < give_up) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("redis-server on port ", port_,
                                                 " exited during start-up: ", ReadTail(log)));
    }
    if (Answers(port_)) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(5));
  }
  Kill();
  return absl::DeadlineExceededError(
      absl::StrCat("redis-server on port ", port_, " did not answer PING: ", ReadTail(log)));
}

}  // namespace shoal::test
