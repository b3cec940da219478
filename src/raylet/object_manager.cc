#include "src/raylet/object_manager.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

#include <grpcpp/support/proto_buffer_reader.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"
#include "src/common/auth.h"
#include "src/common/rpc.h"
#include "src/raylet/object_chunk_codec.h"

namespace shoal {
namespace {

// A sealed object held for a Pull: released when the reactor is done and gRPC has dropped the
// last chunk that points into it (gRPC may still hold a sent buffer after the write completed).
class Pin {
 public:
  Pin(ObjectStoreClient& store, const ObjectId& id) : store_(store), id_(id) {}

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  static void Unref(void* pin) {
    auto* self = static_cast<Pin*>(pin);
    if (self->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      (void)self->store_.Release(self->id_);
      delete self;
    }
  }

 private:
  ObjectStoreClient& store_;
  const ObjectId id_;
  std::atomic<int> refs_{1};
};

// Streams one byte range of a sealed object, a chunk per write. Each chunk is a small encoded
// header followed by a slice that points straight into the store.
class PullReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  PullReactor(ObjectStoreClient& store, grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
              uint64_t chunk_size)
      : chunk_size_(chunk_size) {
    if (grpc::Status s = Start(store, *ctx, *request); !s.ok()) {
      Finish(s);
      return;
    }
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the puller went away"));
      return;
    }
    Next();
  }

  void OnDone() override {
    if (pin_ != nullptr) Pin::Unref(pin_);
    delete this;
  }

 private:
  grpc::Status Start(ObjectStoreClient& store, const grpc::CallbackServerContext& ctx, const grpc::ByteBuffer& request) {
    if (grpc::Status denied = Authenticate(ctx); !denied.ok()) return denied;
    rpc::PullRequest req;
    grpc::ByteBuffer copy(request);
    if (grpc::Status s = grpc::SerializationTraits<rpc::PullRequest>::Deserialize(&copy, &req); !s.ok()) return s;
    auto id = ObjectId::FromBinary(req.object_id());
    if (!id.ok()) return ToGrpcStatus(id.status());
    auto views = store.Get({*id}, absl::ZeroDuration());
    if (!views.ok()) return ToGrpcStatus(views.status());
    auto& view = (*views)[0];
    if (!view.ok()) return ToGrpcStatus(absl::NotFoundError(absl::StrCat("object ", id->Hex(), " is not here")));
    pin_ = new Pin(store, *id);
    // Data and metadata are contiguous in the store, so they travel as one range.
    base_ = view->data;
    header_ = {.data_size = view->data_size, .metadata_size = view->metadata_size, .offset = req.offset()};
    const uint64_t total = view->data_size + view->metadata_size;
    if (req.offset() > total) {
      return ToGrpcStatus(absl::OutOfRangeError(
          absl::StrCat("range starts at ", req.offset(), " past the end of object ", id->Hex(), " (", total, " bytes)")));
    }
    end_ = req.length() == 0 ? total : std::min(total, req.offset() + std::min(req.length(), total));
    PopulateRange(base_ + req.offset(), end_ - req.offset(), /*write=*/false);
    return grpc::Status::OK;
  }

  void Next() {
    // Every stream sends at least one chunk, so that even an empty range tells the sizes.
    if (sent_any_ && header_.offset >= end_) {
      Finish(grpc::Status::OK);
      return;
    }
    const uint64_t n = std::min(chunk_size_, end_ - header_.offset);
    const std::string head = EncodeChunkHeader(header_, n);
    grpc::Slice slices[2] = {grpc::Slice(head), grpc::Slice()};
    size_t count = 1;
    if (n > 0) {
      pin_->Ref();
      slices[1] = grpc::Slice(const_cast<uint8_t*>(base_) + header_.offset, n, &Pin::Unref, pin_);
      count = 2;
    }
    buffer_ = grpc::ByteBuffer(slices, count);
    header_.offset += n;
    sent_any_ = true;
    StartWrite(&buffer_);
  }

  const uint64_t chunk_size_;
  Pin* pin_ = nullptr;
  const uint8_t* base_ = nullptr;
  ChunkHeader header_;
  uint64_t end_ = 0;
  bool sent_any_ = false;
  grpc::ByteBuffer buffer_;
};

}  // namespace

// One fetch: the new object, the ranges still to pull and what each holder has done.
struct ObjectManager::FetchState {
  FetchState(const ObjectId& id, const std::vector<std::string>& holders)
      : id(id), holders(holders), holder_failed(holders.size(), false) {}

  // The next holder still in the race, in turn; -1 if none is.
  int NextHolder() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (size_t i = 0; i < holders.size(); ++i) {
      const size_t h = next_holder++ % holders.size();
      if (!holder_failed[h]) return static_cast<int>(h);
    }
    return -1;
  }
  bool Over() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return already_here || !fatal.ok() || NoHolderLeft();
  }
  bool NoHolderLeft() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return std::all_of(holder_failed.begin(), holder_failed.end(), [](bool f) { return f; });
  }

  const ObjectId id;
  const std::vector<std::string>& holders;
  absl::Mutex mu;
  bool created ABSL_GUARDED_BY(mu) = false;       // the object exists here, ours to seal or abort
  bool already_here ABSL_GUARDED_BY(mu) = false;  // another fetch made it first
  MutableObject object ABSL_GUARDED_BY(mu);
  uint64_t data_size ABSL_GUARDED_BY(mu) = 0;
  uint64_t metadata_size ABSL_GUARDED_BY(mu) = 0;
  int first_holder ABSL_GUARDED_BY(mu) = -1;
  std::deque<std::pair<uint64_t, uint64_t>> pending ABSL_GUARDED_BY(mu);  // [begin, end) to pull
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  size_t next_holder ABSL_GUARDED_BY(mu) = 0;
  std::vector<bool> holder_failed ABSL_GUARDED_BY(mu);
  std::vector<std::string> errors ABSL_GUARDED_BY(mu);
  absl::Status fatal ABSL_GUARDED_BY(mu);  // a failure another holder cannot mend (store full)
  std::vector<std::thread> helpers ABSL_GUARDED_BY(mu);
};

ObjectManager::ObjectManager(ObjectStoreClient& store, std::unique_ptr<ObjectTransferClient> transfer,
                             ObjectManagerOptions options)
    : store_(store), transfer_(std::move(transfer)), options_(options) {}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ObjectManager::Pull(grpc::CallbackServerContext* ctx,
                                                                const grpc::ByteBuffer* request) {
  return new PullReactor(store_, ctx, request, options_.chunk_size);
}

absl::Status ObjectManager::PullRange(FetchState& state, size_t holder, uint64_t begin, uint64_t end, int lane) {
  const std::string& name = state.holders[holder];
  auto stream = transfer_->Pull(name, state.id, begin, end - begin, lane, options_.fetch_timeout);
  ReceivedChunk chunk;
  uint8_t* dest = nullptr;
  bool first = false;
  uint64_t at = begin;
  absl::Status failure;
  auto requeue_rest = [&] {
    absl::MutexLock lock(&state.mu);
    if (at < end) state.pending.emplace_front(at, end);
  };
  while (stream->Read(&chunk)) {
    if (dest == nullptr) {
      absl::MutexLock lock(&state.mu);
      if (state.Over()) {
        stream->Cancel();
        (void)stream->Finish();
        return absl::OkStatus();
      }
      if (!state.created) {
        auto created = store_.Create(state.id, chunk.data_size, chunk.metadata_size, /*primary=*/false);
        if (absl::IsAlreadyExists(created.status())) {
          state.already_here = true;  // another fetch got here first; its copy serves
          state.first_holder = static_cast<int>(holder);
          stream->Cancel();
          (void)stream->Finish();
          return absl::OkStatus();
        }
        if (!created.ok()) {
          state.fatal = created.status();
          stream->Cancel();
          (void)stream->Finish();
          return created.status();
        }
        state.created = true;
        state.object = *created;
        state.data_size = chunk.data_size;
        state.metadata_size = chunk.metadata_size;
        state.first_holder = static_cast<int>(holder);
        const uint64_t total = chunk.data_size + chunk.metadata_size;
        end = std::min(end, total);
        for (uint64_t b = end; b < total; b += options_.range_size) {
          state.pending.emplace_back(b, std::min(total, b + options_.range_size));
        }
        const int helpers = std::min<int>(options_.streams_per_fetch - 1, state.pending.size());
        for (int i = 0; i < helpers; ++i) {
          state.helpers.emplace_back([this, &state, i] { PullRanges(state, i + 1); });
        }
      } else if (chunk.data_size != state.data_size || chunk.metadata_size != state.metadata_size) {
        failure = absl::DataLossError(absl::StrCat(name, " holds ", chunk.data_size, "+", chunk.metadata_size,
                                                   " bytes, another holder ", state.data_size, "+",
                                                   state.metadata_size));
        stream->Cancel();
        break;
      }
      end = std::min(end, state.data_size + state.metadata_size);
      dest = state.object.data;
      first = true;
    }
    if (first) {
      PopulateRange(dest + at, end - at, /*write=*/true);  // outside the lock: it can take a while
      first = false;
    }
    if (chunk.offset != at || chunk.size > end - at) {
      failure = absl::DataLossError(absl::StrCat("bad chunk at offset ", chunk.offset, " from ", name));
      stream->Cancel();
      break;
    }
    if (!stream->ReadPayload(chunk, dest + at)) break;  // Finish says why
    at += chunk.size;
  }
  absl::Status finish = stream->Finish();
  if (failure.ok() && !finish.ok()) failure = finish;
  if (failure.ok() && (dest == nullptr || at != end)) {
    failure = absl::DataLossError(absl::StrCat("stream from ", name, " ended after ", at - begin, " of ",
                                               end - begin, " bytes"));
  }
  if (!failure.ok()) requeue_rest();
  return failure;
}

void ObjectManager::PullRanges(FetchState& state, int lane) {
  for (;;) {
    std::pair<uint64_t, uint64_t> range;
    int holder;
    {
      absl::MutexLock lock(&state.mu);
      if (state.Over() || state.pending.empty()) return;
      holder = state.NextHolder();
      range = state.pending.front();
      state.pending.pop_front();
      ++state.in_flight;
    }
    absl::Status s = PullRange(state, holder, range.first, range.second, lane);
    absl::MutexLock lock(&state.mu);
    --state.in_flight;
    if (!s.ok() && state.fatal.ok() && !state.holder_failed[holder]) {
      spdlog::warn("fetch of {} from {} failed: {}", state.id.Hex(), state.holders[holder], s.ToString());
      state.holder_failed[holder] = true;
      state.errors.push_back(absl::StrCat(state.holders[holder], ": ", s.message()));
    }
  }
}

absl::Status ObjectManager::FetchAll(const ObjectId& id, const std::vector<std::string>& holders, std::string* from) {
  FetchState state(id, holders);
  {
    absl::MutexLock lock(&state.mu);
    // The first range's first chunk tells the object's size; the rest is queued then.
    state.pending.emplace_back(0, options_.range_size);
  }
  PullRanges(state, /*lane=*/0);
  std::vector<std::thread> helpers;
  {
    // Helpers are only started by a stream of this fetch, which has ended by now.
    absl::MutexLock lock(&state.mu);
    helpers.swap(state.helpers);
  }
  for (auto& t : helpers) t.join();
  absl::MutexLock lock(&state.mu);
  if (state.already_here) {
    *from = holders[state.first_holder];
    return absl::OkStatus();
  }
  // Every byte arrived (a holder whose stream failed after its last byte is no loss).
  const bool complete = state.created && state.fatal.ok() && state.pending.empty() && state.in_flight == 0;
  if (!complete) {
    if (state.created) (void)store_.Abort(id);
    if (!state.fatal.ok()) return state.fatal;
    return absl::UnavailableError(absl::StrCat("could not fetch object ", id.Hex(), " from any holder (",
                                               absl::StrJoin(state.errors, "; "), ")"));
  }
  if (auto s = store_.Seal(id); !s.ok()) return s;
  *from = holders[state.first_holder];
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
  std::string from;
  absl::Status s = FetchAll(id, holders, &from);
  {
    absl::MutexLock lock(&mu_);
    --active_fetches_;
  }
  if (!s.ok()) return s;
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

grpc::Status ObjectManager::TransferPort(grpc::ServerContext* ctx, const rpc::TransferPortRequest*,
                                         rpc::TransferPortReply* reply) {
  SHOAL_AUTHENTICATE(ctx);
  reply->set_port(socket_port_.load());
  return grpc::Status::OK;
}

}  // namespace shoal
