// What the subcommands share; see commands.h.
#include "src/cli/commands.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "src/cluster/local_state.h"
#include "src/cluster/token.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/common/session.h"

namespace shoal::cli {

int Fail(const absl::Status& status) {
  std::cerr << "error: " << status.message() << std::endl;
  return kExitFailure;
}

int UsageError(const absl::Status& status) {
  std::cerr << "error: " << status.message() << std::endl;
  return kExitUsage;
}

std::optional<int> ParseCommandFlags(FlagSet& flags, int argc, char** argv, const std::string& help_footer) {
  absl::Status status = flags.Parse(argc, argv, /*first=*/2);
  if (absl::IsCancelled(status)) {
    std::cout << flags.Usage() << help_footer;
    return kExitOk;
  }
  if (!status.ok()) return UsageError(status);
  if (!flags.positional().empty()) {
    return UsageError(absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument '", flags.positional().front(), "' (see shoal ", argv[1], " --help)")));
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ConnectToCluster(const FlagSet& flags, const std::string& address) {
  std::string resolved = address;
  if (!flags.WasSet("address")) {
    absl::StatusOr<std::string> current = cluster::ReadCurrentCluster(ShoalTempRoot());
    if (!current.ok()) {
      return absl::NotFoundError(
          "no Shoal cluster found on this machine: pass --address HOST:PORT, set SHOAL_ADDRESS, "
          "or start one with `shoal start --head`");
    }
    resolved = *current;
  }
  if (absl::Status valid = ParseHostPort(resolved).status(); !valid.ok()) {
    return flags.WasSet("address") ? valid : absl::FailedPreconditionError(valid.message());
  }
  absl::StatusOr<std::string> token = cluster::FindClusterToken(resolved);
  if (!token.ok()) return token.status();
  SetClusterToken(*token);
  return resolved;
}

bool GivenOnCommandLine(int argc, char** argv, const std::string& name) {
  const std::string flag = "--" + name;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == flag || arg.starts_with(flag + "=")) return true;
  }
  return false;
}

}  // namespace shoal::cli
