// shoal-gcs: the cluster's metadata server. See gcs_server.h.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/daemon.h"
#include "src/common/flags.h"
#include "src/common/rpc.h"
#include "src/common/session.h"
#include "src/gcs/gcs_server.h"

namespace shoal {
namespace {

struct Flags {
  AuthFlags auth;
  std::string host = "127.0.0.1";
  int64_t port = 6379;
  std::string session_dir;
  std::string ready_file;
  std::string redis_address;
  std::string redis_password;
  std::string redis_key_prefix = "shoal";
  int64_t health_check_period_ms = 1000;
  int64_t health_check_timeout_ms = 1000;
  int64_t health_check_failure_threshold = 5;
  int64_t kv_max_value_bytes = KvStore::kDefaultMaxValueBytes;
  int64_t task_events_max_num_task_in_gcs = TaskEventLimits{}.max_tasks;
  int64_t task_events_max_batch_size = TaskEventLimits{}.max_batch_events;
};

constexpr int64_t kMaxKvValueLimit = int64_t{1} << 30;  // gRPC messages are sized by an int

int Main(int argc, char** argv) {
  BlockTerminationSignals();
  Flags f;
  FlagSet flags("shoal-gcs");
  flags.AddString("host", &f.host, "address to listen on");
  flags.AddInt("port", &f.port, "port to listen on (0 picks a free one)");
  flags.AddString("session-dir", &f.session_dir, "session directory; logs go to its logs/ (default: a new one)");
  flags.AddString("ready-file", &f.ready_file, "once serving, write {pid, port, address} as JSON here");
  flags.AddString("redis-address", &f.redis_address, "HOST:PORT of Redis to persist tables in (default: memory)");
  flags.AddString("redis-password", &f.redis_password, "password for Redis AUTH");
  flags.AddString("redis-key-prefix", &f.redis_key_prefix, "prefix of Shoal's keys in Redis");
  flags.AddInt("health-check-period-ms", &f.health_check_period_ms, "how often each raylet is checked");
  flags.AddInt("health-check-timeout-ms", &f.health_check_timeout_ms, "how long a check may take");
  flags.AddInt("health-check-failure-threshold", &f.health_check_failure_threshold,
               "failed checks in a row before a node is declared dead");
  flags.AddInt("kv-max-value-bytes", &f.kv_max_value_bytes,
               "largest value a KV Put may store; larger ones are refused (RESOURCE_EXHAUSTED)");
  flags.AddInt("task-events-max-num-task-in-gcs", &f.task_events_max_num_task_in_gcs,
               "tasks whose latest state the GCS keeps; beyond it the least recently updated is dropped and counted");
  flags.AddInt("task-events-max-batch-size", &f.task_events_max_batch_size,
               "most events one ReportTaskEvents call may carry; larger batches are refused (RESOURCE_EXHAUSTED)");
  AddAuthFlags(flags, &f.auth);
  if (std::optional<int> exit_code = ParseDaemonFlags(flags, argc, argv)) return *exit_code;
  if (absl::Status s = ConfigureDaemonAuth(f.auth, "shoal-gcs"); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 2;
  }
  if (f.port < 0 || f.port > 65535) {
    ReportFatal(absl::StrCat("--port must be in 0..65535, got ", f.port));
    return 2;
  }
  if (f.health_check_period_ms <= 0 || f.health_check_timeout_ms <= 0 || f.health_check_failure_threshold <= 0) {
    ReportFatal("health check period, timeout and failure threshold must be positive");
    return 2;
  }
  if (f.kv_max_value_bytes <= 0 || f.kv_max_value_bytes > kMaxKvValueLimit) {
    ReportFatal(absl::StrCat("--kv-max-value-bytes must be in 1..", kMaxKvValueLimit, ", got ", f.kv_max_value_bytes));
    return 2;
  }
  if (f.task_events_max_num_task_in_gcs <= 0 || f.task_events_max_batch_size <= 0) {
    ReportFatal(absl::StrCat("--task-events-max-num-task-in-gcs and --task-events-max-batch-size must be ",
                             "positive, got ", f.task_events_max_num_task_in_gcs, " and ",
                             f.task_events_max_batch_size));
    return 2;
  }
  if (auto dir = SetUpDaemonSession("gcs", f.session_dir); dir.ok()) {
    f.session_dir = *dir;
  } else {
    ReportFatal(std::string(dir.status().message()));
    return 1;
  }

  std::unique_ptr<StoreClient> store;
  if (f.redis_address.empty()) {
    store = std::make_unique<InMemoryStoreClient>();
  } else {
    auto hp = ParseHostPort(f.redis_address);
    if (!hp.ok()) {
      ReportFatal(absl::StrCat("--redis-address: ", hp.status().message()));
      return 2;
    }
    RedisOptions ro{.host = hp->first, .port = hp->second, .password = f.redis_password,
                    .key_prefix = f.redis_key_prefix};
    auto redis = RedisStoreClient::Connect(ro);
    if (!redis.ok()) {
      ReportFatal(std::string(redis.status().message()));
      return 1;
    }
    store = *std::move(redis);
  }

  GcsOptions options;
  options.host = f.host;
  options.port = static_cast<int>(f.port);
  options.health = {.period = absl::Milliseconds(f.health_check_period_ms),
                    .timeout = absl::Milliseconds(f.health_check_timeout_ms),
                    .failure_threshold = static_cast<int>(f.health_check_failure_threshold)};
  options.kv_max_value_bytes = static_cast<size_t>(f.kv_max_value_bytes);
  options.task_events = {.max_tasks = static_cast<size_t>(f.task_events_max_num_task_in_gcs),
                         .max_batch_events = static_cast<size_t>(f.task_events_max_batch_size)};
  GcsServer gcs(std::move(store), options);
  if (auto s = gcs.Start(); !s.ok()) {
    ReportFatal(std::string(s.message()));
    return 1;
  }
  std::string address = absl::StrCat(f.host, ":", gcs.port());
  if (!f.ready_file.empty()) {
    nlohmann::json ready = {{"pid", getpid()}, {"port", gcs.port()}, {"address", address}};
    if (auto s = WriteFileAtomically(f.ready_file, ready.dump()); !s.ok()) {
      ReportFatal(std::string(s.message()));
      return 1;
    }
  }
  std::printf("shoal-gcs listening on %s\n", address.c_str());
  std::fflush(stdout);

  int sig = WaitForTerminationSignal();
  spdlog::info("signal {}: shutting down", sig);
  gcs.Stop();
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Main(argc, argv); }
