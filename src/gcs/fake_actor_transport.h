// An ActorCreationTransport that records every call and lets a test answer them by hand. For tests.
// Threading: any thread; callbacks run on the thread that answers.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "src/gcs/actor_manager.h"

namespace shoal {

class FakeActorTransport : public ActorCreationTransport {
 public:
  struct LeaseCall {
    uint64_t request_id = 0;
    std::string raylet;
    rpc::RequestWorkerLeaseRequest request;
    LeaseCallback done;
  };
  struct PushCall {
    std::string worker;
    rpc::PushTaskRequest request;
    PushCallback done;
  };
  struct Return {
    std::string raylet;
    std::string lease_id;
    bool worker_failed = false;
  };

  void RequestWorkerLease(uint64_t request_id, const std::string& raylet_address,
                          rpc::RequestWorkerLeaseRequest request, LeaseCallback done) override {
    absl::MutexLock lock(&mu_);
    leases_.push_back({request_id, raylet_address, std::move(request), std::move(done)});
  }
  void CancelLeaseRequest(uint64_t request_id) override {
    absl::MutexLock lock(&mu_);
    cancelled_.push_back(request_id);
  }
  void ReturnWorker(const std::string& raylet_address, const std::string& lease_id, bool worker_failed) override {
    absl::MutexLock lock(&mu_);
    returns_.push_back({raylet_address, lease_id, worker_failed});
  }
  void PushTask(const std::string& worker_address, rpc::PushTaskRequest request, PushCallback done) override {
    absl::MutexLock lock(&mu_);
    pushes_.push_back({worker_address, std::move(request), std::move(done)});
  }

  // Removes and answers the oldest lease request, if any.
  std::optional<LeaseCall> TakeLease() {
    absl::MutexLock lock(&mu_);
    if (leases_.empty()) return std::nullopt;
    LeaseCall c = std::move(leases_.front());
    leases_.pop_front();
    return c;
  }
  std::optional<PushCall> TakePush() {
    absl::MutexLock lock(&mu_);
    if (pushes_.empty()) return std::nullopt;
    PushCall c = std::move(pushes_.front());
    pushes_.pop_front();
    return c;
  }
  size_t NumLeaseCalls() {
    absl::MutexLock lock(&mu_);
    return leases_.size();
  }
  size_t NumPushCalls() {
    absl::MutexLock lock(&mu_);
    return pushes_.size();
  }
  std::vector<Return> returns() {
    absl::MutexLock lock(&mu_);
    return returns_;
  }
  std::vector<uint64_t> cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }
  void ClearReturns() {
    absl::MutexLock lock(&mu_);
    returns_.clear();
  }

 private:
  absl::Mutex mu_;
  std::deque<LeaseCall> leases_ ABSL_GUARDED_BY(mu_);
  std::deque<PushCall> pushes_ ABSL_GUARDED_BY(mu_);
  std::vector<Return> returns_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> cancelled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
