// An ObjectTransport that records calls and lets the test answer them. For tests.
#pragma once

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "src/worker/owned_objects.h"

namespace shoal {

class FakeObjectTransport : public ObjectTransport {
 public:
  struct Fetch {
    std::string owner;
    ObjectId id;
    GetObjectCallback done;
  };
  struct Freed {
    std::string raylet;
    std::vector<ObjectId> ids;
  };

  void GetObject(const std::string& owner_address, const ObjectId& id, GetObjectCallback done) override {
    absl::MutexLock lock(&mu_);
    fetches_.push_back({owner_address, id, std::move(done)});
  }
  void FreeObjects(const std::string& raylet_address, const std::vector<ObjectId>& ids) override {
    absl::MutexLock lock(&mu_);
    freed_.push_back({raylet_address, ids});
  }

  // The oldest GetObject not answered yet. REQUIRES: num_fetches() > 0.
  Fetch TakeFetch() {
    absl::MutexLock lock(&mu_);
    Fetch f = std::move(fetches_.front());
    fetches_.pop_front();
    return f;
  }
  size_t num_fetches() const {
    absl::MutexLock lock(&mu_);
    return fetches_.size();
  }
  std::vector<Freed> freed() const {
    absl::MutexLock lock(&mu_);
    return freed_;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<Fetch> fetches_ ABSL_GUARDED_BY(mu_);
  std::vector<Freed> freed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal
