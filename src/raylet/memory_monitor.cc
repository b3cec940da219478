#include "src/raylet/memory_monitor.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spdlog/spdlog.h"

namespace shoal {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<int64_t> ReadInt(const std::string& path) {
  std::optional<std::string> text = ReadFile(path);
  int64_t value = 0;
  if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) return std::nullopt;
  return value;
}

// The value of "key: N kB" in /proc/meminfo, in bytes.
std::optional<int64_t> MeminfoValue(absl::string_view meminfo, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(meminfo, '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t value = 0;
    if (parts.empty() || !absl::SimpleAtoi(parts[0], &value)) return std::nullopt;
    const bool kb = parts.size() > 1 && parts[1] == "kB";
    return kb ? value * 1024 : value;
  }
  return std::nullopt;
}

// One cgroup level with a memory limit.
struct CgroupLevel {
  std::string dir;
  int64_t limit = 0;
  int64_t used = 0;
};

// The raylet's cgroup path for `controller` in /proc/self/cgroup ("" for the unified v2 line).
std::optional<std::string> CgroupPath(absl::string_view self_cgroup, absl::string_view controller) {
  for (absl::string_view line : absl::StrSplit(self_cgroup, '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    const std::vector<absl::string_view> controllers = absl::StrSplit(parts[1], ',');
    if (controller.empty() ? parts[0] == "0" && parts[1].empty()
                           : absl::c_linear_search(controllers, controller)) {
      return std::string(parts[2]);
    }
  }
  return std::nullopt;
}

// The directories from `mount`+`path` up to `mount` itself, innermost first, that exist.
std::vector<std::string> LevelsUp(const std::string& mount, const std::string& path) {
  std::vector<std::string> out;
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  std::error_code ec;
  while (true) {
    std::string rel = p.relative_path().string();
    while (!rel.empty() && rel.back() == '/') rel.pop_back();
    const std::string dir = rel.empty() ? mount : absl::StrCat(mount, "/", rel);
    if (std::filesystem::is_directory(dir, ec)) out.push_back(dir);
    if (rel.empty()) break;
    p = std::filesystem::path(rel).parent_path();
  }
  return out;
}

}  // namespace

absl::StatusOr<MemorySnapshot> MemoryFromMeminfo(absl::string_view meminfo) {
  std::optional<int64_t> total = MeminfoValue(meminfo, "MemTotal");
  std::optional<int64_t> available = MeminfoValue(meminfo, "MemAvailable");
  if (!total || !available || *total <= 0) {
    return absl::InvalidArgumentError("/proc/meminfo lacks MemTotal or MemAvailable");
  }
  return MemorySnapshot{.used_bytes = std::clamp<int64_t>(*total - *available, 0, *total),
                        .total_bytes = *total,
                        .source = "/proc/meminfo"};
}

std::optional<int64_t> MemoryStatValue(absl::string_view stat, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t value = 0;
    if (parts.size() == 2 && parts[0] == key && absl::SimpleAtoi(parts[1], &value)) return value;
  }
  return std::nullopt;
}

std::optional<MemorySnapshot> SystemMemoryReader::ReadCgroup(int64_t machine_total) const {
  std::optional<std::string> self = ReadFile(root_ + "/proc/self/cgroup");
  if (!self) return std::nullopt;
  std::vector<CgroupLevel> levels;
  std::string version;
  const std::string v2_mount = root_ + "/sys/fs/cgroup";
  std::error_code ec;
  if (std::filesystem::exists(v2_mount + "/cgroup.controllers", ec)) {
    version = "v2";
    for (const std::string& dir : LevelsUp(v2_mount, CgroupPath(*self, "").value_or("/"))) {
      std::optional<int64_t> limit = ReadInt(dir + "/memory.max");  // "max": no limit
      std::optional<int64_t> current = ReadInt(dir + "/memory.current");
      std::optional<std::string> stat = ReadFile(dir + "/memory.stat");
      if (!limit || !current) continue;
      const int64_t inactive = stat ? MemoryStatValue(*stat, "inactive_file").value_or(0) : 0;
      levels.push_back({dir, *limit, *current - inactive});
    }
  } else if (std::optional<std::string> path = CgroupPath(*self, "memory")) {
    version = "v1";
    for (const std::string& dir : LevelsUp(v2_mount + "/memory", *path)) {
      std::optional<int64_t> limit = ReadInt(dir + "/memory.limit_in_bytes");
      std::optional<int64_t> usage = ReadInt(dir + "/memory.usage_in_bytes");
      std::optional<std::string> stat = ReadFile(dir + "/memory.stat");
      if (!limit || !usage) continue;
      const int64_t inactive = stat ? MemoryStatValue(*stat, "total_inactive_file").value_or(0) : 0;
      levels.push_back({dir, *limit, *usage - inactive});
    }
  }
  // Only a limit below the machine's memory binds; of those, the one closest to full.
  const CgroupLevel* binding = nullptr;
  for (const CgroupLevel& level : levels) {
    if (level.limit <= 0 || level.limit >= machine_total) continue;
    if (binding == nullptr || static_cast<double>(level.used) / static_cast<double>(level.limit) >
                                  static_cast<double>(binding->used) / static_cast<double>(binding->limit)) {
      binding = &level;
    }
  }
  if (binding == nullptr) return std::nullopt;
  return MemorySnapshot{.used_bytes = std::clamp<int64_t>(binding->used, 0, binding->limit),
                        .total_bytes = binding->limit,
                        .source = absl::StrCat("cgroup ", version, " ", binding->dir.substr(root_.size()))};
}

absl::StatusOr<MemorySnapshot> SystemMemoryReader::Read() {
  std::optional<std::string> meminfo = ReadFile(root_ + "/proc/meminfo");
  if (!meminfo) return absl::UnavailableError(absl::StrCat("cannot read ", root_, "/proc/meminfo"));
  absl::StatusOr<MemorySnapshot> machine = MemoryFromMeminfo(*meminfo);
  if (!machine.ok()) return machine.status();
  if (std::optional<MemorySnapshot> cgroup = ReadCgroup(machine->total_bytes)) return *std::move(cgroup);
  return machine;
}

int64_t SystemMemoryReader::ProcessResidentBytes(int64_t pid) {
  std::optional<std::string> statm = ReadFile(absl::StrCat(root_, "/proc/", pid, "/statm"));
  if (!statm) return -1;
  std::vector<absl::string_view> parts = absl::StrSplit(*statm, ' ', absl::SkipEmpty());
  int64_t pages = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &pages)) return -1;
  return pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

std::optional<size_t> PickWorkerToKill(const std::vector<LeasedWorker>& workers) {
  struct Group {
    std::vector<size_t> members;
    absl::Time earliest = absl::InfiniteFuture();
  };
  // Retriable leases by owner; every other lease in one group (key {false, ""}).
  std::map<std::pair<bool, std::string>, Group> groups;
  for (size_t i = 0; i < workers.size(); ++i) {
    const LeasedWorker& w = workers[i];
    Group& g = groups[{w.retriable, w.retriable ? w.owner : std::string()}];
    g.members.push_back(i);
    g.earliest = std::min(g.earliest, w.leased_at);
  }
  const std::pair<const std::pair<bool, std::string>, Group>* best = nullptr;
  for (const auto& entry : groups) {
    if (best == nullptr) {
      best = &entry;
      continue;
    }
    const auto& [key, g] = entry;
    const auto& [best_key, b] = *best;
    if (key.first != best_key.first) {
      if (key.first) best = &entry;  // retriable first
    } else if (g.members.size() != b.members.size()) {
      if (g.members.size() > b.members.size()) best = &entry;  // then the largest group
    } else if (g.earliest > b.earliest) {
      best = &entry;  // then the newest group
    }
  }
  if (best == nullptr) return std::nullopt;
  size_t victim = best->second.members.front();
  for (size_t i : best->second.members) {
    if (workers[i].leased_at > workers[victim].leased_at) victim = i;
  }
  return victim;
}

absl::Status ValidateMemoryMonitorOptions(const MemoryMonitorOptions& options) {
  if (!(options.usage_threshold > 0 && options.usage_threshold <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--memory-usage-threshold must be above 0 and at most 1 (a fraction of the node's memory), got ",
        options.usage_threshold));
  }
  if (options.refresh_period < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--memory-monitor-refresh-ms must not be negative (0 disables the monitor)");
  }
  return absl::OkStatus();
}

std::string FormatBytes(int64_t bytes) {
  constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
  if (bytes >= kGiB) return absl::StrFormat("%.2f GiB", static_cast<double>(bytes) / kGiB);
  if (bytes >= kMiB) return absl::StrFormat("%.1f MiB", static_cast<double>(bytes) / kMiB);
  if (bytes >= kKiB) return absl::StrFormat("%.1f KiB", static_cast<double>(bytes) / kKiB);
  return absl::StrCat(bytes, " B");
}

MemoryMonitor::MemoryMonitor(MemoryReader& reader, const Clock& clock, MemoryMonitorOptions options)
    : reader_(reader), clock_(clock), options_(std::move(options)) {}

int64_t MemoryMonitor::ThresholdBytes(int64_t total_bytes) const {
  return static_cast<int64_t>(static_cast<double>(total_bytes) * options_.usage_threshold);
}

std::optional<MemoryMonitor::Kill> MemoryMonitor::Tick(absl::FunctionRef<std::vector<LeasedWorker>()> leased,
                                                       absl::FunctionRef<bool(int64_t pid)> exiting) {
  if (!enabled()) return std::nullopt;
  const absl::Time now = clock_.Now();
  if (now - last_read_ < options_.refresh_period) return std::nullopt;
  // Until the last victim is gone its memory is not back: a reading now would pick a second.
  if (victim_pid_ && exiting(*victim_pid_)) return std::nullopt;
  victim_pid_.reset();
  last_read_ = now;
  absl::StatusOr<MemorySnapshot> memory = reader_.Read();
  if (!memory.ok()) {
    if (now - last_warning_ >= absl::Seconds(60)) {
      last_warning_ = now;
      spdlog::warn("memory monitor: {}", memory.status().ToString());
    }
    return std::nullopt;
  }
  last_ = *memory;
  const int64_t threshold = ThresholdBytes(memory->total_bytes);
  if (memory->used_bytes <= threshold) return std::nullopt;
  std::vector<LeasedWorker> workers = leased();
  std::optional<size_t> victim = PickWorkerToKill(workers);
  if (!victim) {
    if (now - last_warning_ >= absl::Seconds(5)) {
      last_warning_ = now;
      spdlog::warn("memory monitor: memory use {} of {} is above the threshold {}, but no leased worker is left",
                   FormatBytes(memory->used_bytes), FormatBytes(memory->total_bytes), FormatBytes(threshold));
    }
    return std::nullopt;
  }
  Kill kill{.victim = workers[*victim], .memory = *memory, .threshold_bytes = threshold};
  kill.message = KillMessage(kill.victim, kill.memory, threshold);
  victim_pid_ = kill.victim.pid;
  return kill;
}

std::string MemoryMonitor::KillMessage(const LeasedWorker& victim, const MemorySnapshot& memory,
                                       int64_t threshold) const {
  const double share = static_cast<double>(memory.used_bytes) / static_cast<double>(memory.total_bytes);
  const int64_t rss = reader_.ProcessResidentBytes(victim.pid);
  return absl::StrFormat(
      "the worker %s (pid %d) was killed by the memory monitor of %s: memory use %s of %s (%.3f, from %s) was "
      "above the threshold %.3f (%s, --memory-usage-threshold); the worker itself used %s. %s To avoid this, "
      "run fewer tasks at once (ask for the `memory` resource), make each use less memory, or give the node more",
      victim.worker.Hex(), victim.pid, options_.node_name, FormatBytes(memory.used_bytes),
      FormatBytes(memory.total_bytes), share, memory.source, options_.usage_threshold, FormatBytes(threshold),
      rss >= 0 ? FormatBytes(rss) : std::string("an unknown amount"),
      victim.retriable ? "It ran the newest retriable task of the owner with the most running tasks on the node."
                       : "It ran a task that cannot be retried (or an actor): no retriable task was left to kill.");
}

}  // namespace shoal
