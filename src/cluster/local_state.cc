// Process records and the current-cluster file; see local_state.h.
#include "src/cluster/local_state.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal::cluster {
namespace fs = std::filesystem;
namespace {

constexpr char kCurrentClusterFile[] = "shoal_current_cluster";
constexpr char kProcessesDir[] = "processes";
constexpr char kSessionPrefix[] = "session_";

std::string CurrentClusterPath(const std::string& root) { return (fs::path(root) / kCurrentClusterFile).string(); }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<ProcessRecord> ParseRecord(const std::string& path) {
  absl::StatusOr<nlohmann::json> doc = ReadJsonObject(path);
  if (!doc.ok()) return doc.status();
  std::optional<std::string> name = JsonString(*doc, "name");
  std::optional<int64_t> pid = JsonInt(*doc, "pid");
  std::optional<int64_t> start_time = JsonInt(*doc, "start_time");
  if (!name || name->empty() || !pid || *pid <= 1 || !start_time || *start_time <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a process record"));
  }
  ProcessRecord record;
  record.name = *name;
  record.id = {static_cast<pid_t>(*pid), static_cast<uint64_t>(*start_time)};
  record.binary = JsonString(*doc, "binary").value_or("");
  record.path = path;
  return record;
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << contents;
    out.flush();
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> ReadJsonObject(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " does not hold a JSON object"));
  }
  return doc;
}

std::optional<int64_t> JsonInt(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

std::optional<std::string> JsonString(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

absl::Status WriteProcessRecord(const std::string& session_dir, ProcessRecord* record) {
  fs::path dir = fs::path(session_dir) / kProcessesDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  record->path = (dir / (record->name + ".json")).string();
  nlohmann::json doc = {{"name", record->name},
                        {"pid", record->id.pid},
                        {"start_time", record->id.start_time},
                        {"binary", record->binary}};
  return WriteFileAtomically(record->path, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

absl::Status RemoveProcessRecord(const ProcessRecord& record) {
  std::error_code ec;
  fs::remove(record.path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot remove ", record.path, ": ", ec.message()));
  return absl::OkStatus();
}

RecordScan ListProcessRecords(const std::string& root) {
  RecordScan scan;
  std::error_code ec;
  for (const fs::directory_entry& session : fs::directory_iterator(root, ec)) {
    std::string name = session.path().filename().string();
    if (!absl::StartsWith(name, kSessionPrefix) || session.is_symlink(ec) || !session.is_directory(ec)) continue;
    std::error_code list_ec;
    for (const fs::directory_entry& file : fs::directory_iterator(session.path() / kProcessesDir, list_ec)) {
      if (file.path().extension() != ".json" || !file.is_regular_file(list_ec)) continue;
      absl::StatusOr<ProcessRecord> record = ParseRecord(file.path().string());
      if (record.ok()) {
        scan.records.push_back(*std::move(record));
      } else {
        scan.unreadable.push_back(file.path().string());
      }
    }
  }
  return scan;
}

absl::Status WriteCurrentCluster(const std::string& root, const std::string& address) {
  return WriteFileAtomically(CurrentClusterPath(root), address + "\n");
}

absl::StatusOr<std::string> ReadCurrentCluster(const std::string& root) {
  absl::StatusOr<std::string> text = ReadFile(CurrentClusterPath(root));
  if (!text.ok()) return absl::NotFoundError("no current cluster");
  std::string address(absl::StripAsciiWhitespace(*text));
  if (address.empty()) return absl::NotFoundError("no current cluster");
  return address;
}

std::string CurrentClusterTokenPath(const std::string& root) {
  return (fs::path(root) / kCurrentClusterTokenFile).string();
}

void RemoveCurrentCluster(const std::string& root) {
  std::error_code ec;
  fs::remove(CurrentClusterPath(root), ec);
  fs::remove(CurrentClusterTokenPath(root), ec);
}

}  // namespace shoal::cluster
