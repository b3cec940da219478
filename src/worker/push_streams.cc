#include "src/worker/push_streams.h"

#include <deque>
#include <utility>
#include <vector>

#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/worker/task_transport.h"

namespace shoal {

void TakeAnswerBatch(std::deque<rpc::PushTaskAnswer>& queue, rpc::PushTaskAnswers& batch) {
  batch.Clear();
  size_t bytes = 0;
  while (!queue.empty()) {
    const size_t size = queue.front().ByteSizeLong();
    if (batch.answers_size() > 0 && bytes + size > PushStreams::kMaxBatchBytes) break;
    bytes += size;
    batch.add_answers()->Swap(&queue.front());
    queue.pop_front();
  }
}

// One stream to one worker. Lifetime: gRPC calls OnDone once the stream ended and every
// operation on it completed; a hold (taken before StartCall) keeps OnDone back while a push
// may still start a write from outside the reactions, and is released once the stream ended
// and no such write is being started.
class PushStreams::Stream : public grpc::ClientBidiReactor<rpc::PushTaskBatch, rpc::PushTaskAnswers> {
 public:
  Stream(PushStreams& owner, std::string address, const std::shared_ptr<rpc::CoreWorkerService::Stub>& stub)
      : owner_(owner), address_(std::move(address)) {
    ApplyCallOptions({}, context_);
    stub->async()->PushTasks(&context_, this);
    AddHold();
    StartRead(&answers_);
  }
  // Opens the stream (after its first push was queued, so that a stream failing at once fails
  // that push instead of refusing it).
  void Begin() { StartCall(); }

  enum class Queued { kRejected, kQueued, kMustWrite };
  // Queues a push (moved from `request` and `done` unless rejected: the stream already ended,
  // the caller opens a new one). kMustWrite: no write was in flight, so the caller must call
  // WriteQueued (the stream stays alive until it has).
  Queued Enqueue(rpc::PushTaskRequest& request, Callback& done) {
    absl::MutexLock lock(&mu_);
    if (ended_) return Queued::kRejected;
    const uint64_t id = next_id_++;
    pending_.emplace(id, Pending{std::move(done), false});
    Item item;
    item.id = id;
    item.bytes = request.ByteSizeLong();
    item.request = std::move(request);
    outbox_.push_back(std::move(item));
    if (writing_) return Queued::kQueued;
    writing_ = true;
    ++starting_;
    FillBatch();
    return Queued::kMustWrite;
  }
  void WriteQueued() {
    StartWrite(&sending_);
    StartedFromOutside();
  }

  const std::string& address() const { return address_; }
  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      if (!ok || ended_ || outbox_.empty()) {
        writing_ = false;  // a failed write: the read fails too and ends the stream
        return;
      }
      FillBatch();
    }
    StartWrite(&sending_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      EndStream();
      return;
    }
    rpc::PushTaskAnswers answers;
    answers.Swap(&answers_);
    StartRead(&answers_);
    std::vector<std::pair<Callback, rpc::PushTaskAnswer*>> ready;
    ready.reserve(answers.answers_size());
    {
      absl::MutexLock lock(&mu_);
      for (rpc::PushTaskAnswer& answer : *answers.mutable_answers()) {
        auto it = pending_.find(answer.id());
        if (it == pending_.end()) continue;  // not ours: ignore
        ready.emplace_back(std::move(it->second.done), &answer);
        pending_.erase(it);
      }
    }
    for (auto& [done, answer] : ready) {
      absl::Status status(static_cast<absl::StatusCode>(answer->code()), answer->message());
      done(std::move(status), std::move(*answer->mutable_reply()));
    }
  }

  void OnDone(const grpc::Status& status) override {
    owner_.Forget(this);
    absl::flat_hash_map<uint64_t, Pending> pending;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      pending.swap(pending_);
    }
    absl::Status why = FromGrpcStatus(status);
    if (why.ok()) why = absl::UnavailableError("the worker ended the push stream");
    const bool never_connected = NeverConnected(why);
    for (auto& [id, call] : pending) {
      call.done(!call.written || never_connected ? Undelivered(why) : why, rpc::PushTaskReply());
    }
    PushStreams& owner = owner_;
    delete this;
    owner.Gone();
  }

 private:
  struct Pending {
    Callback done;
    bool written;  // in a message handed to gRPC (maybe delivered)
  };
  struct Item {
    uint64_t id = 0;
    size_t bytes = 0;
    rpc::PushTaskRequest request;
  };

  // Moves queued pushes into sending_, up to kMaxBatchBytes (at least one).
  void FillBatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    sending_.Clear();
    size_t bytes = 0;
    while (!outbox_.empty() && (sending_.items_size() == 0 || bytes + outbox_.front().bytes <= kMaxBatchBytes)) {
      Item& item = outbox_.front();
      bytes += item.bytes;
      rpc::PushTaskItem* out = sending_.add_items();
      out->set_id(item.id);
      *out->mutable_request() = std::move(item.request);
      pending_[item.id].written = true;
      outbox_.pop_front();
    }
  }

  // A write started from outside the reactions has been handed to gRPC.
  void StartedFromOutside() {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      --starting_;
      release = ended_ && starting_ == 0 && !released_;
      if (release) released_ = true;
    }
    if (release) RemoveHold();
  }

  // The read side failed: the stream is over. Pushes queued now are never written.
  void EndStream() {
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      outbox_.clear();
      release = starting_ == 0 && !released_;
      if (release) released_ = true;
    }
    if (release) RemoveHold();
  }

  PushStreams& owner_;
  const std::string address_;
  grpc::ClientContext context_;
  rpc::PushTaskAnswers answers_;  // the read in flight
  rpc::PushTaskBatch sending_;    // the write in flight (touched only by its writer)

  absl::Mutex mu_;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  int starting_ ABSL_GUARDED_BY(mu_) = 0;  // writes being started from outside the reactions
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<Item> outbox_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Pending> pending_ ABSL_GUARDED_BY(mu_);
};

PushStreams::~PushStreams() { Shutdown(absl::Seconds(2)); }

void PushStreams::Push(const std::string& address, rpc::PushTaskRequest request, Callback done) {
  Stream* stream = nullptr;
  Stream::Queued queued = Stream::Queued::kRejected;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    Stream*& slot = streams_[address];
    if (slot != nullptr) queued = slot->Enqueue(request, done);
    if (queued == Stream::Queued::kRejected) {
      slot = new Stream(*this, address, stubs_(address));
      ++live_;
      queued = slot->Enqueue(request, done);  // kMustWrite: nothing can have ended it yet
      slot->Begin();
    }
    stream = slot;
  }
  // Outside the lock: the write may send at once. The stream cannot end before it is handed over.
  if (queued == Stream::Queued::kMustWrite) stream->WriteQueued();
}

void PushStreams::Forget(Stream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(stream->address());
  if (it != streams_.end() && it->second == stream) streams_.erase(it);
}

void PushStreams::Gone() {
  absl::MutexLock lock(&mu_);
  --live_;
}

void PushStreams::Shutdown(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  for (auto& [address, stream] : streams_) stream->Cancel();
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

}  // namespace shoal
