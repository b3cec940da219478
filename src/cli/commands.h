// The `shoal` subcommands and what they share: exit codes, error printing, flag parsing.
//
// Each Run* takes the whole argv (argv[1] is the subcommand's name) and answers the process
// exit code. Errors go to stderr as one line, `error: <message>`.
// Threading: the main thread.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/common/flags.h"

namespace shoal::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command was fine but the action failed
inline constexpr int kExitUsage = 2;    // bad command line; nothing was done

int RunStart(int argc, char** argv);
int RunStop(int argc, char** argv);
int RunStatus(int argc, char** argv);
int RunJob(int argc, char** argv);
// The state API (state.cc): `shoal list`, `shoal get`, `shoal summary`, `shoal timeline`.
int RunList(int argc, char** argv);
int RunGet(int argc, char** argv);
int RunSummary(int argc, char** argv);
int RunTimeline(int argc, char** argv);
int RunMemory(int argc, char** argv);
int RunMicrobenchmark(int argc, char** argv);

// Prints `error: <message>` and answers kExitFailure.
int Fail(const absl::Status& status);
// Prints `error: <message>` and answers kExitUsage.
int UsageError(const absl::Status& status);

// Parses a subcommand's flags (argv[2..]). Answers an exit code when the command should end
// now: kExitOk after printing help for --help (the usage, then `help_footer`), kExitUsage
// after printing the error for a bad flag or a stray argument. nullopt to go on.
std::optional<int> ParseCommandFlags(FlagSet& flags, int argc, char** argv, const std::string& help_footer);

// The GCS address a command talks to: --address when given (flag or $SHOAL_ADDRESS), else the
// cluster last started on this machine; the cluster's token is set for this process's calls.
// InvalidArgument for a malformed --address (a usage error), other errors otherwise.
absl::StatusOr<std::string> ConnectToCluster(const FlagSet& flags, const std::string& address);

// True when `--name` appears on the command line itself (FlagSet::WasSet is also true when
// the value came from SHOAL_<NAME> in the environment).
bool GivenOnCommandLine(int argc, char** argv, const std::string& name);

}  // namespace shoal::cli
