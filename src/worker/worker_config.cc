#include "src/worker/worker_config.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "src/common/rpc.h"
#include "src/gcs_client/gcs_client.h"

namespace shoal {
namespace {

// The node a driver joins: the one with raylet `raylet_address`, or the alive head node.
absl::StatusOr<rpc::NodeInfo> FindRaylet(const std::string& gcs_address, const std::string& raylet_address,
                                         const Clock& clock, absl::Duration connect_timeout) {
  const GcsClient gcs({.address = gcs_address});
  const absl::Time deadline = clock.Now() + connect_timeout;
  absl::Status last;
  while (true) {
    absl::StatusOr<std::vector<rpc::NodeInfo>> nodes =
        gcs.WithTimeout(std::max(deadline - clock.Now(), absl::Milliseconds(100))).GetAllNodeInfo(/*alive_only=*/true);
    last = nodes.status();
    if (last.ok()) {
      for (const auto& node : *nodes) {
        if (node.state() != rpc::NodeInfo::ALIVE) continue;
        const std::string address = absl::StrCat(node.address(), ":", node.raylet_port());
        if (raylet_address.empty() ? node.is_head() : address == raylet_address) return node;
      }
      last = absl::NotFoundError(raylet_address.empty()
                                     ? absl::StrCat("no alive head node is registered with the GCS at ", gcs_address)
                                     : absl::StrCat("no alive node with raylet ", raylet_address,
                                                    " is registered with the GCS at ", gcs_address));
    }
    if (absl::IsUnavailable(last) || clock.Now() + absl::Milliseconds(100) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));  // the node may still be registering
  }
  return last;
}

// SHOAL_TASK_OOM_RETRIES and SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS into `config`.
absl::Status ReadOomRetryPolicy(const WorkerConfig::Getenv& getenv, WorkerConfig& config) {
  if (const std::string v = getenv("SHOAL_TASK_OOM_RETRIES"); !v.empty()) {
    if (!absl::SimpleAtoi(v, &config.task_oom_retries) || config.task_oom_retries < -1) {
      return absl::InvalidArgumentError(
          absl::StrCat("SHOAL_TASK_OOM_RETRIES must be an integer >= -1 (-1: no limit), got '", v, "'"));
    }
  }
  if (const std::string v = getenv("SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS"); !v.empty()) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(v, &ms) || ms < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("SHOAL_TASK_OOM_RETRY_DELAY_BASE_MS must be an integer >= 0, got '", v, "'"));
    }
    config.oom_retry_delay_base = absl::Milliseconds(ms);
  }
  return absl::OkStatus();
}

}  // namespace

std::string WorkerConfig::ProcessGetenv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

absl::StatusOr<WorkerConfig> WorkerConfig::FromEnvironment(const Getenv& getenv) {
  WorkerConfig config;
  config.mode = CoreWorkerOptions::Mode::kWorker;
  struct Var {
    const char* name;
    std::string* out;
  };
  std::string worker_id, node_id, job_id;
  for (const Var& v : {Var{"SHOAL_WORKER_ID", &worker_id}, Var{"SHOAL_RAYLET_ADDRESS", &config.raylet_address},
                       Var{"SHOAL_NODE_ID", &node_id}, Var{"SHOAL_STORE_SOCKET", &config.store_socket},
                       Var{"SHOAL_JOB_ID", &job_id}}) {
    *v.out = getenv(v.name);
    if (v.out->empty()) return absl::InvalidArgumentError(absl::StrCat(v.name, " is not set; is this a worker?"));
  }
  config.gcs_address = getenv("SHOAL_GCS_ADDRESS");
  auto raylet = ParseHostPort(config.raylet_address);
  if (!raylet.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("SHOAL_RAYLET_ADDRESS: ", raylet.status().message()));
  }
  config.node_ip = getenv("SHOAL_NODE_IP");
  if (config.node_ip.empty()) config.node_ip = raylet->first;
  const std::string min_port = getenv("SHOAL_MIN_WORKER_PORT"), max_port = getenv("SHOAL_MAX_WORKER_PORT");
  if (!min_port.empty() || !max_port.empty()) {
    if (!absl::SimpleAtoi(min_port, &config.min_port) || !absl::SimpleAtoi(max_port, &config.max_port) ||
        config.min_port < 1 || config.max_port > 65535 || config.min_port > config.max_port) {
      return absl::InvalidArgumentError(absl::StrCat("SHOAL_MIN_WORKER_PORT/SHOAL_MAX_WORKER_PORT must be a port range, got '",
                                                     min_port, "'..'", max_port, "'"));
    }
  }
  auto wid = WorkerId::FromHex(worker_id);
  if (!wid.ok()) return absl::InvalidArgumentError(absl::StrCat("SHOAL_WORKER_ID: ", wid.status().message()));
  auto nid = NodeId::FromHex(node_id);
  if (!nid.ok()) return absl::InvalidArgumentError(absl::StrCat("SHOAL_NODE_ID: ", nid.status().message()));
  auto jid = JobId::FromHex(job_id);
  if (!jid.ok()) return absl::InvalidArgumentError(absl::StrCat("SHOAL_JOB_ID: ", jid.status().message()));
  config.worker_id = *wid;
  config.node_id = *nid;
  config.job_id = *jid;
  config.worker_command = SelfCommandLine();
  if (absl::Status s = ReadOomRetryPolicy(getenv, config); !s.ok()) return s;
  return config;
}

std::vector<std::string> SelfCommandLine() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  size_t start = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == '\0') {
      argv.push_back(all.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < all.size()) argv.push_back(all.substr(start));
  return argv;
}

std::string SelfExecutable() {
  char buf[PATH_MAX];
  if (realpath("/proc/self/exe", buf) != nullptr) return buf;
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : std::string("/proc/self/exe");
}

absl::StatusOr<WorkerConfig> WorkerConfig::ForDriver(const CoreWorkerOptions& options, const Clock& clock,
                                                    absl::Duration connect_timeout) {
  if (auto hp = ParseHostPort(options.gcs_address); !hp.ok()) return hp.status();
  WorkerConfig config;
  if (absl::Status s = ReadOomRetryPolicy(ProcessGetenv, config); !s.ok()) return s;
  std::string raylet = options.raylet_address;
  if (raylet.empty()) raylet = ProcessGetenv("SHOAL_DRIVER_RAYLET_ADDRESS");
  auto node = FindRaylet(options.gcs_address, raylet, clock, connect_timeout);
  if (!node.ok()) return node.status();
  auto node_id = NodeId::FromHex(node->node_id());
  if (!node_id.ok()) return node_id.status();
  config.mode = CoreWorkerOptions::Mode::kDriver;
  config.gcs_address = options.gcs_address;
  config.raylet_address = absl::StrCat(node->address(), ":", node->raylet_port());
  config.node_ip = node->address();
  config.store_socket = node->object_store_socket();
  config.node_id = *node_id;
  config.worker_id = WorkerId::FromRandom();
  config.worker_command = options.worker_command.empty() ? std::vector<std::string>{SelfExecutable()}
                                                         : options.worker_command;
  return config;
}

}  // namespace shoal
