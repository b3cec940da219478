// The C++ task API without a cluster: what can go wrong before a task leaves the process, and
// what a worker does with a task's bytes.
#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/cord.h"
#include "shoal/api.h"
#include "src/api/function_registry.h"
#include "src/worker/core_worker.h"

namespace {

int Add(int a, int b) { return a + b; }
std::string Join(const std::vector<std::string>& parts, std::string sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}
int Throws(int) { throw std::invalid_argument("negative input"); }
void Ignore(int) {}
int NeverRegistered(int x) { return x; }

struct Point {
  double x, y;
  std::string label;
  MSGPACK_DEFINE(x, y, label);
};
Point Scale(Point p, double k) { return {p.x * k, p.y * k, p.label}; }

}  // namespace

SHOAL_REMOTE(Add, Join);
SHOAL_REMOTE(Throws, Ignore, Scale);

using shoal::internal::Pack;
using shoal::internal::Unpack;

template <typename Fn>
std::string Invoke(Fn fn, const std::vector<std::string>& args) {
  return shoal::internal::MakeInvoker(fn, "fn")(args);
}

TEST_CASE("values round-trip through msgpack") {
  auto what = [] { return std::string("the test value"); };
  CHECK(Unpack<int>(Pack(42), what) == 42);
  CHECK(Unpack<std::string>(Pack(std::string("a\0b", 3)), what) == std::string("a\0b", 3));
  std::map<std::string, std::vector<double>> m = {{"a", {1.5, 2}}, {"b", {}}};
  CHECK(Unpack<decltype(m)>(Pack(m), what) == m);
  auto t = std::make_tuple(1, std::string("x"), true);
  CHECK(Unpack<decltype(t)>(Pack(t), what) == t);
  Point p = Unpack<Point>(Pack(Point{1, 2, "p"}), what);
  CHECK((p.x == 1 && p.y == 2 && p.label == "p"));
}

TEST_CASE("bytes of the wrong type are a clear error") {
  auto what = [] { return std::string("argument 1 of Add"); };
  try {
    Unpack<int>(Pack(std::string("text")), what);
    FAIL("no error");
  } catch (const shoal::Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot deserialize argument 1 of Add as int"));
  }
  CHECK_THROWS_AS(Unpack<int>(std::string("\xc1"), what), shoal::Error);  // not msgpack
}

TEST_CASE("the invoker unpacks each argument into its parameter type and packs the result") {
  auto what = [] { return std::string("result"); };
  CHECK(Unpack<int>(Invoke(Add, {Pack(2), Pack(40)}), what) == 42);
  std::vector<std::string> parts = {"a", "b", "c"};
  CHECK(Unpack<std::string>(Invoke(Join, {Pack(parts), Pack(std::string("-"))}), what) == "a-b-c");
  Point p = Unpack<Point>(Invoke(Scale, {Pack(Point{1, 2, "q"}), Pack(2.0)}), what);
  CHECK((p.x == 2 && p.y == 4 && p.label == "q"));
  CHECK(Invoke(Ignore, {Pack(1)}) == shoal::internal::PackNil());
}

TEST_CASE("the invoker reports wrong argument counts and types") {
  CHECK_THROWS_WITH(Invoke(Add, {Pack(1)}), Catch::Contains("takes 2 arguments, got 1"));
  CHECK_THROWS_WITH(Invoke(Add, {Pack(1), Pack(std::string("two"))}),
                    Catch::Contains("argument 2 of fn as int"));
}

TEST_CASE("a thrown exception becomes an Aborted status with the demangled type") {
  absl::Status status;
  try {
    Invoke(Throws, {Pack(1)});
  } catch (...) {
    status = shoal::api::StatusFromCurrentException();
  }
  CHECK(status.code() == absl::StatusCode::kAborted);
  CHECK(status.message() == "negative input");
  auto info = shoal::ErrorInfoOf(status);
  REQUIRE(info.has_value());
  CHECK(info->type() == shoal::rpc::TASK_EXCEPTION);
  CHECK(info->exception_type() == "std::invalid_argument");

  try {
    throw 7;
  } catch (...) {
    status = shoal::api::StatusFromCurrentException();
  }
  CHECK(shoal::ErrorInfoOf(status)->exception_type() == "int");
}

TEST_CASE("TaskError names the remote type and message") {
  shoal::TaskError e("std::out_of_range", "index 7");
  CHECK(std::string(e.what()) == "remote task raised std::out_of_range: index 7");
  CHECK(e.type_name() == "std::out_of_range");
  CHECK(e.message() == "index 7");
  const shoal::Error& base = e;
  CHECK(std::string(base.what()).find("index 7") != std::string::npos);
}

TEST_CASE("SHOAL_REMOTE names functions as written") {
  using shoal::internal::SplitNames;
  CHECK(SplitNames("Add") == std::vector<std::string>{"Add"});
  CHECK(SplitNames(" Add ,  ns::Mul,&Div") == std::vector<std::string>{"Add", "ns::Mul", "Div"});
  CHECK(SplitNames("Sum<int, 2>, F") == std::vector<std::string>{"Sum<int, 2>", "F"});
  REQUIRE(shoal::internal::FindFunctionName(shoal::internal::KeyOf(Join)) != nullptr);
  CHECK(*shoal::internal::FindFunctionName(shoal::internal::KeyOf(Join)) == "Join");
  CHECK(*shoal::internal::FindFunctionName(shoal::internal::KeyOf(Scale)) == "Scale");
  CHECK(shoal::internal::FindFunctionName(shoal::internal::KeyOf(NeverRegistered)) == nullptr);
}

TEST_CASE("user errors are caught at Remote(), before anything is sent") {
  CHECK_THROWS_WITH(shoal::Task(NeverRegistered).Remote(1), Catch::Contains("SHOAL_REMOTE"));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const std::map<std::string, double>& bad : std::vector<std::map<std::string, double>>{
           {{"GPU", -1}}, {{"CPU", nan}}, {{"GPU", 1.5}}, {{"", 1}}}) {
    CHECK_THROWS_WITH(shoal::Task(Add).SetResources(bad).Remote(1, 2), Catch::Contains("bad resources for Add"));
  }
  CHECK_THROWS_WITH(shoal::Task(Add).SetMaxRetries(-2).Remote(1, 2), Catch::Contains("max_retries"));
  CHECK_THROWS_WITH(shoal::Task(Add).Remote(1, 2), Catch::Contains("shoal::Init"));
  CHECK_THROWS_WITH(shoal::Get(shoal::ObjectRef<int>()), Catch::Contains("shoal::Init"));
  CHECK_FALSE(shoal::IsInitialized());
}

TEST_CASE("refs made outside a session count nothing and are nil by default") {
  shoal::ObjectRef<int> nil;
  CHECK(nil.IsNil());
  shoal::ObjectRef<int> copy = nil;
  CHECK(copy == nil);
  shoal::ObjectRef<int> moved = std::move(copy);
  CHECK(moved.IsNil());
}
