// A TaskTransport that records every call and answers only when the test says so (lease
// requests, pushes, and ReturnFailedWorker once HoldFailedReturns is set; until then a failed
// worker's return is answered at once, inside the call, with an empty reply). For tests.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "src/worker/task_transport.h"

namespace shoal {

class FakeTaskTransport : public TaskTransport {
 public:
  struct LeaseCall {
    std::string raylet;
    rpc::RequestWorkerLeaseRequest request;
    LeaseCallback done;
  };
  struct PushCall {
    std::string worker;
    rpc::PushTaskRequest request;
    PushCallback done;
  };
  struct ReturnCall {
    std::string raylet;
    std::string lease_id;
    bool worker_failed;
  };
  struct FailedReturnCall {
    std::string raylet;
    std::string lease_id;
    ReturnCallback done;
  };

  void RequestWorkerLease(const std::string& raylet, rpc::RequestWorkerLeaseRequest request,
                          LeaseCallback done) override {
    absl::MutexLock lock(&mu_);
    leases_.push_back({raylet, std::move(request), std::move(done)});
  }
  void ReturnWorker(const std::string& raylet, const std::string& lease_id, bool worker_failed) override {
    absl::MutexLock lock(&mu_);
    returns_.push_back({raylet, lease_id, worker_failed});
  }
  void ReturnFailedWorker(const std::string& raylet, const std::string& lease_id, ReturnCallback done) override {
    {
      absl::MutexLock lock(&mu_);
      returns_.push_back({raylet, lease_id, true});
      if (hold_failed_returns_) {
        failed_returns_.push_back({raylet, lease_id, std::move(done)});
        return;
      }
    }
    done(absl::OkStatus(), {});
  }
  void PushTask(const std::string& worker, SharedPushRequest request, PushCallback done) override {
    absl::MutexLock lock(&mu_);
    pushes_.push_back({worker, *request, std::move(done)});
  }

  size_t num_pending_leases() const {
    absl::MutexLock lock(&mu_);
    return leases_.size();
  }
  size_t num_pending_pushes() const {
    absl::MutexLock lock(&mu_);
    return pushes_.size();
  }
  std::vector<ReturnCall> returns() const {
    absl::MutexLock lock(&mu_);
    return returns_;
  }
  // The oldest unanswered lease request / push (REQUIRES: there is one).
  LeaseCall TakeLease() {
    absl::MutexLock lock(&mu_);
    LeaseCall c = std::move(leases_.front());
    leases_.pop_front();
    return c;
  }
  PushCall TakePush() {
    absl::MutexLock lock(&mu_);
    PushCall c = std::move(pushes_.front());
    pushes_.pop_front();
    return c;
  }

  // ReturnFailedWorker calls wait for AnswerFailedReturn from now on.
  void HoldFailedReturns() {
    absl::MutexLock lock(&mu_);
    hold_failed_returns_ = true;
  }
  size_t num_pending_failed_returns() const {
    absl::MutexLock lock(&mu_);
    return failed_returns_.size();
  }
  // Answers the oldest held ReturnFailedWorker call (REQUIRES: there is one); answers its lease id.
  std::string AnswerFailedReturn(absl::Status status, rpc::ReturnWorkerReply reply) {
    FailedReturnCall c;
    {
      absl::MutexLock lock(&mu_);
      c = std::move(failed_returns_.front());
      failed_returns_.pop_front();
    }
    c.done(std::move(status), std::move(reply));
    return c.lease_id;
  }

  // Answers the oldest lease request with a grant of worker `worker_address`.
  std::string GrantNext(const std::string& worker_address, const std::string& lease_id) {
    LeaseCall c = TakeLease();
    rpc::RequestWorkerLeaseReply reply;
    reply.set_kind(rpc::RequestWorkerLeaseReply::GRANTED);
    reply.set_lease_id(lease_id);
    reply.set_worker_address(worker_address);
    c.done(absl::OkStatus(), std::move(reply));
    return c.raylet;
  }
  // Answers the oldest push with `reply`.
  rpc::PushTaskRequest ReplyNext(rpc::PushTaskReply reply) {
    PushCall c = TakePush();
    c.done(absl::OkStatus(), std::move(reply));
    return std::move(c.request);
  }
  // Fails the oldest push as if its worker died.
  rpc::PushTaskRequest FailNext(absl::Status status) {
    PushCall c = TakePush();
    c.done(std::move(status), {});
    return std::move(c.request);
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<LeaseCall> leases_ ABSL_GUARDED_BY(mu_);
  std::deque<PushCall> pushes_ ABSL_GUARDED_BY(mu_);
  std::vector<ReturnCall> returns_ ABSL_GUARDED_BY(mu_);
  std::deque<FailedReturnCall> failed_returns_ ABSL_GUARDED_BY(mu_);
  bool hold_failed_returns_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace shoal
