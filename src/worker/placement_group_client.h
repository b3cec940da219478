// This process's dealings with placement groups through the GCS: creates and removes them,
// looks them up, waits for them, and checks a task's or actor's request against its group
// before it is submitted (Ray's rules: the group must exist and not be removed, the bundle
// index must be in range, and the request must fit the bundle, or some bundle for index -1).
//
// The bundles of a group never change, so they are cached after the first lookup; whether the
// group was removed is read again from the GCS at most once a second per group (a removal seen
// late is still caught by the raylets, which reject requests for groups they gave back).
//
// Sent without waiting: the creation of an unnamed group (nothing but this client's own checks
// can refuse it: a name can be taken, so a named group is created with a blocking call) and the
// removal of a group this client created. Each is sent at once; this client answers for it
// afterwards: every later call of this client that names the group waits for its creation and
// removal to reach the GCS (and fails with the creation's error, if it failed); List, GetNamed
// and the creation of a named group wait for all of them (a removal frees a name), and so does
// Flush, which the core worker calls before its job is marked finished; task, actor-call and
// actor submissions wait for them too (AwaitPending), so a group handed to a task exists and
// a removed group's actors are dead by then. A call that could not reach the GCS is sent again
// with the blocking calls' policy on this client's resender thread; a removal that failed marks
// the group live again here (later lookups ask the GCS), and Remove of a group whose creation
// failed tries a blocking removal. So one process reads its own writes, as with blocking calls;
// another process told of a group some other way than a task may see it a moment later.
//
// Threading: any thread; calls block on the GCS (Create of an unnamed group and Remove of one of
// this client's groups do not).
// Ownership: borrows the GCS client, which must outlive this object.
// Errors: InvalidArgument for bad options and requests (naming the problem), NotFound for an
// unknown group, AlreadyExists for a taken name, FailedPrecondition for a removed group, and
// the GCS client's errors as it answers them.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "shoal/common.pb.h"
#include "src/common/bundle_resources.h"
#include "src/common/ids.h"
#include "src/common/resources.h"
#include "src/gcs_client/gcs_client.h"
#include "src/worker/core_worker.h"

namespace shoal {

struct PlacementGroupOptions {
  std::vector<ResourceSet> bundles;
  // Per bundle (empty, or one per bundle): the labels its node must have (Ray's
  // bundle_label_selector; src/scheduler/label_selector.h).
  std::vector<std::map<std::string, std::string>> bundle_label_selectors;
  std::string strategy = "PACK";  // "PACK", "SPREAD", "STRICT_PACK" or "STRICT_SPREAD"
  std::string name;               // "" for an unnamed group
  std::string ray_namespace = "default";
  bool detached = false;          // outlives its job (else removed when the job ends)
};

class PlacementGroupClient {
 public:
  struct Owner {
    JobId job;
    std::string address;  // this worker's CoreWorkerService
  };

  PlacementGroupClient(const GcsClient& gcs, Owner owner) : gcs_(gcs), owner_(std::move(owner)) {}
  ~PlacementGroupClient();  // Flush()
  PlacementGroupClient(const PlacementGroupClient&) = delete;
  PlacementGroupClient& operator=(const PlacementGroupClient&) = delete;

  // Registers a new group (PENDING); answers its id at once, before it is created.
  absl::StatusOr<PlacementGroupId> Create(const PlacementGroupOptions& options);
  // Returns every bundle and kills the group's actors and tasks. NotFound for an unknown group.
  absl::Status Remove(const PlacementGroupId& group);
  // Waits until every creation and removal sent without waiting has been answered (or given
  // up on: each has the GCS client's deadline, retries included).
  void Flush();
  // Waits up to `timeout` until every creation and removal sent without waiting has been
  // answered: the core worker calls it before it submits a task, an actor call or a creation,
  // so that what the program does next finds its groups as blocking calls would have left them (a group passed to a task exists; after remove_placement_group the
  // group's actors are dead). One atomic read when none is unanswered. A GCS that does not
  // answer in time holds up the caller no longer than `timeout` (a warning says so).
  void AwaitPending(absl::Duration timeout);
  absl::StatusOr<rpc::PlacementGroupInfo> Get(const PlacementGroupId& group);
  // NotFound when no group that is not removed has `name` in `ray_namespace`.
  absl::StatusOr<rpc::PlacementGroupInfo> GetNamed(const std::string& name, const std::string& ray_namespace);
  absl::StatusOr<std::vector<rpc::PlacementGroupInfo>> List(int limit = 0);
  // True once CREATED, false when `timeout` passed first (negative: no limit);
  // FailedPrecondition when it was removed.
  absl::StatusOr<bool> Wait(const PlacementGroupId& group, absl::Duration timeout);
  // For a PLACEMENT_GROUP strategy: OK when `request` may be submitted into the group.
  absl::Status CheckRequest(const rpc::SchedulingStrategy& strategy, const ResourceSet& request);
  // `options` with the placement group it runs in: its own strategy's, else (no strategy named)
  // that of `running` (the calling task) when it captures child tasks. A request for a group is
  // checked against the group's bundles (CheckRequest) before anything is submitted.
  absl::StatusOr<TaskOptions> Resolve(const TaskOptions& options, const CurrentTaskInfo& running);

 private:
  struct Cached {
    std::vector<ResourceSet> bundles;
    bool removed = false;
    absl::Time checked;  // when the state was last read from the GCS
    bool ours = false;   // created by this client
  };

  absl::StatusOr<Cached> Lookup(const PlacementGroupId& group);
  // Sends without waiting; `blocking` sends it again if the first try could not reach the GCS.
  void Send(const PlacementGroupId& group, bool creation,
            std::function<void(std::function<void(absl::Status)>)> send, std::function<absl::Status()> blocking);
  void Sent(const PlacementGroupId& group, bool creation, const absl::Status& status);
  // Waits until nothing sent for `group` is unanswered; the error of its creation, if it failed.
  absl::Status AwaitSent(const PlacementGroupId& group);

  const GcsClient& gcs_;
  const Owner owner_;
  absl::Mutex mu_;
  absl::flat_hash_map<PlacementGroupId, Cached> cache_ ABSL_GUARDED_BY(mu_);
  // Calls sent without waiting and not answered yet, per group; and creations that failed.
  absl::flat_hash_map<PlacementGroupId, int> unanswered_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<PlacementGroupId, absl::Status> failed_ ABSL_GUARDED_BY(mu_);
  // Sends that could not reach the GCS, sent again one after another by resender_ (running while
  // resending_; joined by Flush or before the next one starts).
  void Resend();
  std::deque<std::function<void()>> resend_ ABSL_GUARDED_BY(mu_);
  bool resending_ ABSL_GUARDED_BY(mu_) = false;
  std::thread resender_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> pending_{0};  // creations and removals sent without waiting, not answered yet
};

// The bundles of `info` as resource sets, in index order.
std::vector<ResourceSet> BundlesOf(const rpc::PlacementGroupInfo& info);

}  // namespace shoal
