#include "src/raylet/memory_monitor.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "src/common/error_info.h"
#include "src/common/fake_clock.h"
#include "src/raylet/fake_process_spawner.h"
#include "src/raylet/lease_manager.h"
#include "src/scheduler/hybrid_policy.h"
#include "tests/test_util/resource_helpers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// ---------------------------------------------------------------------------------------------
// Reading memory

constexpr char kMeminfo[] =
    "MemTotal:       16384000 kB\n"
    "MemFree:         1000000 kB\n"
    "MemAvailable:    4096000 kB\n"
    "Buffers:          100000 kB\n"
    "Cached:          5000000 kB\n";

TEST_CASE("meminfo: used is MemTotal - MemAvailable, page cache not counted", "[memory_monitor]") {
  auto m = MemoryFromMeminfo(kMeminfo);
  REQUIRE_OK(m);
  CHECK(m->total_bytes == 16384000LL * 1024);
  CHECK(m->used_bytes == (16384000LL - 4096000LL) * 1024);
  CHECK(m->source == "/proc/meminfo");
  CHECK_CODE(MemoryFromMeminfo("MemTotal: 100 kB\nMemFree: 5 kB\n"), kInvalidArgument);
  CHECK_CODE(MemoryFromMeminfo(""), kInvalidArgument);
}

TEST_CASE("memory.stat values are found by exact key", "[memory_monitor]") {
  const std::string stat = "active_file 10\ninactive_file 4096\ntotal_inactive_file 8192\nanon 7\n";
  CHECK(MemoryStatValue(stat, "inactive_file") == 4096);
  CHECK(MemoryStatValue(stat, "total_inactive_file") == 8192);
  CHECK_FALSE(MemoryStatValue(stat, "file").has_value());
  CHECK_FALSE(MemoryStatValue("", "anon").has_value());
}

// A directory laid out like / for SystemMemoryReader: /proc/meminfo, /proc/self/cgroup and
// cgroup files under /sys/fs/cgroup.
class FakeRoot {
 public:
  FakeRoot() {
    char tmpl[] = "/tmp/memmon-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Write("/proc/meminfo", kMeminfo);
  }
  ~FakeRoot() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(dir_ + path).parent_path());
    std::ofstream(dir_ + path) << text;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

TEST_CASE("Without a limited cgroup the reader uses /proc/meminfo", "[memory_monitor]") {
  FakeRoot root;
  SystemMemoryReader reader(root.dir());
  auto m = reader.Read();
  REQUIRE_OK(m);
  CHECK(m->source == "/proc/meminfo");
  CHECK(m->used_bytes == (16384000LL - 4096000LL) * 1024);

  // cgroup v2 without a limit ("max"), and one whose limit is above the machine's memory.
  root.Write("/proc/self/cgroup", "0::/user.slice/raylet\n");
  root.Write("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  root.Write("/sys/fs/cgroup/user.slice/raylet/memory.max", "max\n");
  root.Write("/sys/fs/cgroup/user.slice/raylet/memory.current", "1000\n");
  root.Write("/sys/fs/cgroup/user.slice/memory.max", std::to_string(64 * kGiB) + "\n");
  root.Write("/sys/fs/cgroup/user.slice/memory.current", "1000\n");
  m = reader.Read();
  REQUIRE_OK(m);
  CHECK(m->source == "/proc/meminfo");

  FakeRoot broken;
  broken.Write("/proc/meminfo", "nothing here\n");
  CHECK_CODE(SystemMemoryReader(broken.dir()).Read(), kInvalidArgument);
  CHECK_CODE(SystemMemoryReader(broken.dir() + "/missing").Read(), kUnavailable);
}

TEST_CASE("A cgroup v2 limit counts: its usage minus inactive file pages", "[memory_monitor]") {
  FakeRoot root;
  root.Write("/proc/self/cgroup", "0::/jobs/raylet\n");
  root.Write("/sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
  root.Write("/sys/fs/cgroup/jobs/raylet/memory.max", std::to_string(2 * kGiB) + "\n");
  root.Write("/sys/fs/cgroup/jobs/raylet/memory.current", std::to_string(1 * kGiB + 300 * kMiB) + "\n");
  root.Write("/sys/fs/cgroup/jobs/raylet/memory.stat", "anon 100\ninactive_file " + std::to_string(300 * kMiB) + "\n");
  SystemMemoryReader reader(root.dir());
  auto m = reader.Read();
  REQUIRE_OK(m);
  CHECK(m->total_bytes == 2 * kGiB);
  CHECK(m->used_bytes == 1 * kGiB);
  CHECK(m->source == "cgroup v2 /sys/fs/cgroup/jobs/raylet");

  // A tighter ancestor binds instead: the level whose use is the largest share of its limit.
  root.Write("/sys/fs/cgroup/jobs/memory.max", std::to_string(kGiB + 100 * kMiB) + "\n");
  root.Write("/sys/fs/cgroup/jobs/memory.current", std::to_string(kGiB) + "\n");
  m = reader.Read();
  REQUIRE_OK(m);
  CHECK(m->total_bytes == kGiB + 100 * kMiB);
  CHECK(m->used_bytes == kGiB);
  CHECK(m->source == "cgroup v2 /sys/fs/cgroup/jobs");
}

TEST_CASE("A cgroup v2 namespace: the limit sits on the mount's root", "[memory_monitor]") {
  FakeRoot root;
  root.Write("/proc/self/cgroup", "0::/\n");
  root.Write("/sys/fs/cgroup/cgroup.controllers", "memory\n");
  root.Write("/sys/fs/cgroup/memory.max", std::to_string(4 * kGiB) + "\n");
  root.Write("/sys/fs/cgroup/memory.current", std::to_string(3 * kGiB) + "\n");
  auto m = SystemMemoryReader(root.dir()).Read();
  REQUIRE_OK(m);
  CHECK(m->total_bytes == 4 * kGiB);
  CHECK(m->used_bytes == 3 * kGiB);  // no memory.stat: nothing subtracted
}

TEST_CASE("A cgroup v1 limit counts: usage minus total_inactive_file", "[memory_monitor]") {
  FakeRoot root;
  root.Write("/proc/self/cgroup", "12:pids:/\n4:memory:/docker/abc\n0::/\n");
  const std::string dir = "/sys/fs/cgroup/memory/docker/abc";
  root.Write(dir + "/memory.limit_in_bytes", std::to_string(kGiB) + "\n");
  root.Write(dir + "/memory.usage_in_bytes", std::to_string(900 * kMiB) + "\n");
  root.Write(dir + "/memory.stat", "inactive_file 1\ntotal_inactive_file " + std::to_string(100 * kMiB) + "\n");
  // The unlimited root of the hierarchy (a huge limit) does not count.
  root.Write("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  root.Write("/sys/fs/cgroup/memory/memory.usage_in_bytes", std::to_string(10 * kGiB) + "\n");
  auto m = SystemMemoryReader(root.dir()).Read();
  REQUIRE_OK(m);
  CHECK(m->total_bytes == kGiB);
  CHECK(m->used_bytes == 800 * kMiB);
  CHECK(m->source == "cgroup v1 " + dir);
}

TEST_CASE("A process's resident memory comes from /proc/<pid>/statm", "[memory_monitor]") {
  FakeRoot root;
  root.Write("/proc/4242/statm", "5000 300 20 1 0 200 0\n");
  SystemMemoryReader reader(root.dir());
  CHECK(reader.ProcessResidentBytes(4242) == 300 * sysconf(_SC_PAGESIZE));
  CHECK(reader.ProcessResidentBytes(4243) == -1);
  // The real one: this process is resident.
  CHECK(SystemMemoryReader().ProcessResidentBytes(getpid()) > 0);
}

// ---------------------------------------------------------------------------------------------
// Choosing the worker

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

LeasedWorker Leased(int n, const std::string& owner, bool retriable, int leased_s) {
  return LeasedWorker{.worker = WorkerId::FromRandom(), .pid = 1000 + n, .owner = owner, .retriable = retriable,
                      .leased_at = kT0 + absl::Seconds(leased_s)};
}

TEST_CASE("Policy: nothing leased, nothing to kill", "[memory_monitor][policy]") {
  CHECK_FALSE(PickWorkerToKill({}).has_value());
}

TEST_CASE("Policy: a retriable task goes before newer non-retriable tasks and actors", "[memory_monitor][policy]") {
  std::vector<LeasedWorker> w = {Leased(0, "a:1", true, 1), Leased(1, "b:1", false, 50), Leased(2, "gcs", false, 60)};
  CHECK(PickWorkerToKill(w) == 0u);
}

TEST_CASE("Policy: the newest lease of the owner with the most leases", "[memory_monitor][policy]") {
  std::vector<LeasedWorker> w = {Leased(0, "a:1", true, 1), Leased(1, "a:1", true, 5), Leased(2, "a:1", true, 3),
                                 Leased(3, "b:1", true, 10), Leased(4, "b:1", true, 11)};
  CHECK(PickWorkerToKill(w) == 1u);  // a has 3 leases: its newest
}

TEST_CASE("Policy: equal groups, the one that started last goes first", "[memory_monitor][policy]") {
  // a started at 1 (earliest lease), b at 4: b is the newer group, even though a's newest
  // lease (9) is newer than any of b's.
  std::vector<LeasedWorker> w = {Leased(0, "a:1", true, 1), Leased(1, "a:1", true, 9), Leased(2, "b:1", true, 4),
                                 Leased(3, "b:1", true, 6)};
  CHECK(PickWorkerToKill(w) == 3u);
}

TEST_CASE("Policy: non-retriable tasks and actors only when nothing retriable is left, newest first",
          "[memory_monitor][policy]") {
  // Different owners, but non-retriable leases form one group.
  std::vector<LeasedWorker> w = {Leased(0, "a:1", false, 3), Leased(1, "gcs", false, 7), Leased(2, "b:1", false, 5)};
  CHECK(PickWorkerToKill(w) == 1u);
}

TEST_CASE("Policy: a retriable lease alone beats a larger non-retriable group", "[memory_monitor][policy]") {
  std::vector<LeasedWorker> w = {Leased(0, "x:1", false, 1), Leased(1, "x:1", false, 2), Leased(2, "x:1", false, 3),
                                 Leased(3, "a:1", true, 0)};
  CHECK(PickWorkerToKill(w) == 3u);
}

// ---------------------------------------------------------------------------------------------
// The monitor

class FakeMemoryReader : public MemoryReader {
 public:
  absl::StatusOr<MemorySnapshot> Read() override {
    ++reads;
    if (!error.ok()) return error;
    return MemorySnapshot{.used_bytes = used, .total_bytes = total, .source = "fake"};
  }
  int64_t ProcessResidentBytes(int64_t pid) override { return pid == 1001 ? 700 * kMiB : -1; }

  int64_t used = 0;
  int64_t total = 8 * kGiB;
  absl::Status error;
  int reads = 0;
};

struct MonitorTest {
  explicit MonitorTest(MemoryMonitorOptions o = Options()) : monitor(reader, clock, std::move(o)) {}
  static MemoryMonitorOptions Options() {
    return {.usage_threshold = 0.75, .refresh_period = absl::Milliseconds(250), .node_name = "node abc (10.0.0.5)"};
  }
  // One tick, `period` after the last.
  std::optional<MemoryMonitor::Kill> Tick(absl::Duration period = absl::Milliseconds(250)) {
    clock.Advance(period);
    return monitor.Tick(
        [this] {
          ++candidate_calls;
          return workers;
        },
        [this](int64_t pid) { return exiting.contains(pid); });
  }

  FakeMemoryReader reader;
  FakeClock clock;
  MemoryMonitor monitor;
  std::vector<LeasedWorker> workers = {Leased(0, "a:1", true, 1), Leased(1, "a:1", true, 2),
                                       Leased(2, "b:1", false, 3)};
  std::set<int64_t> exiting;
  int candidate_calls = 0;
};

TEST_CASE("Below the threshold nothing is killed and no candidate is listed", "[memory_monitor]") {
  MonitorTest t;
  t.reader.used = 6 * kGiB;  // exactly 0.75: not above
  CHECK_FALSE(t.Tick().has_value());
  CHECK(t.reader.reads == 1);
  CHECK(t.candidate_calls == 0);
  REQUIRE(t.monitor.last().has_value());
  CHECK(t.monitor.last()->used_bytes == 6 * kGiB);
  CHECK(t.monitor.ThresholdBytes(8 * kGiB) == 6 * kGiB);
}

TEST_CASE("Above the threshold the policy's choice is killed, with node, usage and threshold named",
          "[memory_monitor]") {
  MonitorTest t;
  t.reader.used = 7 * kGiB;
  auto kill = t.Tick();
  REQUIRE(kill.has_value());
  CHECK(kill->victim.pid == 1001);  // a's newest retriable lease
  CHECK(kill->victim.worker == t.workers[1].worker);
  CHECK(kill->threshold_bytes == 6 * kGiB);
  CHECK(kill->memory.used_bytes == 7 * kGiB);
  CHECK_THAT(kill->message, Catch::Contains("node abc (10.0.0.5)"));
  CHECK_THAT(kill->message, Catch::Contains("memory use 7.00 GiB of 8.00 GiB (0.875"));
  CHECK_THAT(kill->message, Catch::Contains("threshold 0.750 (6.00 GiB"));
  CHECK_THAT(kill->message, Catch::Contains("700.0 MiB"));  // what the worker itself used
  CHECK_THAT(kill->message, Catch::Contains(t.workers[1].worker.Hex()));
  CHECK_THAT(kill->message, Catch::Contains("pid 1001"));
}

TEST_CASE("Memory is read once per refresh period", "[memory_monitor]") {
  MonitorTest t;
  t.reader.used = kGiB;
  CHECK_FALSE(t.Tick().has_value());
  CHECK_FALSE(t.Tick(absl::Milliseconds(100)).has_value());
  CHECK_FALSE(t.Tick(absl::Milliseconds(100)).has_value());
  CHECK(t.reader.reads == 1);
  CHECK_FALSE(t.Tick(absl::Milliseconds(50)).has_value());
  CHECK(t.reader.reads == 2);
}

TEST_CASE("After a kill the monitor waits for the victim to exit before it picks another", "[memory_monitor]") {
  MonitorTest t;
  t.reader.used = 8 * kGiB;
  auto first = t.Tick();
  REQUIRE(first.has_value());
  CHECK(first->victim.pid == 1001);
  // The raylet killed it; it has not exited yet.
  t.exiting.insert(1001);
  t.workers.erase(t.workers.begin() + 1);
  CHECK_FALSE(t.Tick().has_value());
  CHECK_FALSE(t.Tick(absl::Seconds(5)).has_value());
  CHECK(t.reader.reads == 1);
  // Gone, and memory still high: the next one.
  t.exiting.clear();
  auto second = t.Tick();
  REQUIRE(second.has_value());
  CHECK(second->victim.pid == 1000);
  CHECK(t.reader.reads == 2);
  // Gone, and memory back under the threshold: nothing more.
  t.workers.erase(t.workers.begin());
  t.reader.used = 5 * kGiB;
  CHECK_FALSE(t.Tick().has_value());
  // Only the non-retriable lease is left when memory runs high again.
  t.reader.used = 8 * kGiB;
  auto third = t.Tick();
  REQUIRE(third.has_value());
  CHECK(third->victim.pid == 1002);
  CHECK_THAT(third->message, Catch::Contains("cannot be retried"));
}

TEST_CASE("Nothing leased or a failed reading: nothing is killed", "[memory_monitor]") {
  MonitorTest t;
  t.reader.used = 8 * kGiB;
  t.workers.clear();
  CHECK_FALSE(t.Tick().has_value());
  CHECK(t.candidate_calls == 1);
  t.reader.error = absl::UnavailableError("no /proc");
  t.workers = {Leased(0, "a:1", true, 1)};
  CHECK_FALSE(t.Tick().has_value());
  CHECK(t.candidate_calls == 1);
  t.reader.error = absl::OkStatus();
  CHECK(t.Tick().has_value());
}

TEST_CASE("A zero refresh period disables the monitor, a threshold of 1 never fires", "[memory_monitor]") {
  MonitorTest off(MemoryMonitorOptions{.usage_threshold = 0.5, .refresh_period = absl::ZeroDuration()});
  off.reader.used = off.reader.total;
  CHECK_FALSE(off.monitor.enabled());
  CHECK_FALSE(off.Tick(absl::Seconds(10)).has_value());
  CHECK(off.reader.reads == 0);

  MonitorTest full(MemoryMonitorOptions{.usage_threshold = 1.0});
  full.reader.used = full.reader.total;
  CHECK_FALSE(full.Tick().has_value());
  CHECK(full.reader.reads == 1);
}

TEST_CASE("Monitor options are checked and name their flags", "[memory_monitor]") {
  CHECK_OK(ValidateMemoryMonitorOptions({.usage_threshold = 0.95}));
  CHECK_OK(ValidateMemoryMonitorOptions({.usage_threshold = 1.0, .refresh_period = absl::ZeroDuration()}));
  for (double bad : {0.0, -0.5, 1.01, std::nan("")}) {
    absl::Status s = ValidateMemoryMonitorOptions({.usage_threshold = bad});
    CHECK(absl::IsInvalidArgument(s));
    CHECK_THAT(std::string(s.message()), Catch::Contains("--memory-usage-threshold"));
  }
  absl::Status s = ValidateMemoryMonitorOptions({.refresh_period = absl::Milliseconds(-1)});
  CHECK(absl::IsInvalidArgument(s));
  CHECK_THAT(std::string(s.message()), Catch::Contains("--memory-monitor-refresh-ms"));
}

TEST_CASE("Byte counts read as people write them", "[memory_monitor]") {
  CHECK(FormatBytes(512) == "512 B");
  CHECK(FormatBytes(1536) == "1.5 KiB");
  CHECK(FormatBytes(300 * kMiB) == "300.0 MiB");
  CHECK(FormatBytes(3 * kGiB / 2) == "1.50 GiB");
}

// ---------------------------------------------------------------------------------------------
// The lease manager's side: what the monitor chooses from, and the kill

using Reply = rpc::RequestWorkerLeaseReply;
using test_util::RS;

// A lease manager on a 4-CPU, 2-GPU node with a fake spawner and clock.
struct LeaseFixture {
  LeaseFixture()
      : pool(spawner, clock, WorkerPoolOptions{.node_id = NodeId::FromRandom(), .max_starting = 10, .max_idle = 10}),
        leases(pool, std::make_unique<HybridSchedulingPolicy>(), Options(pool.options().node_id)) {}

  LeaseManagerOptions Options(const NodeId& node) {
    LeaseManagerOptions o;
    o.node_id = node;
    o.resources = RS({{"CPU", 4}, {"GPU", 2}});
    o.on_leased_worker_death = [this](const WorkerId& worker, const std::string& reason, bool owner_gone) {
      deaths.push_back({worker.Hex(), reason, owner_gone});
    };
    return o;
  }
  // Requests a lease and registers the worker started for it: answers the grant.
  Reply Grant(const std::map<std::string, double>& resources, const std::string& owner = "", bool retriable = false) {
    rpc::RequestWorkerLeaseRequest req;
    RS(resources).ToProto(req.mutable_resources());
    req.set_job_id(JobId::FromInt(3).Hex());
    req.add_worker_command("/bin/worker");
    req.set_owner_address(owner);
    req.set_retriable(retriable);
    std::optional<absl::StatusOr<Reply>> reply;
    leases.RequestLease(next_request++, req, [&reply](absl::StatusOr<Reply> r) { reply = std::move(r); });
    if (!reply) {  // a worker was started for it
      REQUIRE_FALSE(spawner.spawned().empty());
      const FakeProcessSpawner::Process* started = spawner.spawned().back();
      REQUIRE_OK(leases.RegisterWorker(started->Env("SHOAL_WORKER_ID"), 5000, started->pid));
    }
    REQUIRE(reply.has_value());
    REQUIRE_OK(*reply);
    REQUIRE((*reply)->kind() == Reply::GRANTED);
    return **reply;
  }
  int64_t PidOf(const std::string& worker_hex) {
    const WorkerPool::Worker* w = pool.Find(*WorkerId::FromHex(worker_hex));
    REQUIRE(w != nullptr);
    return w->pid;
  }

  struct Death {
    std::string worker;
    std::string reason;
    bool owner_gone;
  };
  FakeClock clock;
  FakeProcessSpawner spawner;
  WorkerPool pool;
  LeaseManager leases;
  std::vector<Death> deaths;
  uint64_t next_request = 1;
};

TEST_CASE("Leased workers are listed for the monitor with owner, retriability and lease time",
          "[memory_monitor][lease_manager]") {
  LeaseFixture t;
  const Reply task = t.Grant({{"CPU", 1}}, "10.0.0.9:4000", /*retriable=*/true);
  t.clock.Advance(absl::Seconds(3));
  const Reply actor = t.Grant({{"CPU", 1}});  // no retriable flag: an actor's or a final task's lease

  std::vector<LeasedWorker> listed = t.leases.LeasedWorkers();
  REQUIRE(listed.size() == 2);
  if (listed[0].worker.Hex() != task.worker_id()) std::swap(listed[0], listed[1]);
  CHECK(listed[0].worker.Hex() == task.worker_id());
  CHECK(listed[0].pid == t.PidOf(task.worker_id()));
  CHECK(listed[0].owner == "10.0.0.9:4000");
  CHECK(listed[0].retriable);
  CHECK(listed[1].worker.Hex() == actor.worker_id());
  CHECK_FALSE(listed[1].retriable);
  CHECK(listed[1].leased_at - listed[0].leased_at == absl::Seconds(3));
}

TEST_CASE("A worker killed for memory: lease ended, process killed, death reported, cause kept for its owner",
          "[memory_monitor][lease_manager]") {
  LeaseFixture t;
  const Reply victim = t.Grant({{"CPU", 1}, {"GPU", 1}});
  const Reply other = t.Grant({{"CPU", 1}});
  const int64_t pid = t.PidOf(victim.worker_id());
  const WorkerId worker = *WorkerId::FromHex(victim.worker_id());
  REQUIRE_OK(t.leases.KillLeasedWorker(worker, MakeError(rpc::OUT_OF_MEMORY, "node 1 is at 97%")));
  CHECK(t.spawner.process(pid).killed);
  CHECK(t.pool.Exiting(pid));
  CHECK(t.leases.Available() == RS({{"CPU", 3}, {"GPU", 2}}));  // only `other` holds anything
  CHECK(t.leases.stats().leases == 1);
  REQUIRE(t.deaths.size() == 1);
  CHECK(t.deaths[0].worker == victim.worker_id());
  CHECK(t.deaths[0].reason == "killed: node 1 is at 97%");
  CHECK_FALSE(t.deaths[0].owner_gone);

  // The owner, returning the lease as failed, learns why; once.
  CHECK_FALSE(t.leases.TakeDeathCause(other.lease_id()).has_value());
  CHECK_FALSE(t.leases.TakeDeathCause("not hex").has_value());
  std::optional<rpc::ErrorInfo> cause = t.leases.TakeDeathCause(victim.lease_id());
  REQUIRE(cause.has_value());
  CHECK(cause->type() == rpc::OUT_OF_MEMORY);
  CHECK(cause->message() == "node 1 is at 97%");
  CHECK_FALSE(t.leases.TakeDeathCause(victim.lease_id()).has_value());
  CHECK_CODE(t.leases.ReturnWorker(victim.lease_id(), true), kNotFound);
  CHECK_CODE(t.leases.KillLeasedWorker(worker, MakeError(rpc::OUT_OF_MEMORY, "again")), kNotFound);

  // The freed GPU goes to the next request; the kill's exit is reaped quietly.
  const Reply next = t.Grant({{"GPU", 1}});
  CHECK(next.worker_id() != victim.worker_id());
  t.leases.Tick();
  CHECK_FALSE(t.pool.Exiting(pid));
  CHECK(t.deaths.size() == 1);
}

TEST_CASE("Only the newest causes of kills are kept", "[memory_monitor][lease_manager]") {
  LeaseFixture t;
  std::vector<std::string> lease_ids;
  for (size_t i = 0; i <= LeaseManager::kMaxDeathCauses; ++i) {
    const Reply r = t.Grant({{"CPU", 1}});
    lease_ids.push_back(r.lease_id());
    REQUIRE_OK(t.leases.KillLeasedWorker(*WorkerId::FromHex(r.worker_id()),
                                         MakeError(rpc::OUT_OF_MEMORY, std::to_string(i))));
    t.leases.Tick();  // reaps the killed worker
  }
  CHECK_FALSE(t.leases.TakeDeathCause(lease_ids.front()).has_value());  // the oldest is gone
  auto second = t.leases.TakeDeathCause(lease_ids[1]);
  REQUIRE(second.has_value());
  CHECK(second->message() == "1");
  auto last = t.leases.TakeDeathCause(lease_ids.back());
  REQUIRE(last.has_value());
  CHECK(last->message() == std::to_string(LeaseManager::kMaxDeathCauses));
}

}  // namespace
}  // namespace shoal
