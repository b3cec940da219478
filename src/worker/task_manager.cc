#include "src/worker/task_manager.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/common/error_info.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"

namespace shoal {

absl::StatusOr<std::vector<ObjectId>> TaskManager::Prepare(const rpc::TaskSpec& spec, std::vector<TaskArg>& args,
                                                           const std::vector<ObjectId>& nested_refs,
                                                           bool pin_forever) {
  if (spec.streaming() && streams_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(DescribeTask(spec), ": this worker takes no streaming generators"));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].is_ref && !refs_.Contains(args[i].ref)) {
      return absl::InvalidArgumentError(absl::StrCat("argument ", i, " of '", spec.function_name(),
                                                     "' refers to object ", args[i].ref.Hex(),
                                                     ", which this worker neither owns nor borrows"));
    }
  }
  for (const ObjectId& id : nested_refs) {
    if (!refs_.Contains(id)) {
      return absl::InvalidArgumentError(absl::StrCat("an argument of '", spec.function_name(), "' contains object ",
                                                     id.Hex(), ", which this worker neither owns nor borrows"));
    }
  }
  // Large values passed by value travel through the store, like Put objects.
  std::vector<ObjectId> puts;
  for (auto& arg : args) {
    if (arg.is_ref || arg.value.size() <= kMaxInlineObjectSize) continue;
    auto id = objects_.Put(std::move(arg.value));
    if (!id.ok()) {
      refs_.AddSubmitted(puts);
      objects_.Free(refs_.RemoveSubmitted(puts));
      return id.status();
    }
    puts.push_back(*id);
    arg = TaskArg::Ref(*id);
  }
  std::vector<ObjectId> arg_refs;
  for (const auto& arg : args) {
    if (arg.is_ref) arg_refs.push_back(arg.ref);
  }
  arg_refs.insert(arg_refs.end(), nested_refs.begin(), nested_refs.end());
  std::vector<ObjectId> return_ids;
  for (uint32_t i = 1; i <= spec.num_returns(); ++i) {
    return_ids.push_back(ReturnObjectId(spec, i));
    refs_.AddOwned(return_ids.back());
  }
  if (spec.streaming()) streams_->Add(spec);
  refs_.AddSubmitted(arg_refs);
  if (!arg_refs.empty() && !pin_forever) {
    absl::MutexLock lock(&mu_);
    arg_refs_[SpecTaskId(spec)] = std::move(arg_refs);
  }
  return return_ids;
}

void TaskManager::Resolve(rpc::TaskSpec spec, std::vector<TaskArg> args, Submit submit,
                          std::function<void()> on_failed) {
  events_.Add(spec, rpc::TaskEvent::PENDING);
  for (const auto& arg : args) {
    if (arg.is_ref) objects_.FetchIfBorrowed(arg.ref);
  }
  resolver_.Resolve(std::move(spec), std::move(args),
                    [this, submit = std::move(submit), on_failed = std::move(on_failed)](
                        rpc::TaskSpec resolved, std::optional<rpc::ErrorInfo> failed) {
                      bool cancelled = false;
                      {
                        absl::MutexLock lock(&mu_);
                        cancelled = cancelled_before_submit_.erase(SpecTaskId(resolved)) > 0;
                      }
                      if (cancelled) {
                        failed = MakeError(rpc::TASK_CANCELLED,
                                           absl::StrCat(DescribeTask(resolved), " was cancelled before it ran"));
                      }
                      if (!failed) {
                        submit(std::move(resolved));
                        return;
                      }
                      // A failed argument fails the task with the same error, without running it.
                      auto returns = ErrorReturns(resolved, *failed);
                      Finish(resolved, std::move(returns));
                      if (on_failed) on_failed();
                    });
}

void TaskManager::Finish(const rpc::TaskSpec& spec, std::vector<rpc::ObjectValue> returns) {
  // The worker could not read an argument whose only copy was lost: this owner makes it again
  // when it can, and runs the task again with it (a normal task; actors keep the error).
  if (recovery_ != nullptr && !spec.streaming() && spec.actor_id().empty() && !returns.empty() &&
      returns[0].has_error() && returns[0].error().type() == rpc::OBJECT_LOST &&
      returns[0].error().lost_argument() > 0) {
    const int index = returns[0].error().lost_argument() - 1;
    absl::Status again = recovery_->RerunWithLostArgument(spec, index, returns[0].error().message());
    if (again.ok()) return;  // it finishes again, with its argument made anew
    for (auto& value : returns) {
      if (value.has_error()) value.mutable_error()->set_message(absl::StrCat(value.error().message(), "; ", again.message()));
    }
  }
  std::string error_type;
  for (const auto& value : returns) {
    if (value.has_error()) {
      error_type = ErrorTypeName(value.error());
      break;
    }
  }
  events_.Add(spec, error_type.empty() ? rpc::TaskEvent::FINISHED : rpc::TaskEvent::FAILED, error_type);
  bool any_in_store = false;
  std::vector<ObjectId> in_scope;
  if (spec.streaming()) {
    // A generator's lineage covers its stored items still referenced (not its completion).
    for (const ObjectId& item : streams_->StoredItems(SpecTaskId(spec))) {
      if (refs_.Contains(item)) in_scope.push_back(item);
    }
    any_in_store = !in_scope.empty();
    streams_->Finish(spec, returns);
  }
  for (auto& value : returns) {
    auto id = ObjectId::FromBinary(value.object_id());
    if (!id.ok()) continue;
    any_in_store = any_in_store || value.in_store();
    objects_.StoreResult(*id, std::move(value), /*owned=*/true);
    if (recovery_ != nullptr && !spec.streaming() && refs_.Contains(*id)) in_scope.push_back(*id);
  }
  if (recovery_ != nullptr) recovery_->AddLineage(spec, any_in_store, in_scope);
  std::vector<ObjectId> arg_refs;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = arg_refs_.find(SpecTaskId(spec)); it != arg_refs_.end()) {
      arg_refs = std::move(it->second);
      arg_refs_.erase(it);
    }
  }
  if (!arg_refs.empty()) objects_.Free(refs_.RemoveSubmitted(arg_refs));
}

void TaskManager::CancelBeforeSubmit(const TaskId& task) {
  // Still waiting for arguments: it fails now (they may never come). Else it is between its
  // resolution and its submission: the resolution's end sees the mark.
  if (resolver_.Cancel(task, MakeError(rpc::TASK_CANCELLED, absl::StrCat("task ", task.Hex(),
                                                                        " was cancelled before it ran")))) {
    return;
  }
  absl::MutexLock lock(&mu_);
  cancelled_before_submit_.insert(task);
}

}  // namespace shoal
