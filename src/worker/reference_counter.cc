#include "src/worker/reference_counter.h"

namespace shoal {

void ReferenceCounter::AddOwned(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  entries_.try_emplace(id);
}

void ReferenceCounter::AddBorrowed(const ObjectId& id, const std::string& owner_address) {
  absl::MutexLock lock(&mu_);
  entries_.try_emplace(id, Entry{.owner_address = owner_address});
}

bool ReferenceCounter::Contains(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  return entries_.contains(id);
}

std::optional<std::string> ReferenceCounter::OwnerAddress(const ObjectId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.owner_address;
}

void ReferenceCounter::AddLocal(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  ++it->second.local;
  it->second.referenced = true;
}

std::optional<ReferenceCounter::OutOfScope> ReferenceCounter::RemoveLocal(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.local == 0) return std::nullopt;
  --it->second.local;
  return MaybeErase(it);
}

void ReferenceCounter::AddSubmitted(const std::vector<ObjectId>& ids) {
  absl::MutexLock lock(&mu_);
  for (const auto& id : ids) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    ++it->second.submitted;
    it->second.referenced = true;
  }
}

std::vector<ReferenceCounter::OutOfScope> ReferenceCounter::RemoveSubmitted(const std::vector<ObjectId>& ids) {
  std::vector<OutOfScope> out_of_scope;
  absl::MutexLock lock(&mu_);
  for (const auto& id : ids) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.submitted == 0) continue;
    --it->second.submitted;
    if (auto gone = MaybeErase(it)) out_of_scope.push_back(*gone);
  }
  return out_of_scope;
}

std::optional<ReferenceCounter::OutOfScope> ReferenceCounter::MaybeErase(
    absl::flat_hash_map<ObjectId, Entry>::iterator it) {
  const Entry& e = it->second;
  if (!e.referenced || e.local > 0 || e.submitted > 0) return std::nullopt;
  OutOfScope gone{.id = it->first, .owned = e.owner_address.empty()};
  entries_.erase(it);
  return gone;
}

size_t ReferenceCounter::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

std::vector<ReferenceCounter::Reference> ReferenceCounter::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<Reference> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) out.push_back({id, e.owner_address, e.local, e.submitted});
  return out;
}

}  // namespace shoal
