// The dashboard's HTTP routes; see server.h.
#include "src/dashboard/server.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <limits>
#include <sstream>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "src/cluster/status_format.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/dashboard/websocket.h"
#include "src/gcs_client/package_store.h"
#include "src/gcs_client/state_query.h"

namespace shoal::dashboard {
namespace fs = std::filesystem;
namespace {

// What /api/version reports as the Ray version: Ray's clients check it is at least the one
// that introduced the API they use; Shoal implements the jobs API of this release.
constexpr char kRayApiVersion[] = "2.40.0";
constexpr int64_t kMaxLogBytes = 8 << 20;     // one logs reply at most
constexpr int kDefaultNodeLimit = 200;
constexpr int kDefaultListLimit = 50;  // actors, tasks and groups in /api/cluster_status
constexpr int kMaxListLimit = 10000;   // the most a list parameter may ask for
constexpr absl::Duration kStatusTimeout = absl::Seconds(5);
constexpr absl::Duration kNodeStatsTimeout = absl::Milliseconds(500);
constexpr absl::Duration kTailPoll = absl::Milliseconds(250);

using httplib::Request;
using httplib::Response;

const char* CodeName(int http) {
  switch (http) {
    case 400: return "bad_request";
    case 401: return "unauthenticated";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    case 415: return "unsupported_media_type";
    case 431: return "request_header_fields_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    default: return http < 500 ? "client_error" : "internal";
  }
}

int HttpCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kDeadlineExceeded: return 408;
    case absl::StatusCode::kAlreadyExists: return 409;
    case absl::StatusCode::kFailedPrecondition: return 409;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

void ReplyJson(Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void ReplyError(Response& res, int http, const std::string& message) {
  ReplyJson(res, {{"error", CodeName(http)}, {"message", message}}, http);
}

void ReplyError(Response& res, const absl::Status& status) {
  ReplyError(res, HttpCode(status), std::string(status.message()));
}

// The list size the query parameter `name` asks for: `fallback` when absent; InvalidArgument
// (400) unless an integer in 1..kMaxListLimit.
absl::StatusOr<int32_t> ListLimit(const Request& req, const char* name, int32_t fallback) {
  if (!req.has_param(name)) return fallback;
  int64_t limit = 0;
  if (!absl::SimpleAtoi(req.get_param_value(name), &limit) || limit < 1 || limit > kMaxListLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be an integer between 1 and ", kMaxListLimit, ", got '", req.get_param_value(name), "'"));
  }
  return static_cast<int32_t>(limit);
}

// What the pre-routing check knows of a route before its handler runs.
struct RouteRule {
  std::string method;
  std::regex pattern;
  std::string name;  // its label in the HTTP metrics
  bool is_public;
  int64_t max_body;
  bool upload;  // streamed to disk, may arrive slowly
};

const RouteRule* FindRoute(const std::vector<RouteRule>& rules, const Request& req) {
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  for (const RouteRule& rule : rules) {
    if (rule.method == method && std::regex_match(req.path, rule.pattern)) return &rule;
  }
  return nullptr;
}

std::vector<std::string> HeaderValues(const Request& req, const std::string& key) {
  std::vector<std::string> values;
  for (size_t i = 0; i < req.get_header_value_count(key); ++i) values.push_back(req.get_header_value(key, i));
  return values;
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

constexpr char kUploadSuffix[] = ".upload-";

// Streams a package upload into `dir`/`name` as it arrives: a temporary file in the same
// directory, renamed into place once whole, removed on any failure. At most `max_bytes`.
absl::Status StorePackage(const fs::path& dir, const std::string& name, int64_t max_bytes,
                          const httplib::ContentReader& read_body) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string tmp = (dir / absl::StrCat(name, kUploadSuffix, "XXXXXX")).string();  // never a package name
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot store the package on the head: ", std::strerror(errno)));
  int64_t size = 0;
  absl::Status failed;
  const bool whole = read_body([&](const char* data, size_t n) {
    if (size + static_cast<int64_t>(n) > max_bytes) {
      failed = absl::ResourceExhaustedError(absl::StrCat("the package is larger than ", max_bytes,
                                                         " bytes (the dashboard's --max-upload-bytes)"));
      return false;
    }
    for (size_t i = 0; i < n && size + static_cast<int64_t>(i) < 2; ++i) {
      if (data[i] != "PK"[size + static_cast<int64_t>(i)]) {
        failed = absl::InvalidArgumentError("the package is not a zip file");
        return false;
      }
    }
    if (!WriteAll(fd, data, n)) {
      failed = absl::UnavailableError(absl::StrCat("cannot store the package on the head: ", std::strerror(errno)));
      return false;
    }
    size += static_cast<int64_t>(n);
    return true;
  });
  if (failed.ok() && !whole) {
    RequestGuard* guard = CurrentRequest();
    if (guard != nullptr && guard->timed_out()) {
      failed = absl::DeadlineExceededError("the upload stopped sending for longer than the read timeout");
    } else if (guard != nullptr && guard->body_too_large()) {
      failed = absl::ResourceExhaustedError(absl::StrCat("the package is larger than ", max_bytes, " bytes"));
    } else {
      failed = absl::InvalidArgumentError("the upload ended before its body was complete");
    }
  }
  if (failed.ok() && size < 4) failed = absl::InvalidArgumentError("the package is not a zip file");
  if (::close(fd) != 0 && failed.ok()) {
    failed = absl::UnavailableError(absl::StrCat("cannot store the package on the head: ", std::strerror(errno)));
  }
  if (failed.ok()) {
    fs::rename(tmp, dir / name, ec);
    if (ec) failed = absl::UnavailableError(absl::StrCat("cannot store the package: ", ec.message()));
  }
  if (!failed.ok()) fs::remove(tmp, ec);
  return failed;
}

}  // namespace

absl::Status DashboardServer::CopyPackageToGcs(const fs::path& file, const std::string& uri) {
  // Every raylet fetches packages from the GCS (src/raylet/runtime_env_agent.h); the file stays
  // here too, for the entrypoints this dashboard runs. Copied a chunk at a time.
  absl::Status put = PutPackageFromFile(PackageKvOf(cluster_.gcs().WithTimeout(absl::Seconds(60))), uri, file.string(),
                                        std::numeric_limits<uint64_t>::max());
  if (!put.ok()) {
    std::error_code ec;
    fs::remove(file, ec);
    return absl::Status(put.code(), absl::StrCat("cannot store ", uri, " in the GCS: ", put.message()));
  }
  return absl::OkStatus();
}

DashboardServer::DashboardServer(ServerOptions options, ClusterClient& cluster, JobManager& jobs)
    : options_(std::move(options)),
      cluster_(cluster),
      jobs_(jobs),
      server_(std::make_unique<GuardedHttpServer>(options_.limits, options_.tls)) {
  AddRoutes();
}

DashboardServer::~DashboardServer() { Stop(); }

absl::Status DashboardServer::Start() {
  // Bodies are bounded per route before they are read (AddRoutes); this is httplib's own backstop.
  server_->set_payload_max_length(static_cast<size_t>(std::max(options_.max_upload_bytes, options_.max_request_bytes)));
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ <= 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.host, ":0"));
  } else {
    if (!server_->bind_to_port(options_.host, options_.port)) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", options_.host, ":", options_.port, " (is the port already in use?)"));
    }
    port_ = options_.port;
  }
  options_.auth.bound_host = options_.host;
  options_.auth.bound_port = port_;
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof(hostname) - 1) == 0 && hostname[0] != '\0') {
    options_.auth.host_names.push_back(hostname);  // the machine's own name reaches it too
  }
  RemoveStaleUploads();
  thread_ = std::make_unique<std::thread>([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void DashboardServer::Stop() {
  if (thread_ == nullptr) return;
  server_->stop();
  thread_->join();
  thread_.reset();
  server_->Shutdown();
}

void DashboardServer::RemoveStaleUploads() {
  std::error_code ec;
  for (fs::directory_iterator it(options_.package_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string file = it->path().filename().string();
    if (!file.ends_with(".zip") && file.find(absl::StrCat(".zip", kUploadSuffix)) != std::string::npos) {
      fs::remove(it->path(), ec);
    }
  }
}

void DashboardServer::AddRoutes() {
  using Handler = std::function<void(const Request&, Response&)>;
  auto rules = std::make_shared<std::vector<RouteRule>>();
  // Every route goes through the same limits, error handling and metrics; the checks of who may
  // call it run before its body is read (admit, below).
  auto route = [this, rules](const std::string& method, const std::string& pattern, const std::string& name,
                             bool is_public, int64_t max_body, Handler handler) {
    rules->push_back({method, std::regex(pattern), name, is_public, max_body, /*upload=*/false});
    auto wrapped = [this, name, max_body, handler](const Request& req, Response& res) {
      const absl::Time start = absl::Now();
      if (static_cast<int64_t>(req.body.size()) > max_body) {  // a chunked body: its wire budget has room for framing
        ReplyError(res, 413, absl::StrCat("the request body is larger than ", max_body, " bytes"));
      } else {
        handler(req, res);
      }
      http_metrics_.Record(req.method, name, res.status, absl::ToDoubleSeconds(absl::Now() - start));
    };
    if (method == "GET") server_->Get(pattern, wrapped);
    if (method == "POST") server_->Post(pattern, wrapped);
    if (method == "PUT") server_->Put(pattern, wrapped);
    if (method == "DELETE") server_->Delete(pattern, wrapped);
  };
  const int64_t small = options_.max_request_bytes;

  route("GET", "/", "/", true, small, [](const Request&, Response& res) {
    res.set_content(UiPage(), "text/html; charset=utf-8");
    res.set_header("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'");
    res.set_header("X-Frame-Options", "DENY");
  });
  route("GET", "/favicon.ico", "/favicon.ico", true, small, [](const Request&, Response& res) { res.status = 204; });

  route("POST", "/api/auth/login", "/api/auth/login", true, small, [this](const Request& req, Response& res) {
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("token") || !body["token"].is_string()) {
      return ReplyError(res, 400, "the body must be {\"token\": \"...\"}");
    }
    if (!options_.auth.disabled && !ConstantTimeEquals(body["token"].get<std::string>(), options_.auth.token)) {
      return ReplyError(res, 401, "that is not this dashboard's token");
    }
    res.set_header("Set-Cookie", absl::StrCat(kTokenCookie, "=", options_.auth.disabled ? "" : options_.auth.token,
                                              "; HttpOnly; SameSite=Strict; Path=/", options_.tls ? "; Secure" : ""));
    ReplyJson(res, {{"ok", true}});
  });
  route("GET", "/api/auth/status", "/api/auth/status", true, small, [this](const Request& req, Response& res) {
    RequestHeaders headers{.method = req.method, .path = req.path, .host = req.get_header_value("Host"),
                           .origin = "", .sec_fetch_site = "", .authorization = req.get_header_value("Authorization"),
                           .cookie = req.get_header_value("Cookie")};
    ReplyJson(res, {{"authenticated", CheckRequest(options_.auth, headers, /*public_path=*/false).ok()},
                    {"auth_enabled", !options_.auth.disabled}});
  });
  route("POST", "/api/auth/logout", "/api/auth/logout", true, small, [](const Request&, Response& res) {
    res.set_header("Set-Cookie", absl::StrCat(kTokenCookie, "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"));
    ReplyJson(res, {{"ok", true}});
  });

  route("GET", "/api/version", "/api/version", false, small, [this](const Request&, Response& res) {
    ReplyJson(res, {{"version", "4"},
                    {"ray_version", kRayApiVersion},
                    {"ray_commit", "shoal"},
                    {"session_name", options_.session_name},
                    {"shoal_version", "0.1.0"}});
  });

  const std::string package = R"(/api/packages/([A-Za-z0-9_]+)/([^/]+))";
  route("GET", package, "/api/packages/{protocol}/{name}", false, small, [this](const Request& req, Response& res) {
    std::string protocol = req.matches[1], name = req.matches[2];
    // The GCS's package store is what the raylets read: a package counts when it is there (put
    // back from this dashboard's copy if a finished job's cleanup removed it).
    std::error_code ec;
    bool exists = protocol == "gcs" && IsValidPackageName(name);
    if (exists) {
      const std::string uri = absl::StrCat("gcs://", name);
      absl::StatusOr<bool> in_gcs = PackageExists(PackageKvOf(cluster_.gcs()), uri);
      if (!in_gcs.ok()) return ReplyError(res, in_gcs.status());
      const fs::path local = fs::path(options_.package_dir) / name;
      exists = *in_gcs || (fs::exists(local, ec) && CopyPackageToGcs(local, uri).ok());
    }
    if (!exists) return ReplyError(res, 404, absl::StrCat("package ", protocol, "://", name, " does not exist"));
    ReplyJson(res, {{"exists", true}});
  });
  rules->push_back({"PUT", std::regex(package), "/api/packages/{protocol}/{name}", false, options_.max_upload_bytes,
                    /*upload=*/true});
  server_->Put(package, [this](const Request& req, Response& res, const httplib::ContentReader& read_body) {
    const absl::Time start = absl::Now();
    std::string protocol = req.matches[1], name = req.matches[2];
    absl::Status stored;
    if (protocol != "gcs") {
      stored = absl::InvalidArgumentError("only gcs:// packages can be uploaded");
    } else if (!IsValidPackageName(name)) {
      stored = absl::InvalidArgumentError("a package name must be <letters, digits, _ - .>.zip or .whl");
    } else {
      stored = StorePackage(options_.package_dir, name, options_.max_upload_bytes, read_body);
      if (stored.ok()) stored = CopyPackageToGcs(fs::path(options_.package_dir) / name, absl::StrCat("gcs://", name));
    }
    if (stored.ok()) {
      ReplyJson(res, {{"uploaded", true}});
    } else {
      ReplyError(res, stored);
      if (RequestGuard* guard = CurrentRequest()) guard->CloseAfterReply();  // the rest of the body is unread
    }
    http_metrics_.Record(req.method, "/api/packages/{protocol}/{name}", res.status,
                         absl::ToDoubleSeconds(absl::Now() - start));
  });

  auto submit = [this](const Request& req, Response& res) {
    absl::StatusOr<JobSpec> spec = ParseSubmitRequest(req.body);
    if (!spec.ok()) return ReplyError(res, spec.status());
    absl::StatusOr<std::string> id = jobs_.Submit(*std::move(spec));
    if (!id.ok()) return ReplyError(res, id.status());
    ReplyJson(res, {{"submission_id", *id}, {"job_id", *id}});
  };
  route("POST", "/api/jobs/?", "/api/jobs/", false, small, submit);
  route("GET", "/api/jobs/?", "/api/jobs/", false, small, [this](const Request& req, Response& res) {
    nlohmann::json out = nlohmann::json::array();
    int64_t limit = -1;
    if (req.has_param("limit") && !absl::SimpleAtoi(req.get_param_value("limit"), &limit)) {
      return ReplyError(res, 400, "limit must be a number");
    }
    for (const JobRecord& job : jobs_.List()) {
      if (limit >= 0 && static_cast<int64_t>(out.size()) >= limit) break;
      out.push_back(job.ToApiJson());
    }
    ReplyJson(res, out);
  });
  const std::string job = R"(/api/jobs/([^/]+))";
  route("GET", job, "/api/jobs/{id}", false, small, [this](const Request& req, Response& res) {
    absl::StatusOr<JobRecord> record = jobs_.Get(req.matches[1]);
    if (!record.ok()) return ReplyError(res, record.status());
    ReplyJson(res, record->ToApiJson());
  });
  route("POST", job + "/stop", "/api/jobs/{id}/stop", false, small, [this](const Request& req, Response& res) {
    absl::StatusOr<bool> stopped = jobs_.Stop(req.matches[1]);
    if (!stopped.ok()) return ReplyError(res, stopped.status());
    ReplyJson(res, {{"stopped", *stopped}});
  });
  route("DELETE", job, "/api/jobs/{id}", false, small, [this](const Request& req, Response& res) {
    absl::Status s = jobs_.Delete(req.matches[1]);
    if (!s.ok()) return ReplyError(res, s);
    ReplyJson(res, {{"deleted", true}});
  });
  route("GET", job + "/logs", "/api/jobs/{id}/logs", false, small, [this](const Request& req, Response& res) {
    int64_t offset = 0;
    const bool with_offset = req.has_param("offset");
    if (with_offset && (!absl::SimpleAtoi(req.get_param_value("offset"), &offset) || offset < 0)) {
      return ReplyError(res, 400, "offset must be a number >= 0");
    }
    auto logs = jobs_.Logs(req.matches[1], offset, kMaxLogBytes);
    if (!logs.ok()) return ReplyError(res, logs.status());
    nlohmann::json body = {{"logs", logs->first}};
    if (with_offset) body["offset"] = logs->second;  // Ray's reply has only "logs"
    ReplyJson(res, body);
  });
  // Ray's clients follow a log through a websocket. The handshake is answered here and the
  // log is sent as text frames until the job has ended, then a close frame; what the client
  // sends is never read (Ray's client sends nothing).
  route("GET", job + "/logs/tail", "/api/jobs/{id}/logs/tail", false, small, [this](const Request& req, Response& res) {
    const std::string id = req.matches[1];
    if (absl::Status s = jobs_.Get(id).status(); !s.ok()) return ReplyError(res, s);
    const std::string key = req.get_header_value("Sec-WebSocket-Key");
    if (!IsWebSocketUpgrade(req.get_header_value("Upgrade"), key)) {
      return ReplyError(res, 400, "this is a websocket endpoint (Upgrade: websocket); to poll, use GET "
                                  "/api/jobs/{id}/logs?offset=N");
    }
    res.status = 101;
    res.set_header("Upgrade", "websocket");
    res.set_header("Connection", "Upgrade");
    res.set_header("Sec-WebSocket-Accept", WebSocketAccept(key));
    auto offset = std::make_shared<int64_t>(0);
    res.set_content_provider("application/octet-stream", [this, id, offset](size_t, httplib::DataSink& sink) {
      while (sink.is_writable()) {
        absl::StatusOr<JobRecord> job = jobs_.Get(id);
        auto logs = jobs_.Logs(id, *offset, kMaxLogBytes);
        if (!job.ok() || !logs.ok()) break;
        const bool last = IsTerminal(job->status);  // read before the logs: these are the last ones
        std::string text = std::move(logs->first);
        const size_t complete = last ? text.size() : CompleteUtf8Length(text);
        *offset = logs->second - static_cast<int64_t>(text.size() - complete);
        text.resize(complete);
        if (!text.empty()) {
          std::string frame = WebSocketFrame(0x1, text);
          if (!sink.write(frame.data(), frame.size())) return false;
        }
        if (last) break;
        absl::SleepFor(kTailPoll);
      }
      std::string close = WebSocketFrame(0x8, std::string("\x03\xe8", 2));  // 1000: normal closure
      sink.write(close.data(), close.size());
      sink.done();
      return true;
    });
  });

  route("GET", "/api/cluster_status", "/api/cluster_status", false, small, [this](const Request& req, Response& res) {
    const GcsClient gcs = cluster_.gcs().WithTimeout(kStatusTimeout);
    absl::StatusOr<rpc::GetClusterStatusReply> status = gcs.GetClusterStatus();
    if (!status.ok()) return ReplyError(res, status.status());
    // Lists are cut to these sizes (the web UI asks for more a page at a time); num_* are totals.
    absl::StatusOr<int32_t> limit = ListLimit(req, "limit", kDefaultNodeLimit);
    absl::StatusOr<int32_t> actor_limit = ListLimit(req, "actor_limit", kDefaultListLimit);
    absl::StatusOr<int32_t> task_limit = ListLimit(req, "task_limit", kDefaultListLimit);
    absl::StatusOr<int32_t> group_limit = ListLimit(req, "group_limit", kDefaultListLimit);
    for (const auto* l : {&limit, &actor_limit, &task_limit, &group_limit}) {
      if (!l->ok()) return ReplyError(res, l->status());
    }
    nlohmann::json out = cluster::ClusterStatusToJson(*status, cluster_.gcs_address());
    out["num_nodes"] = out["nodes"].size();
    if (static_cast<int64_t>(out["nodes"].size()) > *limit) {
      out["nodes"].erase(out["nodes"].begin() + *limit, out["nodes"].end());
    }
    // Per-device GPU use and object-store figures, from the raylets that answer in time.
    std::map<std::string, rpc::GetNodeStatsReply> stats = cluster_.NodeStats(*status, kNodeStatsTimeout);
    for (auto& node : out["nodes"]) {
      auto it = stats.find(node.value("node_id", std::string()));
      if (it == stats.end()) continue;
      nlohmann::json gpus = nlohmann::json::array();
      for (int64_t free : it->second.gpu_free()) {
        gpus.push_back(1.0 - static_cast<double>(free) / FixedPoint::kScale);
      }
      node["gpu_used_per_device"] = gpus;
      node["object_store"] = {{"capacity", it->second.store_capacity_bytes()},
                              {"used", it->second.store_used_bytes()},
                              {"spilled", it->second.store_spilled_bytes()},
                              {"objects", it->second.store_num_objects()}};
    }
    out["jobs_by_status"] = jobs_.CountByStatus();
    out["actors"] = nlohmann::json::array();
    if (auto actors = gcs.ListActors(*actor_limit); actors.ok()) {
      for (const rpc::ActorInfo& a : actors->actors()) {
        auto id = ActorId::FromBinary(a.actor_id());
        out["actors"].push_back({{"actor_id", id.ok() ? id->Hex() : std::string()},
                                 {"class_name", a.class_name()},
                                 {"state", rpc::ActorInfo::State_Name(a.state())},
                                 {"name", a.name()},
                                 {"node_id", a.node_id()},
                                 {"num_restarts", a.num_restarts()},
                                 {"death_cause", a.death_cause()}});
      }
      out["num_actors"] = actors->total();
    }
    out["placement_group_list"] = nlohmann::json::array();
    if (auto groups = cluster_.PlacementGroups(*group_limit, kStatusTimeout); groups.ok()) {
      for (const rpc::PlacementGroupInfo& group : groups->groups()) {
        out["placement_group_list"].push_back(cluster::PlacementGroupToJson(group));
      }
      out["num_placement_groups"] = groups->total();
    }
    out["tasks"] = nlohmann::json::array();
    if (auto tasks = gcs.ListTasks(*task_limit); tasks.ok()) {
      for (const rpc::TaskSummary& t : tasks->tasks()) {
        auto id = TaskId::FromBinary(t.task_id());
        out["tasks"].push_back({{"task_id", id.ok() ? id->Hex() : std::string()},
                                {"name", t.name()},
                                {"state", rpc::TaskEvent::State_Name(t.state())},
                                {"node_id", t.node_id()},
                                {"error_type", t.error_type()},
                                {"attempt", t.attempt()}});
      }
      out["num_tasks"] = tasks->num_tracked();
      out["tasks_by_state"] = nlohmann::json::object();
      for (const auto& [state, count] : tasks->count_by_state()) out["tasks_by_state"][state] = count;
    }
    ReplyJson(res, out);
  });

  route("GET", "/api/placement_groups", "/api/placement_groups", false, small, [this](const Request& req, Response& res) {
    int64_t limit = 0;
    if (req.has_param("limit")) (void)absl::SimpleAtoi(req.get_param_value("limit"), &limit);
    auto groups = cluster_.PlacementGroups(static_cast<int32_t>(std::clamp<int64_t>(limit, 0, INT32_MAX)),
                                           kStatusTimeout);
    if (!groups.ok()) return ReplyError(res, groups.status());
    nlohmann::json list = nlohmann::json::array();
    for (const rpc::PlacementGroupInfo& group : groups->groups()) list.push_back(cluster::PlacementGroupToJson(group));
    ReplyJson(res, {{"placement_groups", list}, {"total", groups->total()}});
  });

  // The state API over HTTP, in the shape of Ray's /api/v0/<resource>: limit, detail, and
  // filters as parallel filter_keys / filter_predicates / filter_values parameters. Answers
  // {"result": true, "data": {"result": {"total", "num_after_truncation", "result": [rows],
  // "partial_failure_warning"}}}; bad input is a 400 naming what is allowed.
  route("GET", "/api/v0/([a-z_-]+)", "/api/v0/{resource}", false, small, [this](const Request& req, Response& res) {
    absl::StatusOr<state::Resource> resource = state::ParseResource(std::string(req.matches[1]));
    if (!resource.ok()) return ReplyError(res, resource.status());
    state::ListOptions options;
    if (req.has_param("limit") && !absl::SimpleAtoi(req.get_param_value("limit"), &options.limit)) {
      return ReplyError(res, 400, "limit must be an integer");
    }
    if (req.has_param("detail")) options.detail = req.get_param_value("detail") == "true" ||
                                                  req.get_param_value("detail") == "1";
    const size_t n = req.get_param_value_count("filter_keys");
    if (req.get_param_value_count("filter_predicates") != n || req.get_param_value_count("filter_values") != n) {
      return ReplyError(res, 400, "filter_keys, filter_predicates and filter_values must come in equal numbers");
    }
    for (size_t i = 0; i < n; ++i) {
      absl::StatusOr<state::Filter> f = state::MakeFilter(req.get_param_value("filter_keys", i),
                                                         req.get_param_value("filter_predicates", i),
                                                         req.get_param_value("filter_values", i));
      if (!f.ok()) return ReplyError(res, 400, std::string(f.status().message()));
      options.filters.push_back(*f);
    }
    absl::StatusOr<state::ListResult> listed =
        state::List(cluster_.gcs().WithTimeout(kStatusTimeout), *resource, options);
    if (!listed.ok()) return ReplyError(res, listed.status());
    ReplyJson(res, {{"result", true},
                    {"msg", ""},
                    {"data",
                     {{"result",
                       {{"total", listed->total},
                        {"num_after_truncation", listed->rows.size()},
                        {"result", listed->rows},
                        {"partial_failure_warning",
                         listed->partial ? "the GCS held more entries than one list answers" : ""}}}}}});
  });

  route("GET", "/metrics", "/metrics", false, small, [this](const Request&, Response& res) {
    MetricsWriter writer;
    const GcsClient gcs = cluster_.gcs().WithTimeout(kStatusTimeout);
    absl::StatusOr<rpc::GetClusterStatusReply> status = gcs.GetClusterStatus();
    writer.Family("shoal_gcs_up", "1 when the GCS answered this scrape", "gauge");
    writer.Sample("shoal_gcs_up", {}, status.ok() ? 1 : 0);
    std::vector<std::pair<Labels, rpc::RpcStats>> rpc_servers;
    if (auto stats = gcs.GetRpcStats(); stats.ok()) {
      rpc_servers.push_back({{{"component", "gcs"}, {"node_id", ""}}, *stats});
    }
    if (status.ok()) {
      std::map<std::string, rpc::GetNodeStatsReply> stats = cluster_.NodeStats(*status, kNodeStatsTimeout);
      WriteClusterMetrics(writer, *status, stats);
      for (const auto& [node_id, s] : stats) rpc_servers.push_back({{{"component", "raylet"}, {"node_id", node_id}}, s.rpc_stats()});
    }
    WriteRpcMetrics(writer, rpc_servers);
    if (auto actors = gcs.ListActors(10000); actors.ok()) WriteActorMetrics(writer, *actors);
    if (auto tasks = gcs.ListTasks(1); tasks.ok()) WriteTaskMetrics(writer, *tasks);
    WriteJobMetrics(writer, jobs_.CountByStatus());
    if (auto keys = gcs.KvKeys(kAppMetricsNamespace); keys.ok()) {
      std::vector<std::pair<std::string, std::string>> snapshots;
      for (const std::string& key : *keys) {
        if (auto value = gcs.KvGet(kAppMetricsNamespace, key); value.ok()) snapshots.emplace_back(key, std::move(*value));
      }
      AppMetricsReport report = WriteApplicationMetrics(writer, snapshots, absl::Now());
      for (const std::string& key : report.forget) (void)gcs.KvDel(kAppMetricsNamespace, key);
    }
    http_metrics_.Write(writer);
    res.set_content(writer.text(), "text/plain; version=0.0.4; charset=utf-8");
  });

  // Before any body is read: the route exists, the caller may call it (auth.h), and the body's
  // framing and size fit it. A refused request is answered without its body being read.
  auto admit = [this, rules](const Request& req, Response& res) {
    const RouteRule* rule = FindRoute(*rules, req);
    RequestGuard* guard = CurrentRequest();
    absl::StatusOr<BodyAllowance> body = CheckBodyFraming(HeaderValues(req, "Content-Length"),
                                                          HeaderValues(req, "Transfer-Encoding"),
                                                          rule != nullptr ? rule->max_body : 0);
    const std::string encoding = absl::AsciiStrToLower(req.get_header_value("Content-Encoding"));
    int http = 0;
    std::string message;
    if (rule == nullptr) {
      http = 404;
      message = absl::StrCat("no route for ", req.method, " ", req.path);
    } else if (req.get_header_value_count("Host") > 1) {
      http = 400;
      message = "a request carries one Host header";
    } else if (absl::Status s = CheckRequest(options_.auth, RequestHeaders{.method = req.method,
                                                                             .path = req.path,
                                                                             .host = req.get_header_value("Host"),
                                                                             .origin = req.get_header_value("Origin"),
                                                                             .sec_fetch_site = req.get_header_value("Sec-Fetch-Site"),
                                                                             .authorization = req.get_header_value("Authorization"),
                                                                             .cookie = req.get_header_value("Cookie")},
                                             rule->is_public);
               !s.ok()) {
      http = HttpCode(s);
      message = std::string(s.message());
    } else if (!encoding.empty() && encoding != "identity") {
      http = 415;
      message = absl::StrCat("Content-Encoding '", encoding, "' is not accepted: send the body uncompressed");
    } else if (!body.ok()) {
      http = HttpCode(body.status());
      message = std::string(body.status().message());
    } else if (rule->upload && req.is_multipart_form_data()) {
      http = 415;
      message = "send the package as the request's whole body, not as multipart/form-data";
    }
    const bool body_follows = !body.ok() || body->chunked || body->max_wire_bytes > 0;
    if (http != 0) {
      ReplyError(res, http, message);
      if (rule != nullptr) http_metrics_.Record(req.method, rule->name, http, 0);
      if (guard != nullptr && body_follows) guard->CloseAfterReply();
      return false;
    }
    if (guard != nullptr) {
      if (!body->has_body) {
        guard->ExpectNoBody();
      } else {
        guard->AllowBody(body->max_wire_bytes);
        if (rule->upload) guard->AllowSlowBody();
      }
      // httplib reads no body for these methods: it must not be taken for the next request.
      if (body_follows && (req.method == "GET" || req.method == "HEAD")) guard->CloseAfterReply();
    }
    return true;
  };
  server_->set_pre_routing_handler([admit](const Request& req, Response& res) {
    return admit(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  // Clients that ask before sending a body (Expect: 100-continue) hear a refusal before sending it.
  server_->set_expect_100_continue_handler([admit](const Request& req, Response& res) {
    return admit(req, res) ? 100 : res.status;
  });

  server_->set_error_handler(httplib::Server::HandlerWithResponse([](const Request& req, Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = res.status == 404 ? absl::StrCat("no route for ", req.method, " ", req.path)
                          : res.status == 413 ? "the request body is too large"
                                              : absl::StrCat("HTTP ", res.status);
    // A body httplib failed to read: past its budget, or too slow (guarded_server.h).
    if (RequestGuard* guard = CurrentRequest(); guard != nullptr && res.status == 400) {
      if (guard->body_too_large()) {
        res.status = 413;
        message = "the request body is larger than this route takes";
      } else if (guard->timed_out()) {
        res.status = 408;
        message = "the request body did not arrive within the read timeout";
      }
    }
    ReplyError(res, res.status, message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_->set_exception_handler([](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{} {}: {}", req.method, req.path, what);
    ReplyError(res, 500, absl::StrCat("internal error: ", what));
  });
}

}  // namespace shoal::dashboard
