// Runtime environments (rpc::RuntimeEnv, proto/shoal/common.proto) as every layer checks and
// names them, and the package archives they carry.
//
//   RuntimeEnvKey(env)       names an environment: workers are shared only within one key
//   ValidateRuntimeEnv(env)  what a raylet refuses before setting anything up
//   PackageNameOfUri(uri)    gcs://<name>.zip package URIs: safe names (zip_listing.h checks
//                            the archives' entries)
//
// Threading: pure functions. Errors: InvalidArgument naming the field and the value.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shoal/common.pb.h"

namespace shoal {

// SHA-256 of `bytes`, as 64 lowercase hex digits.
std::string Sha256Hex(absl::string_view bytes);

bool IsEmptyRuntimeEnv(const rpc::RuntimeEnv& env);
// "" for an empty environment, else a hex digest of every field (equal digests: one env).
std::string RuntimeEnvKey(const rpc::RuntimeEnv& env);
// Names the virtualenv `env` needs (installer, interpreter, requirements, options, wheels);
// "" when it needs none (no pip_packages and no wheels).
std::string PipEnvKey(const rpc::RuntimeEnv& env);
// Env var names are [A-Za-z_][A-Za-z0-9_]*; package URIs are valid (below); requirement lines
// and options are one line each; installer is "", "pip" or "uv"; a virtualenv needs an
// interpreter.
absl::Status ValidateRuntimeEnv(const rpc::RuntimeEnv& env);

// A package URI is gcs://<name> where <name> is 5..128 characters of [A-Za-z0-9_.-], does not
// start with '.', and ends with `extension` (".zip" or ".whl"). Answers <name>.
absl::StatusOr<std::string> PackageNameOfUri(absl::string_view uri, absl::string_view extension);
inline constexpr absl::string_view kPackageScheme = "gcs://";
// The GCS KV namespaces of packages (src/gcs_client/package_store.h) and of the jobs'
// references to them: key "<job id hex>|<uri>", written by the drivers that use a package; a
// finished job's references are dropped and an unreferenced package deleted (GcsServer).
inline constexpr char kPackageNamespace[] = "packages";
inline constexpr char kPackageRefsNamespace[] = "package_refs";

}  // namespace shoal
