// The state API (Ray's `ray list` / `ray.util.state`): what the GCS knows of the cluster's
// actors, tasks, nodes, jobs and placement groups, as rows of named columns, with filters, a
// limit and a detail level; summaries of tasks and actors; and a Chrome trace of recent tasks.
// Shared by the CLI (`shoal list`, `shoal summary`, `shoal get`, `shoal timeline`), the Python
// module (shoal.util.state, shoal.timeline) and the dashboard.
//
//   GcsClient gcs({.address = "127.0.0.1:6379"});
//   auto filter = state::ParseFilter("state=ALIVE");
//   auto listed = state::List(gcs, state::Resource::kActors, {.filters = {*filter}, .limit = 10});
//   for (const auto& row : listed->rows) std::cout << row["actor_id"] << "\n";
//
// Rows are JSON objects with Ray's column names (actor_id, class_name, state, ...); ids are hex.
// A filter names a column of the resource (detail columns included) and compares its value as
// text, case-insensitively: `key=value` or `key!=value`. Unknown resources, unknown filter keys,
// bad operators and limits outside 1..kMaxLimit are InvalidArgument naming what is allowed.
// Workers come from the raylets of the alive nodes the GCS lists (GetNodeStats with their
// workers; a raylet that does not answer in the client's timeout is left out and the list marked
// partial). Objects come from the processes that refer to them: every worker the raylets list and
// every alive job's driver answers its references (ListObjectRefs), a row per (process, object);
// a process that does not answer in time marks the list partial, one that is gone is skipped.
// Threading: any thread; each call makes its own GCS calls (blocking, with the client's timeout).
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/gcs_client/gcs_client.h"

namespace shoal::state {

enum class Resource { kActors, kTasks, kNodes, kJobs, kPlacementGroups, kWorkers, kObjects };

inline constexpr int kDefaultLimit = 100;   // Ray's default
inline constexpr int kMaxLimit = 10000;     // the most the GCS answers in one list

// "actors", "tasks", "nodes", "jobs", "placement-groups" (also "placement_groups"), "workers",
// "objects"; runtime-envs and cluster-events are Unimplemented; anything else InvalidArgument
// listing the names.
absl::StatusOr<Resource> ParseResource(absl::string_view name);
std::string ResourceName(Resource resource);  // "placement_groups" etc.

struct Filter {
  std::string key;
  bool equal = true;  // "=" (true) or "!="
  std::string value;
};
// "key=value" or "key!=value" (spaces around the parts are trimmed).
absl::StatusOr<Filter> ParseFilter(absl::string_view text);
// From Ray's triple form: ("state", "=", "ALIVE"); the predicate is "=" or "!=".
absl::StatusOr<Filter> MakeFilter(std::string key, absl::string_view predicate, std::string value);

struct ListOptions {
  std::vector<Filter> filters;
  int64_t limit = kDefaultLimit;
  bool detail = false;  // every column; else the summary columns only
};

struct ListResult {
  std::vector<nlohmann::json> rows;  // at most `limit`, in the GCS's order
  int64_t total = 0;                 // rows that matched the filters, before the limit
  // The GCS held more entries than one list answers (kMaxLimit): rows past those were not seen.
  bool partial = false;
};

// The columns of a resource: the summary ones, then the detail ones.
std::vector<std::string> Columns(Resource resource, bool detail);

absl::StatusOr<ListResult> List(const GcsClient& gcs, Resource resource, const ListOptions& options);

// One entry by id (hex; a unique prefix of at least 8 characters is enough), every column.
// NotFound when none matches; InvalidArgument when a prefix matches several. Objects: an array
// of the rows of the one object matched (a row per process that refers to it).
absl::StatusOr<nlohmann::json> Get(const GcsClient& gcs, Resource resource, absl::string_view id);

// Ray's summaries: tasks grouped by function (or Class.method) with their counts by state;
// actors grouped by class with their counts by state; objects grouped by call site (always
// "disabled": Shoal does not record where refs are made) with their counts, sizes, reference
// types and task states, as Ray's summarize_objects. Other resources are InvalidArgument.
//   {"summary": {"f": {"func_or_class_name": "f", "type": "NORMAL_TASK",
//                      "state_counts": {"FINISHED": 3}}}, "total": 3}
absl::StatusOr<nlohmann::json> Summarize(const GcsClient& gcs, Resource resource);

// The recent tasks the GCS knows that ran (their start, reported by the worker, and their end,
// reported by the owner, have both arrived) as a Chrome trace (the JSON
// array of "X" events chrome://tracing and Perfetto load): one event per task, on a row per
// worker ("tid") grouped by node ("pid"), with the task id, job, attempt and end state as args.
absl::StatusOr<nlohmann::json> Timeline(const GcsClient& gcs);

}  // namespace shoal::state
