// `shoal`: starts, stops and inspects Shoal clusters from the command line.
//
//   shoal start --head | --address HOST:PORT [flags]    shoal stop [--force]
//   shoal status [--address HOST:PORT] [--json]
//   shoal job submit|status|logs|stop|list|delete ...
//   shoal list actors|tasks|nodes|jobs|placement-groups [--filter k=v] [--limit N] [--detail] [--format F]
//   shoal get <resource> <id>     shoal summary tasks|actors     shoal timeline [--output FILE]
//   shoal microbenchmark [--filter S] [--json FILE] [--duration S] [--api python|cpp] [--compare-ray]
// Exit codes: 0 ok, 1 the action failed, 2 bad command line.
#include <iostream>
#include <string_view>

#include "src/cli/commands.h"

namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  int (*run)(int argc, char** argv);
};

constexpr Command kCommands[] = {
    {"start", "start a head node (--head) or add this machine to a cluster (--address HOST:PORT)",
     shoal::cli::RunStart},
    {"stop", "stop every Shoal process started on this machine", shoal::cli::RunStop},
    {"status", "show the cluster's nodes, resources and resource demands", shoal::cli::RunStatus},
    {"job", "submit jobs to the cluster's dashboard and follow them (submit, status, logs, stop, list, delete)",
     shoal::cli::RunJob},
    {"list", "list actors, tasks, nodes, jobs, placement-groups, workers or objects (--filter k=v, --limit, --detail, --format)",
     shoal::cli::RunList},
    {"get", "show one actor, task, node, job, placement group, worker or object by id", shoal::cli::RunGet},
    {"summary", "count tasks or actors by name and state, or summarize objects", shoal::cli::RunSummary},
    {"timeline", "write recent tasks as a Chrome trace (chrome://tracing, Perfetto)", shoal::cli::RunTimeline},
    {"memory", "objects referred to by every worker and driver, by node, and the object stores' use",
     shoal::cli::RunMemory},
    {"microbenchmark", "time the shapes of `ray microbenchmark` on a fresh local cluster (--compare-ray, --api cpp)",
     shoal::cli::RunMicrobenchmark},
};

void PrintUsage(std::ostream& out) {
  out << "usage: shoal <command> [flags]\n\ncommands:\n";
  for (const Command& command : kCommands) out << "  " << command.name << "\t" << command.summary << "\n";
  out << "\nRun `shoal <command> --help` for a command's flags.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(std::cerr);
    return shoal::cli::kExitUsage;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(std::cout);
    return shoal::cli::kExitOk;
  }
  if (name == "--version") {
    std::cout << "shoal " << SHOAL_VERSION << std::endl;
    return shoal::cli::kExitOk;
  }
  for (const Command& command : kCommands) {
    if (command.name == name) return command.run(argc, argv);
  }
  std::cerr << "error: unknown command '" << name << "' (run `shoal --help` for the commands)" << std::endl;
  return shoal::cli::kExitUsage;
}
