// The state commands, over src/gcs_client/state_query.h (Ray's `ray list`, `ray get`,
// `ray summary`, `ray timeline`):
//
//   shoal list actors --filter state=ALIVE --filter class_name=Counter --limit 10 --detail --format json
//   shoal get actors 3f2a9c01...        shoal summary tasks        shoal timeline --output trace.json
//
// A bad resource, filter key or limit is a usage error (exit 2) naming what is allowed.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/cli/commands.h"
#include "src/common/session.h"
#include "src/gcs_client/node_stats.h"
#include "src/gcs_client/state_query.h"

namespace shoal::cli {
namespace {

using Json = nlohmann::json;

constexpr absl::Duration kStateTimeout = absl::Seconds(30);

constexpr char kListHelp[] = R"(
Lists what the cluster knows: shoal list actors|tasks|nodes|jobs|placement-groups|workers|objects
(workers from the raylets of the alive nodes; objects from every worker and driver that refers to
them, a row per process and object).
  --filter KEY=VALUE or KEY!=VALUE   keeps rows whose column matches (text, any case); repeat to
                                     combine. Keys: the resource's columns (see --detail).
  --limit N                          at most N rows (1..10000; default 100)
  --detail                           every column, not only the summary ones
  --format table|json|yaml
)";

constexpr char kGetHelp[] = R"(
Shows one entry with every column: shoal get actors|tasks|nodes|jobs|placement-groups|workers|objects ID
(a unique prefix of the id, at least 8 characters, is enough; an object shows a row per process
that refers to it).
)";

constexpr char kSummaryHelp[] = R"(
Counts tasks by function (or Class.method) and state, actors by class and state, or objects
(counts, total size, workers, nodes, task states and reference types): shoal summary
tasks|actors|objects.
)";

constexpr char kMemoryHelp[] = R"(
Shows the objects every worker and driver refers to, grouped by node (Ray's `ray memory`): size,
reference type (LOCAL_REFERENCE, USED_BY_PENDING_TASK, PINNED_IN_MEMORY), the task's status, the
process; then each node's object store (used, capacity, spilled).
  --sort-by PID|OBJECT_SIZE|REFERENCE_TYPE   (default PID)
  --units B|KB|MB|GB                          sizes in these units (default B)
  --num-entries N                             at most N objects per node
  --stats-only                                only the object stores' figures
Call sites are not recorded (Ray's --group-by STACK_TRACE is refused).
)";

constexpr char kTimelineHelp[] = R"(
Writes the recent tasks the GCS knows that ran as a Chrome trace (JSON) that chrome://tracing and
https://ui.perfetto.dev load: one event per task, a row per worker, grouped by node.
)";

std::string Cell(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void PrintTable(const std::vector<Json>& rows, const std::vector<std::string>& columns) {
  std::vector<size_t> width;
  for (const auto& c : columns) width.push_back(c.size());
  std::vector<std::vector<std::string>> cells;
  for (const Json& row : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); ++i) {
      line.push_back(Cell(row.at(columns[i])));
      width[i] = std::max(width[i], line.back().size());
    }
    cells.push_back(std::move(line));
  }
  auto print = [&](const std::vector<std::string>& line) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      absl::StrAppend(&out, line[i], i + 1 < line.size() ? std::string(width[i] - line[i].size() + 2, ' ') : "");
    }
    std::cout << out << "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(absl::AsciiStrToUpper(c));
  print(header);
  for (const auto& line : cells) print(line);
}

// YAML for JSON values: mappings and sequences in block style, scalars as JSON (valid YAML).
void Yaml(const Json& value, int indent, std::ostream& out) {
  const std::string pad(indent, ' ');
  if (value.is_object()) {
    if (value.empty()) {
      out << " {}\n";
      return;
    }
    out << "\n";
    for (const auto& [key, item] : value.items()) {
      out << pad << Json(key).dump() << ":";
      Yaml(item, indent + 2, out);
    }
  } else if (value.is_array()) {
    if (value.empty()) {
      out << " []\n";
      return;
    }
    out << "\n";
    for (const auto& item : value) {
      out << pad << "-";
      Yaml(item, indent + 2, out);
    }
  } else {
    out << " " << value.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
}

std::string ToYaml(const Json& value) {
  std::ostringstream out;
  out << "---";
  Yaml(value, 0, out);
  return out.str();
}

absl::Status CheckFormat(const std::string& format, bool table_allowed) {
  if (format == "json" || format == "yaml" || (table_allowed && format == "table")) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--format must be ", table_allowed ? "table, " : "", "json or yaml, got '",
                                                 format, "'"));
}

void PrintDocument(const Json& value, const std::string& format) {
  if (format == "yaml") {
    std::cout << ToYaml(value);
  } else {
    std::cout << value.dump(2, ' ', false, Json::error_handler_t::replace) << std::endl;
  }
}

// A usage error for bad input, a failure for the cluster's own errors.
int Report(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsUnimplemented(status) ? UsageError(status) : Fail(status);
}

// The resource named by the first positional argument.
absl::StatusOr<state::Resource> ResourceArgument(const FlagSet& flags, const char* command, size_t expected) {
  if (flags.positional().size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("shoal ", command, " takes ", expected == 1 ? "a resource" : "a resource and an id",
                                                   " (see shoal ", command, " --help)"));
  }
  return state::ParseResource(flags.positional()[0]);
}

}  // namespace

int RunList(int argc, char** argv) {
  std::string address, format = "table";
  std::vector<std::string> filter_texts;
  int64_t limit = state::kDefaultLimit;
  bool detail = false;
  FlagSet flags("shoal list");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddStringList("filter", &filter_texts, "KEY=VALUE or KEY!=VALUE");
  flags.AddInt("limit", &limit, "at most this many rows (1..10000)");
  flags.AddBool("detail", &detail, "every column");
  flags.AddString("format", &format, "table, json or yaml");
  absl::Status parsed = flags.Parse(argc, argv, /*first=*/2);
  if (absl::IsCancelled(parsed)) {
    std::cout << flags.Usage() << kListHelp;
    return kExitOk;
  }
  if (!parsed.ok()) return UsageError(parsed);
  absl::StatusOr<state::Resource> resource = ResourceArgument(flags, "list", 1);
  if (!resource.ok()) return Report(resource.status());
  if (absl::Status s = CheckFormat(format, true); !s.ok()) return UsageError(s);
  state::ListOptions options;
  options.limit = limit;
  options.detail = detail;
  for (const auto& text : filter_texts) {
    absl::StatusOr<state::Filter> f = state::ParseFilter(text);
    if (!f.ok()) return UsageError(f.status());
    options.filters.push_back(*f);
  }
  absl::StatusOr<std::string> gcs_address = ConnectToCluster(flags, address);
  if (!gcs_address.ok()) return Report(gcs_address.status());
  GcsClient gcs({.address = *gcs_address, .timeout = kStateTimeout});
  absl::StatusOr<state::ListResult> listed = state::List(gcs, *resource, options);
  if (!listed.ok()) return Report(listed.status());
  if (format == "table") {
    std::cout << "Total: " << listed->total << (listed->partial ? " (the GCS held more than it lists)" : "")
              << (listed->total > static_cast<int64_t>(listed->rows.size())
                      ? absl::StrCat("; showing ", listed->rows.size(), " (--limit)")
                      : "")
              << "\n\n";
    PrintTable(listed->rows, state::Columns(*resource, detail));
  } else {
    PrintDocument(Json(listed->rows), format);
  }
  return kExitOk;
}

int RunGet(int argc, char** argv) {
  std::string address, format = "yaml";
  FlagSet flags("shoal get");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddString("format", &format, "json or yaml");
  absl::Status parsed = flags.Parse(argc, argv, /*first=*/2);
  if (absl::IsCancelled(parsed)) {
    std::cout << flags.Usage() << kGetHelp;
    return kExitOk;
  }
  if (!parsed.ok()) return UsageError(parsed);
  absl::StatusOr<state::Resource> resource = ResourceArgument(flags, "get", 2);
  if (!resource.ok()) return Report(resource.status());
  if (absl::Status s = CheckFormat(format, false); !s.ok()) return UsageError(s);
  absl::StatusOr<std::string> gcs_address = ConnectToCluster(flags, address);
  if (!gcs_address.ok()) return Report(gcs_address.status());
  GcsClient gcs({.address = *gcs_address, .timeout = kStateTimeout});
  absl::StatusOr<Json> entry = state::Get(gcs, *resource, flags.positional()[1]);
  if (!entry.ok()) return Report(entry.status());
  PrintDocument(*entry, format);
  return kExitOk;
}

int RunSummary(int argc, char** argv) {
  std::string address, format = "table";
  FlagSet flags("shoal summary");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddString("format", &format, "table, json or yaml");
  absl::Status parsed = flags.Parse(argc, argv, /*first=*/2);
  if (absl::IsCancelled(parsed)) {
    std::cout << flags.Usage() << kSummaryHelp;
    return kExitOk;
  }
  if (!parsed.ok()) return UsageError(parsed);
  absl::StatusOr<state::Resource> resource = ResourceArgument(flags, "summary", 1);
  if (!resource.ok()) return Report(resource.status());
  if (absl::Status s = CheckFormat(format, true); !s.ok()) return UsageError(s);
  absl::StatusOr<std::string> gcs_address = ConnectToCluster(flags, address);
  if (!gcs_address.ok()) return Report(gcs_address.status());
  GcsClient gcs({.address = *gcs_address, .timeout = kStateTimeout});
  absl::StatusOr<Json> summary = state::Summarize(gcs, *resource);
  if (!summary.ok()) return Report(summary.status());
  if (format != "table") {
    PrintDocument(*summary, format);
    return kExitOk;
  }
  if (*resource == state::Resource::kObjects) {
    std::cout << "Total: " << (*summary)["total_objects"] << " objects, " << (*summary)["total_size_mb"].get<double>()
              << " MiB\n\n";
    std::vector<Json> rows;
    for (const auto& [site, entry] : (*summary)["summary"].items()) {
      Json row = entry;
      row["call_site"] = site;
      for (const char* counts : {"task_state_counts", "ref_type_counts"}) {
        std::vector<std::string> parts;
        for (const auto& [name, n] : entry[counts].items()) parts.push_back(absl::StrCat(name, ": ", n.get<int64_t>()));
        row[counts] = absl::StrJoin(parts, ", ");
      }
      rows.push_back(row);
    }
    PrintTable(rows, {"call_site", "total_objects", "total_size_mb", "total_num_workers", "total_num_nodes",
                      "task_state_counts", "ref_type_counts"});
    return kExitOk;
  }
  const bool tasks = *resource == state::Resource::kTasks;
  std::cout << "Total: " << (*summary)["total"] << "\n\n";
  std::vector<Json> rows;
  for (const auto& [name, entry] : (*summary)["summary"].items()) {
    std::vector<std::string> counts;
    for (const auto& [state_name, count] : entry["state_counts"].items()) {
      counts.push_back(absl::StrCat(state_name, ": ", count.get<int64_t>()));
    }
    Json row = {{tasks ? "func_or_class_name" : "class_name", name}, {"state_counts", absl::StrJoin(counts, ", ")}};
    if (tasks) row["type"] = entry["type"];
    rows.push_back(row);
  }
  PrintTable(rows, tasks ? std::vector<std::string>{"func_or_class_name", "type", "state_counts"}
                         : std::vector<std::string>{"class_name", "state_counts"});
  return kExitOk;
}

int RunMemory(int argc, char** argv) {
  std::string address, sort_by = "PID", units = "B", group_by = "NODE_ADDRESS";
  int64_t num_entries = -1;
  bool stats_only = false;
  FlagSet flags("shoal memory");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddString("sort-by", &sort_by, "PID, OBJECT_SIZE or REFERENCE_TYPE");
  flags.AddString("units", &units, "B, KB, MB or GB");
  flags.AddString("group-by", &group_by, "NODE_ADDRESS (STACK_TRACE is not supported: call sites are not recorded)");
  flags.AddInt("num-entries", &num_entries, "at most this many objects per node (default: all)");
  flags.AddBool("stats-only", &stats_only, "only the object stores' figures");
  if (std::optional<int> done = ParseCommandFlags(flags, argc, argv, kMemoryHelp)) return *done;
  sort_by = absl::AsciiStrToUpper(sort_by);
  units = absl::AsciiStrToUpper(units);
  if (sort_by != "PID" && sort_by != "OBJECT_SIZE" && sort_by != "REFERENCE_TYPE") {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--sort-by must be PID, OBJECT_SIZE or REFERENCE_TYPE, got '", sort_by, "'")));
  }
  const std::map<std::string, double> unit_bytes = {{"B", 1}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}};
  if (!unit_bytes.contains(units)) {
    return UsageError(absl::InvalidArgumentError(absl::StrCat("--units must be B, KB, MB or GB, got '", units, "'")));
  }
  if (absl::AsciiStrToUpper(group_by) != "NODE_ADDRESS") {
    return UsageError(absl::InvalidArgumentError(absl::StrCat(
        "--group-by ", group_by, " is not supported: Shoal does not record call sites (use NODE_ADDRESS)")));
  }
  absl::StatusOr<std::string> gcs_address = ConnectToCluster(flags, address);
  if (!gcs_address.ok()) return Report(gcs_address.status());
  GcsClient gcs({.address = *gcs_address, .timeout = kStateTimeout});
  absl::StatusOr<std::vector<rpc::NodeInfo>> nodes = gcs.GetAllNodeInfo(/*alive_only=*/true);
  if (!nodes.ok()) return Report(nodes.status());
  ChannelCache channels;
  StubCache<rpc::LeaseService> raylets(channels);
  const std::map<std::string, rpc::GetNodeStatsReply> stats = FetchNodeStats(*nodes, kStateTimeout, raylets);
  const double unit = unit_bytes.at(units);
  auto size_text = [&](int64_t bytes) {
    if (bytes < 0) return std::string("?");
    return unit == 1 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.2f %s", bytes / unit, units);
  };
  if (!stats_only) {
    state::ListOptions options;
    options.limit = state::kMaxLimit;
    options.detail = true;
    absl::StatusOr<state::ListResult> listed = state::List(gcs, state::Resource::kObjects, options);
    if (!listed.ok()) return Report(listed.status());
    std::map<std::string, std::vector<Json>> by_node;
    for (Json& row : listed->rows) {
      row["size"] = size_text(row["object_size"].get<int64_t>());
      row["status"] = row["task_status"];
      by_node[row["node_id"].get<std::string>()].push_back(std::move(row));
    }
    for (auto& [node_id, rows] : by_node) {
      std::stable_sort(rows.begin(), rows.end(), [&](const Json& a, const Json& b) {
        if (sort_by == "OBJECT_SIZE") return a["object_size"].get<int64_t>() > b["object_size"].get<int64_t>();
        if (sort_by == "REFERENCE_TYPE") return a["reference_type"].get<std::string>() < b["reference_type"].get<std::string>();
        return a["pid"].get<int64_t>() < b["pid"].get<int64_t>();
      });
      if (num_entries >= 0 && static_cast<int64_t>(rows.size()) > num_entries) rows.resize(num_entries);
      std::string ip = rows.empty() ? "" : rows.front()["ip"].get<std::string>();
      std::cout << "--- Objects on node " << ip << " (" << node_id << ") ---\n";
      PrintTable(rows, {"ip", "pid", "type", "call_site", "status", "size", "reference_type", "object_id"});
      std::cout << "\n";
    }
    if (listed->partial) std::cout << "(some processes or raylets did not answer in time: rows are missing)\n\n";
  }
  int64_t used = 0, capacity = 0, num_objects = 0, spilled = 0, num_spilled = 0;
  for (const auto& [node_id, s] : stats) {
    used += s.store_used_bytes();
    capacity += s.store_capacity_bytes();
    num_objects += s.store_num_objects();
    spilled += s.store_spilled_bytes();
    num_spilled += s.store_num_spilled();
  }
  std::cout << "--- Aggregate object store stats across all nodes ---\n"
            << "Object store memory used: " << size_text(used) << " of " << size_text(capacity) << " ("
            << (capacity > 0 ? absl::StrFormat("%.1f", 100.0 * used / capacity) : "0") << "% full), " << num_objects
            << " objects\n"
            << "Spilled to disk: " << size_text(spilled) << ", " << num_spilled << " objects\n";
  if (stats.size() < nodes->size()) std::cout << (nodes->size() - stats.size()) << " node(s) did not answer\n";
  return kExitOk;
}

int RunTimeline(int argc, char** argv) {
  std::string address, output;
  FlagSet flags("shoal timeline");
  flags.AddString("address", &address, "GCS address HOST:PORT (env SHOAL_ADDRESS; default: the cluster started here)");
  flags.AddString("output", &output, "the trace file (default: <shoal temp dir>/shoal-timeline-<time>.json)");
  if (std::optional<int> done = ParseCommandFlags(flags, argc, argv, kTimelineHelp)) return *done;
  absl::StatusOr<std::string> gcs_address = ConnectToCluster(flags, address);
  if (!gcs_address.ok()) return Report(gcs_address.status());
  GcsClient gcs({.address = *gcs_address, .timeout = kStateTimeout});
  absl::StatusOr<Json> trace = state::Timeline(gcs);
  if (!trace.ok()) return Report(trace.status());
  if (output.empty()) {
    output = absl::StrCat(ShoalTempRoot(), "/shoal-timeline-",
                          absl::FormatTime("%Y-%m-%d_%H-%M-%S", absl::Now(), absl::LocalTimeZone()), ".json");
  }
  std::ofstream file(output);
  file << trace->dump(-1, ' ', false, Json::error_handler_t::replace);
  file.close();
  if (!file) return Fail(absl::InternalError(absl::StrCat("cannot write the trace to ", output)));
  std::cout << "Trace of " << trace->size() << " tasks written to " << output
            << "\nOpen it in chrome://tracing or https://ui.perfetto.dev" << std::endl;
  return kExitOk;
}

}  // namespace shoal::cli
