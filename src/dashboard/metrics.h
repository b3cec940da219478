// Prometheus text exposition (format 0.0.4) for /metrics: a writer for metric families, the
// dashboard's own HTTP request counters and latency histograms, and the cluster metrics
// rendered from the GCS's status reply. Formatting is pure and tested without a server.
//
// Metrics (every name starts with shoal_):
//   shoal_node_resource_total{node_id,resource}, shoal_node_resource_used{node_id,resource}
//   shoal_node_alive{node_id,address,is_head}
//   shoal_cluster_resource_total{resource}, shoal_cluster_resource_used{resource}
//   shoal_resource_demand{shape,infeasible}  (queued lease requests by shape, from the GCS)
//   shoal_placement_groups{state}  (every state, zero included; from the GCS)
//   shoal_placement_group_bundle_demand{shape,infeasible}  (unplaced bundles of pending groups)
//   shoal_node_workers{node_id,state}, shoal_node_queued_leases{node_id}  (raylet GetNodeStats)
//   shoal_node_gpu_used{node_id,device}  (share of each GPU device in use; raylet GetNodeStats)
//   shoal_object_store_bytes{node_id,kind=capacity|used|spilled}, shoal_object_store_objects{node_id,where},
//   shoal_object_store_evictions_total{node_id}  (raylet GetNodeStats)
//   shoal_rpc_requests_total{component,node_id,method,code}, shoal_rpc_latency_seconds (histogram)
//   shoal_actors{state}  (GCS actor table), shoal_tasks{state}  (GCS task events)
//   shoal_jobs{status}
//   shoal_dashboard_http_requests_total{method,route,code}
//   shoal_dashboard_http_request_duration_seconds{route} (histogram)
// Resource amounts are in their natural units (CPUs, GPUs, bytes), as `shoal status --json`;
// the bundle-formatted names of placement groups (CPU_group_...) are left out of the resource
// gauges.
// Threading: MetricsWriter and the Format functions are values; HttpMetrics is thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/gcs.pb.h"
#include "shoal/raylet.pb.h"

namespace shoal::dashboard {

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsWriter {
 public:
  // Starts a family: its # HELP (backslashes and newlines escaped) and # TYPE lines ("gauge",
  // "counter", "histogram").
  void Family(const std::string& name, const std::string& help, const std::string& type);
  void Sample(const std::string& name, const Labels& labels, double value);
  const std::string& text() const { return out_; }

  static std::string EscapeLabelValue(const std::string& value);
  static std::string FormatValue(double value);  // "1", "0.5", "+Inf", "NaN"

 private:
  std::string out_;
};

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Writes <name>_bucket{...,le=...}, <name>_sum and <name>_count samples.
  void Write(MetricsWriter& writer, const std::string& name, const Labels& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Counts and times the dashboard's own HTTP requests, by route template ("/api/jobs/{id}").
class HttpMetrics {
 public:
  void Record(const std::string& method, const std::string& route, int code, double seconds);
  void Write(MetricsWriter& writer) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Histogram> latency_ ABSL_GUARDED_BY(mu_);
};

// Node, cluster and demand metrics from the GCS's status reply; `node_stats` (by node id) adds
// worker and queue gauges for the raylets that answered.
void WriteClusterMetrics(MetricsWriter& writer, const rpc::GetClusterStatusReply& status,
                         const std::map<std::string, rpc::GetNodeStatsReply>& node_stats);

// shoal_rpc_requests_total{component,node_id,method,code} and the shoal_rpc_latency_seconds
// histogram{component,node_id,method}, one entry per server (its labels and its stats).
void WriteRpcMetrics(MetricsWriter& writer, const std::vector<std::pair<Labels, rpc::RpcStats>>& servers);

// shoal_actors{state} for every state, zero included.
void WriteActorMetrics(MetricsWriter& writer, const rpc::ListActorsReply& actors);
// shoal_tasks{state} and shoal_task_events_dropped_total.
void WriteTaskMetrics(MetricsWriter& writer, const rpc::ListTasksReply& tasks);

// shoal_jobs{status} for every status, zero included.
void WriteJobMetrics(MetricsWriter& writer, const std::map<std::string, int64_t>& jobs_by_status);

// Application metrics (shoal.util.metrics): each process reports a JSON snapshot to the GCS
// key-value namespace kAppMetricsNamespace, under its worker id:
//   {"time": <unix seconds>, "labels": {"WorkerId": .., "NodeId": .., "JobId": ..},
//    "metrics": [{"name", "type": "counter"|"gauge"|"histogram", "help", "boundaries": [..],
//                 "series": [{"tags": {..}, "value": x} | {"tags", "buckets": [..], "sum", "count"}]}]}
// WriteApplicationMetrics merges the snapshots reported within kAppMetricsMaxAge of `now` into
// one family per name (a counter is written as <name>_total), each series labelled with its
// tags (sorted by key) and the reporter's WorkerId, NodeId and JobId; then
// shoal_app_metrics_reporters{state=fresh|stale|malformed}. A snapshot that is not such a
// document, or names a metric or tag Prometheus cannot take, is skipped whole (malformed); a
// metric whose type or bounds differ from the first reporter's is skipped (conflicting).
inline constexpr char kAppMetricsNamespace[] = "app_metrics";
inline constexpr absl::Duration kAppMetricsMaxAge = absl::Seconds(30);
// Snapshots older than this are deleted by the reader (their process is long gone).
inline constexpr absl::Duration kAppMetricsForgetAge = absl::Minutes(10);
struct AppMetricsReport {
  int fresh = 0;
  int stale = 0;
  int malformed = 0;
  int conflicting = 0;                  // metrics skipped for disagreeing with another reporter
  std::vector<std::string> forget;      // keys of snapshots older than kAppMetricsForgetAge
};
AppMetricsReport WriteApplicationMetrics(MetricsWriter& writer,
                                         const std::vector<std::pair<std::string, std::string>>& snapshots,
                                         absl::Time now);

// "CPU=1,GPU=2": a demand shape as one label value, names sorted.
std::string ShapeLabel(const rpc::ResourceMap& shape);

}  // namespace shoal::dashboard
