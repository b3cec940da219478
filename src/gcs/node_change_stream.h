// One SubscribeNodeChanges call (gcs.proto) on gRPC's callback API: it writes the node table's
// snapshot, then every change the NodeChangeFeed publishes, until the caller cancels or the
// feed closes. A stream is a queue and at most one write in flight; waiting for changes holds
// no thread, so any number of subscribers cost memory, not threads.
//
//   grpc::ServerWriteReactor<rpc::NodeChange>* SubscribeNodeChanges(grpc::CallbackServerContext* ctx,
//                                                                    const rpc::SubscribeRequest*) override {
//     return NodeChangeStream::Start(ctx, feed, [&] { return nodes.GetAll(false); });
//   }
//
// Order: the stream subscribes before it reads the snapshot, so no change falls between the two
// (one may arrive twice; a node's state is idempotent).
// Threading: gRPC's callback threads and the feed's publishing threads. Reactor operations are
// started by one thread at a time and never with a lock held. Ownership: the reactor owns
// itself (and the feed holds a reference while subscribed); it is freed after OnDone.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "shoal/gcs.pb.h"
#include "src/gcs/gcs_tables.h"

namespace shoal {

class NodeChangeStream final : public grpc::ServerWriteReactor<rpc::NodeChange>,
                               public NodeChangeFeed::Listener,
                               public std::enable_shared_from_this<NodeChangeStream> {
 public:
  using SnapshotFn = std::function<std::vector<rpc::NodeInfo>()>;

  // Checks the caller's token (UNAUTHENTICATED otherwise), subscribes to `feed` and queues the
  // snapshot. A closed feed finishes the call UNAVAILABLE. `feed` must outlive the call.
  static grpc::ServerWriteReactor<rpc::NodeChange>* Start(grpc::CallbackServerContext* ctx, NodeChangeFeed& feed,
                                                          const SnapshotFn& snapshot);

  explicit NodeChangeStream(NodeChangeFeed& feed) : feed_(feed) {}
  NodeChangeStream(const NodeChangeStream&) = delete;
  NodeChangeStream& operator=(const NodeChangeStream&) = delete;

  // NodeChangeFeed::Listener
  void OnNodeChange(const rpc::NodeInfo& node) override;
  void OnFeedClosed() override;

  // grpc::ServerWriteReactor
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Asks for the call to end with `status` (the first such request wins), once no write is in
  // flight.
  void RequestFinish(grpc::Status status);
  // Starts the next write, or the Finish, if nothing is in flight. Call without mu_.
  void Pump();

  NodeChangeFeed& feed_;
  std::shared_ptr<NodeChangeStream> self_;  // released in OnDone
  rpc::NodeChange current_;                 // the write in flight; touched only by its starter

  absl::Mutex mu_;
  std::deque<rpc::NodeInfo> queue_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;   // the snapshot is queued: writes may begin
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called: no more operations
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
