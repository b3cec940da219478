#include "src/worker/worker_config.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "src/common/rpc.h"

namespace shoal {

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

}  // namespace shoal
