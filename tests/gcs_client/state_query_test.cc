// The state API against a real GCS server in this process, holding known contents: two nodes,
// two pending actors, tasks in three states, a job and a placement group.
#include "src/gcs_client/state_query.h"

#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <set>
#include <vector>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "src/common/resources.h"
#include "src/gcs/gcs_server.h"
#include "src/gcs/store_client.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

using Json = nlohmann::json;

struct Cluster {
  Cluster() {
    GcsOptions options;
    options.port = 0;  // a free port
    gcs = std::make_unique<GcsServer>(std::make_unique<InMemoryStoreClient>(), options);
    REQUIRE_OK(gcs->Start());
    client = std::make_unique<GcsClient>(GcsClientOptions{.address = absl::StrCat("127.0.0.1:", gcs->port())});
    for (int i = 0; i < 2; ++i) {
      rpc::NodeInfo node;
      node.set_node_id(NodeId::FromRandom().Hex());
      node.set_address("127.0.0.1");
      node.set_raylet_port(7000 + i);
      node.set_is_head(i == 0);
      auto total = ResourceSet::FromDoubles({{"CPU", 2}, {"GPU", static_cast<double>(i)}});
      REQUIRE_OK(total);
      total->ToProto(node.mutable_resources_total());
      total->ToProto(node.mutable_resources_available());
      REQUIRE_OK(client->RegisterNode(node));
      nodes.push_back(node.node_id());
    }
    rpc::JobInfo job;
    job.set_entrypoint("python train.py");
    auto added = client->AddJob(job);
    REQUIRE_OK(added);
    job_id = *added;
    for (const char* cls : {"Counter", "Trainer"}) {
      const ActorId id = ActorId::Of(job_id);
      rpc::RegisterActorRequest request;
      rpc::TaskSpec& spec = *request.mutable_creation_spec();
      spec.set_task_id(TaskId::ForActorTask(id).Binary());
      spec.set_job_id(job_id.Hex());
      spec.set_function_name(absl::StrCat(cls, ".__init__"));
      spec.set_actor_id(id.Binary());
      spec.set_actor_creation(true);
      spec.set_num_returns(1);
      auto shape = ResourceSet::FromDoubles({{"CPU", 100}});  // no node fits: stays PENDING
      REQUIRE_OK(shape);
      shape->ToProto(spec.mutable_resources());
      request.mutable_info()->set_class_name(cls);
      request.mutable_info()->set_detached(true);
      REQUIRE_OK(client->RegisterActor(request));
      actors.push_back(id.Hex());
    }
    rpc::ReportTaskEventsRequest events;
    auto add = [&](const std::string& name, rpc::TaskEvent::State state, int64_t time_ms) {
      const TaskId task = TaskId::ForNormalTask(job_id);
      std::vector<rpc::TaskEvent::State> states = {rpc::TaskEvent::PENDING};
      if (state != rpc::TaskEvent::PENDING) states = {rpc::TaskEvent::PENDING, rpc::TaskEvent::RUNNING, state};
      for (size_t i = 0; i < states.size(); ++i) {
        rpc::TaskEvent* e = events.add_events();
        e->set_task_id(task.Binary());
        e->set_name(name);
        e->set_job_id(job_id.Hex());
        e->set_state(states[i]);
        e->set_time_ms(time_ms + static_cast<int64_t>(i) * 10);
        e->set_node_id(nodes[0]);
        e->set_worker_id("w1");
      }
      return task.Hex();
    };
    finished = {add("f", rpc::TaskEvent::FINISHED, 1000), add("f", rpc::TaskEvent::FINISHED, 2000)};
    failed = add("g", rpc::TaskEvent::FAILED, 3000);
    pending = add("h", rpc::TaskEvent::PENDING, 4000);
    client->AsyncReportTaskEvents(events);
    client->Shutdown(absl::Seconds(30));  // waits for the report
    rpc::PlacementGroupInfo pg;
    pg.set_placement_group_id(std::string(18, '\x07'));
    pg.set_name("gang");
    pg.set_job_id(job_id.Hex());
    pg.set_strategy(rpc::PlacementGroupInfo::STRICT_SPREAD);
    for (int i = 0; i < 2; ++i) {
      rpc::Bundle* b = pg.add_bundles();
      b->set_bundle_index(i);
      auto shape = ResourceSet::FromDoubles({{"CPU", 100}});  // no node fits: stays PENDING
      REQUIRE_OK(shape);
      shape->ToProto(b->mutable_resources());
    }
    REQUIRE_OK(client->CreatePlacementGroup(pg));
  }

  std::set<std::string> Column(const state::ListResult& result, const std::string& column) {
    std::set<std::string> out;
    for (const Json& row : result.rows) out.insert(row.at(column).get<std::string>());
    return out;
  }

  std::unique_ptr<GcsServer> gcs;
  std::unique_ptr<GcsClient> client;
  std::vector<std::string> nodes, actors;
  JobId job_id;
  std::vector<std::string> finished;
  std::string failed, pending;
};

state::Filter F(const std::string& text) {
  auto f = state::ParseFilter(text);
  REQUIRE_OK(f);
  return *f;
}

TEST_CASE("state: lists each resource with Ray's columns", "[state]") {
  Cluster c;
  auto nodes = state::List(*c.client, state::Resource::kNodes, {});
  REQUIRE_OK(nodes);
  CHECK(nodes->total == 2);
  CHECK(c.Column(*nodes, "node_id") == std::set<std::string>(c.nodes.begin(), c.nodes.end()));
  CHECK(nodes->rows[0].contains("resources_total"));
  CHECK_FALSE(nodes->rows[0].contains("resources_available"));  // a detail column

  auto actors = state::List(*c.client, state::Resource::kActors, {.detail = true});
  REQUIRE_OK(actors);
  CHECK(c.Column(*actors, "class_name") == std::set<std::string>{"Counter", "Trainer"});
  CHECK(c.Column(*actors, "state") == std::set<std::string>{"PENDING"});
  CHECK(actors->rows[0]["required_resources"] == Json{{"CPU", 100.0}});

  auto tasks = state::List(*c.client, state::Resource::kTasks, {});
  REQUIRE_OK(tasks);
  CHECK(tasks->total == 4);
  auto jobs = state::List(*c.client, state::Resource::kJobs, {});
  REQUIRE_OK(jobs);
  REQUIRE(jobs->rows.size() == 1);
  CHECK(jobs->rows[0]["entrypoint"] == "python train.py");
  CHECK(jobs->rows[0]["status"] == "RUNNING");
  auto groups = state::List(*c.client, state::Resource::kPlacementGroups, {.detail = true});
  REQUIRE_OK(groups);
  REQUIRE(groups->rows.size() == 1);
  CHECK(groups->rows[0]["name"] == "gang");
  CHECK(groups->rows[0]["strategy"] == "STRICT_SPREAD");
  CHECK(groups->rows[0]["bundles"].size() == 2);
}

TEST_CASE("state: filters, limits and totals", "[state]") {
  Cluster c;
  auto finished = state::List(*c.client, state::Resource::kTasks, {.filters = {F("state=finished")}});
  REQUIRE_OK(finished);
  CHECK(c.Column(*finished, "task_id") == std::set<std::string>(c.finished.begin(), c.finished.end()));
  auto not_f = state::List(*c.client, state::Resource::kTasks, {.filters = {F("name != f")}});
  REQUIRE_OK(not_f);
  CHECK(c.Column(*not_f, "task_id") == std::set<std::string>{c.failed, c.pending});
  auto both = state::List(*c.client, state::Resource::kTasks, {.filters = {F("name=f"), F("state=FAILED")}});
  REQUIRE_OK(both);
  CHECK(both->total == 0);
  auto limited = state::List(*c.client, state::Resource::kTasks, {.limit = 1});
  REQUIRE_OK(limited);
  CHECK(limited->rows.size() == 1);
  CHECK(limited->total == 4);  // before the limit
  auto head = state::List(*c.client, state::Resource::kNodes, {.filters = {F("is_head_node=True")}});
  REQUIRE_OK(head);
  REQUIRE(head->rows.size() == 1);
  CHECK(head->rows[0]["node_id"] == c.nodes[0]);
}

TEST_CASE("state: bad resources, filters and limits are refused naming what is allowed", "[state]") {
  Cluster c;
  auto unknown = state::ParseResource("gizmos");
  REQUIRE_CODE(unknown, kInvalidArgument);
  CHECK(absl::StrContains(unknown.status().message(), "placement-groups"));
  REQUIRE_CODE(state::ParseResource("runtime-envs"), kUnimplemented);
  CHECK(*state::ParseResource("objects") == state::Resource::kObjects);
  // Workers come from the raylets: these nodes have none listening, so the list is partial.
  REQUIRE_OK(state::ParseResource("workers"));
  auto workers = state::List(*c.client, state::Resource::kWorkers, {});
  REQUIRE_OK(workers);
  CHECK(workers->rows.empty());
  CHECK(workers->partial);
  REQUIRE_CODE(state::ParseFilter("state"), kInvalidArgument);
  REQUIRE_CODE(state::MakeFilter("state", ">", "1"), kInvalidArgument);
  auto bad_key = state::List(*c.client, state::Resource::kActors, {.filters = {F("colour=red")}});
  REQUIRE_CODE(bad_key, kInvalidArgument);
  CHECK(absl::StrContains(bad_key.status().message(), "colour"));
  CHECK(absl::StrContains(bad_key.status().message(), "class_name"));
  REQUIRE_CODE(state::List(*c.client, state::Resource::kActors, {.limit = -1}), kInvalidArgument);
  REQUIRE_CODE(state::List(*c.client, state::Resource::kActors, {.limit = 0}), kInvalidArgument);
  REQUIRE_CODE(state::List(*c.client, state::Resource::kActors, {.limit = state::kMaxLimit + 1}), kInvalidArgument);
  REQUIRE_CODE(state::Summarize(*c.client, state::Resource::kNodes), kInvalidArgument);
}

TEST_CASE("state: get by id or unique prefix", "[state]") {
  Cluster c;
  auto actor = state::Get(*c.client, state::Resource::kActors, c.actors[1].substr(0, 12));
  REQUIRE_OK(actor);
  CHECK((*actor)["actor_id"] == c.actors[1]);
  CHECK(actor->contains("death_cause"));  // every column
  REQUIRE_CODE(state::Get(*c.client, state::Resource::kActors, std::string(32, 'f')), kNotFound);
  REQUIRE_CODE(state::Get(*c.client, state::Resource::kActors, "abc"), kInvalidArgument);  // too short
  auto task = state::Get(*c.client, state::Resource::kTasks, c.failed);
  REQUIRE_OK(task);
  CHECK((*task)["state"] == "FAILED");
}

TEST_CASE("state: summaries count by name and state", "[state]") {
  Cluster c;
  auto tasks = state::Summarize(*c.client, state::Resource::kTasks);
  REQUIRE_OK(tasks);
  CHECK((*tasks)["total"] == 4);
  CHECK((*tasks)["summary"]["f"]["state_counts"] == Json{{"FINISHED", 2}});
  CHECK((*tasks)["summary"]["g"]["state_counts"] == Json{{"FAILED", 1}});
  CHECK((*tasks)["summary"]["f"]["type"] == "NORMAL_TASK");
  auto actors = state::Summarize(*c.client, state::Resource::kActors);
  REQUIRE_OK(actors);
  CHECK((*actors)["summary"]["Counter"]["state_counts"] == Json{{"PENDING", 1}});
}

TEST_CASE("state: the timeline has one complete event per task that ran", "[state]") {
  Cluster c;
  auto trace = state::Timeline(*c.client);
  REQUIRE_OK(trace);
  REQUIRE(trace->is_array());
  CHECK(trace->size() == 3);  // two f, one g; h never ran
  std::set<std::string> ids;
  for (const Json& e : *trace) {
    CHECK(e["ph"] == "X");
    CHECK(e["dur"].get<int64_t>() >= 0);
    CHECK(e["pid"] == absl::StrCat("Node ", c.nodes[0]));
    ids.insert(e["args"]["task_id"].get<std::string>());
  }
  CHECK(ids == std::set<std::string>{c.finished[0], c.finished[1], c.failed});
}

}  // namespace
}  // namespace shoal
