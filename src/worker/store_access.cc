#include "src/worker/store_access.h"

#include "src/common/error_info.h"

#include "absl/strings/str_cat.h"
#include "src/common/rpc.h"
#include "src/common/rpc_client.h"
#include "src/worker/object_value.h"

namespace shoal {
namespace {
// A fetched copy is secondary and may be evicted before we read it; fetch again this often.
constexpr int kReadAttempts = 3;
constexpr absl::Duration kFetchTimeout = absl::Minutes(10);
constexpr absl::Duration kSealWait = absl::Seconds(30);
// How long a Fetch whose caller has no time left is given to reach the raylet.
constexpr absl::Duration kFetchStartWait = absl::Milliseconds(5);

ObjectBuffer OwnedBuffer(std::string bytes) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  return ObjectBuffer{owned->data(), owned->size(), owned};
}
}  // namespace

absl::StatusOr<ObjectBuffer> ObjectStoreAccess::ReadBuffer(const rpc::ObjectValue& value, absl::Time deadline) {
  auto bytes = Read(value, deadline);
  if (!bytes.ok()) return bytes.status();
  return OwnedBuffer(std::move(*bytes));
}

absl::Status ObjectStoreAccess::Fetch(const rpc::ObjectValue&, absl::Time) { return absl::OkStatus(); }

absl::StatusOr<rpc::ObjectValue> ObjectStoreAccess::WriteParts(const ObjectId& id,
                                                               const std::vector<std::string_view>& parts) {
  std::string all;
  for (std::string_view part : parts) all.append(part);
  return Write(id, all);
}

NodeStoreAccess::NodeStoreAccess(std::shared_ptr<ObjectStoreClient> store, std::string raylet_address,
                                 const NodeId& node)
    : store_(std::move(store)),
      raylet_address_(std::move(raylet_address)),
      node_(node),
      object_manager_(rpc::ObjectManagerService::NewStub(MakeChannel(raylet_address_))) {}

absl::StatusOr<ObjectBuffer> NodeStoreAccess::ReadLocal(const ObjectId& id, absl::Duration wait) {
  auto views = store_->Get({id}, wait);
  if (!views.ok()) return views.status();
  auto& view = (*views)[0];
  if (!view.ok()) return view.status();
  // The reference the Get took goes with the last copy of the buffer; the client (and so the
  // mapping) stays while any copy lives.
  std::shared_ptr<ObjectStoreClient> store = store_;
  std::shared_ptr<const void> release(view->data, [store, id](const void*) { (void)store->Release(id); });
  return ObjectBuffer{reinterpret_cast<const char*>(view->data), view->data_size, std::move(release)};
}

absl::StatusOr<ObjectBuffer> NodeStoreAccess::FetchAndRead(const rpc::ObjectValue& value, absl::Time deadline) {
  auto id = ObjectId::FromBinary(value.object_id());
  if (!id.ok()) return id.status();
  const bool here = value.node_id() == node_.Hex() || value.raylet_address() == raylet_address_;
  if (here) {
    auto buffer = ReadLocal(*id);
    if (absl::IsNotFound(buffer.status())) {
      return absl::NotFoundError(absl::StrCat("object ", id->Hex(), " is no longer in this node's store"));
    }
    return buffer;
  }
  absl::Status last;
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    // A copy fetched earlier may still be here.
    auto cached = ReadLocal(*id);
    if (cached.ok()) return cached;
    rpc::FetchRequest req;
    req.set_object_id(id->Binary());
    req.add_holders(value.raylet_address());
    rpc::FetchReply reply;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat("object ", id->Hex(), " was still being copied here from ",
                                                      value.raylet_address(), " when the get's timeout passed"));
    }
    absl::Status fetched = UnaryCall(*object_manager_, &rpc::ObjectManagerService::Stub::Fetch, req, &reply,
                                     {.timeout = std::min(kFetchTimeout, left)});
    if (absl::IsDeadlineExceeded(fetched) && left < kFetchTimeout) {
      return absl::DeadlineExceededError(absl::StrCat("object ", id->Hex(), " was still being copied here from ",
                                                      value.raylet_address(), " when the get's timeout passed"));
    }
    if (!fetched.ok()) {
      return absl::Status(fetched.code(), absl::StrCat("cannot copy object ", id->Hex(), " from node at ",
                                                       value.raylet_address(), ": ", fetched.message()));
    }
    // A concurrent fetch of the same object (another worker here) may still be writing the
    // copy: the Fetch answered at once, so wait for the seal (and fetch again if that copy
    // was aborted or evicted meanwhile).
    auto buffer = ReadLocal(*id, kSealWait);
    if (!absl::IsNotFound(buffer.status())) return buffer;
    last = buffer.status();
  }
  return absl::NotFoundError(absl::StrCat("object ", id->Hex(), " was fetched but could not be read: ", last.message()));
}

absl::Status NodeStoreAccess::Fetch(const rpc::ObjectValue& value, absl::Time deadline) {
  auto id = ObjectId::FromBinary(value.object_id());
  if (!id.ok()) return id.status();
  if (value.node_id() == node_.Hex() || value.raylet_address() == raylet_address_) return absl::OkStatus();
  if (ReadLocal(*id).ok()) return absl::OkStatus();  // fetched before
  rpc::FetchRequest req;
  req.set_object_id(id->Binary());
  req.add_holders(value.raylet_address());
  rpc::FetchReply reply;
  // At least long enough for the request to leave: the raylet copies on after we stop waiting.
  const absl::Duration wait = std::min(kFetchTimeout, std::max(deadline - absl::Now(), kFetchStartWait));
  absl::Status fetched =
      UnaryCall(*object_manager_, &rpc::ObjectManagerService::Stub::Fetch, req, &reply, {.timeout = wait});
  if (absl::IsDeadlineExceeded(fetched)) {
    return absl::DeadlineExceededError(absl::StrCat("object ", id->Hex(), " is still being copied here from ",
                                                    value.raylet_address()));
  }
  if (!fetched.ok()) {
    return absl::Status(fetched.code(), absl::StrCat("cannot copy object ", id->Hex(), " from node at ",
                                                     value.raylet_address(), ": ", fetched.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NodeStoreAccess::Read(const rpc::ObjectValue& value, absl::Time deadline) {
  auto buffer = FetchAndRead(value, deadline);
  if (!buffer.ok()) return buffer.status();
  return std::string(buffer->data, buffer->size);
}

absl::StatusOr<ObjectBuffer> NodeStoreAccess::ReadBuffer(const rpc::ObjectValue& value, absl::Time deadline) {
  return FetchAndRead(value, deadline);
}

absl::StatusOr<rpc::ObjectValue> NodeStoreAccess::Write(const ObjectId& id, std::string_view bytes) {
  return WriteParts(id, {bytes});
}

absl::StatusOr<rpc::ObjectValue> NodeStoreAccess::WriteParts(const ObjectId& id,
                                                             const std::vector<std::string_view>& parts) {
  absl::Status put = store_->PutParts(id, parts);
  if (put.ok()) {
    (void)store_->Release(id);
  } else if (absl::IsResourceExhausted(put)) {
    return ErrorStatus(rpc::OBJECT_STORE_FULL, std::string(put.message()));
  } else if (!absl::IsAlreadyExists(put)) {
    return put;
  }
  rpc::ObjectValue value = StoreValue(id, raylet_address_, node_);
  int64_t size = 0;
  for (std::string_view part : parts) size += static_cast<int64_t>(part.size());
  value.set_size(size);
  return value;
}

}  // namespace shoal
