// PeerMonitor: finds processes that are gone among the core workers a server depends on (the
// owners of a raylet's leases, the drivers of the GCS's running jobs), through gRPC channels to
// their addresses. A peer whose channel is never READY for its timeout, and failed to connect at
// least once meanwhile, is taken for dead: a live core worker accepts connections at once, so
// slowness alone never counts. One address may get a longer timeout of its own (the GCS, which
// a raylet's detached-actor leases belong to: it may be restarting).
// Threading: not thread-safe; one thread calls Check.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/time/time.h"

namespace shoal {

class PeerMonitor {
 public:
  explicit PeerMonitor(absl::Duration timeout, std::string patient_address = "",
                       absl::Duration patient_timeout = absl::ZeroDuration());

  // Checks `peers` (and forgets the others); answers those found dead now (each only once).
  std::vector<std::string> Check(const std::set<std::string>& peers, absl::Time now);

 private:
  struct Watch {
    std::shared_ptr<grpc::Channel> channel;
    absl::Time unready_since;
    bool failed = false;
  };
  const absl::Duration timeout_;
  const std::string patient_address_;
  const absl::Duration patient_timeout_;
  std::map<std::string, Watch> watches_;
};

}  // namespace shoal
