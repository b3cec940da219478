// GcsClient against a real GCS server in this process (memory storage, a free port).
#include "src/gcs_client/gcs_client.h"

#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "src/common/resources.h"
#include "src/gcs/gcs_server.h"
#include "src/gcs/store_client.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

// A GCS serving on `port` (0 picks a free one) until destroyed.
std::unique_ptr<GcsServer> StartGcs(int port = 0) {
  GcsOptions options;
  options.port = port;
  auto gcs = std::make_unique<GcsServer>(std::make_unique<InMemoryStoreClient>(), options);
  REQUIRE_OK(gcs->Start());
  return gcs;
}

std::string AddressOf(const GcsServer& gcs) { return absl::StrCat("127.0.0.1:", gcs.port()); }

rpc::NodeInfo MakeNode(const NodeId& id) {
  rpc::NodeInfo node;
  node.set_node_id(id.Hex());
  node.set_address("127.0.0.1");
  node.set_raylet_port(7000);
  auto total = ResourceSet::FromDoubles({{"CPU", 4}});
  REQUIRE_OK(total);
  total->ToProto(node.mutable_resources_total());
  total->ToProto(node.mutable_resources_available());
  return node;
}

// A detached actor (no owner to watch) that no node can host, so it stays PENDING.
rpc::RegisterActorRequest PendingActor(const ActorId& id) {
  rpc::RegisterActorRequest request;
  rpc::TaskSpec& spec = *request.mutable_creation_spec();
  spec.set_task_id(TaskId::ForActorTask(id).Binary());
  spec.set_job_id(id.Job().Hex());
  spec.set_function_name("Counter.__init__");
  spec.set_actor_id(id.Binary());
  spec.set_actor_creation(true);
  spec.set_num_returns(1);
  auto shape = ResourceSet::FromDoubles({{"CPU", 1}});
  REQUIRE_OK(shape);
  shape->ToProto(spec.mutable_resources());
  request.mutable_info()->set_class_name("Counter");
  request.mutable_info()->set_name("counter");
  request.mutable_info()->set_detached(true);
  return request;
}

TEST_CASE("GcsClient: key-value store", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  REQUIRE(*client.KvPut("ns", "a/1", "one", /*overwrite=*/false) == true);
  REQUIRE(*client.KvPut("ns", "a/1", "uno", /*overwrite=*/false) == false);  // kept
  CHECK(*client.KvGet("ns", "a/1") == "one");
  REQUIRE(*client.KvPut("ns", "a/1", "uno", /*overwrite=*/true) == false);
  CHECK(*client.KvGet("ns", "a/1") == "uno");
  REQUIRE_OK(client.KvPut("ns", "a/2", "two", true));
  REQUIRE_OK(client.KvPut("ns", "b", "three", true));
  CHECK(client.KvKeys("ns", "a/")->size() == 2);
  CHECK(client.KvKeys("ns")->size() == 3);
  CHECK(*client.KvDel("ns", "a/", /*by_prefix=*/true) == 2);
  REQUIRE_CODE(client.KvGet("ns", "a/1"), kNotFound);
  CHECK(*client.KvKeys("ns") == std::vector<std::string>{"b"});
}

TEST_CASE("GcsClient: nodes, resources and the cluster status", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  const NodeId node = NodeId::FromRandom();
  REQUIRE_OK(client.RegisterNode(MakeNode(node)));
  auto nodes = client.GetAllNodeInfo(/*alive_only=*/true);
  REQUIRE_OK(nodes);
  REQUIRE(nodes->size() == 1);
  CHECK(nodes->front().node_id() == node.Hex());

  rpc::ReportResourcesRequest report;
  report.set_node_id(node.Hex());
  ResourceSet::FromDoubles({{"CPU", 1}})->ToProto(report.mutable_resources_available());
  CHECK(*client.ReportResources(report) == true);
  auto status = client.GetClusterStatus();
  REQUIRE_OK(status);
  CHECK(status->storage() == "memory");
  CHECK(status->nodes_size() == 1);

  REQUIRE_OK(client.UnregisterNode(node, "test"));
  CHECK(client.GetAllNodeInfo(/*alive_only=*/true)->empty());
  CHECK(*client.ReportResources(report) == false);  // must register again
  REQUIRE_OK(client.GetRpcStats());
}

TEST_CASE("GcsClient: jobs", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  rpc::JobInfo job;
  job.set_entrypoint("python main.py");
  auto first = client.AddJob(job);
  auto second = client.AddJob(job);
  REQUIRE_OK(first);
  REQUIRE_OK(second);
  CHECK(*first != *second);
  REQUIRE_OK(client.MarkJobFinished(*first));
  auto jobs = client.GetAllJobInfo();
  REQUIRE_OK(jobs);
  REQUIRE(jobs->size() == 2);
  for (const rpc::JobInfo& info : *jobs) CHECK(info.is_dead() == (info.job_id() == first->Hex()));
}

TEST_CASE("GcsClient: actors", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  const ActorId unknown = ActorId::Of(JobId::FromInt(9));
  REQUIRE_CODE(client.GetActorInfo(unknown), kNotFound);
  REQUIRE_CODE(client.GetNamedActor("nobody", ""), kNotFound);
  REQUIRE_CODE(client.KillActor(unknown, true), kNotFound);

  const ActorId id = ActorId::Of(JobId::FromInt(1));
  auto registered = client.RegisterActor(PendingActor(id));
  REQUIRE_OK(registered);
  CHECK(registered->actor_id() == id.Binary());
  CHECK_FALSE(registered->existed());
  auto info = client.GetActorInfo(id);
  REQUIRE_OK(info);
  CHECK(info->state() == rpc::ActorInfo::PENDING);
  CHECK(client.GetNamedActor("counter", "")->actor_id() == id.Binary());
  CHECK(client.ListActors(10)->actors_size() == 1);
  REQUIRE_OK(client.ListTasks(10));

  // A kill wakes a long poll on the entry with the new version.
  std::promise<absl::StatusOr<rpc::ActorInfo>> polled;
  client.AsyncGetActorInfo(id, info->version(), absl::Seconds(60),
                           [&](absl::Status status, rpc::GetActorInfoReply reply) {
                             if (status.ok()) {
                               polled.set_value(reply.info());
                             } else {
                               polled.set_value(status);
                             }
                           });
  REQUIRE_OK(client.KillActor(id, /*no_restart=*/true));
  absl::StatusOr<rpc::ActorInfo> after = polled.get_future().get();
  REQUIRE_OK(after);
  CHECK(after->state() == rpc::ActorInfo::DEAD);
  CHECK(after->version() > info->version());
}

TEST_CASE("GcsClient: Shutdown cancels a long poll", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  const ActorId id = ActorId::Of(JobId::FromInt(2));
  REQUIRE_OK(client.RegisterActor(PendingActor(id)));
  const int64_t version = client.GetActorInfo(id)->version();
  std::promise<absl::Status> polled;
  client.AsyncGetActorInfo(id, version, absl::Seconds(600),
                           [&](absl::Status status, rpc::GetActorInfoReply) { polled.set_value(status); });
  client.Shutdown(absl::Seconds(30));
  REQUIRE_CODE(polled.get_future().get(), kCancelled);
  // Blocking calls still work after Shutdown.
  REQUIRE_OK(client.GetActorInfo(id));
}

TEST_CASE("GcsClient: async reports reach the GCS", "[gcs_client]") {
  auto gcs = StartGcs();
  GcsClient client({.address = AddressOf(*gcs)});
  rpc::ReportTaskEventsRequest events;
  rpc::TaskEvent* event = events.add_events();
  event->set_task_id(TaskId::ForNormalTask(JobId::FromInt(1)).Binary());
  event->set_name("f");
  event->set_job_id(JobId::FromInt(1).Hex());
  event->set_state(rpc::TaskEvent::RUNNING);
  client.AsyncReportTaskEvents(events);

  rpc::ReportWorkerDeathRequest death;
  death.set_node_id(NodeId::FromRandom().Hex());
  death.set_worker_id(WorkerId::FromRandom().Hex());
  death.set_reason("exited with code 1");
  std::promise<absl::Status> reported;
  client.AsyncReportWorkerDeath(death, [&](absl::Status status) { reported.set_value(status); });
  REQUIRE_OK(reported.get_future().get());
  // Shutdown waits for the fire-and-forget report too.
  client.Shutdown(absl::Seconds(30));
  auto tasks = client.ListTasks(10);
  REQUIRE_OK(tasks);
  REQUIRE(tasks->tasks_size() == 1);
  CHECK(tasks->tasks(0).name() == "f");
}

TEST_CASE("GcsClient: a malformed address fails every call at once", "[gcs_client]") {
  GcsClient client({.address = "no-port"});
  REQUIRE_CODE(client.GetClusterStatus(), kInvalidArgument);
  REQUIRE_CODE(client.KvGet("ns", "k"), kInvalidArgument);
  std::optional<absl::Status> polled;
  client.AsyncGetActorInfo(ActorId::Of(JobId::FromInt(1)), 0, absl::Seconds(1),
                           [&](absl::Status status, rpc::GetActorInfoReply) { polled = status; });
  REQUIRE(polled.has_value());
  REQUIRE_CODE(*polled, kInvalidArgument);
}

TEST_CASE("GcsClient: no GCS is Unavailable, naming the address", "[gcs_client]") {
  int port = 0;
  {
    auto gcs = StartGcs();  // a port that was free a moment ago, and is closed again
    port = gcs->port();
  }
  const std::string address = absl::StrCat("127.0.0.1:", port);
  GcsClient client({.address = address, .timeout = absl::Milliseconds(300)});
  auto status = client.GetClusterStatus();
  REQUIRE_CODE(status, kUnavailable);
  CHECK(absl::StrContains(status.status().message(), address));
}

TEST_CASE("GcsClient: reconnects to a GCS restarted on the same port", "[gcs_client]") {
  auto gcs = StartGcs();
  const int port = gcs->port();
  GcsClient client({.address = AddressOf(*gcs), .timeout = absl::Seconds(30)});
  REQUIRE_OK(client.KvPut("ns", "k", "old", true));

  gcs.reset();  // the GCS goes away; the client's channel was connected to it
  REQUIRE_CODE(client.WithTimeout(absl::Milliseconds(200)).KvGet("ns", "k"), kUnavailable);

  // A call made while no GCS runs keeps trying, and lands on the new one.
  auto put = std::async(std::launch::async, [&] { return client.KvPut("ns", "k", "new", true); });
  gcs = StartGcs(port);
  REQUIRE_OK(put.get());
  CHECK(*client.KvGet("ns", "k") == "new");  // memory storage: the old value went with the old GCS
}

}  // namespace
}  // namespace shoal
