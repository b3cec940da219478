// Task pushes over plain sockets (issue 17): the same PushTaskBatch and PushTaskAnswers messages
// as the PushTasks stream (push_streams.h), on one TCP connection per caller and worker, without
// gRPC. gRPC's callback API hands every read and write completion to one of its own threads:
// measured, 14 of the 17 thread switches of one task (bench/README.md). Here the caller's thread
// writes its pushes, one thread per connection reads at each end, and the worker's executor
// writes its answer itself.
//
// Wire: every frame is a 4-byte little-endian length and that many bytes. The caller's first
// frame is the cluster token (empty when auth is off); the worker answers with a PushTaskAnswers
// holding one answer of id 0 (code 0: accepted; else why not, e.g. UNAUTHENTICATED, and it
// closes). Then the caller sends PushTaskBatch frames and the worker PushTaskAnswers frames, each
// answer paired with its push by id, as on the stream.
//
// A worker tells where it takes direct pushes through CoreWorkerService.DirectPushPort; 0 when
// it takes none: with TLS on (these sockets are not encrypted) or a worker port range set (this
// port would not keep to it). A caller asks once per worker address, on the connection's own
// thread; where the answer is 0 or the question fails, that address's pushes go to the fallback
// (the PushTasks stream) from then on.
//
// Writes: a push with no earlier one unanswered on its connection is written by the caller's
// thread at once; pushes behind unanswered ones are written by one writer thread (per
// DirectPushes), so that a caller pipelining calls only queues them, and what queued while the
// writer woke goes out in one frame. The worker's end does the same with its answers: the last
// call in flight is answered by the thread that ran it, the others by a writer thread.
//
// Callbacks: as PushStreams' — each push's callback runs once, with the worker's answer or,
// when the connection ends first, its status (Undelivered when the push was never written or no
// connection was made); on a connection's thread, never inside Push. After Shutdown, pushes are
// dropped and pushes not answered yet get CANCELLED.
// Threading: any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/worker.pb.h"
#include "src/common/socket.h"
#include "src/common/spin.h"
#include "src/worker/push_streams.h"
#include "src/worker/task_transport.h"

namespace shoal {

class TaskReceiver;

namespace direct_push {
// A thread that runs what is posted to it, in order: the writer of pipelined traffic, at each end.
// Having run everything, it spins briefly (src/common/spin.h) before it sleeps: pipelined calls
// post every few tens of microseconds, and a post to a thread that is not asleep costs the
// poster no wake-up (a futex call, and a context switch on the writer's side, per call).
class HandOffThread {
 public:
  explicit HandOffThread(const char* name);
  ~HandOffThread();  // Stop()
  HandOffThread(const HandOffThread&) = delete;
  HandOffThread& operator=(const HandOffThread&) = delete;
  // Answers false after Stop: the caller runs `fn` itself.
  bool Post(std::function<void()> fn);
  // Runs what was posted, then ends the thread. Idempotent; not from the thread itself.
  void Stop();

 private:
  void Run();
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> posts_{0};  // what the spin watches, without the lock
  AdaptiveSpin spin_;
  std::thread thread_;  // last: it starts at once
};
}  // namespace direct_push

// The worker's end: accepts connections and hands each push read to the receiver.
class DirectPushServer {
 public:
  explicit DirectPushServer(TaskReceiver& receiver) : receiver_(receiver) {}
  ~DirectPushServer();  // Stop()
  DirectPushServer(const DirectPushServer&) = delete;
  DirectPushServer& operator=(const DirectPushServer&) = delete;

  // Listens on `host` (an IPv4 address), any free port; answers the port.
  absl::StatusOr<int> Start(const std::string& host);
  // Closes the listener and every connection and waits for their readers (none is inside the
  // receiver afterwards). Answers that come later are dropped. Idempotent.
  void Stop();

 private:
  struct Conn;
  // A connection the listener accepted: read on a thread of its own.
  void Take(int fd);
  void Serve(std::shared_ptr<Conn> conn);
  void ReaderDone(const Conn* conn);

  TaskReceiver& receiver_;
  // Writes the answers of connections with several calls in flight (shared with them: an
  // answer may come after Stop).
  std::shared_ptr<direct_push::HandOffThread> writer_ = std::make_shared<direct_push::HandOffThread>("push-answer");
  net::Listener listener_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<const Conn*, std::shared_ptr<Conn>> open_ ABSL_GUARDED_BY(mu_);  // readers running
};

// The caller's end: one connection per worker address, opened by the first push to it.
class DirectPushes {
 public:
  using Callback = PushStreams::Callback;
  // The worker's direct port (0: none); called on a connection's thread, may block briefly.
  using PortFor = std::function<absl::StatusOr<int>(const std::string& address)>;
  // Where pushes go for workers that take no direct pushes.
  using Fallback = std::function<void(const std::string& address, SharedPushRequest request, Callback done)>;

  DirectPushes(PortFor port_for, Fallback fallback)
      : port_for_(std::move(port_for)), fallback_(std::move(fallback)) {}
  ~DirectPushes();  // Shutdown(2 s)
  DirectPushes(const DirectPushes&) = delete;
  DirectPushes& operator=(const DirectPushes&) = delete;

  // Reads `request` until it is written (not after: its owner may reuse what it holds then).
  void Push(const std::string& address, SharedPushRequest request, Callback done);
  // Closes every connection (pushes not answered get CANCELLED) and waits up to `timeout` for
  // their threads to end. Idempotent.
  void Shutdown(absl::Duration timeout);

 private:
  class Conn;
  void Run(std::shared_ptr<Conn> conn);
  // The connection ended (or fell back): later pushes to its address open a new one (or go to
  // the fallback).
  void Forget(const Conn* conn, bool fall_back);

  const PortFor port_for_;
  const Fallback fallback_;
  direct_push::HandOffThread writer_{"push-write"};  // writes pipelined pushes
  absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, std::shared_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> fallback_addresses_ ABSL_GUARDED_BY(mu_);
  int live_ ABSL_GUARDED_BY(mu_) = 0;  // connection threads running
};

}  // namespace shoal
