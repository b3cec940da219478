// Task pushes to workers over long-lived streams (CoreWorkerService.PushTasks): one stream per
// worker address, opened by the first push to it and kept while it works. A push is queued on
// its stream; whoever finds the stream idle writes everything queued as one message (up to
// kMaxBatchBytes), and the worker answers the same way, so a burst of calls to one actor or
// leased worker costs a few writes and wake-ups instead of an RPC each. A single push costs
// what a unary call did (one write each way), without a new HTTP/2 stream per call.
//
// Each push's callback runs once: with the worker's answer (its status and reply), or, when
// the stream ends first (the worker died, the connection broke), with the stream's status —
// marked Undelivered (task_transport.h) when the push was never written or no connection was
// ever made, as a unary call that never connected is. The next push to that address opens a
// new stream. After Shutdown, pushes are dropped (their callbacks never run), as AsyncCalls
// drops calls after its shutdown.
// Threading: any thread; callbacks run on gRPC's threads, never inside Push.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.grpc.pb.h"

namespace shoal {

// Moves answers from the front of `queue` into `batch` (cleared first): every one queued up to
// PushStreams::kMaxBatchBytes, and at least one when any is. The worker's end of both transports
// (the PushTasks stream and direct pushes) writes its answers in such batches.
void TakeAnswerBatch(std::deque<rpc::PushTaskAnswer>& queue, rpc::PushTaskAnswers& batch);

class PushStreams {
 public:
  using Callback = std::function<void(absl::Status, rpc::PushTaskReply)>;
  using StubFor = std::function<std::shared_ptr<rpc::CoreWorkerService::Stub>(const std::string& address)>;

  // A message of pushes (or answers) holds at most this many bytes, unless one alone is larger.
  static constexpr size_t kMaxBatchBytes = size_t{8} << 20;

  explicit PushStreams(StubFor stubs) : stubs_(std::move(stubs)) {}
  ~PushStreams();  // Shutdown(2 s)
  PushStreams(const PushStreams&) = delete;
  PushStreams& operator=(const PushStreams&) = delete;

  void Push(const std::string& address, rpc::PushTaskRequest request, Callback done);
  // Cancels every stream (their pushes not answered yet get CANCELLED) and waits up to
  // `timeout` for them to end. Idempotent.
  void Shutdown(absl::Duration timeout);

 private:
  class Stream;
  // A stream ended: later pushes to its address open a new one.
  void Forget(Stream* stream);
  // A stream's last callback ran (it is being deleted).
  void Gone();

  const StubFor stubs_;
  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Stream*> streams_ ABSL_GUARDED_BY(mu_);
  int live_ ABSL_GUARDED_BY(mu_) = 0;  // streams not yet deleted
};

}  // namespace shoal
