#include "src/worker/generator_streams.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "src/common/error_info.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"

namespace shoal {

void GeneratorStreams::Add(const rpc::TaskSpec& spec) {
  absl::MutexLock lock(&mu_);
  Stream& s = streams_[SpecTaskId(spec)];
  s.backpressure = spec.generator_backpressure_num_objects();
}

std::vector<GeneratorStreams::Done> GeneratorStreams::Unpark(Stream& s, bool all) {
  std::vector<Done> out;
  if (all || s.backpressure <= 0 || s.received - s.taken < s.backpressure) out.swap(s.parked);
  return out;
}

void GeneratorStreams::ReportItem(const rpc::ReportGeneratorItemRequest& request, Done done) {
  auto task = TaskId::FromBinary(request.task_id());
  if (!task.ok()) {
    done(task.status());
    return;
  }
  const ObjectId id = ItemId(*task, request.index());
  bool keep = false;
  bool held = false;
  bool rebuilt = false;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(*task);
    if (auto r = rebuilds_.find(*task); r != rebuilds_.end()) {
      // A run re-making lost items: those are kept, the others were never lost (dropped).
      rebuilt = request.attempt() >= r->second.attempt && r->second.pending.erase(request.index()) > 0;
    } else if (it == streams_.end()) {
      refused = absl::NotFoundError(absl::StrCat("no streaming generator ", task->Hex(),
                                                 " is known to this owner (it finished or was never submitted here)"));
    } else if (Stream& s = it->second; request.index() < 0 || request.index() > s.received) {
      refused = absl::InvalidArgumentError(absl::StrCat("generator item ", request.index(), " of ", task->Hex(),
                                                        " reported before item ", s.received));
    } else {
      const bool stale = request.attempt() < s.attempt || s.end >= 0;
      if (!stale) s.attempt = request.attempt();
      if (!stale && request.index() == s.received) {
        ++s.received;
        keep = !s.released;
        // Known before Next can hand the id out, so that the caller's reference counts.
        if (keep) refs_.AddOwned(id);
        if (keep && request.value().in_store()) s.stored.push_back(id);
        if (keep && s.backpressure > 0 && s.received - s.taken >= s.backpressure) {
          s.parked.push_back(std::move(done));  // answered when the caller takes an item
          held = true;
        }
      }
    }
  }
  if (!refused.ok()) {
    done(refused);
    return;
  }
  if (keep || rebuilt) {
    rpc::ObjectValue value = request.value();
    value.set_object_id(id.Binary());
    objects_.StoreResult(id, std::move(value), /*owned=*/true);
  } else if (request.value().in_store() && !refs_.Contains(id)) {
    // Nobody will take this copy (a released stream, or a repeat of an item already freed):
    // storing it for an unreferenced id frees it. A repeat of an item still held is left alone:
    // on the same node it is the same copy.
    objects_.StoreResult(id, request.value(), /*owned=*/true);
  }
  if (!held) done(absl::OkStatus());
}

void GeneratorStreams::Finish(const rpc::TaskSpec& spec, const std::vector<rpc::ObjectValue>& returns) {
  const TaskId task = SpecTaskId(spec);
  std::optional<rpc::ObjectValue> error_item;
  std::vector<Done> due;
  std::vector<rpc::ObjectValue> not_rebuilt;
  {
    absl::MutexLock lock(&mu_);
    if (auto r = rebuilds_.find(task); r != rebuilds_.end() && spec.attempt() >= r->second.attempt) {
      for (int64_t index : r->second.pending) {
        not_rebuilt.push_back(ErrorValue(
            ItemId(task, index),
            MakeError(rpc::OBJECT_LOST,
                      absl::StrCat("item ", index, " of generator ", DescribeTask(spec), " was lost, and running it ",
                                   "again did not yield it",
                                   returns.empty() || !returns[0].has_error()
                                       ? std::string()
                                       : absl::StrCat(": ", returns[0].error().message())))));
      }
      rebuilds_.erase(r);
    }
  }
  for (rpc::ObjectValue& v : not_rebuilt) {
    auto id = ObjectId::FromBinary(v.object_id());
    objects_.StoreResult(*id, std::move(v), /*owned=*/true);
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(task);
    if (it == streams_.end() || it->second.end >= 0) return;
    Stream& s = it->second;
    s.end = s.received;
    if (!returns.empty() && returns[0].has_error() && !s.released) {
      // The failure is the item after the last one received.
      error_item = ErrorValue(ItemId(task, s.end), returns[0].error());
      refs_.AddOwned(ItemId(task, s.end));
      ++s.end;
      ++s.received;
    }
    due = Unpark(s, /*all=*/true);
    if (s.released) streams_.erase(it);
  }
  if (error_item) {
    auto id = ObjectId::FromBinary(error_item->object_id());
    objects_.StoreResult(*id, std::move(*error_item), /*owned=*/true);
  }
  for (auto& d : due) d(absl::OkStatus());
}

absl::StatusOr<std::optional<ObjectId>> GeneratorStreams::Next(const TaskId& task, absl::Time deadline) {
  std::vector<Done> due;
  std::optional<ObjectId> next;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this, &task]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      auto it = streams_.find(task);
      if (it == streams_.end() || it->second.released) return true;
      const Stream& s = it->second;
      return s.taken < s.received || (s.end >= 0 && s.taken >= s.end);
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    auto it = streams_.find(task);
    if (it == streams_.end() || it->second.released) {
      return absl::NotFoundError(absl::StrCat("streaming generator ", task.Hex(), " is not known here (or was released)"));
    }
    Stream& s = it->second;
    if (s.taken < s.received) {
      next = ItemId(task, s.taken++);
      due = Unpark(s, /*all=*/false);
    } else if (s.end < 0) {
      return ErrorStatus(rpc::GET_TIMEOUT,
                         absl::StrCat("the next item of streaming generator ", task.Hex(), " was not ready in time"));
    }
  }
  for (auto& d : due) d(absl::OkStatus());
  return next;
}

bool GeneratorStreams::IsFinished(const TaskId& task) const {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(task);
  return it == streams_.end() || (it->second.end >= 0 && it->second.taken >= it->second.end);
}

bool GeneratorStreams::NextReady(const TaskId& task) const {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(task);
  if (it == streams_.end() || it->second.released) return true;
  const Stream& s = it->second;
  return s.taken < s.received || s.end >= 0;
}

void GeneratorStreams::Release(const TaskId& task) {
  std::vector<ObjectId> untaken;
  std::vector<Done> due;
  {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(task);
    if (it == streams_.end() || it->second.released) return;
    Stream& s = it->second;
    s.released = true;
    for (int64_t i = s.taken; i < s.received; ++i) untaken.push_back(ItemId(task, i));
    due = Unpark(s, /*all=*/true);
    if (s.end >= 0) streams_.erase(it);
  }
  // Items never handed out have no reference: one taken and dropped here frees them.
  for (const ObjectId& id : untaken) {
    refs_.AddLocal(id);
    objects_.RemoveLocalReference(id);
  }
  for (auto& d : due) d(absl::OkStatus());
}

void GeneratorStreams::Reconstruct(const TaskId& task, int32_t attempt, const std::vector<ObjectId>& items) {
  absl::MutexLock lock(&mu_);
  Rebuild& r = rebuilds_[task];
  r.attempt = attempt;
  for (const ObjectId& id : items) r.pending.insert(static_cast<int64_t>(id.Index()) - 2);
}

std::vector<ObjectId> GeneratorStreams::StoredItems(const TaskId& task) const {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(task);
  return it == streams_.end() ? std::vector<ObjectId>{} : it->second.stored;
}

size_t GeneratorStreams::size() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

}  // namespace shoal
