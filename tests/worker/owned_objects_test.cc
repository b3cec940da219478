#include "src/worker/owned_objects.h"

#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <vector>

#include "src/common/fake_clock.h"
#include "src/worker/fake_object_transport.h"
#include "src/worker/fake_store_access.h"
#include "src/worker/object_value.h"
#include "src/worker/task_spec.h"

namespace shoal {
namespace {

const JobId kJob = JobId::FromInt(5);
constexpr char kOwner[] = "10.0.0.9:5000";

// The parts an OwnedObjects works on, with continuations queued for the test to run.
struct Fixture {
  FakeClock clock;
  MemoryStore memory;
  ReferenceCounter refs;
  FakeStoreAccess store{"10.0.0.1:7000"};
  FakeObjectTransport transport;
  std::deque<std::function<void()>> posted;
  std::vector<bool> blocked_calls;
  OwnedObjects objects{memory, refs, store, transport, clock,
                       OwnedObjects::Options{.address = "10.0.0.1:4000",
                                             .put_task = TaskId::ForNormalTask(kJob),
                                             .set_blocked = [this](bool b) { blocked_calls.push_back(b); },
                                             .post = [this](std::function<void()> fn) { posted.push_back(fn); }}};
  void RunPosted() {
    while (!posted.empty()) {
      auto fn = std::move(posted.front());
      posted.pop_front();
      fn();
    }
  }
};

TEST_CASE_METHOD(Fixture, "objects: small puts stay inline, large ones go to the store", "[owned_objects]") {
  auto small = objects.Put("tiny");
  REQUIRE(small.ok());
  auto big = objects.Put(std::string(kMaxInlineObjectSize + 1, 'x'));
  REQUIRE(big.ok());
  CHECK(*small != *big);
  CHECK_FALSE(memory.GetIfReady(*small)->in_store());
  CHECK(memory.GetIfReady(*big)->in_store());
  auto got = objects.Get({*small, *big}, absl::ZeroDuration());
  REQUIRE(got.ok());
  CHECK((*got)[0].value() == "tiny");
  CHECK((*got)[1].value().size() == kMaxInlineObjectSize + 1);
  auto parts = objects.PutParts({"ab", "cd"});
  REQUIRE(parts.ok());
  CHECK((*objects.Get({*parts}, absl::ZeroDuration()))[0].value() == "abcd");
}

TEST_CASE_METHOD(Fixture, "objects: a full store is OBJECT_STORE_FULL", "[owned_objects]") {
  store.set_full(true);
  auto put = objects.Put(std::string(kMaxInlineObjectSize + 1, 'x'));
  REQUIRE_FALSE(put.ok());
  CHECK(absl::IsResourceExhausted(put.status()));
  CHECK(ErrorTypeOf(put.status()) == rpc::OBJECT_STORE_FULL);
}

TEST_CASE_METHOD(Fixture, "objects: get times out typed, and blocks as a worker only while waiting",
                 "[owned_objects]") {
  const ObjectId pending = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  refs.AddOwned(pending);
  auto got = objects.Get({pending}, absl::Milliseconds(1));
  REQUIRE_FALSE(got.ok());
  CHECK(absl::IsDeadlineExceeded(got.status()));
  CHECK(ErrorTypeOf(got.status()) == rpc::GET_TIMEOUT);
  CHECK(blocked_calls == std::vector<bool>{true, false});
  // A ready value does not block.
  blocked_calls.clear();
  memory.Put(pending, InlineValue(pending, "v"));
  CHECK((*objects.Get({pending}, absl::ZeroDuration()))[0].value() == "v");
  CHECK(blocked_calls.empty());
}

TEST_CASE_METHOD(Fixture, "objects: a get that waits asks whether it was interrupted, and stops when it was",
                 "[owned_objects]") {
  const ObjectId pending = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 1);
  refs.AddOwned(pending);
  int asked = 0;
  auto got = objects.GetBuffers({pending}, absl::InfiniteDuration(), [&asked] { return ++asked == 3; });
  REQUIRE_FALSE(got.ok());
  CHECK(absl::IsCancelled(got.status()));
  CHECK(asked == 3);
  CHECK(blocked_calls == std::vector<bool>{true, false});
  // A ready value is answered without asking.
  memory.Put(pending, InlineValue(pending, "v"));
  auto ready = objects.GetBuffers({pending}, absl::InfiniteDuration(), [&asked] { return ++asked > 0; });
  REQUIRE(ready.ok());
  CHECK((*ready)[0].ok());
  CHECK(asked == 3);
}

TEST_CASE_METHOD(Fixture, "objects: unknown ids and bad counts are refused", "[owned_objects]") {
  const ObjectId unknown = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 7);
  CHECK(absl::IsInvalidArgument(objects.Get({unknown}, absl::ZeroDuration()).status()));
  CHECK(absl::IsInvalidArgument(objects.Wait({unknown}, 1, absl::ZeroDuration()).status()));
  auto id = objects.Put("x");
  CHECK(absl::IsInvalidArgument(objects.Wait({*id}, 2, absl::ZeroDuration()).status()));
  auto ready = objects.Wait({*id}, 1, absl::ZeroDuration());
  REQUIRE(ready.ok());
  CHECK(*ready == std::vector<bool>{true});
}

TEST_CASE_METHOD(Fixture, "objects: a borrowed value is fetched once from its owner, on the loop",
                 "[owned_objects]") {
  const ObjectId borrowed = ObjectId::FromTask(TaskId::ForNormalTask(JobId::FromInt(6)), 1);
  refs.AddBorrowed(borrowed, kOwner);
  objects.FetchIfBorrowed(borrowed);
  objects.FetchIfBorrowed(borrowed);  // already asked
  REQUIRE(transport.num_fetches() == 1);
  auto fetch = transport.TakeFetch();
  CHECK(fetch.owner == kOwner);
  rpc::GetObjectReply reply;
  reply.set_ready(true);
  *reply.mutable_value() = InlineValue(ObjectId::Nil(), "remote");
  fetch.done(absl::OkStatus(), reply);
  CHECK(memory.GetIfReady(borrowed) == nullptr);  // stored by the posted continuation, not here
  RunPosted();
  REQUIRE(memory.GetIfReady(borrowed) != nullptr);
  CHECK(memory.GetIfReady(borrowed)->inline_data() == "remote");
}

TEST_CASE_METHOD(Fixture, "objects: a borrowed value's owner gone is OWNER_DIED, freed is OBJECT_LOST",
                 "[owned_objects]") {
  const ObjectId a = ObjectId::FromTask(TaskId::ForNormalTask(JobId::FromInt(6)), 1);
  const ObjectId b = ObjectId::FromTask(TaskId::ForNormalTask(JobId::FromInt(6)), 2);
  refs.AddBorrowed(a, kOwner);
  refs.AddBorrowed(b, kOwner);
  objects.FetchIfBorrowed(a);
  objects.FetchIfBorrowed(b);
  transport.TakeFetch().done(absl::UnavailableError("connection refused"), {});
  transport.TakeFetch().done(absl::NotFoundError("freed"), {});
  RunPosted();
  auto got = objects.Get({a, b}, absl::ZeroDuration());
  REQUIRE(got.ok());
  CHECK(ErrorTypeOf((*got)[0].status()) == rpc::OWNER_DIED);
  CHECK(ErrorTypeOf((*got)[1].status()) == rpc::OBJECT_LOST);
}

TEST_CASE_METHOD(Fixture, "objects: the last reference frees the value and its store copy on the loop, once per batch",
                 "[owned_objects]") {
  auto big = objects.Put(std::string(kMaxInlineObjectSize + 1, 'x'));
  REQUIRE(big.ok());
  auto small = objects.Put("small");
  REQUIRE(small.ok());
  refs.AddLocal(*big);
  refs.AddLocal(*small);
  objects.RemoveLocalReference(*big);
  objects.RemoveLocalReference(*small);
  // Nothing happens in the caller (a finalizer, say): the first free of the batch asks the loop
  // to run once (an idle loop ticks only every 50 ms), the second joins it.
  CHECK(memory.GetIfReady(*big) != nullptr);
  CHECK(memory.GetIfReady(*small) != nullptr);
  CHECK(transport.freed().empty());
  REQUIRE(posted.size() == 1);
  RunPosted();
  CHECK(memory.GetIfReady(*big) == nullptr);
  CHECK(memory.GetIfReady(*small) == nullptr);
  REQUIRE(transport.freed().size() == 1);
  CHECK(transport.freed()[0].raylet == "10.0.0.1:7000");
  CHECK(transport.freed()[0].ids == std::vector<ObjectId>{*big});
  // Values held here only (small returns, one per sync call) do not wake the loop: its next
  // tick frees them, and it does not go quiet (tick once a second) while they wait.
  auto later = objects.Put("later");
  REQUIRE(later.ok());
  refs.AddLocal(*later);
  CHECK(objects.Quiet());
  objects.RemoveLocalReference(*later);
  CHECK(posted.empty());
  CHECK_FALSE(objects.Quiet());
  objects.FreePending();  // the tick
  CHECK(memory.GetIfReady(*later) == nullptr);
  CHECK(objects.Quiet());
  // A store copy asks again (once kUrgentFreeSpacing has passed since the last ask), and a small
  // value dropped after it joins that batch; a tick that comes first frees both, and the post
  // finds nothing.
  clock.Advance(OwnedObjects::kUrgentFreeSpacing);
  auto big2 = objects.Put(std::string(kMaxInlineObjectSize + 1, 'y'));
  auto small2 = objects.Put("small2");
  REQUIRE(big2.ok());
  REQUIRE(small2.ok());
  refs.AddLocal(*big2);
  refs.AddLocal(*small2);
  objects.RemoveLocalReference(*big2);
  objects.RemoveLocalReference(*small2);
  REQUIRE(posted.size() == 1);
  objects.FreePending();
  CHECK(memory.GetIfReady(*big2) == nullptr);
  CHECK(memory.GetIfReady(*small2) == nullptr);
  RunPosted();
  CHECK(transport.freed().size() == 2);
  // A store copy dropped within kUrgentFreeSpacing of that ask does not ask again: the loop's
  // next tick (at its short period, since it just ran) frees it.
  auto big3 = objects.Put(std::string(kMaxInlineObjectSize + 1, 'z'));
  REQUIRE(big3.ok());
  refs.AddLocal(*big3);
  objects.RemoveLocalReference(*big3);
  CHECK(posted.empty());
  CHECK_FALSE(objects.Quiet());  // the loop keeps ticking for it
  objects.FreePending();
  CHECK(memory.GetIfReady(*big3) == nullptr);
  CHECK(transport.freed().size() == 3);
  // A small value a language layer watches (a GPU tensor another worker holds for it) asks at
  // once: its holder should hear of the free without waiting for a tick.
  clock.Advance(OwnedObjects::kUrgentFreeSpacing);
  auto watched = objects.Put("tensor ref");
  REQUIRE(watched.ok());
  refs.AddLocal(*watched);
  objects.WatchFree(*watched);
  objects.RemoveLocalReference(*watched);
  REQUIRE(posted.size() == 1);
  RunPosted();
  CHECK(memory.GetIfReady(*watched) == nullptr);
}

TEST_CASE_METHOD(Fixture, "objects: a result for an object out of scope is dropped with its store copy",
                 "[owned_objects]") {
  const ObjectId result = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 3);
  objects.StoreResult(result, StoreValue(result, "10.0.0.2:7000", NodeId::FromRandom()), /*owned=*/true);
  CHECK(memory.GetIfReady(result) == nullptr);
  REQUIRE(transport.freed().size() == 1);
  CHECK(transport.freed()[0].raylet == "10.0.0.2:7000");
  // A borrowed one is dropped but never freed at its holder (the owner does that).
  const ObjectId borrowed = ObjectId::FromTask(TaskId::ForNormalTask(kJob), 4);
  objects.StoreResult(borrowed, StoreValue(borrowed, "10.0.0.2:7000", NodeId::FromRandom()), /*owned=*/false);
  CHECK(transport.freed().size() == 1);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST_CASE("objects: a task result whose store copy is lost is made again by its lineage", "[owned_objects][recovery]") {
  FakeClock clock;
  MemoryStore memory;
  ReferenceCounter refs;
  FakeStoreAccess store{"10.0.0.1:7000"};
  FakeObjectTransport transport;
  TaskOptions options;
  options.max_retries = 2;
  auto spec = BuildTaskSpec(kJob, "f", options, "10.0.0.1:4000", {"/bin/driver"});
  REQUIRE(spec.ok());
  const ObjectId id = ReturnObjectId(*spec, 1);
  int reruns = 0;
  ObjectRecovery recovery(memory, {.resubmit = [&](rpc::TaskSpec again) {
                                     // The re-run writes its result to a live node's store.
                                     ++reruns;
                                     CHECK(again.attempt() == 1);
                                     store.Insert(id, "made again");
                                     memory.Put(id, StoreValue(id, "10.0.0.3:7000", NodeId::FromRandom()));
                                   }});
  OwnedObjects objects{memory, refs, store, transport, clock,
                       OwnedObjects::Options{.address = "10.0.0.1:4000",
                                             .put_task = TaskId::ForNormalTask(kJob),
                                             .post = [](std::function<void()> fn) { fn(); },
                                             .recovery = &recovery}};
  refs.AddOwned(id);
  refs.AddLocal(id);
  // The first run's result sits on a node that died: the fake store has no copy.
  memory.Put(id, StoreValue(id, "10.0.0.2:7000", NodeId::FromRandom()));
  recovery.AddLineage(*spec, true, {id});

  auto got = objects.Get({id}, absl::Seconds(10));
  REQUIRE(got.ok());
  REQUIRE((*got)[0].ok());
  CHECK(*(*got)[0] == "made again");
  CHECK(reruns == 1);

  // A copy still on its way when the get's time is up is a timeout, not a loss: nothing re-runs.
  store.set_slow(true);
  auto slow = objects.Get({id}, absl::Milliseconds(10));
  REQUIRE(slow.ok());
  CHECK(ErrorTypeOf((*slow)[0].status()) == rpc::GET_TIMEOUT);
  CHECK(reruns == 1);
  store.set_slow(false);

  // A put object cannot be made again: OBJECT_LOST, saying why.
  auto put = objects.Put(std::string(kMaxInlineObjectSize + 1, 'x'));
  REQUIRE(put.ok());
  refs.AddLocal(*put);
  store.Erase(*put);
  auto lost = objects.Get({*put}, absl::Seconds(10));
  REQUIRE(lost.ok());
  CHECK(ErrorTypeOf((*lost)[0].status()) == rpc::OBJECT_LOST);
  CHECK_THAT(std::string((*lost)[0].status().message()), Catch::Contains("made by put"));
  CHECK(reruns == 1);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST_CASE_METHOD(Fixture, "objects: watched objects are reported to the freed handler once, when freed",
                 "[owned_objects]") {
  std::vector<std::vector<ObjectId>> reports;
  objects.SetFreedHandler([&](std::vector<ObjectId> ids) { reports.push_back(std::move(ids)); });
  auto watched = objects.Put("held elsewhere");
  auto plain = objects.Put("plain");
  REQUIRE(watched.ok());
  REQUIRE(plain.ok());
  objects.WatchFree(*watched);
  refs.AddLocal(*watched);
  refs.AddLocal(*plain);
  objects.RemoveLocalReference(*plain);
  objects.FreePending();
  CHECK(reports.empty());  // only watched ids are reported
  objects.RemoveLocalReference(*watched);
  CHECK(reports.empty());  // queued until the tick
  objects.FreePending();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0] == std::vector<ObjectId>{*watched});
  objects.FreePending();
  CHECK(reports.size() == 1);
}

}  // namespace
}  // namespace shoal
