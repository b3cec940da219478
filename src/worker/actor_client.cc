#include "src/worker/actor_client.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"
#include "absl/synchronization/notification.h"
#include "src/common/error_info.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

ActorDescription Describe(const rpc::ActorInfo& info) {
  ActorDescription d;
  auto id = ActorId::FromBinary(info.actor_id());
  if (id.ok()) d.id = *id;
  d.class_name = info.class_name();
  d.state = rpc::ActorInfo::State_Name(info.state());
  d.death_cause = info.death_cause();
  d.handle_data = info.handle_data();
  d.worker_address = info.worker_address();
  d.node_id = info.node_id();
  d.num_restarts = info.num_restarts();
  return d;
}

}  // namespace

absl::StatusOr<ActorDescription> ActorClient::Create(const std::string& function_name, std::vector<TaskArg> args,
                                                     const TaskOptions& options, const ActorOptions& actor_options) {
  if (actor_options.max_concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_concurrency must be at least 1, got ", actor_options.max_concurrency));
  }
  if (options.streaming) {
    return absl::InvalidArgumentError("an actor's constructor cannot be a streaming generator");
  }
  if (actor_options.max_restarts < -1 || actor_options.max_task_retries < -1) {
    return absl::InvalidArgumentError("max_restarts and max_task_retries must be -1 (no limit) or more");
  }
  auto spec = BuildTaskSpec(owner_.job, function_name, options, owner_.address, options.worker_command);
  if (!spec.ok()) return spec.status();
  const ActorId actor = ActorId::Of(owner_.job);
  spec->set_task_id(TaskId::ForActorTask(actor).Binary());
  spec->set_actor_id(actor.Binary());
  spec->set_actor_creation(true);
  spec->set_max_concurrency(actor_options.max_concurrency);
  spec->set_is_asyncio(actor_options.is_asyncio);
  for (const auto& [group, limit] : actor_options.concurrency_groups) {
    if (group.empty() || limit < 1) {
      return absl::InvalidArgumentError(absl::StrCat("concurrency group '", group,
                                                     "': a group needs a name and a limit of at least 1, got ", limit));
    }
    (*spec->mutable_concurrency_groups())[group] = limit;
  }
  spec->set_max_retries(0);
  auto return_ids = tasks_.Prepare(*spec, args, options.nested_refs, /*pin_forever=*/true);
  if (!return_ids.ok()) return return_ids.status();
  // As in Ray, creation does not wait for the constructor's ref arguments: the actor is
  // registered now (its name taken, its handles usable) and created once they are ready.
  const bool waits = std::any_of(args.begin(), args.end(), [](const TaskArg& a) { return a.is_ref; });
  if (!waits) {
    if (auto s = ResolveArguments(*spec, std::move(args), actor_options.class_name); !s.ok()) return s;
  }

  rpc::RegisterActorRequest req;
  req.set_dependencies_unready(waits);
  *req.mutable_creation_spec() = *spec;
  rpc::ActorInfo* info = req.mutable_info();
  info->set_actor_id(actor.Binary());
  info->set_job_id(owner_.job.Hex());
  info->set_class_name(actor_options.class_name);
  info->set_owner_address(actor_options.detached ? std::string() : owner_.address);
  info->set_name(actor_options.name);
  info->set_ray_namespace(actor_options.ray_namespace);
  info->set_detached(actor_options.detached);
  info->set_max_restarts(actor_options.max_restarts);
  info->set_handle_data(actor_options.handle_data);
  *info->mutable_resources() = spec->resources();
  req.set_get_if_exists(actor_options.get_if_exists);
  absl::StatusOr<rpc::RegisterActorReply> reply = gcs_.RegisterActor(req);
  if (!reply.ok()) return reply.status();
  auto id = ActorId::FromBinary(reply->actor_id());
  if (!id.ok()) return absl::InternalError("the GCS answered a bad actor id");
  submitter_.AddActor(*id, actor_options.max_task_retries);
  if (waits && !reply->existed()) CreateWhenResolved(*std::move(spec), std::move(args), actor_options.class_name);
  ActorDescription d;
  d.id = *id;
  d.class_name = actor_options.class_name;
  d.state = "PENDING";
  d.existed = reply->existed();
  if (reply->existed()) {
    auto existing = GetInfo(*id);
    if (existing.ok()) {
      d = *existing;
      d.existed = true;
    }
  }
  return d;
}

void ActorClient::CreateWhenResolved(rpc::TaskSpec spec, std::vector<TaskArg> args, const std::string& class_name) {
  for (const auto& arg : args) {
    if (arg.is_ref) objects_.FetchIfBorrowed(arg.ref);
  }
  resolver_.Resolve(std::move(spec), std::move(args),
                    [this, class_name](rpc::TaskSpec resolved, std::optional<rpc::ErrorInfo> failed) {
                      rpc::CreateActorRequest request;
                      const std::string actor = resolved.actor_id();
                      *request.mutable_creation_spec() = std::move(resolved);
                      if (failed) {
                        rpc::ErrorInfo info = MakeError(failed->type(), absl::StrCat("an argument of the constructor of ",
                                                                                     class_name, " failed: ",
                                                                                     failed->message()));
                        info.set_data(failed->data());
                        *info.mutable_cause() = *std::move(failed);
                        *request.mutable_failed() = std::move(info);
                      }
                      // Bounded: this runs where the last argument arrived (the core worker's loop).
                      absl::Status s = gcs_.WithTimeout(absl::Seconds(30)).CreateActor(request);
                      if (!s.ok()) {
                        spdlog::error("actor {}: its constructor's arguments are ready, but the GCS was not told: {}",
                                      absl::BytesToHexString(actor), s.ToString());
                      }
                    });
}

absl::Status ActorClient::ResolveArguments(rpc::TaskSpec& spec, std::vector<TaskArg> args,
                                           const std::string& class_name) {
  std::vector<ObjectId> refs;
  for (const auto& arg : args) {
    if (arg.is_ref) refs.push_back(arg.ref);
  }
  if (!refs.empty()) {
    auto ready = objects_.WaitForValues(refs, absl::Seconds(-1));  // borrowed fetches, blocked-worker notice
    if (!ready.ok()) return ready.status();
  }
  absl::Notification resolved;
  std::optional<rpc::ErrorInfo> failed;
  resolver_.Resolve(std::move(spec), std::move(args), [&](rpc::TaskSpec done, std::optional<rpc::ErrorInfo> error) {
    spec = std::move(done);
    failed = std::move(error);
    resolved.Notify();
  });
  resolved.WaitForNotification();
  if (!failed) return absl::OkStatus();
  rpc::ErrorInfo info = MakeError(failed->type(), absl::StrCat("an argument of the constructor of ", class_name,
                                                              " failed: ", failed->message()));
  *info.mutable_cause() = *std::move(failed);
  return ErrorStatus(info);
}

absl::StatusOr<std::vector<ObjectId>> ActorClient::Call(const ActorId& actor, const std::string& method,
                                                       std::vector<TaskArg> args, const TaskOptions& options) {
  auto spec = BuildActorCallSpec(owner_.job, actor, method, options, owner_.address);
  if (!spec.ok()) return spec.status();
  submitter_.AddActor(actor, 0);  // no-op when known (the handle's retries stay)
  // Taken before the returns are prepared, so that a refused call leaves nothing behind.
  absl::StatusOr<uint64_t> order = submitter_.Reserve(actor, options.max_pending_calls);
  if (!order.ok()) return order.status();
  auto return_ids = tasks_.Prepare(*spec, args, options.nested_refs, /*pin_forever=*/false);
  if (!return_ids.ok()) {
    submitter_.Abandon(actor, *order);
    return return_ids.status();
  }
  tasks_.Resolve(
      std::move(*spec), std::move(args),
      [this, order = *order](rpc::TaskSpec resolved) { submitter_.Submit(order, std::move(resolved)); },
      [this, actor, order = *order] { submitter_.Abandon(actor, order); });
  return return_ids;
}

absl::Status ActorClient::Kill(const ActorId& actor, bool no_restart) {
  absl::Status s = gcs_.KillActor(actor, no_restart);
  if (s.ok() && no_restart) submitter_.MarkKilled(actor, "killed by shoal.kill()");
  return s;
}

absl::StatusOr<ActorDescription> ActorClient::GetNamed(const std::string& name, const std::string& ray_namespace) {
  absl::StatusOr<rpc::ActorInfo> info = gcs_.GetNamedActor(name, ray_namespace);
  if (absl::IsNotFound(info.status())) {
    return absl::NotFoundError(absl::StrCat("Failed to look up actor with name '", name, "' in namespace '",
                                            ray_namespace, "'"));
  }
  if (!info.ok()) return info.status();
  return Describe(*info);
}

absl::StatusOr<ActorDescription> ActorClient::GetInfo(const ActorId& actor) {
  absl::StatusOr<rpc::ActorInfo> info = gcs_.GetActorInfo(actor);
  if (!info.ok()) return info.status();
  return Describe(*info);
}

}  // namespace shoal
