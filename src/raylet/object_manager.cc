#include "src/raylet/object_manager.h"

#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"

namespace shoal {

ObjectManager::ObjectManager(ObjectStoreClient& store, std::unique_ptr<ObjectTransferClient> transfer,
                             ObjectManagerOptions options)
    : store_(store), transfer_(std::move(transfer)), options_(options) {}

grpc::Status ObjectManager::Pull(grpc::ServerContext* ctx, const rpc::PullRequest* req,
                                 grpc::ServerWriter<rpc::ObjectChunk>* writer) {
  SHOAL_AUTHENTICATE(ctx);
  auto id = ObjectId::FromBinary(req->object_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  auto views = store_.Get({*id}, absl::ZeroDuration());
  if (!views.ok()) return ToGrpcStatus(views.status());
  auto& view = (*views)[0];
  if (!view.ok()) return ToGrpcStatus(absl::NotFoundError(absl::StrCat("object ", id->Hex(), " is not here")));
  // Data and metadata are contiguous in the store, so they travel as one range.
  const uint64_t total = view->data_size + view->metadata_size;
  grpc::Status status = grpc::Status::OK;
  uint64_t offset = 0;
  do {
    rpc::ObjectChunk chunk;
    if (offset == 0) {
      chunk.set_data_size(view->data_size);
      chunk.set_metadata_size(view->metadata_size);
    }
    const uint64_t n = std::min<uint64_t>(options_.chunk_size, total - offset);
    chunk.set_offset(offset);
    chunk.set_bytes(reinterpret_cast<const char*>(view->data) + offset, n);
    if (ctx->IsCancelled() || !writer->Write(chunk)) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the puller went away");
      break;
    }
    offset += n;
  } while (offset < total);
  (void)store_.Release(*id);
  return status;
}

absl::Status ObjectManager::FetchFrom(const ObjectId& id, const std::string& holder) {
  auto stream = transfer_->Pull(holder, id, options_.fetch_timeout);
  rpc::ObjectChunk chunk;
  std::optional<MutableObject> object;
  uint64_t total = 0, received = 0;
  absl::Status failure;
  while (stream->Read(&chunk)) {
    if (!object) {
      auto created = store_.Create(id, chunk.data_size(), chunk.metadata_size(), /*primary=*/false);
      if (absl::IsAlreadyExists(created.status())) {
        stream->Cancel();  // another fetch got here first; its copy serves
        (void)stream->Finish();
        return absl::OkStatus();
      }
      if (!created.ok()) {
        failure = created.status();
        stream->Cancel();
        break;
      }
      object = *created;
      total = chunk.data_size() + chunk.metadata_size();
    }
    if (chunk.offset() != received || chunk.bytes().size() > total - received) {
      failure = absl::DataLossError(absl::StrCat("bad chunk at offset ", chunk.offset(), " from ", holder));
      stream->Cancel();
      break;
    }
    std::memcpy(object->data + received, chunk.bytes().data(), chunk.bytes().size());
    received += chunk.bytes().size();
  }
  absl::Status finish = stream->Finish();
  if (failure.ok() && !finish.ok()) failure = finish;
  if (failure.ok() && (!object || received != total)) {
    failure = absl::DataLossError(absl::StrCat("stream from ", holder, " ended after ", received, " of ", total, " bytes"));
  }
  if (!failure.ok()) {
    if (object) (void)store_.Abort(id);
    return failure;
  }
  if (auto s = store_.Seal(id); !s.ok()) return s;
  return store_.Release(id);
}

absl::StatusOr<std::string> ObjectManager::Fetch(const ObjectId& id, const std::vector<std::string>& holders) {
  auto here = store_.Contains(id);
  if (!here.ok()) return here.status();
  if (*here) return std::string();
  if (holders.empty()) return absl::InvalidArgumentError(absl::StrCat("no holder given for object ", id.Hex()));
  {
    absl::MutexLock lock(&mu_);
    auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return active_fetches_ < options_.max_concurrent_fetches;
    };
    mu_.Await(absl::Condition(&has_room));
    ++active_fetches_;
  }
  std::vector<std::string> errors;
  std::string from;
  for (const auto& holder : holders) {
    absl::Status s = FetchFrom(id, holder);
    if (s.ok()) {
      from = holder;
      break;
    }
    spdlog::warn("fetch of {} from {} failed: {}", id.Hex(), holder, s.ToString());
    errors.push_back(absl::StrCat(holder, ": ", s.message()));
  }
  {
    absl::MutexLock lock(&mu_);
    --active_fetches_;
  }
  if (from.empty()) {
    return absl::UnavailableError(absl::StrCat("could not fetch object ", id.Hex(), " from any holder (",
                                               absl::StrJoin(errors, "; "), ")"));
  }
  return from;
}

grpc::Status ObjectManager::Fetch(grpc::ServerContext* ctx, const rpc::FetchRequest* req, rpc::FetchReply* reply) {
  SHOAL_AUTHENTICATE(ctx);
  auto id = ObjectId::FromBinary(req->object_id());
  if (!id.ok()) return ToGrpcStatus(id.status());
  std::vector<std::string> holders(req->holders().begin(), req->holders().end());
  for (const auto& h : holders) {
    if (auto hp = ParseHostPort(h); !hp.ok()) return ToGrpcStatus(hp.status());
  }
  auto from = Fetch(*id, holders);
  if (!from.ok()) return ToGrpcStatus(from.status());
  reply->set_fetched_from(*from);
  return grpc::Status::OK;
}

}  // namespace shoal
