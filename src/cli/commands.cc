// What the subcommands share; see commands.h.
#include "src/cli/commands.h"

#include <iostream>

#include "absl/strings/str_cat.h"

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
