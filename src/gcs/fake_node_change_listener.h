// A NodeChangeFeed listener that records what it is told. For tests.
// Threading: any thread.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "shoal/common.pb.h"
#include "src/gcs/gcs_tables.h"

namespace shoal {

class FakeNodeChangeListener : public NodeChangeFeed::Listener {
 public:
  // A new listener subscribed to `feed`; null if the feed is closed.
  static std::shared_ptr<FakeNodeChangeListener> Subscribe(NodeChangeFeed& feed) {
    auto listener = std::make_shared<FakeNodeChangeListener>();
    return feed.Subscribe(listener) ? listener : nullptr;
  }

  void OnNodeChange(const rpc::NodeInfo& node) override {
    absl::MutexLock lock(&mu_);
    nodes_.push_back(node);
  }
  void OnFeedClosed() override {
    absl::MutexLock lock(&mu_);
    ++closed_;
  }
  // The oldest change not taken yet.
  std::optional<rpc::NodeInfo> Next() {
    absl::MutexLock lock(&mu_);
    if (nodes_.empty()) return std::nullopt;
    rpc::NodeInfo out = std::move(nodes_.front());
    nodes_.pop_front();
    return out;
  }
  // How many times OnFeedClosed was called.
  int closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::deque<rpc::NodeInfo> nodes_ ABSL_GUARDED_BY(mu_);
  int closed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal
