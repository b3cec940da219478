// shoal-dashboard: the head's HTTP server (jobs REST API, web UI, /metrics) and the jobs'
// supervisor. See server.h and job_manager.h. `shoal start --head` starts it.
//
//   shoal-dashboard --gcs-address H:P [--host 127.0.0.1] [--port 8265] [--token-file F | --disable-auth]
//                   [--dashboard-tls-cert F --dashboard-tls-key F]   (HTTPS only; dashboard_tls.h)
//   shoal-dashboard --lease-holder --owner-pid PID   (the placeholder worker; see cluster_client.h)
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/daemon.h"
#include "src/common/dashboard_tls.h"
#include "src/common/flags.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/dashboard/server.h"

namespace shoal::dashboard {
namespace {
namespace fs = std::filesystem;

struct Flags {
  std::string host = "127.0.0.1";
  int64_t port = 8265;
  std::string gcs_address;
  std::string session_dir;
  std::string ready_file;
  std::string token_file;
  bool disable_auth = false;
  int64_t max_upload_bytes = 100 << 20;
  int64_t max_connections = ConnectionLimits().max_connections;
  double read_timeout_s = absl::ToDoubleSeconds(ConnectionLimits().read_timeout);
  std::string allowed_hosts;
};

// The limits that keep abusive clients from starving others (guarded_server.h), or which flag is
// wrong. Raises the open-file limit as far as the connection limit needs, when it may.
absl::StatusOr<ConnectionLimits> LimitsFromFlags(const Flags& f) {
  ConnectionLimits limits;
  if (f.max_upload_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max-upload-bytes must be at least 1, got ", f.max_upload_bytes));
  }
  // Each connection holds a descriptor; the rest of the process (gRPC, logs, jobs) needs some too.
  constexpr int64_t kOtherDescriptors = 256;
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur != RLIM_INFINITY && static_cast<int64_t>(files.rlim_cur) < f.max_connections + kOtherDescriptors &&
      files.rlim_cur < files.rlim_max) {
    files.rlim_cur = std::min<rlim_t>(files.rlim_max, static_cast<rlim_t>(f.max_connections + kOtherDescriptors));
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  const int64_t most = files.rlim_cur == RLIM_INFINITY ? 65536 : static_cast<int64_t>(files.rlim_cur) - kOtherDescriptors;
  if (f.max_connections < 1 || f.max_connections > std::min<int64_t>(most, 65536)) {
    return absl::InvalidArgumentError(absl::StrCat("--max-connections must be in 1..", std::max<int64_t>(1, std::min<int64_t>(most, 65536)),
                                                   " (the open-file limit, ulimit -n, leaves room for that many), got ",
                                                   f.max_connections));
  }
  if (!(f.read_timeout_s >= 0.1 && f.read_timeout_s <= 3600)) {
    return absl::InvalidArgumentError(absl::StrCat("--read-timeout-s must be in 0.1..3600 seconds, got ", f.read_timeout_s));
  }
  limits.max_connections = static_cast<int>(f.max_connections);
  limits.read_timeout = absl::Seconds(f.read_timeout_s);
  return limits;
}

int Main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--lease-holder") return RunLeaseHolder(argc, argv);
  BlockTerminationSignals();
  Flags f;
  FlagSet flags("shoal-dashboard");
  flags.AddString("host", &f.host, "address to listen on (keep it on loopback unless auth is on)");
  flags.AddInt("port", &f.port, "port to listen on (0 picks a free one)");
  flags.AddString("gcs-address", &f.gcs_address, "HOST:PORT of the cluster's GCS");
  flags.AddString("session-dir", &f.session_dir, "session directory; logs go to its logs/ (default: a new one)");
  flags.AddString("ready-file", &f.ready_file, "once serving, write {pid, port, url, ...} as JSON here");
  flags.AddString("token-file", &f.token_file, "file holding the API token (required unless --disable-auth)");
  flags.AddBool("disable-auth", &f.disable_auth, "serve without a token (trusted networks only)");
  flags.AddInt("max-upload-bytes", &f.max_upload_bytes, "largest working_dir package accepted");
  flags.AddInt("max-connections", &f.max_connections,
               "connections served at once; one more is answered 503 at once (slow clients cannot starve others)");
  flags.AddDouble("read-timeout-s", &f.read_timeout_s,
                  "a request's line and headers (and a small body) must arrive within this many seconds; an "
                  "upload may not pause longer than this");
  flags.AddString("allowed-hosts", &f.allowed_hosts,
                  "comma-separated extra names clients reach the dashboard by (the Host header); besides these, "
                  "it accepts its address, the machine's host name, loopback names and, bound to 0.0.0.0 or ::, "
                  "IP addresses (DNS rebinding protection)");
  TlsFiles tls;
  AddTlsFlags(flags, &tls);  // its gRPC calls to the cluster (tls.h)
  DashboardTlsFiles https;
  AddDashboardTlsFlags(flags, &https);
  if (std::optional<int> exit_code = ParseDaemonFlags(flags, argc, argv)) return *exit_code;
  if (absl::Status s = ConfigureDaemonTls(tls); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 2;
  }
  absl::StatusOr<std::shared_ptr<SSL_CTX>> https_context = DashboardServerContext(https);
  if (!https_context.ok()) {
    ReportFatal(std::string(https_context.status().message()));
    return 2;
  }
  if (f.port < 0 || f.port > 65535) {
    ReportFatal(absl::StrCat("--port must be in 0..65535, got ", f.port));
    return 2;
  }
  if (absl::Status s = ParseHostPort(f.gcs_address).status(); !s.ok()) {
    ReportFatal(absl::StrCat("--gcs-address: ", s.message()));
    return 2;
  }
  absl::StatusOr<ConnectionLimits> limits = LimitsFromFlags(f);
  if (!limits.ok()) {
    ReportFatal(std::string(limits.status().message()));
    return 2;
  }
  std::vector<std::string> host_names;
  for (absl::string_view name : absl::StrSplit(f.allowed_hosts, ',', absl::SkipWhitespace())) {
    name = absl::StripAsciiWhitespace(name);
    if (name.find_first_of(":/ ") != absl::string_view::npos) {
      ReportFatal(absl::StrCat("--allowed-hosts takes host names without a port or scheme, got '", name, "'"));
      return 2;
    }
    host_names.emplace_back(name);
  }
  std::string token;
  if (!f.disable_auth) {
    if (f.token_file.empty()) {
      ReportFatal("pass --token-file (or --disable-auth)");
      return 2;
    }
    absl::StatusOr<std::string> read = ReadTokenFile(f.token_file);
    if (!read.ok()) {
      ReportFatal(std::string(read.status().message()));
      return 1;
    }
    token = *read;
  }
  SetClusterToken(token);  // one secret: the dashboard's own gRPC calls carry it too
  if (auto dir = SetUpDaemonSession("dashboard", f.session_dir); dir.ok()) {
    f.session_dir = *dir;
  } else {
    ReportFatal(std::string(dir.status().message()));
    return 1;
  }
  if (f.disable_auth) spdlog::warn("auth is disabled: anyone who can reach {}:{} can run commands", f.host, f.port);

  std::error_code ec;
  std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  ClusterClient cluster(f.gcs_address);
  GcsJobStore store(cluster);
  JobManagerOptions job_options{.session_dir = f.session_dir,
                                .gcs_address = f.gcs_address,
                                .package_dir = (fs::path(f.session_dir) / "runtime_resources" / "packages").string(),
                                .self_binary = self};
  JobManager jobs(job_options, cluster, store);
  jobs.Recover();

  AuthPolicy auth;
  auth.token = token;
  auth.disabled = f.disable_auth;
  auth.host_names = host_names;
  ServerOptions server_options{.host = f.host,
                               .port = static_cast<int>(f.port),
                               .auth = auth,
                               .limits = *limits,
                               .tls = *https_context,
                               .package_dir = job_options.package_dir,
                               .session_name = fs::path(f.session_dir).filename().string(),
                               .max_upload_bytes = f.max_upload_bytes};
  DashboardServer server(server_options, cluster, jobs);
  if (absl::Status s = server.Start(); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 1;
  }
  std::string url = absl::StrCat(*https_context ? "https://" : "http://", f.host, ":", server.port());
  if (!f.ready_file.empty()) {
    nlohmann::json ready = {{"pid", getpid()},          {"port", server.port()},
                            {"host", f.host},           {"url", url},
                            {"gcs_address", f.gcs_address}, {"auth", !f.disable_auth},
                            {"token_file", f.token_file}};
    if (auto s = WriteFileAtomically(f.ready_file, ready.dump()); !s.ok()) {
      ReportFatal(std::string(s.message()));
      return 1;
    }
  }
  spdlog::info("dashboard listening on {}", url);
  std::printf("shoal-dashboard listening on %s\n", url.c_str());
  std::fflush(stdout);

  int sig = WaitForTerminationSignal();
  spdlog::info("signal {}: stopping jobs and shutting down", sig);
  jobs.Shutdown();
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace shoal::dashboard

int main(int argc, char** argv) { return shoal::dashboard::Main(argc, argv); }
