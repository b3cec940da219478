#include "src/worker/memory_store.h"

#include <algorithm>
#include <atomic>

namespace shoal {

bool MemoryStore::Put(const ObjectId& id, rpc::ObjectValue value) {
  std::vector<AsyncWaiter> due;
  ValuePtr stored = std::make_shared<const rpc::ObjectValue>(std::move(value));
  {
    absl::MutexLock lock(&mu_);
    if (!values_.emplace(id, stored).second) return false;
    if (stored->has_error()) ++errors_put_;
    puts_.fetch_add(1, std::memory_order_release);
    if (auto it = async_waiters_.find(id); it != async_waiters_.end()) {
      due = std::move(it->second);
      async_waiters_.erase(it);
    }
  }
  RunDue(std::move(due), std::move(stored));
  return true;
}

void MemoryStore::RunDue(std::vector<AsyncWaiter> due, ValuePtr value) {
  if (due.empty()) return;
  if (dispatch_) {
    // std::function needs a copyable closure; the callbacks are move-only.
    auto shared = std::make_shared<std::vector<AsyncWaiter>>(std::move(due));
    if (dispatch_([shared, value] {
          for (auto& w : *shared) w.callback(value);
        })) {
      return;
    }
    due = std::move(*shared);
  }
  for (auto& w : due) w.callback(value);
}

ValuePtr MemoryStore::GetIfReady(const ObjectId& id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = values_.find(id);
  return it == values_.end() ? nullptr : it->second;
}

size_t MemoryStore::CountReady(const std::vector<ObjectId>& ids) const {
  size_t n = 0;
  for (const auto& id : ids) n += values_.contains(id) ? 1 : 0;
  return n;
}

std::vector<ValuePtr> MemoryStore::Get(const std::vector<ObjectId>& ids, absl::Time deadline) const {
  absl::ReaderMutexLock lock(&mu_);
  // The condition is evaluated each time the store changes (by the thread that changed it): it
  // resumes from the first id it found missing, so that a get of n ids costs O(n) in all rather
  // than O(n) per arrival. Values are not removed while a get holds their refs; evaluations may
  // overlap under the shared lock, hence the atomic cursor (it only moves forward).
  // It also ends the wait as soon as one of the ids holds an error (Ray's get raises the first
  // error without waiting for the rest): the ids are scanned for errors only when an error value
  // was put since the last scan.
  // absl may evaluate the condition more than once for one change (the waker, then the waiter):
  // what it found stays found, so that every evaluation answers the same.
  std::atomic<size_t> next{0};
  std::atomic<int64_t> errors_seen{-1};
  std::atomic<bool> error_found{false};
  auto all_ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    size_t i = next.load(std::memory_order_relaxed);
    while (i < ids.size() && values_.contains(ids[i])) ++i;
    size_t seen = next.load(std::memory_order_relaxed);
    while (seen < i && !next.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
    }
    if (i == ids.size() || error_found.load(std::memory_order_relaxed)) return true;
    if (errors_seen.exchange(errors_put_, std::memory_order_relaxed) != errors_put_) {
      for (const auto& id : ids) {
        auto it = values_.find(id);
        if (it != values_.end() && it->second->has_error()) {
          error_found.store(true, std::memory_order_relaxed);
          return true;
        }
      }
    }
    return false;
  };
  mu_.AwaitWithDeadline(absl::Condition(&all_ready), deadline);
  std::vector<ValuePtr> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    auto it = values_.find(id);
    out.push_back(it == values_.end() ? nullptr : it->second);
  }
  return out;
}

bool MemoryStore::SpinFor(const std::vector<ObjectId>& ids, absl::Time deadline) const {
  if (ids.size() > kMaxSpinIds || deadline - absl::Now() <= spin_.budget()) return false;
  // The ids are looked up again only when something was put.
  uint64_t seen = puts_.load(std::memory_order_acquire);
  auto done = [&] {
    absl::ReaderMutexLock lock(&mu_);
    size_t there = 0;
    for (const auto& id : ids) {
      auto it = values_.find(id);
      if (it == values_.end()) continue;
      if (it->second->has_error()) return true;  // as Get: an error ends the wait
      ++there;
    }
    return there == ids.size();
  };
  if (done()) return true;
  return spin_.Spin([&] {
    const uint64_t now = puts_.load(std::memory_order_acquire);
    if (now == seen) return false;
    seen = now;
    return done();
  });
}

std::vector<bool> MemoryStore::Wait(const std::vector<ObjectId>& ids, size_t num_ready, absl::Time deadline) const {
  num_ready = std::min(num_ready, ids.size());
  absl::ReaderMutexLock lock(&mu_);
  auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return CountReady(ids) >= num_ready; };
  mu_.AwaitWithDeadline(absl::Condition(&enough), deadline);
  std::vector<bool> out;
  out.reserve(ids.size());
  for (const auto& id : ids) out.push_back(values_.contains(id));
  return out;
}

void MemoryStore::GetAsync(const ObjectId& id, absl::Time deadline, Callback callback) {
  ValuePtr value;
  {
    absl::ReleasableMutexLock lock(&mu_);
    auto it = values_.find(id);
    if (it == values_.end()) {
      async_waiters_[id].push_back({deadline, std::move(callback)});
      lock.Release();
      if (deadline != absl::InfiniteFuture() && timed_wait_hook_) timed_wait_hook_();
      return;
    }
    value = it->second;
  }
  callback(std::move(value));
}

void MemoryStore::Tick(absl::Time now) {
  std::vector<AsyncWaiter> due;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = async_waiters_.begin(); it != async_waiters_.end();) {
      auto& waiters = it->second;
      auto expired = std::stable_partition(waiters.begin(), waiters.end(),
                                           [now](const AsyncWaiter& w) { return w.deadline > now; });
      for (auto w = expired; w != waiters.end(); ++w) due.push_back(std::move(*w));
      waiters.erase(expired, waiters.end());
      if (waiters.empty()) {
        async_waiters_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : due) w.callback(nullptr);
}

bool MemoryStore::Quiet() const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [id, waiters] : async_waiters_) {
    for (const auto& w : waiters) {
      if (w.deadline != absl::InfiniteFuture()) return false;
    }
  }
  return true;
}

void MemoryStore::Erase(const ObjectId& id) {
  std::vector<AsyncWaiter> due;
  {
    absl::MutexLock lock(&mu_);
    values_.erase(id);
    if (auto it = async_waiters_.find(id); it != async_waiters_.end()) {
      due = std::move(it->second);
      async_waiters_.erase(it);
    }
  }
  RunDue(std::move(due), nullptr);
}

void MemoryStore::CancelAll() {
  absl::flat_hash_map<ObjectId, std::vector<AsyncWaiter>> due;
  {
    absl::MutexLock lock(&mu_);
    due.swap(async_waiters_);
  }
  for (auto& [id, waiters] : due) {
    for (auto& w : waiters) w.callback(nullptr);
  }
}

size_t MemoryStore::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return values_.size();
}

size_t MemoryStore::num_async_waiters() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, w] : async_waiters_) n += w.size();
  return n;
}

}  // namespace shoal
