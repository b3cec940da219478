#include "src/common/ids.h"

#include <catch2/catch.hpp>

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "tests/test_util/printers.h"
#include "tests/test_util/status_matchers.h"

namespace shoal {
namespace {

TEST_CASE("Id sizes match the layout in ids.h", "[ids]") {
  STATIC_REQUIRE(NodeId::kSize == 28);
  STATIC_REQUIRE(WorkerId::kSize == 28);
  STATIC_REQUIRE(JobId::kSize == 4);
  STATIC_REQUIRE(ActorId::kSize == 16);
  STATIC_REQUIRE(TaskId::kSize == 24);
  STATIC_REQUIRE(ObjectId::kSize == 28);
  CHECK(NodeId::FromRandom().Binary().size() == 28);
  CHECK(NodeId::FromRandom().Hex().size() == 56);
}

TEST_CASE("Nil ids are all 0xff and report IsNil", "[ids]") {
  NodeId nil;
  CHECK(nil.IsNil());
  CHECK(nil == NodeId::Nil());
  CHECK(nil.Hex() == std::string(56, 'f'));
  CHECK(nil.Binary() == std::string(28, '\xff'));
  CHECK_FALSE(NodeId::FromRandom().IsNil());
  CHECK(JobId::Nil().Hex() == "ffffffff");
}

TEST_CASE("Random ids differ", "[ids]") {
  absl::flat_hash_set<NodeId> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(NodeId::FromRandom());
  CHECK(seen.size() == 1000);
}

TEST_CASE("Hex and binary round trip", "[ids]") {
  const NodeId id = NodeId::FromRandom();
  auto from_hex = NodeId::FromHex(id.Hex());
  REQUIRE_OK(from_hex);
  CHECK(*from_hex == id);
  auto from_bin = NodeId::FromBinary(id.Binary());
  REQUIRE_OK(from_bin);
  CHECK(*from_bin == id);

  SECTION("hex is lowercase on output and accepted in either case") {
    auto upper = JobId::FromHex("0A0b0C0d");
    REQUIRE_OK(upper);
    CHECK(upper->Hex() == "0a0b0c0d");
  }
}

TEST_CASE("FromHex rejects wrong lengths and non-hex digits", "[ids]") {
  CHECK_CODE(JobId::FromHex(""), kInvalidArgument);
  CHECK_CODE(JobId::FromHex("0102030"), kInvalidArgument);    // 7 digits
  CHECK_CODE(JobId::FromHex("010203040"), kInvalidArgument);  // 9 digits
  CHECK_CODE(JobId::FromHex("0102030g"), kInvalidArgument);
  CHECK_CODE(JobId::FromHex("0x010203"), kInvalidArgument);
  CHECK_CODE(JobId::FromHex("01 20304"), kInvalidArgument);
  CHECK_CODE(NodeId::FromHex(JobId::FromInt(1).Hex()), kInvalidArgument);
}

TEST_CASE("FromBinary rejects wrong lengths", "[ids]") {
  CHECK_CODE(NodeId::FromBinary(""), kInvalidArgument);
  CHECK_CODE(NodeId::FromBinary(std::string(27, 'a')), kInvalidArgument);
  CHECK_CODE(NodeId::FromBinary(std::string(29, 'a')), kInvalidArgument);
  auto with_nul = JobId::FromBinary(std::string("\0\0\0\x01", 4));
  REQUIRE_OK(with_nul);
  CHECK(with_nul->Hex() == "00000001");
}

TEST_CASE("JobId FromInt and ToInt round trip", "[ids]") {
  for (uint32_t v : {0u, 1u, 2u, 255u, 256u, 65535u, 0x12345678u, 0xfffffffeu}) {
    CAPTURE(v);
    CHECK(JobId::FromInt(v).ToInt() == v);
  }
  CHECK(JobId::FromInt(1) != JobId::FromInt(2));
  // The byte order is fixed (little endian), so the hex a job id prints as is stable.
  CHECK(JobId::FromInt(1).Hex() == "01000000");
  CHECK(JobId::FromInt(0x0a0b0c0d).Hex() == "0d0c0b0a");
}

TEST_CASE("ActorId carries its job", "[ids]") {
  const JobId job = JobId::FromInt(7);
  const ActorId a = ActorId::Of(job), b = ActorId::Of(job);
  CHECK(a.Job() == job);
  CHECK(b.Job() == job);
  CHECK(a != b);
  CHECK_FALSE(a.IsNil());
}

TEST_CASE("TaskId carries its actor and job", "[ids]") {
  const JobId job = JobId::FromInt(42);
  SECTION("actor task") {
    const ActorId actor = ActorId::Of(job);
    const TaskId t = TaskId::ForActorTask(actor);
    CHECK(t.Actor() == actor);
    CHECK(t.Job() == job);
    CHECK(TaskId::ForActorTask(actor) != t);
  }
  SECTION("normal task") {
    const TaskId t = TaskId::ForNormalTask(job);
    CHECK(t.Job() == job);
    // Not any real actor's: the actor part's random bytes are the nil pattern.
    CHECK(t.Actor().Binary().substr(0, 12) == std::string(12, '\xff'));
    CHECK(TaskId::ForNormalTask(job) != t);
    CHECK(TaskId::ForNormalTask(JobId::FromInt(43)).Job() == JobId::FromInt(43));
  }
}

TEST_CASE("ObjectId carries its task and index", "[ids]") {
  const TaskId task = TaskId::ForNormalTask(JobId::FromInt(3));
  for (uint32_t index : {1u, 2u, 1000u, 0xffffffffu}) {
    CAPTURE(index);
    const ObjectId o = ObjectId::FromTask(task, index);
    CHECK(o.Task() == task);
    CHECK(o.Index() == index);
    CHECK(o.Task().Job() == JobId::FromInt(3));
  }
  CHECK(ObjectId::FromTask(task, 1) != ObjectId::FromTask(task, 2));
  CHECK(ObjectId::FromTask(task, 1) == ObjectId::FromTask(task, 1));
  // The index is the last 4 bytes, little endian.
  CHECK(ObjectId::FromTask(task, 1).Hex().substr(48) == "01000000");
}

TEST_CASE("Ids order and hash by their bytes", "[ids]") {
  auto a = JobId::FromHex("00000001"), b = JobId::FromHex("00000002");
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  CHECK(*a < *b);
  CHECK_FALSE(*b < *a);

  absl::flat_hash_map<ObjectId, int> map;
  const TaskId task = TaskId::ForNormalTask(JobId::FromInt(1));
  for (uint32_t i = 1; i <= 100; ++i) map[ObjectId::FromTask(task, i)] = static_cast<int>(i);
  REQUIRE(map.size() == 100);
  for (uint32_t i = 1; i <= 100; ++i) {
    // Look up with a freshly built, equal id.
    auto it = map.find(*ObjectId::FromHex(ObjectId::FromTask(task, i).Hex()));
    REQUIRE(it != map.end());
    CHECK(it->second == static_cast<int>(i));
  }
  CHECK_FALSE(map.contains(ObjectId::FromTask(task, 101)));
  CHECK_FALSE(map.contains(ObjectId::Nil()));
}

}  // namespace
}  // namespace shoal
