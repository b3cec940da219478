#include "src/common/session.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace fs = std::filesystem;

std::string ShoalTempRoot() {
  const char* env = std::getenv("SHOAL_TMPDIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("/tmp/shoal");
}

absl::StatusOr<std::string> CreateSessionDir(const std::string& root, SessionLink link_kind) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", root, ": ", ec.message()));
  std::string name = absl::StrCat(
      "session_", absl::FormatTime("%Y-%m-%d_%H-%M-%E6S", absl::Now(), absl::LocalTimeZone()), "_",
      getpid());
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  fs::path dir = fs::path(root) / name;
  fs::create_directories(dir / "logs", ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  // The session holds the cluster token, the logs (task output, tracebacks) and the store's
  // socket: its owner only.
  for (const fs::path& p : {dir, dir / "logs"}) {
    fs::permissions(p, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot restrict ", p.string(), ": ", ec.message()));
  }
  // Atomically repoint session_latest: make a fresh link, then rename it over the old one.
  fs::path link = fs::path(root) / "session_latest";
  if (link_kind == SessionLink::kUnlessHead && fs::exists(link / "processes" / "gcs.json", ec)) return dir.string();
  fs::path tmp = fs::path(root) / absl::StrCat(".session_latest.", getpid());
  fs::remove(tmp, ec);
  if (symlink(name.c_str(), tmp.c_str()) != 0 || rename(tmp.c_str(), link.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot update ", link.string(), ": ", std::strerror(errno)));
  }
  return dir.string();
}

absl::Status InitLogging(const std::string& component, const std::string& log_dir) {
  std::error_code ec;
  fs::create_directories(log_dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", log_dir, ": ", ec.message()));
  try {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(
        (fs::path(log_dir) / (component + ".log")).string());
    auto err = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    err->set_level(spdlog::level::warn);
    auto logger = std::make_shared<spdlog::logger>(component, spdlog::sinks_init_list{file, err});
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n %P] [%l] %v");
    logger->set_level(spdlog::level::info);
    logger->flush_on(spdlog::level::info);
    spdlog::set_default_logger(logger);
  } catch (const spdlog::spdlog_ex& e) {
    return absl::UnavailableError(absl::StrCat("cannot open log in ", log_dir, ": ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SetUpDaemonSession(const std::string& component, const std::string& session_dir) {
  std::string dir = session_dir;
  if (dir.empty()) {
    auto made = CreateSessionDir(ShoalTempRoot());
    if (!made.ok()) return made.status();
    dir = *made;
  }
  if (auto s = InitLogging(component, dir + "/logs"); !s.ok()) return s;
  return dir;
}

}  // namespace shoal
