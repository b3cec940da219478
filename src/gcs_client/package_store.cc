#include "src/gcs_client/package_store.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "src/common/runtime_env.h"

namespace shoal {
namespace {

constexpr char kMetaTag[] = "shoal-package-v1";

absl::Status CheckUri(const std::string& uri) {
  if (PackageNameOfUri(uri, ".zip").ok()) return absl::OkStatus();
  auto wheel = PackageNameOfUri(uri, ".whl");
  return wheel.ok() ? absl::OkStatus() : wheel.status();
}

struct Meta {
  uint64_t size = 0;
  uint64_t chunks = 0;
  std::string sha256;
};

absl::StatusOr<Meta> ParseMeta(const std::string& uri, const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(value, ' ');
  Meta m;
  if (parts.size() != 4 || parts[0] != kMetaTag || !absl::SimpleAtoi(parts[1], &m.size) ||
      !absl::SimpleAtoi(parts[2], &m.chunks) || parts[3].size() != 64) {
    return absl::DataLossError(absl::StrCat("package ", uri, " has a malformed record in the GCS"));
  }
  m.sha256 = parts[3];
  return m;
}

}  // namespace

uint64_t MaxPackageBytes() {
  uint64_t limit = 0;
  const char* env = std::getenv("SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES");
  if (env != nullptr && absl::SimpleAtoi(env, &limit) && limit > 0) return limit;
  return kDefaultMaxPackageBytes;
}

PackageKv PackageKvOf(const GcsClient& gcs) {
  return PackageKv{
      .put = [gcs](const std::string& key, const std::string& value) -> absl::Status {
        return gcs.KvPut(kPackageNamespace, key, value, /*overwrite=*/true).status();
      },
      .get = [gcs](const std::string& key) { return gcs.KvGet(kPackageNamespace, key); },
  };
}

std::string ContentPackageUri(const std::string& bytes, const std::string& extension) {
  return absl::StrCat(kPackageScheme, "_shoal_pkg_", Sha256Hex(bytes).substr(0, 32), extension);
}

absl::Status PutPackage(const PackageKv& kv, const std::string& uri, const std::string& bytes, uint64_t max_bytes) {
  if (auto s = CheckUri(uri); !s.ok()) return s;
  if (bytes.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("package ", uri, " is ", bytes.size(), " bytes, over the limit of ",
                                                   max_bytes, " (SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES); leave large ",
                                                   "files out with runtime_env excludes"));
  }
  const uint64_t chunks = (bytes.size() + kPackageChunkBytes - 1) / kPackageChunkBytes;
  for (uint64_t i = 0; i < chunks; ++i) {
    const std::string chunk = bytes.substr(i * kPackageChunkBytes, kPackageChunkBytes);
    if (auto s = kv.put(absl::StrCat(uri, "#", i), chunk); !s.ok()) return s;
  }
  return kv.put(uri, absl::StrCat(kMetaTag, " ", bytes.size(), " ", chunks, " ", Sha256Hex(bytes)));
}

absl::Status PutPackageFromFile(const PackageKv& kv, const std::string& uri, const std::string& path,
                                uint64_t max_bytes) {
  if (auto s = CheckUri(uri); !s.ok()) return s;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  std::string chunk(kPackageChunkBytes, '\0');
  uint64_t size = 0, chunks = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto n = static_cast<size_t>(in.gcount());
    if (n == 0) break;
    size += n;
    if (size > max_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("package ", uri, " is over the limit of ", max_bytes,
                                                     " bytes (SHOAL_RUNTIME_ENV_MAX_PACKAGE_BYTES)"));
    }
    EVP_DigestUpdate(sha.get(), chunk.data(), n);
    if (auto s = kv.put(absl::StrCat(uri, "#", chunks++), chunk.substr(0, n)); !s.ok()) return s;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(sha.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return kv.put(uri, absl::StrCat(kMetaTag, " ", size, " ", chunks, " ", hex));
}

absl::StatusOr<bool> PackageExists(const PackageKv& kv, const std::string& uri) {
  if (auto s = CheckUri(uri); !s.ok()) return s;
  auto meta = kv.get(uri);
  if (absl::IsNotFound(meta.status())) return false;
  if (!meta.ok()) return meta.status();
  return ParseMeta(uri, *meta).ok();
}

absl::StatusOr<std::string> GetPackage(const PackageKv& kv, const std::string& uri) {
  if (auto s = CheckUri(uri); !s.ok()) return s;
  auto value = kv.get(uri);
  if (absl::IsNotFound(value.status())) {
    return absl::NotFoundError(absl::StrCat("package ", uri, " is not in the GCS (was it uploaded to this cluster?)"));
  }
  if (!value.ok()) return value.status();
  auto meta = ParseMeta(uri, *value);
  if (!meta.ok()) return meta.status();
  if (meta->size > MaxPackageBytes() ||
      meta->chunks != (meta->size + kPackageChunkBytes - 1) / kPackageChunkBytes) {
    return absl::DataLossError(absl::StrCat("package ", uri, " has an impossible record (", meta->size, " bytes in ",
                                            meta->chunks, " chunks)"));
  }
  std::string bytes;
  bytes.reserve(meta->size);
  for (uint64_t i = 0; i < meta->chunks; ++i) {
    auto chunk = kv.get(absl::StrCat(uri, "#", i));
    if (!chunk.ok()) {
      return absl::DataLossError(absl::StrCat("package ", uri, ": chunk ", i, " is missing: ", chunk.status().message()));
    }
    bytes += *chunk;
  }
  if (bytes.size() != meta->size || Sha256Hex(bytes) != meta->sha256) {
    return absl::DataLossError(absl::StrCat("package ", uri, " does not match its checksum"));
  }
  return bytes;
}

}  // namespace shoal
