#include "src/worker/store_access.h"

#include "absl/strings/str_cat.h"
#include "src/common/rpc.h"
#include "src/worker/object_value.h"

namespace shoal {
namespace {
// A fetched copy is secondary and may be evicted before we read it; fetch again this often.
constexpr int kReadAttempts = 3;
constexpr absl::Duration kFetchTimeout = absl::Minutes(10);
}  // namespace

NodeStoreAccess::NodeStoreAccess(ObjectStoreClient& store, std::string raylet_address, const NodeId& node)
    : store_(store),
      raylet_address_(std::move(raylet_address)),
      node_(node),
      object_manager_(rpc::ObjectManagerService::NewStub(MakeChannel(raylet_address_))) {}

absl::StatusOr<std::string> NodeStoreAccess::ReadLocal(const ObjectId& id) {
  auto views = store_.Get({id}, absl::ZeroDuration());
  if (!views.ok()) return views.status();
  auto& view = (*views)[0];
  if (!view.ok()) return view.status();
  std::string bytes(reinterpret_cast<const char*>(view->data), view->data_size);
  (void)store_.Release(id);
  return bytes;
}

absl::StatusOr<std::string> NodeStoreAccess::Read(const rpc::ObjectValue& value) {
  auto id = ObjectId::FromBinary(value.object_id());
  if (!id.ok()) return id.status();
  const bool here = value.node_id() == node_.Hex() || value.raylet_address() == raylet_address_;
  if (here) {
    auto bytes = ReadLocal(*id);
    if (absl::IsNotFound(bytes.status())) {
      return absl::NotFoundError(absl::StrCat("object ", id->Hex(), " is no longer in this node's store"));
    }
    return bytes;
  }
  absl::Status last;
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    rpc::FetchRequest req;
    req.set_object_id(id->Binary());
    req.add_holders(value.raylet_address());
    rpc::FetchReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kFetchTimeout));
    absl::Status fetched = FromGrpcStatus(object_manager_->Fetch(&ctx, req, &reply));
    if (!fetched.ok()) {
      return absl::Status(fetched.code(), absl::StrCat("cannot copy object ", id->Hex(), " from node at ",
                                                       value.raylet_address(), ": ", fetched.message()));
    }
    auto bytes = ReadLocal(*id);
    if (!absl::IsNotFound(bytes.status())) return bytes;
    last = bytes.status();  // evicted between the fetch and the read
  }
  return absl::NotFoundError(absl::StrCat("object ", id->Hex(), " was fetched but could not be read: ", last.message()));
}

absl::StatusOr<rpc::ObjectValue> NodeStoreAccess::Write(const ObjectId& id, std::string_view bytes) {
  absl::Status put = store_.Put(id, bytes.data(), bytes.size());
  if (put.ok()) {
    (void)store_.Release(id);
  } else if (!absl::IsAlreadyExists(put)) {
    return put;
  }
  return StoreValue(id, raylet_address_, node_);
}

}  // namespace shoal
