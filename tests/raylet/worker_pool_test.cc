#include "src/raylet/worker_pool.h"

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/common/fake_clock.h"
#include "src/raylet/fake_process_spawner.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using State = WorkerPool::State;

const JobId kJob = JobId::FromInt(1);
const WorkerKey kKey{.job = kJob, .command = {"/bin/worker", "--serve"}};

struct PoolTest {
  explicit PoolTest(WorkerPoolOptions o = Options()) : pool(spawner, clock, std::move(o)) {}

  static WorkerPoolOptions Options() {
    WorkerPoolOptions o;
    o.node_id = *NodeId::FromHex(std::string(56, 'a'));
    o.node_ip = "10.1.2.3";
    o.raylet_address = "10.1.2.3:4000";
    o.gcs_address = "10.1.2.1:6379";
    o.store_socket = "/tmp/s/store";
    o.session_dir = "/tmp/s";
    o.max_starting = 4;
    o.max_idle = 1;
    o.idle_timeout = absl::Seconds(10);
    o.start_timeout = absl::Seconds(30);
    return o;
  }

  // Starts a worker for `key` and registers it on `port`.
  WorkerId StartRegistered(const WorkerKey& key = kKey, int port = 5000) {
    auto id = pool.StartWorker(key);
    REQUIRE_OK(id);
    REQUIRE_OK(pool.RegisterWorker(*id, port, PidOf(*id)));
    return *id;
  }
  int64_t PidOf(const WorkerId& id) {
    const WorkerPool::Worker* w = pool.Find(id);
    REQUIRE(w != nullptr);
    return w->pid;
  }

  FakeClock clock;
  FakeProcessSpawner spawner;
  WorkerPool pool;
};

TEST_CASE("A started worker gets the SHOAL_* environment and its own log files", "[worker_pool]") {
  PoolTest t;
  auto id = t.pool.StartWorker(kKey);
  REQUIRE_OK(id);
  REQUIRE(t.spawner.spawned().size() == 1);
  const auto& p = *t.spawner.spawned()[0];
  CHECK(p.spec.argv == kKey.command);
  CHECK(p.Env("SHOAL_WORKER_MODE") == "1");
  CHECK(p.Env("SHOAL_WORKER_ID") == id->Hex());
  CHECK(p.Env("SHOAL_RAYLET_ADDRESS") == "10.1.2.3:4000");
  CHECK(p.Env("SHOAL_GCS_ADDRESS") == "10.1.2.1:6379");
  CHECK(p.Env("SHOAL_NODE_ID") == std::string(56, 'a'));
  CHECK(p.Env("SHOAL_STORE_SOCKET") == "/tmp/s/store");
  CHECK(p.Env("SHOAL_JOB_ID") == kJob.Hex());
  CHECK(p.Env("SHOAL_SESSION_DIR") == "/tmp/s");
  CHECK(p.Env("SHOAL_NODE_IP") == "10.1.2.3");
  CHECK(p.spec.env.size() == 9);
  CHECK(p.spec.stdout_path == "/tmp/s/logs/worker-" + id->Hex() + ".out");
  CHECK(p.spec.stderr_path == "/tmp/s/logs/worker-" + id->Hex() + ".err");
  CHECK(t.pool.stats().starting == 1);
  CHECK(t.pool.NumStarting(kKey) == 1);
}

TEST_CASE("A worker is usable once it registers, unknown ids are refused", "[worker_pool]") {
  PoolTest t;
  auto id = t.pool.StartWorker(kKey);
  REQUIRE_OK(id);
  CHECK_FALSE(t.pool.PopIdleWorker(kKey).has_value());  // still starting

  CHECK_CODE(t.pool.RegisterWorker(WorkerId::FromRandom(), 5000, 1), kNotFound);
  CHECK_CODE(t.pool.RegisterWorker(*id, 0, 1), kInvalidArgument);
  CHECK_CODE(t.pool.RegisterWorker(*id, 70000, 1), kInvalidArgument);
  REQUIRE_OK(t.pool.RegisterWorker(*id, 5000, 77));
  CHECK_OK(t.pool.RegisterWorker(*id, 5000, 77));  // a retried registration
  CHECK_CODE(t.pool.RegisterWorker(*id, 5001, 77), kAlreadyExists);
  CHECK(t.pool.stats().idle == 1);
  CHECK(t.pool.stats().starting == 0);

  auto w = t.pool.PopIdleWorker(kKey);
  REQUIRE(w.has_value());
  CHECK(w->id == *id);
  CHECK(w->address == "10.1.2.3:5000");
  CHECK(w->reported_pid == 77);
  CHECK(w->state == State::kLeased);
  CHECK(t.pool.stats().leased == 1);
}

TEST_CASE("Idle workers are reused, only for their own job and command", "[worker_pool]") {
  PoolTest t;
  WorkerId id = t.StartRegistered();
  auto w = t.pool.PopIdleWorker(kKey);
  REQUIRE(w.has_value());
  CHECK_FALSE(t.pool.PopIdleWorker(kKey).has_value());  // the only one is leased
  CHECK_CODE(t.pool.ReturnWorker(WorkerId::FromRandom()), kNotFound);
  REQUIRE_OK(t.pool.ReturnWorker(id));
  CHECK_CODE(t.pool.ReturnWorker(id), kFailedPrecondition);  // idle, not leased

  CHECK_FALSE(t.pool.PopIdleWorker(WorkerKey{.job = JobId::FromInt(2), .command = kKey.command}).has_value());
  CHECK_FALSE(t.pool.PopIdleWorker(WorkerKey{.job = kJob, .command = {"/bin/other"}}).has_value());
  auto again = t.pool.PopIdleWorker(kKey);
  REQUIRE(again.has_value());
  CHECK(again->id == id);
  CHECK(t.spawner.spawned().size() == 1);
}

TEST_CASE("Idle workers beyond the soft limit are killed after the idle timeout", "[worker_pool]") {
  PoolTest t;  // max_idle 1, idle_timeout 10s
  WorkerId a = t.StartRegistered(kKey, 5001);
  t.clock.Advance(absl::Seconds(1));
  WorkerId b = t.StartRegistered(kKey, 5002);
  t.clock.Advance(absl::Seconds(1));
  WorkerId c = t.StartRegistered(kKey, 5003);
  int64_t pid_a = t.PidOf(a), pid_b = t.PidOf(b);

  t.clock.Advance(absl::Seconds(8));  // a idle 10s, b 9s, c 8s
  CHECK(t.pool.Tick().empty());       // the pool's own kills are not exits
  CHECK(t.pool.Find(a) == nullptr);
  CHECK(t.spawner.process(pid_a).killed);
  CHECK(t.pool.Find(b) != nullptr);

  t.clock.Advance(absl::Seconds(5));
  CHECK(t.pool.Tick().empty());
  CHECK(t.pool.Find(b) == nullptr);
  CHECK(t.spawner.process(pid_b).killed);
  REQUIRE(t.pool.Find(c) != nullptr);  // within the soft limit: kept however long it idles
  t.clock.Advance(absl::Hours(1));
  t.pool.Tick();
  CHECK(t.pool.Find(c) != nullptr);
  CHECK(t.pool.stats().workers == 1);
}

TEST_CASE("A leased worker is never killed as idle", "[worker_pool]") {
  PoolTest t;
  t.StartRegistered(kKey, 5001);
  t.StartRegistered(kKey, 5002);
  REQUIRE(t.pool.PopIdleWorker(kKey).has_value());
  REQUIRE(t.pool.PopIdleWorker(kKey).has_value());
  t.clock.Advance(absl::Hours(1));
  t.pool.Tick();
  CHECK(t.pool.stats().leased == 2);
  CHECK(t.spawner.NumRunning() == 2);
}

TEST_CASE("A worker that does not register in time is killed and counted as a failed start",
          "[worker_pool]") {
  PoolTest t;  // start_timeout 30s
  auto id = t.pool.StartWorker(kKey);
  REQUIRE_OK(id);
  int64_t pid = t.PidOf(*id);
  t.clock.Advance(absl::Seconds(29));
  CHECK(t.pool.Tick().empty());

  t.clock.Advance(absl::Seconds(1));
  auto exits = t.pool.Tick();
  REQUIRE(exits.size() == 1);
  CHECK(exits[0].id == *id);
  CHECK(exits[0].state == State::kStarting);
  CHECK(exits[0].key == kKey);
  CHECK_THAT(exits[0].reason, Catch::Contains("did not register within 30s"));
  CHECK(t.spawner.process(pid).killed);
  CHECK(t.pool.ConsecutiveStartFailures(kKey) == 1);
  CHECK(t.pool.stats().workers == 0);
  CHECK_CODE(t.pool.RegisterWorker(*id, 5000, pid), kNotFound);  // too late
  t.pool.Tick();
  CHECK(t.spawner.process(pid).reaped);

  // A registration resets the count.
  REQUIRE_OK(t.pool.StartWorker(kKey));
  t.clock.Advance(absl::Seconds(30));
  t.pool.Tick();
  CHECK(t.pool.ConsecutiveStartFailures(kKey) == 2);
  t.StartRegistered();
  CHECK(t.pool.ConsecutiveStartFailures(kKey) == 0);
}

TEST_CASE("Workers that exit are reaped and reported with what they were doing", "[worker_pool]") {
  PoolTest t;
  WorkerId leased = t.StartRegistered(kKey, 5001);
  REQUIRE(t.pool.PopIdleWorker(kKey).has_value());
  WorkerId idle = t.StartRegistered(kKey, 5002);
  auto starting = t.pool.StartWorker(kKey);
  REQUIRE_OK(starting);

  t.spawner.Exit(t.PidOf(leased), 1);
  t.spawner.Exit(t.PidOf(idle), 0);
  t.spawner.Exit(t.PidOf(*starting), 2);
  std::map<WorkerId, WorkerPool::Exit> exits;
  for (auto& e : t.pool.Tick()) exits.emplace(e.id, e);
  REQUIRE(exits.size() == 3);
  CHECK(exits.at(leased).state == State::kLeased);
  CHECK(exits.at(leased).address == "10.1.2.3:5001");
  CHECK_THAT(exits.at(leased).reason, Catch::Contains("exited with code 1"));
  CHECK_THAT(exits.at(leased).reason, Catch::Contains("worker-" + leased.Hex() + ".err"));
  CHECK(exits.at(idle).state == State::kIdle);
  CHECK(exits.at(*starting).state == State::kStarting);
  CHECK(exits.at(*starting).address.empty());
  CHECK(t.pool.ConsecutiveStartFailures(kKey) == 1);
  CHECK(t.pool.stats().workers == 0);
  CHECK(t.pool.Tick().empty());  // reported once
}

TEST_CASE("At most max_starting workers start at once", "[worker_pool]") {
  auto options = PoolTest::Options();
  options.max_starting = 2;
  PoolTest t(options);
  auto a = t.pool.StartWorker(kKey);
  auto b = t.pool.StartWorker(kKey);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  CHECK_FALSE(t.pool.CanStartWorker());
  CHECK_CODE(t.pool.StartWorker(kKey), kResourceExhausted);
  REQUIRE_OK(t.pool.RegisterWorker(*a, 5000, 1));
  CHECK(t.pool.CanStartWorker());
  CHECK_OK(t.pool.StartWorker(kKey));
}

TEST_CASE("Spawn errors and bad commands are returned", "[worker_pool]") {
  PoolTest t;
  t.spawner.FailNextSpawn(absl::NotFoundError("cannot find executable"));
  CHECK_CODE(t.pool.StartWorker(kKey), kNotFound);
  CHECK_CODE(t.pool.StartWorker(WorkerKey{.job = kJob, .command = {}}), kInvalidArgument);
  CHECK(t.pool.stats().workers == 0);
  CHECK(t.pool.CanStartWorker());
}

TEST_CASE("KillWorker removes a worker quietly, the pool kills the rest when destroyed", "[worker_pool]") {
  FakeClock clock;
  FakeProcessSpawner spawner;
  {
    WorkerPool pool(spawner, clock, PoolTest::Options());
    auto a = pool.StartWorker(kKey);
    auto b = pool.StartWorker(kKey);
    REQUIRE_OK(a);
    REQUIRE_OK(b);
    REQUIRE_OK(pool.KillWorker(*a, "test"));
    CHECK_CODE(pool.KillWorker(*a, "test"), kNotFound);
    CHECK(pool.Tick().empty());
    CHECK(pool.stats().workers == 1);
    CHECK(pool.CanStartWorker());
  }
  CHECK(spawner.NumRunning() == 0);
  for (const auto* p : spawner.spawned()) CHECK(p->reaped);
}

}  // namespace
}  // namespace shoal

// The real spawner, on real (tiny) processes: the only test here that starts any.
namespace shoal {
namespace {

std::optional<ProcessExit> WaitForExit(ProcessSpawner& spawner, int64_t pid) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    if (auto exit = spawner.TryReap(pid)) return exit;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return std::nullopt;
}

ProcessSpec Argv(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  return spec;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("A leased worker records when, a killed one is exiting until reaped", "[worker_pool]") {
  PoolTest t;
  WorkerId id = t.StartRegistered();
  t.clock.Advance(absl::Seconds(7));
  auto leased = t.pool.PopIdleWorker(kKey);
  REQUIRE(leased.has_value());
  CHECK(leased->leased_at == t.clock.Now());
  CHECK(t.pool.Find(id)->leased_at == t.clock.Now());
  const int64_t pid = t.PidOf(id);
  CHECK_FALSE(t.pool.Exiting(pid));
  REQUIRE_OK(t.pool.KillWorker(id, "memory"));
  CHECK(t.pool.Exiting(pid));
  CHECK(t.pool.Tick().empty());  // reaped quietly
  CHECK_FALSE(t.pool.Exiting(pid));
}

TEST_CASE("PosixProcessSpawner runs a command with its environment and logs, and reaps it",
          "[process_spawner]") {
  char dir_template[] = "/tmp/shoal-spawner-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  setenv("SHOAL_TEST_INHERITED", "from-parent", 1);
  setenv("SHOAL_WORKER_ID", "overridden", 1);
  PosixProcessSpawner spawner;
  ProcessSpec spec;
  spec.argv = {"sh", "-c", "echo \"$SHOAL_TEST_INHERITED $SHOAL_WORKER_ID $(ps -o pgid= -p $$ | tr -d ' ') $$\"; "
                           "echo oops >&2; exit 3"};
  spec.env = {{"SHOAL_WORKER_ID", "w1"}};
  spec.stdout_path = dir + "/out";
  spec.stderr_path = dir + "/err";
  auto pid = spawner.Spawn(spec);
  REQUIRE_OK(pid);
  auto exit = WaitForExit(spawner, *pid);
  REQUIRE(exit.has_value());
  CHECK(exit->exit_code == 3);
  CHECK(exit->signal == 0);
  CHECK(exit->ToString() == "exited with code 3");
  const std::string pid_text = std::to_string(*pid);
  CHECK(ReadFile(dir + "/out") == "from-parent w1 " + pid_text + " " + pid_text + "\n");  // own group
  CHECK(ReadFile(dir + "/err") == "oops\n");
  auto again = spawner.TryReap(*pid);  // already reaped: answered as gone
  REQUIRE(again.has_value());
  CHECK(again->exit_code == -1);
  unsetenv("SHOAL_TEST_INHERITED");
  unsetenv("SHOAL_WORKER_ID");
  std::filesystem::remove_all(dir);
}

TEST_CASE("PosixProcessSpawner reports commands that cannot run, and kills", "[process_spawner]") {
  PosixProcessSpawner spawner;
  CHECK_CODE(spawner.Spawn(Argv({"/no/such/binary"})), kNotFound);
  CHECK_CODE(spawner.Spawn(Argv({"no-such-binary-in-path"})), kNotFound);
  CHECK_CODE(spawner.Spawn(ProcessSpec{}), kInvalidArgument);

  auto pid = spawner.Spawn(Argv({"sleep", "1000"}));
  REQUIRE_OK(pid);
  CHECK_FALSE(spawner.TryReap(*pid).has_value());
  spawner.Kill(*pid);
  auto exit = WaitForExit(spawner, *pid);
  REQUIRE(exit.has_value());
  CHECK(exit->signal == 9);
}

}  // namespace
}  // namespace shoal
