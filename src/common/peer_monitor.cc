#include "src/common/peer_monitor.h"

#include <algorithm>
#include <utility>

#include "src/common/rpc.h"

namespace shoal {

PeerMonitor::PeerMonitor(absl::Duration timeout, std::string patient_address, absl::Duration patient_timeout)
    : timeout_(timeout), patient_address_(std::move(patient_address)), patient_timeout_(patient_timeout) {}

std::vector<std::string> PeerMonitor::Check(const std::set<std::string>& peers, absl::Time now) {
  std::erase_if(watches_, [&](const auto& e) { return !peers.contains(e.first); });
  std::vector<std::string> dead;
  for (const std::string& peer : peers) {
    Watch& w = watches_[peer];
    if (w.channel == nullptr) {
      w.channel = MakeChannel(peer);
      w.unready_since = now;
    }
    grpc_connectivity_state state = w.channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) {
      w.unready_since = now;
      w.failed = false;
      continue;
    }
    w.failed |= state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN;
    const absl::Duration timeout = !patient_address_.empty() && peer == patient_address_ ? patient_timeout_ : timeout_;
    if (w.failed && now - w.unready_since >= timeout) dead.push_back(peer);
  }
  for (const std::string& peer : dead) watches_.erase(peer);
  return dead;
}

}  // namespace shoal
