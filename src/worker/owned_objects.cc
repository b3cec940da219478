#include "src/worker/owned_objects.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/common/error_info.h"
#include "src/worker/object_value.h"

namespace shoal {

// While a Get or Wait blocks, a worker's lease lends its CPUs back to the raylet, so that tasks
// waiting on their own children cannot hold every CPU.
class OwnedObjects::BlockedScope {
 public:
  explicit BlockedScope(const std::function<void(bool)>& set_blocked) : set_blocked_(set_blocked) {
    if (set_blocked_) set_blocked_(true);
  }
  ~BlockedScope() {
    if (set_blocked_) set_blocked_(false);
  }
  BlockedScope(const BlockedScope&) = delete;
  BlockedScope& operator=(const BlockedScope&) = delete;

 private:
  const std::function<void(bool)>& set_blocked_;
};

OwnedObjects::OwnedObjects(MemoryStore& memory, ReferenceCounter& refs, ObjectStoreAccess& store,
                           ObjectTransport& transport, const Clock& clock, Options options)
    : memory_(memory), refs_(refs), store_(store), transport_(transport), clock_(clock), options_(std::move(options)) {}

ObjectId OwnedObjects::AddOwned(const ObjectId& id, rpc::ObjectValue value) {
  refs_.AddOwned(id);
  memory_.Put(id, std::move(value));
  return id;
}

absl::StatusOr<ObjectId> OwnedObjects::Put(std::string bytes) {
  const ObjectId id = NewPutId();
  if (bytes.size() <= kMaxInlineObjectSize) return AddOwned(id, InlineValue(id, std::move(bytes)));
  auto stored = store_.Write(id, bytes);
  if (!stored.ok()) return stored.status();
  return AddOwned(id, *std::move(stored));
}

absl::StatusOr<ObjectId> OwnedObjects::PutParts(const std::vector<std::string_view>& parts) {
  size_t total = 0;
  for (auto part : parts) total += part.size();
  if (total <= kMaxInlineObjectSize) {
    std::string all;
    all.reserve(total);
    for (auto part : parts) all.append(part);
    return Put(std::move(all));
  }
  const ObjectId id = NewPutId();
  auto stored = store_.WriteParts(id, parts);
  if (!stored.ok()) return stored.status();
  return AddOwned(id, *std::move(stored));
}

void OwnedObjects::StoreResult(const ObjectId& id, rpc::ObjectValue value, bool owned) {
  const bool in_store = value.in_store();
  const std::string holder = value.raylet_address();
  memory_.Put(id, std::move(value));
  // Checked after the put: a concurrent Free either saw the value or we see the entry gone.
  if (!refs_.Contains(id)) {
    memory_.Erase(id);
    if (in_store && owned) transport_.FreeObjects(holder, {id});
  }
}

void OwnedObjects::RemoveLocalReference(const ObjectId& id) {
  if (auto gone = refs_.RemoveLocal(id)) {
    // A value in the node's store (or not here yet) asks the loop to free it soon: an idle loop
    // ticks only every 50 ms, and a program that drops large objects as fast as it makes them
    // (put, del, put) would otherwise fill the store before their space came back. Later frees
    // join that batch. So does an object a language layer watches (a GPU tensor another worker
    // holds for it). A value held here (a small return) waits for the loop's next tick: posting
    // for it woke the loop's thread once per sync call (bench/README.md, 2026-12-07).
    // Asking is spaced by kUrgentFreeSpacing: a program dropping thousands of refs at once (a
    // value holding 10k refs, read again and again) woke the loop's thread ~20k times a second,
    // each batch freed as the next drop asked again. A free that does not ask waits for the
    // loop's next tick, which comes at its short period (5 ms): the loop ran for the ask before.
    ValuePtr value = memory_.GetIfReady(gone->id);
    bool urgent = value == nullptr || value->in_store();
    bool post = false;
    {
      absl::MutexLock lock(&mu_);
      urgent = urgent || (any_watched_.load(std::memory_order_relaxed) && watched_.contains(gone->id));
      if (urgent && !urgent_free_posted_) {
        const absl::Time now = clock_.Now();
        if (now >= next_urgent_post_) {
          post = true;
          urgent_free_posted_ = true;
          next_urgent_post_ = now + kUrgentFreeSpacing;
        }
      }
      pending_free_.push_back(*gone);
    }
    if (post && options_.post) options_.post([this] { FreePending(); });
  }
}

void OwnedObjects::FreePending() {
  std::vector<ReferenceCounter::OutOfScope> gone;
  {
    absl::MutexLock lock(&mu_);
    gone.swap(pending_free_);
    urgent_free_posted_ = false;
  }
  if (!gone.empty()) Free(gone);
}

bool OwnedObjects::Quiet() const {
  absl::MutexLock lock(&mu_);
  return pending_free_.empty();
}

void OwnedObjects::Free(const std::vector<ReferenceCounter::OutOfScope>& gone) {
  std::vector<ObjectId> ids;
  ids.reserve(gone.size());
  for (const auto& g : gone) {
    ValuePtr value = memory_.GetIfReady(g.id);
    memory_.Erase(g.id);
    if (g.owned && value != nullptr && value->in_store()) transport_.FreeObjects(value->raylet_address(), {g.id});
    ids.push_back(g.id);
  }
  if (options_.recovery != nullptr) options_.recovery->Forget(ids);
  if (!any_watched_.load(std::memory_order_relaxed)) return;
  std::vector<ObjectId> freed;
  std::function<void(std::vector<ObjectId>)> handler;
  {
    absl::MutexLock lock(&mu_);
    for (const ObjectId& id : ids) {
      if (watched_.erase(id) > 0) freed.push_back(id);
    }
    handler = freed_handler_;
  }
  if (!freed.empty() && handler) handler(std::move(freed));
}

void OwnedObjects::WatchFree(const ObjectId& id) {
  absl::MutexLock lock(&mu_);
  watched_.insert(id);
  any_watched_.store(true, std::memory_order_relaxed);
}

void OwnedObjects::SetFreedHandler(std::function<void(std::vector<ObjectId>)> handler) {
  absl::MutexLock lock(&mu_);
  freed_handler_ = std::move(handler);
}

void OwnedObjects::FetchIfBorrowed(const ObjectId& id) {
  auto owner = refs_.OwnerAddress(id);
  if (!owner || owner->empty() || memory_.GetIfReady(id) != nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    if (!fetching_.insert(id).second) return;
  }
  transport_.GetObject(*owner, id, [this, id, owner = *owner](absl::Status s, rpc::GetObjectReply reply) {
    rpc::ObjectValue value;
    if (s.ok() && reply.ready()) {
      value = std::move(*reply.mutable_value());
      value.set_object_id(id.Binary());
    } else if (absl::IsNotFound(s)) {
      value = ErrorValue(id, rpc::OBJECT_LOST, absl::StrCat("object ", id.Hex(), " was freed by its owner at ", owner));
    } else if (!absl::IsCancelled(s)) {
      value = ErrorValue(id, rpc::OWNER_DIED,
                         absl::StrCat("the owner of object ", id.Hex(), " at ", owner, " is unreachable: ",
                                      s.ok() ? "it answered without the value" : s.message()));
    }
    options_.post([this, id, value = std::move(value), cancelled = absl::IsCancelled(s)]() mutable {
      {
        absl::MutexLock lock(&mu_);
        fetching_.erase(id);
      }
      if (!cancelled) StoreResult(id, std::move(value), /*owned=*/false);
    });
  });
}

absl::Status OwnedObjects::CheckKnown(const std::vector<ObjectId>& ids) {
  for (const auto& id : ids) {
    if (!refs_.Contains(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("object ", id.Hex(), " is neither owned nor borrowed by this worker (freed, or never known)"));
    }
    FetchIfBorrowed(id);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ValuePtr>> OwnedObjects::WaitForValues(const std::vector<ObjectId>& ids,
                                                                   absl::Duration timeout,
                                                                   const std::function<bool()>& interrupted) {
  if (auto s = CheckKnown(ids); !s.ok()) return s;
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
  std::vector<ValuePtr> values = memory_.Get(ids, absl::InfinitePast());
  auto waiting = [&values] {
    if (std::count(values.begin(), values.end(), nullptr) == 0) return false;
    // An error ends the wait early (MemoryStore::Get); it is answered below.
    return std::none_of(values.begin(), values.end(), [](const ValuePtr& v) { return v != nullptr && v->has_error(); });
  };
  // Spinning first, before the raylet is told this worker blocks: a sync call's return usually
  // comes within the spin (src/common/spin.h), and then the worker never blocked.
  if (waiting() && memory_.SpinFor(ids, deadline)) values = memory_.Get(ids, absl::InfinitePast());
  if (waiting()) {
    BlockedScope blocked(options_.set_blocked);
    if (!interrupted) {
      values = memory_.Get(ids, deadline);
    } else {
      while (true) {
        values = memory_.Get(ids, std::min(deadline, clock_.Now() + kInterruptCheckPeriod));
        if (!waiting() || clock_.Now() >= deadline) break;
        if (interrupted()) return absl::CancelledError("the get was interrupted");
      }
    }
  }
  const size_t missing = std::count(values.begin(), values.end(), nullptr);
  if (missing > 0) {
    // The wait ended early because one of them failed: that error, in the order of `ids`.
    for (const ValuePtr& value : values) {
      if (value != nullptr && value->has_error()) return ErrorValueToStatus(*value);
    }
    return ErrorStatus(rpc::GET_TIMEOUT, absl::StrCat(missing, " of ", ids.size(), " objects were not ready within ",
                                                      absl::FormatDuration(timeout)));
  }
  return values;
}

namespace {

// A read of a store copy that failed: GET_TIMEOUT when it ran out of time (the copy may be
// fine), else OBJECT_LOST (no copy could be read).
absl::Status ReadFailure(const absl::Status& s) {
  return ErrorStatus(absl::IsDeadlineExceeded(s) ? rpc::GET_TIMEOUT : rpc::OBJECT_LOST, std::string(s.message()));
}

}  // namespace

absl::StatusOr<std::string> OwnedObjects::ToBytes(const ValuePtr& ptr, absl::Time deadline) {
  const rpc::ObjectValue& value = *ptr;
  if (value.has_error()) return ErrorValueToStatus(value);
  if (!value.in_store()) return value.inline_data();
  auto bytes = store_.Read(value, deadline);
  if (bytes.ok()) return bytes;
  return ReadFailure(bytes.status());
}

absl::StatusOr<ObjectBuffer> OwnedObjects::ToBuffer(const ValuePtr& value, absl::Time deadline) {
  if (value->has_error()) return ErrorValueToStatus(*value);
  if (!value->in_store()) {
    // Points into the value the memory store keeps; `value` keeps it alive.
    return ObjectBuffer{value->inline_data().data(), value->inline_data().size(), value};
  }
  auto buffer = store_.ReadBuffer(*value, deadline);
  if (buffer.ok()) return buffer;
  return ReadFailure(buffer.status());
}

template <typename T, typename Read>
absl::StatusOr<T> OwnedObjects::ReadRecovering(const ObjectId& id, ValuePtr value, absl::Time deadline, Read read) {
  while (true) {
    absl::StatusOr<T> got = read(value, deadline);
    const bool lost_copy = !got.ok() && value->in_store() && !value->has_error() &&
                           ErrorTypeOf(got.status()) == rpc::OBJECT_LOST;
    if (!lost_copy || options_.recovery == nullptr) return got;
    absl::Status started = options_.recovery->Recover(id, got.status().message());
    if (!started.ok()) return started;
    BlockedScope blocked(options_.set_blocked);
    ValuePtr again = memory_.Get({id}, deadline)[0];
    if (again == nullptr) {
      return ErrorStatus(rpc::GET_TIMEOUT, absl::StrCat("object ", id.Hex(), " was being made again (its only copy ",
                                                        "was lost) when the get timed out"));
    }
    value = std::move(again);
  }
}

absl::StatusOr<std::vector<absl::StatusOr<std::string>>> OwnedObjects::Get(const std::vector<ObjectId>& ids,
                                                                           absl::Duration timeout) {
  auto values = WaitForValues(ids, timeout);
  if (!values.ok()) return values.status();
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
  std::vector<absl::StatusOr<std::string>> out;
  out.reserve(values->size());
  for (size_t i = 0; i < ids.size(); ++i) {
    out.push_back(ReadRecovering<std::string>(ids[i], (*values)[i], deadline,
                                              [this](const ValuePtr& v, absl::Time d) { return ToBytes(v, d); }));
  }
  return out;
}

absl::StatusOr<std::vector<absl::StatusOr<ObjectBuffer>>> OwnedObjects::GetBuffers(
    const std::vector<ObjectId>& ids, absl::Duration timeout, std::function<bool()> interrupted) {
  auto values = WaitForValues(ids, timeout, interrupted);
  if (!values.ok()) return values.status();
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
  std::vector<absl::StatusOr<ObjectBuffer>> out;
  out.reserve(values->size());
  for (size_t i = 0; i < ids.size(); ++i) {
    out.push_back(ReadRecovering<ObjectBuffer>(ids[i], (*values)[i], deadline,
                                               [this](const ValuePtr& v, absl::Time d) { return ToBuffer(v, d); }));
  }
  return out;
}

absl::StatusOr<std::vector<bool>> OwnedObjects::Wait(const std::vector<ObjectId>& ids, int num_ready,
                                                     absl::Duration timeout, bool fetch_local) {
  if (num_ready < 0 || static_cast<size_t>(num_ready) > ids.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_ready must be between 0 and the number of ids (", ids.size(), "), got ", num_ready));
  }
  if (auto s = CheckKnown(ids); !s.ok()) return s;
  const absl::Time deadline = timeout < absl::ZeroDuration() ? absl::InfiniteFuture() : clock_.Now() + timeout;
  std::vector<bool> ready = memory_.Wait(ids, static_cast<size_t>(num_ready), absl::InfinitePast());
  if (std::count(ready.begin(), ready.end(), true) < num_ready) {
    BlockedScope blocked(options_.set_blocked);
    ready = memory_.Wait(ids, static_cast<size_t>(num_ready), deadline);
  }
  if (fetch_local) FetchReady(ids, ready, deadline);
  return ready;
}

void OwnedObjects::FetchReady(const std::vector<ObjectId>& ids, std::vector<bool>& ready, absl::Time deadline) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!ready[i]) continue;
    ValuePtr value = memory_.GetIfReady(ids[i]);
    if (value == nullptr || !value->in_store() || value->has_error()) continue;
    absl::Status s = store_.Fetch(*value, deadline);
    while (absl::IsDeadlineExceeded(s) && clock_.Now() < deadline) s = store_.Fetch(*value, deadline);
    // Not here in time: not ready yet. Any other failure leaves it ready: a get reports it.
    if (absl::IsDeadlineExceeded(s)) ready[i] = false;
  }
}

}  // namespace shoal
