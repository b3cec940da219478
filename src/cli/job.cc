// `shoal job submit|status|logs|stop|list|delete`: a client of the dashboard's jobs REST API.
//
// The dashboard's URL comes from --address (http[s]://HOST:PORT), else $SHOAL_ADDRESS or
// $RAY_ADDRESS when they hold an http(s):// URL, else the dashboard of the cluster last started
// on this machine (<session>/dashboard.ready.json of the session whose GCS is in
// shoal_current_cluster). The token comes from --auth-token ($SHOAL_AUTH_TOKEN), else, for a
// dashboard started on this machine, from its session's auth_token file. An https:// dashboard's
// certificate must verify against --dashboard-ca ($SHOAL_DASHBOARD_TLS_CA), else the system's
// CAs, and name the URL's host.
#include <fcntl.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "httplib.h"
#include "src/cli/commands.h"
#include "src/cluster/local_state.h"
#include "src/cluster/process.h"
#include "src/common/dashboard_tls.h"
#include "src/common/session.h"

namespace shoal::cli {
namespace fs = std::filesystem;
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(300);
constexpr absl::Duration kStopWait = absl::Seconds(60);

constexpr char kHelp[] = R"(
usage: shoal job <command> [flags]

  submit [--address URL] [--dashboard-ca FILE] [--working-dir DIR] [--runtime-env FILE | --runtime-env-json JSON]
         [--entrypoint-num-cpus N] [--entrypoint-num-gpus N] [--entrypoint-memory BYTES]
         [--entrypoint-resources JSON] [--submission-id ID] [--metadata-json JSON] [--no-wait] -- CMD...
         prints the submission id, then follows the job's logs until it ends (exit code 0 when it
         SUCCEEDED, 1 otherwise) unless --no-wait. With --entrypoint-* resources the entrypoint
         runs on the node that grants them (its GPUs in CUDA_VISIBLE_DEVICES), inside the job's
         runtime env (working_dir, env_vars, pip/uv virtualenv first on PATH)
  status ID [--json]      logs ID [--follow]      stop ID [--no-wait]
  list [--json]           delete ID

The dashboard's URL: --address http://HOST:PORT or https://HOST:PORT, else $SHOAL_ADDRESS /
$RAY_ADDRESS when they hold such a URL, else the dashboard of the cluster started on this
machine. The token: --auth-token (or $SHOAL_AUTH_TOKEN), else the local cluster's token file.
An https:// dashboard's certificate is checked against --dashboard-ca FILE (or
$SHOAL_DASHBOARD_TLS_CA), else the system's CAs. --runtime-env files are JSON.
)";

struct Endpoint {
  std::string url;  // scheme://host:port
  std::string host;
  int port = 0;
  bool https = false;
  std::string ca;  // https: the CA file its certificate must verify against ("": the system's)
  std::string token;
};

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The dashboard recorded for the cluster last started on this machine.
absl::StatusOr<nlohmann::json> LocalDashboard() {
  const std::string root = ShoalTempRoot();
  absl::StatusOr<std::string> gcs = cluster::ReadCurrentCluster(root);
  if (!gcs.ok()) {
    return absl::NotFoundError("no Shoal cluster found on this machine: pass --address http://HOST:8265 or start one "
                               "with `shoal start --head`");
  }
  std::error_code ec;
  for (const fs::directory_entry& session : fs::directory_iterator(root, ec)) {
    if (!absl::StartsWith(session.path().filename().string(), "session_") || session.is_symlink(ec)) continue;
    absl::StatusOr<nlohmann::json> ready = cluster::ReadJsonObject((session.path() / cluster::kDashboardReadyFile).string());
    if (!ready.ok() || cluster::JsonString(*ready, "gcs_address") != *gcs) continue;
    std::optional<int64_t> pid = cluster::JsonInt(*ready, "pid");
    if (!pid || kill(static_cast<pid_t>(*pid), 0) != 0) continue;
    return ready;
  }
  return absl::NotFoundError(absl::StrCat("the cluster at ", *gcs, " on this machine runs no dashboard (started with "
                                          "--include-dashboard=false?); pass --address http://HOST:PORT"));
}

bool IsDashboardUrl(absl::string_view url) { return absl::StartsWith(url, "http://") || absl::StartsWith(url, "https://"); }

absl::StatusOr<Endpoint> ParseUrl(std::string url) {
  Endpoint e;
  e.url = url;
  e.https = absl::StartsWith(url, "https://");
  if (IsDashboardUrl(url)) url = url.substr(url.find("://") + 3);
  while (!url.empty() && url.back() == '/') url.pop_back();
  size_t colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(url.substr(colon + 1), &e.port) || e.port <= 0 ||
      e.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--address must be http://HOST:PORT or https://HOST:PORT, got '", e.url, "'"));
  }
  e.host = url.substr(0, colon);
  e.url = absl::StrCat(e.https ? "https://" : "http://", e.host, ":", e.port);
  return e;
}

// --dashboard-ca, else $SHOAL_DASHBOARD_TLS_CA; checked to be readable. "" for the system's CAs.
absl::StatusOr<std::string> DashboardCa(const std::string& flag) {
  const char* env = std::getenv(kDashboardTlsCaEnv);
  const std::string ca = !flag.empty() ? flag : env != nullptr ? env : "";
  const std::string name = !flag.empty() ? "--dashboard-ca" : absl::StrCat("$", kDashboardTlsCaEnv);
  if (ca.empty()) return ca;
  absl::StatusOr<std::string> text = ReadText(ca);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": cannot read '", ca, "'"));
  if (!absl::StrContains(*text, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": '", ca, "' holds no PEM certificate"));
  }
  return ca;
}

absl::StatusOr<Endpoint> ResolveEndpoint(int argc, char** argv, const std::string& address, const std::string& token,
                                         const std::string& ca) {
  std::string url;
  if (GivenOnCommandLine(argc, argv, "address")) {
    url = address;
  } else {
    for (const char* var : {"SHOAL_ADDRESS", "RAY_ADDRESS"}) {
      const char* value = std::getenv(var);
      if (value != nullptr && IsDashboardUrl(value)) {
        url = value;
        break;
      }
    }
  }
  absl::StatusOr<nlohmann::json> local = LocalDashboard();
  if (url.empty()) {
    if (!local.ok()) return local.status();
    url = cluster::JsonString(*local, "url").value_or("");
  }
  absl::StatusOr<Endpoint> endpoint = ParseUrl(url);
  if (!endpoint.ok()) return endpoint.status();
  if (endpoint->https) {
    absl::StatusOr<std::string> ca_file = DashboardCa(ca);
    if (!ca_file.ok()) return ca_file.status();
    endpoint->ca = *ca_file;
  }
  endpoint->token = token;
  if (endpoint->token.empty() && local.ok() && cluster::JsonInt(*local, "port") == endpoint->port) {
    if (std::optional<std::string> file = cluster::JsonString(*local, "token_file"); file && !file->empty()) {
      if (absl::StatusOr<std::string> text = ReadText(*file); text.ok()) {
        endpoint->token = std::string(absl::StripAsciiWhitespace(*text));
      }
    }
  }
  return endpoint;
}

// One API call. Answers the parsed JSON body of a 2xx reply; otherwise an error with the
// server's message.
class Api {
 public:
  explicit Api(const Endpoint& e) : endpoint_(e), client_(e.url) {
    if (e.https) {
      client_.enable_server_certificate_verification(true);  // and its name: httplib checks it against the host
      if (!e.ca.empty()) client_.set_ca_cert_path(e.ca);
    }
    client_.set_connection_timeout(5, 0);
    client_.set_read_timeout(60, 0);
    if (!e.token.empty()) headers_.emplace("Authorization", absl::StrCat("Bearer ", e.token));
  }

  absl::StatusOr<nlohmann::json> Call(const std::string& method, const std::string& path, const std::string& body = "",
                                      const std::string& type = "application/json", int* status_out = nullptr) {
    httplib::Result r = method == "GET"      ? client_.Get(path, headers_)
                        : method == "POST"   ? client_.Post(path, headers_, body, type)
                        : method == "PUT"    ? client_.Put(path, headers_, body, type)
                                             : client_.Delete(path, headers_);
    if (!r) return Failure(r.error());
    if (status_out != nullptr) *status_out = r->status;
    nlohmann::json doc = nlohmann::json::parse(r->body, nullptr, false);
    if (r->status < 200 || r->status >= 300) {
      std::string message = !doc.is_discarded() && doc.is_object() && doc.contains("message") && doc["message"].is_string()
                                ? doc["message"].get<std::string>()
                                : r->body;
      return absl::Status(r->status == 404 ? absl::StatusCode::kNotFound : absl::StatusCode::kFailedPrecondition,
                          absl::StrCat("the dashboard answered ", r->status, ": ", message));
    }
    if (doc.is_discarded()) return absl::InternalError("the dashboard's reply is not JSON");
    return doc;
  }

 private:
  absl::Status Failure(httplib::Error error) const {
    const std::string ca = endpoint_.ca.empty() ? "the system's CAs" : endpoint_.ca;
    switch (error) {
      case httplib::Error::SSLServerVerification: {
        const long result = client_.get_openssl_verify_result();
        return absl::FailedPreconditionError(absl::StrCat(
            "the dashboard at ", endpoint_.url, " is not trusted: ",
            result != X509_V_OK ? absl::StrCat("its certificate does not verify against ", ca, " (",
                                               X509_verify_cert_error_string(result), ")")
                                : absl::StrCat("its certificate is not for ", endpoint_.host),
            "; pass the CA that signed it with --dashboard-ca or $", kDashboardTlsCaEnv));
      }
      case httplib::Error::SSLLoadingCerts:
        return absl::FailedPreconditionError(absl::StrCat("cannot load the CA certificates from ", ca));
      case httplib::Error::SSLConnection:
        return absl::UnavailableError(absl::StrCat("no TLS handshake with the dashboard at ", endpoint_.url,
                                                   " (does it serve HTTPS? if not, use http://)"));
      default:
        return absl::UnavailableError(absl::StrCat("no dashboard answers at ", endpoint_.url, " (", httplib::to_string(error),
                                                   endpoint_.https ? ")" : "; if it serves HTTPS, use https://)"));
    }
  }

  Endpoint endpoint_;
  httplib::Client client_;
  httplib::Headers headers_;
};

// Zips `dir` (its contents at the top of the archive) into `out`, with the `zip` tool.
// `zip -x` patterns for runtime_env excludes (gitignore-style: a pattern without '/' matches a
// name at any depth; a directory's pattern its whole tree).
std::vector<std::string> ZipExcludes(const std::vector<std::string>& excludes) {
  std::vector<std::string> out;
  for (std::string p : excludes) {
    while (!p.empty() && (p.back() == '/' || p.back() == ' ')) p.pop_back();
    while (!p.empty() && p.front() == '/') p.erase(p.begin());
    if (p.empty() || p[0] == '#' || p[0] == '!') continue;
    const bool anchored = p.find('/') != std::string::npos;
    for (const std::string& prefix : anchored ? std::vector<std::string>{""} : std::vector<std::string>{"", "*/"}) {
      out.push_back("-x");
      out.push_back(prefix + p);
      out.push_back("-x");
      out.push_back(prefix + p + "/*");
    }
  }
  return out;
}

absl::Status ZipDirectory(const std::string& dir, const std::string& out, const std::vector<std::string>& excludes) {
  std::vector<std::string> args = {"zip", "-q", "-r", "-X", out, "."};
  for (std::string& x : ZipExcludes(excludes)) args.push_back(std::move(x));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::UnavailableError("fork failed");
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    if (chdir(dir.c_str()) != 0) _exit(126);
    execvp("zip", argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return absl::FailedPreconditionError("`zip` is not installed");
  return absl::InvalidArgumentError(absl::StrCat("cannot zip ", dir));
}

// Uploads `dir` as a package (unless the dashboard has it already); answers its URI.
absl::StatusOr<std::string> UploadWorkingDir(Api& api, const std::string& dir, const std::vector<std::string>& excludes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return absl::InvalidArgumentError(absl::StrCat("--working-dir ", dir, " is not a directory"));
  std::string zip = (fs::temp_directory_path() / absl::StrCat("shoal-pkg-", getpid(), ".zip")).string();
  fs::remove(zip, ec);
  absl::Status zipped = ZipDirectory(fs::absolute(dir).string(), zip, excludes);
  absl::StatusOr<std::string> bytes = zipped.ok() ? ReadText(zip) : absl::StatusOr<std::string>(zipped);
  fs::remove(zip, ec);
  if (!bytes.ok()) return bytes.status();
  uint64_t hash = 1469598103934665603ull;  // FNV-1a: the package's name follows its contents
  for (unsigned char c : *bytes) hash = (hash ^ c) * 1099511628211ull;
  std::string name = absl::StrCat("_shoal_pkg_", absl::Hex(hash, absl::kZeroPad16), ".zip");
  std::string path = absl::StrCat("/api/packages/gcs/", name);
  int status = 0;
  absl::StatusOr<nlohmann::json> exists = api.Call("GET", path, "", "", &status);
  if (!exists.ok() && status != 404) return exists.status();
  if (!exists.ok()) {
    absl::StatusOr<nlohmann::json> put = api.Call("PUT", path, *bytes, "application/zip");
    if (!put.ok()) return put.status();
  }
  return absl::StrCat("gcs://", name);
}

absl::StatusOr<nlohmann::json> JsonArg(const std::string& text, const std::string& what) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, " must be a JSON object"));
  return doc;
}

std::string Field(const nlohmann::json& job, const char* key) {
  auto it = job.find(key);
  if (it == job.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

bool IsTerminalStatus(const std::string& status) {
  return status == "SUCCEEDED" || status == "FAILED" || status == "STOPPED";
}

std::string JobPath(const std::string& id) { return absl::StrCat("/api/jobs/", id); }

// Prints the job's log from `*offset` on; answers the job's status after it has ended (or,
// without `follow`, now).
absl::StatusOr<nlohmann::json> FollowLogs(Api& api, const std::string& id, bool follow) {
  int64_t offset = 0;
  while (true) {
    absl::StatusOr<nlohmann::json> job = api.Call("GET", JobPath(id));
    if (!job.ok()) return job.status();
    absl::StatusOr<nlohmann::json> logs = api.Call("GET", absl::StrCat(JobPath(id), "/logs?offset=", offset));
    if (!logs.ok()) return logs.status();
    std::cout << logs->value("logs", "") << std::flush;
    offset = logs->value("offset", offset);
    // The status was read before the logs: once it was terminal, these logs are complete.
    if (!follow || IsTerminalStatus(Field(*job, "status"))) return job;
    absl::SleepFor(kPoll);
  }
}

int ExitFor(const nlohmann::json& job) { return job["status"] == "SUCCEEDED" ? kExitOk : kExitFailure; }


}  // namespace

int RunJob(int argc, char** argv) {
  if (argc < 3 || std::string(argv[2]) == "--help" || std::string(argv[2]) == "-h") {
    std::cout << kHelp;
    return argc < 3 ? kExitUsage : kExitOk;
  }
  const std::string sub = argv[2];
  std::string address, token, dashboard_ca, working_dir, runtime_env_file, runtime_env_json, submission_id, metadata_json;
  std::string entrypoint_resources;
  double num_cpus = 0, num_gpus = 0;
  int64_t memory = 0;
  bool no_wait = false, follow = false, json = false;
  FlagSet flags(absl::StrCat("shoal job ", sub));
  flags.AddString("address", &address, "the dashboard, http://HOST:PORT or https://HOST:PORT (default: the cluster started here)");
  flags.AddString("dashboard-ca", &dashboard_ca,
                  "https:// dashboards: the CA file (PEM) its certificate must verify against (default "
                  "$SHOAL_DASHBOARD_TLS_CA, else the system's CAs)");
  flags.AddString("auth-token", &token, "the dashboard's token (default: the local cluster's token file)");
  if (sub == "submit") {
    flags.AddString("working-dir", &working_dir, "directory to upload and run the entrypoint in");
    flags.AddString("runtime-env", &runtime_env_file, "JSON file with the runtime_env (working_dir, env_vars, pip, uv, excludes)");
    flags.AddString("runtime-env-json", &runtime_env_json, "the runtime_env as JSON");
    flags.AddDouble("entrypoint-num-cpus", &num_cpus, "CPUs the entrypoint holds while it runs");
    flags.AddDouble("entrypoint-num-gpus", &num_gpus, "GPUs the entrypoint holds while it runs");
    flags.AddInt("entrypoint-memory", &memory, "memory in bytes the entrypoint holds while it runs");
    flags.AddString("entrypoint-resources", &entrypoint_resources, "custom resources as JSON, e.g. '{\"TPU\": 1}'");
    flags.AddString("submission-id", &submission_id, "the job's id (default: a new one)");
    flags.AddString("metadata-json", &metadata_json, "metadata as a JSON object of strings");
    flags.AddBool("no-wait", &no_wait, "print the id and return without following the logs");
  } else if (sub == "status" || sub == "list") {
    flags.AddBool("json", &json, "print JSON");
  } else if (sub == "logs") {
    flags.AddBool("follow", &follow, "keep printing until the job ends");
  } else if (sub == "stop") {
    flags.AddBool("no-wait", &no_wait, "return without waiting for the job to end");
  } else if (sub != "delete") {
    return UsageError(absl::InvalidArgumentError(absl::StrCat("unknown job command '", sub, "' (see shoal job --help)")));
  }
  absl::Status parsed = flags.Parse(argc, argv, /*first=*/3);
  if (absl::IsCancelled(parsed)) {
    std::cout << flags.Usage() << kHelp;
    return kExitOk;
  }
  if (!parsed.ok()) return UsageError(parsed);
  const std::vector<std::string>& args = flags.positional();
  const bool wants_id = sub != "submit" && sub != "list";
  if (wants_id && args.size() != 1) return UsageError(absl::InvalidArgumentError(absl::StrCat("shoal job ", sub, " takes one job id")));
  if (sub == "list" && !args.empty()) return UsageError(absl::InvalidArgumentError("shoal job list takes no arguments"));
  if (sub == "submit" && args.empty()) {
    return UsageError(absl::InvalidArgumentError("shoal job submit needs the entrypoint command after --"));
  }
  absl::StatusOr<Endpoint> endpoint = ResolveEndpoint(argc, argv, address, token, dashboard_ca);
  if (!endpoint.ok()) return Fail(endpoint.status());
  Api api(*endpoint);

  if (sub == "submit") {
    nlohmann::json runtime_env = nlohmann::json::object();
    if (!runtime_env_file.empty() && !runtime_env_json.empty()) {
      return UsageError(absl::InvalidArgumentError("pass --runtime-env or --runtime-env-json, not both"));
    }
    if (!runtime_env_file.empty()) {
      absl::StatusOr<std::string> text = ReadText(runtime_env_file);
      if (!text.ok()) return UsageError(text.status());
      runtime_env_json = *text;
    }
    if (!runtime_env_json.empty()) {
      absl::StatusOr<nlohmann::json> env = JsonArg(runtime_env_json, "the runtime_env");
      if (!env.ok()) return UsageError(env.status());
      runtime_env = *env;
    }
    if (!working_dir.empty()) runtime_env["working_dir"] = working_dir;
    std::vector<std::string> excludes;
    if (auto it = runtime_env.find("excludes"); it != runtime_env.end()) {
      if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const nlohmann::json& v) { return v.is_string(); })) {
        return UsageError(absl::InvalidArgumentError("runtime_env excludes must be a list of patterns"));
      }
      for (const auto& v : *it) excludes.push_back(v.get<std::string>());
      runtime_env.erase("excludes");  // applied here, to the upload
    }
    // A requirements file is read here, where its path means something (as Ray's client does).
    for (const char* key : {"pip", "uv"}) {
      auto it = runtime_env.find(key);
      if (it == runtime_env.end()) continue;
      nlohmann::json* packages = it->is_object() && it->contains("packages") ? &(*it)["packages"] : &*it;
      if (!packages->is_string()) continue;
      absl::StatusOr<std::string> text = ReadText(packages->get<std::string>());
      if (!text.ok()) {
        return UsageError(absl::InvalidArgumentError(absl::StrCat("runtime_env ", key, ": cannot read requirements file ",
                                                                  packages->get<std::string>(), ": ",
                                                                  text.status().message())));
      }
      nlohmann::json lines = nlohmann::json::array();
      for (absl::string_view line : absl::StrSplit(*text, '\n')) {
        line = absl::StripAsciiWhitespace(line);
        if (!line.empty() && line[0] != '#') lines.push_back(std::string(line));
      }
      *packages = std::move(lines);
    }
    if (auto it = runtime_env.find("py_modules"); it != runtime_env.end() && it->is_array()) {
      for (const auto& m : *it) {
        if (!m.is_string() || !absl::StrContains(m.get<std::string>(), "://")) {
          return UsageError(absl::InvalidArgumentError(
              "runtime_env py_modules: `shoal job submit` takes package URIs (gcs://...) only; upload local modules "
              "with the Python API (shoal.init(runtime_env={'py_modules': [...]})) or ship them in --working-dir"));
        }
      }
    }
    if (runtime_env.contains("working_dir") && runtime_env["working_dir"].is_string() &&
        !absl::StrContains(runtime_env["working_dir"].get<std::string>(), "://")) {
      absl::StatusOr<std::string> uri = UploadWorkingDir(api, runtime_env["working_dir"].get<std::string>(), excludes);
      if (!uri.ok()) return Fail(uri.status());
      runtime_env["working_dir"] = *uri;
    }
    nlohmann::json body = {{"entrypoint", absl::StrJoin(args, " ")}, {"runtime_env", runtime_env},
                           {"entrypoint_num_cpus", num_cpus}, {"entrypoint_num_gpus", num_gpus},
                           {"entrypoint_memory", memory}};
    if (!submission_id.empty()) body["submission_id"] = submission_id;
    if (!metadata_json.empty()) {
      absl::StatusOr<nlohmann::json> metadata = JsonArg(metadata_json, "--metadata-json");
      if (!metadata.ok()) return UsageError(metadata.status());
      body["metadata"] = *metadata;
    }
    if (!entrypoint_resources.empty()) {
      absl::StatusOr<nlohmann::json> resources = JsonArg(entrypoint_resources, "--entrypoint-resources");
      if (!resources.ok()) return UsageError(resources.status());
      body["entrypoint_resources"] = *resources;
    }
    absl::StatusOr<nlohmann::json> reply = api.Call("POST", "/api/jobs/", body.dump());
    if (!reply.ok()) return Fail(reply.status());
    const std::string id = reply->value("submission_id", "");
    if (id.empty()) return Fail(absl::InternalError("the dashboard's reply has no submission_id"));
    std::cout << "Job '" << id << "' submitted successfully" << std::endl;
    if (no_wait) {
      std::cerr << "Query its status with `shoal job status " << id << "`, its logs with `shoal job logs " << id << "`"
                << std::endl;
      return kExitOk;
    }
    std::cerr << "-- following the logs of " << id << " (Ctrl-C stops following, not the job)" << std::endl;
    absl::StatusOr<nlohmann::json> job = FollowLogs(api, id, /*follow=*/true);
    if (!job.ok()) return Fail(job.status());
    std::cerr << "Job '" << id << "' " << Field(*job, "status") << ": " << Field(*job, "message") << std::endl;
    return ExitFor(*job);
  }
  if (sub == "status") {
    absl::StatusOr<nlohmann::json> job = api.Call("GET", JobPath(args[0]));
    if (!job.ok()) return Fail(job.status());
    if (json) {
      std::cout << job->dump(2) << std::endl;
    } else {
      std::cout << "Status for job '" << args[0] << "': " << Field(*job, "status") << "\n"
                << "Status message: " << Field(*job, "message") << std::endl;
      if (!Field(*job, "driver_exit_code").empty()) std::cout << "Exit code: " << Field(*job, "driver_exit_code") << std::endl;
    }
    return kExitOk;
  }
  if (sub == "logs") {
    absl::StatusOr<nlohmann::json> job = FollowLogs(api, args[0], follow);
    return job.ok() ? kExitOk : Fail(job.status());
  }
  if (sub == "stop") {
    absl::StatusOr<nlohmann::json> reply = api.Call("POST", absl::StrCat(JobPath(args[0]), "/stop"));
    if (!reply.ok()) return Fail(reply.status());
    if (!reply->value("stopped", false)) {
      std::cout << "Job '" << args[0] << "' had already ended" << std::endl;
      return kExitOk;
    }
    std::cout << "Stopping job '" << args[0] << "'" << std::endl;
    const absl::Time deadline = absl::Now() + kStopWait;
    while (!no_wait && absl::Now() < deadline) {
      absl::StatusOr<nlohmann::json> job = api.Call("GET", JobPath(args[0]));
      if (!job.ok()) return Fail(job.status());
      if (IsTerminalStatus(Field(*job, "status"))) {
        std::cout << "Job '" << args[0] << "' " << Field(*job, "status") << std::endl;
        return kExitOk;
      }
      absl::SleepFor(kPoll);
    }
    return no_wait ? kExitOk : Fail(absl::DeadlineExceededError("the job did not stop in time"));
  }
  if (sub == "delete") {
    absl::StatusOr<nlohmann::json> reply = api.Call("DELETE", JobPath(args[0]));
    if (!reply.ok()) return Fail(reply.status());
    std::cout << "Job '" << args[0] << "' deleted" << std::endl;
    return kExitOk;
  }
  absl::StatusOr<nlohmann::json> jobs = api.Call("GET", "/api/jobs/");
  if (!jobs.ok()) return Fail(jobs.status());
  if (json) {
    std::cout << jobs->dump(2) << std::endl;
    return kExitOk;
  }
  std::cout << "SUBMISSION_ID                     STATUS     ENTRYPOINT" << std::endl;
  for (const nlohmann::json& job : *jobs) {
    std::string id = Field(job, "submission_id");
    std::string status = Field(job, "status");
    id.resize(std::max<size_t>(id.size(), 33), ' ');
    status.resize(std::max<size_t>(status.size(), 10), ' ');
    std::cout << id << " " << status << " " << Field(job, "entrypoint") << std::endl;
  }
  return kExitOk;
}

}  // namespace shoal::cli
