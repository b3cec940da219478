// The owner-side parts of a core worker over fakes, for TaskManager and ActorClient tests:
// memory store, reference counter, OwnedObjects (fake store and transport; continuations run
// at once), DependencyResolver, task events, generator streams and the TaskManager.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "src/common/fake_clock.h"
#include "src/worker/dependency_resolver.h"
#include "src/worker/fake_object_transport.h"
#include "src/worker/fake_store_access.h"
#include "src/worker/generator_streams.h"
#include "src/worker/owned_objects.h"
#include "src/worker/task_events.h"
#include "src/worker/task_manager.h"

namespace shoal::test {

inline constexpr char kOwnerAddress[] = "127.0.0.1:4000";

struct OwnerParts {
  explicit OwnerParts(const JobId& job)
      : objects(memory, refs, store, transport, clock,
                OwnedObjects::Options{.address = kOwnerAddress,
                                      .put_task = TaskId::ForNormalTask(job),
                                      .post = [](std::function<void()> fn) { fn(); }}) {}

  // The states of the task events buffered so far, in order.
  std::vector<rpc::TaskEvent::State> TakeEventStates() {
    std::vector<rpc::TaskEvent::State> states;
    const rpc::ReportTaskEventsRequest batch = events.TakeBatch();
    for (const auto& e : batch.events()) states.push_back(e.state());
    return states;
  }

  FakeClock clock;
  MemoryStore memory;
  ReferenceCounter refs;
  FakeStoreAccess store;
  FakeObjectTransport transport;
  OwnedObjects objects;
  DependencyResolver resolver{memory};
  TaskEventBuffer events;
  GeneratorStreams streams{refs, objects};
  TaskManager tasks{refs, objects, resolver, events, /*recovery=*/nullptr, &streams};
};

}  // namespace shoal::test
