// An ObjectTransferClient for tests: holders are names mapped to objects held in memory, and
// each holder can be told to fail in the ways a real stream fails.
// Threading: thread-safe; Pull may block on a gate so tests can hold fetches in flight.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "src/raylet/object_transfer.h"

namespace shoal {

struct FakeHolder {
  FakeHolder() = default;
  FakeHolder(std::string data, uint64_t chunk_size, std::string metadata = "")
      : data(std::move(data)), metadata(std::move(metadata)), chunk_size(chunk_size) {}
  FakeHolder&& FailAfter(int chunks, absl::Status s = absl::UnavailableError("holder went away")) && {
    fail_after_chunks = chunks;
    error = std::move(s);
    return std::move(*this);
  }
  FakeHolder&& TruncateAfter(int chunks) && {
    truncate_after_chunks = chunks;
    return std::move(*this);
  }
  FakeHolder&& BadOffsetAt(int chunk) && {
    bad_offset_chunk = chunk;
    return std::move(*this);
  }

  std::string data;
  std::string metadata;
  uint64_t chunk_size = 1024;
  // After this many chunks the stream ends with `error` (a holder dying mid-stream).
  int fail_after_chunks = -1;
  absl::Status error = absl::UnavailableError("holder went away");
  // After this many chunks the stream ends "cleanly" although bytes are missing.
  int truncate_after_chunks = -1;
  // The chunk with this index is sent with a wrong offset.
  int bad_offset_chunk = -1;
};

class FakeObjectTransferClient final : public ObjectTransferClient {
 public:
  void AddHolder(const std::string& holder, FakeHolder h) {
    absl::MutexLock lock(&mu_);
    holders_[holder] = std::move(h);
  }

  // While closed, every stream blocks in its first Read until Open().
  void CloseGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = false;
  }
  void OpenGate() {
    absl::MutexLock lock(&mu_);
    gate_open_ = true;
  }

  // Streams blocked at the closed gate now, and the most ever seen at once.
  int waiting() {
    absl::MutexLock lock(&mu_);
    return waiting_;
  }
  int max_waiting() {
    absl::MutexLock lock(&mu_);
    return max_waiting_;
  }
  struct PullRecord {
    std::string holder;
    ObjectId id;
    uint64_t offset;
    uint64_t length;
    int lane;
  };
  // Every stream opened, in order.
  std::vector<PullRecord> pulls() {
    absl::MutexLock lock(&mu_);
    return pulls_;
  }
  int cancels() {
    absl::MutexLock lock(&mu_);
    return cancels_;
  }

  std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id, uint64_t offset,
                                          uint64_t length, int lane, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    pulls_.push_back({holder, id, offset, length, lane});
    auto it = holders_.find(holder);
    if (it == holders_.end()) {
      return std::make_unique<Stream>(this, FakeHolder().FailAfter(0, absl::UnavailableError("no such holder " + holder)),
                                      0, 0);
    }
    return std::make_unique<Stream>(this, it->second, offset, length);
  }

 private:
  class Stream final : public ObjectChunkStream {
   public:
    Stream(FakeObjectTransferClient* owner, FakeHolder h, uint64_t offset, uint64_t length)
        : owner_(owner), h_(std::move(h)), all_(h_.data + h_.metadata), offset_(offset) {
      end_ = length == 0 ? all_.size() : std::min<uint64_t>(all_.size(), offset + length);
    }

    // As the real holder: chunks of the range [offset, offset + length), at least one.
    bool Read(ReceivedChunk* chunk) override {
      if (index_ == 0) owner_->WaitAtGate();
      if (cancelled_ || done_) return false;
      if (index_ == h_.fail_after_chunks) return End(h_.error);
      if (index_ == h_.truncate_after_chunks) return End(absl::OkStatus());
      if (offset_ > all_.size()) return End(absl::OutOfRangeError("range past the end"));
      if (offset_ >= end_ && index_ > 0) return End(absl::OkStatus());
      const uint64_t n = std::min<uint64_t>(h_.chunk_size, end_ - offset_);
      chunk->data_size = h_.data.size();
      chunk->metadata_size = h_.metadata.size();
      chunk->offset = index_ == h_.bad_offset_chunk ? offset_ + 1 : offset_;
      piece_ = all_.substr(offset_, n);
      chunk->pieces = {piece_};
      chunk->size = n;
      offset_ += n;
      ++index_;
      return true;
    }
    void Cancel() override {
      cancelled_ = true;
      absl::MutexLock lock(&owner_->mu_);
      ++owner_->cancels_;
    }
    absl::Status Finish() override {
      if (cancelled_) return absl::CancelledError("cancelled by the reader");
      return status_;
    }

   private:
    bool End(absl::Status s) {
      done_ = true;
      status_ = std::move(s);
      return false;
    }

    FakeObjectTransferClient* const owner_;
    const FakeHolder h_;
    const std::string all_;
    std::string piece_;  // the last chunk's bytes
    int index_ = 0;
    uint64_t offset_ = 0;
    uint64_t end_ = 0;
    bool cancelled_ = false;
    bool done_ = false;
    absl::Status status_;
  };

  void WaitAtGate() {
    absl::MutexLock lock(&mu_);
    ++waiting_;
    max_waiting_ = std::max(max_waiting_, waiting_);
    mu_.Await(absl::Condition(&gate_open_));
    --waiting_;
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, FakeHolder> holders_ ABSL_GUARDED_BY(mu_);
  bool gate_open_ ABSL_GUARDED_BY(mu_) = true;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int max_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  int cancels_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<PullRecord> pulls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
