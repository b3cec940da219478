// Job records and submit requests; see job_record.h.
#include "src/dashboard/job_record.h"

#include <algorithm>

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "src/common/ids.h"

namespace shoal::dashboard {
namespace {

constexpr size_t kMaxSubmissionIdLength = 128;
constexpr size_t kMaxEntrypointLength = 64 * 1024;

// nlohmann::json copies, compares and dumps a document recursively, so a deeply nested one (a
// 100 KB body of brackets) overflows the stack; documents nested deeper than this are refused.
constexpr int kMaxJsonDepth = 100;

absl::Status Bad(const std::string& what) { return absl::InvalidArgumentError(what); }

// Whether a JSON text opens more than `max` arrays or objects inside one another. Exact for
// valid JSON; for invalid JSON the answer does not matter, the parser refuses it.
bool NestedDeeperThan(std::string_view text, int max) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// Parses a JSON object given by a client or read back from the store.
absl::StatusOr<nlohmann::json> ParseObject(const std::string& text, const std::string& what) {
  if (NestedDeeperThan(text, kMaxJsonDepth)) {
    return Bad(absl::StrCat(what, " nests arrays and objects more than ", kMaxJsonDepth, " deep"));
  }
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Bad(absl::StrCat(what, " is not valid JSON"));
  if (!doc.is_object()) return Bad(absl::StrCat(what, " must be a JSON object"));
  return doc;
}

// A JSON object of strings into a map; InvalidArgument naming `field` otherwise.
absl::Status StringMap(const nlohmann::json& value, const std::string& field, std::map<std::string, std::string>* out) {
  if (value.is_null()) return absl::OkStatus();
  if (!value.is_object()) return Bad(absl::StrCat(field, " must be an object of strings"));
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) return Bad(absl::StrCat(field, ".", it.key(), " must be a string"));
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return absl::OkStatus();
}

// Environment variables as the child's environ holds them: "NAME=value" C strings.
absl::Status CheckEnvVars(const std::map<std::string, std::string>& vars, const std::string& field) {
  for (const auto& [name, value] : vars) {
    if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos) {
      return Bad(absl::StrCat(field, " names must be non-empty and hold no '=' or NUL character"));
    }
    if (value.find('\0') != std::string::npos) {
      return Bad(absl::StrCat(field, ".", name, " must not hold a NUL character"));
    }
  }
  return absl::OkStatus();
}

// A non-negative finite number (or null, which leaves `out`).
absl::Status Amount(const nlohmann::json& body, const char* field, double* out) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Bad(absl::StrCat(field, " must be a number"));
  double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || v > 1e13) return Bad(absl::StrCat(field, " must be a number >= 0"));
  *out = v;
  return absl::OkStatus();
}

}  // namespace

std::string JobStatusName(JobStatus status) {
  switch (status) {
    case JobStatus::kPending: return "PENDING";
    case JobStatus::kRunning: return "RUNNING";
    case JobStatus::kStopped: return "STOPPED";
    case JobStatus::kSucceeded: return "SUCCEEDED";
    case JobStatus::kFailed: return "FAILED";
  }
  return "FAILED";
}

std::optional<JobStatus> ParseJobStatus(const std::string& name) {
  for (JobStatus s : {JobStatus::kPending, JobStatus::kRunning, JobStatus::kStopped, JobStatus::kSucceeded,
                      JobStatus::kFailed}) {
    if (JobStatusName(s) == name) return s;
  }
  return std::nullopt;
}

bool IsTerminal(JobStatus status) {
  return status == JobStatus::kStopped || status == JobStatus::kSucceeded || status == JobStatus::kFailed;
}

bool CanTransition(JobStatus from, JobStatus to) {
  switch (from) {
    case JobStatus::kPending:
      return to == JobStatus::kRunning || to == JobStatus::kStopped || to == JobStatus::kFailed;
    case JobStatus::kRunning:
      return IsTerminal(to);
    default:
      return false;
  }
}

std::map<std::string, double> JobSpec::ResourceShape() const {
  std::map<std::string, double> shape;
  for (const auto& [name, amount] : resources) {
    if (amount > 0) shape[name] = amount;
  }
  if (num_cpus > 0) shape["CPU"] = num_cpus;
  if (num_gpus > 0) shape["GPU"] = num_gpus;
  if (memory > 0) shape["memory"] = static_cast<double>(memory);
  return shape;
}

bool IsValidSubmissionId(const std::string& id) {
  if (id.empty() || id.size() > kMaxSubmissionIdLength) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return id != "." && id != "..";
}

std::string NewSubmissionId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  uint8_t bytes[16];
  FillRandom(bytes, sizeof(bytes));
  std::string id = "shoalsubmit_";
  for (uint8_t b : bytes) id += kAlphabet[b % (sizeof(kAlphabet) - 1)];
  return id;
}

absl::StatusOr<RuntimeEnv> ParseRuntimeEnv(const nlohmann::json& value) {
  RuntimeEnv env;
  if (value.is_null()) return env;
  if (!value.is_object()) return Bad("runtime_env must be an object");
  env.raw = value;
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string& key = it.key();
    if (key == "conda") return Bad("runtime_env.conda is not supported: conda is not installed on Shoal clusters; use pip or uv");
    if (key == "container" || key == "image_uri") {
      return Bad(absl::StrCat("runtime_env.", key, " is not supported: Shoal does not start workers in containers"));
    }
    if (key != "working_dir" && key != "py_modules" && key != "env_vars" && key != "excludes" && key != "pip" &&
        key != "uv") {
      return Bad(absl::StrCat("runtime_env key '", key,
                              "' is not supported by Shoal (supported: env_vars, working_dir, py_modules, excludes, "
                              "pip, uv)"));
    }
  }
  for (const char* key : {"pip", "uv"}) {
    auto it = value.find(key);
    if (it == value.end() || it->is_null() || it->is_string()) continue;
    const nlohmann::json& list = it->is_object() && it->contains("packages") ? (*it)["packages"] : *it;
    if (list.is_string()) continue;
    if (!list.is_array() || !std::all_of(list.begin(), list.end(), [](const nlohmann::json& v) { return v.is_string(); })) {
      return Bad(absl::StrCat("runtime_env.", key, " must be a list of requirement strings, a requirements file, or ",
                              "an object with 'packages'"));
    }
  }
  if (value.contains("pip") && value.contains("uv") && !value["pip"].is_null() && !value["uv"].is_null()) {
    return Bad("runtime_env cannot have both pip and uv");
  }
  if (auto it = value.find("excludes"); it != value.end() && !it->is_null()) {
    if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const nlohmann::json& v) { return v.is_string(); })) {
      return Bad("runtime_env.excludes must be a list of gitignore-style patterns");
    }
  }
  if (auto it = value.find("py_modules"); it != value.end() && !it->is_null()) {
    if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const nlohmann::json& v) { return v.is_string(); })) {
      return Bad("runtime_env.py_modules must be a list of package URIs (gcs://...) or paths on the head");
    }
  }
  if (auto wd = value.find("working_dir"); wd != value.end() && !wd->is_null()) {
    if (!wd->is_string()) return Bad("runtime_env.working_dir must be a string");
    env.working_dir = wd->get<std::string>();
  }
  if (auto vars = value.find("env_vars"); vars != value.end()) {
    if (auto s = StringMap(*vars, "runtime_env.env_vars", &env.env_vars); !s.ok()) return s;
    if (auto s = CheckEnvVars(env.env_vars, "runtime_env.env_vars"); !s.ok()) return s;
  }
  return env;
}

bool IsValidPackageName(const std::string& name) {
  return name.size() > 4 && (name.ends_with(".zip") || name.ends_with(".whl")) && IsValidSubmissionId(name) &&
         name[0] != '.';
}

std::optional<std::string> PackageNameFromUri(const std::string& uri) {
  constexpr std::string_view kPrefix = "gcs://";
  if (!uri.starts_with(kPrefix)) return std::nullopt;
  std::string name = uri.substr(kPrefix.size());
  if (!IsValidPackageName(name)) return std::nullopt;
  return name;
}

absl::StatusOr<JobSpec> ParseSubmitRequest(const std::string& body) {
  absl::StatusOr<nlohmann::json> parsed = ParseObject(body, "the request body");
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& doc = *parsed;
  JobSpec spec;
  auto entry = doc.find("entrypoint");
  if (entry == doc.end() || !entry->is_string() || entry->get<std::string>().empty()) {
    return Bad("entrypoint must be a non-empty string");
  }
  spec.entrypoint = entry->get<std::string>();
  if (spec.entrypoint.size() > kMaxEntrypointLength) return Bad("entrypoint is too long");
  // /bin/sh -c receives it as a C string: a NUL would silently cut the command.
  if (spec.entrypoint.find('\0') != std::string::npos) return Bad("entrypoint must not hold a NUL character");
  for (const char* field : {"submission_id", "job_id"}) {
    auto it = doc.find(field);
    if (it == doc.end() || it->is_null()) continue;
    if (!it->is_string() || !IsValidSubmissionId(it->get<std::string>())) {
      return Bad(absl::StrCat(field, " must be 1..128 characters of letters, digits, '_', '-', '.'"));
    }
    if (spec.submission_id.empty()) spec.submission_id = it->get<std::string>();
  }
  if (auto it = doc.find("runtime_env"); it != doc.end()) {
    absl::StatusOr<RuntimeEnv> env = ParseRuntimeEnv(*it);
    if (!env.ok()) return env.status();
    spec.runtime_env = std::move(env->raw);
    spec.working_dir = std::move(env->working_dir);
    spec.env_vars = std::move(env->env_vars);
  }
  if (auto it = doc.find("metadata"); it != doc.end()) {
    if (auto s = StringMap(*it, "metadata", &spec.metadata); !s.ok()) return s;
  }
  if (auto s = Amount(doc, "entrypoint_num_cpus", &spec.num_cpus); !s.ok()) return s;
  if (auto s = Amount(doc, "entrypoint_num_gpus", &spec.num_gpus); !s.ok()) return s;
  double memory = 0;
  if (auto s = Amount(doc, "entrypoint_memory", &memory); !s.ok()) return s;
  if (memory != std::floor(memory)) return Bad("entrypoint_memory must be a whole number of bytes");
  spec.memory = static_cast<int64_t>(memory);
  if (auto it = doc.find("entrypoint_resources"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("entrypoint_resources must be an object of numbers");
    for (auto r = it->begin(); r != it->end(); ++r) {
      if (r.key() == "CPU" || r.key() == "GPU" || r.key() == "memory") {
        return Bad(absl::StrCat("entrypoint_resources must not set ", r.key(), "; use entrypoint_num_cpus, "
                                "entrypoint_num_gpus or entrypoint_memory"));
      }
      if (!r.value().is_number() || !std::isfinite(r.value().get<double>()) || r.value().get<double>() < 0) {
        return Bad(absl::StrCat("entrypoint_resources.", r.key(), " must be a number >= 0"));
      }
      spec.resources[r.key()] = r.value().get<double>();
    }
  }
  return spec;
}

absl::Status JobRecord::Transition(JobStatus to, const std::string& why, int64_t now_ms) {
  if (!CanTransition(status, to)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", spec.submission_id, " is ", JobStatusName(status), " and cannot become ", JobStatusName(to)));
  }
  status = to;
  message = why;
  if (IsTerminal(to)) end_time_ms = now_ms;
  return absl::OkStatus();
}

nlohmann::json JobRecord::ToApiJson() const {
  nlohmann::json resources = nlohmann::json::object();
  for (const auto& [name, amount] : spec.resources) resources[name] = amount;
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : spec.metadata) metadata[key] = value;
  return {
      {"type", "SUBMISSION"},
      {"job_id", spec.submission_id},
      {"submission_id", spec.submission_id},
      {"driver_info", nullptr},
      {"status", JobStatusName(status)},
      {"entrypoint", spec.entrypoint},
      {"message", message},
      {"error_type", error_type.empty() ? nlohmann::json() : nlohmann::json(error_type)},
      {"start_time", start_time_ms},
      {"end_time", end_time_ms == 0 ? nlohmann::json() : nlohmann::json(end_time_ms)},
      {"metadata", metadata},
      {"runtime_env", spec.runtime_env},
      {"driver_agent_http_address", nullptr},
      {"driver_node_id", nullptr},
      {"driver_exit_code", driver_exit_code ? nlohmann::json(*driver_exit_code) : nlohmann::json()},
      {"entrypoint_num_cpus", spec.num_cpus},
      {"entrypoint_num_gpus", spec.num_gpus},
      {"entrypoint_memory", spec.memory},
      {"entrypoint_resources", resources},
  };
}

std::string JobRecord::Serialize() const {
  nlohmann::json doc = ToApiJson();
  doc["driver_pid"] = driver_pid;
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<JobRecord> JobRecord::Deserialize(const std::string& text) {
  absl::StatusOr<nlohmann::json> parsed = ParseObject(text, "a stored job");
  if (!parsed.ok()) return parsed.status();
  nlohmann::json& doc = *parsed;
  // The stored form is a superset of a submit request: parse that part the same way.
  nlohmann::json request = doc;
  request.erase("job_id");
  absl::StatusOr<JobSpec> spec = ParseSubmitRequest(request.dump());
  if (!spec.ok()) return spec.status();
  JobRecord record;
  record.spec = *std::move(spec);
  if (!IsValidSubmissionId(record.spec.submission_id)) return Bad("a stored job has no valid submission_id");
  std::optional<JobStatus> status = doc["status"].is_string() ? ParseJobStatus(doc["status"].get<std::string>()) : std::nullopt;
  if (!status) return Bad("a stored job has no valid status");
  record.status = *status;
  if (doc["message"].is_string()) record.message = doc["message"].get<std::string>();
  if (doc["error_type"].is_string()) record.error_type = doc["error_type"].get<std::string>();
  if (doc["start_time"].is_number_integer()) record.start_time_ms = doc["start_time"].get<int64_t>();
  if (doc["end_time"].is_number_integer()) record.end_time_ms = doc["end_time"].get<int64_t>();
  if (doc["driver_exit_code"].is_number_integer()) record.driver_exit_code = doc["driver_exit_code"].get<int>();
  if (doc["driver_pid"].is_number_integer()) record.driver_pid = doc["driver_pid"].get<int64_t>();
  return record;
}

}  // namespace shoal::dashboard
