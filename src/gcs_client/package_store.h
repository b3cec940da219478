// Runtime-environment packages (working_dir and py_modules archives, wheels) kept in the GCS's
// key-value store, so that every raylet can fetch what a driver uploaded and a Redis-backed
// GCS keeps them across restarts. One package is the key-value entries, in namespace
// kPackageNamespace,
//   <uri>        "shoal-package-v1 <size> <chunks> <sha256>"   written last: the commit mark
//   <uri>#<i>    the i-th kPackageChunkBytes of the archive
// so no single call carries more than a chunk. Packages are named by their content
// (gcs://_shoal_pkg_<sha256 prefix>.zip): an upload of a name that exists is skipped.
//
// Threading: the functions are as thread-safe as the PackageKv's calls (GcsClient's are).
// Errors: InvalidArgument for a bad URI or an archive over the limit, NotFound for a package
// that is not there, DataLoss for one whose bytes do not match their checksum; the KV's own.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/common/runtime_env.h"
#include "src/gcs_client/gcs_client.h"

namespace shoal {

inline constexpr uint64_t kPackageChunkBytes = 4 << 20;
// The largest package (Ray's limit for working_dir); SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES lowers
// or raises it for this process.
inline constexpr uint64_t kDefaultMaxPackageBytes = 500ull << 20;
uint64_t MaxPackageBytes();

// The key-value calls a package store needs (namespace kPackageNamespace).
struct PackageKv {
  std::function<absl::Status(const std::string& key, const std::string& value)> put;  // overwrites
  std::function<absl::StatusOr<std::string>(const std::string& key)> get;             // NotFound if absent
};
PackageKv PackageKvOf(const GcsClient& gcs);

// gcs://_shoal_pkg_<first 32 hex digits of sha256(bytes)><extension>.
std::string ContentPackageUri(const std::string& bytes, const std::string& extension);

// Stores `bytes` under `uri` (gcs://<name>.zip or .whl), replacing what was there.
absl::Status PutPackage(const PackageKv& kv, const std::string& uri, const std::string& bytes,
                        uint64_t max_bytes = MaxPackageBytes());
// The same from a file, a chunk at a time (memory: one chunk, whatever the package's size).
absl::Status PutPackageFromFile(const PackageKv& kv, const std::string& uri, const std::string& path,
                                uint64_t max_bytes = MaxPackageBytes());
absl::StatusOr<bool> PackageExists(const PackageKv& kv, const std::string& uri);
absl::StatusOr<std::string> GetPackage(const PackageKv& kv, const std::string& uri);

}  // namespace shoal
