// A BundleClient that records every call and lets a test answer them by hand. For tests.
// Threading: any thread; callbacks run on the thread that answers.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "src/gcs/placement_group_manager.h"

namespace shoal {

class FakeBundleClient : public BundleClient {
 public:
  enum class Kind { kPrepare, kCommit, kCancel, kRelease };
  struct Call {
    Kind kind = Kind::kPrepare;
    std::string raylet;
    std::vector<rpc::Bundle> bundles;
    bool group_removed = false;  // kCancel
    Done done;                   // kPrepare, kCommit, kCancel
    ReleaseDone release_done;    // kRelease
    bool commit = false;         // kPrepare: commit in the same call
  };

  void PrepareBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool commit, Done done) override {
    Record({Kind::kPrepare, raylet, std::move(bundles), false, std::move(done), nullptr, commit});
  }
  void CommitBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, Done done) override {
    Record({Kind::kCommit, raylet, std::move(bundles), false, std::move(done), nullptr});
  }
  void CancelBundles(const std::string& raylet, std::vector<rpc::Bundle> bundles, bool group_removed,
                     Done done) override {
    Record({Kind::kCancel, raylet, std::move(bundles), group_removed, std::move(done), nullptr});
  }
  void ReleaseUnusedBundles(const std::string& raylet, std::vector<rpc::Bundle> in_use, ReleaseDone done) override {
    Record({Kind::kRelease, raylet, std::move(in_use), false, nullptr, std::move(done)});
  }

  // Removes and answers the oldest unanswered call of `kind` (at `raylet`, when given).
  std::optional<Call> Take(Kind kind, const std::string& raylet = "") {
    absl::MutexLock lock(&mu_);
    for (auto it = open_.begin(); it != open_.end(); ++it) {
      if (it->kind != kind || (!raylet.empty() && it->raylet != raylet)) continue;
      Call c = std::move(*it);
      open_.erase(it);
      return c;
    }
    return std::nullopt;
  }
  // Unanswered calls of `kind`.
  size_t Open(Kind kind) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const Call& c : open_) n += c.kind == kind;
    return n;
  }
  // Every call made, answered or not, without its callbacks.
  std::vector<Call> history() {
    absl::MutexLock lock(&mu_);
    return history_;
  }
  void ClearHistory() {
    absl::MutexLock lock(&mu_);
    history_.clear();
  }

 private:
  void Record(Call call) {
    absl::MutexLock lock(&mu_);
    Call copy{call.kind, call.raylet, call.bundles, call.group_removed, nullptr, nullptr};
    history_.push_back(std::move(copy));
    open_.push_back(std::move(call));
  }

  absl::Mutex mu_;
  std::deque<Call> open_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> history_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
