// `shoal stop`: stops every daemon that `shoal start` recorded on this machine.
//
// Only recorded processes are touched, and only while their start time still matches the
// record. Raylets go first (so they can unregister from a GCS that is still up), then anything
// else, then the GCS. Each group gets SIGTERM, the grace period, then SIGKILL.
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/cli/commands.h"
#include "src/cluster/local_state.h"
#include "src/common/session.h"

namespace shoal::cli {
namespace {

constexpr absl::Duration kForceGrace = absl::Seconds(1);

constexpr char kHelp[] = R"(
Stops every Shoal process started on this machine by `shoal start` (for the temp root
$SHOAL_TMPDIR, default /tmp/shoal): raylets first, then the dashboard (which stops its jobs),
then the GCS. Each gets SIGTERM, then
SIGKILL if it is still running after the grace period (after one second with --force).
)";

// Raylets, then other daemons, then the GCS.
int StopOrder(const std::string& name) {
  if (name == cluster::kRaylet) return 0;
  if (name == cluster::kGcs) return 2;
  return 1;
}

struct StopTally {
  int stopped = 0;
  std::vector<std::string> failed;  // "gcs (pid 12)"
  bool gcs_left = false;
};

// Stops one group of records and removes the records of those that ended.
void StopGroup(const std::vector<cluster::ProcessRecord>& group, absl::Duration grace, StopTally* tally) {
  std::vector<cluster::ProcessId> ids;
  for (const cluster::ProcessRecord& record : group) ids.push_back(record.id);
  cluster::StopOutcome outcome = cluster::StopProcesses(ids, grace);
  auto contains = [](const std::vector<cluster::ProcessId>& ids, const cluster::ProcessId& id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (const cluster::ProcessRecord& record : group) {
    std::string what = absl::StrCat(record.name, " (pid ", record.id.pid, ")");
    if (contains(outcome.remaining, record.id)) {
      tally->failed.push_back(what);
      tally->gcs_left |= record.name == cluster::kGcs;
      continue;
    }
    (void)cluster::RemoveProcessRecord(record);
    ++tally->stopped;
    std::cout << "Stopped " << what << (contains(outcome.killed, record.id) ? " with SIGKILL" : "") << std::endl;
  }
}

}  // namespace

int RunStop(int argc, char** argv) {
  bool force = false;
  int64_t grace_period_s = 10;
  std::string temp_dir;
  FlagSet flags("shoal stop");
  flags.AddString("temp-dir", &temp_dir, "the root `shoal start --temp-dir` used (default: $SHOAL_TMPDIR, else /tmp/shoal)");
  flags.AddBool("force", &force, "SIGKILL whatever has not exited one second after SIGTERM");
  flags.AddInt("grace-period-s", &grace_period_s, "seconds to wait after SIGTERM before SIGKILL");
  if (std::optional<int> done = ParseCommandFlags(flags, argc, argv, kHelp)) return *done;
  if (grace_period_s < 0) {
    return UsageError(absl::InvalidArgumentError(
        absl::StrCat("--grace-period-s must be >= 0, got ", grace_period_s)));
  }

  const std::string root = temp_dir.empty() ? ShoalTempRoot() : std::filesystem::absolute(temp_dir).string();
  cluster::RecordScan scan = cluster::ListProcessRecords(root);
  for (const std::string& path : scan.unreadable) {
    std::cerr << "warning: ignoring " << path << ": not a valid process record" << std::endl;
  }
  // A record whose process has ended (or whose pid now names another process) is stale.
  std::vector<std::vector<cluster::ProcessRecord>> groups(3);
  for (const cluster::ProcessRecord& record : scan.records) {
    if (cluster::IsRunning(record.id)) {
      groups[StopOrder(record.name)].push_back(record);
    } else {
      (void)cluster::RemoveProcessRecord(record);
    }
  }

  StopTally tally;
  absl::Duration grace = force ? kForceGrace : absl::Seconds(grace_period_s);
  for (const std::vector<cluster::ProcessRecord>& group : groups) {
    if (!group.empty()) StopGroup(group, grace, &tally);
  }
  if (!tally.gcs_left) cluster::RemoveCurrentCluster(root);

  if (tally.stopped == 0 && tally.failed.empty()) {
    std::cout << "No running Shoal processes found." << std::endl;
  } else if (tally.stopped > 0) {
    std::cout << "Stopped " << tally.stopped << " Shoal process" << (tally.stopped == 1 ? "" : "es") << "." << std::endl;
  }
  if (!tally.failed.empty()) {
    return Fail(absl::UnavailableError(absl::StrCat("could not stop ", absl::StrJoin(tally.failed, ", "))));
  }
  return kExitOk;
}

}  // namespace shoal::cli
