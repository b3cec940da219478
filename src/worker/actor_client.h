// This process's dealings with actors through the GCS (DESIGN.md section 2, "Actors"): creates
// them, looks them up by id or by name, kills them, and keeps the ActorSubmitter following
// every actor this process holds a handle to; method calls are prepared here (TaskManager) and
// pushed by the ActorSubmitter.
//
// Create resolves the constructor's ref arguments before the GCS gets the creation spec: the
// GCS pushes the constructor again at every restart, long after this process may be gone. The
// arguments stay referenced for the actor's life. A failed argument fails the creation with
// its error type, the argument's error as the cause; nothing is registered then.
// Threading: any thread; Create blocks until the arguments are ready and the GCS answered.
// Ownership: the GCS client, task manager, objects, resolver and submitter are the caller's
// and must outlive this object.
// Errors: bad actor options are InvalidArgument; GCS errors come back as the GcsClient answers
// them (GetNamedActor's NotFound names the actor and namespace).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shoal/gcs.pb.h"
#include "src/common/ids.h"
#include "src/gcs_client/gcs_client.h"
#include "src/worker/actor_submitter.h"
#include "src/worker/core_worker.h"
#include "src/worker/dependency_resolver.h"
#include "src/worker/owned_objects.h"
#include "src/worker/task_manager.h"

namespace shoal {

class ActorClient {
 public:
  // Whom the actors this process creates belong to.
  struct Owner {
    JobId job;
    std::string address;  // this worker's CoreWorkerService (non-detached actors die with it)
  };

  ActorClient(const GcsClient& gcs, TaskManager& tasks, OwnedObjects& objects, DependencyResolver& resolver,
              ActorSubmitter& submitter, Owner owner)
      : gcs_(gcs), tasks_(tasks), objects_(objects), resolver_(resolver), submitter_(submitter),
        owner_(std::move(owner)) {}
  ActorClient(const ActorClient&) = delete;
  ActorClient& operator=(const ActorClient&) = delete;

  // As CoreWorker::CreateActor; `options.worker_command` is the one the actor's worker runs.
  absl::StatusOr<ActorDescription> Create(const std::string& function_name, std::vector<TaskArg> args,
                                          const TaskOptions& options, const ActorOptions& actor);
  // As CoreWorker::SubmitActorTask: a method call, in this caller's order, through the
  // ActorSubmitter once its arguments are resolved (the call takes no resources of its own).
  absl::StatusOr<std::vector<ObjectId>> Call(const ActorId& actor, const std::string& method,
                                             std::vector<TaskArg> args, const TaskOptions& options);
  // Follows `actor` for method calls (a handle passed to this process). Idempotent.
  void AddHandle(const ActorId& actor, int max_task_retries) { submitter_.AddActor(actor, max_task_retries); }
  // Kills `actor` through the GCS; with `no_restart` later calls fail at once.
  absl::Status Kill(const ActorId& actor, bool no_restart);
  absl::StatusOr<ActorDescription> GetNamed(const std::string& name, const std::string& ray_namespace);
  absl::StatusOr<ActorDescription> GetInfo(const ActorId& actor);

 private:
  // Fills the constructor's arguments (values only: it does not wait) into `spec`; a failure
  // as an error status naming the class.
  absl::Status ResolveArguments(rpc::TaskSpec& spec, std::vector<TaskArg> args, const std::string& class_name);
  // Once the constructor's ref arguments are ready, sends the resolved constructor (or the
  // failed argument's error) to the GCS for the actor registered with dependencies_unready.
  void CreateWhenResolved(rpc::TaskSpec spec, std::vector<TaskArg> args, const std::string& class_name);

  const GcsClient& gcs_;
  TaskManager& tasks_;
  OwnedObjects& objects_;
  DependencyResolver& resolver_;
  ActorSubmitter& submitter_;
  const Owner owner_;
};

}  // namespace shoal
