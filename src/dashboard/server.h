// The dashboard's HTTP server: the jobs REST API (Ray's paths and bodies), package uploads,
// the web UI, /metrics, and the checks every request passes (auth.h).
//
// Routes (all JSON unless noted; errors are {"error": "<code>", "message": "..."} with a 4xx
// or 5xx status):
//   GET  /                                the web UI (HTML; public, it asks for the token)
//   POST /api/auth/login {"token": ...}   sets the HttpOnly shoal_token cookie (public)
//   POST /api/auth/logout                 clears it
//   GET  /api/version                     {"version", "ray_version", "ray_commit", "session_name"}
//   GET  /api/packages/{protocol}/{name}  200 when uploaded, 404 otherwise
//   PUT  /api/packages/{protocol}/{name}  stores a working_dir zip (at most max_upload_bytes)
//   POST /api/jobs/                       submit -> {"submission_id", "job_id"}
//   GET  /api/jobs/                       [JobDetails...], newest first
//   GET  /api/jobs/{id}                   JobDetails
//   POST /api/jobs/{id}/stop              {"stopped": bool}
//   DELETE /api/jobs/{id}                 {"deleted": true}
//   GET  /api/jobs/{id}/logs              {"logs"}; with ?offset=N also {"offset"} (Shoal's way to
//                                         follow a log by polling)
//   GET  /api/jobs/{id}/logs/tail         websocket: the log as text frames until the job ends (Ray's
//                                         tail_job_logs and `ray job submit` without --no-wait)
//   GET  /api/cluster_status              `shoal status --json`, nodes capped at ?limit= (200), actors,
//                                         tasks and placement groups at ?actor_limit=, ?task_limit=,
//                                         ?group_limit= (50 each; 1..10000), with num_* totals
//   GET  /api/placement_groups            {"placement_groups": [...], "total"}, creation order, at most
//                                         ?limit= (0: all); each as cluster::PlacementGroupToJson
//   GET  /metrics                         Prometheus text (metrics.h)
// Abuse: every request passes the checks of auth.h and its body's size is bounded before any of
// the body is read (a refused one is never read); uploads are streamed to disk; connections,
// request heads and read timeouts are bounded by GuardedHttpServer (guarded_server.h).
// Threading: each connection's thread calls the handlers; they share only thread-safe state.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "src/dashboard/auth.h"
#include "src/dashboard/cluster_client.h"
#include "src/dashboard/guarded_server.h"
#include "src/dashboard/job_manager.h"
#include "src/dashboard/metrics.h"

namespace shoal::dashboard {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8265;  // 0 picks a free one
  AuthPolicy auth;  // bound_host/bound_port (and the machine's host name) are filled in by Start
  ConnectionLimits limits;
  std::shared_ptr<SSL_CTX> tls;  // HTTPS only with it (dashboard_tls.h); null: plain HTTP
  std::string package_dir;
  std::string session_name;
  int64_t max_upload_bytes = 100 << 20;
  int64_t max_request_bytes = 1 << 20;  // everything but package uploads
};

class DashboardServer {
 public:
  DashboardServer(ServerOptions options, ClusterClient& cluster, JobManager& jobs);
  ~DashboardServer();
  DashboardServer(const DashboardServer&) = delete;
  DashboardServer& operator=(const DashboardServer&) = delete;

  // Binds and starts serving on a background thread. Unavailable when the port is taken.
  absl::Status Start();
  int port() const { return port_; }
  void Stop();

 private:
  void AddRoutes();
  // Temporary files of uploads a previous run did not finish.
  void RemoveStaleUploads();
  // Stores an uploaded package in the GCS's package store; on failure removes the file.
  absl::Status CopyPackageToGcs(const std::filesystem::path& file, const std::string& uri);

  ServerOptions options_;
  ClusterClient& cluster_;
  JobManager& jobs_;
  HttpMetrics http_metrics_;
  std::unique_ptr<GuardedHttpServer> server_;
  std::unique_ptr<std::thread> thread_;
  int port_ = 0;
};

// The web UI: one HTML page with its CSS and JavaScript inline (ui.cc).
const std::string& UiPage();

}  // namespace shoal::dashboard
