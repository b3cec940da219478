#include "src/raylet/object_transfer.h"

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "shoal/raylet.grpc.pb.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"

namespace shoal {
namespace {

class GrpcChunkStream final : public ObjectChunkStream {
 public:
  GrpcChunkStream(rpc::ObjectManagerService::Stub& stub, const ObjectId& id, absl::Duration timeout) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    rpc::PullRequest req;
    req.set_object_id(id.Binary());
    AddClusterToken(ctx_);
    reader_ = stub.Pull(&ctx_, req);
  }

  bool Read(rpc::ObjectChunk* chunk) override { return reader_->Read(chunk); }
  void Cancel() override { ctx_.TryCancel(); }
  absl::Status Finish() override { return FromGrpcStatus(reader_->Finish()); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<rpc::ObjectChunk>> reader_;
};

class GrpcObjectTransferClient final : public ObjectTransferClient {
 public:
  std::unique_ptr<ObjectChunkStream> Pull(const std::string& holder, const ObjectId& id,
                                          absl::Duration timeout) override {
    return std::make_unique<GrpcChunkStream>(StubFor(holder), id, timeout);
  }

 private:
  rpc::ObjectManagerService::Stub& StubFor(const std::string& holder) {
    absl::MutexLock lock(&mu_);
    auto& stub = stubs_[holder];
    if (stub == nullptr) stub = rpc::ObjectManagerService::NewStub(MakeChannel(holder));
    return *stub;
  }

  absl::Mutex mu_;
  // Stubs are never erased, so references handed out stay valid.
  absl::flat_hash_map<std::string, std::unique_ptr<rpc::ObjectManagerService::Stub>> stubs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<ObjectTransferClient> MakeGrpcObjectTransferClient() {
  return std::make_unique<GrpcObjectTransferClient>();
}

}  // namespace shoal
