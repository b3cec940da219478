// An ObjectStoreAccess over a map in memory. For tests.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "src/worker/object_value.h"
#include "src/worker/store_access.h"

namespace shoal {

class FakeStoreAccess : public ObjectStoreAccess {
 public:
  explicit FakeStoreAccess(std::string raylet_address = "10.0.0.1:7000", NodeId node = NodeId::FromRandom())
      : raylet_address_(std::move(raylet_address)), node_(node) {}

  absl::StatusOr<std::string> Read(const rpc::ObjectValue& value, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (slow_) return absl::DeadlineExceededError("still copying (fake)");
    auto it = objects_.find(value.object_id());
    if (it == objects_.end()) return absl::NotFoundError("no such object in the fake store");
    return it->second;
  }
  absl::StatusOr<rpc::ObjectValue> Write(const ObjectId& id, std::string_view bytes) override {
    absl::MutexLock lock(&mu_);
    if (full_) return ErrorStatus(rpc::OBJECT_STORE_FULL, "ObjectStoreFull: fake");
    objects_[id.Binary()] = std::string(bytes);
    return StoreValue(id, raylet_address_, node_);
  }

  // Reads answer DeadlineExceeded, as a copy from another node that outlasts the get's timeout.
  void set_slow(bool slow) {
    absl::MutexLock lock(&mu_);
    slow_ = slow;
  }
  void set_full(bool full) {
    absl::MutexLock lock(&mu_);
    full_ = full;
  }
  // Puts bytes straight in, as another process would have.
  void Insert(const ObjectId& id, std::string bytes) {
    absl::MutexLock lock(&mu_);
    objects_[id.Binary()] = std::move(bytes);
  }
  // Drops the copy, as a node that died would.
  void Erase(const ObjectId& id) {
    absl::MutexLock lock(&mu_);
    objects_.erase(id.Binary());
  }
  bool Contains(const ObjectId& id) const {
    absl::MutexLock lock(&mu_);
    return objects_.contains(id.Binary());
  }

 private:
  const std::string raylet_address_;
  const NodeId node_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> objects_ ABSL_GUARDED_BY(mu_);
  bool full_ ABSL_GUARDED_BY(mu_) = false;
  bool slow_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace shoal
