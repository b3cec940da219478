#include "src/gcs_client/state_query.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "src/common/resources.h"
#include "shoal/worker.grpc.pb.h"
#include "src/gcs_client/node_stats.h"

namespace shoal::state {
namespace {

using Json = nlohmann::json;

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

Json Resources(const rpc::ResourceMap& map) {
  Json out = Json::object();
  for (const auto& [name, amount] : ResourceSet::FromProto(map).ToDoubles()) out[name] = amount;
  return out;
}

// Column names by resource: summary columns first, then the detail ones (kSummaryColumns of them
// are the summary).
struct Schema {
  std::vector<std::string> summary;
  std::vector<std::string> detail;
};

const Schema& SchemaOf(Resource resource) {
  static const auto* schemas = new std::map<Resource, Schema>{
      {Resource::kActors,
       {{"actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace"},
        {"death_cause", "is_detached", "num_restarts", "max_restarts", "required_resources", "worker_id",
         "address", "start_time_ms", "end_time_ms"}}},
      {Resource::kTasks,
       {{"task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name",
         "node_id", "worker_id", "error_type"},
        {"creation_time_ms", "start_time_ms", "end_time_ms"}}},
      {Resource::kNodes,
       {{"node_id", "node_ip", "is_head_node", "state", "node_name", "resources_total", "labels"},
        {"resources_available", "start_time_ms", "end_time_ms", "state_message", "raylet_pid"}}},
      {Resource::kJobs,
       {{"job_id", "status", "entrypoint", "start_time", "end_time", "driver_pid"},
        {"driver_address", "namespace", "metadata"}}},
      {Resource::kWorkers,
       {{"worker_id", "is_alive", "worker_type", "node_id", "ip", "pid", "state"},
        {"job_id", "address", "start_time_ms"}}},
      {Resource::kObjects,
       {{"object_id", "object_size", "task_status", "reference_type", "call_site", "type", "pid", "ip"},
        {"node_id", "worker_id", "owned", "owner_address", "local_refs", "submitted_task_refs", "in_store",
         "stored_on_node"}}},
      {Resource::kPlacementGroups,
       {{"placement_group_id", "name", "creator_job_id", "state", "strategy", "is_detached"},
        {"bundles", "ray_namespace", "pending_reason", "infeasible", "create_time_ms", "created_time_ms",
         "remove_time_ms"}}},
  };
  return schemas->at(resource);
}

Json ActorRow(const rpc::ActorInfo& a) {
  return {{"actor_id", Hex(a.actor_id())},
          {"class_name", a.class_name()},
          {"state", rpc::ActorInfo::State_Name(a.state())},
          {"job_id", a.job_id()},
          {"name", a.name()},
          {"node_id", a.node_id()},
          {"pid", a.pid()},
          {"ray_namespace", a.ray_namespace()},
          {"death_cause", a.death_cause()},
          {"is_detached", a.detached()},
          {"num_restarts", a.num_restarts()},
          {"max_restarts", a.max_restarts()},
          {"required_resources", Resources(a.resources())},
          {"worker_id", a.worker_id()},
          {"address", a.worker_address()},
          {"start_time_ms", a.start_time_ms()},
          {"end_time_ms", a.end_time_ms()}};
}

std::string TaskType(const rpc::TaskSummary& t) {
  if (t.actor_id().empty()) return "NORMAL_TASK";
  return absl::EndsWith(t.name(), ".__init__") ? "ACTOR_CREATION_TASK" : "ACTOR_TASK";
}

Json TaskRow(const rpc::TaskSummary& t) {
  return {{"task_id", Hex(t.task_id())},
          {"attempt_number", t.attempt()},
          {"name", t.name()},
          {"state", rpc::TaskEvent::State_Name(t.state())},
          {"job_id", t.job_id()},
          {"actor_id", t.actor_id().empty() ? std::string() : Hex(t.actor_id())},
          {"type", TaskType(t)},
          {"func_or_class_name", t.name()},
          {"node_id", t.node_id()},
          {"worker_id", t.worker_id()},
          {"error_type", t.error_type()},
          {"creation_time_ms", t.submit_time_ms()},
          {"start_time_ms", t.start_time_ms()},
          {"end_time_ms", t.end_time_ms()}};
}

Json NodeRow(const rpc::NodeInfo& n) {
  Json labels = Json::object();
  for (const auto& [k, v] : n.labels()) labels[k] = v;
  return {{"node_id", n.node_id()},
          {"node_ip", n.address()},
          {"is_head_node", n.is_head()},
          {"state", rpc::NodeInfo::State_Name(n.state())},
          {"node_name", n.hostname()},
          {"resources_total", Resources(n.resources_total())},
          {"labels", labels},
          {"resources_available", Resources(n.resources_available())},
          {"start_time_ms", n.start_time_ms()},
          {"end_time_ms", n.death_time_ms()},
          {"state_message", n.death_reason()},
          {"raylet_pid", n.raylet_pid()}};
}

Json JobRow(const rpc::JobInfo& j) {
  Json metadata = Json::object();
  for (const auto& [k, v] : j.metadata()) metadata[k] = v;
  return {{"job_id", j.job_id()},
          {"status", j.is_dead() ? "FINISHED" : "RUNNING"},
          {"entrypoint", j.entrypoint()},
          {"start_time", j.start_time_ms()},
          {"end_time", j.end_time_ms()},
          {"driver_pid", j.driver_pid()},
          {"driver_address", j.driver_address()},
          {"namespace", j.namespace_()},
          {"metadata", metadata}};
}

Json PlacementGroupRow(const rpc::PlacementGroupInfo& pg) {
  Json bundles = Json::array();
  for (const auto& b : pg.bundles()) {
    bundles.push_back({{"bundle_index", b.bundle_index()},
                       {"node_id", b.node_id()},
                       {"unit_resources", Resources(b.resources())}});
  }
  return {{"placement_group_id", Hex(pg.placement_group_id())},
          {"name", pg.name()},
          {"creator_job_id", pg.job_id()},
          {"state", rpc::PlacementGroupInfo::State_Name(pg.state())},
          {"strategy", rpc::PlacementGroupInfo::Strategy_Name(pg.strategy())},
          {"is_detached", pg.detached()},
          {"bundles", bundles},
          {"ray_namespace", pg.ray_namespace()},
          {"pending_reason", pg.pending_reason()},
          {"infeasible", pg.infeasible()},
          {"create_time_ms", pg.create_time_ms()},
          {"created_time_ms", pg.created_time_ms()},
          {"remove_time_ms", pg.remove_time_ms()}};
}

// The workers of every alive node whose raylet answers within the client's timeout; *partial
// when one did not.
absl::StatusOr<std::vector<Json>> WorkerRows(const GcsClient& gcs, bool* partial) {
  absl::StatusOr<std::vector<rpc::NodeInfo>> nodes = gcs.GetAllNodeInfo(/*alive_only=*/true);
  if (!nodes.ok()) return nodes.status();
  ChannelCache channels;
  StubCache<rpc::LeaseService> raylets(channels);
  const std::map<std::string, rpc::GetNodeStatsReply> stats =
      FetchNodeStats(*nodes, gcs.timeout(), raylets, /*include_workers=*/true);
  std::vector<Json> rows;
  for (const rpc::NodeInfo& node : *nodes) {
    auto it = stats.find(node.node_id());
    if (it == stats.end()) {
      *partial = true;
      continue;
    }
    for (const rpc::WorkerSummary& w : it->second.workers()) {
      rows.push_back({{"worker_id", w.worker_id()},
                      {"is_alive", true},
                      {"worker_type", "WORKER"},
                      {"node_id", node.node_id()},
                      {"ip", node.address()},
                      {"pid", w.pid()},
                      {"state", w.state()},
                      {"job_id", w.job_id()},
                      {"address", w.address()},
                      {"start_time_ms", w.start_time_ms()}});
    }
  }
  return rows;
}

// Ray's reference types, the first that applies: a handle in the process, an argument of a
// pending task, else kept for others (an owned value that borrowers or the store still hold).
std::string ReferenceType(const rpc::ObjectRefInfo& r) {
  if (r.local_refs() > 0) return "LOCAL_REFERENCE";
  if (r.submitted_task_refs() > 0) return "USED_BY_PENDING_TASK";
  return "PINNED_IN_MEMORY";
}

// The objects every process of the cluster refers to: the workers of the alive nodes (from
// their raylets) and the drivers of the alive jobs; *partial when a raylet or a live process did
// not answer in time (a process that is gone meanwhile is skipped).
absl::StatusOr<std::vector<Json>> ObjectRows(const GcsClient& gcs, bool* partial) {
  absl::StatusOr<std::vector<rpc::NodeInfo>> nodes = gcs.GetAllNodeInfo(/*alive_only=*/true);
  if (!nodes.ok()) return nodes.status();
  absl::StatusOr<std::vector<rpc::JobInfo>> jobs = gcs.GetAllJobInfo();
  if (!jobs.ok()) return jobs.status();
  ChannelCache channels;
  StubCache<rpc::LeaseService> raylets(channels);
  StubCache<rpc::CoreWorkerService> processes(channels);
  const std::map<std::string, rpc::GetNodeStatsReply> stats =
      FetchNodeStats(*nodes, gcs.timeout(), raylets, /*include_workers=*/true);
  std::vector<std::string> addresses;
  for (const rpc::NodeInfo& node : *nodes) {
    auto it = stats.find(node.node_id());
    if (it == stats.end()) {
      *partial = true;
      continue;
    }
    for (const rpc::WorkerSummary& w : it->second.workers()) {
      if (!w.address().empty()) addresses.push_back(w.address());
    }
  }
  for (const rpc::JobInfo& job : *jobs) {
    if (!job.is_dead() && !job.driver_address().empty()) addresses.push_back(job.driver_address());
  }
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  std::vector<Json> rows;
  for (const std::string& address : addresses) {
    rpc::ListObjectRefsReply reply;
    absl::Status s = UnaryCall(*processes.Get(address), &rpc::CoreWorkerService::Stub::ListObjectRefs,
                               rpc::ListObjectRefsRequest(), &reply, {.timeout = gcs.timeout()});
    if (!s.ok()) {
      if (absl::IsDeadlineExceeded(s)) *partial = true;  // alive but slow; gone (Unavailable) is fine
      continue;
    }
    for (const rpc::ObjectRefInfo& r : reply.refs()) {
      const bool owned = r.owner_address().empty();
      std::string status = "NIL";  // a borrowed value: its task's state is its owner's to know
      if (owned) status = !r.ready() ? "PENDING" : r.is_error() ? "FAILED" : "FINISHED";
      rows.push_back({{"object_id", Hex(r.object_id())},
                      {"object_size", r.size()},
                      {"task_status", status},
                      {"reference_type", ReferenceType(r)},
                      {"call_site", "disabled"},
                      {"type", reply.is_driver() ? "DRIVER" : "WORKER"},
                      {"pid", reply.pid()},
                      {"ip", reply.ip()},
                      {"node_id", reply.node_id()},
                      {"worker_id", reply.worker_id()},
                      {"owned", owned},
                      {"owner_address", owned ? address : r.owner_address()},
                      {"local_refs", r.local_refs()},
                      {"submitted_task_refs", r.submitted_task_refs()},
                      {"in_store", r.in_store()},
                      {"stored_on_node", r.stored_on_node()}});
    }
  }
  return rows;
}

// Every row the GCS answers for `resource` (at most kMaxLimit), every column.
absl::StatusOr<std::vector<Json>> FetchRows(const GcsClient& gcs, Resource resource, bool* partial) {
  std::vector<Json> rows;
  *partial = false;
  switch (resource) {
    case Resource::kActors: {
      absl::StatusOr<rpc::ListActorsReply> reply = gcs.ListActors(kMaxLimit);
      if (!reply.ok()) return reply.status();
      for (const auto& a : reply->actors()) rows.push_back(ActorRow(a));
      *partial = reply->total() > reply->actors_size();
      break;
    }
    case Resource::kTasks: {
      absl::StatusOr<rpc::ListTasksReply> reply = gcs.ListTasks(kMaxLimit);
      if (!reply.ok()) return reply.status();
      for (const auto& t : reply->tasks()) rows.push_back(TaskRow(t));
      *partial = reply->num_tracked() > reply->tasks_size();
      break;
    }
    case Resource::kNodes: {
      absl::StatusOr<std::vector<rpc::NodeInfo>> nodes = gcs.GetAllNodeInfo(/*alive_only=*/false);
      if (!nodes.ok()) return nodes.status();
      for (const auto& n : *nodes) rows.push_back(NodeRow(n));
      break;
    }
    case Resource::kJobs: {
      absl::StatusOr<std::vector<rpc::JobInfo>> jobs = gcs.GetAllJobInfo();
      if (!jobs.ok()) return jobs.status();
      for (const auto& j : *jobs) rows.push_back(JobRow(j));
      break;
    }
    case Resource::kWorkers:
      return WorkerRows(gcs, partial);
    case Resource::kObjects:
      return ObjectRows(gcs, partial);
    case Resource::kPlacementGroups: {
      absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> groups = gcs.GetAllPlacementGroups(kMaxLimit);
      if (!groups.ok()) return groups.status();
      for (const auto& pg : *groups) rows.push_back(PlacementGroupRow(pg));
      *partial = static_cast<int64_t>(groups->size()) >= kMaxLimit;
      break;
    }
  }
  return rows;
}

// A cell as filters compare it: strings as they are, everything else as JSON text.
std::string CellText(const Json& cell) { return cell.is_string() ? cell.get<std::string>() : cell.dump(); }

bool Matches(const Json& row, const std::vector<Filter>& filters) {
  for (const Filter& f : filters) {
    const bool equal = absl::EqualsIgnoreCase(CellText(row.at(f.key)), f.value);
    if (equal != f.equal) return false;
  }
  return true;
}

Json KeepColumns(const Json& row, const std::vector<std::string>& columns) {
  Json out = Json::object();
  for (const auto& c : columns) out[c] = row.at(c);
  return out;
}

std::string IdColumn(Resource resource) {
  switch (resource) {
    case Resource::kActors: return "actor_id";
    case Resource::kTasks: return "task_id";
    case Resource::kNodes: return "node_id";
    case Resource::kJobs: return "job_id";
    case Resource::kPlacementGroups: return "placement_group_id";
    case Resource::kWorkers: return "worker_id";
    case Resource::kObjects: return "object_id";
  }
  return "";
}

}  // namespace

absl::StatusOr<Resource> ParseResource(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "actors") return Resource::kActors;
  if (n == "tasks") return Resource::kTasks;
  if (n == "nodes") return Resource::kNodes;
  if (n == "jobs") return Resource::kJobs;
  if (n == "placement-groups" || n == "placement_groups") return Resource::kPlacementGroups;
  if (n == "workers") return Resource::kWorkers;
  if (n == "objects") return Resource::kObjects;
  if (n == "runtime-envs" || n == "runtime_envs" || n == "cluster-events") {
    return absl::UnimplementedError(absl::StrCat(
        "listing ", n, " is not supported by Shoal yet (supported: actors, tasks, nodes, jobs, placement-groups, "
        "workers, objects)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown state resource '", name,
                                                 "' (supported: actors, tasks, nodes, jobs, placement-groups, "
                                                 "workers, objects)"));
}

std::string ResourceName(Resource resource) {
  switch (resource) {
    case Resource::kActors: return "actors";
    case Resource::kTasks: return "tasks";
    case Resource::kNodes: return "nodes";
    case Resource::kJobs: return "jobs";
    case Resource::kPlacementGroups: return "placement_groups";
    case Resource::kWorkers: return "workers";
    case Resource::kObjects: return "objects";
  }
  return "";
}

absl::StatusOr<Filter> MakeFilter(std::string key, absl::string_view predicate, std::string value) {
  Filter f;
  f.key = std::string(absl::StripAsciiWhitespace(key));
  f.value = std::string(absl::StripAsciiWhitespace(value));
  if (predicate == "=" || predicate == "==") {
    f.equal = true;
  } else if (predicate == "!=") {
    f.equal = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported filter predicate '", predicate, "' for '", f.key, "' (supported: =, !=)"));
  }
  if (f.key.empty()) return absl::InvalidArgumentError("a filter needs a key: key=value or key!=value");
  return f;
}

absl::StatusOr<Filter> ParseFilter(absl::string_view text) {
  const size_t ne = text.find("!=");
  if (ne != absl::string_view::npos) {
    return MakeFilter(std::string(text.substr(0, ne)), "!=", std::string(text.substr(ne + 2)));
  }
  const size_t eq = text.find('=');
  if (eq == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad filter '", text, "': expected key=value or key!=value"));
  }
  return MakeFilter(std::string(text.substr(0, eq)), "=", std::string(text.substr(eq + 1)));
}

std::vector<std::string> Columns(Resource resource, bool detail) {
  const Schema& schema = SchemaOf(resource);
  std::vector<std::string> columns = schema.summary;
  if (detail) columns.insert(columns.end(), schema.detail.begin(), schema.detail.end());
  return columns;
}

absl::StatusOr<ListResult> List(const GcsClient& gcs, Resource resource, const ListOptions& options) {
  if (options.limit < 1 || options.limit > kMaxLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("limit must be between 1 and ", kMaxLimit, ", got ", options.limit));
  }
  const std::vector<std::string> every = Columns(resource, /*detail=*/true);
  for (const Filter& f : options.filters) {
    if (std::find(every.begin(), every.end(), f.key) == every.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown filter key '", f.key, "' for ", ResourceName(resource),
                                                     " (supported: ", absl::StrJoin(every, ", "), ")"));
    }
  }
  ListResult result;
  absl::StatusOr<std::vector<Json>> rows = FetchRows(gcs, resource, &result.partial);
  if (!rows.ok()) return rows.status();
  const std::vector<std::string> columns = Columns(resource, options.detail);
  for (const Json& row : *rows) {
    if (!Matches(row, options.filters)) continue;
    ++result.total;
    if (static_cast<int64_t>(result.rows.size()) < options.limit) result.rows.push_back(KeepColumns(row, columns));
  }
  return result;
}

absl::StatusOr<Json> Get(const GcsClient& gcs, Resource resource, absl::string_view id) {
  const std::string want = absl::AsciiStrToLower(id);
  if (want.size() < 8) {
    return absl::InvalidArgumentError(absl::StrCat("give an id of at least 8 hex characters, got '", id, "'"));
  }
  bool partial = false;
  absl::StatusOr<std::vector<Json>> rows = FetchRows(gcs, resource, &partial);
  if (!rows.ok()) return rows.status();
  const std::string column = IdColumn(resource);
  std::vector<const Json*> found;
  for (const Json& row : *rows) {
    if (absl::StartsWith(row.at(column).get<std::string>(), want)) found.push_back(&row);
  }
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no ", ResourceName(resource), " entry with id ", id));
  }
  if (resource == Resource::kObjects &&
      std::all_of(found.begin(), found.end(), [&](const Json* r) { return r->at(column) == found[0]->at(column); })) {
    Json all = Json::array();
    for (const Json* r : found) all.push_back(*r);
    return all;
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the id prefix ", id, " matches ", found.size(), " ", ResourceName(resource), "; give more of it"));
  }
  return *found.front();
}

namespace {

// Ray's summarize_objects: by call site (always "disabled" here), counts, sizes, workers, nodes,
// task states and reference types.
Json SummarizeObjects(const std::vector<Json>& rows, bool partial) {
  std::set<std::string> objects, workers, nodes;
  int64_t bytes = 0;
  Json task_states = Json::object(), ref_types = Json::object();
  std::set<std::string> sized;
  for (const Json& row : rows) {
    const std::string id = row.at("object_id").get<std::string>();
    objects.insert(id);
    workers.insert(row.at("worker_id").get<std::string>());
    nodes.insert(row.at("node_id").get<std::string>());
    if (row.at("object_size").get<int64_t>() > 0 && sized.insert(id).second) bytes += row.at("object_size").get<int64_t>();
    for (auto [counts, key] : {std::pair<Json*, const char*>{&task_states, "task_status"}, {&ref_types, "reference_type"}}) {
      Json& n = (*counts)[row.at(key).get<std::string>()];
      n = n.is_null() ? 1 : n.get<int64_t>() + 1;
    }
  }
  const double mb = static_cast<double>(bytes) / (1 << 20);
  Json site = {{"total_objects", objects.size()},
               {"total_size_mb", mb},
               {"total_num_workers", workers.size()},
               {"total_num_nodes", nodes.size()},
               {"task_state_counts", task_states},
               {"ref_type_counts", ref_types}};
  return Json{{"summary", rows.empty() ? Json::object() : Json{{"disabled", site}}},
              {"total", objects.size()},
              {"total_objects", objects.size()},
              {"total_size_mb", mb},
              {"callsite_enabled", false},
              {"summary_by", "callsite"},
              {"partial", partial}};
}

}  // namespace

absl::StatusOr<Json> Summarize(const GcsClient& gcs, Resource resource) {
  if (resource == Resource::kObjects) {
    bool partial = false;
    absl::StatusOr<std::vector<Json>> rows = FetchRows(gcs, resource, &partial);
    if (!rows.ok()) return rows.status();
    return SummarizeObjects(*rows, partial);
  }
  if (resource != Resource::kTasks && resource != Resource::kActors) {
    return absl::InvalidArgumentError(
        absl::StrCat("summaries cover tasks, actors and objects, not ", ResourceName(resource)));
  }
  bool partial = false;
  absl::StatusOr<std::vector<Json>> rows = FetchRows(gcs, resource, &partial);
  if (!rows.ok()) return rows.status();
  Json summary = Json::object();
  const bool tasks = resource == Resource::kTasks;
  for (const Json& row : *rows) {
    const std::string key = row.at(tasks ? "func_or_class_name" : "class_name").get<std::string>();
    Json& entry = summary[key];
    if (entry.is_null()) {
      entry = tasks ? Json{{"func_or_class_name", key}, {"type", row.at("type")}, {"state_counts", Json::object()}}
                    : Json{{"class_name", key}, {"state_counts", Json::object()}};
    }
    const std::string state = row.at("state").get<std::string>();
    Json& count = entry["state_counts"][state];
    count = count.is_null() ? 1 : count.get<int64_t>() + 1;
  }
  return Json{{"summary", summary}, {"total", rows->size()}, {"partial", partial}};
}

absl::StatusOr<Json> Timeline(const GcsClient& gcs) {
  absl::StatusOr<rpc::ListTasksReply> reply = gcs.ListTasks(kMaxLimit);
  if (!reply.ok()) return reply.status();
  Json events = Json::array();
  for (const auto& t : reply->tasks()) {
    if (t.start_time_ms() <= 0 || t.end_time_ms() < t.start_time_ms()) continue;  // never ran, or still running
    if (t.state() != rpc::TaskEvent::FINISHED && t.state() != rpc::TaskEvent::FAILED) continue;
    events.push_back({{"name", t.name()},
                      {"cat", TaskType(t)},
                      {"ph", "X"},
                      {"ts", t.start_time_ms() * 1000},
                      {"dur", (t.end_time_ms() - t.start_time_ms()) * 1000},
                      {"pid", absl::StrCat("Node ", t.node_id())},
                      {"tid", absl::StrCat("Worker ", t.worker_id())},
                      {"args",
                       {{"task_id", Hex(t.task_id())},
                        {"job_id", t.job_id()},
                        {"attempt", t.attempt()},
                        {"state", rpc::TaskEvent::State_Name(t.state())}}}});
  }
  return events;
}

}  // namespace shoal::state
