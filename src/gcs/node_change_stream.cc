#include "src/gcs/node_change_stream.h"

#include <utility>

#include "src/common/auth.h"

namespace shoal {

grpc::ServerWriteReactor<rpc::NodeChange>* NodeChangeStream::Start(grpc::CallbackServerContext* ctx,
                                                                  NodeChangeFeed& feed, const SnapshotFn& snapshot) {
  auto stream = std::make_shared<NodeChangeStream>(feed);
  stream->self_ = stream;
  if (grpc::Status denied = Authenticate(*ctx); !denied.ok()) {
    stream->RequestFinish(denied);
  } else if (!feed.Subscribe(stream)) {
    stream->RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GCS is shutting down"));
  } else {
    std::vector<rpc::NodeInfo> nodes = snapshot();
    absl::MutexLock lock(&stream->mu_);
    // Changes published since Subscribe are queued already: the snapshot goes before them.
    stream->queue_.insert(stream->queue_.begin(), std::make_move_iterator(nodes.begin()),
                          std::make_move_iterator(nodes.end()));
  }
  {
    absl::MutexLock lock(&stream->mu_);
    stream->started_ = true;
  }
  stream->Pump();
  return stream.get();
}

void NodeChangeStream::OnNodeChange(const rpc::NodeInfo& node) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_wanted_) return;
    queue_.push_back(node);
  }
  Pump();
}

void NodeChangeStream::OnFeedClosed() {
  RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GCS is shutting down"));
}

void NodeChangeStream::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
  }
  // Not ok: the call is over (cancelled, or the client went away); it still needs its Finish.
  if (!ok) RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"));
  Pump();
}

void NodeChangeStream::OnCancel() {
  RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber cancelled"));
}

void NodeChangeStream::OnDone() {
  feed_.Unsubscribe(this);
  // The feed may still hold a reference for a delivery in progress; the last one frees this.
  std::shared_ptr<NodeChangeStream> last = std::move(self_);
}

void NodeChangeStream::RequestFinish(grpc::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_wanted_) return;
    finish_wanted_ = true;
    final_status_ = std::move(status);
    queue_.clear();
  }
  Pump();
}

void NodeChangeStream::Pump() {
  bool finish = false;
  grpc::Status finish_with;
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || writing_ || finished_) return;
    if (finish_wanted_) {
      finished_ = true;
      finish = true;
      finish_with = final_status_;
    } else if (!queue_.empty()) {
      writing_ = true;
      *current_.mutable_node() = std::move(queue_.front());
      queue_.pop_front();
    } else {
      return;
    }
  }
  // One thread at a time gets here (it just set writing_ or finished_), with no lock held: a
  // reaction that gRPC runs inline may come back into this stream.
  if (finish) {
    Finish(std::move(finish_with));
  } else {
    StartWrite(&current_);
  }
}

}  // namespace shoal
