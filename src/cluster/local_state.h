// What `shoal start` leaves on this machine so that `shoal stop` and `shoal status` can find it.
//
//   <root>/shoal_current_cluster                 "host:port" of the GCS last started here
//   <root>/shoal_current_cluster_token           its token (mode 0600), when auth is on
//   <root>/session_*/processes/<name>.json       one record per daemon started:
//       {"name": "raylet", "pid": 1234, "start_time": 56789, "binary": "/…/shoal-raylet"}
//
// <root> is ShoalTempRoot() ($SHOAL_TMPDIR or /tmp/shoal). Files are replaced atomically
// (write to a temporary name, then rename), so a reader never sees half a file.
// Threading: any thread; the files are the only state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/cluster/process.h"

namespace shoal::cluster {

inline constexpr char kRaylet[] = "raylet";
inline constexpr char kGcs[] = "gcs";
inline constexpr char kDashboard[] = "dashboard";
// <session>/auth_token (mode 0600) and <session>/dashboard.ready.json ({url, port, ...}).
inline constexpr char kAuthTokenFile[] = "auth_token";
inline constexpr char kDashboardReadyFile[] = "dashboard.ready.json";

struct ProcessRecord {
  std::string name;    // kGcs, kRaylet
  ProcessId id;
  std::string binary;
  std::string path;    // the record's file; set by WriteProcessRecord and ListProcessRecords
};

// Writes <session_dir>/processes/<record.name>.json and sets record->path.
absl::Status WriteProcessRecord(const std::string& session_dir, ProcessRecord* record);
absl::Status RemoveProcessRecord(const ProcessRecord& record);

struct RecordScan {
  std::vector<ProcessRecord> records;
  std::vector<std::string> unreadable;  // record files that are not valid records
};
// Every record under every session directory of `root` (session_latest is only a link).
RecordScan ListProcessRecords(const std::string& root);

// The current-cluster file: one line, "host:port".
absl::Status WriteCurrentCluster(const std::string& root, const std::string& address);
// NotFound when there is no current cluster recorded.
absl::StatusOr<std::string> ReadCurrentCluster(const std::string& root);
// <root>/shoal_current_cluster_token: the current cluster's token (mode 0600), written beside
// the current-cluster file by `shoal start --head` (token.h) so clients here find it.
inline constexpr char kCurrentClusterTokenFile[] = "shoal_current_cluster_token";
std::string CurrentClusterTokenPath(const std::string& root);
// Removes the current-cluster file and its token.
void RemoveCurrentCluster(const std::string& root);

// Small helpers for the JSON files the CLI and the daemons exchange.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);
// InvalidArgument when the file is not a JSON object; NotFound when it cannot be read.
absl::StatusOr<nlohmann::json> ReadJsonObject(const std::string& path);
// The field's value when present with the right type.
std::optional<int64_t> JsonInt(const nlohmann::json& object, const char* key);
std::optional<std::string> JsonString(const nlohmann::json& object, const char* key);

}  // namespace shoal::cluster
