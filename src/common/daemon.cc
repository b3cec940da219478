#include "src/common/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/system.h"

namespace shoal {
namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}
}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << contents;
    if (!out.good()) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void ReportFatal(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  std::fflush(stderr);
  if (auto logger = spdlog::default_logger(); logger && logger->name() != "") {
    logger->error("{}", message);
    logger->flush();
  }
}

std::optional<int> ParseDaemonFlags(FlagSet& flags, int argc, char** argv) {
  ConfigureMutexChecks();
  InstallCrashHandler();
  absl::Status s = flags.Parse(argc, argv);
  if (s.ok()) return std::nullopt;
  if (absl::IsCancelled(s)) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  ReportFatal(std::string(s.message()));
  return 2;
}

void AddAuthFlags(FlagSet& flags, AuthFlags* out) {
  flags.AddString("auth-token-file", &out->token_file,
                  "file holding the cluster token (default: $SHOAL_AUTH_TOKEN, then $SHOAL_AUTH_TOKEN_FILE)");
  flags.AddBool("disable-auth", &out->disable_auth, "accept calls without the cluster token (trusted networks only)");
  AddTlsFlags(flags, &out->tls);
}

absl::Status ConfigureDaemonAuth(const AuthFlags& flags, const std::string& program) {
  absl::StatusOr<std::string> token = DaemonToken(flags.token_file, flags.disable_auth);
  if (!token.ok()) return token.status();
  if (token->empty()) {
    spdlog::warn("{}: auth is disabled (--disable-auth): anyone who can reach this process's ports can run code "
                 "on the cluster; use it only on trusted networks",
                 program);
  }
  SetClusterToken(*std::move(token));
  if (absl::Status s = ConfigureDaemonTls(flags.tls); !s.ok()) return s;
  ExportTlsEnvironment();
  return absl::OkStatus();
}

void ExportTlsEnvironment() {
  const TlsFiles tls = CurrentTlsFiles();
  for (const auto& [name, path] : {std::pair{kTlsCertEnv, tls.cert}, {kTlsKeyEnv, tls.key}, {kTlsCaEnv, tls.ca}}) {
    if (path.empty()) {
      unsetenv(name);
    } else {
      std::error_code ec;
      const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
      setenv(name, (ec ? path : absolute.string()).c_str(), 1);
    }
  }
}

}  // namespace shoal
