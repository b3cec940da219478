// A ProcessSpawner that starts nothing: it records what it was asked to spawn and lets the test
// decide when each "process" exits. For tests.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/raylet/process_spawner.h"

namespace shoal {

class FakeProcessSpawner : public ProcessSpawner {
 public:
  struct Process {
    int64_t pid = 0;
    ProcessSpec spec;
    bool killed = false;
    std::optional<ProcessExit> exit;  // set once it has exited (reaped or not)
    bool reaped = false;

    // The value of `name` in the spec's environment ("" if unset).
    std::string Env(const std::string& name) const {
      for (const auto& [k, v] : spec.env) {
        if (k == name) return v;
      }
      return "";
    }
  };

  absl::StatusOr<int64_t> Spawn(const ProcessSpec& spec) override {
    if (!next_error_.ok()) {
      absl::Status s = next_error_;
      next_error_ = absl::OkStatus();
      return s;
    }
    int64_t pid = next_pid_++;
    Process p;
    p.pid = pid;
    p.spec = spec;
    processes_[pid] = std::move(p);
    order_.push_back(pid);
    return pid;
  }
  void Kill(int64_t pid) override {
    auto it = processes_.find(pid);
    if (it == processes_.end()) return;
    it->second.killed = true;
    if (!it->second.exit) it->second.exit = ProcessExit{.exit_code = -1, .signal = 9};
  }
  std::optional<ProcessExit> TryReap(int64_t pid) override {
    auto it = processes_.find(pid);
    if (it == processes_.end() || it->second.reaped) return ProcessExit{.exit_code = -1, .signal = 0};
    if (!it->second.exit) return std::nullopt;
    it->second.reaped = true;
    return it->second.exit;
  }

  // Test controls.
  void Exit(int64_t pid, int code) { processes_.at(pid).exit = ProcessExit{.exit_code = code, .signal = 0}; }
  void FailNextSpawn(absl::Status s) { next_error_ = std::move(s); }

  // Every process ever spawned, in spawn order.
  std::vector<const Process*> spawned() const {
    std::vector<const Process*> out;
    for (int64_t pid : order_) out.push_back(&processes_.at(pid));
    return out;
  }
  const Process& process(int64_t pid) const { return processes_.at(pid); }
  // Spawned and neither exited nor killed.
  int NumRunning() const {
    int n = 0;
    for (const auto& [pid, p] : processes_) n += p.exit ? 0 : 1;
    return n;
  }

 private:
  int64_t next_pid_ = 1000;
  std::map<int64_t, Process> processes_;
  std::vector<int64_t> order_;
  absl::Status next_error_;
};

}  // namespace shoal
