// Prometheus text format; see metrics.h.
#include "src/dashboard/metrics.h"

#include <charconv>
#include <cmath>
#include <optional>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "src/common/bundle_resources.h"
#include "src/common/resources.h"

namespace shoal::dashboard {
namespace {

const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

double Units(int64_t units) { return static_cast<double>(units) / FixedPoint::kScale; }

int64_t Get(const rpc::ResourceMap& map, const std::string& name) {
  auto it = map.amounts().find(name);
  return it == map.amounts().end() ? 0 : it->second;
}

// The amounts by name, without the bundle-formatted names of placement groups (one series per
// group and bundle would grow without bound; shoal_placement_groups shows the groups).
std::map<std::string, int64_t> OwnResources(const rpc::ResourceMap& map) {
  std::map<std::string, int64_t> out;
  for (const auto& [name, units] : map.amounts()) {
    if (!IsBundleResource(name)) out[name] = units;
  }
  return out;
}

}  // namespace

std::string MetricsWriter::EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string MetricsWriter::FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return absl::StrCat(static_cast<int64_t>(value));
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);  // shortest form that reads back exactly
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

void MetricsWriter::Family(const std::string& name, const std::string& help, const std::string& type) {
  std::string escaped;
  escaped.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  absl::StrAppend(&out_, "# HELP ", name, " ", escaped, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsWriter::Sample(const std::string& name, const Labels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      absl::StrAppend(&out_, i ? "," : "", labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
    }
    out_ += "}";
  }
  absl::StrAppend(&out_, " ", FormatValue(value), "\n");
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::Write(MetricsWriter& writer, const std::string& name, const Labels& labels) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    Labels with_le = labels;
    with_le.emplace_back("le", i < bounds_.size() ? MetricsWriter::FormatValue(bounds_[i]) : "+Inf");
    writer.Sample(name + "_bucket", with_le, static_cast<double>(cumulative));
  }
  writer.Sample(name + "_sum", labels, sum_);
  writer.Sample(name + "_count", labels, static_cast<double>(count_));
}

void HttpMetrics::Record(const std::string& method, const std::string& route, int code, double seconds) {
  absl::MutexLock lock(&mu_);
  ++requests_[{method, route, code}];
  latency_.try_emplace(route, kLatencyBounds).first->second.Observe(seconds);
}

void HttpMetrics::Write(MetricsWriter& writer) const {
  absl::MutexLock lock(&mu_);
  writer.Family("shoal_dashboard_http_requests_total", "HTTP requests the dashboard answered", "counter");
  for (const auto& [key, count] : requests_) {
    const auto& [method, route, code] = key;
    writer.Sample("shoal_dashboard_http_requests_total",
                  {{"method", method}, {"route", route}, {"code", absl::StrCat(code)}}, static_cast<double>(count));
  }
  writer.Family("shoal_dashboard_http_request_duration_seconds", "Time to answer an HTTP request", "histogram");
  for (const auto& [route, histogram] : latency_) {
    histogram.Write(writer, "shoal_dashboard_http_request_duration_seconds", {{"route", route}});
  }
}

std::string ShapeLabel(const rpc::ResourceMap& shape) {
  std::map<std::string, int64_t> sorted(shape.amounts().begin(), shape.amounts().end());
  std::vector<std::string> parts;
  for (const auto& [name, units] : sorted) parts.push_back(absl::StrCat(name, "=", FixedPoint::FromUnits(units).ToString()));
  return absl::StrJoin(parts, ",");
}

void WriteClusterMetrics(MetricsWriter& writer, const rpc::GetClusterStatusReply& status,
                         const std::map<std::string, rpc::GetNodeStatsReply>& node_stats) {
  writer.Family("shoal_node_alive", "1 for an alive node, 0 for a dead one", "gauge");
  for (const rpc::NodeInfo& node : status.nodes()) {
    writer.Sample("shoal_node_alive",
                  {{"node_id", node.node_id()}, {"address", absl::StrCat(node.address(), ":", node.raylet_port())},
                   {"is_head", node.is_head() ? "true" : "false"}},
                  node.state() == rpc::NodeInfo::ALIVE ? 1 : 0);
  }
  writer.Family("shoal_node_resource_total", "Resources an alive node offers", "gauge");
  for (const rpc::NodeInfo& node : status.nodes()) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    for (const auto& [name, units] : OwnResources(node.resources_total())) {
      writer.Sample("shoal_node_resource_total", {{"node_id", node.node_id()}, {"resource", name}}, Units(units));
    }
  }
  writer.Family("shoal_node_resource_used", "Resources of an alive node in use (total - available)", "gauge");
  for (const rpc::NodeInfo& node : status.nodes()) {
    if (node.state() != rpc::NodeInfo::ALIVE) continue;
    for (const auto& [name, units] : OwnResources(node.resources_total())) {
      int64_t used = std::max<int64_t>(0, units - Get(node.resources_available(), name));
      writer.Sample("shoal_node_resource_used", {{"node_id", node.node_id()}, {"resource", name}}, Units(used));
    }
  }
  const std::map<std::string, int64_t> total = OwnResources(status.total());
  writer.Family("shoal_cluster_resource_total", "Resources of the alive, schedulable nodes", "gauge");
  for (const auto& [name, units] : total) writer.Sample("shoal_cluster_resource_total", {{"resource", name}}, Units(units));
  writer.Family("shoal_cluster_resource_used", "Resources in use over the alive, schedulable nodes", "gauge");
  for (const auto& [name, units] : total) {
    writer.Sample("shoal_cluster_resource_used", {{"resource", name}},
                  Units(std::max<int64_t>(0, units - Get(status.available(), name))));
  }
  writer.Family("shoal_resource_demand", "Lease requests waiting for room, by resource shape", "gauge");
  for (const rpc::ResourceDemand& demand : status.demands()) {
    writer.Sample("shoal_resource_demand",
                  {{"shape", ShapeLabel(demand.shape())}, {"infeasible", demand.infeasible() ? "true" : "false"}},
                  static_cast<double>(demand.count()));
  }
  writer.Family("shoal_placement_groups", "Placement groups by state", "gauge");
  for (const char* state : {"PENDING", "CREATED", "RESCHEDULING", "REMOVED"}) {
    auto it = status.placement_groups_by_state().find(state);
    writer.Sample("shoal_placement_groups", {{"state", state}},
                  it == status.placement_groups_by_state().end() ? 0 : static_cast<double>(it->second));
  }
  // Bundles of the groups not created yet, by shape: the demand an autoscaler would add nodes for.
  std::map<std::pair<std::string, bool>, int64_t> bundles;
  for (const rpc::PlacementGroupInfo& group : status.pending_placement_groups()) {
    for (const rpc::Bundle& b : group.bundles()) {
      if (b.node_id().empty()) ++bundles[{ShapeLabel(b.resources()), group.infeasible()}];
    }
  }
  writer.Family("shoal_placement_group_bundle_demand",
                "Bundles of placement groups waiting for room, by resource shape", "gauge");
  for (const auto& [key, count] : bundles) {
    writer.Sample("shoal_placement_group_bundle_demand",
                  {{"shape", key.first}, {"infeasible", key.second ? "true" : "false"}}, static_cast<double>(count));
  }
  writer.Family("shoal_node_workers", "Worker processes of a node's raylet by state", "gauge");
  for (const auto& [node_id, stats] : node_stats) {
    writer.Sample("shoal_node_workers", {{"node_id", node_id}, {"state", "idle"}}, static_cast<double>(stats.num_idle_workers()));
    writer.Sample("shoal_node_workers", {{"node_id", node_id}, {"state", "leased"}},
                  static_cast<double>(stats.num_leased_workers()));
    writer.Sample("shoal_node_workers", {{"node_id", node_id}, {"state", "all"}}, static_cast<double>(stats.num_workers()));
  }
  writer.Family("shoal_node_queued_leases", "Lease requests queued at a node's raylet (scheduler queue length)", "gauge");
  for (const auto& [node_id, stats] : node_stats) {
    writer.Sample("shoal_node_queued_leases", {{"node_id", node_id}}, static_cast<double>(stats.num_queued_leases()));
  }
  writer.Family("shoal_node_gpu_used", "Share of each GPU device of a node in use (fractions included)", "gauge");
  for (const auto& [node_id, stats] : node_stats) {
    for (int i = 0; i < stats.gpu_free_size(); ++i) {
      writer.Sample("shoal_node_gpu_used", {{"node_id", node_id}, {"device", absl::StrCat(i)}},
                    1.0 - static_cast<double>(stats.gpu_free(i)) / FixedPoint::kScale);
    }
  }
  writer.Family("shoal_object_store_bytes", "A node's object store: capacity, bytes in memory, bytes spilled to disk",
                "gauge");
  for (const auto& [node_id, stats] : node_stats) {
    writer.Sample("shoal_object_store_bytes", {{"node_id", node_id}, {"kind", "capacity"}},
                  static_cast<double>(stats.store_capacity_bytes()));
    writer.Sample("shoal_object_store_bytes", {{"node_id", node_id}, {"kind", "used"}},
                  static_cast<double>(stats.store_used_bytes()));
    writer.Sample("shoal_object_store_bytes", {{"node_id", node_id}, {"kind", "spilled"}},
                  static_cast<double>(stats.store_spilled_bytes()));
  }
  writer.Family("shoal_object_store_objects", "Objects in a node's object store (in memory or spilled)", "gauge");
  for (const auto& [node_id, stats] : node_stats) {
    writer.Sample("shoal_object_store_objects", {{"node_id", node_id}, {"where", "all"}},
                  static_cast<double>(stats.store_num_objects()));
    writer.Sample("shoal_object_store_objects", {{"node_id", node_id}, {"where", "spilled"}},
                  static_cast<double>(stats.store_num_spilled()));
  }
  writer.Family("shoal_object_store_evictions_total", "Secondary copies a node's store evicted since it started",
                "counter");
  for (const auto& [node_id, stats] : node_stats) {
    writer.Sample("shoal_object_store_evictions_total", {{"node_id", node_id}},
                  static_cast<double>(stats.store_num_evicted()));
  }
}

void WriteRpcMetrics(MetricsWriter& writer, const std::vector<std::pair<Labels, rpc::RpcStats>>& servers) {
  writer.Family("shoal_rpc_requests_total", "gRPC calls served, by component, method and status code", "counter");
  for (const auto& [labels, stats] : servers) {
    for (const rpc::RpcMethodStats& m : stats.methods()) {
      Labels l = labels;
      l.emplace_back("method", m.method());
      l.emplace_back("code", absl::StrCat(m.code()));
      writer.Sample("shoal_rpc_requests_total", l, static_cast<double>(m.count()));
    }
  }
  writer.Family("shoal_rpc_latency_seconds", "Time to serve a gRPC call, by component and method", "histogram");
  for (const auto& [labels, stats] : servers) {
    // Codes merged per method: one histogram per method.
    std::map<std::string, std::pair<std::vector<uint64_t>, std::pair<uint64_t, double>>> by_method;
    for (const rpc::RpcMethodStats& m : stats.methods()) {
      auto& [buckets, totals] = by_method[m.method()];
      buckets.resize(std::max<size_t>(buckets.size(), m.buckets_size()), 0);
      for (int i = 0; i < m.buckets_size(); ++i) buckets[i] += m.buckets(i);
      totals.first += m.count();
      totals.second += m.sum_seconds();
    }
    for (const auto& [method, entry] : by_method) {
      const auto& [buckets, totals] = entry;
      Labels l = labels;
      l.emplace_back("method", method);
      uint64_t cumulative = 0;
      for (int i = 0; i < stats.bounds_size() && i < static_cast<int>(buckets.size()); ++i) {
        cumulative += buckets[i];
        Labels b = l;
        b.emplace_back("le", MetricsWriter::FormatValue(stats.bounds(i)));
        writer.Sample("shoal_rpc_latency_seconds_bucket", b, static_cast<double>(cumulative));
      }
      Labels inf = l;
      inf.emplace_back("le", "+Inf");
      writer.Sample("shoal_rpc_latency_seconds_bucket", inf, static_cast<double>(totals.first));
      writer.Sample("shoal_rpc_latency_seconds_sum", l, totals.second);
      writer.Sample("shoal_rpc_latency_seconds_count", l, static_cast<double>(totals.first));
    }
  }
}

void WriteActorMetrics(MetricsWriter& writer, const rpc::ListActorsReply& actors) {
  std::map<std::string, int64_t> by_state;
  for (const char* state : {"PENDING", "ALIVE", "RESTARTING", "DEAD"}) by_state[state] = 0;
  for (const rpc::ActorInfo& actor : actors.actors()) ++by_state[rpc::ActorInfo::State_Name(actor.state())];
  writer.Family("shoal_actors", "Actors by state (of the most recent 10000)", "gauge");
  for (const auto& [state, count] : by_state) writer.Sample("shoal_actors", {{"state", state}}, static_cast<double>(count));
}

void WriteTaskMetrics(MetricsWriter& writer, const rpc::ListTasksReply& tasks) {
  writer.Family("shoal_tasks", "Tasks by state: PENDING and RUNNING now, FINISHED and FAILED since the GCS started",
                "gauge");
  for (const char* state : {"PENDING", "RUNNING", "FINISHED", "FAILED"}) {
    auto it = tasks.count_by_state().find(state);
    writer.Sample("shoal_tasks", {{"state", state}}, it == tasks.count_by_state().end() ? 0 : static_cast<double>(it->second));
  }
  writer.Family("shoal_task_events_dropped_total", "Task events reporters dropped (their buffers were full)", "counter");
  writer.Sample("shoal_task_events_dropped_total", {}, static_cast<double>(tasks.events_dropped()));
}

void WriteJobMetrics(MetricsWriter& writer, const std::map<std::string, int64_t>& jobs_by_status) {
  writer.Family("shoal_jobs", "Submitted jobs by status", "gauge");
  for (const char* status : {"PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"}) {
    auto it = jobs_by_status.find(status);
    writer.Sample("shoal_jobs", {{"status", status}}, it == jobs_by_status.end() ? 0 : static_cast<double>(it->second));
  }
}

// ---------------------------------------------------------------------------------------------
// Application metrics

namespace {

struct AppSeries {
  Labels labels;                  // tags sorted by key, then WorkerId, NodeId, JobId
  double value = 0;               // counter, gauge
  std::vector<double> buckets;    // histogram: per bucket, not cumulative; one more for +Inf
  double sum = 0;
  double count = 0;
};

struct AppFamily {
  std::string type;
  std::string help;
  std::vector<double> bounds;
  std::vector<AppSeries> series;
};

bool ValidMetricName(const std::string& name) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(name, kName) && name.rfind("shoal_", 0) != 0;
}

bool ValidLabelName(const std::string& name) {
  static const std::regex kLabel("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(name, kLabel) && name.rfind("__", 0) != 0 && name != "le" && name != "WorkerId" &&
         name != "NodeId" && name != "JobId";
}

// One reporter's metrics, or nullopt when the document is malformed.
std::optional<std::vector<std::pair<std::string, AppFamily>>> ParseSnapshot(const nlohmann::json& doc,
                                                                           Labels* reporter) {
  using json = nlohmann::json;
  if (!doc.is_object() || !doc.contains("labels") || !doc["labels"].is_object() || !doc.contains("metrics") ||
      !doc["metrics"].is_array()) {
    return std::nullopt;
  }
  for (const char* key : {"WorkerId", "NodeId", "JobId"}) {
    const json& v = doc["labels"].value(key, json());
    if (!v.is_string()) return std::nullopt;
    reporter->emplace_back(key, v.get<std::string>());
  }
  std::vector<std::pair<std::string, AppFamily>> out;
  for (const json& m : doc["metrics"]) {
    if (!m.is_object() || !m.value("name", json()).is_string() || !m.value("type", json()).is_string()) {
      return std::nullopt;
    }
    const std::string name = m["name"].get<std::string>();
    AppFamily family;
    family.type = m["type"].get<std::string>();
    if (!ValidMetricName(name) || (family.type != "counter" && family.type != "gauge" && family.type != "histogram")) {
      return std::nullopt;
    }
    if (m.value("help", json()).is_string()) family.help = m["help"].get<std::string>();
    if (family.type == "histogram") {
      const json& bounds = m.value("boundaries", json());
      if (!bounds.is_array() || bounds.empty()) return std::nullopt;
      for (const json& b : bounds) {
        if (!b.is_number() || (!family.bounds.empty() && b.get<double>() <= family.bounds.back())) return std::nullopt;
        family.bounds.push_back(b.get<double>());
      }
    }
    if (!m.value("series", json()).is_array()) return std::nullopt;
    for (const json& s : m["series"]) {
      if (!s.is_object() || !s.value("tags", json()).is_object()) return std::nullopt;
      AppSeries series;
      std::map<std::string, std::string> tags;
      for (const auto& [k, v] : s["tags"].items()) {
        if (!ValidLabelName(k) || !v.is_string()) return std::nullopt;
        tags[k] = v.get<std::string>();
      }
      series.labels.assign(tags.begin(), tags.end());
      series.labels.insert(series.labels.end(), reporter->begin(), reporter->end());
      if (family.type == "histogram") {
        const json& buckets = s.value("buckets", json());
        if (!buckets.is_array() || buckets.size() != family.bounds.size() + 1 || !s.value("sum", json()).is_number() ||
            !s.value("count", json()).is_number()) {
          return std::nullopt;
        }
        for (const json& b : buckets) {
          if (!b.is_number()) return std::nullopt;
          series.buckets.push_back(b.get<double>());
        }
        series.sum = s["sum"].get<double>();
        series.count = s["count"].get<double>();
      } else {
        if (!s.value("value", json()).is_number()) return std::nullopt;
        series.value = s["value"].get<double>();
      }
      family.series.push_back(std::move(series));
    }
    out.emplace_back(name, std::move(family));
  }
  return out;
}

}  // namespace

AppMetricsReport WriteApplicationMetrics(MetricsWriter& writer,
                                         const std::vector<std::pair<std::string, std::string>>& snapshots,
                                         absl::Time now) {
  AppMetricsReport report;
  std::map<std::string, AppFamily> families;
  for (const auto& [key, text] : snapshots) {
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object() || !doc.value("time", nlohmann::json()).is_number()) {
      ++report.malformed;
      continue;
    }
    const absl::Time reported = absl::FromUnixNanos(static_cast<int64_t>(doc["time"].get<double>() * 1e9));
    if (now - reported > kAppMetricsMaxAge) {
      ++report.stale;
      if (now - reported > kAppMetricsForgetAge) report.forget.push_back(key);
      continue;
    }
    Labels reporter;
    auto parsed = ParseSnapshot(doc, &reporter);
    if (!parsed) {
      ++report.malformed;
      continue;
    }
    ++report.fresh;
    for (auto& [name, family] : *parsed) {
      auto [it, added] = families.try_emplace(name, AppFamily{family.type, family.help, family.bounds, {}});
      if (!added && (it->second.type != family.type || it->second.bounds != family.bounds)) {
        ++report.conflicting;
        continue;
      }
      for (auto& series : family.series) it->second.series.push_back(std::move(series));
    }
  }
  for (const auto& [name, family] : families) {
    const std::string exported = family.type == "counter" ? name + "_total" : name;
    writer.Family(exported, family.help.empty() ? name : family.help, family.type);
    for (const AppSeries& series : family.series) {
      if (family.type != "histogram") {
        writer.Sample(exported, series.labels, series.value);
        continue;
      }
      double cumulative = 0;
      for (size_t i = 0; i < series.buckets.size(); ++i) {
        cumulative += series.buckets[i];
        Labels with_le = series.labels;
        with_le.emplace_back("le", i < family.bounds.size() ? MetricsWriter::FormatValue(family.bounds[i]) : "+Inf");
        writer.Sample(exported + "_bucket", with_le, cumulative);
      }
      writer.Sample(exported + "_sum", series.labels, series.sum);
      writer.Sample(exported + "_count", series.labels, series.count);
    }
  }
  writer.Family("shoal_app_metrics_reporters",
                "Processes whose application metrics (shoal.util.metrics) the last scrape read, by state", "gauge");
  writer.Sample("shoal_app_metrics_reporters", {{"state", "fresh"}}, report.fresh);
  writer.Sample("shoal_app_metrics_reporters", {{"state", "stale"}}, report.stale);
  writer.Sample("shoal_app_metrics_reporters", {{"state", "malformed"}}, report.malformed);
  writer.Family("shoal_app_metrics_conflicting", "Application metrics left out because another process reported "
                "the same name with another type or buckets", "gauge");
  writer.Sample("shoal_app_metrics_conflicting", {}, report.conflicting);
  return report;
}

}  // namespace shoal::dashboard
