#include "src/cluster/token.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "src/cluster/local_state.h"
#include "src/common/auth.h"
#include "src/common/session.h"

namespace shoal::cluster {

absl::StatusOr<std::string> NewToken() {
  uint8_t bytes[16];
  size_t filled = 0;
  while (filled < sizeof(bytes)) {
    ssize_t n = getrandom(bytes + filled, sizeof(bytes) - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("getrandom failed (errno ", errno, ")"));
    filled += static_cast<size_t>(n);
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

namespace {

absl::StatusOr<std::string> WriteSecret(const std::string& path, const std::string& token, int extra_flags) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " already exists"));
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  const std::string line = token + "\n";
  bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ok = fchmod(fd, 0600) == 0 && ok;
  close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return path;
}

}  // namespace

absl::StatusOr<std::string> WriteTokenFile(const std::string& session_dir, const std::string& token) {
  return WriteSecret((std::filesystem::path(session_dir) / kAuthTokenFile).string(), token, O_EXCL);
}

absl::Status WriteCurrentClusterToken(const std::string& root, const std::string& token) {
  const std::string path = CurrentClusterTokenPath(root);
  std::error_code ec;
  std::filesystem::remove(path, ec);  // another cluster's, replaced
  return WriteSecret(path, token, O_EXCL).status();
}

absl::StatusOr<std::string> FindClusterToken(const std::string& gcs_address) {
  if (const char* env = std::getenv(kAuthTokenEnv); env != nullptr && *env != '\0') {
    return CheckToken(env, absl::StrCat("$", kAuthTokenEnv));
  }
  if (const char* env = std::getenv(kAuthTokenFileEnv); env != nullptr && *env != '\0') return ReadTokenFile(env);
  const std::string root = ShoalTempRoot();
  absl::StatusOr<std::string> current = ReadCurrentCluster(root);
  if (!current.ok() || (!gcs_address.empty() && *current != gcs_address)) return std::string();
  const std::string path = CurrentClusterTokenPath(root);
  if (!std::filesystem::exists(path)) return std::string();
  return ReadTokenFile(path);
}

}  // namespace shoal::cluster
