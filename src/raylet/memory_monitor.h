// The raylet's memory monitor (Ray's memory_usage_threshold and memory_monitor_refresh_ms):
// when the node's memory use passes a threshold, it picks one leased worker to kill, so that
// the node gets memory back before the kernel's OOM killer takes a process of its own choosing
// (the raylet, the object store, a driver).
//
// Memory use counts what the kernel cannot reclaim: MemTotal - MemAvailable from /proc/meminfo
// (page cache is not counted) or, when the raylet runs in a cgroup whose memory limit is below
// the machine's memory, the cgroup's usage minus its inactive file pages, against that limit.
//
// Which worker (PickWorkerToKill, Ray's group-by-owner policy): leases of retriable tasks come
// first, grouped by their owner; the group with the most leases is chosen (on a tie, the group
// whose earliest lease is the newest), and in it the newest lease. Leases of non-retriable
// tasks and of actors form one group, chosen only when no retriable lease is left. The kill's
// message names the node, its memory use and the threshold; the raylet gives it to the lease's
// owner, which retries the task or fails it with OUT_OF_MEMORY.
//
// Threading: MemoryMonitor is not synchronized; the raylet's event loop calls Tick. Ownership:
// the monitor borrows the reader and the clock, which must outlive it.
// Errors: a reading that fails is logged and skipped; nothing aborts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/common/clock.h"
#include "src/common/ids.h"

namespace shoal {

// The node's memory at one moment.
struct MemorySnapshot {
  int64_t used_bytes = 0;   // not reclaimable
  int64_t total_bytes = 0;  // the machine's memory, or the cgroup's limit
  std::string source;       // where it was read: "/proc/meminfo", "cgroup v2 /sys/fs/cgroup/x"
};

// Where the monitor reads memory from: the system in production, a fake in tests.
class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  virtual absl::StatusOr<MemorySnapshot> Read() = 0;
  // The resident memory of process `pid` in bytes; -1 when it cannot be read.
  virtual int64_t ProcessResidentBytes(int64_t pid) = 0;
};

// Reads /proc and /sys/fs/cgroup below `root` ("" for the real ones; tests pass a directory
// laid out the same way). The cgroup is the raylet's own (/proc/self/cgroup), v2 or v1; of it
// and its ancestors, the limited one whose use is the largest share of its limit counts.
class SystemMemoryReader final : public MemoryReader {
 public:
  explicit SystemMemoryReader(std::string root = "") : root_(std::move(root)) {}
  absl::StatusOr<MemorySnapshot> Read() override;
  int64_t ProcessResidentBytes(int64_t pid) override;

 private:
  // The cgroup reading, when the raylet's cgroup (or an ancestor) has a memory limit.
  std::optional<MemorySnapshot> ReadCgroup(int64_t machine_total) const;
  const std::string root_;
};

// Parses /proc/meminfo: total MemTotal, used MemTotal - MemAvailable. InvalidArgument when a
// field is missing.
absl::StatusOr<MemorySnapshot> MemoryFromMeminfo(absl::string_view meminfo);
// The value of `key` in a cgroup memory.stat ("key value" lines); nullopt when absent.
std::optional<int64_t> MemoryStatValue(absl::string_view stat, absl::string_view key);

// A leased worker the monitor may kill.
struct LeasedWorker {
  WorkerId worker;
  int64_t pid = 0;
  std::string owner;       // the lease's owner (host:port); groups retriable leases
  bool retriable = false;  // its tasks may be retried (actors and others: false)
  absl::Time leased_at;
};

// Ray's group-by-owner choice (see the top of this file): the index in `workers` of the one to
// kill; nullopt when `workers` is empty. Pure.
std::optional<size_t> PickWorkerToKill(const std::vector<LeasedWorker>& workers);

struct MemoryMonitorOptions {
  // Kill when used / total exceeds this; in (0, 1].
  double usage_threshold = 0.95;
  // How often memory is read; zero disables the monitor. Tick's own period bounds it below.
  absl::Duration refresh_period = absl::Milliseconds(250);
  // Named in kill messages, e.g. "node 5f3a... (10.0.0.2)".
  std::string node_name;
};

// InvalidArgument naming the flag (--memory-usage-threshold, --memory-monitor-refresh-ms).
absl::Status ValidateMemoryMonitorOptions(const MemoryMonitorOptions& options);

// "1.50 GiB", "300.0 MiB", "512 B".
std::string FormatBytes(int64_t bytes);

class MemoryMonitor {
 public:
  struct Kill {
    LeasedWorker victim;
    MemorySnapshot memory;
    int64_t threshold_bytes = 0;
    std::string message;  // why, for the task's owner and the log
  };

  MemoryMonitor(MemoryReader& reader, const Clock& clock, MemoryMonitorOptions options);
  MemoryMonitor(const MemoryMonitor&) = delete;
  MemoryMonitor& operator=(const MemoryMonitor&) = delete;

  bool enabled() const { return options_.refresh_period > absl::ZeroDuration(); }
  // The use above which a worker is killed, for `total_bytes` of memory.
  int64_t ThresholdBytes(int64_t total_bytes) const;

  // Reads memory once refresh_period has passed since the last reading, unless the last victim
  // is still exiting (`exiting(pid)`: killed, not yet gone). Above the threshold, answers the
  // worker of `leased()` to kill (leased() is called only then); the caller kills it.
  std::optional<Kill> Tick(absl::FunctionRef<std::vector<LeasedWorker>()> leased,
                           absl::FunctionRef<bool(int64_t pid)> exiting);

  // The last reading (nullopt before the first).
  const std::optional<MemorySnapshot>& last() const { return last_; }

 private:
  std::string KillMessage(const LeasedWorker& victim, const MemorySnapshot& memory, int64_t threshold) const;

  MemoryReader& reader_;
  const Clock& clock_;
  const MemoryMonitorOptions options_;
  absl::Time last_read_ = absl::InfinitePast();
  absl::Time last_warning_ = absl::InfinitePast();
  std::optional<int64_t> victim_pid_;
  std::optional<MemorySnapshot> last_;
};

}  // namespace shoal
