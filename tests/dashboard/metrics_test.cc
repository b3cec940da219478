#include "src/dashboard/metrics.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

namespace shoal::dashboard {
namespace {

TEST_CASE("samples are written in Prometheus text format, label values escaped") {
  MetricsWriter w;
  w.Family("shoal_x", "help text", "gauge");
  w.Sample("shoal_x", {{"a", "q\"uo\\te\nnl"}, {"b", "2"}}, 0.5);
  w.Sample("shoal_x", {}, 3);
  REQUIRE(w.text() ==
          "# HELP shoal_x help text\n# TYPE shoal_x gauge\n"
          "shoal_x{a=\"q\\\"uo\\\\te\\nnl\",b=\"2\"} 0.5\nshoal_x 3\n");
  REQUIRE(MetricsWriter::FormatValue(0.0025) == "0.0025");
  REQUIRE(MetricsWriter::FormatValue(1e20) == "1e+20");
  REQUIRE(MetricsWriter::FormatValue(1.0 / 0.0) == "+Inf");
}

TEST_CASE("a histogram writes cumulative buckets, sum and count") {
  Histogram h({0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(5);
  MetricsWriter w;
  h.Write(w, "lat", {{"route", "/"}});
  REQUIRE(w.text() ==
          "lat_bucket{route=\"/\",le=\"0.1\"} 1\n"
          "lat_bucket{route=\"/\",le=\"1\"} 2\n"
          "lat_bucket{route=\"/\",le=\"+Inf\"} 3\n"
          "lat_sum{route=\"/\"} 5.55\n"
          "lat_count{route=\"/\"} 3\n");
}

TEST_CASE("cluster metrics: per-node total and used, demands by shape, dead nodes only as alive=0") {
  rpc::GetClusterStatusReply status;
  rpc::NodeInfo* a = status.add_nodes();
  a->set_node_id("aa");
  a->set_is_head(true);
  (*a->mutable_resources_total()->mutable_amounts())["CPU"] = 40000;
  (*a->mutable_resources_total()->mutable_amounts())["GPU"] = 10000;
  (*a->mutable_resources_available()->mutable_amounts())["CPU"] = 15000;
  (*a->mutable_resources_available()->mutable_amounts())["GPU"] = 5000;
  rpc::NodeInfo* b = status.add_nodes();
  b->set_node_id("bb");
  b->set_state(rpc::NodeInfo::DEAD);
  (*b->mutable_resources_total()->mutable_amounts())["CPU"] = 10000;
  (*status.mutable_total()->mutable_amounts())["CPU"] = 40000;
  (*status.mutable_available()->mutable_amounts())["CPU"] = 15000;
  rpc::ResourceDemand* d = status.add_demands();
  (*d->mutable_shape()->mutable_amounts())["GPU"] = 20000;
  (*d->mutable_shape()->mutable_amounts())["CPU"] = 5000;
  d->set_count(3);
  d->set_infeasible(true);
  MetricsWriter w;
  WriteClusterMetrics(w, status, {});
  const std::string& t = w.text();
  REQUIRE_THAT(t, Catch::Contains("shoal_node_resource_total{node_id=\"aa\",resource=\"CPU\"} 4\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_node_resource_used{node_id=\"aa\",resource=\"CPU\"} 2.5\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_node_resource_used{node_id=\"aa\",resource=\"GPU\"} 0.5\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_node_alive{node_id=\"bb\",address=\":0\",is_head=\"false\"} 0\n"));
  REQUIRE_THAT(t, !Catch::Contains("node_id=\"bb\",resource"));
  REQUIRE_THAT(t, Catch::Contains("shoal_cluster_resource_used{resource=\"CPU\"} 2.5\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_resource_demand{shape=\"CPU=0.5,GPU=2\",infeasible=\"true\"} 3\n"));
}

TEST_CASE("cluster metrics: placement groups by state and their waiting bundles, bundle resources left out") {
  rpc::GetClusterStatusReply status;
  rpc::NodeInfo* a = status.add_nodes();
  a->set_node_id("aa");
  const std::string bundle_cpu = "CPU_group_0_" + std::string(36, 'c');
  (*a->mutable_resources_total()->mutable_amounts())["CPU"] = 40000;
  (*a->mutable_resources_total()->mutable_amounts())[bundle_cpu] = 10000;
  (*status.mutable_total()->mutable_amounts())[bundle_cpu] = 10000;
  (*status.mutable_placement_groups_by_state())["CREATED"] = 1;
  (*status.mutable_placement_groups_by_state())["PENDING"] = 2;
  for (bool infeasible : {false, true}) {
    rpc::PlacementGroupInfo* g = status.add_pending_placement_groups();
    g->set_infeasible(infeasible);
    for (int i = 0; i < 2; ++i) (*g->add_bundles()->mutable_resources()->mutable_amounts())["GPU"] = 10000;
  }
  status.mutable_pending_placement_groups(0)->mutable_bundles(0)->set_node_id("aa");  // placed already
  MetricsWriter w;
  WriteClusterMetrics(w, status, {});
  const std::string& t = w.text();
  REQUIRE_THAT(t, Catch::Contains("shoal_placement_groups{state=\"PENDING\"} 2\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_placement_groups{state=\"CREATED\"} 1\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_placement_groups{state=\"REMOVED\"} 0\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_placement_group_bundle_demand{shape=\"GPU=1\",infeasible=\"false\"} 1\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_placement_group_bundle_demand{shape=\"GPU=1\",infeasible=\"true\"} 2\n"));
  REQUIRE_THAT(t, Catch::Contains("shoal_node_resource_total{node_id=\"aa\",resource=\"CPU\"} 4\n"));
  REQUIRE_THAT(t, !Catch::Contains("CPU_group_"));
}

TEST_CASE("job counts list every status and HTTP metrics count by route and code") {
  MetricsWriter w;
  WriteJobMetrics(w, {{"RUNNING", 2}});
  REQUIRE_THAT(w.text(), Catch::Contains("shoal_jobs{status=\"RUNNING\"} 2\n"));
  REQUIRE_THAT(w.text(), Catch::Contains("shoal_jobs{status=\"FAILED\"} 0\n"));
  HttpMetrics http;
  http.Record("GET", "/api/jobs/{id}", 404, 0.002);
  http.Record("GET", "/api/jobs/{id}", 404, 0.003);
  MetricsWriter h;
  http.Write(h);
  REQUIRE_THAT(h.text(), Catch::Contains(
      "shoal_dashboard_http_requests_total{method=\"GET\",route=\"/api/jobs/{id}\",code=\"404\"} 2\n"));
  REQUIRE_THAT(h.text(), Catch::Contains(
      "shoal_dashboard_http_request_duration_seconds_count{route=\"/api/jobs/{id}\"} 2\n"));
}


// A snapshot as shoal.util.metrics reports it, from worker `w` at `time` (unix seconds).
std::string Snapshot(const std::string& w, double time, const std::string& metrics) {
  return absl::StrCat(R"({"time": )", time, R"(, "labels": {"WorkerId": ")", w,
                      R"(", "NodeId": "n1", "JobId": "01000000"}, "metrics": )", metrics, "}");
}

const absl::Time kNow = absl::FromUnixSeconds(1000);

TEST_CASE("application metrics: families merged across reporters, labelled with each reporter") {
  const std::string counter = R"([{"name": "requests", "type": "counter", "help": "Requests\nserved",
      "series": [{"tags": {"route": "/b", "code": "200"}, "value": 3}]}])";
  const std::string histogram = R"([{"name": "latency", "type": "histogram", "help": "", "boundaries": [0.1, 1],
      "series": [{"tags": {}, "buckets": [1, 2, 1], "sum": 7.5, "count": 4}]}])";
  MetricsWriter w;
  AppMetricsReport r = WriteApplicationMetrics(
      w, {{"w1", Snapshot("w1", 995, counter)}, {"w2", Snapshot("w2", 999, counter)}, {"w3", Snapshot("w3", 999, histogram)}},
      kNow);
  CHECK(r.fresh == 3);
  CHECK(r.stale == 0);
  CHECK(r.malformed == 0);
  const std::string text = w.text();
  INFO(text);
  CHECK(text.find("# HELP requests_total Requests\\nserved\n# TYPE requests_total counter\n"
                  "requests_total{code=\"200\",route=\"/b\",WorkerId=\"w1\",NodeId=\"n1\",JobId=\"01000000\"} 3\n"
                  "requests_total{code=\"200\",route=\"/b\",WorkerId=\"w2\",NodeId=\"n1\",JobId=\"01000000\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE latency histogram\n"
                  "latency_bucket{WorkerId=\"w3\",NodeId=\"n1\",JobId=\"01000000\",le=\"0.1\"} 1\n"
                  "latency_bucket{WorkerId=\"w3\",NodeId=\"n1\",JobId=\"01000000\",le=\"1\"} 3\n"
                  "latency_bucket{WorkerId=\"w3\",NodeId=\"n1\",JobId=\"01000000\",le=\"+Inf\"} 4\n"
                  "latency_sum{WorkerId=\"w3\",NodeId=\"n1\",JobId=\"01000000\"} 7.5\n"
                  "latency_count{WorkerId=\"w3\",NodeId=\"n1\",JobId=\"01000000\"} 4\n") != std::string::npos);
  CHECK(text.find("shoal_app_metrics_reporters{state=\"fresh\"} 3\n") != std::string::npos);
}

TEST_CASE("application metrics: stale, malformed and conflicting reports are left out and counted") {
  const std::string gauge = R"([{"name": "depth", "type": "gauge", "series": [{"tags": {}, "value": 1}]}])";
  const std::string as_counter = R"([{"name": "depth", "type": "counter", "series": [{"tags": {}, "value": 9}]}])";
  MetricsWriter w;
  AppMetricsReport r = WriteApplicationMetrics(
      w,
      {{"fresh", Snapshot("fresh", 999, gauge)},
       {"conflict", Snapshot("conflict", 999, as_counter)},
       {"old", Snapshot("old", 900, gauge)},
       {"ancient", Snapshot("ancient", 100, gauge)},
       {"junk", "not json"},
       {"bad-name", Snapshot("b", 999, R"([{"name": "9lives", "type": "gauge", "series": []}])")},
       {"ours", Snapshot("o", 999, R"([{"name": "shoal_tasks", "type": "gauge", "series": []}])")},
       {"bad-tag", Snapshot("t", 999, R"([{"name": "x", "type": "gauge", "series": [{"tags": {"WorkerId": "z"}, "value": 1}]}])")},
       {"short-buckets", Snapshot("h", 999, R"([{"name": "h", "type": "histogram", "boundaries": [1],
           "series": [{"tags": {}, "buckets": [1], "sum": 1, "count": 1}]}])")}},
      kNow);
  CHECK(r.fresh == 2);
  CHECK(r.conflicting == 1);
  CHECK(r.stale == 2);
  CHECK(r.forget == std::vector<std::string>{"ancient"});
  CHECK(r.malformed == 5);
  const std::string text = w.text();
  INFO(text);
  CHECK(text.find("depth{WorkerId=\"fresh\"") != std::string::npos);
  CHECK(text.find("WorkerId=\"conflict\"") == std::string::npos);
  CHECK(text.find("WorkerId=\"old\"") == std::string::npos);
  CHECK(text.find("9lives") == std::string::npos);
  CHECK(text.find("shoal_app_metrics_conflicting 1\n") != std::string::npos);
}

}  // namespace
}  // namespace shoal::dashboard
