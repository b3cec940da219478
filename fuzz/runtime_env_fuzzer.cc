// Fuzzes runtime_env parsing and the working_dir package URIs it names
// (src/dashboard/job_record.h: ParseRuntimeEnv, PackageNameFromUri, IsValidPackageName).
// Shoal unpacks a working_dir package by running `unzip` on the stored file; what Shoal itself
// parses is the runtime_env JSON, the gcs://<name> URI and the package name that becomes a file
// name under the package directory (also the name in PUT /api/packages/gcs/<name>). Those are
// fuzzed here, with path traversal as the invariant to keep.
//
// Input: one JSON text, the runtime_env object (the seeds are real ones); the same bytes are
// also tried as a URI and as a package name.
// Invariants: a refusal is InvalidArgument; an accepted runtime_env keeps the object as sent and
// takes working_dir and env_vars from it; a package name is one path component that, joined to
// the package directory, stays inside it; a name PUT accepts is the name its URI resolves to.
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz/fuzz_check.h"
#include "nlohmann/json.hpp"
#include "src/dashboard/job_record.h"

namespace db = shoal::dashboard;
namespace fs = std::filesystem;

namespace {

void CheckPackageName(const std::string& name) {
  FUZZ_CHECK(db::IsValidPackageName(name));
  FUZZ_CHECK(name.find('/') == std::string::npos && name.find('\0') == std::string::npos);
  FUZZ_CHECK(name != "." && name != "..");
  const fs::path dir = "/session/packages";
  const fs::path joined = (dir / name).lexically_normal();
  FUZZ_CHECK(joined.parent_path() == dir && joined.filename() == name);
}

void CheckUri(const std::string& uri) {
  std::optional<std::string> name = db::PackageNameFromUri(uri);
  if (!name) return;
  FUZZ_CHECK(uri == "gcs://" + *name);
  CheckPackageName(*name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckUri(text);
  FUZZ_CHECK(db::IsValidPackageName(text) == (db::PackageNameFromUri("gcs://" + text) == text));
  if (db::IsValidPackageName(text)) CheckPackageName(text);

  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return 0;
  absl::StatusOr<db::RuntimeEnv> env = db::ParseRuntimeEnv(value);
  if (!env.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(env.status()));
    return 0;
  }
  FUZZ_CHECK(value.is_null() ? env->raw == nlohmann::json::object() : env->raw == value);
  if (env->working_dir.empty()) {
    FUZZ_CHECK(!value.is_object() || !value.contains("working_dir") || value["working_dir"].is_null() ||
               value["working_dir"] == "");
  } else {
    FUZZ_CHECK(value["working_dir"] == env->working_dir);
    CheckUri(env->working_dir);
  }
  for (const auto& [name, v] : env->env_vars) {
    FUZZ_CHECK(value["env_vars"][name] == v);
    FUZZ_CHECK(!name.empty() && name.find_first_of(std::string("=\0", 2)) == std::string::npos);
    FUZZ_CHECK(v.find('\0') == std::string::npos);
  }
  return 0;
}
