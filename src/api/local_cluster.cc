// The driver's own local cluster; see local_cluster.h.
#include "src/api/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/cluster/local_state.h"
#include "src/cluster/process.h"
#include "src/common/auth.h"


namespace shoal::api {
namespace fs = std::filesystem;
namespace {

// Run by /bin/sh with $1 = the shoal CLI and $2 = the cluster's root. `cat` returns when every
// write end of its stdin (a pipe only the driver holds) is closed.
constexpr char kWatchdogScript[] =
    "cat >/dev/null; SHOAL_TMPDIR=\"$2\" \"$1\" stop --force >/dev/null 2>&1; rm -rf \"$2\"";

// Starts argv[0] in a new session (so a Ctrl-C meant for the driver does not reach it), with
// stdin from `stdin_fd` (or /dev/null when -1), stdout and stderr appended to `output`,
// SHOAL_TMPDIR set to `root`, no other descriptors, default signal handling.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& root, int stdin_fd,
                            const std::string& output) {
  cluster::DaemonSpec spec;
  spec.binary = argv[0];
  spec.args.assign(argv.begin() + 1, argv.end());
  spec.stdout_path = output;
  spec.stderr_path = output;
  spec.env = {{"SHOAL_TMPDIR", root}};
  spec.stdin_fd = stdin_fd;
  absl::StatusOr<cluster::ProcessId> id = cluster::SpawnDaemon(spec);
  if (!id.ok()) return id.status();
  return id->pid;
}

// Waits for a child; answers its exit code, or -1 when a signal ended it.
int WaitForChild(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The real path of this executable.
absl::StatusOr<std::string> SelfExecutable() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot read /proc/self/exe: ", ec.message()));
  return self.string();
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/shoal-local-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot make a temp directory ", pattern, ": ", std::strerror(errno)));
  }
  const std::string root = pattern;
  const std::string shoal = (fs::path(options.bin_dir) / "shoal").string();

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    fs::remove_all(root);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  absl::StatusOr<pid_t> watchdog =
      Spawn({"/bin/sh", "-c", kWatchdogScript, "shoal-local-cluster-watchdog", shoal, root}, root, fds[0], "/dev/null");
  close(fds[0]);
  if (!watchdog.ok()) {
    close(fds[1]);
    fs::remove_all(root);
    return watchdog.status();
  }
  // From here on, destroying `cluster` stops whatever was started.
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(root, *watchdog, fds[1]));

  // A driver's private cluster runs no dashboard: it would compete for port 8265 with every
  // other local cluster and with the machine's real head.
  std::vector<std::string> argv = {shoal, "start", "--head", "--port", "0", "--include-dashboard=false"};
  if (options.num_cpus >= 0) argv.insert(argv.end(), {"--num-cpus", std::to_string(options.num_cpus)});
  if (options.num_gpus >= 0) argv.insert(argv.end(), {"--num-gpus", std::to_string(options.num_gpus)});
  if (!options.resources.empty()) argv.insert(argv.end(), {"--resources", options.resources});
  if (options.object_store_memory >= 0) {
    argv.insert(argv.end(), {"--object-store-memory", std::to_string(options.object_store_memory)});
  }
  const std::string log = (fs::path(root) / "start.log").string();
  absl::StatusOr<pid_t> start = Spawn(argv, root, -1, log);
  if (!start.ok()) return start.status();
  if (int code = WaitForChild(*start); code != 0) {
    return absl::UnavailableError(absl::StrCat("`shoal start --head` failed (exit ", code, "):\n", ReadText(log)));
  }
  absl::StatusOr<std::string> address = cluster::ReadCurrentCluster(root);
  if (!address.ok()) {
    return absl::UnavailableError(absl::StrCat("`shoal start --head` recorded no address:\n", ReadText(log)));
  }
  cluster->address_ = *address;
  absl::StatusOr<std::string> token =
      ReadTokenFile(cluster::CurrentClusterTokenPath(root));
  if (!token.ok()) return absl::UnavailableError(absl::StrCat("`shoal start --head` left no token: ", token.status().message()));
  cluster->auth_token_ = *token;
  return cluster;
}

LocalCluster::~LocalCluster() { Stop(); }

void LocalCluster::Stop() {
  if (watchdog_fd_ < 0) return;
  close(watchdog_fd_);
  watchdog_fd_ = -1;
  WaitForChild(watchdog_);
}

absl::StatusOr<std::string> FindBinDir() {
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("SHOAL_BIN_DIR"); dir != nullptr && *dir != '\0') candidates.push_back(dir);
#ifdef SHOAL_DEFAULT_BIN_DIR
  candidates.push_back(SHOAL_DEFAULT_BIN_DIR);
#endif
  if (absl::StatusOr<std::string> self = SelfExecutable(); self.ok()) {
    candidates.push_back(fs::path(*self).parent_path().string());
  }
  for (const std::string& dir : candidates) {
    if (access((fs::path(dir) / "shoal").c_str(), X_OK) == 0) return dir;
  }
  return absl::NotFoundError(
      "cannot find the shoal command to start a local cluster; set SHOAL_BIN_DIR to the directory "
      "holding shoal, shoal-gcs and shoal-raylet, or give an address to join a running cluster");
}

}  // namespace shoal::api
