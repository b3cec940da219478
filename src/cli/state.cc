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
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "src/cli/commands.h"
#include "src/common/session.h"
#include "src/gcs_client/state_query.h"

namespace shoal::cli {
namespace {

using Json = nlohmann::json;

constexpr absl::Duration kStateTimeout = absl::Seconds(30);

constexpr char kListHelp[] = R"(
Lists what the cluster knows: shoal list actors|tasks|nodes|jobs|placement-groups|workers
(workers from the raylets of the alive nodes).
  --filter KEY=VALUE or KEY!=VALUE   keeps rows whose column matches (text, any case); repeat to
                                     combine. Keys: the resource's columns (see --detail).
  --limit N                          at most N rows (1..10000; default 100)
  --detail                           every column, not only the summary ones
  --format table|json|yaml
Objects are kept by their owners and cannot be listed yet.
)";

constexpr char kGetHelp[] = R"(
Shows one entry with every column: shoal get actors|tasks|nodes|jobs|placement-groups|workers ID
(a unique prefix of the id, at least 8 characters, is enough).
)";

constexpr char kSummaryHelp[] = R"(
Counts tasks by function (or Class.method) and state, or actors by class and state:
shoal summary tasks|actors.
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
