#include "src/raylet/object_transfer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/raylet/object_chunk_codec.h"

namespace shoal {

bool ObjectChunkStream::ReadPayload(const ReceivedChunk& chunk, uint8_t* dest) {
  for (absl::string_view piece : chunk.pieces) {
    std::memcpy(dest, piece.data(), piece.size());
    dest += piece.size();
  }
  return true;
}

void PopulateRange(const uint8_t* p, uint64_t n, bool write) {
  constexpr int kPopulateRead = 22, kPopulateWrite = 23;  // MADV_POPULATE_READ/WRITE
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) & ~(page - 1);
  if (n > 0) (void)madvise(reinterpret_cast<void*>(begin), end - begin, write ? kPopulateWrite : kPopulateRead);
}

namespace {

// ObjectManagerService.Pull, called with a raw response type so that chunks arrive as gRPC's
// own buffers instead of being parsed (and copied) into rpc::ObjectChunk messages.
const grpc::internal::RpcMethod& PullMethod() {
  static const auto* method = new grpc::internal::RpcMethod("/shoal.rpc.ObjectManagerService/Pull",
                                                            grpc::internal::RpcMethod::SERVER_STREAMING);
  return *method;
}

class GrpcChunkStream final : public ObjectChunkStream {
 public:
  GrpcChunkStream(grpc::ChannelInterface* channel, const ObjectId& id, uint64_t offset, uint64_t length,
                  absl::Duration timeout) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    AddClusterToken(ctx_);
    rpc::PullRequest req;
    req.set_object_id(id.Binary());
    req.set_offset(offset);
    req.set_length(length);
    reader_.reset(grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, PullMethod(), &ctx_, req));
  }

  bool Read(ReceivedChunk* chunk) override {
    if (!error_.ok()) return false;
    grpc::ByteBuffer buffer;
    if (!reader_->Read(&buffer)) return false;
    slices_.clear();
    if (grpc::Status s = buffer.Dump(&slices_); !s.ok()) return Fail(FromGrpcStatus(s));
    std::vector<absl::string_view> pieces;
    pieces.reserve(slices_.size());
    for (const grpc::Slice& s : slices_) {
      pieces.emplace_back(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    auto decoded = DecodeChunk(pieces);
    if (!decoded.ok()) return Fail(decoded.status());
    chunk->data_size = decoded->header.data_size;
    chunk->metadata_size = decoded->header.metadata_size;
    chunk->offset = decoded->header.offset;
    chunk->pieces = std::move(decoded->payload);
    chunk->size = decoded->payload_size;
    return true;
  }

  void Cancel() override { ctx_.TryCancel(); }

  absl::Status Finish() override {
    absl::Status s = FromGrpcStatus(reader_->Finish());
    return error_.ok() ? s : error_;
  }

 private:
  bool Fail(absl::Status s) {
    error_ = std::move(s);
    ctx_.TryCancel();
    return false;
  }

  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader_;
  std::vector<grpc::Slice> slices_;  // the last chunk's buffers, which its pieces point into
  absl::Status error_;
};

class GrpcObjectTransferClient final : public ObjectTransferClient {
 public:
  std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id, uint64_t offset,
                                          uint64_t length, int lane, absl::Duration timeout) override {
    return std::make_unique<GrpcChunkStream>(ChannelFor(holder, lane).get(), id, offset, length, timeout);
  }

 private:
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& holder, int lane) {
    absl::MutexLock lock(&mu_);
    auto& channel = channels_[std::make_pair(holder, lane)];
    // A lane argument makes each lane's channel a connection of its own (gRPC shares one
    // connection between channels with identical arguments). A stream opens with a large
    // receive window and large frames, so that a new connection does not start slow.
    if (channel == nullptr) {
      channel = MakeChannel(holder, {{"shoal.transfer_lane", lane},
                                     {GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20},
                                     {GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20}});
    }
    return channel;
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::pair<std::string, int>, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ObjectTransferClient> MakeGrpcObjectTransferClient() {
  return std::make_unique<GrpcObjectTransferClient>();
}

}  // namespace shoal
